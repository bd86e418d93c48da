/*
 * build: the system of a deploy, built here, or evaluated here and
 * realised on the build host (the deploy's build phase; see deploy.h).
 *
 * tail is the attribute of the configuration to build
 * ("config.system.build.toplevel"); the result's store path ends in
 * d->toplevel, where it was built in d->built_at.
 */
#ifndef NRR_BUILD_H
#define NRR_BUILD_H

#include "deploy.h"

/*
 * Builds tail. dry: only show what would be built. link: make ./result
 * point to the result when it ends up on this machine (NULL: no link).
 */
int build_system(struct deploy *d, const char *tail, int dry,
		 const char *link, struct nrr_err *e);
/*
 * build-image: the image file's name inside the built output, as
 * nixos-rebuild finds it (tail's passthru.filePath), or NULL when the
 * image does not say (older nixpkgs) or it cannot be evaluated. The
 * caller frees it.
 */
char *build_image_file(struct deploy *d, const char *tail);
/*
 * Before building for a target of another architecture: fails with
 * NRR_ECHECK when the system's derivations are for a platform nothing
 * can build (not this machine's, no builder, not all substitutable), so
 * that the user hears it before a build starts. Needs the target's
 * lock session (which told its machine); the derivation it evaluates is
 * built from, so it costs no second evaluation.
 */
int build_preflight(struct deploy *d, const char *tail, struct nrr_err *e);
/*
 * Evaluates the system's derivation now (into d->drv), so that the build
 * builds it without evaluating again: called while the handshakes run, it
 * takes the evaluation out of the deploy's critical path.
 */
int build_evaluate(struct deploy *d, const char *tail, struct nrr_err *e);

/* Appends to argv the flags of nix_build (options' G_BUILD flags) that a
 * `nix-store --realise` needs: --builders, so that a build spreads over
 * the user's build machines. */
void build_push_builders(struct strvec *argv, const struct strvec *nix_build);

#endif
