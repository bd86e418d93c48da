/*
 * test-tool's fleet subcommands: the parts of a fleet run that need no
 * hosts.
 *
 *   fleet-interrupt N   starts N children (cat), interrupts itself as
 *                       Ctrl-C would, and prints how many of them the
 *                       interrupt stopped ("stopped K of N")
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fleet.h"
#include "../lib/fleetproto.h"
#include "../lib/run.h"

#include <cjson/cJSON.h>

int test_tool_fleet(int argc, const char **argv);

static int interrupt_children(long n)
{
	struct child *c = xcalloc((size_t)n, sizeof(*c));
	struct nrr_err e;
	long stopped = 0;

	run_signals_install();
	for (long i = 0; i < n; i++) {
		child_init(&c[i]);
		/* cat on a pipe of ours lasts until stopped, or until we are
		 * gone however slowly they start (a sanitizer build) */
		strvec_pushl(&c[i].args, "cat", NULL);
		c[i].in = CHILD_PIPE;
		c[i].out = CHILD_NULL;
		if (child_start(&c[i], &e)) {
			fprintf(stderr, "%s\n", e.msg);
			return 1;
		}
	}
	printf("tracked %zu\n", run_children_tracked());
	raise(SIGINT);
	for (long i = 0; i < n; i++) {
		int st = child_wait(&c[i]);
		if (st == 128 + SIGTERM)
			stopped++;
		else
			fprintf(stderr, "child %ld: status %d\n", i, st);
		close(c[i].in_fd);
		child_clear(&c[i]);
	}
	free(c);
	printf("stopped %ld of %ld\n", stopped, n);
	printf("tracked %zu\n", run_children_tracked());
	return 0;
}

static int child_argv(int argc, const char **argv)
{
	struct options o;
	struct nrr_err e = { 0 };
	struct strvec args = STRVEC_INIT;

	options_init(&o);
	/* options_parse skips argv[0], as main's argv has the program there */
	if (options_parse(&o, argc, argv, &e)) {
		printf("error(%d): %s\n", e.status, e.msg);
		options_release(&o);
		return 1;
	}
	fleet_child_argv(&o, "/nix/store/x", "t1", 0, &args);
	for (size_t i = 0; i < args.nr; i++)
		printf("%s\n", args.v[i]);
	strvec_clear(&args);
	options_release(&o);
	return 0;
}

static int proto(void)
{
	static const char *const kinds[] = { "other", "phase", "say", "diff", "ask", "result" };
	char line[8192];

	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		struct fleetproto_msg m;
		fleetproto_parse(line, &m);
		printf("%s", kinds[m.kind]);
		if (m.kind == FLEETPROTO_PHASE) {
			double at;
			char *name = fleetproto_phase_parse(m.text, &at);
			printf(" [%s] at %.3f", name, at);
			free(name);
		}
		if (m.kind == FLEETPROTO_SAY)
			printf(" [%s]", m.text);
		if (m.kind == FLEETPROTO_DIFF)
			printf(" %s", m.diff ? "json" : "bad");
		if (m.kind == FLEETPROTO_RESULT) {
			/* and back: what a child would write for it */
			fflush(stdout);
			printf(" status=%d step=%s message=[%s] gen=%d..%d bytes=%llu fetched=%d:%llu path=%s\n",
			       m.result.status, m.result.step, m.result.message,
			       m.result.gen_before, m.result.gen_after, m.result.bytes,
			       m.result.fetched, m.result.fetch_bytes, m.result.store_path);
			fflush(stdout);
			fleetproto_result(1, &m.result);
			continue;
		}
		cJSON_Delete(m.diff);
		printf("\n");
	}
	return 0;
}

int test_tool_fleet(int argc, const char **argv)
{
	if (!strcmp(argv[0], "fleet-child-argv"))
		return child_argv(argc, argv);
	if (!strcmp(argv[0], "fleet-proto"))
		return proto();
	if (!strcmp(argv[0], "fleet-interrupt") && argc == 2)
		return interrupt_children(strtol(argv[1], NULL, 10));
	fprintf(stderr, "test-tool: unknown command '%s'\n", argv[0]);
	return 2;
}
