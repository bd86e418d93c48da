/*
 * test-tool's commands for the colmena remote steps (lib/keys.c, ...),
 * run against real test hosts (tests/keys.bats): each connects to its
 * hosts as the tool would (resolve, one master each), runs one module's
 * step, and prints what it did, or "error(STATUS): MESSAGE" and exits
 * with STATUS.
 *
 *   keys-check < JSON                    check deployment.keys, print the names
 *   keys-upload HOST pre|post|all [sudo [PASSWORD]] < JSON
 *                                        load and upload the keys (pre: owners
 *                                        may come later)
 *   keys-in-conversation HOST < JSON     the keys step inside another script's
 *                                        conversation, lines read before and after
 *   remote-exec [-p N] HOST... -- CMD... run CMD on every HOST (lib/exec.c)
 *   remote-exec-lines NAME [final] < TEXT
 *                                        exec_prefix_lines of TEXT
 *   remote-profile-guard HOST [force]    probe HOST (query.sh), then
 *                                        profile_guard_check its system
 *   remote-reboot HOST TIMEOUT [EXPECT]  reboot HOST and wait (lib/reboot.c),
 *                                        then run a command over its master
 *   keys-no-copy TEXT                    TEXT and 200 kB after it read from a
 *                                        child into a strbuf, plain and then
 *                                        secret (as a hive's key texts come
 *                                        from nix): how many blocks we freed
 *                                        still held TEXT (test-tool links with
 *                                        --wrap=free,--wrap=realloc: every
 *                                        free and move of ours is looked at)
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/closure.h"
#include "../lib/exec.h"
#include "../lib/host.h"
#include "../lib/keys.h"
#include "../lib/profileguard.h"
#include "../lib/reboot.h"
#include "../lib/scripts.h"
#include "../lib/session.h"
#include "../lib/ssh.h"

int test_tool_remote(int argc, const char **argv);

char *test_tool_read_stdin(void);	/* test-tool.c */

static int report(int st, const struct nrr_err *e)
{
	if (st) {
		printf("error(%d): %s\n", st, e->msg);
		if (e->hint[0])
			printf("hint: %s\n", e->hint);
	}
	return st;
}

/* One host, resolved and connected, as the tool reaches it. */
struct conn {
	struct ssh_ctx ctx;
	struct ssh_host sh;
	struct host h;
	struct strvec warnings;	/* what ssh_ctx_init found odd (unused) */
};

static int conn_open(struct conn *c, const char *spec, struct nrr_err *e)
{
	memset(c, 0, sizeof(*c));
	if (ssh_ctx_init(&c->ctx, &c->warnings, e) || ssh_host_resolve(&c->ctx, spec, &c->sh, e) ||
	    ssh_host_connect(&c->ctx, &c->sh, e))
		return e->status;
	c->h.name = spec;
	c->h.ssh = &c->sh;
	c->h.ctx = &c->ctx;
	return 0;
}

static void conn_close(struct conn *c)
{
	ssh_host_release(&c->ctx, &c->sh);
	ssh_ctx_release(&c->ctx);
	strvec_clear(&c->warnings);
}

static int keys_json(struct keyset *ks, const char *node, struct nrr_err *e)
{
	char *text = test_tool_read_stdin();
	cJSON *j = cJSON_Parse(text);
	int st;

	free(text);
	if (!j)
		return nrr_fail(e, NRR_EUSAGE, "bad JSON");
	st = keys_from_json(ks, j, node, e);
	cJSON_Delete(j);
	return st;
}

static int cmd_keys_check(void)
{
	struct keyset ks = KEYSET_INIT;
	struct nrr_err e = { 0 };
	int st = keys_json(&ks, "node", &e);

	for (size_t i = 0; !st && i < ks.nr; i++)
		printf("%s %s %s:%s %s %s\n", ks.v[i].name, ks.v[i].dest_dir, ks.v[i].user,
		       ks.v[i].group, ks.v[i].permissions,
		       ks.v[i].upload_at == KEYS_POST ? "post" : "pre");
	keyset_release(&ks);
	return report(st, &e);
}

static int cmd_keys_upload(int argc, const char **argv)
{
	struct keyset ks = KEYSET_INIT;
	struct nrr_err e = { 0 };
	struct conn c;
	struct keys_result r;
	struct elevation el = { ELEVATE_NONE, NULL, STRVEC_INIT };
	int which = !strcmp(argv[2], "pre") ? KEYS_PRE :
		    !strcmp(argv[2], "post") ? KEYS_POST : KEYS_ALL;
	int st;

	if (argc > 3 && !strcmp(argv[3], "sudo")) {
		el.kind = ELEVATE_SUDO;
		el.password = argc > 4 ? argv[4] : NULL;
	}
	st = keys_json(&ks, argv[1], &e);
	if (!st)
		st = keys_load(&ks, which, argv[1], &e);
	if (st) {
		keyset_release(&ks);
		return report(st, &e);
	}
	st = conn_open(&c, argv[1], &e);
	if (!st)
		st = keys_upload(&c.h, &el, &ks, which, which == KEYS_PRE, &r, &e);
	if (!st)
		printf("written=%d fixed=%d pending=%d unchanged=%d\n", r.written, r.fixed,
		       r.pending, r.unchanged);
	conn_close(&c);
	keyset_release(&ks);
	return report(st, &e);
}

/* As the activation would hook it: the keys functions before a script of
 * its own that reads stdin before and after keys_receive. */
static int cmd_keys_in_conversation(const char **argv)
{
	struct keyset ks = KEYSET_INIT;
	struct nrr_err e = { 0 };
	struct conn c;
	struct session s;
	struct keys_result r;
	struct strbuf script = STRBUF_INIT, line = STRBUF_INIT;
	const char *args[] = { NULL };
	int st = keys_json(&ks, argv[1], &e);

	if (!st)
		st = keys_load(&ks, KEYS_ALL, argv[1], &e);
	if (!st)
		st = conn_open(&c, argv[1], &e);
	if (st) {
		keyset_release(&ks);
		return report(st, &e);
	}
	strbuf_addf(&script, "%s\nIFS= read -r a; echo \"before: $a\"\n"
		    "keys_receive || exit $?\nIFS= read -r b; echo \"after: $b\"\nkeys_fixup\n",
		    script_keys);
	if (!session_start(&s, &c.h, NULL, script.buf, args, 2, &e)) {
		session_send(&s, "one\n", 4);
		if (!session_line(&s, &line))
			printf("%s\n", line.buf);
		st = keys_answer(&s, &ks, KEYS_ALL, 1, 0, &r, &e);
		if (!st)
			printf("written=%d\n", r.written);
		session_send(&s, "two\n", 4);
		if (!session_line(&s, &line))
			printf("%s\n", line.buf);
		printf("status %d\n", session_finish(&s));
		session_release(&s);
	}
	strbuf_release(&script);
	strbuf_release(&line);
	conn_close(&c);
	keyset_release(&ks);
	return report(st, &e);
}

static int cmd_exec(int argc, const char **argv)
{
	struct ssh_ctx ctx;
	struct nrr_err e = { 0 };
	struct ssh_host *hosts;
	struct exec_target *t;
	int i = 1, parallel = 0, n = 0, st;

	if (argc > 2 && !strcmp(argv[1], "-p")) {
		parallel = atoi(argv[2]);
		i = 3;
	}
	hosts = calloc((size_t)argc, sizeof(*hosts));
	t = calloc((size_t)argc, sizeof(*t));
	struct strvec warnings = STRVEC_INIT;
	st = ssh_ctx_init(&ctx, &warnings, &e);
	for (; !st && i < argc && strcmp(argv[i], "--"); i++, n++) {
		t[n].name = argv[i];
		t[n].ssh = &hosts[n];
		st = ssh_host_resolve(&ctx, argv[i], &hosts[n], &e);
	}
	if (!st) {
		run_signals_install();
		st = exec_run(&ctx, t, (size_t)n, i < argc ? argv + i + 1 : NULL, parallel, 1, 2, &e);
	}
	fflush(stdout);
	for (int k = 0; k < n; k++) {
		printf("%s: %d%s%s\n", t[k].name, t[k].status, t[k].status ? " " : "",
		       t[k].status ? t[k].err.msg : "");
		ssh_host_release(&ctx, &hosts[k]);
	}
	ssh_ctx_release(&ctx);
	strvec_clear(&warnings);
	free(hosts);
	free(t);
	return report(st, &e);
}

static int cmd_exec_lines(int argc, const char **argv)
{
	struct strbuf in = STRBUF_INIT, out = STRBUF_INIT;
	char *text = test_tool_read_stdin();

	strbuf_addstr(&in, text);
	exec_prefix_lines(&out, argv[1], &in, argc > 2);
	printf("%s[rest:%s]\n", out.buf, in.buf);
	free(text);
	strbuf_release(&in);
	strbuf_release(&out);
	return 0;
}

static int cmd_profile_guard(int argc, const char **argv)
{
	struct nrr_err e = { 0 };
	struct conn c;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	struct strvec warnings = STRVEC_INIT;
	const char *none[] = { NULL };
	int st = conn_open(&c, argv[1], &e);

	if (!st) {
		st = host_run(&c.h, NULL, "profile", script_profile, none, NULL, 0,
			      &out, &err, -1, &e);
		if (st > 0)
			st = nrr_fail(&e, NRR_EFAIL, "profile.sh failed on '%s'", argv[1]);
	}
	if (!st) {
		strbuf_rtrim(&out);
		printf("system=%s\n", out.buf);
		st = profile_guard_check(argv[1], out.buf, argc > 2, &warnings, &e);
	}
	for (size_t i = 0; i < warnings.nr; i++)
		printf("warning: %s\n", warnings.v[i]);
	if (!st)
		printf("ok\n");
	strbuf_release(&out);
	strbuf_release(&err);
	strvec_clear(&warnings);
	conn_close(&c);
	return report(st < 0 ? e.status : st, &e);
}

static int cmd_reboot(int argc, const char **argv)
{
	struct nrr_err e = { 0 };
	struct conn c;
	struct reboot_result r;
	struct reboot_opts o = { atoi(argv[2]), 1, argc > 3 ? argv[3] : NULL };
	int st = conn_open(&c, argv[1], &e);

	memset(&r, 0, sizeof(r));
	run_signals_install();
	if (!st)
		st = reboot_host(&c.h, NULL, &o, &r, &e);
	if (!st) {
		struct strbuf out = STRBUF_INIT;
		const char *args[] = { NULL };
		printf("back: new boot id %s, system %s\n", r.new_boot_id, r.system ? r.system : "");
		/* later steps go through the master again */
		st = host_run(&c.h, NULL, "check", "echo master ok", args, NULL, 0, &out, NULL, -1, &e);
		printf("%s", out.buf);
		strbuf_release(&out);
	}
	reboot_result_release(&r);
	conn_close(&c);
	return report(st < 0 ? e.status : st, &e);
}

/* test-tool links with -Wl,--wrap=free,--wrap=realloc: each free() and
 * realloc() of our code comes here first, and counts the blocks given
 * back that still hold the watched text. A test program's globals:
 * nothing else reads them. */
void __real_free(void *p);
void __wrap_free(void *p);
static const char *watched;
static size_t freed_holding;

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static int holds(void *p)
{
	return p && watched && memmem(p, malloc_usable_size(p), watched, strlen(watched));
}

void __wrap_free(void *p)
{
	freed_holding += holds(p);
	__real_free(p);
}

/* a block that moves is freed as it was */
void *__wrap_realloc(void *p, size_t n)
{
	int held = holds(p);
	void *moved = __real_realloc(p, n);
	if (moved && moved != p)
		freed_holding += held;
	return moved;
}

/* How many blocks freed while TEXT (and 200 kB after it, so that the
 * buffer grows a dozen times) is read from a child into sb and sb is
 * released. */
static size_t freed_with(struct strbuf *sb, const char *text)
{
	struct child c = CHILD_INIT;
	struct capture cap = CAPTURE_INIT;
	struct nrr_err e;

	strvec_pushl(&c.args, "sh", "-c", "printf %s \"$1\"; head -c 200000 /dev/zero", "sh",
		     text, NULL);
	cap.out = sb;
	freed_holding = 0;
	watched = text;
	int st = child_capture(&c, &cap, &e);
	strbuf_release(sb);
	watched = NULL;
	child_clear(&c);
	return st ? (size_t)-1 : freed_holding;
}

static int no_copy(const char *text)
{
	struct strbuf plain = STRBUF_INIT, secret;

	strbuf_init_secret(&secret);
	printf("plain: %zu\n", freed_with(&plain, text));
	printf("secret: %zu\n", freed_with(&secret, text));
	return 0;
}

int test_tool_remote(int argc, const char **argv)
{
	const char *cmd = argv[0];

	if (!strcmp(cmd, "keys-no-copy") && argc == 2)
		return no_copy(argv[1]);

	if (!strcmp(cmd, "keys-in-conversation") && argc >= 2)
		return cmd_keys_in_conversation(argv);
	if (!strcmp(cmd, "remote-reboot") && argc >= 3)
		return cmd_reboot(argc, argv);

	if (!strcmp(cmd, "remote-profile-guard") && argc >= 2)
		return cmd_profile_guard(argc, argv);

	if (!strcmp(cmd, "remote-exec"))
		return cmd_exec(argc, argv);
	if (!strcmp(cmd, "remote-exec-lines") && argc >= 2)
		return cmd_exec_lines(argc, argv);

	if (!strcmp(cmd, "keys-check"))
		return cmd_keys_check();
	if (!strcmp(cmd, "keys-upload") && argc >= 3)
		return cmd_keys_upload(argc, argv);
	fprintf(stderr, "test-tool: bad use of '%s'\n", cmd);
	return 2;
}
