#define _GNU_SOURCE
#include "fleet.h"
#include "fleetbuild.h"
#include "build.h"
#include "nix.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* By name: nix build --json does not keep the installables' order. */
int fleet_build_all(const struct options *o, const char *ref,
		    struct fleet_host *hosts, size_t n, const char *roots,
		    double *evaluated, struct strvec *warnings, struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT, expr = STRBUF_INIT;
	char why[512];
	int ret = 0;

	/* names were checked by nix_check_config_name: safe in "..." */
	strbuf_addstr(&expr, "cs: builtins.listToAttrs (map (n: { name = n; value = "
		      "let t = cs.${n}.config.system.build.toplevel; in "
		      "{ drv = t.drvPath; out = t.outPath; }; }) [");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&expr, " \"%s\"", hosts[i].m.name);
	strbuf_addstr(&expr, " ])");
	strvec_pushl(&argv, "nix", "--extra-experimental-features",
		     "nix-command flakes", "eval", "--json", NULL);
	strvec_pushf(&argv, "%s#nixosConfigurations", ref);
	strvec_pushl(&argv, "--apply", expr.buf, NULL);
	push_flake_flags(o, &argv);
	int st = nix_run(&argv, &out, &err, 0, o->verbose, warnings, e);
	if (st) {
		if (st > 0) {
			nix_error_summary(err.buf, why, sizeof(why));
			nrr_fail(e, NRR_ENOSTART, "evaluating the fleet's systems failed: %s", why);
		}
		ret = e->status;
		goto out;
	}
	*evaluated = fleet_now();
	cJSON *all = cJSON_Parse(out.buf);
	strvec_clear(&argv);
	strvec_pushl(&argv, "nix-store", "--realise", NULL);
	for (size_t i = 0; i < n; i++) {
		cJSON *h = cJSON_GetObjectItemCaseSensitive(all, hosts[i].m.name);
		cJSON *drv = cJSON_GetObjectItemCaseSensitive(h, "drv");
		cJSON *p = cJSON_GetObjectItemCaseSensitive(h, "out");
		if (!cJSON_IsString(drv) || !cJSON_IsString(p)) {
			ret = nrr_fail(e, NRR_ENOSTART, "nix gave no system for '%s'",
				       hosts[i].m.name);
			break;
		}
		hosts[i].path = xstrdup(p->valuestring);
		strvec_push(&argv, drv->valuestring);
	}
	cJSON_Delete(all);
	if (ret)
		goto out;
	/* GC roots for the deploy's duration, in a directory of our own */
	if (roots) {
		strvec_push(&argv, "--add-root");
		strvec_pushf(&argv, "%s/system", roots);
		strvec_push(&argv, "--indirect");
	}
	strvec_pushvec(&argv, &o->nix_common);
	build_push_builders(&argv, &o->nix_build);
	st = nix_run(&argv, &out, &err, 0, o->verbose, warnings, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_ENOSTART, "building the fleet's systems failed: %s", why);
	}
	if (st)
		ret = e->status;
out:
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	strbuf_release(&expr);
	return ret;
}

void fleet_members_free(struct fleet_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].target);
		free(m[i].path);
		strvec_clear(&m[i].args);
		strvec_clear(&m[i].env);
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
	(*m)[*n].name = xstrdup(name);
	(*m)[*n].path = NULL;
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
