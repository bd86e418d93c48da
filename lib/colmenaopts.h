/*
 * colmenaopts: the command line of colmena's commands (colmena.h), parsed
 * by a table of their own: their short options keep colmena's meanings
 * (-p is --parallel, -f --config, -E --expr), unlike the nixos-rebuild
 * actions' (lib/options.c). The same table drives their --help and their
 * completion (colmena_complete, in colmena.h).
 */
#ifndef NRR_COLMENAOPTS_H
#define NRR_COLMENAOPTS_H

#include <stddef.h>

#include "error.h"
#include "hive.h"
#include "strvec.h"

struct colmena_opts {
	const char *cmd;	/* "build" or "eval" (apply and introspect mapped) */
	const char *goal;	/* apply's goal */
	const char *file;	/* eval FILE */
	const char *on;
	const char *expr;
	int help, verbose, keep_result, build_on_target;	/* -1: each node's */
	int sudo;		/* apply-local --sudo */
	const char *node;	/* apply-local --node */
	size_t eval_limit;	/* --eval-node-limit; 0: auto */
	int keep_going;
	int no_eval_cache;	/* --no-eval-cache */
	int no_keys, reboot, no_substitute, force_replace, substitutes_given;
	const char *parallel;
	const char *const *command;	/* exec's, NULL-terminated (argv's) */
	struct strvec ours;	/* C_PASS options, as given */
	struct strvec nix_args;	/* --show-trace, --option N V */
	struct strvec nix_options;	/* --option N V only (nix-store) */
	struct hive_opts h;
};

/*
 * Parses argv (argv[0]: the command) into o, which the caller zeroed, with
 * build_on_target -1 and the strvecs initialised; sets o->cmd to "build",
 * "deploy", "eval", "exec" or "apply-local". Returns 0 or NRR_EUSAGE with e
 * filled. o keeps pointers into argv; the caller clears its strvecs.
 */
int colmena_parse(struct colmena_opts *o, int argc, const char *const *argv,
		  struct nrr_err *e);

/* Prints the --help of cmd (NULL: of them all) on stdout. */
void colmena_print_help(const char *cmd);

#endif
