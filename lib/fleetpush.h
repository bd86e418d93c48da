/*
 * fleetpush: the cache route's push for a fleet (--on with --push-to),
 * run beside the fleet's loop in a forked copy of us (lib/async.h), so
 * that the hosts start, connect and lock while the closures cross the
 * line: before, the fleet's loop stopped for the push, and the hosts
 * after the first handshakes' worth connected only once it was done. The
 * hosts ask their targets what they lack meanwhile, then wait for their
 * go (--wait-push) until it ends.
 *
 * The copy starts before the fleet evaluates and builds (a hive's nodes:
 * evaluated already, before it builds them), and connects to the cache
 * host (--cache-host) meanwhile: its handshake, the first step of the
 * push's path, then overlaps the evaluation or the build instead of the
 * hosts' own handshakes. fleetpush_go tells it what to push, on its socket:
 *   t PATH          a system to push
 *   c PATH          a path of their union closure, dependencies first
 *   g               that was all: push
 * (the fleet closes the socket instead when it has nothing to push).
 *
 * What the copy says, one line each (its only writer: whole, in order):
 *   x TEXT          a warning
 *   k KEY           pushed, signed with KEY ("-": none known)
 *   e STATUS<TAB>MESSAGE<TAB>HINT
 *                   the push failed
 * and it exits with pushto_push's status.
 */
#ifndef NRR_FLEETPUSH_H
#define NRR_FLEETPUSH_H

#include "async.h"
#include "error.h"
#include "options.h"
#include "strbuf.h"
#include "strvec.h"

struct fleetpush {
	struct async a;
	struct options *o;
	struct strbuf in;		/* what came, up to a line's end */
	char *key;			/* the cache's key, as the copy said it */
	struct strvec warnings;		/* as the copy said them */
	struct nrr_err err;		/* its failure (status 0: none) */
	int done;			/* the copy has ended and was waited for */
};

/*
 * Starts the copy, which connects to the cache host and waits for
 * fleetpush_go. Returns 0, or NRR_EFAIL with e filled. Either way,
 * fleetpush_release frees p.
 */
int fleetpush_start(struct fleetpush *p, struct options *o, struct nrr_err *e);

/*
 * Has the copy push tops, whose union closure (dependencies first) is
 * closure. Returns 0, or -1 when the copy is gone already (why: its own
 * line, or its status, at fleetpush_end).
 */
int fleetpush_go(struct fleetpush *p, const struct strvec *tops, const struct strvec *closure);

/*
 * Takes the lines the copy said, from p->in (what came on p->a.out, which
 * the caller reads: pump() in the fleet's loop); a line not yet whole
 * stays there.
 */
void fleetpush_take(struct fleetpush *p);

/*
 * Once p->a.out is closed (the copy's end of it read): takes what is left
 * and waits for the copy. Then p->done, and p->err.status its failure (0:
 * all was pushed; p->key, when known, the key it was signed with).
 */
void fleetpush_end(struct fleetpush *p);

/* Takes one line the copy said (pure: unit-tested). */
void fleetpush_line(struct fleetpush *p, const char *line);

/* Stops a copy still running (SIGTERM), waits for it, frees p's own. */
void fleetpush_release(struct fleetpush *p);

#endif
