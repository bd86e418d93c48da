#include "rollback.h"
#include "action.h"
#include "activate.h"
#include "generations.h"

#include <stdio.h>
#include <stdlib.h>

int rollback_list(struct deploy *d, const struct options *o, struct nrr_err *e)
{
	struct generation *g = NULL;
	int n = 0, ret;
	char *profile = profile_path(o->profile_name);

	if ((ret = deploy_connect(d, 1, 0, e)) == 0 &&
	    (ret = generations_read(deploy_target(d), NULL, profile, &g, &n,
				    e)) == 0)
		generations_print(g, n, o->json);
	generations_free(g, n);
	free(profile);
	return ret;
}

int rollback_run(struct deploy *d, const struct options *o, struct nrr_err *e)
{
	const struct host *t = deploy_target(d);
	char *profile = profile_path(o->profile_name);
	struct activation a = { 0 };
	int ret;

	if ((ret = deploy_connect(d, 1, 0, e)))
		goto out;
	a.profile = profile;
	a.install_bootloader = o->install_bootloader;
	a.specialisation = o->specialisation;
	a.no_validate = o->no_validate;
	if (options_needs(o, AN_SETS_PROFILE)) {
		a.action = o->action;
		a.op = PROFILE_ROLLBACK;
		ret = activate(t, &d->elev, &a, e);
		goto out;
	}
	struct generation *g = NULL;
	int n = 0;
	if ((ret = generations_read(t, &d->elev, profile, &g, &n, e)))
		goto out;
	int prev = generations_previous(g, n);
	generations_free(g, n);
	if (prev < 0) {
		ret = nrr_fail(e, NRR_EFAIL,
			       "no generation of '%s' on '%s' to roll back to",
			       profile, t->name);
		goto out;
	}
	char *link = xstrfmt("%s-%d-link", profile, prev);
	if (options_needs(o, AN_ACTIVATES)) {
		a.action = o->action;
		a.toplevel = link;
		a.op = PROFILE_KEEP;
		ret = activate(t, &d->elev, &a, e);
	} else {
		printf("%s\n", link);
	}
	free(link);
out:
	free(profile);
	return ret;
}
