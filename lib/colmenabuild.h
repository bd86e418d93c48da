/*
 * colmenabuild: building a hive's selected systems, the way colmena
 * does, in one nix-store call (so that --builders, a hive's
 * meta.machinesFile and --max-jobs spread them), and keeping them as GC
 * roots for --keep-result.
 *
 * The selection is given as in lib/colmena.c: sel[n] indexes h->nodes,
 * drv[i] is node sel[i]'s system derivation, out[i] its output; built[i]
 * is set for the nodes this machine builds (not those built on their
 * target). Nothing here frees what it is given.
 */
#ifndef NRR_COLMENABUILD_H
#define NRR_COLMENABUILD_H

#include <stddef.h>

#include "colmenaopts.h"
#include "error.h"
#include "hive.h"
#include "strvec.h"

/* The hive's systems to build: one nix-store call, run by the fleet while
 * the nodes' children connect (lib/fleet.h's prepare). */
struct colmena_build {
	struct strvec argv;	/* empty: nothing to build (all built already) */
	int verbose;
	int closure_too;	/* the build also lists the systems' closures
				 * (fleet_list_closure), once built */
	struct strvec outs;	/* with closure_too: the systems it builds */
	struct strvec closure;	/* with closure_too, after a build: their union,
				 * dependencies first (empty if not listed) */
};

/*
 * The one nix-store call that builds the nodes' systems drv[] (meta.
 * machinesFile as nix's builders), but for nodes built on their target,
 * into b (the caller clears b->argv); built[i] says which it builds.
 * roots, if set: a directory for GC roots. b->argv stays empty when
 * there is nothing to build.
 */
void colmena_realise_plan(const struct colmena_opts *o, const struct hive *h, const size_t *sel,
			  size_t n, char **drv, int *built, const char *roots,
			  struct colmena_build *b);

/* colmena_realise_plan, then its build at once: 0, NRR_EBUILD, or another
 * status with e filled. */
int colmena_realise(const struct colmena_opts *o, const struct hive *h, const size_t *sel,
		    size_t n, char **drv, int *built, const char *roots,
		    struct strvec *warnings, struct nrr_err *e);

/* fleet_prepare's run for a colmena_build (data): 0, or NRR_ENOSTART
 * with e saying why the build failed. */
int colmena_build_run(void *data, struct strvec *warnings, struct nrr_err *e);

/* --keep-result: every built system as a GC root in the hive's directory,
 * .gcroots/node-NAME, as colmena keeps them. 0, or a status with e. */
int colmena_keep_results(const struct colmena_opts *o, const struct hive *h,
			 const size_t *sel, char **out, const int *built, size_t n,
			 struct strvec *warnings, struct nrr_err *e);

#endif
