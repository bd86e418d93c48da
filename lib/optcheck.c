/*
 * optcheck: see optcheck.h.
 */
#include "optcheck.h"
#include "action.h"
#include "pushto.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails with "WHAT is only supported with" the actions that have needs. */
static int only_with(const char *what, unsigned needs, int quote,
		     struct nrr_err *e)
{
	struct strbuf sb = STRBUF_INIT;
	action_list(&sb, needs, quote);
	nrr_fail(e, NRR_EUSAGE, "%s %s", what, sb.buf);
	strbuf_release(&sb);
	return e->status;
}

/* Names that become path components on the target, and lines of the
 * deploy conversation: one component, one line. */
static int check_component(const char *what, const char *v, int path,
			   struct nrr_err *e)
{
	if (!v)
		return 0;
	if (strpbrk(v, "\n\r"))
		return nrr_fail(e, NRR_EUSAGE, "%s: a line break is not allowed", what);
	if (path && (!*v || strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, "..")))
		return nrr_fail(e, NRR_EUSAGE, "%s '%s': must be a name, not a path",
				what, v);
	return 0;
}

int options_check(struct options *o, struct nrr_err *e)
{
	unsigned needs = o->act ? o->act->needs : 0;

	if (check_component("--profile-name", strcmp(o->profile_name, "system") ? o->profile_name : NULL, 1, e) ||
	    check_component("--specialisation", o->specialisation, 1, e) ||
	    check_component("--image-variant", o->image_variant, 1, e) ||
	    check_component("--store-path", o->store_path, 0, e) ||
	    check_component("--target-user", o->target_user, 0, e))
		return e->status;
	if (!o->action)
		return 0;
	if ((o->target_host || o->build_host) && !(needs & AN_HOSTS))
		return nrr_fail(e, NRR_EUSAGE,
				"--target-host/--build-host is not supported with '%s'",
				o->action);
	if (o->build_host && !(needs & AN_BUILDS))
		return nrr_fail(e, NRR_EUSAGE,
				"--build-host is not supported with '%s'", o->action);
	if (o->flake && (o->file || o->attr))
		return nrr_fail(e, NRR_EUSAGE,
				"--flake cannot be used with --file or --attr");
	if ((o->file || o->attr) && !(needs & AN_FILE_ATTR))
		return nrr_fail(e, NRR_EUSAGE,
				"--file and --attr are not supported with '%s'", o->action);
	if (o->store_path) {
		if (o->rollback)
			return nrr_fail(e, NRR_EUSAGE,
					"--store-path cannot be used with --rollback");
		if (o->flake || o->file || o->attr)
			return nrr_fail(e, NRR_EUSAGE,
					"--store-path cannot be used with --flake, --file or --attr");
		/* build --store-path P --target-host T only copies (apply push);
		 * dry-build's is the plan for T (dry-build --on) */
		if (!(needs & AN_ACTIVATES) && ((strcmp(o->action, "build") &&
						  strcmp(o->action, "dry-build")) || !o->target_host))
			return only_with("--store-path is only supported with",
					 AN_ACTIVATES, 0, e);
	}
	if (o->rollback && !(needs & AN_ROLLBACK))
		return nrr_fail(e, NRR_EUSAGE,
				"--rollback is incompatible with '%s'", o->action);
	/* a rollback shows no diff to ask about, and arms no watchdog: said
	 * here, not silently left out */
	if (o->rollback && (o->ask || o->confirm_timeout))
		return nrr_fail(e, NRR_EUSAGE, "--rollback cannot be used with %s",
				o->ask ? "--ask" : "--magic-rollback");
	/* boot would set a profile that boots without the specialisation:
	 * refuse it before building; elsewhere it has nothing to act on */
	if (o->specialisation && !(needs & AN_SPECIALISATION)) {
		if (needs & AN_ACTIVATES)
			return only_with("'--specialisation' can only be used with",
					 AN_SPECIALISATION, 1, e);
		strvec_pushf(&o->warnings, "--specialisation has no effect with '%s'",
			     o->action);
	}
	if ((needs & AN_IMAGE_VARIANT) && !o->image_variant)
		return nrr_fail(e, NRR_EUSAGE,
				"'%s' needs --image-variant VARIANT", o->action);
	if (o->confirm_timeout && !(needs & AN_MAGIC_ROLLBACK))
		return only_with("--magic-rollback is only for", AN_MAGIC_ROLLBACK, 1, e);
	if (o->reboot_timeout && !o->reboot)
		return nrr_fail(e, NRR_EUSAGE, "--reboot-timeout goes with --reboot");
	if (o->reboot && !(needs & AN_SETS_PROFILE))
		return only_with("--reboot is only for", AN_SETS_PROFILE, 1, e);
	if (o->reboot && !o->target_host && !o->on)
		return nrr_fail(e, NRR_EUSAGE,
				"--reboot needs --target-host: this tool does not reboot the machine it runs on");
	if (o->on) {
		if (!(needs & AN_FLEET))
			return only_with("--on is for", AN_FLEET, 0, e);
		if (o->target_host || o->build_host || o->store_path || o->rollback ||
		    o->file || o->attr)
			return nrr_fail(e, NRR_EUSAGE,
					"--on names the targets itself: it goes without --target-host, "
					"--build-host, --store-path, --rollback, --file and --attr");
		if (!o->flake)
			o->flake = ".";
	} else if (o->target_user || o->parallel != 10 || o->eval_jobs) {
		return nrr_fail(e, NRR_EUSAGE, "--target-user, --parallel and --eval-jobs go with --on");
	}
	if (pushto_check_options(o, e))
		return e->status;
	if (o->confirm_timeout && !o->target_host && !o->on)
		return nrr_fail(e, NRR_EUSAGE,
				"--magic-rollback needs --target-host: it proves the target still answers ssh");
	/* Under run0 the watchdog would live in the transient unit's cgroup,
	 * which ends with the activation script (and with the dropped link it
	 * is there for), and its token would be root's (no SUDO_UID), which the
	 * login user's confirmation cannot remove: every deploy would roll back. */
	if (o->confirm_timeout && o->elevate == ELEVATE_RUN0)
		return nrr_fail(e, NRR_EUSAGE,
				"--magic-rollback cannot go with --elevate run0: its watchdog "
				"would not outlive the activation there; use sudo or log in as root");
	if (o->copy_direct && (!o->build_host || !o->target_host))
		return nrr_fail(e, NRR_EUSAGE,
				"--copy-direct needs both --build-host and --target-host");
	if (o->ask_password && o->elevate == ELEVATE_NONE) {
		strvec_push(&o->warnings,
			    "--ask-elevate-password without --elevate implies --elevate=sudo");
		o->elevate = ELEVATE_SUDO;
	}
	if (o->diff == 1 && (needs & AN_NO_DIFF))
		strvec_pushf(&o->warnings, "--diff has no effect with '%s'",
			     o->action);
	if (o->upgrade && o->flake)
		strvec_push(&o->warnings,
			    "--upgrade has no effect with flakes: update the flake's inputs instead");
	if (o->no_build_output) {
		/* classic builds are quiet; flake builds make no ./result */
		strvec_push(&o->nix_classic, "--no-build-output");
	}
	return 0;
}
