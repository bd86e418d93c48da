/*
 * rollback: going back to a generation the target has, with no build and
 * no copy (switch, boot, test and build with --rollback), and showing its
 * generations (list-generations). Both connect through d, which the caller
 * has set up (deploy_init) and releases.
 */
#ifndef NRR_ROLLBACK_H
#define NRR_ROLLBACK_H

#include "deploy.h"
#include "error.h"
#include "options.h"

/*
 * --rollback: switch, boot and test make the profile's previous generation
 * current (the profile's own rollback, then its activation) or activate it
 * alone (test); build prints its path. Returns 0, or fills e and returns
 * its status (a profile with no earlier generation: NRR_EFAIL, nothing
 * changed).
 */
int rollback_run(struct deploy *d, const struct options *o, struct nrr_err *e);

/* list-generations: the profile's generations on the target, printed as
 * a table or (o->json) JSON. Returns 0, or fills e. */
int rollback_list(struct deploy *d, const struct options *o, struct nrr_err *e);

#endif
