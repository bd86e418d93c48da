#include "activate.h"
#include "closure.h"
#include "nix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * Positional parameters, named on the script's second line:
 *  act   switch-to-configuration's argument, or "" (profile only)
 *  top   the new system          prof  the profile
 *  spec  specialisation or ""    ib    NIXOS_INSTALL_BOOTLOADER (0/1)
 *  op    keep | set | rollback   diff  1: nix store diff-closures first
 *  nocheck, dirty: the deployer's NIXOS_REBUILD_I_UNDERSTAND_..._BREAK_MY_SYSTEM
 *        and NIXOS_SWITCH_USE_DIRTY_ENV (ssh and sudo would not pass them on)
 *  novalidate  1: skip the kernel/init/architecture checks
 *  check 1: the closure comes on stdin; if the target lacks paths, print
 *        them and stop (ST_INCOMPLETE) before anything changes, so that a
 *        deploy with nothing to copy is this one command
 *  subst 1: with check, let the target substitute what it lacks first
 *  confirm  seconds: arm a watchdog that restores the running system and
 *        the profile unless a fresh connection removes $token in time
 *  token the watchdog's token file
 */
static const char activate_script[] =
	"PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin\n"
	"act=$1 top=$2 prof=$3 spec=$4 ib=$5 op=$6 diff=$7 nocheck=$8 dirty=$9\n"
	"novalidate=${10} check=${11} subst=${12} confirm=${13} token=${14}\n"
	"if [ \"$check\" = 1 ]; then\n"
	"  paths=$(cat)\n"
	"  if [ -n \"$paths\" ]; then\n"
	"    missing=$(nix-store --check-validity --print-invalid $paths) || exit 247\n"
	"    if [ -n \"$missing\" ] && [ \"$subst\" = 1 ]; then\n"
	"      nix-store --realise --keep-going $missing >/dev/null 2>&1\n"
	"      missing=$(nix-store --check-validity --print-invalid $paths) || exit 247\n"
	"    fi\n"
	"    [ -z \"$missing\" ] || { printf '%s\\n' \"$missing\"; exit 246; }\n"
	"  fi\n"
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
	"if [ \"$diff\" = 1 ] && [ -e /run/current-system ]; then\n"
	"  nix --extra-experimental-features nix-command store diff-closures \\\n"
	"    \"$(readlink -f /run/current-system)\" \"$top\" >&2 || :\n"
	"fi\n"
	/* what a rollback goes back to: the generation and system of now */
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
	"    rm -f \"$token\"; eval \"$undo_script\"' </dev/null >/dev/null 2>&1 &\n"
	"fi\n"
	"if [ \"$op\" = set ]; then\n"
	"  mkdir -p \"${prof%/*}\" && nix-env -p \"$prof\" --set \"$top\" >&2 || exit 243\n"
	"fi\n"
	"[ -n \"$act\" ] || exit 0\n"
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
	/* its output is the user's to read, on stderr: stdout is ours */
	"run_stc >&2; s=$?\n"
	"if [ $s != 0 ] && [ -n \"$confirm\" ]; then\n"
	"  rm -f \"$token\"; eval \"$undo_script\"; exit 248\n"
	"fi\n"
	"exit $s\n";

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

int activate(const struct host *h, const struct elevation *el,
	     struct activation *a, struct nrr_err *e)
{
	static const char *const ops[] = { "keep", "set", "rollback" };
	struct strbuf err = STRBUF_INIT, out = STRBUF_INIT, in = STRBUF_INIT;
	char confirm[32] = "";
	if (a->confirm_seconds > 0)
		snprintf(confirm, sizeof(confirm), "%d", a->confirm_seconds);
	const char *args[] = {
		a->action ? a->action : "", a->toplevel ? a->toplevel : "",
		a->profile, a->specialisation ? a->specialisation : "",
		a->install_bootloader ? "1" : "0", ops[a->op],
		a->diff ? "1" : "0",
		env_flag("NIXOS_REBUILD_I_UNDERSTAND_THE_CONSEQUENCES_PLEASE_BREAK_MY_SYSTEM"),
		env_flag("NIXOS_SWITCH_USE_DIRTY_ENV"),
		a->no_validate ? "1" : "", a->closure ? "1" : "",
		a->substitute ? "1" : "", confirm,
		a->token ? a->token : "", NULL };
	char why[512];
	const char *step = a->action ? a->action : "profile";

	a->incomplete = 0;
	if (a->closure)
		for (size_t i = 0; i < a->closure->nr; i++)
			strbuf_addf(&in, "%s\n", a->closure->v[i]);
	/* activation output is the user's to see, as with nixos-rebuild;
	 * the script keeps stdout for the paths the target lacks */
	int st = host_run(h, el, step, activate_script, args,
			  a->closure ? in.buf : NULL, in.len, &out, &err, 2, e);
	strbuf_release(&in);
	if (st < 0)
		goto done;
	if (st == ST_INCOMPLETE && a->missing) {
		split_lines(out.buf, a->missing);
		a->incomplete = 1;
		st = 0;
		goto done;
	}
	nix_error_summary(err.buf, why, sizeof(why));
	if (st == 1 && el && el->kind == ELEVATE_SUDO && sudo_refused(err.buf)) {
		size_t n;
		const char *l = last_line(err.buf, &n);
		nrr_fail(e, NRR_ECHECK, "sudo on '%s' refused: %.*s", h->name,
			 (int)n, l);
		if (el->password)
			nrr_hint(e, "wrong password? nothing was changed");
		else
			nrr_hint(e, "sudo wants a password: add --ask-elevate-password (-S); nothing was changed");
		goto done;
	}
	switch (st) {
	case 0:
		break;
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
	case ST_ROLLED_BACK:
		nrr_fail(e, NRR_EROLLEDBACK,
			 "activation ('switch-to-configuration %s') on '%s' failed; "
			 "it was rolled back to the previous system", a->action, h->name);
		break;
	case ST_PROFILE:
		nrr_fail(e, NRR_EACTIVATE, "setting the profile '%s' on '%s' failed: %s",
			 a->profile, h->name, why);
		break;
	default:
		nrr_fail(e, NRR_EACTIVATE,
			 "activation ('switch-to-configuration %s') on '%s' failed with status %d",
			 a->action ? a->action : "", h->name, st);
		nrr_hint(e, "the profile may already point to the new system; "
			 "'--rollback' goes back");
		break;
	}
done:
	strbuf_release(&err);
	strbuf_release(&out);
	if (st < 0)
		return e->status;
	return st ? e->status : 0;
}
