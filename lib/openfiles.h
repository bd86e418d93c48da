/*
 * openfiles: this process's open-files limit, for runs whose open pipes
 * grow with their work (a fleet: a few fds per host in flight).
 */
#ifndef NRR_OPENFILES_H
#define NRR_OPENFILES_H

#include <stddef.h>

#include "strvec.h"

/*
 * How many of want items, each holding per fds of ours, may be open at
 * once: raises the soft open-files limit to the hard one first, and when
 * even that is too small pushes a warning naming what (e.g. "hosts") and
 * how to raise it. The fds open now, and a few for a moment's pipes, are
 * kept in reserve. Returns want when the limit allows it (or is unknown),
 * else at least 1.
 */
size_t openfiles_fit(size_t want, size_t per, const char *what,
		     struct strvec *warnings);

#endif
