/*
 * test-tool's fleet subcommands: the parts of a fleet run that need no
 * hosts.
 *
 *   fleet-interrupt N   starts N children (sleep 60), interrupts itself as
 *                       Ctrl-C would, and prints how many of them the
 *                       interrupt stopped ("stopped K of N")
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/run.h"

int test_tool_fleet(int argc, const char **argv);

static int interrupt_children(long n)
{
	struct child *c = xcalloc((size_t)n, sizeof(*c));
	struct nrr_err e;
	long stopped = 0;

	run_signals_install();
	for (long i = 0; i < n; i++) {
		child_init(&c[i]);
		strvec_pushl(&c[i].args, "sleep", "60", NULL);
		c[i].in = CHILD_NULL;
		if (child_start(&c[i], &e)) {
			fprintf(stderr, "%s\n", e.msg);
			return 1;
		}
	}
	printf("tracked %zu\n", run_children_tracked());
	raise(SIGINT);
	for (long i = 0; i < n; i++) {
		stopped += child_wait(&c[i]) == 128 + SIGTERM;
		child_clear(&c[i]);
	}
	free(c);
	printf("stopped %ld of %ld\n", stopped, n);
	printf("tracked %zu\n", run_children_tracked());
	return 0;
}

int test_tool_fleet(int argc, const char **argv)
{
	if (!strcmp(argv[0], "fleet-interrupt") && argc == 2)
		return interrupt_children(strtol(argv[1], NULL, 10));
	fprintf(stderr, "test-tool: unknown command '%s'\n", argv[0]);
	return 2;
}
