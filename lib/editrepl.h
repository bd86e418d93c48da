/*
 * editrepl: the two actions that hand the configuration to a person
 * rather than build it. Both need d's source settled (deploy_setup) and
 * settle its default name themselves; both return the status of what
 * they ran (0, or an NRR_* status with e filled).
 */
#ifndef NRR_EDITREPL_H
#define NRR_EDITREPL_H

#include "deploy.h"
#include "error.h"

/*
 * edit: a flake's configuration through `nix edit`; a classic one's
 * file (nixos-config on NIX_PATH, else /etc/nixos/configuration.nix) in
 * $EDITOR (default nano).
 */
int config_edit(struct deploy *d, struct nrr_err *e);

/*
 * repl: nix repl on a file of ours that puts configuration, config,
 * options, pkgs and lib in scope (nix 2.8's repl loads only files, so a
 * flake goes through builtins.getFlake there too). The file is removed
 * afterwards.
 */
int config_repl(struct deploy *d, struct nrr_err *e);

#endif
