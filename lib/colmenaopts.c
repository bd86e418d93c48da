/*
 * colmenaopts: colmena's command line (see colmenaopts.h).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "colmena.h"
#include "colmenaopts.h"
#include "strbuf.h"

enum copt_id {
	C_CONFIG, C_SHOW_TRACE, C_IMPURE, C_NIX_OPTION, C_HELP, C_VERBOSE,
	C_ON, C_PARALLEL, C_KEEP_RESULT, C_NO_KEYS, C_REBOOT, C_NO_SUBSTITUTE,
	C_NO_GZIP, C_BUILD_ON_TARGET, C_NO_BUILD_ON_TARGET, C_FORCE_REPLACE,
	C_EVAL_NODE_LIMIT, C_NO_EVAL_CACHE, C_EVALUATOR, C_EXPR, C_INSTANTIATE, C_SUDO, C_NODE, C_KEEP_GOING,
	C_PASS,		/* one of our own options, handed to the fleet as it is */
};

/* Which commands take an option. */
#define FOR_ALL 0xf
#define FOR_APPLY 0x1	/* apply and build */
#define FOR_EVAL 0x2
#define FOR_EXEC 0x4
#define FOR_LOCAL 0x8	/* apply-local */

struct copt {
	const char *name;
	char short_name;
	int nargs;
	enum copt_id id;
	unsigned cmds;
	const char *arg, *help;
};

/* colmena's options, with its short forms. */
static const struct copt copts[] = {
	{ "config", 'f', 1, C_CONFIG, FOR_ALL, "PATH|FLAKE-URI",
	  "the hive: a hive.nix, a flake (default: flake.nix, then hive.nix, from here upwards)" },
	{ "show-trace", 0, 0, C_SHOW_TRACE, FOR_ALL, NULL, "show nix's trace of an evaluation error" },
	{ "impure", 0, 0, C_IMPURE, FOR_ALL, NULL, "evaluate a flake's hive impurely" },
	{ "nix-option", 0, 2, C_NIX_OPTION, FOR_ALL, "NAME VALUE", "a nix setting for every nix command" },
	{ "verbose", 'v', 0, C_VERBOSE, FOR_ALL, NULL, "show the nix commands run" },
	{ "help", 'h', 0, C_HELP, FOR_ALL, NULL, "this help" },
	{ "on", 0, 1, C_ON, FOR_APPLY | FOR_EXEC, "RULES",
	  "the nodes: comma-separated globs of names, @GLOB for tags" },
	{ "parallel", 'p', 1, C_PARALLEL, FOR_APPLY | FOR_EXEC, "N",
	  "nodes at once (colmena's -p; 0: no limit; apply's default 10, exec's 0)" },
	/* ours, for the deploy goals */
	{ "ask-elevate-password", 'S', 0, C_PASS, FOR_APPLY, NULL,
	  "ask the sudo password once, for every node whose targetUser is not root" },
	{ "ask", 0, 0, C_PASS, FOR_APPLY, NULL, "after the diffs, ask once before activating" },
	{ "yes", 0, 0, C_PASS, FOR_APPLY, NULL, "answer --ask with yes" },
	{ "json", 0, 0, C_PASS, FOR_APPLY, NULL, "a report of the deploy on stdout" },
	{ "diff", 0, 0, C_PASS, FOR_APPLY, NULL, "show what changes on each node" },
	{ "no-diff", 0, 0, C_PASS, FOR_APPLY, NULL, "do not show what changes" },
	{ "magic-rollback", 0, 0, C_PASS, FOR_APPLY, NULL,
	  "roll a node back when it cannot be reached after activation" },
	{ "confirm-timeout", 0, 1, C_PASS, FOR_APPLY, "SECONDS", "--magic-rollback's wait" },
	{ "use-substitutes", 0, 0, C_PASS, FOR_APPLY, NULL,
	  "(=auto: ask the nodes' caches first) nodes substitute, as is colmena's default" },
	{ "keep-result", 0, 0, C_KEEP_RESULT, FOR_APPLY, NULL,
	  "keep each system as a GC root, .gcroots/node-NAME beside the hive" },
	{ "no-keys", 0, 0, C_NO_KEYS, FOR_APPLY | FOR_LOCAL, NULL, "deploy nodes that have deployment.keys without their keys" },
	{ "reboot", 0, 0, C_REBOOT, FOR_APPLY, NULL,
	  "(switch, boot) reboot each node after activation and prove it runs the new system" },
	{ "reboot-timeout", 0, 1, C_PASS, FOR_APPLY, "SECONDS", "--reboot's wait for a node (default 300)" },
	{ "no-substitute", 0, 0, C_NO_SUBSTITUTE, FOR_APPLY, NULL, "nodes do not substitute: everything is copied from here" },
	{ "no-gzip", 0, 0, C_NO_GZIP, FOR_APPLY, NULL, "accepted for colmena's sake" },
	{ "build-on-target", 0, 0, C_BUILD_ON_TARGET, FOR_APPLY, NULL, "build every node on its target" },
	{ "no-build-on-target", 0, 0, C_NO_BUILD_ON_TARGET, FOR_APPLY, NULL, "build every node here" },
	{ "force-replace-unknown-profiles", 0, 0, C_FORCE_REPLACE, FOR_APPLY, NULL,
	  "replace a system this machine does not know (replaceUnknownProfiles = false), with a warning" },
	{ "eval-node-limit", 0, 1, C_EVAL_NODE_LIMIT, FOR_APPLY, "N|auto",
	  "nodes evaluated at once, over one nix process per core (auto: (available MiB - 1024) / 512)" },
	{ "no-eval-cache", 0, 0, C_NO_EVAL_CACHE, FOR_APPLY | FOR_EXEC | FOR_LOCAL, NULL,
	  "evaluate the hive even when the evaluation cache has its answer" },
	{ "keep-going", 'k', 0, C_KEEP_GOING, FOR_APPLY, NULL,
	  "nodes whose evaluation fails are named and left out; the others go on" },
	{ "evaluator", 0, 1, C_EVALUATOR, FOR_APPLY, "chunked|streaming", "accepted for colmena's sake" },
	{ "expr", 'E', 1, C_EXPR, FOR_EVAL, "EXPR",
	  "a function of { lib, pkgs, nodes }; its value is printed as JSON" },
	{ "instantiate", 0, 0, C_INSTANTIATE, FOR_EVAL, NULL, "(not supported)" },
	{ "sudo", 0, 0, C_SUDO, FOR_LOCAL, NULL, "activate through sudo (when not run as root)" },
	{ "node", 0, 1, C_NODE, FOR_LOCAL, "NAME", "the node to deploy (default: this machine's hostname)" },
};
#define NCOPTS (sizeof(copts) / sizeof(copts[0]))

static const char *const goals[] = { "build", "push", "switch", "boot", "test",
				     "dry-activate", "keys", NULL };



static unsigned cmd_mask(const char *cmd);

static const char *const commands[] = { "apply", "apply-local", "exec", "eval",
					 "introspect", "upload-keys", NULL };

int colmena_complete(const char *what)
{
	if (!strcmp(what, "colmena")) {
		for (size_t i = 0; commands[i]; i++)
			puts(commands[i]);
	} else if (!strcmp(what, "goals")) {
		for (size_t i = 0; goals[i]; i++)
			puts(goals[i]);
	} else if (!strncmp(what, "colmena-options:", 16)) {
		const char *cmd = what + 16;
		unsigned mask = !strcmp(cmd, "introspect") ? FOR_EVAL : cmd_mask(cmd);
		for (size_t i = 0; i < NCOPTS; i++) {
			if (!(copts[i].cmds & mask))
				continue;
			printf("--%s\n", copts[i].name);
			if (copts[i].short_name)
				printf("-%c\n", copts[i].short_name);
		}
	} else if (!strcmp(what, "hive-nodes")) {
		struct hive h = HIVE_INIT;
		struct hive_opts o = { 0 };
		struct strvec warnings = STRVEC_INIT, tags = STRVEC_INIT;
		struct nrr_err e = { 0 };
		if (!hive_load(&h, &o, &warnings, &e)) {
			for (size_t i = 0; i < h.nnodes; i++) {
				puts(h.nodes[i].name);
				for (size_t t = 0; t < h.nodes[i].tags.nr; t++)
					if (strvec_find(&tags, h.nodes[i].tags.v[t]) < 0)
						strvec_push(&tags, h.nodes[i].tags.v[t]);
			}
			for (size_t t = 0; t < tags.nr; t++)
				printf("@%s\n", tags.v[t]);
		}
		hive_release(&h);
		strvec_clear(&warnings);
		strvec_clear(&tags);
	} else {
		return 1;
	}
	return 0;
}

int colmena_is_command(const char *name)
{
	/* not "build": that is nixos-rebuild's (colmena's own build is
	 * `apply build`, which is what colmena runs for it) */
	return !strcmp(name, "apply") || !strcmp(name, "eval") ||
	       !strcmp(name, "introspect") || !strcmp(name, "exec") ||
	       !strcmp(name, "apply-local") || !strcmp(name, "upload-keys");
}

static unsigned cmd_mask(const char *cmd)
{
	return !strcmp(cmd, "eval") ? FOR_EVAL : !strcmp(cmd, "exec") ? FOR_EXEC
	       : !strcmp(cmd, "apply-local") ? FOR_LOCAL
	       : FOR_APPLY;	/* apply, build, deploy */
}

void colmena_print_help(const char *cmd)
{
	unsigned mask = cmd_mask(cmd);

	if (!strcmp(cmd, "eval"))
		printf("usage: nixos-rebuild-remote eval [FILE] | -E EXPR [OPTIONS]\n\n"
		       "Evaluates EXPR (or the expression in FILE), a function called with\n"
		       "{ lib, pkgs, nodes } of the hive, and prints its value as JSON.\n");
	else if (!strcmp(cmd, "apply-local"))
		printf("usage: nixos-rebuild-remote apply-local [switch|boot|test|dry-activate] [--sudo] [--node NAME]\n\n"
		       "Builds this machine's node of the hive (--node, or the one named as\n"
		       "its hostname; it needs deployment.allowLocalDeployment) and activates\n"
		       "it here, as the action of the same name does.\n");
	else if (!strcmp(cmd, "exec"))
		printf("usage: nixos-rebuild-remote exec [--on RULES] [-p N] -- COMMAND...\n\n"
		       "Runs COMMAND on each selected node, as targetUser@targetHost (under\n"
		       "its privilegeEscalationCommand when targetUser is not root), over one\n"
		       "ssh connection per node, and shows each line under the node's name.\n"
		       "Exit 0 when it exited 0 everywhere, 12 when it failed on some node.\n");
	else if (!strcmp(cmd, "build"))
		printf("usage: nixos-rebuild-remote apply build [OPTIONS]\n\n"
		       "Builds the systems of the hive's nodes here (a node built on its\n"
		       "target is only evaluated) and prints \"NAME PATH\" for each.\n");
	else if (!strcmp(cmd, "upload-keys") || !strcmp(cmd, "keys"))
		printf("usage: nixos-rebuild-remote upload-keys [OPTIONS]   (or: apply keys)\n\n"
		       "Uploads the deployment.keys of the selected nodes, both stages, and\n"
		       "nothing else: no system is evaluated, built or activated. One ssh\n"
		       "connection and one remote command per node; a key whose content,\n"
		       "owner and mode are right already is not rewritten. Every owner must\n"
		       "exist on the node. Exit 12 when it failed on some node.\n");
	else
		printf("usage: nixos-rebuild-remote apply [push|switch|boot|test|dry-activate|keys] [OPTIONS]\n\n"
		       "Builds the systems of the selected nodes here in one nix call, then\n"
		       "deploys each to deployment.targetUser@targetHost as a fleet does\n"
		       "(--on of switch): one ssh connection per node, at most --parallel at\n"
		       "once; a failing node does not stop the others (exit 12), none\n"
		       "starting is exit 13. push copies without activating. switch, boot\n"
		       "and test upload the nodes' deployment.keys in the same remote command\n"
		       "(--no-keys: without them); keys uploads only those (upload-keys).\n");
	printf("\nThese are colmena's options, with colmena's short forms (-p is\n"
	       "--parallel here, not --profile-name):\n");
	for (size_t i = 0; i < NCOPTS; i++) {
		const struct copt *c = &copts[i];
		char left[64], sh[8] = "    ";
		if (!(c->cmds & mask))
			continue;
		if (c->short_name)
			snprintf(sh, sizeof(sh), "-%c, ", c->short_name);
		snprintf(left, sizeof(left), "%s--%s%s%s", sh, c->name, c->arg ? " " : "",
			 c->arg ? c->arg : "");
		printf("  %-36s %s\n", left, c->help);
	}
}

static const struct copt *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < NCOPTS; i++)
		if (strlen(copts[i].name) == len && !strncmp(copts[i].name, name, len))
			return &copts[i];
	return NULL;
}

static const struct copt *find_short(char c)
{
	for (size_t i = 0; i < NCOPTS; i++)
		if (copts[i].short_name == c)
			return &copts[i];
	return NULL;
}

static int set_option(struct colmena_opts *o, const struct copt *c, const char **val,
		      struct nrr_err *e)
{
	switch (c->id) {
	case C_CONFIG: o->h.config = val[0]; break;
	case C_SHOW_TRACE: strvec_push(&o->nix_args, "--show-trace"); break;
	case C_IMPURE: o->h.impure = 1; break;
	case C_NIX_OPTION:
		strvec_pushl(&o->nix_args, "--option", val[0], val[1], NULL);
		strvec_pushl(&o->nix_options, "--option", val[0], val[1], NULL);
		break;
	case C_VERBOSE: o->verbose = 1; break;
	case C_HELP: o->help = 1; break;
	case C_ON: o->on = val[0]; break;
	case C_PARALLEL:
		if (strspn(val[0], "0123456789") != strlen(val[0]) || !*val[0])
			return nrr_fail(e, NRR_EUSAGE, "--parallel '%s': not a number", val[0]);
		o->parallel = val[0];
		break;
	case C_NO_KEYS: o->no_keys = 1; break;
	case C_SUDO: o->sudo = 1; break;
	case C_NODE: o->node = val[0]; break;
	case C_REBOOT: o->reboot = 1; break;
	case C_NO_SUBSTITUTE: o->no_substitute = 1; break;
	case C_FORCE_REPLACE: o->force_replace = 1; break;
	case C_KEEP_RESULT: o->keep_result = 1; break;
	case C_KEEP_GOING: o->keep_going = 1; break;
	case C_NO_EVAL_CACHE: o->no_eval_cache = 1; break;
	case C_EVAL_NODE_LIMIT:
		if (!strcmp(val[0], "auto")) {
			o->eval_limit = 0;
		} else if (!*val[0] || strspn(val[0], "0123456789") != strlen(val[0]) ||
			   !(o->eval_limit = strtoul(val[0], NULL, 10))) {
			return nrr_fail(e, NRR_EUSAGE, "--eval-node-limit '%s': not a positive number or auto",
					val[0]);
		}
		break;
	case C_BUILD_ON_TARGET: o->build_on_target = 1; break;
	case C_NO_BUILD_ON_TARGET: o->build_on_target = 0; break;
	case C_EXPR: o->expr = val[0]; break;
	case C_INSTANTIATE:
		return nrr_fail(e, NRR_EUSAGE, "eval --instantiate is not supported");
	default: break;	/* accepted; nothing to do for build and eval */
	}
	return 0;
}

int colmena_parse(struct colmena_opts *o, int argc, const char *const *argv, struct nrr_err *e)
{
	const char *cmd = argv[0];
	int only_args = 0;

	o->cmd = !strcmp(cmd, "introspect") ? "eval" : cmd;
	/* colmena's upload-keys is apply keys */
	if (!strcmp(cmd, "upload-keys")) {
		o->goal = "keys";
		cmd = "apply";
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val[2] = { NULL, NULL }, *inl = NULL;
		const struct copt *c = NULL;

		if (!strcmp(cmd, "exec") && (only_args || a[0] != '-' || !a[1] ||
					       !strcmp(a, "--"))) {
			/* the command: everything from here, options of its own included */
			o->command = argv + i + !strcmp(a, "--");
			break;
		}
		if (only_args || a[0] != '-' || !a[1]) {
			if ((!strcmp(cmd, "apply") || !strcmp(cmd, "apply-local")) && !o->goal) {
				o->goal = a;
			} else if (!strcmp(o->cmd, "eval") && !o->file) {
				o->file = a;
			} else {
				return nrr_fail(e, NRR_EUSAGE, "%s: unexpected argument '%s'", cmd, a);
			}
			continue;
		}
		if (!strcmp(a, "--")) {
			only_args = 1;
			continue;
		}
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			c = find_long(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
			inl = eq ? eq + 1 : NULL;
		} else {
			c = find_short(a[1]);
			inl = a[2] ? a + 2 : NULL;
		}
		if (!c || !(c->cmds & cmd_mask(o->cmd))) {
			nrr_fail(e, NRR_EUSAGE, "%s: unknown option '%s'", cmd, a);
			nrr_hint(e, "see 'nixos-rebuild-remote %s --help'", cmd);
			return NRR_EUSAGE;
		}
		if (c->id == C_PASS && c->nargs == 0 && (!inl || !strcmp(c->name, "use-substitutes"))) {
			/* as given (--use-substitutes=auto): options_parse checks it */
			if (!strcmp(c->name, "use-substitutes"))
				o->substitutes_given = 1;
			strvec_push(&o->ours, a);
			continue;
		}
		if (inl && c->nargs != 1)
			return nrr_fail(e, NRR_EUSAGE, "%s: option '%s' takes no value here", cmd, a);
		for (int k = 0; k < c->nargs; k++) {
			if (k == 0 && inl) {
				val[0] = inl;
				continue;
			}
			if (i + 1 >= argc)
				return nrr_fail(e, NRR_EUSAGE, "%s: option '%s' needs %s", cmd, a, c->arg);
			val[k] = argv[++i];
		}
		if (c->id == C_PASS) {
			strvec_pushf(&o->ours, "--%s", c->name);
			strvec_push(&o->ours, val[0]);
			continue;
		}
		if (set_option(o, c, val, e))
			return e->status;
	}
	if (!strcmp(cmd, "apply-local")) {
		if (!o->goal)
			o->goal = "switch";
		if (strcmp(o->goal, "switch") && strcmp(o->goal, "boot") && strcmp(o->goal, "test") &&
		    strcmp(o->goal, "dry-activate"))
			return nrr_fail(e, NRR_EUSAGE,
					"apply-local: unknown goal '%s' (switch, boot, test, dry-activate)",
					o->goal);
	}
	if (!strcmp(cmd, "apply")) {
		size_t g = 0;
		if (!o->goal)
			o->goal = "switch";
		while (goals[g] && strcmp(goals[g], o->goal))
			g++;
		if (!goals[g])
			return nrr_fail(e, NRR_EUSAGE, "apply: unknown goal '%s' (build, push, switch, boot, test, dry-activate, keys)",
					o->goal);
		if (!strcmp(o->goal, "keys") && o->no_keys)
			return nrr_fail(e, NRR_EUSAGE, "apply keys --no-keys: there is nothing else to do");
		if (strcmp(o->goal, "build")) {
			if (o->reboot && strcmp(o->goal, "switch") && strcmp(o->goal, "boot"))
				return nrr_fail(e, NRR_EUSAGE, "apply %s --reboot: only switch and boot reboot",
						o->goal);
			if (o->no_substitute && o->substitutes_given)
				return nrr_fail(e, NRR_EUSAGE,
						"--no-substitute and --use-substitutes contradict each other");
		} else if (o->ours.nr) {
			return nrr_fail(e, NRR_EUSAGE, "apply build: '%s' is for the deploy goals",
					o->ours.v[0]);
		}
		o->cmd = strcmp(o->goal, "build") ? "deploy" : "build";
	}
	return 0;
}
