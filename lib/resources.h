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

/*
 * Hosts in their handshake at once, at most (a fleet's): 8 a core, 8 to 64. A
 * handshake costs this machine CPU (60 ms of ssh's own with OpenSSH 9.2's
 * default key exchange, sntrup761x25519, against none to speak of with
 * curve25519: measured here), so every host at once makes every handshake
 * slow together: the first host is connected only when nearly all are,
 * and its copy starts late (50 hosts at once behind one line: 8.2 s; 16 at
 * a time on 2 cores: 7.2 s, the line busy sooner); at 200, one waited past
 * ssh's 30 s ConnectTimeout. A host leaves the handshake in a few round
 * trips and the next one starts then, so the bound costs a fleet little
 * where CPU is plenty and round trips are what a handshake waits for.
 */
size_t handshakes_max(void);

#endif
