#include <stdio.h>

int test_tool_cache(int argc, const char **argv);

int test_tool_cache(int argc, const char **argv)
{
	(void)argc;
	(void)argv;
	fputs("test-tool: cache: not written yet\n", stderr);
	return 2;
}
