/*
 * colmena: colmena's commands on a hive (lib/hive.c), with colmena's own
 * command line.
 *
 *   nixos-rebuild-remote apply build [OPTIONS]
 *   nixos-rebuild-remote eval [FILE] | -E EXPR    (also: introspect)
 *   nixos-rebuild-remote apply [push|switch|boot|test|dry-activate]
 *   nixos-rebuild-remote exec [--on RULES] [-p N] -- COMMAND...  (hiveexec.h)
 *   nixos-rebuild-remote apply-local [GOAL] [--sudo] [--node NAME]
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

#include "colmenabuild.h"
#include "error.h"
#include "fleet.h"
#include "keys.h"
#include "strvec.h"

/*
 * What `apply push|switch|boot|test|dry-activate` leaves for main to run
 * through the fleet (fleet_deploy): every selected node evaluated (its
 * build, when it has one, left to the fleet's prepare: build), a
 * fleet member with its target, its system, its elevation and its ssh
 * options (NIX_SSHOPTS in its child's environment); argv, our own options
 * for the whole fleet (options_parse's argv: the child's goal first).
 */
struct colmena_deploy {
	struct strvec argv;
	struct colmena_build build;	/* to run before the nodes go on */
	struct fleet_member *members;	/* n; NULL when there is nothing to deploy */
	size_t n;
	char *roots;		/* a directory of GC roots for the deploy's duration */
	struct nrr_err eval_failed;	/* -k: the nodes left out (status 0: none) */
	int local;		/* apply-local: argv deploys here (main runs it as
				 * its own command line), members is NULL */
	struct keyset *keys;	/* apply-local: the node's keys (or NULL), for
				 * deploy_keys_take; keys_node its name */
	char *keys_node;
};

/* An empty plan, ready for colmena_main or colmena_tag_plan. */
void colmena_deploy_init(struct colmena_deploy *plan);

/* Frees what plan holds and removes its GC roots. */
void colmena_deploy_release(struct colmena_deploy *plan);

/*
 * Shell completion of the colmena commands (lib/complete.c's topics):
 * "colmena" the commands, "goals" apply's goals, "hive-nodes" the node
 * names and then the @tags of the hive found from the working directory
 * (evaluated: nothing when there is none), "colmena-options:CMD" the
 * option spellings of CMD. One a line on stdout. Returns 0, or 1 for
 * a topic that is not one of these.
 */
int colmena_complete(const char *what);

/* 1 if name is a colmena command that colmena_main runs. */
int colmena_is_command(const char *name);

/* Runs argv[0] (a colmena command) with its options argv[1..argc-1]
 * (argv[argc] NULL: exec's command is the tail of argv).
 * Warnings are pushed to warnings. For apply's deploy goals it builds the
 * systems and fills plan (zeroed by the caller, released with
 * colmena_deploy_release) for main to deploy. */
int colmena_main(int argc, const char *const *argv, struct strvec *warnings,
		 struct colmena_deploy *plan, struct nrr_err *e);

/* 1 if --on's rules (of the nixos-rebuild actions) select by @tag: then
 * they are a colmena hive's. */
int colmena_on_has_tag(const char *on);

/*
 * --on RULES with @tags on o->flake, a flake with a hive: plan gets its
 * nodes, built as `apply ACTION -f FLAKE --on RULES` builds them, for main
 * to deploy with o (fleet_deploy). Returns 0, NRR_EUSAGE (an action that
 * does not deploy; a flake that names a configuration) or colmena_main's
 * status, with e filled. The caller releases plan.
 */
int colmena_tag_plan(const struct options *o, struct colmena_deploy *plan,
		     struct strvec *warnings, struct nrr_err *e);

#endif
