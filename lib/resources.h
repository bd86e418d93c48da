/*
 * resources: what this machine lets a run take, for runs whose needs grow
 * with their work: the open-files limit (a fleet: a few fds per host in
 * flight) and the memory available (evaluators: how many at once).
 */
#ifndef NRR_RESOURCES_H
#define NRR_RESOURCES_H

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

/*
 * Before a secret (a sudo password, a key's text) is in this process: no
 * core file, and (Linux) no ptrace or /proc/PID/mem by others of our uid,
 * so that neither leaves a copy of it outside sodium's wiped memory.
 */
void secrets_held(void);

/* MemAvailable of /proc/meminfo in bytes; 0 if unknown. */
unsigned long long mem_available(void);

#endif
