#define _GNU_SOURCE
#include "ssh.h"
#include "fiber.h"
#include "quote.h"
#include "rundir.h"
#include "strbuf.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <poll.h>
#include <sys/inotify.h>
#endif

/* Unix socket paths hold about 104 bytes; ssh adds ".XXXXXXXXXXXXXXXX"
 * while binding. Keep the directory well below that. */
#define MAX_CTL_DIR 60

int ssh_ctx_init(struct ssh_ctx *ctx, struct strvec *warnings,
		 struct nrr_err *e)
{
	const char *why = NULL;
	const char *s = getenv("NIX_SSHOPTS");

	memset(ctx, 0, sizeof(*ctx));
	strvec_init(&ctx->opts);
	strvec_init(&ctx->default_opts);
	if (s && split_cmdline(s, &ctx->opts, &why))
		return nrr_fail(e, NRR_EUSAGE, "cannot split NIX_SSHOPTS: %s", why);
	s = getenv("NIXOS_REBUILD_SSH_DEFAULT_OPTS");
	if (s) {
		ctx->use_default_opts = 1;
		if (split_cmdline(s, &ctx->default_opts, &why))
			return nrr_fail(e, NRR_EUSAGE,
					"cannot split NIXOS_REBUILD_SSH_DEFAULT_OPTS: %s",
					why);
	}
	for (size_t i = 0; i < ctx->opts.nr; i++) {
		const char *o = ctx->opts.v[i];
		if (!strcmp(o, "-t") || !strcmp(o, "-tt") ||
		    !strncasecmp(o, "RequestTTY=", 11))
			strvec_pushf(warnings, "NIX_SSHOPTS asks for a tty (%s): "
				     "remote commands never use one", o);
	}
	return 0;
}

static int make_ctl_dir(struct ssh_ctx *ctx, struct nrr_err *e)
{
	if (ctx->ctl_dir)
		return 0;
	ctx->ctl_dir = rundir_make("nrr", MAX_CTL_DIR);
	if (!ctx->ctl_dir)
		return nrr_fail(e, NRR_EFAIL,
				"cannot create a directory for ssh control sockets in /tmp: %s",
				strerror(errno));
	return 0;
}

/* Unlinks each host's file of the control directory that ends in suffix. */
static void unlink_each(const struct ssh_ctx *ctx, const char *suffix)
{
	for (int i = 0; i < ctx->nhosts + 1; i++) {
		char *p = xstrfmt("%s/%d%s", ctx->ctl_dir, i, suffix);
		unlink(p);
		free(p);
	}
}

void ssh_ctx_release(struct ssh_ctx *ctx)
{
	if (ctx->ctl_dir) {
		/* only our masters' error logs live here, and the leftovers of
		 * sockets that a master's end did not remove (it removes its
		 * own): those are looked for only when the directory is not
		 * empty without them (a fleet's every host releases one, and
		 * its every failed unlink was a system call) */
		unlink_each(ctx, ".err");
		if (rmdir(ctx->ctl_dir)) {
			unlink_each(ctx, "");
			unlink_each(ctx, ".nix");
			rmdir(ctx->ctl_dir);
		}
		free(ctx->ctl_dir);
		ctx->ctl_dir = NULL;
	}
	strvec_clear(&ctx->opts);
	strvec_clear(&ctx->default_opts);
}

static void push_ssh_base(struct ssh_ctx *ctx, struct strvec *argv)
{
	strvec_push(argv, "ssh");
	strvec_pushvec(argv, &ctx->opts);
	if (ctx->use_default_opts)
		strvec_pushvec(argv, &ctx->default_opts);
}

/* Shows a command line; our remote scripts are long, so only their start. */
static void trace(struct ssh_ctx *ctx, const struct strvec *argv)
{
	if (!ctx->trace)
		return;
	struct strbuf sb = STRBUF_INIT;
	sq_quote_argv(&sb, argv->v);
	if (sb.len > 300)
		strbuf_setlen(&sb, 300), strbuf_addstr(&sb, " ...");
	for (size_t i = 0; i < sb.len; i++)
		if (sb.buf[i] == '\n')
			sb.buf[i] = ' ';
	fprintf(stderr, "$ %s\n", sb.buf);
	strbuf_release(&sb);
}

int ssh_host_resolve(struct ssh_ctx *ctx, const char *spec,
		     struct ssh_host *h, struct nrr_err *e)
{
	struct child c = CHILD_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int ret = 0;

	memset(h, 0, sizeof(*h));
	child_init(&h->master_proc);
	if (ssh_check_name(spec, e))
		return e->status;
	h->spec = xstrdup(spec);
	push_ssh_base(ctx, &c.args);
	strvec_pushl(&c.args, "-G", "-T", "--", spec, NULL);
	trace(ctx, &c.args);
	struct capture cap = CAPTURE_INIT;
	cap.out = &out;
	cap.err = &err;
	int st = child_capture(&c, &cap, e);
	if (st < 0) {
		ret = e->status;
	} else if (st != 0 || ssh_config_parse(out.buf, &h->cfg)) {
		size_t n;
		const char *l = last_line(err.buf, &n);
		ret = nrr_fail(e, NRR_EUSAGE,
			       "cannot resolve host '%s' with ssh -G: %.*s", spec,
			       (int)n, n ? l : "no user, hostname or port");
		nrr_hint(e, "check your ssh config and NIX_SSHOPTS");
		ssh_config_release(&h->cfg);
		free(h->spec);
		h->spec = NULL;
	}
	child_clear(&c);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

int ssh_host_same(const struct ssh_host *a, const struct ssh_host *b)
{
	return a->cfg.port == b->cfg.port &&
	       !strcmp(a->cfg.user, b->cfg.user) &&
	       !strcasecmp(a->cfg.hostname, b->cfg.hostname);
}

char *ssh_host_address(const struct ssh_host *h)
{
	return xstrfmt("%s@%s:%d", h->cfg.user, h->cfg.hostname, h->cfg.port);
}

char *ssh_host_lost_reason(const struct ssh_host *h)
{
	if (h->master != MASTER_OURS || !h->errpath)
		return NULL;
	char *text = read_file_text(h->errpath), *reason = NULL;
	const char *p = strstr(text, "not responding");
	if (p) {
		const char *start = p;
		while (start > text && start[-1] != '\n')
			start--;
		reason = xstrndup(start, strcspn(start, "\r\n"));
	}
	free(text);
	return reason;
}

void ssh_hint_not_responding(const struct ssh_host *h, struct nrr_err *e)
{
	nrr_hint(e, "'%s' stopped answering; is it up, and its network? "
		 "(ServerAliveInterval and ServerAliveCountMax in your ssh config "
		 "set how long to wait)", h->spec);
}

/* 1 if our master has ended, with how in *si (si_code, si_status). */
static int master_ended(const struct ssh_host *h, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	if (h->master != MASTER_OURS || h->master_proc.pid <= 0)
		return 0;
	/* WNOWAIT: its status stays for stop_our_master to reap */
	if (waitid(P_PID, h->master_proc.pid, si, WEXITED | WNOHANG | WNOWAIT))
		return errno == ECHILD;
	return si->si_pid != 0;
}

int ssh_host_alive(const struct ssh_host *h)
{
	siginfo_t si;
	return !master_ended(h, &si);
}

int ssh_host_killed(const struct ssh_host *h)
{
	siginfo_t si;
	if (!master_ended(h, &si) || (si.si_code != CLD_KILLED && si.si_code != CLD_DUMPED))
		return 0;
	return si.si_status;
}

void ssh_host_end_text(const struct ssh_host *h, char *buf, size_t size)
{
	int sig = ssh_host_killed(h);
	if (sig)
		snprintf(buf, size, "its ssh connection ended: ssh was killed on this machine (%s)",
			 strsignal(sig));
	else
		snprintf(buf, size, "its ssh connection ended");
}

void ssh_hint_killed(const struct ssh_host *h, struct nrr_err *e)
{
	nrr_hint(e, "'%s' did not end it: something on this machine did, a kill "
		 "or the out-of-memory killer", h->spec);
}

void ssh_hint_ended(const struct ssh_host *h, struct nrr_err *e)
{
	if (ssh_host_killed(h))
		ssh_hint_killed(h, e);
	else
		ssh_hint_not_responding(h, e);
}

int ssh_host_lost(const struct ssh_host *h, const char *whilst, struct nrr_err *e)
{
	char *addr = ssh_host_address(h), how[128];

	ssh_host_end_text(h, how, sizeof(how));
	nrr_fail(e, NRR_ECONNECT, "lost '%s' (%s)%s: %s", h->spec, addr, whilst, how);
	free(addr);
	return NRR_ECONNECT;
}

int ssh_connect_error(const struct ssh_host *h, const char *text,
		      struct nrr_err *e)
{
	size_t n;
	const char *l = last_line(text, &n);
	char *addr = ssh_host_address(h);
	char *lost = ssh_host_lost_reason(h);

	if (lost) {
		nrr_fail(e, NRR_ECONNECT, "lost '%s' (%s): %s", h->spec, addr, lost);
		ssh_hint_not_responding(h, e);
		free(lost);
		free(addr);
		return NRR_ECONNECT;
	}
	if (!n && !ssh_host_alive(h)) {
		/* a session through a master that ended says nothing */
		ssh_host_lost(h, "", e);
		ssh_hint_ended(h, e);
		free(addr);
		return NRR_ECONNECT;
	}
	nrr_fail(e, NRR_ECONNECT, "cannot reach '%s' (%s): %.*s", h->spec,
		 addr, (int)n, n ? l : "ssh failed");
	if (strstr(text, "Host key verification failed") ||
	    strstr(text, "REMOTE HOST IDENTIFICATION HAS CHANGED") ||
	    strstr(text, "No ED25519 host key is known") ||
	    strstr(text, "host key is known"))
		nrr_hint(e, "the host key of '%s' is unknown or has changed; "
			 "verify it, then add it to known_hosts (e.g. ssh %s true)",
			 h->spec, h->spec);
	else if (strstr(text, "Permission denied"))
		nrr_hint(e, "ssh refused the login as '%s'; check the user and key "
			 "(ssh -v %s true)", h->cfg.user, h->spec);
	else if (strstr(text, "timed out"))
		nrr_hint(e, "is '%s' up, with sshd listening on port %d? "
			 "(ConnectTimeout in your ssh config sets how long to wait)",
			 h->cfg.hostname, h->cfg.port);
	else if (strstr(text, "Connection refused") ||
		 strstr(text, "No route") || strstr(text, "Could not resolve"))
		nrr_hint(e, "is '%s' up, with sshd listening on port %d?",
			 h->cfg.hostname, h->cfg.port);
	free(addr);
	return NRR_ECONNECT;
}

/* ssh -O check: does a master answer on path? */
static int master_alive(struct ssh_ctx *ctx, const struct ssh_host *h,
			const char *path)
{
	struct child c = CHILD_INIT;
	struct nrr_err e;
	push_ssh_base(ctx, &c.args);
	strvec_pushf(&c.args, "-oControlPath=%s", path);
	strvec_pushl(&c.args, "-O", "check", "--", h->spec, NULL);
	c.out = CHILD_NULL;
	c.err = CHILD_NULL;
	c.in = CHILD_NULL;
	int st = child_start(&c, &e) ? -1 : child_wait(&c);
	child_clear(&c);
	return st == 0;
}

static void sleep_ms(long ms)
{
	fiber_sleep_ms(ms);
}

/* Starts the user's own persistent master (ssh -f returns once it is up). */
static int start_users_master(struct ssh_ctx *ctx, struct ssh_host *h,
			      struct nrr_err *e)
{
	struct child c = CHILD_INIT;
	struct strbuf err = STRBUF_INIT;
	push_ssh_base(ctx, &c.args);
	strvec_pushl(&c.args, "-oControlMaster=yes", "-f", "-N", "-T", "--",
		     h->spec, NULL);
	trace(ctx, &c.args);
	/* the backgrounded master keeps stderr: give it no pipe of ours */
	char *errpath = xstrfmt("%s/%d.err", ctx->ctl_dir, ctx->nhosts);
	c.err = CHILD_FD;
	c.err_fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	c.out = CHILD_NULL;
	struct capture cap = CAPTURE_INIT;
	int st = c.err_fd < 0 ? -1 : child_capture(&c, &cap, e);
	child_clear(&c);
	if (st != 0) {
		char *text = read_file_text(errpath);
		ssh_connect_error(h, text, e);
		free(text);
	}
	free(errpath);
	strbuf_release(&err);
	return st == 0 ? 0 : NRR_ECONNECT;
}

static int start_our_master(struct ssh_ctx *ctx, struct ssh_host *h,
			    struct nrr_err *e)
{
	struct child *c = &h->master_proc;

	h->errpath = xstrfmt("%s/%d.err", ctx->ctl_dir, ctx->nhosts);
	child_init(c);
	push_ssh_base(ctx, &c->args);
	strvec_pushf(&c->args, "-oControlPath=%s", h->control_path);
	/* bounds, unless the user's config sets its own: connecting never
	 * hangs, and a host that stops answering is given up (they act in
	 * the master, which carries every session) */
	if (!h->cfg.connect_timeout_set)
		strvec_push(&c->args, "-oConnectTimeout=30");
	if (!h->cfg.server_alive_set)
		strvec_pushl(&c->args, "-oServerAliveInterval=15",
			     "-oServerAliveCountMax=4", NULL);
	/* measured (bench/run --compression): zlib costs ~6% on an unlimited
	 * link, gains 6% at 100 Mbit/s and 36% at 20 Mbit/s; a NAR compresses
	 * ~2.5:1. So: on for hosts that are not near (NIX_SSHOPTS, before us
	 * on the command line, can say otherwise) */
	if (!h->cfg.compression && !ssh_host_is_near(h->cfg.hostname))
		strvec_push(&c->args, "-oCompression=yes");
	/* the target's nix-daemon, for a root login (lib/daemon.h): a
	 * socket of ours, 0600 (StreamLocalBindMask) in our 0700 directory;
	 * forwarded only once something connects to it */
	if (ctx->daemon_fwd && !strcmp(h->cfg.user, "root") && !strchr(ctx->ctl_dir, ':')) {
		h->daemon_path = xstrfmt("%s/%d.nix", ctx->ctl_dir, ctx->nhosts);
		strvec_push(&c->args, "-L");
		strvec_pushf(&c->args, "%s:/nix/var/nix/daemon-socket/socket", h->daemon_path);
	}
	strvec_pushl(&c->args, "-oControlMaster=yes", "-oControlPersist=no",
		     "-N", "-T", "--", h->spec, NULL);
	trace(ctx, &c->args);
	c->in = CHILD_NULL;
	c->out = CHILD_NULL;
	c->err = CHILD_FD;
	c->err_fd = open(h->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	c->die_with_parent = 1;
	if (c->err_fd < 0)
		return nrr_fail(e, NRR_EFAIL, "cannot create '%s': %s", h->errpath,
				strerror(errno));
	if (child_start(c, e))
		return e->status;
	h->master = MASTER_OURS;
	h->pending = 1;
	return 0;
}

/*
 * What wakes wait_our_master: a name made or a file written in the
 * socket's directory (inotify): the master links its socket there when it
 * is logged in, and writes its error file there before it gives up. So a
 * login of seconds (many hosts at once, a far one) costs a few wake-ups,
 * not one every 40 ms: with a fleet, those were a fifth of each host's
 * CPU here. Without inotify, ino is -1 and the caller polls as before.
 * (Not a pidfd for the master's end: valgrind knows no pidfd_open.)
 */
static int master_wake_open(const struct ssh_host *h)
{
	int ino = -1;
#ifdef __linux__
	const char *slash = strrchr(h->control_path, '/');
	if (!slash)
		return -1;
	char *dir = xstrndup(h->control_path, (size_t)(slash - h->control_path));
	ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ino >= 0 && inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO | IN_MODIFY) < 0) {
		close(ino);
		ino = -1;
	}
	free(dir);
#else
	(void)h;
#endif
	return ino;
}

/* Sleeps ms, or less when something happens in the directory ino watches.
 * Returns 1 when that woke it. */
static int master_wake_wait(int ino, long ms)
{
#ifdef __linux__
	if (ino >= 0) {
		struct pollfd pfd = { ino, POLLIN, 0 };
		char buf[4096];
		int woken = fiber_poll(&pfd, 1, (int)ms) > 0;
		if (woken)
			while (read(ino, buf, sizeof(buf)) > 0)
				;
		return woken;
	}
#endif
	sleep_ms(ms);
	return 0;
}

/* Waits until our master is logged in: it links its socket into place. */
static int wait_our_master(struct ssh_host *h, struct nrr_err *e)
{
	struct child *c = &h->master_proc;
	int ret = 0;

	h->pending = 0;
	/* before the first look: a socket made after it wakes us */
	int ino = master_wake_open(h);
	/*
	 * Woken by the directory, the looks between are for a master that
	 * ends without a word (killed) and for interrupts (which end the
	 * poll anyway): one a second. After its error file is written, the
	 * master ends in a moment: looks every few ms again, doubling. A
	 * fleet's host logging in for seconds wakes a few times, not a dozen
	 * (its wake-ups were a part of each host's CPU here).
	 */
	long cap = ino >= 0 ? 1000 : 40, ms = ino >= 0 ? cap : 2;
	for (;; ms = ms * 2 < cap ? ms * 2 : cap) {
		struct stat st;
		int status;
		if (!stat(h->control_path, &st))
			break;
		if (child_poll(c, &status)) {
			char *text = read_file_text(h->errpath);
			h->master = MASTER_NONE;
			ssh_connect_error(h, text, e);
			free(text);
			ret = NRR_ECONNECT;
			break;
		}
		if (run_interrupted()) {
			ret = nrr_fail(e, NRR_EINT, "interrupted while connecting to '%s'",
				       h->spec);
			break;
		}
		if (master_wake_wait(ino, ms))
			ms = 1;	/* something was written: look again soon */
	}
	if (ino >= 0)
		close(ino);
	return ret;
}

int ssh_host_connect_start(struct ssh_ctx *ctx, struct ssh_host *h,
			   struct nrr_err *e)
{
	int ret;

	if (h->connected || h->pending || ctx->use_default_opts) {
		if (!h->pending)
			h->connected = 1;
		return 0;
	}
	if ((ret = make_ctl_dir(ctx, e)))
		return ret;
	if (h->cfg.control_path) {
		if (master_alive(ctx, h, h->cfg.control_path)) {
			h->control_path = xstrdup(h->cfg.control_path);
			h->master = MASTER_USERS;
			h->connected = 1;
			return 0;
		}
		if (h->cfg.control_persist && strcmp(h->cfg.control_persist, "no") &&
		    h->cfg.control_master && strcmp(h->cfg.control_master, "false") &&
		    strlen(h->cfg.control_path) < 90) {
			if ((ret = start_users_master(ctx, h, e)))
				return ret;
			h->control_path = xstrdup(h->cfg.control_path);
			h->master = MASTER_USERS;
			h->connected = 1;
			ctx->nhosts++;
			return 0;
		}
	}
	h->control_path = xstrfmt("%s/%d", ctx->ctl_dir, ctx->nhosts);
	ret = start_our_master(ctx, h, e);
	ctx->nhosts++;
	return ret;
}

int ssh_host_connect_wait(struct ssh_host *h, struct nrr_err *e)
{
	int ret = 0;
	if (h->pending)
		ret = wait_our_master(h, e);
	if (!ret)
		h->connected = 1;
	return ret;
}

int ssh_host_connect(struct ssh_ctx *ctx, struct ssh_host *h,
		     struct nrr_err *e)
{
	int ret = ssh_host_connect_start(ctx, h, e);
	return ret ? ret : ssh_host_connect_wait(h, e);
}

/* Ends a master we own (if it still runs) and forgets it. */
static void stop_our_master(struct ssh_host *h)
{
	if (h->master == MASTER_OURS && h->master_proc.pid > 0) {
		/* our own child: a signal ends it at once, where `ssh -O exit`
		 * would cost a round trip to the server. ssh can miss a signal
		 * that lands just before it polls: say it again, then insist. */
		int status;
		for (int i = 0; i < 150 && !child_poll(&h->master_proc, &status); i++) {
			if (i % 20 == 0)
				child_kill(&h->master_proc, i < 100 ? SIGTERM : SIGKILL);
			sleep_ms(10);
		}
		if (h->master_proc.pid > 0) {
			child_kill(&h->master_proc, SIGKILL);
			child_wait(&h->master_proc);
		}
	}
	if (h->master == MASTER_OURS && h->control_path)
		unlink(h->control_path);
	if (h->daemon_path)
		unlink(h->daemon_path);
	free(h->daemon_path);
	h->daemon_path = NULL;
	child_clear(&h->master_proc);
}

void ssh_host_release(struct ssh_ctx *ctx, struct ssh_host *h)
{
	(void)ctx;
	stop_our_master(h);
	ssh_config_release(&h->cfg);
	free(h->spec);
	free(h->control_path);
	free(h->errpath);
	memset(h, 0, sizeof(*h));
	child_init(&h->master_proc);
}

int ssh_host_reconnect(struct ssh_ctx *ctx, struct ssh_host *h,
		       struct nrr_err *e)
{
	stop_our_master(h);
	child_init(&h->master_proc);
	free(h->control_path);
	free(h->errpath);
	h->control_path = h->errpath = NULL;
	h->master = MASTER_NONE;
	h->connected = h->pending = 0;
	return ssh_host_connect(ctx, h, e);
}

void ssh_host_argv(struct ssh_ctx *ctx, const struct ssh_host *h,
		   const char *command, struct strvec *argv)
{
	push_ssh_base(ctx, argv);
	if (h->control_path) {
		strvec_pushf(argv, "-oControlPath=%s", h->control_path);
		strvec_push(argv, "-oControlMaster=no");
	}
	strvec_pushl(argv, "-T", "--", h->spec, command, NULL);
	trace(ctx, argv);
}

void ssh_host_argv_fresh(struct ssh_ctx *ctx, const struct ssh_host *h,
			 const char *command, int timeout, struct strvec *argv)
{
	/* ssh keeps the first value it is given for an option: ours first */
	strvec_push(argv, "ssh");
	strvec_pushl(argv, "-oControlPath=none", "-oControlMaster=no", NULL);
	strvec_pushf(argv, "-oConnectTimeout=%d", timeout > 0 ? timeout : 1);
	strvec_pushvec(argv, &ctx->opts);
	if (ctx->use_default_opts)
		strvec_pushvec(argv, &ctx->default_opts);
	strvec_pushl(argv, "-T", "--", h->spec, command, NULL);
	trace(ctx, argv);
}
