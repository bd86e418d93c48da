/*
 * colmena: see colmena.h.
 */
#define _GNU_SOURCE
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colmena.h"
#include "hive.h"
#include "hiveeval.h"
#include "hiveexec.h"
#include "nix.h"
#include "quote.h"
#include "strbuf.h"

enum copt_id {
	C_CONFIG, C_SHOW_TRACE, C_IMPURE, C_NIX_OPTION, C_HELP, C_VERBOSE,
	C_ON, C_PARALLEL, C_KEEP_RESULT, C_NO_KEYS, C_REBOOT, C_NO_SUBSTITUTE,
	C_NO_GZIP, C_BUILD_ON_TARGET, C_NO_BUILD_ON_TARGET, C_FORCE_REPLACE,
	C_EVAL_NODE_LIMIT, C_EVALUATOR, C_EXPR, C_INSTANTIATE, C_SUDO, C_NODE, C_KEEP_GOING,
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
	{ "reboot", 0, 0, C_REBOOT, FOR_APPLY, NULL, "(apply's deploy goals: not supported yet)" },
	{ "no-substitute", 0, 0, C_NO_SUBSTITUTE, FOR_APPLY, NULL, "nodes do not substitute: everything is copied from here" },
	{ "no-gzip", 0, 0, C_NO_GZIP, FOR_APPLY, NULL, "accepted for colmena's sake" },
	{ "build-on-target", 0, 0, C_BUILD_ON_TARGET, FOR_APPLY, NULL, "build every node on its target" },
	{ "no-build-on-target", 0, 0, C_NO_BUILD_ON_TARGET, FOR_APPLY, NULL, "build every node here" },
	{ "force-replace-unknown-profiles", 0, 0, C_FORCE_REPLACE, FOR_APPLY, NULL,
	  "replace a system this machine does not know (replaceUnknownProfiles = false), with a warning" },
	{ "eval-node-limit", 0, 1, C_EVAL_NODE_LIMIT, FOR_APPLY, "N|auto",
	  "nodes evaluated at once, over one nix process per core (auto: (available MiB - 1024) / 512)" },
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
	int no_keys, reboot, no_substitute, force_replace, substitutes_given;
	const char *parallel;
	const char *const *command;	/* exec's, NULL-terminated (argv's) */
	struct strvec ours;	/* C_PASS options, as given */
	struct strvec nix_args;	/* --show-trace, --option N V */
	struct strvec nix_options;	/* --option N V only (nix-store) */
	struct hive_opts h;
};

static unsigned cmd_mask(const char *cmd);

static const char *const commands[] = { "apply", "apply-local", "exec", "eval",
					 "introspect", NULL };

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
	       !strcmp(name, "apply-local");
}

static unsigned cmd_mask(const char *cmd)
{
	return !strcmp(cmd, "eval") ? FOR_EVAL : !strcmp(cmd, "exec") ? FOR_EXEC
	       : !strcmp(cmd, "apply-local") ? FOR_LOCAL
	       : FOR_APPLY;	/* apply, build, deploy */
}

static void print_help(const char *cmd)
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
	else
		printf("usage: nixos-rebuild-remote apply [push|switch|boot|test|dry-activate] [OPTIONS]\n\n"
		       "Builds the systems of the selected nodes here in one nix call, then\n"
		       "deploys each to deployment.targetUser@targetHost as a fleet does\n"
		       "(--on of switch): one ssh connection per node, at most --parallel at\n"
		       "once; a failing node does not stop the others (exit 12), none\n"
		       "starting is exit 13. push copies without activating.\n");
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

static int parse(struct colmena_opts *o, int argc, const char *const *argv, struct nrr_err *e)
{
	const char *cmd = argv[0];
	int only_args = 0;

	o->cmd = !strcmp(cmd, "introspect") ? "eval" : cmd;
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
		if (!o->help && !strcmp(o->goal, "keys")) {
			nrr_fail(e, NRR_EUSAGE, "apply %s is not supported yet", o->goal);
			nrr_hint(e, "'apply switch' deploys; keys are not uploaded yet");
			return NRR_EUSAGE;
		}
		if (strcmp(o->goal, "build")) {
			if (o->reboot)
				return nrr_fail(e, NRR_EUSAGE, "apply %s --reboot is not supported yet", o->goal);
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

/* Where .gcroots goes: the hive's directory (a local flake's or hive.nix's). */
static char *context_dir(const struct hive *h)
{
	if (h->where[0] != '/')
		return NULL;
	if (h->kind == HIVE_FLAKE)
		return xstrdup(h->where);
	const char *slash = strrchr(h->where, '/');
	return xstrndup(h->where, slash == h->where ? 1 : (size_t)(slash - h->where));
}

/* Frees what a build of the selected nodes holds, and the hive. */
static void release_selection(struct hive *h, size_t *sel, char **drv, char **out,
			      int *built, size_t n)
{
	for (size_t i = 0; drv && i < n; i++) {
		free(drv[i]);
		free(out[i]);
	}
	free(drv);
	free(out);
	free(built);
	free(sel);
	hive_release(h);
}

static int keep_results(const struct colmena_opts *o, const struct hive *h,
			const size_t *sel, char **out, const int *built, size_t n,
			struct strvec *warnings, struct nrr_err *e)
{
	char *dir = context_dir(h);
	int st = 0;

	if (!dir)
		return nrr_fail(e, NRR_EUSAGE, "--keep-result needs a hive in a local directory, not '%s'",
				h->where);
	for (size_t i = 0; i < n && !st; i++) {
		struct strvec argv = STRVEC_INIT;
		struct strbuf sout = STRBUF_INIT, serr = STRBUF_INIT;
		char why[512];
		if (!built[i])
			continue;
		strvec_pushl(&argv, "nix-store", "--realise", out[i], "--indirect", "--add-root", NULL);
		strvec_pushf(&argv, "%s/.gcroots/node-%s", dir, h->nodes[sel[i]].name);
		strvec_pushvec(&argv, &o->nix_options);
		int r = nix_run(&argv, &sout, &serr, NIX_RUN_QUIET, o->verbose, warnings, e);
		if (r > 0) {
			nix_error_summary(serr.buf, why, sizeof(why));
			st = nrr_fail(e, NRR_EFAIL, "node '%s': cannot keep its system as a GC root: %s",
				      h->nodes[sel[i]].name, why);
		} else if (r < 0) {
			st = e->status;
		}
		strvec_clear(&argv);
		strbuf_release(&sout);
		strbuf_release(&serr);
	}
	free(dir);
	return st;
}

/*
 * Builds the nodes' systems drv[] in one nix-store call (meta.machinesFile
 * as nix's builders), but for nodes built on their target; built[i] says
 * which were. roots, if set: a directory for GC roots. Returns 0 or
 * NRR_EBUILD.
 */
static int realise(const struct colmena_opts *o, const struct hive *h, const size_t *sel,
		   size_t n, char **drv, int *built, const char *roots,
		   struct strvec *warnings, struct nrr_err *e)
{
	int st = 0;
	struct strvec argv = STRVEC_INIT;
	struct strbuf sout = STRBUF_INIT, serr = STRBUF_INIT;
	size_t nbuild = 0;
	strvec_pushl(&argv, "nix-store", "--realise", NULL);
	if (roots) {
		/* GC roots for the deploy's duration */
		strvec_pushl(&argv, "--indirect", "--add-root", NULL);
		strvec_pushf(&argv, "%s/system", roots);
	}
	for (size_t i = 0; i < n; i++) {
		const struct hive_node *node = &h->nodes[sel[i]];
		int on_target = o->build_on_target >= 0 ? o->build_on_target : node->build_on_target;
		if (on_target) {
			fprintf(stderr, "%s: built on its target when deployed (--no-build-on-target builds it here): evaluated only\n",
				node->name);
			continue;
		}
		built[i] = 1;
		nbuild++;
		strvec_push(&argv, drv[i]);
	}
	/* meta.machinesFile: colmena hands it to nix as its builders */
	if (h->machines_file) {
		strvec_pushl(&argv, "--option", "builders", NULL);
		strvec_pushf(&argv, "@%s", h->machines_file);
	}
	strvec_pushvec(&argv, &o->nix_options);
	if (nbuild) {
		int r = nix_run(&argv, &sout, &serr, 0, o->verbose, warnings, e);
		if (r > 0) {
			char why[512];
			nix_error_summary(serr.buf, why, sizeof(why));
			st = nrr_fail(e, NRR_EBUILD, "building the hive's systems failed: %s", why);
		} else if (r < 0) {
			st = e->status;
		}
	}
	strvec_clear(&argv);
	strbuf_release(&sout);
	strbuf_release(&serr);
	return st;
}

/*
 * The systems of the n selected nodes, in bounded parallel (hiveeval.h),
 * each failure shown under its node's name. With -k, the nodes that
 * failed are taken out of sel/drv/out (*n shrinks) and *failed says which
 * (its status 0 when none did); without, the first failure stops it all.
 */
static int evaluate(const struct colmena_opts *o, struct hive *h, size_t *sel, size_t *n,
		    char **drv, char **out, struct nrr_err *failed,
		    struct strvec *warnings, struct nrr_err *e)
{
	struct hive_eval_limits lim = { o->eval_limit, 0 };
	struct strvec why = STRVEC_INIT;
	size_t k = 0;
	int st;

	st = hive_toplevels_limited(h, &o->h, sel, *n, &lim, drv, out, &why, warnings, e);
	for (size_t i = 0; i < why.nr; i++)
		fprintf(stderr, "%s\n", why.v[i]);
	strvec_clear(&why);
	if (st != NRR_EEVAL || !o->keep_going)
		return st;
	for (size_t i = 0; i < *n; i++)
		if (drv[i]) {
			sel[k] = sel[i];
			drv[k] = drv[i];
			out[k++] = out[i];
		}
	if (!k)
		return st;	/* none evaluated: nothing goes on */
	for (size_t i = k; i < *n; i++)
		drv[i] = out[i] = NULL;
	*n = k;
	*failed = *e;
	memset(e, 0, sizeof(*e));
	return 0;
}

static int cmd_build(struct colmena_opts *o, struct strvec *warnings, struct nrr_err *e)
{
	struct nrr_err failed = { 0 };
	struct hive h = HIVE_INIT;
	size_t *sel = NULL, n = 0;
	char **drv = NULL, **out = NULL;
	int *built = NULL, st;

	st = hive_load(&h, &o->h, warnings, e);
	if (!st)
		st = hive_check_apply_all(&h, o->on, e);
	if (!st)
		st = hive_select(&h, o->on, &sel, &n, e);
	if (!st && !n) {
		strvec_pushf(warnings, "no node of the hive matches --on '%s'", o->on ? o->on : "");
		goto out;
	}
	if (st)
		goto out;
	drv = xcalloc(n, sizeof(*drv));
	out = xcalloc(n, sizeof(*out));
	built = xcalloc(n, sizeof(*built));
	st = evaluate(o, &h, sel, &n, drv, out, &failed, warnings, e);
	if (st)
		goto out;

	st = realise(o, &h, sel, n, drv, built, NULL, warnings, e);
	if (!st && o->keep_result)
		st = keep_results(o, &h, sel, out, built, n, warnings, e);
	for (size_t i = 0; !st && i < n; i++)
		if (built[i])
			printf("%s %s\n", h.nodes[sel[i]].name, out[i]);
	if (!st && failed.status) {
		*e = failed;	/* -k: the others were built */
		st = e->status;
	}
out:
	release_selection(&h, sel, drv, out, built, n);
	return st;
}

void colmena_deploy_release(struct colmena_deploy *plan)
{
	strvec_clear(&plan->argv);
	if (plan->members)
		fleet_members_free(plan->members, plan->n);
	plan->members = NULL;
	plan->n = 0;
	if (plan->roots) {
		/* the roots nix-store made (system, system-2, ...) */
		glob_t g;
		char *pat = xstrfmt("%s/*", plan->roots);
		if (!glob(pat, 0, NULL, &g)) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		}
		free(pat);
		rmdir(plan->roots);
		free(plan->roots);
		plan->roots = NULL;
	}
}

/* Whether node can be deployed by what we have; a clear refusal if not. */
static int check_node(const struct colmena_opts *o, const struct hive_node *node,
		      struct nrr_err *e)
{
	if (!node->target_host)
		return nrr_fail(e, NRR_EUSAGE,
				"node '%s' has no deployment.targetHost: only apply-local deploys it",
				node->name);
	if (node->nkeys && !o->no_keys) {
		nrr_fail(e, NRR_EUSAGE, "node '%s' has deployment.keys: uploading keys is not supported yet",
			 node->name);
		nrr_hint(e, "--no-keys deploys without them");
		return NRR_EUSAGE;
	}
	return 0;
}

/*
 * How node's child gains root: not at all for root (or no targetUser);
 * privilegeEscalationCommand as given otherwise. A sudo command is our
 * sudo with its flags (NIX_SUDOOPTS after the user's own), so that -S's
 * password reaches it; any other (doas, run0, ...) runs as given and is
 * never given a password.
 */
static void node_elevation(const struct hive_node *node, struct fleet_member *m)
{
	const struct strvec *c = &node->escalation;
	const char *env = getenv("NIX_SUDOOPTS");
	struct strbuf words = STRBUF_INIT;
	size_t end = c->nr;

	if (!node->target_user || !strcmp(node->target_user, "root") || !c->nr) {
		strvec_pushl(&m->args, "--elevate", "none", NULL);
		return;
	}
	if (strcmp(c->v[0], "sudo")) {
		sq_quote_argv(&words, (const char *const *)c->v);
		strvec_pushl(&m->args, "--elevate-command", words.buf, NULL);
		strbuf_release(&words);
		return;
	}
	strvec_pushl(&m->args, "--elevate", "sudo", NULL);
	/* our sudo ends its options with "--" itself */
	if (end > 1 && !strcmp(c->v[end - 1], "--"))
		end--;
	if (end <= 1)
		return;
	if (env && *env)
		strbuf_addf(&words, "%s ", env);
	for (size_t i = 1; i < end; i++) {
		if (i > 1)
			strbuf_addch(&words, ' ');
		sq_quote_buf(&words, c->v[i]);
	}
	strvec_pushf(&m->env, "NIX_SUDOOPTS=%s", words.buf);
	strbuf_release(&words);
}

/* The fleet member deploying node: its target, system, elevation, ssh options. */
static void node_member(const struct colmena_opts *o, const struct hive_node *node,
			const char *path, struct fleet_member *m)
{
	const char *env = getenv("NIX_SSHOPTS");
	struct strbuf opts = STRBUF_INIT;

	m->name = xstrdup(node->name);
	m->target = node->target_user ? xstrfmt("%s@%s", node->target_user, node->target_host)
				      : xstrdup(node->target_host);
	m->path = xstrdup(path);
	strvec_init(&m->args);
	strvec_init(&m->env);
	node_elevation(node, m);
	/* built on its target: its child gets the derivation (path) and
	 * builds it there, the target being its build host (lib/build.c) */
	if (o->build_on_target >= 0 ? o->build_on_target : node->build_on_target)
		strvec_pushl(&m->args, "--build-host", m->target, NULL);
	/* its child checks the system it replaces (lib/profileguard.h) */
	if (!node->replace_unknown)
		strvec_pushl(&m->args, "--profile-guard", o->force_replace ? "force" : "check", NULL);
	/* the port and sshOptions reach the child's ssh as NIX_SSHOPTS words
	 * after the user's own: each quoted, as split_cmdline reads them
	 * back, never through a shell */
	if (node->target_port || node->ssh_options.nr) {
		if (env && *env)
			strbuf_addf(&opts, "%s ", env);
		if (node->target_port)
			strbuf_addf(&opts, "-p %d", node->target_port);
		for (size_t i = 0; i < node->ssh_options.nr; i++) {
			if (opts.len)
				strbuf_addch(&opts, ' ');
			sq_quote_buf(&opts, node->ssh_options.v[i]);
		}
		strvec_pushf(&m->env, "NIX_SSHOPTS=%s", opts.buf);
	}
	strbuf_release(&opts);
}

static int cmd_deploy(struct colmena_opts *o, struct colmena_deploy *plan,
		      struct strvec *warnings, struct nrr_err *e)
{
	struct hive h = HIVE_INIT;
	size_t *sel = NULL, n = 0;
	char **drv = NULL, **out = NULL;
	int *built = NULL, st;
	char roots[] = "/tmp/nrr-roots.XXXXXX";

	st = hive_load(&h, &o->h, warnings, e);
	if (!st)
		st = hive_check_apply_all(&h, o->on, e);
	if (!st)
		st = hive_select(&h, o->on, &sel, &n, e);
	if (!st && !n) {
		strvec_pushf(warnings, "no node of the hive matches --on '%s'", o->on ? o->on : "");
		goto out;
	}
	for (size_t i = 0; !st && i < n; i++)
		st = check_node(o, &h.nodes[sel[i]], e);
	if (st)
		goto out;
	drv = xcalloc(n, sizeof(*drv));
	out = xcalloc(n, sizeof(*out));
	built = xcalloc(n, sizeof(*built));
	/* none could start: evaluation and build failures are the fleet's 13 */
	st = evaluate(o, &h, sel, &n, drv, out, &plan->eval_failed, warnings, e);
	if (!st) {
		if (mkdtemp(roots))
			plan->roots = xstrdup(roots);
		st = realise(o, &h, sel, n, drv, built, plan->roots, warnings, e);
	}
	if (st) {
		e->status = st = NRR_ENOSTART;
		goto out;
	}
	if (o->keep_result && (st = keep_results(o, &h, sel, out, built, n, warnings, e)))
		goto out;

	struct strvec *a = &plan->argv;
	struct strbuf names = STRBUF_INIT;
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&names, "%s%s", i ? "," : "", h.nodes[sel[i]].name);
	/* push copies only: our build with a target host copies, activates nothing */
	strvec_pushl(a, "nixos-rebuild-remote", strcmp(o->goal, "push") ? o->goal : "build",
		     "--on", names.buf, "--keep-going", "--parallel", o->parallel ? o->parallel : "10",
		     NULL);
	strbuf_release(&names);
	/* colmena lets the targets substitute unless --no-substitute */
	if (!o->no_substitute && !o->substitutes_given)
		strvec_push(a, "--use-substitutes");
	if (o->verbose)
		strvec_push(a, "-v");
	strvec_pushvec(a, &o->nix_options);
	strvec_pushvec(a, &o->ours);
	plan->members = xcalloc(n, sizeof(*plan->members));
	for (size_t i = 0; i < n; i++)
		node_member(o, &h.nodes[sel[i]], built[i] ? out[i] : drv[i], &plan->members[i]);
	plan->n = n;
out:
	release_selection(&h, sel, drv, out, built, n);
	return st;
}

static int cmd_exec(struct colmena_opts *o, struct strvec *warnings, struct nrr_err *e)
{
	struct hive h = HIVE_INIT;
	size_t *sel = NULL, n = 0;
	int st;

	if (!o->command || !o->command[0]) {
		nrr_fail(e, NRR_EUSAGE, "exec: no command given");
		nrr_hint(e, "nixos-rebuild-remote exec --on @web -- uptime");
		return NRR_EUSAGE;
	}
	st = hive_load(&h, &o->h, warnings, e);
	if (!st)
		st = hive_select(&h, o->on, &sel, &n, e);
	if (!st && !n)
		strvec_pushf(warnings, "no node of the hive matches --on '%s'", o->on ? o->on : "");
	else if (!st)
		st = hive_exec(&h, sel, n, o->command, o->parallel ? atoi(o->parallel) : 0,
			       o->verbose, warnings, e);
	free(sel);
	hive_release(&h);
	return st;
}

/* apply-local: this machine's node, built here; plan->argv the deploy of
 * its system here for main to run. */
static int cmd_local(struct colmena_opts *o, struct colmena_deploy *plan,
		     struct strvec *warnings, struct nrr_err *e)
{
	struct hive h = HIVE_INIT;
	char host[256] = "", *drv = NULL, *out = NULL;
	const struct hive_node *node = NULL;
	const char *name = o->node;
	int built = 0, st;
	size_t sel = 0;
	char roots[] = "/tmp/nrr-roots.XXXXXX";

	if (!name) {
		if (gethostname(host, sizeof(host) - 1))
			return nrr_fail(e, NRR_EFAIL, "apply-local: cannot read this machine's hostname");
		name = host;
	}
	st = hive_load(&h, &o->h, warnings, e);
	if (!st && !(node = hive_node(&h, name))) {
		nrr_fail(e, NRR_EUSAGE, "apply-local: the hive has no node '%s'", name);
		if (!o->node)
			nrr_hint(e, "that is this machine's hostname; --node NAME names another node");
		st = NRR_EUSAGE;
	}
	if (!st && !node->allow_local) {
		nrr_fail(e, NRR_EUSAGE, "node '%s' does not allow local deployment", name);
		nrr_hint(e, "set deployment.allowLocalDeployment = true for it");
		st = NRR_EUSAGE;
	}
	if (!st && node->nkeys && !o->no_keys) {
		nrr_fail(e, NRR_EUSAGE, "node '%s' has deployment.keys: apply-local does not upload keys yet",
			 name);
		nrr_hint(e, "--no-keys deploys without them");
		st = NRR_EUSAGE;
	}
	if (st)
		goto out;
	sel = (size_t)(node - h.nodes);
	o->build_on_target = 0;	/* here is its target */
	st = hive_toplevels(&h, &o->h, &sel, 1, &drv, &out, warnings, e);
	if (!st) {
		if (mkdtemp(roots))
			plan->roots = xstrdup(roots);
		st = realise(o, &h, &sel, 1, &drv, &built, plan->roots, warnings, e);
	}
	if (st)
		goto out;
	strvec_pushl(&plan->argv, "nixos-rebuild-remote", o->goal, "--store-path", out, NULL);
	if (o->sudo)
		strvec_pushl(&plan->argv, "--elevate", "sudo", NULL);
	if (o->verbose)
		strvec_push(&plan->argv, "-v");
	strvec_pushvec(&plan->argv, &o->nix_options);
	plan->local = 1;
out:
	free(drv);
	free(out);
	hive_release(&h);
	return st;
}

static int cmd_eval(struct colmena_opts *o, struct strvec *warnings, struct nrr_err *e)
{
	struct hive h = HIVE_INIT;
	struct strbuf text = STRBUF_INIT, json = STRBUF_INIT;
	int st;

	if (o->expr && o->file)
		return nrr_fail(e, NRR_EUSAGE, "eval: give either FILE or -E EXPR, not both");
	if (!o->expr && !o->file) {
		nrr_fail(e, NRR_EUSAGE, "eval: no expression");
		nrr_hint(e, "nixos-rebuild-remote eval -E '{ nodes, ... }: builtins.attrNames nodes'");
		return NRR_EUSAGE;
	}
	if (o->file && strbuf_read_file(&text, o->file) < 0)
		return nrr_fail(e, NRR_EUSAGE, "eval: cannot read '%s'", o->file);
	st = hive_find(&h, &o->h, e);
	if (!st)
		st = hive_introspect(&h, &o->h, o->expr ? o->expr : text.buf, &json, warnings, e);
	if (!st)
		printf("%s\n", json.buf);
	strbuf_release(&text);
	strbuf_release(&json);
	hive_release(&h);
	return st;
}

int colmena_main(int argc, const char *const *argv, struct strvec *warnings,
		 struct colmena_deploy *plan, struct nrr_err *e)
{
	struct colmena_opts o;
	int st;

	memset(&o, 0, sizeof(o));
	o.build_on_target = -1;
	strvec_init(&o.nix_args);
	strvec_init(&o.nix_options);
	strvec_init(&o.ours);
	st = parse(&o, argc, argv, e);
	o.h.nix_args = &o.nix_args;
	o.h.verbose = o.verbose;
	if (!st && o.help)
		print_help(o.cmd);
	else if (!st)
		st = !strcmp(o.cmd, "eval") ? cmd_eval(&o, warnings, e)
		     : !strcmp(o.cmd, "deploy") ? cmd_deploy(&o, plan, warnings, e)
		     : !strcmp(o.cmd, "exec") ? cmd_exec(&o, warnings, e)
		     : !strcmp(o.cmd, "apply-local") ? cmd_local(&o, plan, warnings, e)
		     : cmd_build(&o, warnings, e);
	strvec_clear(&o.nix_args);
	strvec_clear(&o.ours);
	strvec_clear(&o.nix_options);
	return st;
}
