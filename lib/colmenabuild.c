/*
 * colmenabuild: see colmenabuild.h.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleetbuild.h"
#include "colmenabuild.h"
#include "nix.h"
#include "strbuf.h"

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

int colmena_keep_results(const struct colmena_opts *o, const struct hive *h,
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

void colmena_realise_plan(const struct colmena_opts *o, const struct hive *h, const size_t *sel,
			  size_t n, char **drv, int *built, const char *roots,
			  struct colmena_build *b)
{
	size_t nbuild = 0;

	/* all at once, so that nix runs and spreads the builds together
	 * (the closure is listed after it: fleet_list_closure) */
	strvec_pushl(&b->argv, "nix-store", "--realise", NULL);
	if (roots) {
		/* GC roots for the deploy's duration */
		strvec_pushl(&b->argv, "--indirect", "--add-root", NULL);
		strvec_pushf(&b->argv, "%s/system", roots);
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
		strvec_push(&b->argv, drv[i]);
	}
	/* meta.machinesFile: colmena hands it to nix as its builders */
	if (h->machines_file) {
		strvec_pushl(&b->argv, "--option", "builders", NULL);
		strvec_pushf(&b->argv, "@%s", h->machines_file);
	}
	strvec_pushvec(&b->argv, &o->nix_options);
	if (!nbuild)
		strvec_clear(&b->argv);
	b->verbose = o->verbose;
}

/* Runs b's build (nothing when it has none). Returns 0 or NRR_EBUILD. */
static int build_now(struct colmena_build *b, struct strvec *warnings, struct nrr_err *e)
{
	struct strbuf sout = STRBUF_INIT, serr = STRBUF_INIT;
	int st = 0;

	if (!b->argv.nr)
		return 0;
	int r = nix_run(&b->argv, &sout, &serr, 0, b->verbose, warnings, e);
	if (!r && b->closure_too)
		fleet_list_closure(&b->outs, &b->closure);
	if (r > 0) {
		char why[512];
		nix_error_summary(serr.buf, why, sizeof(why));
		st = nrr_fail(e, NRR_EBUILD, "building the hive's systems failed: %s", why);
	} else if (r < 0) {
		st = e->status;
	}
	strbuf_release(&sout);
	strbuf_release(&serr);
	return st;
}

int colmena_realise(const struct colmena_opts *o, const struct hive *h, const size_t *sel,
		    size_t n, char **drv, int *built, const char *roots,
		    struct strvec *warnings, struct nrr_err *e)
{
	struct colmena_build b = { STRVEC_INIT, 0, 0, STRVEC_INIT, STRVEC_INIT };
	colmena_realise_plan(o, h, sel, n, drv, built, roots, &b);
	int st = build_now(&b, warnings, e);
	strvec_clear(&b.argv);
	return st;
}

int colmena_build_run(void *data, struct strvec *warnings, struct nrr_err *e)
{
	/* none could start: a build failure is the fleet's 13 */
	int st = build_now(data, warnings, e);
	if (st)
		st = e->status = NRR_ENOSTART;
	return st;
}
