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
#include "colmenabuild.h"
#include "colmenaopts.h"
#include "hive.h"
#include "hiveeval.h"
#include "hiveexec.h"
#include "nix.h"
#include "quote.h"
#include "strbuf.h"

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

/*
 * Loads the hive and the nodes --on selects into *sel (the caller frees
 * it), refusing a bare apply where allowApplyAll is false. No node is not
 * an error: a warning, and *n is 0. Returns 0 or the status with e filled.
 */
static int load_selection(const struct colmena_opts *o, struct hive *h, size_t **sel,
			  size_t *n, struct strvec *warnings, struct nrr_err *e)
{
	struct hive_eval_limits lim = { o->eval_limit, 0 };
	struct hive_opts ho = o->h;
	/* every node's system wanted: evaluated with the info (hiveeval.h);
	 * the keys goal wants no system */
	if (!o->on && strcmp(o->goal ? o->goal : "", "keys"))
		ho.prefetch = &lim;
	int st = hive_load(h, &ho, warnings, e);
	if (!st)
		st = hive_check_apply_all(h, o->on, e);
	if (!st)
		st = hive_select(h, o->on, sel, n, e);
	if (!st && !*n)
		strvec_pushf(warnings, "no node of the hive matches --on '%s'", o->on ? o->on : "");
	return st;
}

static int cmd_build(struct colmena_opts *o, struct strvec *warnings, struct nrr_err *e)
{
	struct nrr_err failed = { 0 };
	struct hive h = HIVE_INIT;
	size_t *sel = NULL, n = 0;
	char **drv = NULL, **out = NULL;
	int *built = NULL, st;

	st = load_selection(o, &h, &sel, &n, warnings, e);
	if (st || !n)
		goto out;
	drv = xcalloc(n, sizeof(*drv));
	out = xcalloc(n, sizeof(*out));
	built = xcalloc(n, sizeof(*built));
	st = evaluate(o, &h, sel, &n, drv, out, &failed, warnings, e);
	if (st)
		goto out;

	st = colmena_realise(o, &h, sel, n, drv, built, NULL, warnings, e);
	if (!st && o->keep_result)
		st = colmena_keep_results(o, &h, sel, out, built, n, warnings, e);
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

void colmena_deploy_init(struct colmena_deploy *plan)
{
	memset(plan, 0, sizeof(*plan));
	strvec_init(&plan->argv);
	strvec_init(&plan->build.argv);
	strvec_init(&plan->build.outs);
	strvec_init(&plan->build.closure);
}

void colmena_deploy_release(struct colmena_deploy *plan)
{
	if (plan->keys) {
		keyset_release(plan->keys);
		free(plan->keys);
		plan->keys = NULL;
	}
	free(plan->keys_node);
	plan->keys_node = NULL;
	strvec_clear(&plan->argv);
	strvec_clear(&plan->build.argv);
	strvec_clear(&plan->build.outs);
	strvec_clear(&plan->build.closure);
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
	(void)o;
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
	m->path = path ? xstrdup(path) : NULL;
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

/* Whether goal uploads keys: colmena's goals that activate. */
static int goal_has_keys(const struct colmena_opts *o)
{
	return !o->no_keys && (!strcmp(o->goal, "switch") || !strcmp(o->goal, "boot") ||
			       !strcmp(o->goal, "test") || !strcmp(o->goal, "keys"));
}

/*
 * The keys of the n nodes sel[] go to their fleet members (moved out of
 * the hive, their texts read first: one evaluation). keyFile and
 * keyCommand are read by each node's child, once, before it touches its
 * host (lib/keys.h).
 */
static int members_keys(const struct colmena_opts *o, struct hive *h, const size_t *sel,
			size_t n, struct fleet_member *m, struct strvec *warnings,
			struct nrr_err *e)
{
	int st = hive_key_texts(h, &o->h, sel, n, warnings, e);

	for (size_t i = 0; !st && i < n; i++) {
		struct keyset *ks = &h->nodes[sel[i]].keys;
		if (!ks->nr)
			continue;
		m[i].keys = xmalloc(sizeof(*m[i].keys));
		*m[i].keys = *ks;
		*ks = (struct keyset)KEYSET_INIT;
	}
	return st;
}

/* apply keys (upload-keys): the nodes with keys, nothing built; each
 * child uploads its node's keys over its own connection. */
static int cmd_keys(struct colmena_opts *o, struct colmena_deploy *plan, struct hive *h,
		    size_t *sel, size_t n, struct strvec *warnings, struct nrr_err *e)
{
	struct strbuf names = STRBUF_INIT;
	size_t k = 0;
	int st;

	for (size_t i = 0; i < n; i++)
		if (h->nodes[sel[i]].keys.nr)
			sel[k++] = sel[i];
	if (!k) {
		strvec_push(warnings, "no selected node has deployment.keys: nothing to upload");
		return 0;
	}
	plan->members = xcalloc(k, sizeof(*plan->members));
	for (size_t i = 0; i < k; i++) {
		node_member(o, &h->nodes[sel[i]], NULL, &plan->members[i]);
		strbuf_addf(&names, "%s%s", i ? "," : "", h->nodes[sel[i]].name);
	}
	plan->n = k;
	st = members_keys(o, h, sel, k, plan->members, warnings, e);
	/* the child's action is not used: --keys-only stops it before */
	strvec_pushl(&plan->argv, "nixos-rebuild-remote", "test", "--on", names.buf,
		     "--keep-going", "--parallel", o->parallel ? o->parallel : "10",
		     "--keys-only", NULL);
	strbuf_release(&names);
	if (o->verbose)
		strvec_push(&plan->argv, "-v");
	strvec_pushvec(&plan->argv, &o->ours);
	return st;
}

static int cmd_deploy(struct colmena_opts *o, struct colmena_deploy *plan,
		      struct strvec *warnings, struct nrr_err *e)
{
	struct hive h = HIVE_INIT;
	size_t *sel = NULL, n = 0;
	char **drv = NULL, **out = NULL;
	int *built = NULL, st;
	char roots[] = "/tmp/nrr-roots.XXXXXX";

	st = load_selection(o, &h, &sel, &n, warnings, e);
	if (!st && !n)
		goto out;
	for (size_t i = 0; !st && i < n; i++)
		st = check_node(o, &h.nodes[sel[i]], e);
	if (!st && !strcmp(o->goal, "keys")) {
		st = cmd_keys(o, plan, &h, sel, n, warnings, e);
		goto out;
	}
	if (st)
		goto out;
	drv = xcalloc(n, sizeof(*drv));
	out = xcalloc(n, sizeof(*out));
	built = xcalloc(n, sizeof(*built));
	/* none could start: evaluation and build failures are the fleet's 13 */
	st = evaluate(o, &h, sel, &n, drv, out, &plan->eval_failed, warnings, e);
	if (st) {
		e->status = st = NRR_ENOSTART;
		goto out;
	}
	if (mkdtemp(roots))
		plan->roots = xstrdup(roots);
	/* the fleet dumps the closures' registrations once it is built */
	plan->build.closure_too = !o->keep_result;
	colmena_realise_plan(o, &h, sel, n, drv, built, plan->roots, &plan->build);
	for (size_t i = 0; i < n; i++)
		if (built[i])
			strvec_push(&plan->build.outs, out[i]);
	/* The build runs while the nodes' children connect and take their
	 * locks (fleet_deploy's prepare), unless --keep-result wants the
	 * systems before */
	if (o->keep_result &&
	    ((st = colmena_build_run(&plan->build, warnings, e)) ||
	     (st = colmena_keep_results(o, &h, sel, out, built, n, warnings, e))))
		goto out;
	if (o->keep_result)
		strvec_clear(&plan->build.argv);

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
		node_member(o, &h.nodes[sel[i]], built[i] ? out[i] : drv[i], &plan->members[i]);
	plan->n = n;
	if (goal_has_keys(o) && (st = members_keys(o, &h, sel, n, plan->members, warnings, e)))
		goto out;
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
	if (st)
		goto out;
	sel = (size_t)(node - h.nodes);
	/* its keys go through the local activation's conversation, as a
	 * remote one's do (main hands them to the deploy: deploykeys.h) */
	if (node->keys.nr && goal_has_keys(o)) {
		if ((st = hive_key_texts(&h, &o->h, &sel, 1, warnings, e)))
			goto out;
		plan->keys = xmalloc(sizeof(*plan->keys));
		*plan->keys = h.nodes[sel].keys;
		h.nodes[sel].keys = (struct keyset)KEYSET_INIT;
		plan->keys_node = xstrdup(name);
	}
	o->build_on_target = 0;	/* here is its target */
	st = hive_toplevels(&h, &o->h, &sel, 1, &drv, &out, warnings, e);
	if (!st) {
		if (mkdtemp(roots))
			plan->roots = xstrdup(roots);
		st = colmena_realise(o, &h, &sel, 1, &drv, &built, plan->roots, warnings, e);
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
	st = colmena_parse(&o, argc, argv, e);
	o.h.nix_args = &o.nix_args;
	o.h.verbose = o.verbose;
	o.h.eval_cache = !o.no_eval_cache;
	if (!st && o.help)
		colmena_print_help(o.goal && !strcmp(o.goal, "keys") ? "keys" : o.cmd);
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

int colmena_on_has_tag(const char *on)
{
	for (const char *p = on; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (*p == '@')
			return 1;
	return 0;
}

int colmena_tag_plan(const struct options *o, struct colmena_deploy *plan,
		     struct strvec *warnings, struct nrr_err *e)
{
	const char *act = o->action;
	struct strvec av = STRVEC_INIT;
	char *ref = NULL, *name = NULL;
	int ret;

	if (strcmp(act, "switch") && strcmp(act, "boot") && strcmp(act, "test") &&
	    strcmp(act, "dry-activate"))
		return nrr_fail(e, NRR_EUSAGE,
				"--on '%s': a hive's @tags work with switch, boot, test and dry-activate",
				o->on);
	nix_split_flake(o->flake, &ref, &name);
	if (*name) {
		ret = nrr_fail(e, NRR_EUSAGE, "--on '%s' selects the hive's nodes: --flake '%s' names one",
			       o->on, o->flake);
		goto out;
	}
	strvec_pushl(&av, "apply", act, "-f", ref, "--on", o->on, NULL);
	if (o->verbose > 0)
		strvec_push(&av, "-v");
	ret = colmena_main((int)av.nr, (const char *const *)av.v, warnings, plan, e);
out:
	strvec_clear(&av);
	free(ref);
	free(name);
	return ret;
}
