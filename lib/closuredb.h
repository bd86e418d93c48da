/*
 * closuredb: the closures of many systems from two queries of one store.
 *
 * Each host of a fleet needs its system's closure (what it is offered)
 * and, for the diff, its paths' sizes. Asked per host, that is a nix
 * process or two per host on this machine; the fleet asks once instead:
 * `nix-store -qR` of every host's system (their union, dependencies
 * first) and `nix-store --dump-db` of that union (each path's NAR size
 * and references, in the union's order: the format `--load-db` reads),
 * split by the fleet into a file per host, which its child reads
 * (--closure-db). The union's order restricted to one closure is still
 * dependencies first, as `nix-store --import` needs.
 */
#ifndef NRR_CLOSUREDB_H
#define NRR_CLOSUREDB_H

#include "host.h"
#include "narexport.h"

struct closuredb {
	size_t n;
	char **paths;			/* in the dump's order */
	unsigned long long *sizes;	/* NAR sizes */
	size_t *nrefs;
	size_t **refs;			/* indices into paths */
	char **hashes;			/* NAR hashes, as the dump says them */
	char **derivers;		/* "" when none */
};

#define CLOSUREDB_INIT { 0, NULL, NULL, NULL, NULL, NULL, NULL }

/* Parses a dump (pure; for unit tests). 0, or -1 if it is not one, or a
 * reference is not in it (then db is empty). */
int closuredb_parse(const char *text, struct closuredb *db);

/* top's closure, in the dump's order, appended to closure, with *sizes
 * malloc'ed to match (the caller frees it). 0, or -1 if top is not in db. */
int closuredb_select(const struct closuredb *db, const char *top, struct strvec *closure,
		     unsigned long long **sizes);

void closuredb_release(struct closuredb *db);

/* The registrations of closure (a closure: every reference in it) on h,
 * into db (empty before; the caller releases it). 0 or an NRR_* status. */
int closuredb_load(const struct host *h, const struct strvec *closure, struct closuredb *db,
		   struct nrr_err *e);

/*
 * A fleet's dump, one file per host: each host's child reads its own
 * closure's registrations, not the whole fleet's (at 200 hosts, reading
 * and parsing the fleet's was a fifth of what each child cost the tool).
 * The fleet reserves a directory before its hosts start, loads the
 * union once, and writes host i's file (closuredb_file) from it.
 */

/* A new private directory (mode 0700, where lib/rundir.h says): its name,
 * malloc'ed (the caller removes it with closuredb_remove and frees it),
 * or NULL. */
char *closuredb_reserve(void);

/* Host i's file in dir: malloc'ed, the caller frees it. */
char *closuredb_file(const char *dir, size_t i);

/* Removes the files of hosts 0 to n - 1 from dir, then dir. */
void closuredb_remove(const char *dir, size_t n);

/* The registrations of closure (listed already: every path in this
 * machine's store, dependencies first), or else of tops' closures, from
 * this machine's store, into db (the caller releases it). 0, or -1 when
 * the store cannot tell (a derivation among tops, a system not built
 * here): each child asks then. */
int closuredb_load_here(const struct strvec *tops, const struct strvec *closure,
			struct closuredb *db);

/* Writes host i's file in dir for each of tops[0..n) that db holds: the
 * registrations of that top's closure alone, in db's order (a NULL top,
 * or one not in db, gets none: its child asks the store). 0, or -1 when
 * a file could not be written. */
int closuredb_split(const struct closuredb *db, const char *dir, const char *const *tops,
		    size_t n);

/* Reads the dump in file into db. 0, or -1 (unreadable, not a dump):
 * the caller asks the store itself then. */
int closuredb_read(const char *file, struct closuredb *db);

/*
 * The registration of each of paths, for lib/narexport.h, into *out
 * (malloc'ed, paths->nr of them, pointing into db and paths: free it with
 * closuredb_export_free before either goes). 0, or -1 when a path is not
 * in db or its hash is not one export can check: then nix-store exports.
 */
int closuredb_export_list(const struct closuredb *db, const struct strvec *paths,
			  struct narexport_path **out);
void closuredb_export_free(struct narexport_path *list, size_t n);

#endif
