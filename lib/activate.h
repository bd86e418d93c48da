/*
 * activate: make a built system the running one, as nixos-rebuild does.
 *
 * One remote command does the whole of it (one round trip, one sudo
 * prompt): check that the closure is a NixOS system and has what the
 * action needs, set the profile (switch, boot), then run
 * switch-to-configuration ACTION, under systemd-run when the target has a
 * working systemd so that activation survives a dropped connection.
 *
 * The checks come before anything changes: when they fail, the profile and
 * the running system are as they were. The script reports which step
 * failed through reserved exit statuses (see activate.c).
 */
#ifndef NRR_ACTIVATE_H
#define NRR_ACTIVATE_H

#include "host.h"

enum profile_op {
	PROFILE_KEEP,		/* test, dry-activate */
	PROFILE_SET,		/* switch, boot: nix-env --set */
	PROFILE_ROLLBACK,	/* switch/boot --rollback: nix-env --rollback */
};

struct activation {
	const char *action;	/* switch-to-configuration's argument, or NULL
				 * to stop after the profile */
	const char *toplevel;	/* for PROFILE_ROLLBACK: unused */
	const char *profile;	/* full profile path */
	const char *specialisation; /* or NULL */
	int install_bootloader;
	int diff;		/* nix store diff-closures against the running system */
	int no_validate;	/* skip the checks of kernel, init and architecture */
	enum profile_op op;

	/* Given a closure, the same command first checks that the target has
	 * all of it (letting it substitute first if substitute): if not, it
	 * changes nothing, sets incomplete and fills missing. */
	const struct strvec *closure;
	int substitute;
	struct strvec *missing;
	int incomplete;

	/* > 0: arm a watchdog that undoes the activation unless token (a file
	 * on the target) is removed within that many seconds */
	int confirm_seconds;
	const char *token;
};

/* The profile path for --profile-name NAME, malloc'ed. */
char *profile_path(const char *name);

/* Runs the activation on h. Returns 0 (check a->incomplete when a
 * closure was given), NRR_ECHECK (nothing changed), NRR_EACTIVATE, or
 * NRR_EROLLEDBACK (failed, and undone by the watchdog's logic), with e
 * filled. */
int activate(const struct host *h, const struct elevation *el,
	     struct activation *a, struct nrr_err *e);

#endif
