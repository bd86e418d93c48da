#include "localdiff.h"
#include "closure.h"
#include "closurecache.h"

#include <stdlib.h>
#include <string.h>

/* Keeps c as system's closure for the next deploy's diff (closurecache.h),
 * unless it came from there. */
static void keep_closure(const char *system, const struct pkgdiff_closure *c, int from_cache)
{
	if (from_cache || !system[0] || !c->nr)
		return;
	const char **paths = xcalloc(c->nr, sizeof(*paths));
	unsigned long long *sizes = xcalloc(c->nr, sizeof(*sizes));
	for (size_t i = 0; i < c->nr; i++) {
		paths[i] = c->items[i].path;
		sizes[i] = c->items[i].nar_size;
	}
	closurecache_put(system, paths, sizes, c->nr);
	free(paths);
	free(sizes);
}

int localdiff_prepare(const struct host *from, const char *running, const char *toplevel,
		      const struct strvec *new, const unsigned long long *known_sizes,
		      struct pkgdiff_closure *diff_old, struct pkgdiff_closure *diff_new)
{
	struct strvec old = STRVEC_INIT, ask = STRVEC_INIT, cached_new = STRVEC_INIT;
	const unsigned long long *known = known_sizes;
	struct nrr_err ignored = { 0 };
	int same = !strcmp(running, toplevel);
	unsigned long long *sizes = NULL, *old_sizes = NULL, *new_sizes = NULL;
	struct strindex in_new = { NULL, 0 };
	size_t extra;
	int ret = -1, old_cached = 0;

	/* the new closure's sizes from the cache when the dump has none and
	 * the cache holds this very closure (a redeploy) */
	if (!known && !closurecache_get(toplevel, &cached_new, &new_sizes)) {
		int match = cached_new.nr == new->nr;
		for (size_t i = 0; match && i < new->nr; i++)
			match = !strcmp(cached_new.v[i], new->v[i]);
		if (match)
			known = new_sizes;
	}
	if (running[0] && !same) {
		old_cached = !closurecache_get(running, &old, &old_sizes);
		if (!old_cached && closure_of(from, running, &old, &ignored))
			goto out;
	}
	strindex_init(&in_new, new->v, new->nr);
	/* the sizes asked: the new closure's unless known, then the old's own */
	if (!known)
		strvec_pushvec(&ask, new);
	for (size_t i = 0; !old_cached && i < old.nr; i++)
		if (strindex_find(&in_new, old.v[i]) < 0)
			strvec_push(&ask, old.v[i]);
	sizes = xcalloc(ask.nr + 1, sizeof(*sizes));
	if (ask.nr && closure_sizes(from, &ask, sizes, &ignored))
		goto out;
	for (size_t i = 0; i < new->nr; i++) {
		unsigned long long size = known ? known[i] : sizes[i];
		pkgdiff_closure_add(diff_new, new->v[i], size);
		if (same)
			pkgdiff_closure_add(diff_old, new->v[i], size);
	}
	extra = known ? 0 : new->nr;
	for (size_t i = 0; i < old.nr; i++) {
		long at = strindex_find(&in_new, old.v[i]);
		unsigned long long size = old_cached ? old_sizes[i] : at < 0 ? sizes[extra++] :
					  known ? known[at] : sizes[at];
		pkgdiff_closure_add(diff_old, old.v[i], size);
	}
	keep_closure(toplevel, diff_new, known == new_sizes && new_sizes);
	if (!old_cached)
		keep_closure(running, diff_old, same);
	ret = 0;
out:
	if (ret) {
		pkgdiff_closure_release(diff_old);
		pkgdiff_closure_release(diff_new);
	}
	free(sizes);
	free(old_sizes);
	free(new_sizes);
	strindex_release(&in_new);
	strvec_clear(&old);
	strvec_clear(&ask);
	strvec_clear(&cached_new);
	return ret;
}
