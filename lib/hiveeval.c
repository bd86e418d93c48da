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

static void job_args(const struct hive *h, const size_t *sel, const struct job *j,
		     struct strbuf *args)
{
	cJSON *names = cJSON_CreateArray();
	for (size_t i = j->first; i < j->first + j->count; i++)
		cJSON_AddItemToArray(names, cJSON_CreateString(h->nodes[sel[i]].name));
	char *js = cJSON_PrintUnformatted(names);
	cJSON_Delete(names);
	/* the names as JSON in a Nix string: any name is safe there */
	strbuf_addstr(args, "names = builtins.fromJSON \"");
	nix_string_escape(args, js);
	strbuf_addstr(args, "\"; ");
	free(js);
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
	if (evaluated != h->evaluated || take(h, sel, &all, drv, out) ||
	    !evalcache_drvs_valid(drv, n, o->verbose))
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
