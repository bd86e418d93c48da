/*
 * profileguard: colmena's `deployment.replaceUnknownProfiles = false`.
 *
 * Such a node refuses to have its system replaced unless this machine
 * knows the system it runs now: the path the target's
 * lib/scripts/profile.sh prints (its system profile, or else
 * /run/current-system, fully resolved) must be valid in this machine's
 * store, as after a deploy from here. A system someone else deployed is
 * not, and is kept (a guard against overwriting another operator's
 * deploy) unless --force-replace-unknown-profiles.
 *
 * The target's answer is what lib/scripts/profile.sh prints there
 * (script_profile): a deploy runs it inside a command it runs anyway.
 */
#ifndef NRR_PROFILEGUARD_H
#define NRR_PROFILEGUARD_H

#include "error.h"
#include "strvec.h"

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
