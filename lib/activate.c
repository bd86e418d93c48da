#include "activate.h"
#include "fiber.h"
#include "pump.h"
#include "localdiff.h"
#include "closure.h"
#include "closurecache.h"
#include "narinfo.h"
#include "nix.h"
#include "pkgdiff.h"
#include "scripts.h"
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sodium.h>
#include <time.h>
#include <unistd.h>

/* The script (lib/scripts/activate.sh) and what we say to each other:
 * ACTIVATE_ST_* and ACTIVATE_F_* come from lib/scripts/activate.def. */

static const char *env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? "1" : "";
}

/* sudo's own refusals, before our script ran: nothing has changed. */
static int sudo_refused(const char *err)
{
	return strstr(err, "sudo: ") &&
	       (strstr(err, "incorrect password") || strstr(err, "no password was provided") ||
		strstr(err, "a terminal is required") || strstr(err, "a password is required") ||
		strstr(err, "is not in the sudoers") || strstr(err, "may not run sudo"));
}

char *profile_path(const char *name)
{
	if (!name || !strcmp(name, "system"))
		return xstrdup("/nix/var/nix/profiles/system");
	return xstrfmt("/nix/var/nix/profiles/system-profiles/%s", name);
}

static void send_line(struct strbuf *sb, const char *v)
{
	strbuf_addstr(sb, v ? v : "");
	strbuf_addch(sb, '\n');
}

/* What the profile holds after an activation that failed or was cut
 * off, by what the script does to it. */
static const char *profile_hint(const struct activation *a)
{
	switch (a->op) {
	case PROFILE_SET:
		return "the profile may already point to the new system; '--rollback' goes back";
	case PROFILE_ROLLBACK:
		return "the profile may already point to the generation it rolled back to";
	default:
		return "the profile was not changed: its system comes back at the next boot";
	}
}

/* The connection went after the script said "activating": the profile
 * may have changed, and what had begun there goes on. */
static int lost_while_activating(const struct activation_session *as,
				 const struct activation *a, struct nrr_err *e)
{
	char *lost = ssh_host_lost_reason(as->host->ssh);

	if (lost)
		nrr_fail(e, NRR_EACTIVATE, "lost the connection to '%s' while activating: %s",
			 as->host->name, lost);
	else
		nrr_fail(e, NRR_EACTIVATE, "lost the connection to '%s' while activating",
			 as->host->name);
	free(lost);
	if (a->token[0])
		nrr_hint(e, "the activation goes on there; unconfirmed, its watchdog goes back "
			 "to the previous system after %d s", a->confirm_seconds);
	else
		nrr_hint(e, "%s", profile_hint(a));
	return e->status;
}

/* Turns the script's early exit status into e. */
static int fail_from_status(const struct host *h, const struct elevation *el,
			    const struct activation *a, int st,
			    const char *errtext, struct nrr_err *e)
{
	char why[512];

	nix_error_summary(errtext, why, sizeof(why));
	if (st == 1 && el && el->kind == ELEVATE_SUDO && sudo_refused(errtext)) {
		size_t n;
		const char *l = last_line(errtext, &n);
		nrr_fail(e, NRR_ECHECK, "sudo on '%s' refused: %.*s", h->name,
			 (int)n, l);
		if (el->password)
			nrr_hint(e, "wrong password? nothing was changed");
		else
			nrr_hint(e, "sudo wants a password: add --ask-elevate-password (-S); nothing was changed");
		return e->status;
	}
	switch (st) {
	case ACTIVATE_ST_NOT_NIXOS:
		nrr_fail(e, NRR_ECHECK, "'%s': %s", h->name, why);
		nrr_hint(e, "the closure lacks nixos-version; nothing was changed");
		break;
	case ACTIVATE_ST_NO_STC:
		nrr_fail(e, NRR_ECHECK, "'%s': %s", h->name, why);
		nrr_hint(e, "is this a NixOS system closure? nothing was changed");
		break;
	case ACTIVATE_ST_NO_SPEC:
		nrr_fail(e, NRR_ECHECK, "'%s': specialisation '%s' does not exist",
			 h->name, a->specialisation);
		break;
	case ACTIVATE_ST_MISSING:
		nrr_fail(e, NRR_ECHECK, "'%s': %s", h->name, why);
		nrr_hint(e, "nothing was changed; --no-validate skips this check");
		break;
	case ACTIVATE_ST_ARCH: {
		char sys[64] = "", mach[64] = "";
		sscanf(why, "%63s %63s", sys, mach);
		/* "an aarch64", "an x86_64" (said "ex") */
		nrr_fail(e, NRR_ECHECK, "'%s' is %s %s machine; the new system is built for %s",
			 h->name, strchr("aeiox", mach[0]) && mach[0] ? "an" : "a", mach, sys);
		if (!strcmp(mach, "aarch64") && !strncmp(sys, "arm", 3))
			nrr_hint(e, "nothing was changed; an aarch64 machine runs a 32-bit ARM "
				 "system only if its CPU runs 32-bit code, which it shows by "
				 "running one already: --no-validate if you know it does");
		else
			nrr_hint(e, "nothing was changed; build for the target's platform "
				 "(nixpkgs.hostPlatform), or --no-validate to skip this check");
		break;
	}
	case ACTIVATE_ST_QUERY:
		nrr_fail(e, NRR_ECOPY, "cannot query the store of '%s': %s", h->name, why);
		break;
	case ACTIVATE_ST_TOKEN:
		nrr_fail(e, NRR_EACTIVATE, "cannot arm the --magic-rollback watchdog on '%s': %s",
			 h->name, why);
		nrr_hint(e, "the profile and the running system were not changed");
		break;
	case ACTIVATE_ST_PROFILE:
		nrr_fail(e, NRR_EACTIVATE, "setting the profile '%s' on '%s' failed: %s",
			 a->profile, h->name, why);
		break;
	case 255:
		if (h->ssh) {
			ssh_connect_error(h->ssh, errtext, e);
			nrr_prefix(e, a->action ? a->action : "activation");
			break;
		}
		/* fall through */
	default:
		nrr_fail(e, NRR_EFAIL, "the activation script on '%s' stopped with status %d: %s",
			 h->name, st, why);
		break;
	}
	return e->status;
}

int activation_start(struct activation_session *as, const struct host *h,
		     const struct elevation *el, const char *holder,
		     int with_keys, struct nrr_err *e)
{
	struct strbuf script = STRBUF_INIT;
	const char *args[] = { holder ? holder : "", NULL };
	int ret = 0;

	memset(as, 0, sizeof(*as));
	as->daemon = (struct daemon_conn)DAEMON_CONN_INIT;
	as->host = h;
	as->el = el;
	/* the keys' functions only when there are keys: the command stays
	 * as short as it was for the others */
	if (with_keys)
		strbuf_addf(&script, "%s\n", script_keys);
	strbuf_addstr(&script, script_activate);
	ret = session_start(&as->s, h, el, script.buf, args, 2, e);
	strbuf_release(&script);
	if (ret)
		return e->status;
	as->started = 1;
	/* its greeting is on the way while the script takes the lock */
	if (h->ssh && h->ssh->daemon_path)
		daemon_open(&as->daemon, h->ssh->daemon_path);
	return 0;
}

int activation_begin(struct activation_session *as, const struct host *h,
		     const struct elevation *el, const char *holder,
		     int with_keys, struct nrr_err *e)
{
	int ret = activation_start(as, h, el, holder, with_keys, e);
	return ret ? ret : activation_ready(as, e);
}

int activation_ready(struct activation_session *as, struct nrr_err *e)
{
	const struct host *h = as->host;
	const struct elevation *el = as->el;
	struct strbuf line = STRBUF_INIT;
	int ret = 0;

	if (session_line(&as->s, &line) || strncmp(line.buf, "ready", 5) ||
	    (line.buf[5] && line.buf[5] != ' ')) {
		if (!strncmp(line.buf, "busy", 4)) {
			const char *who = line.buf[4] ? line.buf + 5 : "";
			session_finish(&as->s);
			ret = nrr_fail(e, NRR_ELOCKED, "'%s' is being deployed to by %s",
				       h->name, *who ? who : "another run");
			nrr_hint(e, "nothing was changed; wait for it to finish, then try again");
		} else {
			/* nothing asked of it yet: the step is its lock */
			struct activation none = { .action = "taking the deploy lock" };
			int st = session_finish(&as->s);
			ret = fail_from_status(h, el, &none, st, as->s.err.buf, e);
		}
		as->started = 0;
		session_release(&as->s);
	} else if (line.buf[5]) {
		const char *m = line.buf + 6;
		char *sp = strchr(m, ' ');
		if (sp) {
			/* "ready MACHINE SYSTEM RUNNING", either may be "":
			 * profileguard.c judges SYSTEM */
			char *run = strchr(sp + 1, ' ');
			if (run) {
				*run++ = '\0';
				if (nix_store_path_valid(run))
					snprintf(as->running, sizeof(as->running), "%s", run);
			}
			snprintf(as->current, sizeof(as->current), "%s", sp + 1);
			*sp = '\0';
		}
		if (strspn(m, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
		    != strlen(m)) {
			char shown[256];
			ret = nrr_protocol(e, h->name, "its machine is not a word: '%s'",
					   nrr_printable(shown, sizeof(shown), m));
			session_finish(&as->s);
			as->started = 0;
			session_release(&as->s);
		} else {
			snprintf(as->machine, sizeof(as->machine), "%s", m);
		}
	}
	strbuf_release(&line);
	return ret;
}

/*
 * Reads what the target says it lacks, up to ".", into a->missing (and
 * its settings, when it sends them, into a->nixconf).
 */
static int read_missing(struct activation_session *as, struct activation *a,
			struct nrr_err *e)
{
	struct strbuf line = STRBUF_INIT;
	struct strvec lacks = STRVEC_INIT;
	int ret = 0;

	a->incomplete = 0;
	for (;;) {
		if (session_line(&as->s, &line)) {
			int st = session_finish(&as->s);
			as->started = 0;
			ret = fail_from_status(as->host, as->el, a, st, as->s.err.buf, e);
			break;
		}
		if (a->serve_asked && strcmp(line.buf, "serve")) {
			ret = serve_not_started(&as->s, line.buf, e);
			break;
		}
		if (!strcmp(line.buf, "."))
			break;
		if (a->serve && !strcmp(line.buf, "serve")) {
			/* checked against the closure there; nothing missing:
			 * the conversation goes on at once */
			a->served = 1;
			ret = a->serve_asked ?
			      serve_query_answer(&as->s, a->via_daemon ? &as->daemon : NULL, NULL,
						 a->closure, &lacks, e) :
			      serve_query(&as->s, a->via_daemon ? &as->daemon : NULL, NULL, a->closure,
					  a->substitute == 1, &lacks, e);
			if (!ret && !lacks.nr)
				ret = serve_end(&as->s, a->via_daemon, a->serve_token, e);
			break;
		}
		if (!strncmp(line.buf, "nixconf ", 8)) {
			if (a->nixconf)
				strbuf_addf(a->nixconf, "%s\n", line.buf + 8);
			continue;
		}
		strvec_push(&lacks, line.buf);
	}
	/* only what we offered: see closure_check_members */
	if (!ret && !(ret = closure_check_members(as->host, a->closure, &lacks, e))) {
		for (size_t i = 0; a->missing && i < lacks.nr; i++)
			strvec_push(a->missing, lacks.v[i]);
		a->incomplete = lacks.nr > 0;
	}
	strvec_clear(&lacks);
	strbuf_release(&line);
	return ret;
}

void activation_fields(const struct activation *a, int local_diff, struct strbuf *msg)
{
	static const char *const ops[] = { "keep", "set", "rollback" };
	static const char *const stages[] = { "", "pre", "post", "all" };
	char confirm[32] = "";
	int keys = 0;

	if (a->keys)
		keys = (keys_count(a->keys, KEYS_PRE & a->keys_which) ? KEYS_PRE : 0) |
		       (keys_count(a->keys, KEYS_POST & a->keys_which) ? KEYS_POST : 0);
	if (a->confirm_seconds > 0)
		snprintf(confirm, sizeof(confirm), "%d", a->confirm_seconds);
	const char *f[ACTIVATE_NFIELDS] = {
		[ACTIVATE_F_ACT] = a->action,
		[ACTIVATE_F_TOP] = a->toplevel,
		[ACTIVATE_F_PROF] = a->profile,
		[ACTIVATE_F_SPEC] = a->specialisation,
		[ACTIVATE_F_IB] = a->install_bootloader ? "1" : "0",
		[ACTIVATE_F_OP] = ops[a->op],
		[ACTIVATE_F_DIFF] = !a->diff ? "0" : local_diff ? "2" : "1",
		[ACTIVATE_F_ASK] = a->ask ? "1" : "0",
		[ACTIVATE_F_NOCHECK] = env_flag("NIXOS_REBUILD_I_UNDERSTAND_THE_CONSEQUENCES_PLEASE_BREAK_MY_SYSTEM"),
		[ACTIVATE_F_DIRTY] = env_flag("NIXOS_SWITCH_USE_DIRTY_ENV"),
		[ACTIVATE_F_NOVALIDATE] = a->no_validate ? "1" : "",
		[ACTIVATE_F_SUBST] = a->substitute == 1 ? "1" : "",
		[ACTIVATE_F_PLAN] = a->substitute == 2 || a->plan ? "1" : "",
		[ACTIVATE_F_CONFIRM] = confirm,
		[ACTIVATE_F_KEYS] = stages[keys],
		[ACTIVATE_F_SERVE] = a->serve ? a->serve_token : "",
	};
	for (size_t i = 0; i < ACTIVATE_NFIELDS; i++)
		send_line(msg, f[i]);
}

int activation_offer(struct activation_session *as, struct activation *a,
		     struct nrr_err *e)
{
	struct strbuf msg = STRBUF_INIT;
	int ret = 0;

	as->local_diff = a->diff && a->diff_from && a->closure && a->toplevel &&
			 a->op != PROFILE_ROLLBACK &&
			 !(a->action && !strcmp(a->action, "boot")) &&
			 !localdiff_prepare(a->diff_from, as->running, a->toplevel, a->closure,
					    a->closure_sizes, &as->diff_old, &as->diff_new);
	/* no diff made: a fleet's closure dump still gave the sizes, for free */
	if (!as->local_diff && a->closure && a->closure_sizes && a->toplevel &&
	    !closurecache_has(a->toplevel))
		closurecache_put(a->toplevel, a->closure->v, a->closure_sizes, a->closure->nr);
	a->served = 0;
	a->via_daemon = 0;
	a->daemon_why[0] = '\0';
	if (a->serve && a->serve_daemon && as->daemon.fd >= 0)
		/* the daemon's greeting decides, before the script is told */
		a->via_daemon = !daemon_hello(&as->daemon, 10000, a->daemon_why,
					      sizeof(a->daemon_why));
	if (!a->via_daemon)
		daemon_close(&as->daemon);
	if (a->serve) {
		unsigned char r[16];
		size_t at = (size_t)snprintf(a->serve_token, sizeof(a->serve_token), "%s",
					     a->via_daemon ? "daemon-" : "");
		randombytes_buf(r, sizeof(r));
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(a->serve_token + at + 2 * i, 3, "%02x", r[i]);
	}
	activation_fields(a, as->local_diff, &msg);
	for (size_t i = 0; a->closure && i < a->closure->nr; i++)
		send_line(&msg, a->closure->v[i]);
	send_line(&msg, ".");
	/* the script serves unless the profile holds the system already
	 * (activate.sh): known here for the system profile, whose system the
	 * lock's answer named. Then the query goes now, not after "serve" */
	a->serve_asked = a->serve && a->closure && a->closure->nr && a->toplevel && a->profile &&
			 !strcmp(a->profile, "/nix/var/nix/profiles/system") &&
			 as->current[0] && strcmp(as->current, a->toplevel);
	if (a->serve_asked &&
	    (ret = serve_query_ahead(&as->s, a->via_daemon ? &as->daemon : NULL, &msg, a->closure,
				     a->substitute == 1, e))) {
		strbuf_release(&msg);
		return ret;
	}
	session_send(&as->s, msg.buf, msg.len);
	ret = read_missing(as, a, e);
	strbuf_release(&msg);
	return ret;
}

int activation_fetch(struct activation_session *as, struct activation *a,
		     const struct strvec *paths, struct nrr_err *e)
{
	struct strbuf msg = STRBUF_INIT;
	int ret = 0;

	strbuf_addstr(&msg, "fetch\n");
	for (size_t i = 0; i < paths->nr; i++)
		strbuf_addf(&msg, "%s\n", paths->v[i]);
	strbuf_addstr(&msg, ".\n");
	session_send(&as->s, msg.buf, msg.len);
	if (a->missing)
		strvec_clear(a->missing);
	ret = read_missing(as, a, e);
	strbuf_release(&msg);
	return ret;
}

/* Reads "PATH\tSIZE" lines up to the line end into c. Returns 0, -1 if
 * the script stopped, or NRR_EPROTO (e filled) for a line that is not a
 * store path and a size: its text would reach the terminal. */
static int read_closure(struct activation_session *as, const char *end,
			struct pkgdiff_closure *c, struct nrr_err *e)
{
	struct strbuf line = STRBUF_INIT;
	int ret = -1;
	while (!session_line(&as->s, &line)) {
		if (!strcmp(line.buf, end)) {
			ret = 0;
			break;
		}
		char *tab = strchr(line.buf, '\t'), *endp = NULL;
		unsigned long long size = 0;
		if (tab) {
			*tab++ = '\0';
			size = strtoull(tab, &endp, 10);
		}
		if (!nix_store_path_valid(line.buf) || (tab && (endp == tab || *endp))) {
			char shown[256];
			ret = nrr_protocol(e, as->host->name, "a line of its closure is "
					   "not a store path and size: '%s'",
					   nrr_printable(shown, sizeof(shown), line.buf));
			break;
		}
		pkgdiff_closure_add(c, line.buf, size);
	}
	strbuf_release(&line);
	return ret;
}

/*
 * The diff's closures arrive; the user's view of activation output waits
 * (it would otherwise run ahead of the diff), the caller shows the diff
 * and, with ask, decides. Returns 1 to activate, 0 to decline, -1 if the
 * script stopped, -2 for a protocol error (e filled).
 */
static int handle_diff(struct activation_session *as, struct activation *a,
		       int local, struct nrr_err *e)
{
	struct pkgdiff_closure old = PKGDIFF_CLOSURE_INIT, new = PKGDIFF_CLOSURE_INIT;
	struct pkgdiff d = PKGDIFF_INIT;
	size_t mark = as->s.err.len;
	int echo = as->s.echo_fd, go = 1, r = 0;

	as->s.echo_fd = -1;
	if (local) {
		/* made at offer: taken over, freed below */
		old = as->diff_old;
		new = as->diff_new;
		pkgdiff_closure_init(&as->diff_old);
		pkgdiff_closure_init(&as->diff_new);
	} else {
		r = read_closure(as, "diff-new", &old, e);
		if (!r)
			r = read_closure(as, "diff-end", &new, e);
	}
	if (r) {
		go = r > 0 ? -2 : -1;
	} else {
		pkgdiff_compute(&d, &old, &new);
		if (a->on_diff)
			go = a->on_diff(a->on_diff_data, as->host->name, &d);
		if (a->ask)
			session_send(&as->s, go ? "activate\n" : "no\n", go ? 9 : 3);
	}
	if (echo >= 0 && as->s.err.len > mark &&
	    fd_write_all(echo, as->s.err.buf + mark, as->s.err.len - mark) < 0) {
		/* the user's terminal is gone: nothing to tell it */
	}
	as->s.echo_fd = echo;
	pkgdiff_release(&d);
	pkgdiff_closure_release(&old);
	pkgdiff_closure_release(&new);
	return go;
}

/* "OLD NEW", each a generation number or "-" (none), into a; -1 if not. */
static int parse_generations(const char *s, struct activation *a)
{
	int g[2];

	for (int i = 0; i < 2; i++) {
		if (*s == '-') {
			g[i] = 0;
			s++;
		} else {
			char *end;
			long v;
			if (*s < '0' || *s > '9')
				return -1;
			v = strtol(s, &end, 10);
			if (v > 1000000000)
				return -1;
			g[i] = (int)v;
			s = end;
		}
		if (*s != (i ? '\0' : ' '))
			return -1;
		s++;
	}
	a->gen_before = g[0];
	a->gen_after = g[1];
	return 0;
}

int activation_go(struct activation_session *as, struct activation *a,
		  struct nrr_err *e)
{
	struct strbuf line = STRBUF_INIT;
	int ret = 0, st = -1, declined = 0, proto = 0, keys_failed = 0, pre_done = 0;
	int activating = 0;	/* said so: the profile may change from now on */
	struct nrr_err keys_err = { 0 };

	if (a->incomplete && !a->served)
		session_send(&as->s, "go\n", 3);
	while (!session_line(&as->s, &line)) {
		int local = as->local_diff && !strcmp(line.buf, "diff-local");
		if (local || !strcmp(line.buf, "diff-old")) {
			int go = handle_diff(as, a, local, e);
			if (go == -2) {
				proto = 1;
				break;
			}
			if (go == 0)
				declined = 1;
			continue;
		}
		if (!strcmp(line.buf, "keys") && a->keys) {
			/* pre-activation keys first (when this conversation
			 * has them), then post-activation keys */
			int pre = (a->keys_which & KEYS_PRE) && !pre_done &&
				  keys_count(a->keys, KEYS_PRE);
			int which = pre ? KEYS_PRE : KEYS_POST;
			struct keys_result *kr = pre ? &a->keys_pre : &a->keys_post;
			pre_done |= pre;
			if (keys_answer(&as->s, a->keys, which, pre, 1, kr, &keys_err)) {
				keys_failed = 1;
				if (pre)
					break;	/* the script stops: nothing activated */
			}
			continue;
		}
		if (!strcmp(line.buf, "activating")) {
			activating = 1;
			continue;
		}
		if (!strncmp(line.buf, "generation ", 11)) {
			if (parse_generations(line.buf + 11, a)) {
				char shown[256];
				nrr_protocol(e, as->host->name, "its generations are not "
					     "numbers: '%s'",
					     nrr_printable(shown, sizeof(shown), line.buf));
				proto = 1;
				break;
			}
			continue;
		}
		if (!strncmp(line.buf, "token ", 6)) {
			const char *t = line.buf + 6;
			if (*t != '/' || strlen(t) >= sizeof(a->token) ||
			    strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789/._-") != strlen(t)) {
				char shown[256];
				nrr_protocol(e, as->host->name, "its confirmation token is not "
					     "a path: '%s'",
					     nrr_printable(shown, sizeof(shown), t));
				proto = 1;
				break;
			}
			snprintf(a->token, sizeof(a->token), "%s", t);
			a->token_time = time(NULL);
			continue;
		}
		if (!strcmp(line.buf, "status declined")) {
			declined = 1;
			st = 0;
			break;
		}
		if (!strncmp(line.buf, "status ", 7)) {
			st = atoi(line.buf + 7);
			break;
		}
	}
	if (proto) {
		/* it may have activated; what it says of it is not to be used */
		if (activating)
			nrr_hint(e, "a broken or hostile host: its answer was not used, but it "
				 "may have activated the new system (%s)",
				 a->confirm_seconds ? "and may go back to the previous one by itself" :
				 profile_hint(a));
		ret = e->status;
	} else if (keys_failed && st <= 0) {
		/* a key that could not be written: before activation nothing
		 * else changed; after it, the system is the new one */
		if (st < 0) {
			session_finish(&as->s);
			as->started = 0;
			nrr_hint(&keys_err, "nothing was activated");
		} else {
			nrr_hint(&keys_err, "the new system is active; its post-activation keys are not all there");
		}
		*e = keys_err;
		ret = e->status;
	} else if (declined) {
		ret = nrr_fail(e, NRR_EDECLINED, "not activated on '%s': declined; nothing was changed",
			       as->host->name);
	} else if (st < 0 && run_interrupted()) {
		/* we hung up, not the target: what had begun there goes on */
		session_finish(&as->s);
		as->started = 0;
		ret = nrr_fail(e, NRR_EINT, "interrupted while activating on '%s', where an "
			       "activation that had begun runs to its end", as->host->name);
	} else if (st < 0) {
		/* it stopped before its status: a check said no, or (ssh's 255)
		 * the connection went, after which the activation may be
		 * under way */
		st = session_finish(&as->s);
		as->started = 0;
		if (st == 255 && activating && as->host->ssh)
			ret = lost_while_activating(as, a, e);
		else
			ret = fail_from_status(as->host, as->el, a, st, as->s.err.buf, e);
	} else if (st == ACTIVATE_ST_ROLLED_BACK) {
		ret = nrr_fail(e, NRR_EROLLEDBACK,
			       "activation ('switch-to-configuration %s') on '%s' failed; "
			       "it was rolled back to the previous system",
			       a->action, as->host->name);
	} else if (st == ACTIVATE_ST_UNDO_FAILED) {
		ret = nrr_fail(e, NRR_EACTIVATE,
			       "activation ('switch-to-configuration %s') on '%s' failed, and going "
			       "back to the previous system failed too",
			       a->action, as->host->name);
		nrr_hint(e, "the target may run parts of both systems; see the output above");
	} else if (st) {
		ret = nrr_fail(e, NRR_EACTIVATE,
			       "activation ('switch-to-configuration %s') on '%s' failed with status %d",
			       a->action ? a->action : "", as->host->name, st);
		nrr_hint(e, "%s", profile_hint(a));
	}
	strbuf_release(&line);
	return ret;
}

void activation_end(struct activation_session *as)
{
	if (as->started)
		session_finish(&as->s);
	as->started = 0;
	session_release(&as->s);
	daemon_close(&as->daemon);
	pkgdiff_closure_release(&as->diff_old);
	pkgdiff_closure_release(&as->diff_new);
}

char *activation_holder(void)
{
	char host[256] = "?";
	struct passwd *pw = getpwuid(getuid());
	const char *user = pw ? pw->pw_name : getenv("USER");
	char when[32] = "";
	time_t now = time(NULL);
	struct tm tm;

	gethostname(host, sizeof(host) - 1);
	if (localtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	return xstrfmt("%s@%s (pid %ld) since %s", user && *user ? user : "?",
		       host, (long)getpid(), when);
}

int activate(const struct host *h, const struct elevation *el,
	     struct activation *a, struct nrr_err *e)
{
	struct activation_session as;
	char *holder = activation_holder();
	int ret = activation_begin(&as, h, el, holder, a->keys && a->keys->nr, e);

	free(holder);
	if (!ret)
		ret = activation_offer(&as, a, e);
	if (!ret && a->incomplete)
		ret = nrr_fail(e, NRR_ECOPY, "'%s' lacks %zu paths of the new system",
			       h->name, a->missing ? a->missing->nr : (size_t)0);
	if (!ret)
		ret = activation_go(&as, a, e);
	activation_end(&as);
	return ret;
}
