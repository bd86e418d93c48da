#define _GNU_SOURCE
#include "fleet.h"
#include "fleetbuild.h"
#include "action.h"
#include "build.h"
#include "closure.h"
#include "nix.h"
#include "quote.h"
#include "resources.h"
#include "run.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void push_flake_flags(const struct options *o, struct strvec *argv)
{
	strvec_pushvec(argv, &o->nix_common);
	strvec_pushvec(argv, &o->nix_build);
	strvec_pushvec(argv, &o->nix_flake_common);
	strvec_pushvec(argv, &o->nix_flake_eval);
}

int fleet_flake_names(const struct options *o, const char *ref,
		      struct strvec *names, struct strvec *warnings,
		      struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	char why[512];
	int ret = 0;

	strvec_pushl(&argv, "nix", "--extra-experimental-features",
		     "nix-command flakes", "eval", "--json", NULL);
	strvec_pushf(&argv, "%s#nixosConfigurations", ref);
	strvec_pushl(&argv, "--apply", "builtins.attrNames", NULL);
	strvec_pushvec(&argv, &o->nix_flake_eval);
	int st = nix_run(&argv, &out, &err, NIX_RUN_QUIET, o->verbose, warnings, e);
	if (st < 0) {
		ret = e->status;
	} else if (st) {
		nix_error_summary(err.buf, why, sizeof(why));
		ret = nrr_fail(e, NRR_ENOSTART, "evaluating '%s#nixosConfigurations' failed: %s",
			       ref, why);
	} else {
		cJSON *arr = cJSON_Parse(out.buf), *it;
		cJSON_ArrayForEach(it, arr)
			if (cJSON_IsString(it))
				strvec_push(names, it->valuestring);
		cJSON_Delete(arr);
	}
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

/* Hosts per evaluator below which another one does not pay: each evaluator
 * starts by evaluating what every system shares (nixpkgs, the modules). */
#define EVAL_MIN_HOSTS 8
/* What one evaluator of a NixOS system may take, for the default number. */
#define EVAL_BYTES (2ULL << 30)

/*
 * Whether this machine's Nix store has been opened before (its state
 * directory's gcroots exist). Nix (2.8 and later: LocalStore's
 * constructor) makes gcroots and its "profiles" link the first time a
 * process opens the store without a daemon, and two doing so at once race:
 * one fails with "creating symlink from '.../gcroots/profiles' ...: File
 * exists" (seen with two evaluators on a fresh machine). With a daemon the
 * daemon made them long ago, and this is true.
 */
static int store_opened_before(void)
{
	const char *state = getenv("NIX_STATE_DIR");
	char *gcroots = xstrfmt("%s/gcroots", state && *state ? state : "/nix/var/nix");
	int yes = access(gcroots, F_OK) == 0;
	free(gcroots);
	return yes;
}

/* How many nix processes evaluate the n hosts' systems at once: --eval-jobs,
 * or one per EVAL_MIN_HOSTS hosts, at most one per core and per EVAL_BYTES
 * of available memory; one on a store never opened (store_opened_before). */
static size_t eval_jobs(const struct options *o, size_t n)
{
	size_t jobs;
	if (o->eval_jobs > 0) {
		jobs = (size_t)o->eval_jobs;
	} else {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned long long mem = mem_available();
		jobs = (n + EVAL_MIN_HOSTS - 1) / EVAL_MIN_HOSTS;
		if (cores > 0 && jobs > (size_t)cores)
			jobs = (size_t)cores;
		if (mem && jobs > mem / EVAL_BYTES)
			jobs = (size_t)(mem / EVAL_BYTES);
	}
	if (jobs > n)
		jobs = n;
	if (jobs > 1 && !store_opened_before())
		jobs = 1;
	return jobs ? jobs : 1;
}

/* The nix command that prints, as JSON by name, the drv and out paths of
 * the systems of hosts[0..count). Names were checked by
 * nix_check_config_name: safe in "...". */
static void eval_argv(const struct options *o, const char *ref,
		      const struct fleet_host *hosts, size_t count, struct strvec *argv)
{
	struct strbuf expr = STRBUF_INIT;
	strbuf_addstr(&expr, "cs: builtins.listToAttrs (map (n: { name = n; value = "
		      "let t = cs.${n}.config.system.build.toplevel; in "
		      "{ drv = t.drvPath; out = t.outPath; }; }) [");
	for (size_t i = 0; i < count; i++)
		strbuf_addf(&expr, " \"%s\"", hosts[i].m.name);
	strbuf_addstr(&expr, " ])");
	strvec_pushl(argv, "nix", "--extra-experimental-features",
		     "nix-command flakes", "eval", "--json", NULL);
	strvec_pushf(argv, "%s#nixosConfigurations", ref);
	strvec_pushl(argv, "--apply", expr.buf, NULL);
	push_flake_flags(o, argv);
	strbuf_release(&expr);
}

/* One evaluator's share of the hosts, and what it said. */
struct eval_group {
	size_t first, count;
	struct strbuf out, err;
	int status;
};

/*
 * Evaluates the k groups, at_once at a time (one nix process each; nix_run
 * when there is one, for its handling of flags this nix lacks). Returns 0
 * with each group's status set, or -1 with e filled if nix could not be
 * started.
 */
static int eval_groups(const struct options *o, const char *ref, struct fleet_host *hosts,
		       struct eval_group *g, size_t k, size_t at_once, struct strvec *warnings,
		       struct nrr_err *e)
{
	if (k == 1) {
		struct strvec argv = STRVEC_INIT;
		eval_argv(o, ref, hosts + g->first, g->count, &argv);
		g->status = nix_run(&argv, &g->out, &g->err, 0, o->verbose, warnings, e);
		strvec_clear(&argv);
		return g->status < 0 ? -1 : 0;
	}
	struct child *cs = xcalloc(k, sizeof(*cs));
	struct strbuf *outs = xcalloc(k, sizeof(*outs)), *errs = xcalloc(k, sizeof(*errs));
	int *sts = xcalloc(k, sizeof(*sts));
	for (size_t i = 0; i < k; i++) {
		child_init(&cs[i]);
		cs[i].stop_group = 1;	/* an interrupt ends it at once */
		eval_argv(o, ref, hosts + g[i].first, g[i].count, &cs[i].args);
		strbuf_init(&outs[i]);
		strbuf_init(&errs[i]);
		sts[i] = -1;
		if (o->verbose)
			sq_trace_argv((const char *const *)cs[i].args.v);
	}
	int r = child_capture_all(cs, k, at_once, outs, errs, sts, e);
	for (size_t i = 0; i < k; i++) {
		strbuf_release(&g[i].out);
		strbuf_release(&g[i].err);
		g[i].out = outs[i];
		g[i].err = errs[i];
		g[i].status = sts[i];
		child_clear(&cs[i]);
	}
	free(cs);
	free(outs);
	free(errs);
	free(sts);
	return r;
}

/* Sets the paths of g's hosts from its JSON and pushes their drvs. */
static int take_paths(struct fleet_host *hosts, const struct eval_group *g,
		      struct strvec *drvs, struct nrr_err *e)
{
	cJSON *all = cJSON_Parse(g->out.buf);
	int ret = 0;
	for (size_t i = g->first; i < g->first + g->count; i++) {
		cJSON *h = cJSON_GetObjectItemCaseSensitive(all, hosts[i].m.name);
		cJSON *drv = cJSON_GetObjectItemCaseSensitive(h, "drv");
		cJSON *p = cJSON_GetObjectItemCaseSensitive(h, "out");
		if (!cJSON_IsString(drv) || !cJSON_IsString(p)) {
			ret = nrr_fail(e, NRR_ENOSTART, "nix gave no system for '%s'",
				       hosts[i].m.name);
			break;
		}
		hosts[i].path = xstrdup(p->valuestring);
		strvec_push(drvs, drv->valuestring);
	}
	cJSON_Delete(all);
	return ret;
}

/* With -k: the host whose evaluation failed is done, failed, and named. */
static void eval_failed(struct fleet_host *h, const char *err)
{
	char why[512];
	nix_error_summary(err, why, sizeof(why));
	h->state = H_DONE;
	h->status = NRR_EEVAL;
	snprintf(h->step, sizeof(h->step), "evaluate");
	snprintf(h->message, sizeof(h->message), "evaluating its system failed: %s", why);
	fprintf(stderr, "error: %s: evaluating its system failed: %s\n", h->m.name, why);
}

/*
 * Evaluates the hosts' systems, jobs groups at once. Without -k the first
 * failure fails them all. With -k a failed group's hosts are evaluated
 * again one by one, so that only the hosts whose own evaluation fails are
 * failed (eval_failed) while the others go on.
 */
static int eval_hosts(const struct options *o, const char *ref, struct fleet_host *hosts,
		      size_t n, struct strvec *drvs, struct strvec *warnings, struct nrr_err *e)
{
	size_t jobs = eval_jobs(o, n), ok = 0;
	struct eval_group *g = xcalloc(n, sizeof(*g));
	int ret = 0;

	for (size_t i = 0, first = 0; i < jobs; i++) {
		g[i].first = first;
		g[i].count = n / jobs + (i < n % jobs);
		first += g[i].count;
	}
	for (size_t i = 0; i < n; i++) {
		strbuf_init(&g[i].out);
		strbuf_init(&g[i].err);
	}
	if (eval_groups(o, ref, hosts, g, jobs, jobs, warnings, e)) {
		ret = e->status;
		goto out;
	}
	/* every group failed: what they share does not evaluate, not one host */
	size_t failed_groups = 0;
	for (size_t i = 0; i < jobs; i++)
		failed_groups += g[i].status != 0;
	/* the hosts of failed groups, one per group, evaluated jobs at a time */
	size_t nsingle = 0;
	struct eval_group *single = xcalloc(n, sizeof(*single));
	for (size_t i = 0; i < jobs && !ret; i++) {
		if (!g[i].status) {
			ret = take_paths(hosts, &g[i], drvs, e);
			ok += g[i].count;
		} else if (!o->keep_going || run_interrupted()) {
			char why[512];
			nix_error_summary(g[i].err.buf, why, sizeof(why));
			ret = nrr_fail(e, NRR_ENOSTART, "evaluating the fleet's systems failed: %s", why);
			if (jobs > 1 && failed_groups == jobs)
				nrr_hint(e, "every group of hosts (%zu) failed to evaluate: the error is in "
					 "what they share, which -k (--keep-going) does not pass", jobs);
			else
				nrr_hint(e, "with -k (--keep-going) the other hosts go on");
		} else if (g[i].count == 1) {
			eval_failed(&hosts[g[i].first], g[i].err.buf);
		} else {
			for (size_t j = g[i].first; j < g[i].first + g[i].count; j++) {
				single[nsingle].first = j;
				single[nsingle].count = 1;
				strbuf_init(&single[nsingle].out);
				strbuf_init(&single[nsingle].err);
				nsingle++;
			}
		}
	}
	if (!ret && nsingle && eval_groups(o, ref, hosts, single, nsingle, jobs, warnings, e))
		ret = e->status;
	for (size_t i = 0; i < nsingle && !ret; i++) {
		if (single[i].status) {
			eval_failed(&hosts[single[i].first], single[i].err.buf);
		} else {
			ret = take_paths(hosts, &single[i], drvs, e);
			ok++;
		}
	}
	for (size_t i = 0; i < nsingle; i++) {
		strbuf_release(&single[i].out);
		strbuf_release(&single[i].err);
	}
	free(single);
	if (!ret && run_interrupted())
		ret = nrr_fail(e, NRR_EINT, "interrupted");
	if (!ret && !ok)
		ret = nrr_fail(e, NRR_ENOSTART, "evaluating the fleet's systems failed for every host");
out:
	for (size_t i = 0; i < n; i++) {
		strbuf_release(&g[i].out);
		strbuf_release(&g[i].err);
	}
	free(g);
	return ret;
}

int fleet_eval_all(const struct options *o, const char *ref, struct fleet_host *hosts,
		   size_t n, struct strvec *drvs, struct strvec *warnings, struct nrr_err *e)
{
	return eval_hosts(o, ref, hosts, n, drvs, warnings, e);
}

void fleet_realise_plan(const struct options *o, const struct strvec *drvs,
			const struct strvec *outs, const char *roots, struct fleet_realise *r)
{
	strvec_init(&r->argv);
	strvec_init(&r->outs);
	strvec_init(&r->closure);
	r->verbose = o->verbose;
	r->dry = options_needs(o, AN_DRY);
	strvec_pushl(&r->argv, "nix-store", "--realise", NULL);
	if (r->dry) {
		/* dry-build: nix says what the build would do (its stderr is
		 * shown); no roots, nothing is made */
		strvec_push(&r->argv, "--dry-run");
	} else if (roots) {
		/* GC roots for the deploy's duration, in a directory of our own */
		strvec_pushl(&r->argv, "--indirect", "--add-root", NULL);
		strvec_pushf(&r->argv, "%s/system", roots);
	}
	strvec_pushvec(&r->argv, drvs);
	strvec_pushvec(&r->argv, &o->nix_common);
	build_push_builders(&r->argv, &o->nix_build);
	strvec_pushvec(&r->outs, outs);
}

int fleet_realise_run(void *data, struct strvec *warnings, struct nrr_err *e)
{
	struct fleet_realise *r = data;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	char why[512];

	int st = nix_run(&r->argv, &out, &err, 0, r->verbose, warnings, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_ENOSTART, "%s the fleet's systems failed: %s",
			 r->dry ? "planning the build of" : "building", why);
	}
	strbuf_release(&out);
	strbuf_release(&err);
	if (st)
		return e->status;
	if (!r->dry)
		fleet_list_closure(&r->outs, &r->closure);
	return 0;
}

void fleet_list_closure(const struct strvec *outs, struct strvec *closure)
{
	/* this machine: no ssh, so no ssh context */
	struct host local = { "localhost", NULL, NULL };
	struct nrr_err ignored = { 0 };

	if (outs->nr && closure_of_all(&local, outs, closure, &ignored))
		strvec_clear(closure);
}

void fleet_realise_release(struct fleet_realise *r)
{
	strvec_clear(&r->argv);
	strvec_clear(&r->outs);
	strvec_clear(&r->closure);
}

void fleet_members_free(struct fleet_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].target);
		free(m[i].path);
		strvec_clear(&m[i].args);
		strvec_clear(&m[i].env);
		if (m[i].keys) {
			keyset_release(m[i].keys);
			free(m[i].keys);
		}
	}
	free(m);
}

static void add_member(struct fleet_member **m, size_t *n, const char *name,
		       const char *target, const char *user)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*m)[i].name, name))
			return;
	*m = xrealloc(*m, (*n + 1) * sizeof(**m));
	memset(&(*m)[*n], 0, sizeof(**m));	/* no keys, no path */
	(*m)[*n].name = xstrdup(name);
	strvec_init(&(*m)[*n].args);
	strvec_init(&(*m)[*n].env);
	if (user && !strchr(target, '@'))
		(*m)[*n].target = xstrfmt("%s@%s", user, target);
	else
		(*m)[*n].target = xstrdup(target);
	(*n)++;
}

int fleet_expand(const char *spec, const struct strvec *all, const char *user,
		 struct fleet_member **members, size_t *n, struct nrr_err *e)
{
	struct strvec items = STRVEC_INIT;
	int ret = 0;

	*members = NULL;
	*n = 0;
	for (const char *p = spec; *p;) {
		size_t len = strcspn(p, ",");
		if (len)
			strvec_pushf(&items, "%.*s", (int)len, p);
		p += len + (p[len] ? 1 : 0);
	}
	for (size_t i = 0; i < items.nr && !ret; i++) {
		char *item = xstrdup(items.v[i]);
		char *eq = strchr(item, '=');
		const char *target = NULL;
		if (eq) {
			*eq = '\0';
			target = eq + 1;
		}
		if (item[0] == '@') {
			/* tags are a hive's; a flake's configurations have none */
			nrr_fail(e, NRR_EUSAGE,
				 "--on '%s': @tags select the nodes of a colmena hive, not supported here yet",
				 item);
			nrr_hint(e, "nixos-rebuild-remote apply switch --on '%s'", item);
			ret = NRR_EUSAGE;
		} else if (nix_check_config_name(item, e)) {
			ret = e->status;
		} else if (strpbrk(item, "*?[")) {
			int hit = 0;
			for (size_t k = 0; k < all->nr && !ret; k++)
				if (!fnmatch(item, all->v[k], 0)) {
					/* a name the flake chose goes into the --apply
					 * expression too: the same check as a typed one */
					if (nix_check_config_name(all->v[k], e)) {
						ret = e->status;
						break;
					}
					add_member(members, n, all->v[k],
						   target ? target : all->v[k], user);
					hit = 1;
				}
			if (!hit && !ret)
				ret = nrr_fail(e, NRR_EUSAGE,
					       "--on: '%s' matches no configuration", item);
		} else if (all->nr && strvec_find(all, item) < 0) {
			ret = nrr_fail(e, NRR_EUSAGE,
				       "--on: there is no configuration '%s'", item);
		} else {
			add_member(members, n, item, target ? target : item, user);
		}
		free(item);
	}
	if (!ret && !*n)
		ret = nrr_fail(e, NRR_EUSAGE, "--on: no hosts given");
	strvec_clear(&items);
	return ret;
}

void fleet_roots_make(char dir[FLEET_ROOTS_SIZE])
{
	snprintf(dir, FLEET_ROOTS_SIZE, "/tmp/nrr-roots.XXXXXX");
	if (!mkdtemp(dir))
		dir[0] = '\0';
}

void fleet_roots_remove(const char *dir)
{
	glob_t g;

	if (!*dir)
		return;
	/* the roots nix-store made (system, system-2, ...) */
	char *pat = xstrfmt("%s/*", dir);
	if (!glob(pat, 0, NULL, &g)) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			unlink(g.gl_pathv[i]);
		globfree(&g);
	}
	free(pat);
	rmdir(dir);
}
