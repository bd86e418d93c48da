#include "profileguard.h"
#include "nix.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

int profile_guard_check(const char *node, const char *target_system,
			int force, struct strvec *warnings, struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int st;

	if (!target_system || !*target_system)
		return 0;
	/* an answer that is no absolute path on one line is no store path */
	if (target_system[0] != '/' || strpbrk(target_system, "\n\r")) {
		st = 1;
	} else {
		strvec_pushl(&argv, "nix-store", "--check-validity", target_system, NULL);
		st = nix_run(&argv, &out, &err, NIX_RUN_QUIET, 0, warnings, e);
	}
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	if (st < 0)
		return e->status;
	if (!st)
		return 0;
	if (force) {
		char *w = xstrfmt("'%s' ran %s, which this machine does not know; replacing it "
				  "(--force-replace-unknown-profiles)", node, target_system);
		if (warnings)
			strvec_push(warnings, w);
		free(w);
		return 0;
	}
	nrr_fail(e, NRR_ECHECK, "'%s' runs %s, which this machine does not know, and "
		 "replaceUnknownProfiles is false", node, target_system);
	nrr_hint(e, "someone else may have deployed it; nothing was changed; "
		 "--force-replace-unknown-profiles replaces it");
	return e->status;
}
