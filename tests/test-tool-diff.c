#include <stdio.h>

int test_tool_diff(int argc, const char **argv);

int test_tool_diff(int argc, const char **argv)
{
	(void)argc;
	(void)argv;
	fputs("test-tool: diff: not written yet\n", stderr);
	return 2;
}
