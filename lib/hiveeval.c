/*
 * hiveeval: see hiveeval.h.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evalcache.h"
#include "hiveeval.h"
#include "nix.h"
#include "quote.h"
#include "resources.h"
#include "run.h"
#include "strbuf.h"

size_t hive_eval_auto(void)
{
	unsigned long long mib = mem_available() / (1024 * 1024);
	if (!mib)
		return 1;
	long n = ((long)mib - 1024) / 512;
	return n > 0 ? (size_t)n : 1;
}

/* One nix process: the nodes first..first+count-1 of sel. */
struct job {
	struct strbuf out, err;
	size_t first, count;
	int status;
};

/* "names = ...; " for the evaluator, names a JSON array of strings. */
static void names_args(const cJSON *names, struct strbuf *args)
{
	char *js = cJSON_PrintUnformatted(names);
	/* the names as JSON in a Nix string: any name is safe there */
	strbuf_addstr(args, "names = builtins.fromJSON \"");
	nix_string_escape(args, js);
	strbuf_addstr(args, "\"; ");
	free(js);
}

static void job_args(const struct hive *h, const size_t *sel, const struct job *j,
		     struct strbuf *args)
{
	cJSON *names = cJSON_CreateArray();
	for (size_t i = j->first; i < j->first + j->count; i++)
		cJSON_AddItemToArray(names, cJSON_CreateString(h->nodes[sel[i]].name));
	names_args(names, args);
	cJSON_Delete(names);
}

/* Runs jobs[0..nj-1], at most `at_once` at a time (run.c's
 * child_capture_all); each one's status. */
static int run_jobs(struct hive *h, const struct hive_opts *o, const size_t *sel,
		    struct job *jobs, size_t nj, size_t at_once, struct nrr_err *e)
{
	struct child *cs = xcalloc(nj ? nj : 1, sizeof(*cs));
	struct strbuf *outs = xcalloc(nj ? nj : 1, sizeof(*outs));
	struct strbuf *errs = xcalloc(nj ? nj : 1, sizeof(*errs));
	int *sts = xcalloc(nj ? nj : 1, sizeof(*sts));
	int st = 0;

	for (size_t i = 0; i < nj; i++) {
		struct strbuf args = STRBUF_INIT;
		job_args(h, sel, &jobs[i], &args);
		child_init(&cs[i]);
		hive_eval_argv(h, o, "toplevels", args.buf, &cs[i].args);
		strbuf_release(&args);
		cs[i].stop_group = 1;
		strbuf_init(&outs[i]);
		strbuf_init(&errs[i]);
		sts[i] = 1;	/* not run */
		if (o->verbose)
			sq_trace_argv((const char *const *)cs[i].args.v);
	}
	if (child_capture_all(cs, nj, at_once, outs, errs, sts, e))
		st = e->status ? e->status : NRR_EFAIL;
	for (size_t i = 0; i < nj; i++) {
		strbuf_release(&jobs[i].out);
		strbuf_release(&jobs[i].err);
		jobs[i].out = outs[i];
		jobs[i].err = errs[i];
		jobs[i].status = sts[i];
		child_clear(&cs[i]);
	}
	free(cs);
	free(outs);
	free(errs);
	free(sts);
	if (run_interrupted())
		return nrr_fail(e, NRR_EINT, "interrupted while evaluating the hive");
	return st;
}

/* Takes a job's answer into drv/out; 0, or -1 if a node is missing. */
static int take(const struct hive *h, const size_t *sel, const struct job *j,
		char **drv, char **out)
{
	cJSON *root = cJSON_Parse(j->out.buf);
	int ret = 0;

	for (size_t i = j->first; i < j->first + j->count; i++) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, h->nodes[sel[i]].name);
		const cJSON *d = t ? cJSON_GetObjectItemCaseSensitive(t, "drv") : NULL;
		const cJSON *p = t ? cJSON_GetObjectItemCaseSensitive(t, "out") : NULL;
		if (!cJSON_IsString(d) || !cJSON_IsString(p)) {
			ret = -1;
			continue;
		}
		drv[i] = xstrdup(d->valuestring);
		out[i] = xstrdup(p->valuestring);
	}
	cJSON_Delete(root);
	return ret;
}

/*
 * The systems of the n selected nodes from h's cache: 1 with drv[] and
 * out[] filled when it has them all and their derivations are still in
 * the store, else 0 (drv[] and out[] NULL).
 */
static int from_cache(struct hive *h, const struct hive_opts *o, const size_t *sel, size_t n,
		      const char *key, char **drv, char **out)
{
	int evaluated, ok = 1;
	char *json = evalcache_get(h->cache, "toplevels", key, &evaluated);
	struct job all = { .first = 0, .count = n };

	if (!json)
		return 0;
	all.out.buf = json;
	/* (what this run evaluated itself is in the store: no nix to ask) */
	if (evaluated != h->evaluated || take(h, sel, &all, drv, out) ||
	    (!h->cache->fresh && !evalcache_drvs_valid(drv, n, o->verbose)))
		ok = 0;
	free(json);
	for (size_t i = 0; !ok && i < n; i++) {
		free(drv[i]);
		free(out[i]);
		drv[i] = out[i] = NULL;
	}
	return ok;
}

/* Keeps the n systems drv[]/out[] in h's cache under key. */
static void to_cache(const struct hive *h, const size_t *sel, size_t n, const char *key,
		     char *const *drv, char *const *out)
{
	cJSON *root = cJSON_CreateObject();
	for (size_t i = 0; i < n; i++) {
		cJSON *t = cJSON_AddObjectToObject(root, h->nodes[sel[i]].name);
		cJSON_AddStringToObject(t, "drv", drv[i]);
		cJSON_AddStringToObject(t, "out", out[i]);
	}
	char *json = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	evalcache_put(h->cache, "toplevels", key, h->evaluated, json);
	free(json);
}

static void jobs_release(struct job *jobs, size_t nj)
{
	for (size_t i = 0; i < nj; i++) {
		strbuf_release(&jobs[i].out);
		strbuf_release(&jobs[i].err);
	}
	free(jobs);
}

int hive_toplevels_limited(struct hive *h, const struct hive_opts *o,
			   const size_t *sel, size_t n, const struct hive_eval_limits *lim,
			   char **drv, char **out, struct strvec *failed,
			   struct strvec *warnings, struct nrr_err *e)
{
	size_t limit = lim->nodes ? lim->nodes : hive_eval_auto();
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t jobs_at_once = lim->jobs ? lim->jobs : cores > 0 ? (size_t)cores : 1;
	size_t chunk, nj = 0, nfailed = 0;
	struct job *jobs;
	struct strbuf names = STRBUF_INIT;
	int st;

	(void)warnings;
	for (size_t i = 0; i < n; i++)
		drv[i] = out[i] = NULL;
	if (!n)
		return 0;
	/* the cache's key: the whole selection, as one evaluation of it */
	struct job whole = { .first = 0, .count = n };
	struct strbuf key = STRBUF_INIT;
	if (h->cache) {
		job_args(h, sel, &whole, &key);
		if (from_cache(h, o, sel, n, key.buf, drv, out)) {
			strbuf_release(&key);
			return 0;
		}
	}
	if (jobs_at_once > limit)
		jobs_at_once = limit;
	if (jobs_at_once > n)
		jobs_at_once = n;
	/* the nodes spread over the processes, never more than limit at once */
	chunk = (n + jobs_at_once - 1) / jobs_at_once;
	if (chunk * jobs_at_once > limit)
		chunk = limit / jobs_at_once ? limit / jobs_at_once : 1;
	jobs = xcalloc((n + chunk - 1) / chunk, sizeof(*jobs));
	for (size_t i = 0; i < n; i += chunk, nj++) {
		jobs[nj].first = i;
		jobs[nj].count = n - i < chunk ? n - i : chunk;
		strbuf_init(&jobs[nj].out);
		strbuf_init(&jobs[nj].err);
	}
	st = run_jobs(h, o, sel, jobs, nj, jobs_at_once, e);
	/* a failed chunk again node by node: each failure under its name */
	struct job *again = xcalloc(n, sizeof(*again));
	size_t na = 0;
	for (size_t k = 0; !st && k < nj; k++) {
		if (!jobs[k].status && !take(h, sel, &jobs[k], drv, out))
			continue;
		for (size_t i = jobs[k].first; i < jobs[k].first + jobs[k].count; i++) {
			if (drv[i])
				continue;
			if (jobs[k].count == 1) {
				again[na] = jobs[k];	/* its answer is already its own */
				strbuf_init(&jobs[k].out);
				strbuf_init(&jobs[k].err);
				again[na++].status = jobs[k].status ? jobs[k].status : 1;
				continue;
			}
			again[na].first = i;
			again[na].count = 1;
			strbuf_init(&again[na].out);
			strbuf_init(&again[na++].err);
		}
	}
	/* those that ran already (count 1) keep their status: run the rest */
	if (!st && na) {
		struct job *rest = xcalloc(na, sizeof(*rest));
		size_t nr = 0;
		for (size_t k = 0; k < na; k++)
			if (!again[k].status)
				rest[nr++] = again[k];
		st = run_jobs(h, o, sel, rest, nr, jobs_at_once, e);
		for (size_t k = 0, r = 0; k < na; k++)
			if (!again[k].status)
				again[k] = rest[r++];
		free(rest);
	}
	for (size_t k = 0; !st && k < na; k++) {
		struct job *j = &again[k];
		const char *name = h->nodes[sel[j->first]].name;
		char why[512];
		if (!j->status && !take(h, sel, j, drv, out))
			continue;
		nix_error_summary(j->err.buf, why, sizeof(why));
		strvec_pushf(failed, "node '%s': %s", name, why[0] ? why : "the hive evaluator gave no system");
		strbuf_addf(&names, "%s'%s'", nfailed ? ", " : "", name);
		nfailed++;
	}
	jobs_release(again, na);
	jobs_release(jobs, nj);
	if (!st && nfailed)
		st = nrr_fail(e, NRR_EEVAL, "evaluating the hive '%s' failed for %zu of %zu nodes: %s",
			      h->where, nfailed, n, names.buf);
	if (!st && h->cache)
		to_cache(h, sel, n, key.buf, drv, out);
	strbuf_release(&key);
	strbuf_release(&names);
	return st;
}

/* Runs the k shards of the hive once, with h->evaluated as it is; their
 * statuses into sts. Returns 0, or -1 if nix could not be run. */
static int run_shards(struct hive *h, const struct hive_opts *o, size_t k, size_t limit,
		      struct strbuf *outs, struct strbuf *errs, int *sts)
{
	struct child *cs = xcalloc(k, sizeof(*cs));
	struct nrr_err e = { 0 };
	int ret;

	for (size_t i = 0; i < k; i++) {
		struct strbuf args = STRBUF_INIT;
		strbuf_addf(&args, "shard = %zu; shards = %zu; limit = %zu; ", i, k, limit);
		child_init(&cs[i]);
		hive_eval_argv(h, o, "shard", args.buf, &cs[i].args);
		strbuf_release(&args);
		cs[i].stop_group = 1;
		strbuf_reset(&outs[i]);
		strbuf_reset(&errs[i]);
		sts[i] = 1;
		if (o->verbose)
			sq_trace_argv((const char *const *)cs[i].args.v);
	}
	ret = child_capture_all(cs, k, k, outs, errs, sts, &e) ? -1 : 0;
	for (size_t i = 0; i < k; i++)
		child_clear(&cs[i]);
	free(cs);
	return ret;
}

int hive_prefetch_all(struct hive *h, const struct hive_opts *o,
		      const struct hive_eval_limits *lim, struct strvec *warnings)
{
	size_t limit = lim->nodes ? lim->nodes : hive_eval_auto();
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t k = lim->jobs ? lim->jobs : cores > 0 ? (size_t)cores : 1;
	struct strbuf *outs, *errs;
	int *sts, ret = -1, probing = h->evaluated < 0, tries = 0;
	cJSON *info = NULL, *tops = NULL, *dep = NULL;

	(void)warnings;
	if (k > limit)
		k = limit;
	outs = xcalloc(k, sizeof(*outs));
	errs = xcalloc(k, sizeof(*errs));
	sts = xcalloc(k, sizeof(*sts));
	for (size_t i = 0; i < k; i++) {
		strbuf_init(&outs[i]);
		strbuf_init(&errs[i]);
	}
	if (probing)
		hive_probe_first(h);
	if (run_shards(h, o, k, limit, outs, errs, sts))
		goto out;
	if (probing && sts[0] && hive_probe_next(h, errs[0].buf, &tries) &&
	    run_shards(h, o, k, limit, outs, errs, sts))
		goto out;
	info = cJSON_CreateObject();
	tops = cJSON_CreateObject();
	dep = cJSON_CreateObject();
	for (size_t i = 0; i < k; i++) {
		cJSON *root = sts[i] ? NULL : cJSON_Parse(outs[i].buf), *it;
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "deployment");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "toplevels");
		if (!cJSON_IsObject(d) || !cJSON_IsObject(t) ||
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "tooMany"))) {
			cJSON_Delete(root);
			goto out;	/* too many nodes, or a failure: as usual */
		}
		if (!i) {
			cJSON_AddItemToObject(info, "nodes", cJSON_DetachItemFromObjectCaseSensitive(root, "nodes"));
			cJSON_AddItemToObject(info, "meta", cJSON_DetachItemFromObjectCaseSensitive(root, "meta"));
		}
		cJSON_ArrayForEach(it, d)
			cJSON_AddItemToObject(dep, it->string, cJSON_Duplicate(it, 1));
		cJSON_ArrayForEach(it, t)
			cJSON_AddItemToObject(tops, it->string, cJSON_Duplicate(it, 1));
		cJSON_Delete(root);
	}
	const cJSON *names = cJSON_GetObjectItemCaseSensitive(info, "nodes");
	if (!cJSON_IsArray(names) || cJSON_GetArraySize(names) != cJSON_GetArraySize(tops))
		goto out;
	cJSON_AddItemToObject(info, "deployment", dep);
	dep = NULL;
	/* the answers as the usual questions would have had them: info, and
	 * the systems of every node in the hive's order (hive_toplevels_limited) */
	char *js = cJSON_PrintUnformatted(info);
	evalcache_put(h->cache, "info", NULL, h->evaluated, js);
	free(js);
	struct strbuf key = STRBUF_INIT;
	names_args(names, &key);
	js = cJSON_PrintUnformatted(tops);
	evalcache_put(h->cache, "toplevels", key.buf, h->evaluated, js);
	free(js);
	strbuf_release(&key);
	h->cache->fresh = 1;
	ret = 0;
out:
	if (ret && probing)
		h->evaluated = -1;	/* hive_load probes again */
	cJSON_Delete(info);
	cJSON_Delete(tops);
	cJSON_Delete(dep);
	for (size_t i = 0; i < k; i++) {
		strbuf_release(&outs[i]);
		strbuf_release(&errs[i]);
	}
	free(outs);
	free(errs);
	free(sts);
	return ret;
}
