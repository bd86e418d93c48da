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
 * Evaluates the systems of the n hosts (by their names in ref) and builds
 * them; each host's path is set (malloc'ed: the caller frees it). roots,
 * when set, is a directory for their GC roots while the run lasts.
 * *evaluated: when the evaluation ended (fleet_now), the build began.
 * Returns 0, or NRR_ENOSTART (or another status) with e filled.
 */
int fleet_build_all(const struct options *o, const char *ref,
		    struct fleet_host *hosts, size_t n, const char *roots,
		    double *evaluated, struct strvec *warnings, struct nrr_err *e);

/* A directory for those roots, made (mkdtemp) into dir; dir is "" when it
 * cannot be. fleet_roots_remove removes it with the roots in it. */
#define FLEET_ROOTS_SIZE 32
void fleet_roots_make(char dir[FLEET_ROOTS_SIZE]);
void fleet_roots_remove(const char *dir);

#endif
