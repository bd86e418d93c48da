/*
 * colmena: colmena's commands on a hive (lib/hive.c), with colmena's own
 * command line.
 *
 *   nixos-rebuild-remote apply build [OPTIONS]
 *   nixos-rebuild-remote eval [FILE] | -E EXPR    (also: introspect)
 *
 * colmena's own `build` command is `apply build` here: `build` is
 * nixos-rebuild's action.
 *
 * These commands take colmena's options, with colmena's short forms: -f is
 * --config (the hive), -p is --parallel, -E is --expr, -v is --verbose;
 * they differ from the nixos-rebuild actions' (-p is --profile-name there),
 * which is why they are parsed here, by a table of their own, and not by
 * lib/options.c. main() hands argv over when argv[1] is one of them
 * (colmena_is_command).
 *
 * colmena_main() writes results to stdout (eval's JSON; build's "NAME
 * PATH" lines), nix's progress to stderr, and returns 0 or an nrr_status
 * with e filled (2 usage, 4 evaluation, 5 build); main prints e.
 */
#ifndef NRR_COLMENA_H
#define NRR_COLMENA_H

#include "error.h"
#include "strvec.h"

/* 1 if name is a colmena command that colmena_main runs. */
int colmena_is_command(const char *name);

/* Runs argv[0] (a colmena command) with its options argv[1..argc-1].
 * Warnings are pushed to warnings. */
int colmena_main(int argc, const char *const *argv, struct strvec *warnings,
		 struct nrr_err *e);

#endif
