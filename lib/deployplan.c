/* deployplan: each route's plan for a target, and the fetch from its caches (deployplan.h). */
#define _GNU_SOURCE
#include "deployplan.h"
#include "activate.h"
#include "cache.h"
#include "diffshow.h"
#include "fleetproto.h"
#include "nix.h"
#include "pushto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void say_plan_line(const struct deploy *d, const struct strbuf *sb)
{
	fprintf(stderr, "%s\n", sb->buf);
	/* a fleet shows its hosts' plans together */
	fleetproto_say(d->progress_fd, sb->buf);
}

void deploy_say_plan(const struct deploy *d, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	strbuf_addf(&sb, "plan for '%s': ", d->target.name);
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	say_plan_line(d, &sb);
	strbuf_release(&sb);
}

/* Prints d->plan, as one line. */
void deploy_print_plan(const struct deploy *d)
{
	const struct deploy_plan *p = &d->plan;
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "plan for '%s': ", d->target.name);
	if (p->present == p->paths) {
		strbuf_addf(&sb, "all %zu paths present, nothing to copy", p->paths);
	} else {
		strbuf_addf(&sb, "%zu paths: %zu present, ", p->paths, p->present);
		if (p->auto_fetch) {
			strbuf_addf(&sb, "%zu from its caches (", p->fetch);
			diffshow_size(&sb, (int64_t)p->fetch_bytes, 0);
			strbuf_addstr(&sb, "), ");
		}
		strbuf_addf(&sb, "%zu to push (", p->push);
		diffshow_size(&sb, (int64_t)p->push_bytes, 0);
		strbuf_addch(&sb, ')');
		if (!p->auto_fetch && p->fetch) {
			strbuf_addf(&sb, "; its caches serve %zu of them (", p->fetch);
			diffshow_size(&sb, (int64_t)p->fetch_bytes, 0);
			strbuf_addstr(&sb, "): --use-substitutes=auto would fetch those there");
		}
	}
	say_plan_line(d, &sb);
	strbuf_release(&sb);
}

/*
 * The NAR sizes of paths (members of d->closure) summed: from the sizes the
 * fleet's closure dump gave (no query), or from the store that holds them;
 * 0 if that cannot tell.
 */
static unsigned long long deploy_sizes_of(const struct deploy *d, const struct strvec *paths)
{
	unsigned long long sum = 0;
	struct nrr_err ignored = { 0 };

	if (!paths->nr)
		return 0;
	if (!d->closure_sizes) {
		if (closure_size(d->built_at == AT_BUILD ? &d->build : &d->local, paths, &sum,
				 &ignored))
			sum = 0;
		return sum;
	}
	struct strindex in_closure;
	strindex_init(&in_closure, d->closure.v, d->closure.nr);
	for (size_t i = 0; i < paths->nr; i++) {
		long at = strindex_find(&in_closure, paths->v[i]);
		if (at >= 0)
			sum += d->closure_sizes[at];
	}
	strindex_release(&in_closure);
	return sum;
}

/*
 * Works out d->plan for the paths the target lacks (a->missing): asks the
 * caches the target trusts which of them they serve, with signatures it
 * would accept. With --use-substitutes=auto the target then fetches those
 * itself and only the rest is pushed; when no cache serves anything, the
 * target is not asked to try (no time-outs against caches it cannot
 * reach). Without auto (dry-activate) it is only told.
 */
int deploy_plan_and_fetch(struct deploy *d, struct activation *a,
			  const struct strbuf *nixconf, struct nrr_err *e)
{
	struct deploy_plan *p = &d->plan;
	struct nix_settings ns;
	struct cache_config cfg;
	struct cache_result res = CACHE_RESULT_INIT;
	struct strvec fetch = STRVEC_INIT, push = STRVEC_INIT;
	struct nrr_err qe = { 0 };
	int ret = 0;

	nix_settings_init(&ns);
	cache_config_init(&cfg);
	if (nixconf->len && !nix_settings_from_shown(&ns, nixconf->buf, nixconf->len,
						     "its nix settings", &qe)) {
		/* the cache route: this host must fetch from the cache, or it
		 * fails here, unchanged (see pushto.h for why not relay) */
		if (d->opt->cache_url &&
		    (ret = pushto_check_target(d->target.name, &ns, d->opt->cache_url,
					       d->opt->cache_key, e)))
			goto out;
		cache_config_from_settings(&cfg, &ns);
		cfg.from_host = 1;
		if (d->opt->cache_url) {
			/* the cache route: the whole closure went to the cache before
			 * this host started (dry-build: it would), signed with a key
			 * the target trusts (checked above), so the cache serves all
			 * the target lacks; asking it again, path by path and host by
			 * host, would only cost each host an HTTP client */
			for (size_t i = 0; i < a->missing->nr; i++)
				strvec_push(&fetch, a->missing->v[i]);
			p->fetch_bytes = deploy_sizes_of(d, &fetch);
		} else if (!cache_query(&cfg, a->missing, &res, &qe)) {
			for (size_t i = 0; i < res.nr; i++) {
				struct cache_answer *an = &res.answers[i];
				if (an->state == CACHE_PRESENT &&
				    (an->trust == NARINFO_VERIFIED || !cfg.require_sigs)) {
					strvec_push(&fetch, an->path);
					p->fetch_bytes += an->info.file_size ? an->info.file_size
									     : an->info.nar_size;
				}
			}
			for (size_t i = 0; i < res.nr_caches; i++)
				if (res.caches[i].error && d->trace)
					strvec_push(d->warnings, res.caches[i].error);
		}
	} else if (d->opt->cache_url) {
		ret = nrr_fail(e, NRR_ECHECK,
			       "cannot tell whether '%s' would fetch from the cache: %s",
			       d->target.name, qe.msg[0] ? qe.msg : "it did not send its nix settings");
		nrr_hint(e, "nothing was changed; deploy that host without --push-to");
		goto out;
	}
	if (qe.msg[0])
		strvec_pushf(d->warnings, "cannot ask '%s''s caches: %s; pushing everything",
			     d->target.name, qe.msg);
	p->known = 1;
	p->auto_fetch = a->substitute == 2 || d->opt->cache_url;
	p->paths = d->closure.nr;
	p->present = d->closure.nr - a->missing->nr;
	p->fetch = fetch.nr;
	for (size_t i = 0; i < a->missing->nr; i++)
		if (!p->auto_fetch || strvec_find(&fetch, a->missing->v[i]) < 0)
			strvec_push(&push, a->missing->v[i]);
	p->push = push.nr;
	/* the sizes of what is pushed, where it is pushed from */
	p->push_bytes = deploy_sizes_of(d, &push);
	deploy_print_plan(d);
	if (p->auto_fetch && fetch.nr && !d->plan_only) {
		deploy_phase(d, "fetch");
		ret = activation_fetch(&d->as, a, &fetch, e);
	}
out:
	strvec_clear(&fetch);
	strvec_clear(&push);
	cache_result_release(&res);
	cache_config_release(&cfg);
	nix_settings_release(&ns);
	return ret;
}

int deploy_plan_target(struct deploy *d, struct nrr_err *e)
{
	struct strvec missing = STRVEC_INIT;
	struct strbuf nixconf = STRBUF_INIT;
	char *profile = profile_path(d->opt->profile_name);
	struct activation a = { .toplevel = d->toplevel, .profile = profile, .op = PROFILE_KEEP };
	int ret;

	d->plan_only = 1;
	if ((ret = deploy_lock(d, e)))
		goto out;
	/* the activation's first exchange alone: what the target lacks and
	 * its settings; then the conversation ends and nothing changes */
	a.closure = &d->closure;
	a.substitute = d->opt->substitutes == 2 ? 2 : 0;
	a.plan = 1;
	a.missing = &missing;
	a.nixconf = &nixconf;
	deploy_phase(d, "check");
	if (!(ret = activation_offer(&d->as, &a, e))) {
		if (a.incomplete) {
			ret = deploy_plan_and_fetch(d, &a, &nixconf, e);
		} else {
			d->plan.known = 1;
			d->plan.paths = d->plan.present = d->closure.nr;
			deploy_print_plan(d);
		}
	}
out:
	strvec_clear(&missing);
	strbuf_release(&nixconf);
	free(profile);
	return ret;
}
