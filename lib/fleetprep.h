/*
 * fleetprep: the fleet's prepare (its build: lib/fleet.h) run beside the
 * fleet's loop in a forked copy of us (lib/async.h), as the push is
 * (lib/fleetpush.h). The loop goes on meanwhile: every host --parallel
 * lets starts, connects and takes its lock while the systems build, its
 * lines are read and shown, and one that cannot be reached is said at
 * once, not after the build. Before, the loop stopped for the build, and
 * only the first handshakes' worth of hosts (8 a core) were started.
 *
 * What the copy says, one line each (its only writer: whole, in order):
 *   x TEXT          a warning
 *   c PATH          a path of the systems' union closure, dependencies
 *                   first (prep->closure), once they are built
 *   e STATUS<TAB>MESSAGE<TAB>HINT
 *                   the prepare failed
 * and it exits with the prepare's status.
 */
#ifndef NRR_FLEETPREP_H
#define NRR_FLEETPREP_H

#include "async.h"
#include "error.h"
#include "fleet.h"
#include "strbuf.h"
#include "strvec.h"

struct fleetprep {
	struct async a;
	const struct fleet_prepare *prep;
	struct strbuf in;		/* what came, up to a line's end */
	struct strvec warnings;		/* as the copy said them */
	struct strvec closure;		/* ... and the closure it listed */
	struct nrr_err err;		/* its failure (status 0: none) */
	int done;			/* the copy has ended and was waited for */
};

/* Starts prep in a copy. Returns 0, or NRR_EFAIL with e filled. Either
 * way, fleetprep_release frees p. */
int fleetprep_start(struct fleetprep *p, const struct fleet_prepare *prep, struct nrr_err *e);

/* Takes the whole lines the copy said from p->in (what came on p->a.out,
 * which the caller reads: pump() in the fleet's loop). */
void fleetprep_take(struct fleetprep *p);

/* Once p->a.out is closed: takes what is left and waits for the copy.
 * Then p->done, and p->err.status its failure (0: it succeeded). */
void fleetprep_end(struct fleetprep *p);

/* Stops a copy still running (SIGTERM), waits for it, frees p's own. */
void fleetprep_release(struct fleetprep *p);

#endif
