/*
 * test-tool: exposes pure lib/ functions to the bats suite, as git's
 * t/helper/test-tool does. Each subcommand reads its arguments (or stdin)
 * and prints a result that tests compare.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/activate.h"
#include "../lib/closure.h"
#include "../lib/closuredb.h"
#include "../lib/closurecache.h"
#include "../lib/serveproto.h"
#include "../lib/narexport.h"
#include "../lib/exportcheck.h"
#include "../lib/complete.h"
#include "../lib/generations.h"
#include "../lib/nix.h"
#include "../lib/options.h"
#include "../lib/platform.h"
#include "../lib/pushto.h"
#include "../lib/quote.h"
#include "../lib/rundir.h"
#include "../lib/run.h"
#include "../lib/fiber.h"
#include "../lib/pump.h"
#include "../lib/ssh.h"

/* All of stdin, for the subcommands of every test-tool-*.c. The caller
 * frees it. */
char *test_tool_read_stdin(void);
char *test_tool_read_stdin(void)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		strbuf_add(&sb, buf, n);
	return strbuf_detach(&sb);
}

/* narexport's sink: stdout. */
static int to_stdout(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	return fwrite(buf, 1, len, stdout) == len ? 0 : -1;
}

/* narexport's file sink: spliced to stdout, a pipe, as a session's is
 * (what stdio holds goes first), counted into *(unsigned long long *)ctx. */
static int splice_stdout(void *ctx, int fd, unsigned long long len)
{
	int moved = 0;
	if (fflush(stdout))
		return -1;
	while (len) {
		ssize_t n = splice(fd, NULL, 1, NULL, len, 0);
		if (n == 0)
			return NAREXPORT_SHORT;
		if (n < 0)
			return !moved && errno == EINVAL ? 1 : -1;
		len -= (unsigned long long)n;
		*(unsigned long long *)ctx += (unsigned long long)n;
		moved = 1;
	}
	return 0;
}

/* narexport's sink: counts into *(unsigned long long *)ctx. */
static int count_sink(void *ctx, const void *buf, size_t len)
{
	(void)buf;
	*(unsigned long long *)ctx += len;
	return 0;
}

static void print_vec(const char *name, const struct strvec *v)
{
	printf("%s=", name);
	for (size_t i = 0; i < v->nr; i++)
		printf("%s[%s]", i ? " " : "", v->v[i]);
	printf("\n");
}

static int cmd_parse(int argc, const char **argv)
{
	struct options o;
	struct nrr_err e = { 0 };
	options_init(&o);
	int ret = options_parse(&o, argc, argv, &e);
	if (ret) {
		printf("error(%d): %s\n", ret, e.msg);
		options_release(&o);
		return ret;
	}
#define S(x) printf(#x "=%s\n", o.x ? o.x : "(null)")
#define I(x) printf(#x "=%d\n", (int)o.x)
	S(action); S(flake); S(file); S(attr); S(store_path); S(target_host);
	S(build_host); S(profile_name); S(specialisation); S(image_variant);
	I(verbose); I(quiet); I(elevate); I(ask_password); I(substitutes);
	I(rollback); I(install_bootloader); I(no_flake); I(json); I(diff);
	I(copy_direct); I(no_build_output); I(upgrade);
	print_vec("nix_common", &o.nix_common);
	print_vec("nix_build", &o.nix_build);
	print_vec("nix_flake_common", &o.nix_flake_common);
	print_vec("nix_flake_eval", &o.nix_flake_eval);
	print_vec("nix_classic", &o.nix_classic);
	for (size_t i = 0; i < o.warnings.nr; i++)
		printf("warning: %s\n", o.warnings.v[i]);
	options_release(&o);
	return 0;
}

/* Subcommands of the cache and diff modules live beside them. */
int test_tool_cache(int argc, const char **argv);
int test_tool_diff(int argc, const char **argv);
int test_tool_fleet(int argc, const char **argv);
int test_tool_hive(int argc, const char **argv);
int test_tool_remote(int argc, const char **argv);
int test_tool_daemon(int argc, const char **argv);

/* fiber-stopped's fiber: 0 once its fd is readable, 1 if its wait failed */
static int wait_readable_fiber(void *arg)
{
	return fiber_wait_readable(*(int *)arg) ? 1 : 0;
}

int main(int argc, const char **argv)
{
	if (argc < 2) {
		fputs("usage: test-tool COMMAND [ARGS]\n", stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strncmp(cmd, "keys-", 5) || !strncmp(cmd, "remote-", 7))
		return test_tool_remote(argc - 1, argv + 1);
	if (!strncmp(cmd, "cache-", 6))
		return test_tool_cache(argc - 1, argv + 1);
	if (!strncmp(cmd, "diff-", 5))
		return test_tool_diff(argc - 1, argv + 1);
	if (!strncmp(cmd, "fleet-", 6))
		return test_tool_fleet(argc - 1, argv + 1);
	if (!strncmp(cmd, "hive-", 5))
		return test_tool_hive(argc - 1, argv + 1);
	if (!strncmp(cmd, "daemon-", 7))
		return test_tool_daemon(argc - 1, argv + 1);
	if (!strcmp(cmd, "platform-of-machine") && (argc == 3 || argc == 4)) {
		/* MACHINE [little|big]: the remote's word, or this machine's */
		char out[64];
		if (argc == 4)
			platform_of_machine_order(argv[2], !strcmp(argv[3], "little"), out,
						  sizeof(out));
		else
			platform_of_machine(argv[2], out, sizeof(out));
		puts(out);
		return 0;
	}
	if (!strcmp(cmd, "drv-system")) {
		/* the derivation file's text on stdin */
		char *text = test_tool_read_stdin(), out[64];
		int ret = platform_drv_system(text, strlen(text), out, sizeof(out));
		if (!ret)
			puts(out);
		else
			puts("no system: not a derivation");
		free(text);
		return ret ? 1 : 0;
	}
	if (!strcmp(cmd, "push-url")) {
		for (int i = 2; i < argc; i++) {
			char *url = pushto_write_url(argv[i]);
			puts(url);
			free(url);
		}
		return 0;
	}
	if (!strcmp(cmd, "ssh-near")) {
		for (int i = 2; i < argc; i++)
			printf("%s %s\n", argv[i], ssh_host_is_near(argv[i]) ? "near" : "far");
		return 0;
	}
	if (!strcmp(cmd, "dry-run")) {
		char *text = test_tool_read_stdin();
		struct nix_dry_run dr;
		nix_dry_run_parse(text, &dr);
		printf("build=%zu fetch=%zu download=%.2f\n", dr.build, dr.fetch, dr.download_mib);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "builders-have") && argc == 4) {
		int yes = platform_builders_have(argv[2], argv[3]);
		puts(yes ? "yes" : "no");
		return 0;
	}
	if (!strcmp(cmd, "sq-quote")) {
		struct strbuf sb = STRBUF_INIT;
		sq_quote_argv(&sb, argv + 2);
		puts(sb.buf);
		strbuf_release(&sb);
		return 0;
	}
	if (!strcmp(cmd, "flake-dir-of") && argc == 3) {
		char *dir = nix_flake_dir_of(argv[2]);
		printf("[%s]\n", dir ? dir : "");
		free(dir);
		return 0;
	}
	if (!strcmp(cmd, "keep-tail") && argc == 4) {
		struct strbuf sb = STRBUF_INIT;
		strbuf_addstr(&sb, argv[3]);
		strbuf_keep_tail(&sb, (size_t)atol(argv[2]));
		printf("[%s]\n", sb.buf);
		strbuf_release(&sb);
		return 0;
	}
	if (!strcmp(cmd, "one-line") && argc == 3) {
		struct nrr_err e;
		nrr_fail(&e, NRR_EFAIL, "from 'h': %s", argv[2]);
		puts(e.msg);
		return 0;
	}
	if (!strcmp(cmd, "split")) {
		struct strvec v = STRVEC_INIT;
		const char *why = NULL;
		if (split_cmdline(argv[2], &v, &why)) {
			printf("error: %s\n", why);
			strvec_clear(&v);
			return 1;
		}
		for (size_t i = 0; i < v.nr; i++)
			printf("[%s]\n", v.v[i]);
		strvec_clear(&v);
		return 0;
	}
	if (!strcmp(cmd, "activate-fields") && argc == 2) {
		/* the fields for a sample activation, one value per field, so that
		 * a test can read them with the script's own read_fields */
		struct activation a = {
			.action = "switch", .toplevel = "/nix/store/top", .profile = "/prof",
			.specialisation = "spec", .install_bootloader = 1, .op = 1,
			.diff = 1, .ask = 1, .no_validate = 1, .substitute = 1,
			.plan = 1, .confirm_seconds = 30,
		};
		/* a pre- and a post-activation key: both stages */
		struct keyset ks = KEYSET_INIT;
		keyset_add(&ks, "a");
		keyset_add(&ks, "b")->upload_at = KEYS_POST;
		a.keys = &ks;
		a.keys_which = KEYS_ALL;
		struct strbuf sb = STRBUF_INIT;
		activation_fields(&a, 0, &sb);
		fputs(sb.buf, stdout);
		strbuf_release(&sb);
		keyset_release(&ks);
		return 0;
	}
	if (!strcmp(cmd, "parse"))
		return cmd_parse(argc - 1, argv + 1);
	if (!strcmp(cmd, "nix-flag-nargs")) {
		/* every flag we pass on to nix, as nix.c knows its values */
		for (const struct option_spec *s = option_table; s->name; s++) {
			if (!s->group)
				continue;
			char *flag = xstrfmt("--%s", s->name);
			printf("%s %d %d\n", flag, s->nargs, nix_flag_nargs(flag));
			free(flag);
		}
		return 0;
	}
	if (!strcmp(cmd, "ssh-config")) {
		struct ssh_config c;
		char *text = test_tool_read_stdin();
		int r = ssh_config_parse(text, &c);
		printf("ok=%d user=%s hostname=%s port=%d controlpath=%s\n", r == 0,
		       c.user ? c.user : "", c.hostname ? c.hostname : "", c.port,
		       c.control_path ? c.control_path : "");
		ssh_config_release(&c);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "ssh-check-name")) {
		struct nrr_err e;
		int r = ssh_check_name(argv[2], &e);
		printf(r ? "refused: %s\n" : "ok\n", e.msg);
		return r ? 1 : 0;
	}
	if (!strcmp(cmd, "ssh-hosts")) {
		struct strvec h = STRVEC_INIT, inc = STRVEC_INIT;
		char *text = test_tool_read_stdin();
		ssh_config_hosts(text, &h, &inc);
		print_vec("hosts", &h);
		print_vec("includes", &inc);
		strvec_clear(&h);
		strvec_clear(&inc);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "nix-version")) {
		struct nix_version v;
		int r = nix_version_parse(argv[2], &v);
		printf("ok=%d %d.%d.%d lix=%d\n", r == 0, v.major, v.minor, v.patch, v.lix);
		return 0;
	}
	if (!strcmp(cmd, "nix-error")) {
		char buf[512];
		char *text = test_tool_read_stdin();
		nix_error_summary(text, buf, sizeof(buf));
		printf("%s\nbuild=%d\n", buf, nix_error_is_build(text));
		char *flag = nix_unknown_flag(text);
		if (flag)
			printf("unknown=%s\n", flag);
		free(flag);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "flake-split")) {
		char *ref, *name;
		nix_split_flake(argv[2], &ref, &name);
		char *attr = nix_flake_attr(ref, name, "config.system.build.toplevel");
		printf("ref=%s name=%s attr=%s\n", ref, name, attr);
		free(ref); free(name); free(attr);
		return 0;
	}
	if (!strcmp(cmd, "build-json")) {
		char *text = test_tool_read_stdin();
		char *out = nix_build_json_out(text);
		printf("%s\n", out ? out : "(none)");
		free(out);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "generations")) {
		struct generation *g;
		int n;
		char *text = test_tool_read_stdin();
		generations_parse(text, &g, &n);
		for (int i = 0; i < n; i++)
			printf("%d %s%s\n", g[i].id, g[i].date, g[i].current ? " current" : "");
		printf("previous=%d\n", generations_previous(g, n));
		generations_free(g, n);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "query-missing")) {
		struct strvec missing = STRVEC_INIT;
		char *text = test_tool_read_stdin();
		closure_parse_missing(text, &missing);
		print_vec("missing", &missing);
		strvec_clear(&missing);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "closuredb") && argc > 2) {
		/* closuredb TOP < DUMP: TOP's closure with sizes, or why not */
		struct closuredb db = CLOSUREDB_INIT;
		struct strvec closure = STRVEC_INIT;
		unsigned long long *sizes = NULL;
		char *text = test_tool_read_stdin();
		if (closuredb_parse(text, &db))
			printf("not a dump\n");
		else if (closuredb_select(&db, argv[2], &closure, &sizes))
			printf("not in it\n");
		for (size_t i = 0; i < closure.nr; i++)
			printf("%s %llu\n", closure.v[i], sizes[i]);
		free(sizes);
		strvec_clear(&closure);
		closuredb_release(&db);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "closuredb-split") && argc > 3) {
		/* closuredb-split DIR TOP... < DUMP: host i's file in DIR for
		 * each TOP (a fleet's per-host dumps) */
		struct closuredb db = CLOSUREDB_INIT;
		char *text = test_tool_read_stdin();
		int ret = 1;
		if (closuredb_parse(text, &db))
			printf("not a dump\n");
		else
			ret = closuredb_split(&db, argv[2], (const char *const *)argv + 3,
					      (size_t)argc - 3) ? 1 : 0;
		closuredb_release(&db);
		free(text);
		return ret;
	}
	if (!strcmp(cmd, "serve-query")) {
		/* serve-query PATH...: the handshake and query we send, in hex */
		struct strvec paths = STRVEC_INIT;
		struct strbuf out = STRBUF_INIT;
		for (int i = 2; i < argc; i++)
			strvec_push(&paths, argv[i]);
		serveproto_hello_query(&out, &paths, 1, 0);
		for (size_t i = 0; i < out.len; i++)
			printf("%02x%s", (unsigned char)out.buf[i], i % 8 == 7 ? "\n" : "");
		strbuf_release(&out);
		strvec_clear(&paths);
		return 0;
	}
	if (!strcmp(cmd, "nar-sized") && argc == 4) {
		/* nar-sized PATH SIZE: PATH's NAR as sent to a receiver told it
		 * is SIZE bytes: how much was sent, and how it ended */
		struct narexport_path p = { argv[2], "", strtoull(argv[3], NULL, 10), "", 0, NULL };
		unsigned long long sent = 0, bytes = 0;
		char why[512] = "";
		int ret = narexport_nar(&p, count_sink, &sent, NULL, &bytes, why, sizeof(why));
		printf("sent %llu, %s%s%s\n", sent,
		       ret == NAREXPORT_MISMATCH ? "mismatch" : ret ? "failed" : "ok",
		       *why ? ": " : "", why);
		return 0;
	}
	if (!strcmp(cmd, "drain-pieces") && argc == 2) {
		/* stdin to its end through fd_drain, the buffer emptied after each
		 * piece as a line parser empties it: how many reads, the largest */
		struct strbuf sb = STRBUF_INIT;
		int fd = 0;
		size_t reads = 0, most = 0;
		while (fd >= 0) {
			fd_drain(&fd, &sb, -1);
			reads += sb.len > 0;
			most = sb.len > most ? sb.len : most;
			strbuf_reset(&sb);
		}
		printf("reads=%zu most=%zu\n", reads, most);
		strbuf_release(&sb);
		return 0;
	}
	if (!strcmp(cmd, "fiber-stopped") && argc == 2) {
		/* a fiber waits for a line on a pipe while the outside sleeps
		 * 1.5 s (the test stops and continues us then), then the line
		 * comes: what the fiber's wait said */
		int p[2], ret = -1;
		if (pipe(p))
			return 1;
		struct fiber *f = fiber_new(wait_readable_fiber, &p[0], -1, 2);
		if (!f)
			return 1;
		printf("ready\n");
		fflush(stdout);
		fiber_sleep_ms(1500);
		if (write(p[1], "y\n", 2) != 2)
			return 1;
		while (!fiber_done(f, &ret))
			fiber_sleep_ms(10);
		fiber_free(f);
		printf("fiber: %s\n", ret ? "interrupted" : "read its line");
		return 0;
	}
	if (!strcmp(cmd, "spawn-interrupted") && argc > 2) {
		/* as spawn, after an interrupt the handler took: a child
		 * started then (to clean up) runs to its end */
		struct child c = CHILD_INIT;
		struct nrr_err e = { 0 };
		run_signals_install();
		raise(SIGINT);
		for (int i = 2; i < argc; i++)
			strvec_push(&c.args, argv[i]);
		c.in = c.out = CHILD_NULL;
		if (child_start(&c, &e))
			printf("start: %s\n", e.msg);
		else
			printf("interrupted %d, status %d\n", run_interrupted(), child_wait(&c));
		child_clear(&c);
		return 0;
	}
	if (!strcmp(cmd, "spawn") && argc > 2) {
		/* spawn CMD ARG...: CMD started as every child is (stdin and
		 * stdout /dev/null), waited for; what child_start said, or the
		 * status */
		struct child c = CHILD_INIT;
		struct nrr_err e = { 0 };
		for (int i = 2; i < argc; i++)
			strvec_push(&c.args, argv[i]);
		c.in = c.out = CHILD_NULL;
		if (child_start(&c, &e))
			printf("start: %s\n", e.msg);
		else
			printf("status %d\n", child_wait(&c));
		child_clear(&c);
		return 0;
	}
	if (!strcmp(cmd, "rundir") && argc == 4) {
		/* rundir PREFIX MAX: the directory rundir_make made, left
		 * for the caller to look at and remove */
		char *dir = rundir_make(argv[2], strtoul(argv[3], NULL, 10));
		if (!dir) {
			perror("rundir_make");
			return 1;
		}
		printf("%s\n", dir);
		free(dir);
		return 0;
	}
	if (!strcmp(cmd, "nar-splice") && argc == 4) {
		/* nar-splice PATH SIZE | ...: PATH's NAR, registered at SIZE
		 * bytes, with its big files spliced into stdout (a pipe); on
		 * stderr, how much went and how it ended */
		struct narexport_path p = { argv[2], "", strtoull(argv[3], NULL, 10), "", 0, NULL };
		unsigned long long bytes = 0, spliced = 0;
		char why[512] = "";
		int ret = narexport_nar_files(&p, to_stdout, splice_stdout, &spliced, NULL, &bytes,
					      why, sizeof(why));
		fflush(stdout);
		fprintf(stderr, "sent %llu (%llu spliced), %s%s%s\n", bytes, spliced,
			ret == NAREXPORT_MISMATCH ? "mismatch" : ret ? "failed" : "ok",
			*why ? ": " : "", why);
		return 0;
	}
	if (!strcmp(cmd, "nar-dump") && argc == 3) {
		/* nar-dump PATH: its NAR, as nix-store --dump writes it */
		char why[512];
		if (narexport_dump(argv[2], to_stdout, NULL, why, sizeof(why))) {
			fprintf(stderr, "nar-dump: %s\n", why);
			return 1;
		}
		return fflush(stdout) ? 1 : 0;
	}
	if (!strcmp(cmd, "export-check") && argc > 3) {
		/* export-check CHUNK PATH... < STREAM: STREAM checked as the
		 * relay checks it, fed CHUNK bytes at a time; how much of it
		 * would be forwarded, and how it ended */
		size_t chunk = strtoull(argv[2], NULL, 10), len = 0, sent = 0;
		struct exportcheck ck;
		char *text;
		struct strbuf sb = STRBUF_INIT;
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
			strbuf_add(&sb, buf, n);
		len = sb.len;
		text = strbuf_detach(&sb);
		exportcheck_init(&ck, (const char *const *)argv + 3, (size_t)argc - 3);
		while (sent < len && !ck.failed) {
			size_t take = chunk && len - sent > chunk ? chunk : len - sent;
			sent += exportcheck_feed(&ck, text + sent, take);
		}
		printf("forward %zu of %zu\n", sent, len);
		if (exportcheck_finish(&ck))
			printf("refused: %s\n", ck.why);
		else
			printf("ok: %zu entries\n", ck.entries);
		exportcheck_release(&ck);
		free(text);
		return 0;
	}
	if (!strcmp(cmd, "closurecache") && argc > 3) {
		/* closurecache get SYSTEM: the cached closure, or why not;
		 * closurecache put SYSTEM < "PATH SIZE" lines: keep them */
		struct strvec closure = STRVEC_INIT;
		unsigned long long *sizes = NULL;
		if (!strcmp(argv[2], "put")) {
			char *text = test_tool_read_stdin(), path[4096];
			unsigned long long size, *sz = NULL;
			int off = 0, n;
			while (sscanf(text + off, "%4095s %llu%n", path, &size, &n) == 2) {
				strvec_push(&closure, path);
				sz = xrealloc(sz, closure.nr * sizeof(*sz));
				sz[closure.nr - 1] = size;
				off += n;
			}
			closurecache_put(argv[3], closure.v, sz, closure.nr);
			free(sz);
			free(text);
		} else if (closurecache_get(argv[3], &closure, &sizes)) {
			printf("not cached\n");
		}
		for (size_t i = 0; sizes && i < closure.nr; i++)
			printf("%s %llu\n", closure.v[i], sizes[i]);
		free(sizes);
		strvec_clear(&closure);
		return 0;
	}
	fprintf(stderr, "test-tool: unknown command '%s'\n", cmd);
	return 2;
}
