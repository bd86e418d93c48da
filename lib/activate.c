#include "activate.h"
#include "closure.h"
#include "nix.h"
#include "pkgdiff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>

/* Statuses the script keeps for itself; switch-to-configuration uses small
 * ones (1 failure, 2 bad arguments, 4 units failed, 100 reboot needed). */
#define ST_NOT_NIXOS 240
#define ST_NO_STC 241
#define ST_NO_SPEC 242
#define ST_PROFILE 243
#define ST_MISSING 244
#define ST_ARCH 245
#define ST_INCOMPLETE 246	/* paths missing: printed on stdout */
#define ST_QUERY 247
#define ST_ROLLED_BACK 248	/* activation failed and was undone */

/*
 * The deploy conversation on the target (see session.h). $1: who we are,
 * for a second deploy's error message. Then, on stdin, one per line:
 *  act   switch-to-configuration's argument, or "" (profile only)
 *  top   the new system          prof  the profile
 *  spec  specialisation or ""    ib    NIXOS_INSTALL_BOOTLOADER (0/1)
 *  op    keep | set | rollback   diff  1: send the closures to diff
 *  ask   1: then wait for "activate" (anything else: change nothing)
 *  nocheck, dirty: the deployer's NIXOS_REBUILD_I_UNDERSTAND_..._BREAK_MY_SYSTEM
 *        and NIXOS_SWITCH_USE_DIRTY_ENV (ssh and sudo would not pass them on)
 *  novalidate  1: skip the kernel/init/architecture checks
 *  subst 1: let the target substitute what it lacks first
 *  plan  1: report the target's nix settings, so that the deployer can ask
 *        its caches and send "fetch" with the paths they serve
 *  confirm  seconds: arm a watchdog that restores the running system and
 *        the profile unless a fresh connection removes $token in time
 *  token the watchdog's token file
 * then the closure, one path a line, ended by ".". We answer "ready
 * MACHINE" (uname -m) once the lock is ours, the paths the target lacks ended by "." (then wait for
 * "go" while they are sent), and "status N" after activation; then we hold
 * the lock until the deployer hangs up.
 */
static const char activate_script[] =
	"PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin\n"
	/* root's lock lives where only root writes: a user cannot hold it */
	"lock=/run/nixos-rebuild-remote.lock\n"
	"[ -w /run ] || lock=${TMPDIR:-/tmp}/nixos-rebuild-remote-$(id -u).lock\n"
	"if command -v flock >/dev/null 2>&1; then\n"
	"  [ -e \"$lock\" ] || (umask 022; : >>\"$lock\") 2>/dev/null\n"
	"  if exec 9<\"$lock\"; then\n"
	"    flock -n 9 || { echo \"busy $(cat \"$lock.holder\" 2>/dev/null)\"; exit 75; }\n"
	"    (umask 022; printf '%s\\n' \"$1\" >\"$lock.holder\") 2>/dev/null\n"
	"  fi 2>/dev/null\n"
	"fi\n"
	"echo \"ready $(uname -m 2>/dev/null)\"\n"
	"for v in act top prof spec ib op diff ask nocheck dirty novalidate subst plan confirm token; do\n"
	"  IFS= read -r \"$v\" || exit 0\n"
	"done\n"
	"paths=\n"
	"while IFS= read -r p && [ \"$p\" != . ]; do paths=\"$paths $p\"; done\n"
	"missing=\n"
	"if [ -n \"$paths\" ]; then\n"
	"  missing=$(nix-store --check-validity --print-invalid $paths) || exit 247\n"
	"  if [ -n \"$missing\" ] && [ \"$subst\" = 1 ]; then\n"
	"    nix-store --realise --keep-going $missing >/dev/null 2>&1\n"
	"    missing=$(nix-store --check-validity --print-invalid $paths) || exit 247\n"
	"  fi\n"
	"fi\n"
	/* with plan, what the target trusts: the deployer asks its caches */
	"if [ \"$plan\" = 1 ] && [ -n \"$missing\" ]; then\n"
	"  echo nixconf\n"
	"  { nix show-config --json 2>/dev/null || nix config show --json 2>/dev/null; } | tr -d '\\n'\n"
	"  echo\n"
	"fi\n"
	"while :; do\n"
	"  [ -z \"$missing\" ] || printf '%s\\n' \"$missing\"\n"
	"  echo .\n"
	"  [ -n \"$missing\" ] || break\n"
	"  IFS= read -r go || exit 0\n"
	"  [ \"$go\" = fetch ] || break\n"
	/* the paths its caches serve: fetched before the rest is sent, which
	 * may refer to them */
	"  fetch=\n"
	"  while IFS= read -r p && [ \"$p\" != . ]; do fetch=\"$fetch $p\"; done\n"
	"  nix-store --realise $fetch >&2 || echo \"could not substitute all of it\" >&2\n"
	"  missing=$(nix-store --check-validity --print-invalid $paths) || exit 247\n"
	"done\n"
	"if [ -n \"$missing\" ]; then\n"
	"  [ \"$go\" = go ] || exit 0\n"
	"  missing=$(nix-store --check-validity --print-invalid $paths) || exit 247\n"
	"  [ -z \"$missing\" ] || { echo \"still missing: $missing\" >&2; exit 247; }\n"
	"fi\n"
	"if [ \"$op\" = rollback ]; then\n"
	"  nix-env --rollback -p \"$prof\" >&2 || exit 243\n"
	"  top=$(readlink -f \"$prof\")\n"
	"fi\n"
	"stc=$top/bin/switch-to-configuration\n"
	"if [ -z \"$nocheck\" ] && [ ! -f \"$top/nixos-version\" ]; then\n"
	"  echo \"$top does not look like a NixOS system (no nixos-version)\" >&2; exit 240\n"
	"fi\n"
	"if [ -n \"$spec\" ]; then\n"
	"  stc=$top/specialisation/$spec/bin/switch-to-configuration\n"
	"  [ -d \"$top/specialisation/$spec\" ] || {\n"
	"    echo \"specialisation '$spec' does not exist in $top\" >&2\n"
	"    echo \"available: $(ls \"$top/specialisation\" 2>/dev/null | tr '\\n' ' ')\" >&2; exit 242; }\n"
	"fi\n"
	"if [ -n \"$act\" ] && [ ! -x \"$stc\" ]; then\n"
	"  echo \"$stc is missing\" >&2; exit 241\n"
	"fi\n"
	"if [ -z \"$novalidate\" ]; then\n"
	"  if [ \"$act\" = boot ] || [ \"$op\" = set ]; then\n"
	"    for f in kernel initrd init; do\n"
	"      [ -e \"$top/$f\" ] || { echo \"$top/$f is missing: the system would not boot\" >&2; exit 244; }\n"
	"    done\n"
	"  fi\n"
	"  if [ -r \"$top/system\" ]; then\n"
	"    sys=$(cat \"$top/system\") m=$(uname -m)\n"
	"    case $sys in\n"
	"    \"$m\"-*) ;;\n"
	"    i686-*) [ \"$m\" = x86_64 ] || { echo \"$sys $m\" >&2; exit 245; } ;;\n"
	"    *) echo \"$sys $m\" >&2; exit 245 ;;\n"
	"    esac\n"
	"  fi\n"
	"fi\n"
	/* the diff's two closures with their sizes, then maybe a question */
	"if [ \"$diff\" = 1 ]; then\n"
	"  cur=/run/current-system; [ \"$act\" != boot ] || cur=$prof\n"
	"  list() { [ -e \"$1\" ] || return 0; c=$(nix-store -qR \"$1\") || return 0\n"
	"    sizes=$(nix-store -q --size $c) || return 0; set -- $sizes\n"
	"    for p in $c; do printf '%s\\t%s\\n' \"$p\" \"$1\"; shift; done; }\n"
	"  echo diff-old; list \"$(readlink -f \"$cur\" 2>/dev/null)\"\n"
	"  echo diff-new; list \"$top\"\n"
	"  echo diff-end\n"
	"fi\n"
	"if [ \"$ask\" = 1 ]; then\n"
	"  IFS= read -r answer && [ \"$answer\" = activate ] || { echo \"status declined\"; exit 0; }\n"
	"fi\n"
	"old_gen=$(readlink \"$prof\" 2>/dev/null | sed -n 's/.*-\\([0-9][0-9]*\\)-link$/\\1/p')\n"
	"old_sys=$(readlink -f /run/current-system 2>/dev/null)\n"
	/* kept as text: the watchdog, another process, runs it too */
	"undo_script='[ \"$op\" != set ] || [ -z \"$old_gen\" ] ||\n"
	"    nix-env -p \"$prof\" --switch-generation \"$old_gen\" >&2\n"
	"  if [ -n \"$old_sys\" ] && [ -x \"$old_sys/bin/switch-to-configuration\" ]; then\n"
	"    if [ \"$op\" = set ]; then a=switch; else a=test; fi\n"
	"    env -i PATH=\"$PATH\" \"$old_sys/bin/switch-to-configuration\" \"$a\" >&2\n"
	"  fi'\n"
	"if [ -n \"$confirm\" ]; then\n"
	/* the token belongs to the login user, so that an unprivileged
	 * confirmation can remove it; the watchdog outlives this session */
	"  : > \"$token\" && chown \"${SUDO_UID:-$(id -u)}\" \"$token\" || exit 243\n"
	"  export prof op old_gen old_sys token confirm undo_script PATH\n"
	"  setsid sh -c 'sleep \"$confirm\"; [ -e \"$token\" ] || exit 0\n"
	"    rm -f \"$token\"; eval \"$undo_script\"' </dev/null >/dev/null 2>&1 9<&- &\n"
	"fi\n"
	"if [ \"$op\" = set ]; then\n"
	"  mkdir -p \"${prof%/*}\" && nix-env -p \"$prof\" --set \"$top\" >&2 || exit 243\n"
	"fi\n"
	"[ -n \"$act\" ] || { echo \"status 0\"; exec cat >/dev/null; }\n"
	"run_stc() {\n"
	"  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 &&\n"
	"     [ -z \"$dirty\" ]; then\n"
	"    env -i PATH=\"$PATH\" LOCALE_ARCHIVE=\"${LOCALE_ARCHIVE-}\" \\\n"
	"      NIXOS_NO_CHECK=\"${NIXOS_NO_CHECK-}\" NIXOS_INSTALL_BOOTLOADER=\"$ib\" \\\n"
	"      systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER -E NIXOS_NO_CHECK \\\n"
	"      --collect --no-ask-password --pipe --quiet --service-type=exec \\\n"
	"      --unit=nixos-rebuild-switch-to-configuration --wait \"$stc\" \"$act\"\n"
	"  else\n"
	"    env -i PATH=\"$PATH\" LOCALE_ARCHIVE=\"${LOCALE_ARCHIVE-}\" \\\n"
	"      NIXOS_NO_CHECK=\"${NIXOS_NO_CHECK-}\" NIXOS_INSTALL_BOOTLOADER=\"$ib\" \\\n"
	"      \"$stc\" \"$act\"\n"
	"  fi\n"
	"}\n"
	/* its output is the user's to read, on stderr: stdout is ours. It
	 * goes through a relay that keeps reading when our stderr is gone
	 * (Ctrl-C, a dropped link): an activation, once begun, runs to its
	 * end instead of dying of SIGPIPE half-way; the lock is held till then */
	"s=$( { { run_stc 9<&- 3>&- 2>&1; echo $? >&3; } |\n"
	"  { trap '' PIPE; cat >&2; exec cat >/dev/null; }; } 3>&1 )\n"
	"if [ $s != 0 ] && [ -n \"$confirm\" ]; then\n"
	"  rm -f \"$token\"; eval \"$undo_script\"; s=248\n"
	"fi\n"
	"new_gen=$(readlink \"$prof\" 2>/dev/null | sed -n 's/.*-\\([0-9][0-9]*\\)-link$/\\1/p')\n"
	"echo \"generation ${old_gen:--} ${new_gen:--}\"\n"
	"echo \"status $s\"\n"
	/* keep the lock until the deployer hangs up (after its confirmation) */
	"exec cat >/dev/null\n";

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
	case ST_NOT_NIXOS:
		nrr_fail(e, NRR_ECHECK, "'%s': %s", h->name, why);
		nrr_hint(e, "the closure lacks nixos-version; nothing was changed");
		break;
	case ST_NO_STC:
		nrr_fail(e, NRR_ECHECK, "'%s': %s", h->name, why);
		nrr_hint(e, "is this a NixOS system closure? nothing was changed");
		break;
	case ST_NO_SPEC:
		nrr_fail(e, NRR_ECHECK, "'%s': specialisation '%s' does not exist",
			 h->name, a->specialisation);
		break;
	case ST_MISSING:
		nrr_fail(e, NRR_ECHECK, "'%s': %s", h->name, why);
		nrr_hint(e, "nothing was changed; --no-validate skips this check");
		break;
	case ST_ARCH: {
		char sys[64] = "", mach[64] = "";
		sscanf(why, "%63s %63s", sys, mach);
		nrr_fail(e, NRR_ECHECK, "'%s' is a %s machine; the new system is built for %s",
			 h->name, mach, sys);
		nrr_hint(e, "nothing was changed; build for the target's platform "
			 "(nixpkgs.hostPlatform), or --no-validate to skip this check");
		break;
	}
	case ST_QUERY:
		nrr_fail(e, NRR_ECOPY, "cannot query the store of '%s': %s", h->name, why);
		break;
	case ST_PROFILE:
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

int activation_begin(struct activation_session *as, const struct host *h,
		     const struct elevation *el, const char *holder,
		     struct nrr_err *e)
{
	struct strbuf line = STRBUF_INIT;
	const char *args[] = { holder ? holder : "", NULL };
	int ret = 0;

	memset(as, 0, sizeof(*as));
	as->host = h;
	as->el = el;
	if (session_start(&as->s, h, el, activate_script, args, 2, e))
		return e->status;
	as->started = 1;
	if (session_line(&as->s, &line) || strncmp(line.buf, "ready", 5) ||
	    (line.buf[5] && line.buf[5] != ' ')) {
		if (!strncmp(line.buf, "busy", 4)) {
			const char *who = line.buf[4] ? line.buf + 5 : "";
			session_finish(&as->s);
			ret = nrr_fail(e, NRR_ELOCKED, "'%s' is being deployed to by %s",
				       h->name, *who ? who : "another run");
			nrr_hint(e, "nothing was changed; wait for it to finish, then try again");
		} else {
			struct activation none = { 0 };
			int st = session_finish(&as->s);
			ret = fail_from_status(h, el, &none, st, as->s.err.buf, e);
		}
		as->started = 0;
		session_release(&as->s);
	} else if (line.buf[5]) {
		snprintf(as->machine, sizeof(as->machine), "%s", line.buf + 6);
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
	int ret = 0;

	a->incomplete = 0;
	for (;;) {
		if (session_line(&as->s, &line)) {
			int st = session_finish(&as->s);
			as->started = 0;
			ret = fail_from_status(as->host, as->el, a, st, as->s.err.buf, e);
			break;
		}
		if (!strcmp(line.buf, "."))
			break;
		if (!strcmp(line.buf, "nixconf")) {
			if (!session_line(&as->s, &line) && a->nixconf)
				strbuf_add(a->nixconf, line.buf, line.len);
			continue;
		}
		if (a->missing)
			strvec_push(a->missing, line.buf);
		a->incomplete = 1;
	}
	strbuf_release(&line);
	return ret;
}

int activation_offer(struct activation_session *as, struct activation *a,
		     struct nrr_err *e)
{
	static const char *const ops[] = { "keep", "set", "rollback" };
	struct strbuf msg = STRBUF_INIT;
	char confirm[32] = "";
	int ret = 0;

	if (a->confirm_seconds > 0)
		snprintf(confirm, sizeof(confirm), "%d", a->confirm_seconds);
	send_line(&msg, a->action);
	send_line(&msg, a->toplevel);
	send_line(&msg, a->profile);
	send_line(&msg, a->specialisation);
	send_line(&msg, a->install_bootloader ? "1" : "0");
	send_line(&msg, ops[a->op]);
	send_line(&msg, a->diff ? "1" : "0");
	send_line(&msg, a->ask ? "1" : "0");
	send_line(&msg, env_flag("NIXOS_REBUILD_I_UNDERSTAND_THE_CONSEQUENCES_PLEASE_BREAK_MY_SYSTEM"));
	send_line(&msg, env_flag("NIXOS_SWITCH_USE_DIRTY_ENV"));
	send_line(&msg, a->no_validate ? "1" : "");
	send_line(&msg, a->substitute == 1 ? "1" : "");
	send_line(&msg, a->substitute == 2 || a->plan ? "1" : "");
	send_line(&msg, confirm);
	send_line(&msg, a->token);
	for (size_t i = 0; a->closure && i < a->closure->nr; i++)
		send_line(&msg, a->closure->v[i]);
	send_line(&msg, ".");
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

/* Reads "PATH\tSIZE" lines up to the line end into c. */
static int read_closure(struct session *s, const char *end,
			struct pkgdiff_closure *c)
{
	struct strbuf line = STRBUF_INIT;
	int ret = -1;
	while (!session_line(s, &line)) {
		if (!strcmp(line.buf, end)) {
			ret = 0;
			break;
		}
		char *tab = strchr(line.buf, '\t');
		if (tab)
			*tab++ = '\0';
		pkgdiff_closure_add(c, line.buf, tab ? strtoull(tab, NULL, 10) : 0);
	}
	strbuf_release(&line);
	return ret;
}

/*
 * The diff's closures arrive; the user's view of activation output waits
 * (it would otherwise run ahead of the diff), the caller shows the diff
 * and, with ask, decides. Returns 1 to activate, 0 to decline, -1 if the
 * script stopped.
 */
static int handle_diff(struct activation_session *as, struct activation *a)
{
	struct pkgdiff_closure old = PKGDIFF_CLOSURE_INIT, new = PKGDIFF_CLOSURE_INIT;
	struct pkgdiff d = PKGDIFF_INIT;
	size_t mark = as->s.err.len;
	int echo = as->s.echo_fd, go = 1;

	as->s.echo_fd = -1;
	if (read_closure(&as->s, "diff-new", &old) ||
	    read_closure(&as->s, "diff-end", &new)) {
		go = -1;
	} else {
		pkgdiff_compute(&d, &old, &new);
		if (a->on_diff)
			go = a->on_diff(a->on_diff_data, as->host->name, &d);
		if (a->ask)
			session_send(&as->s, go ? "activate\n" : "no\n", go ? 9 : 3);
	}
	if (echo >= 0 && as->s.err.len > mark &&
	    write(echo, as->s.err.buf + mark, as->s.err.len - mark) < 0) {
		/* the user's terminal is gone: nothing to tell it */
	}
	as->s.echo_fd = echo;
	pkgdiff_release(&d);
	pkgdiff_closure_release(&old);
	pkgdiff_closure_release(&new);
	return go;
}

int activation_go(struct activation_session *as, struct activation *a,
		  struct nrr_err *e)
{
	struct strbuf line = STRBUF_INIT;
	int ret = 0, st = -1, declined = 0;

	if (a->incomplete)
		session_send(&as->s, "go\n", 3);
	while (!session_line(&as->s, &line)) {
		if (!strcmp(line.buf, "diff-old")) {
			if (handle_diff(as, a) == 0)
				declined = 1;
			continue;
		}
		if (!strncmp(line.buf, "generation ", 11)) {
			char *p = line.buf + 11;
			a->gen_before = atoi(p);	/* "-": none */
			p += strcspn(p, " ");
			a->gen_after = atoi(p);
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
	if (declined) {
		ret = nrr_fail(e, NRR_EDECLINED, "not activated on '%s': declined; nothing was changed",
			       as->host->name);
	} else if (st < 0 && run_interrupted()) {
		/* we hung up, not the target: what had begun there goes on */
		session_finish(&as->s);
		as->started = 0;
		ret = nrr_fail(e, NRR_EINT, "interrupted while activating on '%s', where an "
			       "activation that had begun runs to its end", as->host->name);
	} else if (st < 0) {
		/* it stopped before activating: a check said no */
		st = session_finish(&as->s);
		as->started = 0;
		ret = fail_from_status(as->host, as->el, a, st, as->s.err.buf, e);
	} else if (st == ST_ROLLED_BACK) {
		ret = nrr_fail(e, NRR_EROLLEDBACK,
			       "activation ('switch-to-configuration %s') on '%s' failed; "
			       "it was rolled back to the previous system",
			       a->action, as->host->name);
	} else if (st) {
		ret = nrr_fail(e, NRR_EACTIVATE,
			       "activation ('switch-to-configuration %s') on '%s' failed with status %d",
			       a->action ? a->action : "", as->host->name, st);
		nrr_hint(e, "the profile may already point to the new system; "
			 "'--rollback' goes back");
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
	int ret = activation_begin(&as, h, el, holder, e);

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
