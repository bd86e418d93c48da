/*
 * profileguard: colmena's `deployment.replaceUnknownProfiles = false`.
 *
 * Such a node refuses to have its system replaced unless this machine
 * knows the system it runs now: the path the target's
 * PROFILE_GUARD_SH prints (its system profile, or else
 * /run/current-system, fully resolved) must be valid in this machine's
 * store, as after a deploy from here. A system someone else deployed is
 * not, and is kept (a guard against overwriting another operator's
 * deploy) unless --force-replace-unknown-profiles.
 *
 * The target's answer comes from a command already run: the probe
 * (lib/scripts/query.sh's "system=" line, struct probe's system) or any
 * conversation's first lines that run PROFILE_GUARD_SH.
 */
#ifndef NRR_PROFILEGUARD_H
#define NRR_PROFILEGUARD_H

#include "error.h"
#include "strvec.h"

/* What the target is asked (sh; prints nothing if it has no system). */
#define PROFILE_GUARD_SH \
	"readlink -e /nix/var/nix/profiles/system 2>/dev/null || " \
	"readlink -e /run/current-system 2>/dev/null"

/*
 * node: its name, for messages; target_system: the target's answer (NULL
 * or "" if it has no system: nothing to replace); force: the flag. Asks
 * this machine's store (nix-store --check-validity, through nix_run).
 * Returns 0 when the deploy may go on (pushing a warning to warnings when
 * force overrode the guard), NRR_ECHECK when the system is unknown here
 * (nothing was changed), NRR_EFAIL when nix-store could not be run.
 */
int profile_guard_check(const char *node, const char *target_system,
			int force, struct strvec *warnings, struct nrr_err *e);

#endif
