/*
 * evalcache: see evalcache.h.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachedir.h"
#include "evalcache.h"
#include "nix.h"
#include "run.h"

#ifndef NRR_VERSION
#define NRR_VERSION "unknown"
#endif

/* The format of the key and of the entries: a new one forgets the old. */
#define EVALCACHE_FORMAT "nixos-rebuild-remote eval cache 1"

static void say(const struct evalcache *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(const struct evalcache *c, const char *fmt, ...)
{
	va_list ap;
	if (!c->verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "eval cache: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Hex SHA-256 of data, malloc'ed. (libsodium's SHA-256 is plain C, with
 * no implementation picked at run time: it needs no sodium_init().) */
static char *sha256_hex(const void *data, size_t len)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char *hex = xmalloc(2 * sizeof(h) + 1);
	crypto_hash_sha256(h, data, len);
	for (size_t i = 0; i < sizeof(h); i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	return hex;
}


int evalcache_locked_has_fingerprint(const char *locked_json)
{
	cJSON *l = cJSON_Parse(locked_json);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(l, "type");
	const char *t = cJSON_IsString(type) ? type->valuestring : "";
	int ok;

	if (!strcmp(t, "git") || !strcmp(t, "hg"))
		/* a tree with uncommitted changes has no revision */
		ok = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "rev"));
	else
		ok = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "narHash")) ||
		     cJSON_IsString(cJSON_GetObjectItemCaseSensitive(l, "rev"));
	ok = *t && ok;
	cJSON_Delete(l);
	return ok;
}

/* 1 if nix's eval-cache setting is false in args (--option eval-cache
 * false) or NIX_CONFIG: Nix would not use its cache then, nor do we. */
static int nix_cache_disabled(const struct strvec *args)
{
	const char *env = getenv("NIX_CONFIG");
	for (size_t i = 0; args && i + 2 < args->nr; i++)
		if (!strcmp(args->v[i], "--option") && !strcmp(args->v[i + 1], "eval-cache") &&
		    strcmp(args->v[i + 2], "true"))
			return 1;
	if (args && strvec_find(args, "--no-eval-cache") >= 0)
		return 1;
	for (const char *l = env; l && *l;) {
		size_t len = strcspn(l, "\n");
		char name[32], value[16];
		if (sscanf(l, " %31[a-z-] = %15s", name, value) == 2 &&
		    !strcmp(name, "eval-cache") && strcmp(value, "true"))
			return 1;
		l += len + (l[len] ? 1 : 0);
	}
	return 0;
}


void evalcache_open(struct evalcache *c, const struct hive *h, const struct hive_opts *o,
		    struct strvec *warnings)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT, key = STRBUF_INIT;
	struct nrr_err e = { 0 };
	cJSON *meta = NULL;
	char *locked = NULL, *locks = NULL;
	const cJSON *path;

	c->dir = c->fingerprint = NULL;
	c->verbose = o->verbose;
	if (!o->eval_cache)
		return;
	if (h->kind != HIVE_FLAKE) {
		say(c, "%s", "off: the hive is not a flake (Nix caches flakes only)");
		return;
	}
	if (o->impure) {
		say(c, "%s", "off: --impure");
		return;
	}
	if (nix_cache_disabled(o->nix_args)) {
		say(c, "%s", "off: nix's eval-cache is false");
		return;
	}
	nix_push_command(&argv, "flake");
	strvec_pushl(&argv, "metadata", "--json", NULL);
	if (o->nix_args)
		strvec_pushvec(&argv, o->nix_args);
	strvec_push(&argv, h->where);
	if (nix_run(&argv, &out, &err, NIX_RUN_QUIET, o->verbose, warnings, &e) != 0) {
		say(c, "%s", "off: nix flake metadata failed");
		goto out;
	}
	meta = cJSON_Parse(out.buf);
	locked = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(meta, "locked"));
	locks = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(meta, "locks"));
	path = cJSON_GetObjectItemCaseSensitive(meta, "path");
	if (!locked || !locks || !cJSON_IsString(path)) {
		say(c, "%s", "off: nix flake metadata gave no lock");
		goto out;
	}
	if (!evalcache_locked_has_fingerprint(locked)) {
		say(c, "%s", "off: the flake has no fingerprint (a git tree with uncommitted changes?)");
		goto out;
	}
	c->dir = cachedir_path("eval");
	if (!c->dir) {
		say(c, "%s", "off: no $XDG_CACHE_HOME or $HOME");
		goto out;
	}
	/* every part NUL-terminated: no two keys read the same */
	strbuf_addstr(&key, EVALCACHE_FORMAT);
	strbuf_add(&key, "", 1);
	strbuf_addstr(&key, NRR_VERSION);
	strbuf_add(&key, "", 1);
	strbuf_addstr(&key, hive_eval_nix);
	strbuf_add(&key, "", 1);
	strbuf_addstr(&key, locked);
	strbuf_add(&key, "", 1);
	strbuf_addstr(&key, path->valuestring);
	strbuf_add(&key, "", 1);
	strbuf_addstr(&key, locks);
	strbuf_add(&key, "", 1);
	for (size_t i = 0; o->nix_args && i < o->nix_args->nr; i++) {
		strbuf_addstr(&key, o->nix_args->v[i]);
		strbuf_add(&key, "", 1);
	}
	strbuf_add(&key, "", 1);
	strbuf_addstr(&key, getenv("NIX_CONFIG") ? getenv("NIX_CONFIG") : "");
	c->fingerprint = sha256_hex(key.buf, key.len);
out:
	cJSON_Delete(meta);
	free(locked);
	free(locks);
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	strbuf_release(&key);
	if (!c->fingerprint) {
		free(c->dir);
		c->dir = NULL;
	}
}

/* The entry's file for what/args, malloc'ed. */
static char *entry_path(const struct evalcache *c, const char *what, const char *args)
{
	struct strbuf k = STRBUF_INIT;
	strbuf_addf(&k, "%s", c->fingerprint);
	strbuf_add(&k, "", 1);
	strbuf_addstr(&k, what);
	strbuf_add(&k, "", 1);
	strbuf_addstr(&k, args ? args : "");
	char *hex = sha256_hex(k.buf, k.len);
	char *p = xstrfmt("%s/%s", c->dir, hex);
	free(hex);
	strbuf_release(&k);
	return p;
}

char *evalcache_get(const struct evalcache *c, const char *what, const char *args,
		    int *evaluated)
{
	struct strbuf text = STRBUF_INIT;
	char *path, *nl, *json = NULL;

	if (!c->dir)
		return NULL;
	path = entry_path(c, what, args);
	if (strbuf_read_file(&text, path) >= 0 && (nl = strchr(text.buf, '\n')) &&
	    (!strncmp(text.buf, "colmena\n", 8) || !strncmp(text.buf, "colmenaHive\n", 12))) {
		*evaluated = nl - text.buf == 11;
		json = xstrdup(nl + 1);
	}
	if (json)
		say(c, "hit for %s", what);
	else
		say(c, "miss for %s", what);
	free(path);
	strbuf_release(&text);
	return json;
}

void evalcache_put(const struct evalcache *c, const char *what, const char *args,
		   int evaluated, const char *json)
{
	struct strbuf text = STRBUF_INIT;
	char *path;

	if (!c->dir)
		return;
	if (cachedir_make(c->dir)) {
		say(c, "cannot make %s: not kept", c->dir);
		return;
	}
	path = entry_path(c, what, args);
	strbuf_addf(&text, "%s\n%s", evaluated ? "colmenaHive" : "colmena", json);
	if (!cachedir_put(path, text.buf, text.len))
		say(c, "kept the answer for %s", what);
	strbuf_release(&text);
	free(path);
}

int evalcache_drvs_valid(char *const *drv, size_t n, int verbose)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	struct strvec warnings = STRVEC_INIT;
	struct nrr_err e = { 0 };
	int st;

	strvec_pushl(&argv, "nix-store", "--check-validity", NULL);
	for (size_t i = 0; i < n; i++)
		strvec_push(&argv, drv[i]);
	st = nix_run(&argv, &out, &err, NIX_RUN_QUIET, verbose, &warnings, &e);
	if (st && verbose)
		fprintf(stderr, "eval cache: a cached derivation is no longer in the store: evaluating\n");
	strvec_clear(&argv);
	strvec_clear(&warnings);
	strbuf_release(&out);
	strbuf_release(&err);
	return st == 0;
}

void evalcache_release(struct evalcache *c)
{
	free(c->dir);
	free(c->fingerprint);
	c->dir = c->fingerprint = NULL;
}
