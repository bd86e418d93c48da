/*
 * nixconf: where a Nix store substitutes from and whom it trusts, read
 * from `nix show-config --json` or from nix.conf text (see nixconf.h).
 */
#include "nixconf.h"
#include "narinfo.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nix_settings_init(struct nix_settings *s)
{
	memset(s, 0, sizeof(*s));
	strvec_init(&s->substituters);
	strvec_init(&s->trusted_substituters);
	strvec_init(&s->trusted_public_keys);
	strvec_init(&s->extra_platforms);
	strvec_init(&s->includes);
	strvec_push(&s->substituters, "https://cache.nixos.org/");
	strvec_push(&s->trusted_public_keys,
		    "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=");
	s->store = xstrdup("auto");
	s->store_dir = xstrdup(NIX_STORE_DIR);
	s->require_sigs = 1;
}

void nix_settings_release(struct nix_settings *s)
{
	strvec_clear(&s->substituters);
	strvec_clear(&s->trusted_substituters);
	strvec_clear(&s->trusted_public_keys);
	strvec_clear(&s->extra_platforms);
	free(s->system);
	free(s->builders);
	s->system = s->builders = NULL;
	strvec_clear(&s->includes);
	free(s->store);
	free(s->store_dir);
	s->store = s->store_dir = NULL;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Pushes the blank-separated words of s[0..len) onto out. */
static void push_words(struct strvec *out, const char *s, size_t len)
{
	size_t i = 0;
	for (;;) {
		while (i < len && is_blank(s[i]))
			i++;
		size_t start = i;
		while (i < len && !is_blank(s[i]))
			i++;
		if (i == start)
			return;
		char *w = xstrndup(s + start, i - start);
		strvec_push(out, w);
		free(w);
	}
}

/* Points *val at the "value" of setting name, or NULL if root lacks it. */
static int json_setting(const cJSON *root, const char *name, const cJSON **val,
			struct nrr_err *e)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
	*val = NULL;
	if (!item)
		return 0;
	*val = cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "value") : NULL;
	if (!*val)
		return nrr_fail(e, NRR_EFAIL, "setting '%s' has no \"value\"", name);
	return 0;
}

static int json_list(const cJSON *root, const char *name, struct strvec *out, int *found,
		     struct nrr_err *e)
{
	const cJSON *v, *item;
	*found = 0;
	if (json_setting(root, name, &v, e))
		return e->status;
	if (!v)
		return 0;
	*found = 1;
	if (cJSON_IsString(v)) {
		push_words(out, v->valuestring, strlen(v->valuestring));
		return 0;
	}
	if (!cJSON_IsArray(v))
		return nrr_fail(e, NRR_EFAIL, "setting '%s' is not a list", name);
	cJSON_ArrayForEach(item, v) {
		if (!cJSON_IsString(item))
			return nrr_fail(e, NRR_EFAIL, "setting '%s' holds a value that is not a string",
					name);
		strvec_push(out, item->valuestring);
	}
	return 0;
}

static int json_string(const cJSON *root, const char *name, char **out, struct nrr_err *e)
{
	const cJSON *v;
	if (json_setting(root, name, &v, e))
		return e->status;
	if (v && !cJSON_IsString(v))
		return nrr_fail(e, NRR_EFAIL, "setting '%s' is not a string", name);
	if (v) {
		free(*out);
		*out = xstrdup(v->valuestring);
	}
	return 0;
}

int nix_settings_from_json(struct nix_settings *s, const char *json, size_t len,
			   struct nrr_err *e)
{
	static const char *const lists[] = { "substituters", "trusted-substituters",
					     "trusted-public-keys", "extra-platforms" };
	struct strvec *dst[] = { &s->substituters, &s->trusted_substituters,
				 &s->trusted_public_keys, &s->extra_platforms };
	static const char *const strings[] = { "store", "store-dir", "system", "builders" };
	char **sdst[] = { &s->store, &s->store_dir, &s->system, &s->builders };
	struct strvec got[4] = { STRVEC_INIT, STRVEC_INIT, STRVEC_INIT, STRVEC_INIT };
	int found[4] = { 0 }, ret = 0;
	char *sgot[4] = { NULL };
	const cJSON *sigs = NULL;
	cJSON *root;

	if (len > NARINFO_MAX_INPUT)
		return nrr_fail(e, NRR_EFAIL, "nix configuration of %zu bytes is too large", len);
	root = cJSON_ParseWithLength(json, len);
	if (!root)
		return nrr_fail(e, NRR_EFAIL, "nix configuration is not JSON");
	if (!cJSON_IsObject(root)) {
		ret = nrr_fail(e, NRR_EFAIL, "nix configuration is not a JSON object");
		goto out;
	}
	/* Read all first, apply only if all is well: s stays whole on error. */
	for (size_t i = 0; i < 4 && !ret; i++)
		ret = json_list(root, lists[i], &got[i], &found[i], e);
	for (size_t i = 0; i < 4 && !ret; i++)
		ret = json_string(root, strings[i], &sgot[i], e);
	if (!ret)
		ret = json_setting(root, "require-sigs", &sigs, e);
	if (!ret && sigs && !cJSON_IsBool(sigs))
		ret = nrr_fail(e, NRR_EFAIL, "setting 'require-sigs' is not true or false");
	if (ret)
		goto out;
	for (size_t i = 0; i < 4; i++) {
		if (!found[i])
			continue;
		strvec_clear(dst[i]);
		strvec_pushvec(dst[i], &got[i]);
	}
	for (size_t i = 0; i < 4; i++) {
		if (!sgot[i])
			continue;
		free(*sdst[i]);
		*sdst[i] = sgot[i];
		sgot[i] = NULL;
	}
	if (sigs)
		s->require_sigs = cJSON_IsTrue(sigs);
out:
	for (size_t i = 0; i < 4; i++) {
		strvec_clear(&got[i]);
		free(sgot[i]);
	}
	cJSON_Delete(root);
	return ret;
}

/* Applies "name = words..." of nix.conf. */
static int conf_apply(struct nix_settings *s, const char *name, const struct strvec *w,
		      const char *where, struct nrr_err *e)
{
	static const struct {
		const char *name;
		int which;
	} names[] = {
		{ "substituters", 0 }, { "binary-caches", 0 },
		{ "trusted-substituters", 1 }, { "trusted-binary-caches", 1 },
		{ "trusted-public-keys", 2 }, { "binary-cache-public-keys", 2 },
		{ "platforms", 3 },	/* only as extra-platforms */
	};
	struct strvec *lists[] = { &s->substituters, &s->trusted_substituters,
				   &s->trusted_public_keys, &s->extra_platforms };
	int extra = !strncmp(name, "extra-", 6);
	const char *base = extra ? name + 6 : name;
	const char *const *vals = w->v + 2;
	size_t nvals = w->nr - 2;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(base, names[i].name) || (names[i].which == 3 && !extra))
			continue;
		if (!extra)
			strvec_clear(lists[names[i].which]);
		strvec_pushv(lists[names[i].which], vals);
		return 0;
	}
	if (extra)
		return 0;
	if (!strcmp(name, "require-sigs")) {
		const char *v = nvals == 1 ? vals[0] : "";
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
			s->require_sigs = 1;
		else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
			s->require_sigs = 0;
		else
			return nrr_fail(e, NRR_EFAIL, "%s: require-sigs must be true or false", where);
	} else {
		/* the settings whose value is the rest of the line */
		const char *const strings[] = { "store", "system", "builders" };
		char **dst[] = { &s->store, &s->system, &s->builders };
		for (size_t k = 0; k < 3; k++) {
			if (strcmp(name, strings[k]))
				continue;
			struct strbuf sb = STRBUF_INIT;
			for (size_t i = 0; i < nvals; i++)
				strbuf_addf(&sb, "%s%s", i ? " " : "", vals[i]);
			free(*dst[k]);
			*dst[k] = strbuf_detach(&sb);
		}
	}
	return 0;
}

/* "dir-of-origin/path" for a relative path; the caller frees. */
static char *conf_resolve(const char *origin, const char *path)
{
	const char *slash = origin ? strrchr(origin, '/') : NULL;
	if (path[0] == '/' || !slash)
		return xstrdup(path);
	return xstrfmt("%.*s/%s", (int)(slash - origin), origin, path);
}

int nix_settings_from_conf(struct nix_settings *s, const char *text, size_t len,
			   const char *origin, nix_conf_include_fn include, void *data,
			   int depth, struct nrr_err *e)
{
	const char *file = origin ? origin : "nix.conf";
	const char *p = text, *end = text + len;
	struct strvec w = STRVEC_INIT;
	char where[256];
	int lineno = 0, ret = 0;

	if (depth > 10)
		return nrr_fail(e, NRR_EFAIL, "%s: includes nested more than 10 deep", file);
	if (len > NARINFO_MAX_INPUT || memchr(text, '\0', len))
		return nrr_fail(e, NRR_EFAIL, "%s is not a text file of reasonable size", file);
	while (p < end && !ret) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *hash = memchr(p, '#', (size_t)(eol - p));
		lineno++;
		strvec_clear(&w);
		push_words(&w, p, (size_t)((hash ? hash : eol) - p));
		p = nl ? nl + 1 : end;
		if (!w.nr)
			continue;
		snprintf(where, sizeof(where), "%s:%d", file, lineno);
		if (!strcmp(w.v[0], "include") || !strcmp(w.v[0], "!include")) {
			if (w.nr != 2) {
				ret = nrr_fail(e, NRR_EFAIL, "%s: include takes one path", where);
				break;
			}
			int optional = w.v[0][0] == '!';
			char *path = conf_resolve(origin, w.v[1]);
			strvec_pushf(&s->includes, "%s%s", optional ? "!" : "", path);
			if (include && include(s, path, optional, depth + 1, data, e))
				ret = e->status ? e->status : NRR_EFAIL;
			free(path);
		} else if (w.nr < 2 || strcmp(w.v[1], "=")) {
			ret = nrr_fail(e, NRR_EFAIL, "%s: '%.60s' is not 'name = value'", where, w.v[0]);
		} else {
			ret = conf_apply(s, w.v[0], &w, where, e);
		}
	}
	strvec_clear(&w);
	return ret;
}

int nix_settings_from_shown(struct nix_settings *s, const char *text, size_t len,
			    const char *origin, struct nrr_err *e)
{
	/* no include is followed: a target's lines name no file of ours */
	return nix_settings_from_conf(s, text, len, origin, NULL, NULL, 0, e);
}

/* ---- configuration ------------------------------------------------------- */

