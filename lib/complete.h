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
 */
#ifndef NRR_COMPLETE_H
#define NRR_COMPLETE_H

#include "error.h"
#include "strvec.h"

int complete_print(const char *what, struct nrr_err *e);

/*
 * Collects Host names (no wildcards or negations) from the ssh config
 * text, and Include patterns into includes (pure; for unit tests).
 */
void ssh_config_hosts(const char *text, struct strvec *hosts,
		      struct strvec *includes);

#endif
