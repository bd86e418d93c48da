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
#include "nix.h"
#include "quote.h"
#include "strbuf.h"

enum copt_id {
	C_CONFIG, C_SHOW_TRACE, C_IMPURE, C_NIX_OPTION, C_HELP, C_VERBOSE,
	C_ON, C_PARALLEL, C_KEEP_RESULT, C_NO_KEYS, C_REBOOT, C_NO_SUBSTITUTE,
	C_NO_GZIP, C_BUILD_ON_TARGET, C_NO_BUILD_ON_TARGET, C_FORCE_REPLACE,
	C_EVAL_NODE_LIMIT, C_EVALUATOR, C_EXPR, C_INSTANTIATE,
	C_PASS,		/* one of our own options, handed to the fleet as it is */
};

/* Which commands take an option. */
#define FOR_ALL 0x7
#define FOR_APPLY 0x1	/* apply and build */
#define FOR_EVAL 0x2

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
	{ "on", 0, 1, C_ON, FOR_APPLY, "RULES",
	  "the nodes: comma-separated globs of names, @GLOB for tags" },
	{ "parallel", 'p', 1, C_PARALLEL, FOR_APPLY, "N", "nodes at once (colmena's -p; 0: no limit)" },
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
	{ "no-keys", 0, 0, C_NO_KEYS, FOR_APPLY, NULL, "deploy nodes that have deployment.keys without their keys" },
	{ "reboot", 0, 0, C_REBOOT, FOR_APPLY, NULL,
	  "(switch, boot) reboot each node after activation and prove it runs the new system" },
	{ "reboot-timeout", 0, 1, C_PASS, FOR_APPLY, "SECONDS", "--reboot's wait for a node (default 300)" },
	{ "no-substitute", 0, 0, C_NO_SUBSTITUTE, FOR_APPLY, NULL, "nodes do not substitute: everything is copied from here" },
	{ "no-gzip", 0, 0, C_NO_GZIP, FOR_APPLY, NULL, "accepted for colmena's sake" },
	{ "build-on-target", 0, 0, C_BUILD_ON_TARGET, FOR_APPLY, NULL, "build every node on its target" },
	{ "no-build-on-target", 0, 0, C_NO_BUILD_ON_TARGET, FOR_APPLY, NULL, "build every node here" },
	{ "force-replace-unknown-profiles", 0, 0, C_FORCE_REPLACE, FOR_APPLY, NULL,
	  "(apply's deploy goals: not supported yet)" },
	{ "eval-node-limit", 0, 1, C_EVAL_NODE_LIMIT, FOR_APPLY, "N|auto", "accepted for colmena's sake" },
	{ "evaluator", 0, 1, C_EVALUATOR, FOR_APPLY, "chunked|streaming", "accepted for colmena's sake" },
	{ "expr", 'E', 1, C_EXPR, FOR_EVAL, "EXPR",
	  "a function of { lib, pkgs, nodes }; its value is printed as JSON" },
	{ "instantiate", 0, 0, C_INSTANTIATE, FOR_EVAL, NULL, "(not supported)" },
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
	int no_keys, reboot, no_substitute, force_replace, substitutes_given;
	const char *parallel;
	struct strvec ours;	/* C_PASS options, as given */
	struct strvec nix_args;	/* --show-trace, --option N V */
	struct strvec nix_options;	/* --option N V only (nix-store) */
	struct hive_opts h;
};

int colmena_is_command(const char *name)
{
	/* not "build": that is nixos-rebuild's (colmena's own build is
	 * `apply build`, which is what colmena runs for it) */
	return !strcmp(name, "apply") || !strcmp(name, "eval") ||
	       !strcmp(name, "introspect");
}

static unsigned cmd_mask(const char *cmd)
{
	return !strcmp(cmd, "eval") ? FOR_EVAL : FOR_APPLY;	/* apply, build, deploy */
}

static void print_help(const char *cmd)
{
	unsigned mask = cmd_mask(cmd);

	if (!strcmp(cmd, "eval"))
		printf("usage: nixos-rebuild-remote eval [FILE] | -E EXPR [OPTIONS]\n\n"
		       "Evaluates EXPR (or the expression in FILE), a function called with\n"
		       "{ lib, pkgs, nodes } of the hive, and prints its value as JSON.\n");
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
	case C_REBOOT: o->reboot = 1; break;
	case C_NO_SUBSTITUTE: o->no_substitute = 1; break;
	case C_FORCE_REPLACE: o->force_replace = 1; break;
	case C_KEEP_RESULT: o->keep_result = 1; break;
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

		if (only_args || a[0] != '-' || !a[1]) {
			if (!strcmp(cmd, "apply") && !o->goal) {
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
			if (o->reboot && strcmp(o->goal, "switch") && strcmp(o->goal, "boot"))
				return nrr_fail(e, NRR_EUSAGE, "apply %s --reboot: only switch and boot reboot",
						o->goal);
			if (o->force_replace)
				return nrr_fail(e, NRR_EUSAGE,
						"apply %s --force-replace-unknown-profiles is not supported yet",
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

static int cmd_build(struct colmena_opts *o, struct strvec *warnings, struct nrr_err *e)
{
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
	st = hive_toplevels(&h, &o->h, sel, n, drv, out, warnings, e);
	if (st)
		goto out;

	st = realise(o, &h, sel, n, drv, built, NULL, warnings, e);
	if (!st && o->keep_result)
		st = keep_results(o, &h, sel, out, built, n, warnings, e);
	for (size_t i = 0; !st && i < n; i++)
		if (built[i])
			printf("%s %s\n", h.nodes[sel[i]].name, out[i]);
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
	int on_target = o->build_on_target >= 0 ? o->build_on_target : node->build_on_target;

	if (!node->target_host)
		return nrr_fail(e, NRR_EUSAGE,
				"node '%s' has no deployment.targetHost: apply-local is not supported yet",
				node->name);
	if (on_target) {
		nrr_fail(e, NRR_EUSAGE,
			 "node '%s': building on the target (buildOnTarget) is not supported yet by apply %s",
			 node->name, o->goal);
		nrr_hint(e, "--no-build-on-target builds it here");
		return NRR_EUSAGE;
	}
	if (node->nkeys && !o->no_keys) {
		nrr_fail(e, NRR_EUSAGE, "node '%s' has deployment.keys: uploading keys is not supported yet",
			 node->name);
		nrr_hint(e, "--no-keys deploys without them");
		return NRR_EUSAGE;
	}
	if (!node->replace_unknown)
		return nrr_fail(e, NRR_EUSAGE,
				"node '%s': deployment.replaceUnknownProfiles = false is not supported yet",
				node->name);
	if (node->target_user && strcmp(node->target_user, "root")) {
		const struct strvec *c = &node->escalation;
		if (c->nr != 3 || strcmp(c->v[0], "sudo") || strcmp(c->v[1], "-H") ||
		    strcmp(c->v[2], "--"))
			return nrr_fail(e, NRR_EUSAGE,
					"node '%s': deployment.privilegeEscalationCommand other than "
					"[ \"sudo\" \"-H\" \"--\" ] is not supported yet", node->name);
	}
	return 0;
}

/* The fleet member deploying node: its target, system, elevation, ssh options. */
static void node_member(const struct hive_node *node, const char *path,
			struct fleet_member *m)
{
	const char *env = getenv("NIX_SSHOPTS");
	struct strbuf opts = STRBUF_INIT;

	m->name = xstrdup(node->name);
	m->target = node->target_user ? xstrfmt("%s@%s", node->target_user, node->target_host)
				      : xstrdup(node->target_host);
	m->path = xstrdup(path);
	strvec_init(&m->args);
	strvec_init(&m->env);
	strvec_pushl(&m->args, "--elevate",
		     node->target_user && strcmp(node->target_user, "root") ? "sudo" : "none", NULL);
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
	st = hive_toplevels(&h, &o->h, sel, n, drv, out, warnings, e);
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
	if (o->reboot)
		strvec_push(a, "--reboot");
	strvec_pushvec(a, &o->nix_options);
	strvec_pushvec(a, &o->ours);
	plan->members = xcalloc(n, sizeof(*plan->members));
	for (size_t i = 0; i < n; i++)
		node_member(&h.nodes[sel[i]], out[i], &plan->members[i]);
	plan->n = n;
out:
	release_selection(&h, sel, drv, out, built, n);
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
		     : cmd_build(&o, warnings, e);
	strvec_clear(&o.nix_args);
	strvec_clear(&o.ours);
	strvec_clear(&o.nix_options);
	return st;
}
