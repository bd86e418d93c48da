#include "generations.h"
#include "nix.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * $1: the profile. Prints nix-env's list, then "--", then one line per
 * generation link: id, target path, nixos-version, kernel version,
 * configuration revision and specialisations, separated by tabs.
 */
static const char generations_script[] =
	"PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin\n"
	"[ -e \"$1\" ] || { echo \"error: no profile $1\" >&2; exit 3; }\n"
	"nix-env -p \"$1\" --list-generations || exit\n"
	"echo --\n"
	"for l in \"$1\"-*-link; do\n"
	"  [ -e \"$l\" ] || continue\n"
	"  id=${l#\"$1\"-}; id=${id%-link}\n"
	"  t=$(readlink -f \"$l\")\n"
	"  v=$(cat \"$t/nixos-version\" 2>/dev/null)\n"
	"  k=$(ls \"$t/kernel-modules/lib/modules\" 2>/dev/null | head -n 1)\n"
	"  r=$(\"$t/sw/bin/nixos-version\" --configuration-revision 2>/dev/null)\n"
	"  s=$(ls \"$t/specialisation\" 2>/dev/null | tr '\\n' ' ')\n"
	"  printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"$id\" \"$t\" \"$v\" \"$k\" \"$r\" \"$s\"\n"
	"done\n";

int generations_parse(const char *text, struct generation **out, int *n)
{
	int cap = 16;
	*n = 0;
	*out = xcalloc((size_t)cap, sizeof(**out));
	while (*text) {
		size_t len = strcspn(text, "\n");
		char *line = xstrndup(text, len);
		struct generation g;
		char d[16] = "", t[16] = "";
		memset(&g, 0, sizeof(g));
		if (!strcmp(line, "--")) {
			free(line);
			break;
		}
		if (sscanf(line, "%d %15s %15s", &g.id, d, t) >= 1 && g.id > 0) {
			snprintf(g.date, sizeof(g.date), "%s %s", d, t);
			g.current = strstr(line, "(current)") != NULL;
			if (*n == cap) {
				cap *= 2;
				*out = xrealloc(*out, (size_t)cap * sizeof(**out));
			}
			(*out)[(*n)++] = g;
		}
		free(line);
		text += len + (text[len] ? 1 : 0);
	}
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

static char *field(const char **p)
{
	size_t n = strcspn(*p, "\t\n");
	char *s = xstrndup(*p, n);
	*p += n;
	if (**p == '\t')
		(*p)++;
	return s;
}

/* Adds the details lines (after "--") to the parsed generations. */
static void parse_details(const char *text, struct generation *g, int n)
{
	const char *p = strstr(text, "\n--\n");
	if (!p)
		return;
	p += 4;
	while (*p) {
		int id = atoi(p);
		char *idstr = field(&p);
		struct generation *hit = NULL;
		for (int i = 0; i < n; i++)
			if (g[i].id == id)
				hit = &g[i];
		char *path = field(&p), *v = field(&p), *k = field(&p),
		     *r = field(&p), *s = field(&p);
		if (hit) {
			hit->path = path;
			hit->nixos_version = v;
			hit->kernel = k;
			hit->revision = r;
			hit->specialisations = s;
			size_t sl = strlen(s);
			while (sl && s[sl - 1] == ' ')
				s[--sl] = '\0';
		} else {
			free(path); free(v); free(k); free(r); free(s);
		}
		free(idstr);
		p += strcspn(p, "\n");
		if (*p)
			p++;
	}
}

int generations_read(const struct host *h, const struct elevation *el,
		     const char *profile, struct generation **out, int *n,
		     struct nrr_err *e)
{
	struct strbuf o = STRBUF_INIT, err = STRBUF_INIT;
	const char *args[] = { profile, NULL };
	char why[512];
	int st = host_run(h, el, "list-generations", generations_script, args,
			  NULL, 0, &o, &err, -1, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_EFAIL, "cannot list the generations of '%s' on '%s': %s",
			 profile, h->name, why);
	} else if (st == 0) {
		generations_parse(o.buf, out, n);
		parse_details(o.buf, *out, *n);
	}
	strbuf_release(&o);
	strbuf_release(&err);
	return st ? e->status : 0;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

void generations_print(const struct generation *g, int n, int json)
{
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		for (int i = n - 1; i >= 0; i--) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "generation", g[i].id);
			cJSON_AddStringToObject(o, "date", g[i].date);
			cJSON_AddStringToObject(o, "nixosVersion", or_empty(g[i].nixos_version));
			cJSON_AddStringToObject(o, "kernelVersion", or_empty(g[i].kernel));
			cJSON_AddStringToObject(o, "configurationRevision", or_empty(g[i].revision));
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
