/*
 * closurecache: the closures of systems this machine has deployed, kept
 * between runs, so that the next deploy's diff asks no nix at all.
 *
 * A deploy's diff needs the closure of the system the target runs, with
 * the size of each path. That system is most often the one the previous
 * deploy from here sent, whose closure and sizes we had then. A store
 * path's closure and NAR sizes never change (the path is immutable, and
 * so are its references), so what we knew of it stays true, even after
 * this machine's store collected it.
 *
 * One file per system in cachedir "closures", named by the path's base
 * name, mode 0600: a first line "nrr-closure 1 PATH", then "PATH<TAB>SIZE"
 * lines in the closure's order. Reading one touches it; writing keeps the
 * newest CLOSURECACHE_KEEP (one write in eight looks, once there are a
 * quarter more). Nothing here fails a deploy: an entry that is
 * missing, unreadable or malformed is "not cached".
 */
#ifndef NRR_CLOSURECACHE_H
#define NRR_CLOSURECACHE_H

#include "strvec.h"

#define CLOSURECACHE_KEEP 256

/*
 * The cached closure of system into closure (appended, in order) and its
 * sizes into *sizes (malloc'ed, closure->nr of them added; the caller
 * frees it). Returns 0, or -1 when not cached (nothing is appended).
 */
int closurecache_get(const char *system, struct strvec *closure,
		     unsigned long long **sizes);

/* 1 if system has an entry (not read: it may still be malformed). */
int closurecache_has(const char *system);

/* Keeps closure (n paths, sizes[i] each) as system's, replacing what was
 * there. Silent: a failure means it is not kept. */
void closurecache_put(const char *system, const char *const *closure,
		      const unsigned long long *sizes, size_t n);

/* Parses an entry's text for system (pure; for unit tests). Returns 0 or
 * -1, as closurecache_get. */
int closurecache_parse(const char *text, const char *system, struct strvec *closure,
		       unsigned long long **sizes);

#endif
