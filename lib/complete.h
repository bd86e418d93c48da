/*
 * complete: answers for the shell completion scripts, from the binary
 * itself, so that completion cannot drift from the option table.
 *
 *   --complete options    every option spelling, one per line
 *   --complete actions    every action
 *   --complete hosts      Host aliases from the user's ssh config
 *                         (following Include, without patterns)
 *   --complete flake:REF  the nixosConfigurations names of flake REF
 *                         (asked of nix, cached for a minute)
 *   --complete colmena, goals, hive-nodes, colmena-options:CMD
 *                         the colmena commands' (colmena_complete)
 */
#ifndef NRR_COMPLETE_H
#define NRR_COMPLETE_H

#include "error.h"

int complete_print(const char *what, struct nrr_err *e);

#endif
