/*
 * fleetbuild: what a fleet is made of (see fleet.h): its members, chosen
 * by --on (fleet_expand, declared in fleet.h), and their systems,
 * evaluated in one nix process and built in one nix call, so that nix
 * schedules the builds together and paths the hosts share are built once.
 */
#ifndef NRR_FLEETBUILD_H
#define NRR_FLEETBUILD_H

#include "fleetview.h"

/* The configuration names of the flake ref, for --on's globs, appended to
 * names. Returns 0, or NRR_ENOSTART (or another status) with e filled. */
int fleet_flake_names(const struct options *o, const char *ref,
		      struct strvec *names, struct strvec *warnings,
		      struct nrr_err *e);

/*
 * Evaluates the systems of the n hosts (by their names in ref), in one nix
 * process or a few (--eval-jobs); each host's path is set (malloc'ed: the
 * caller frees it) and its derivation appended to drvs. With -k a host
 * whose own evaluation fails is done and failed, and the others go on.
 * Returns 0, or NRR_ENOSTART (or another status) with e filled.
 */
int fleet_eval_all(const struct options *o, const char *ref, struct fleet_host *hosts,
		   size_t n, struct strvec *drvs, struct strvec *warnings, struct nrr_err *e);

/*
 * The build of those derivations, by one nix-store --realise (with
 * --builders and --max-jobs, so that Nix schedules and spreads them
 * together), made to run as a fleet_prepare while the hosts connect; outs
 * are their systems. Its closure: once it ran, the union closure of outs,
 * dependencies first (empty for a dry run, which only says what it would
 * build, or when it could not be listed). roots, when set, is a directory
 * for the systems' GC roots while the run lasts. fleet_realise_release
 * frees it.
 */
struct fleet_realise {
	struct strvec argv, outs, closure;
	int verbose, dry;
};
void fleet_realise_plan(const struct options *o, const struct strvec *drvs,
			const struct strvec *outs, const char *roots, struct fleet_realise *r);
/* data: a struct fleet_realise. Returns 0, or NRR_ENOSTART (or another
 * status) with e filled. */
int fleet_realise_run(void *data, struct strvec *warnings, struct nrr_err *e);
void fleet_realise_release(struct fleet_realise *r);

/*
 * The union closure of the systems outs (built), dependencies first, into
 * closure; left empty when nix-store cannot list it (whoever reads it then
 * asks the store). Not `nix-store -qR --force-realise DRV...`, which would
 * build and list in one call: it realises its arguments one at a time, so
 * Nix could neither run their builds at once nor spread them.
 */
void fleet_list_closure(const struct strvec *outs, struct strvec *closure);

/* A directory for those roots, made (mkdtemp) into dir; dir is "" when it
 * cannot be. fleet_roots_remove removes it with the roots in it. */
#define FLEET_ROOTS_SIZE 32
void fleet_roots_make(char dir[FLEET_ROOTS_SIZE]);
void fleet_roots_remove(const char *dir);

#endif
