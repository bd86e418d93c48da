#include "generations.h"
#include "narinfo.h"
#include "nix.h"
#include "scripts.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *field(const char **p)
{
	size_t n = strcspn(*p, "\t\n");
	char *s = xstrndup(*p, n);
	*p += n;
	if (**p == '\t')
		(*p)++;
	return s;
}

static int by_id(const void *a, const void *b)
{
	const struct generation *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

int generations_parse(const char *text, struct generation **out, int *n)
{
	int cap = 16;
	*n = 0;
	*out = xcalloc((size_t)cap, sizeof(**out));
	while (*text) {
		struct generation g;
		memset(&g, 0, sizeof(g));
		char *id = field(&text), *mtime = field(&text), *cur = field(&text);
		g.id = atoi(id);
		time_t t = (time_t)atoll(mtime);
		struct tm tm;
		if (*mtime && localtime_r(&t, &tm))
			strftime(g.date, sizeof(g.date), "%Y-%m-%d %H:%M:%S", &tm);
		g.current = !strcmp(cur, "1");
		g.path = field(&text);
		g.nixos_version = field(&text);
		g.kernel = field(&text);
		g.revision = field(&text);
		g.specialisations = field(&text);
		size_t sl = strlen(g.specialisations);
		while (sl && g.specialisations[sl - 1] == ' ')
			g.specialisations[--sl] = '\0';
		free(id);
		free(mtime);
		free(cur);
		text += strcspn(text, "\n");
		if (*text)
			text++;
		if (g.id <= 0) {
			free(g.path); free(g.nixos_version); free(g.kernel);
			free(g.revision); free(g.specialisations);
			continue;
		}
		if (*n == cap) {
			cap *= 2;
			*out = xrealloc(*out, (size_t)cap * sizeof(**out));
		}
		(*out)[(*n)++] = g;
	}
	qsort(*out, (size_t)*n, sizeof(**out), by_id);
	return 0;
}

void generations_free(struct generation *g, int n)
{
	for (int i = 0; i < n; i++) {
		free(g[i].path);
		free(g[i].nixos_version);
		free(g[i].kernel);
		free(g[i].revision);
		free(g[i].specialisations);
	}
	free(g);
}

int generations_previous(const struct generation *g, int n)
{
	int cur = -1, best = -1;
	for (int i = 0; i < n; i++)
		if (g[i].current)
			cur = g[i].id;
	for (int i = 0; i < n; i++)
		if (!g[i].current && g[i].id > best && (cur < 0 || g[i].id < cur))
			best = g[i].id;
	return best;
}

/* Everything a host says of its generations is shown on the terminal or
 * reused (a path to roll back to): a store path, and printable text. */
static int generations_check(const struct host *h, const struct generation *g,
			     int n, struct nrr_err *e)
{
	char shown[256];

	for (int i = 0; i < n; i++) {
		const char *text[] = { g[i].nixos_version, g[i].kernel, g[i].revision,
				       g[i].specialisations };
		if (g[i].path && *g[i].path && !nix_store_path_valid(g[i].path))
			return nrr_protocol(e, h->name, "generation %d is not a store path: '%s'",
					    g[i].id, nrr_printable(shown, sizeof(shown), g[i].path));
		for (size_t k = 0; k < sizeof(text) / sizeof(*text); k++)
			for (const char *c = text[k]; c && *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					return nrr_protocol(e, h->name, "generation %d is described "
							    "with unprintable text: '%s'", g[i].id,
							    nrr_printable(shown, sizeof(shown), text[k]));
	}
	return 0;
}

int generations_read(const struct host *h, const struct elevation *el,
		     const char *profile, struct generation **out, int *n,
		     struct nrr_err *e)
{
	struct strbuf o = STRBUF_INIT, err = STRBUF_INIT;
	const char *args[] = { profile, NULL };
	char why[512];
	int st = host_run(h, el, "list-generations", script_generations, args,
			  NULL, 0, &o, &err, -1, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_EFAIL, "cannot list the generations of '%s' on '%s': %s",
			 profile, h->name, why);
	} else if (st == 0) {
		generations_parse(o.buf, out, n);
		if (generations_check(h, *out, *n, e)) {
			generations_free(*out, *n);
			*out = NULL;
			*n = 0;
			st = e->status;
		}
	}
	strbuf_release(&o);
	strbuf_release(&err);
	return st ? e->status : 0;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

static const char *or_unknown(const char *s)
{
	return s && *s ? s : "Unknown";
}

void generations_print(const struct generation *g, int n, int json)
{
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		for (int i = n - 1; i >= 0; i--) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "generation", g[i].id);
			cJSON_AddStringToObject(o, "date", g[i].date);
			/* what is not known is "Unknown", as nixos-rebuild-ng has it */
			cJSON_AddStringToObject(o, "nixosVersion", or_unknown(g[i].nixos_version));
			cJSON_AddStringToObject(o, "kernelVersion", or_unknown(g[i].kernel));
			cJSON_AddStringToObject(o, "configurationRevision", or_unknown(g[i].revision));
			cJSON *specs = cJSON_CreateArray();
			const char *s = or_empty(g[i].specialisations);
			while (*s) {
				size_t k = strcspn(s, " ");
				if (k) {
					char *name = xstrndup(s, k);
					cJSON_AddItemToArray(specs, cJSON_CreateString(name));
					free(name);
				}
				s += k + (s[k] ? 1 : 0);
			}
			cJSON_AddItemToObject(o, "specialisations", specs);
			cJSON_AddBoolToObject(o, "current", g[i].current);
			cJSON_AddStringToObject(o, "storePath", or_empty(g[i].path));
			cJSON_AddItemToArray(arr, o);
		}
		char *text = cJSON_Print(arr);
		puts(text);
		free(text);
		cJSON_Delete(arr);
		return;
	}
	printf("%-11s %-20s %-25s %-20s %-13s %s\n", "Generation", "Build-date",
	       "NixOS version", "Kernel", "Revision", "Specialisation");
	for (int i = n - 1; i >= 0; i--) {
		char id[32];
		snprintf(id, sizeof(id), g[i].current ? "%d current" : "%d", g[i].id);
		printf("%-11s %-20s %-25s %-20s %-13s %s\n", id, g[i].date,
		       or_empty(g[i].nixos_version), or_empty(g[i].kernel),
		       or_empty(g[i].revision), or_empty(g[i].specialisations));
	}
}
