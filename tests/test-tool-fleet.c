/*
 * test-tool's fleet subcommands: the parts of a fleet run that need no
 * hosts.
 *
 *   fleet-interrupt N   starts N children (cat), interrupts itself as
 *                       Ctrl-C would, and prints how many of them the
 *                       interrupt stopped ("stopped K of N")
 *   fleet-push-lines    feeds stdin, a byte at a time, to what takes the
 *                       push's lines (lib/fleetpush.h) and prints what it
 *                       made of them
 *   fleet-async         runs a function in a copy (lib/async.h) while a
 *                       child of ours and a pipe are open, and prints what
 *                       the copy saw and returned
 *   fleet-fibers N      runs N fibers (lib/fiber.h), each on a stdin and a
 *                       stderr of its own: each says it started (on a log
 *                       all share), waits for a line on its stdin, then for
 *                       its stdout and stderr to take more, sleeps,
 *                       runs sh, which writes on the stderr it inherits,
 *                       and returns its number; the lines go to them in
 *                       reverse order once every one waits. Prints the log,
 *                       then each fiber's result and stderr
 *   fleet-child-signals prints the SigIgn line we were started with, then,
 *                       with our signals installed and SIGQUIT ignored (as
 *                       a parent may leave it), starts a child that prints
 *                       its /proc/self/status (SigIgn, SigCgt)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/async.h"
#include "../lib/fiber.h"
#include "../lib/fleet.h"
#include "../lib/fleetpush.h"
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

struct fiber_test {
	int n, log, ret;
	int in[2], err;
};

static int fiber_test_run(void *data)
{
	struct fiber_test *t = data;
	struct child c = CHILD_INIT;
	struct nrr_err e;
	char line[64], ch;
	size_t len = 0;

	int in = fiber_std_fd(0);

	dprintf(t->log, "%d waits\n", t->n);
	while (!fiber_wait_readable(in) && read(in, &ch, 1) == 1 && ch != '\n' && len < 63)
		line[len++] = ch;
	line[len] = '\0';
	/* what epoll cannot watch (its /dev/null, its memfd) is ready at
	 * once, as poll(2) has it */
	struct pollfd p[2] = { { 1, POLLOUT, 0 }, { 2, POLLOUT, 0 } };
	int ready = fiber_poll(p, 2, 10000);
	dprintf(t->log, "%d got %s, %d ready\n", t->n, line, ready);
	fiber_sleep_ms(20);
	fprintf(stderr, "fiber %d: its own stderr\n", t->n);
	strvec_pushl(&c.args, "sh", "-c", "echo \"sh of $1, on the stderr it inherited\" >&2; exit \"$1\"",
		     "sh", NULL);
	strvec_pushf(&c.args, "%d", t->n);
	c.in = CHILD_NULL;
	int st = child_start(&c, &e) ? -1 : child_wait(&c);
	child_clear(&c);
	dprintf(t->log, "%d ends\n", t->n);
	return st;
}

static int fibers(long n)
{
	struct fiber_test *t = xcalloc((size_t)n, sizeof(*t));
	struct fiber **f = xcalloc((size_t)n, sizeof(*f));
	int log = memfd_create("log", MFD_CLOEXEC);
	char buf[4096];
	ssize_t got;

	for (long i = 0; i < n; i++) {
		t[i].n = (int)i;
		t[i].log = log;
		if (pipe2(t[i].in, O_CLOEXEC) || (t[i].err = memfd_create("err", MFD_CLOEXEC)) < 0 ||
		    !(f[i] = fiber_new(fiber_test_run, &t[i], t[i].in[0], t[i].err)))
			return 1;
	}
	/* every one runs up to its wait, none blocks the others */
	fiber_sleep_ms(50);
	for (long i = n - 1; i >= 0; i--)
		dprintf(t[i].in[1], "line %ld\n", i);
	for (long done = 0; done < n; ) {
		fiber_sleep_ms(10);
		done = 0;
		for (long i = 0; i < n; i++)
			done += fiber_done(f[i], &t[i].ret);
	}
	/* our own fds 0-2 are ours again */
	fprintf(stderr, "outside: our stderr\n");
	lseek(log, 0, SEEK_SET);
	while ((got = read(log, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)got, stdout);
	for (long i = 0; i < n; i++) {
		printf("fiber %ld returned %d; its stderr:\n", i, t[i].ret);
		fflush(stdout);
		lseek(t[i].err, 0, SEEK_SET);
		while ((got = read(t[i].err, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)got, stdout);
		fiber_free(f[i]);
		close(t[i].in[0]);
		close(t[i].in[1]);
		close(t[i].err);
	}
	close(log);
	free(t);
	free(f);
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
	fleet_child_argv(&o, "/nix/store/x", "t1", 0, 3, &args);
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

static int push_lines(void)
{
	struct fleetpush p;
	int c;

	memset(&p, 0, sizeof(p));
	strbuf_init(&p.in);
	strvec_init(&p.warnings);
	while ((c = getchar()) != EOF) {
		char ch = (char)c;
		strbuf_add(&p.in, &ch, 1);
		fleetpush_take(&p);
	}
	printf("key %s\n", p.key ? p.key : "(none)");
	for (size_t i = 0; i < p.warnings.nr; i++)
		printf("warning %s\n", p.warnings.v[i]);
	printf("status %d\nmessage %s\nhint %s\nleft %zu\n", p.err.status, p.err.msg, p.err.hint,
	       p.in.len);
	p.done = 1;
	fleetpush_release(&p);
	return 0;
}

/* In the copy: what it has of ours. */
static int copy_says(int fd, void *data)
{
	int kept = *(int *)data;
	char line[128];
	int n = snprintf(line, sizeof(line), "children %zu, our pipe %s, stdout %s\n",
			 run_children_tracked(), fcntl(kept, F_GETFD) < 0 ? "closed" : "open",
			 fcntl(1, F_GETFD) < 0 ? "closed" : "open");
	fd_write_all(fd, line, (size_t)n);
	return 7;
}

static int async_copy(void)
{
	struct child c = CHILD_INIT;
	struct async a = { copy_says, NULL, -1, CHILD_INIT };
	struct nrr_err e;
	struct strbuf out = STRBUF_INIT;
	int p[2], fd;

	if (pipe(p))
		return 1;
	a.data = &p[0];
	strvec_pushl(&c.args, "sleep", "5", NULL);
	c.in = CHILD_NULL;
	if (child_start(&c, &e) || async_start(&a, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	fd = a.out;
	while (fd >= 0)
		if (pump(&(struct pump_fd){ .fd = &fd, .sb = &out }, 1, 5000) < 0)
			break;
	a.out = -1;
	int st = async_finish(&a);
	printf("%sstatus %d, ours %zu\n", out.buf, st, run_children_tracked());
	child_kill(&c, SIGTERM);
	child_wait(&c);
	child_clear(&c);
	strbuf_release(&out);
	close(p[0]);
	close(p[1]);
	return 0;
}

static int child_signals(void)
{
	struct child c;
	struct nrr_err e;

	/* what we were given ignored (by bats, a shell's &, a sanitizer's
	 * runtime), which the child should keep too */
	struct strbuf status = STRBUF_INIT;
	if (strbuf_read_file(&status, "/proc/self/status"))
		return 1;
	const char *ign = strstr(status.buf, "\nSigIgn:");
	if (!ign)
		return 1;
	printf("ours %.*s\n", (int)strcspn(ign + 1, "\n"), ign + 1);
	fflush(stdout);
	strbuf_release(&status);
	run_signals_install();
	signal(SIGQUIT, SIG_IGN);
	child_init(&c);
	/* cat: grep catches SIGSEGV (a stack overflow's message) */
	strvec_pushl(&c.args, "cat", "/proc/self/status", NULL);
	if (child_start(&c, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	int st = child_wait(&c);
	child_clear(&c);
	return st;
}

int test_tool_fleet(int argc, const char **argv)
{
	if (!strcmp(argv[0], "fleet-child-signals"))
		return child_signals();
	if (!strcmp(argv[0], "fleet-push-lines"))
		return push_lines();
	if (!strcmp(argv[0], "fleet-async"))
		return async_copy();
	if (!strcmp(argv[0], "fleet-child-argv"))
		return child_argv(argc, argv);
	if (!strcmp(argv[0], "fleet-proto"))
		return proto();
	if (!strcmp(argv[0], "fleet-fibers") && argc == 2)
		return fibers(strtol(argv[1], NULL, 10));
	if (!strcmp(argv[0], "fleet-interrupt") && argc == 2)
		return interrupt_children(strtol(argv[1], NULL, 10));
	fprintf(stderr, "test-tool: unknown command '%s'\n", argv[0]);
	return 2;
}
