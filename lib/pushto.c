#include "pushto.h"
#include "action.h"
#include "closure.h"
#include "diffshow.h"
#include "host.h"
#include "nix.h"
#include "scripts.h"
#include "ssh.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pushto_check_options(struct options *o, struct nrr_err *e)
{
	unsigned needs = o->act ? o->act->needs : 0;
	const char *words[] = { o->push_to, o->sign_key, o->cache_host, o->cache_url,
				o->cache_key };

	for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
		if (words[i] && (!*words[i] || strpbrk(words[i], "\n\r")))
			return nrr_fail(e, NRR_EUSAGE,
					"the cache route's options take a non-empty word on one line");
	if (!o->push_to) {
		if (o->sign_key || o->cache_host)
			return nrr_fail(e, NRR_EUSAGE, "--sign-key and --cache-host go with --push-to");
		if (!o->cache_url)
			return 0;
	}
	/* dry-build --target-host shows the route's plan */
	if (o->action && !(needs & AN_ACTIVATES) && !(needs & AN_DRY))
		return nrr_fail(e, NRR_EUSAGE,
				"--push-to and --cache-url are for switch, boot, test, dry-activate and dry-build");
	if (o->action && !o->target_host && !o->on)
		return nrr_fail(e, NRR_EUSAGE,
				"--push-to and --cache-url need --target-host or --on: the targets fetch from the cache");
	if (o->push_to && !strstr(o->push_to, "://"))
		return nrr_fail(e, NRR_EUSAGE,
				"--push-to '%s': expected a store URL (file:///DIR, ssh://HOST, s3://BUCKET...)",
				o->push_to);
	if (o->cache_host && !o->cache_url)
		return nrr_fail(e, NRR_EUSAGE,
				"--cache-host needs --cache-url: the URL the targets fetch the cache from");
	if (o->build_host && !o->cache_url)
		return nrr_fail(e, NRR_EUSAGE,
				"--push-to with --build-host needs --cache-url: the build host writes the cache, the targets fetch it from that URL");
	if (!o->cache_url) {
		o->cache_url_buf = xstrndup(o->push_to, strcspn(o->push_to, "?"));
		o->cache_url = o->cache_url_buf;
	}
	/* the targets fetch: let them (--use-substitutes=auto) */
	o->substitutes = 2;
	return 0;
}

int pushto_public_key(const char *file, char **pub, struct nrr_err *e)
{
	struct strbuf text = STRBUF_INIT;
	unsigned char sk[64];
	size_t len = 0;
	int ret = 0;

	*pub = NULL;
	if (strbuf_read_file(&text, file) < 0) {
		strbuf_release(&text);
		return nrr_fail(e, NRR_EFAIL, "cannot read the signing key '%s'", file);
	}
	strbuf_rtrim(&text);
	const char *colon = strchr(text.buf, ':');
	if (sodium_init() < 0 || !colon || colon == text.buf ||
	    sodium_base642bin(sk, sizeof(sk), colon + 1, strlen(colon + 1), NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) || len != sizeof(sk)) {
		ret = nrr_fail(e, NRR_EFAIL, "the signing key '%s' is not a Nix secret key (NAME:KEY)",
			       file);
	} else {
		char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
		/* an Ed25519 secret key ends with its public key */
		sodium_bin2base64(b64, sizeof(b64), sk + 32, 32, sodium_base64_VARIANT_ORIGINAL);
		*pub = xstrfmt("%.*s:%s", (int)(colon - text.buf), text.buf, b64);
	}
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(text.buf, text.len);
	strbuf_release(&text);
	return ret;
}

/* This machine's first secret-key-files, malloc'ed, or NULL. */
static char *local_secret_key_file(void)
{
	struct strbuf json = STRBUF_INIT;
	char *file = NULL;

	if (!nix_local_config(&json)) {
		cJSON *root = cJSON_Parse(json.buf);
		cJSON *v = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(root, "secret-key-files"), "value");
		if (cJSON_IsArray(v) && cJSON_IsString(cJSON_GetArrayItem(v, 0)))
			file = xstrdup(cJSON_GetArrayItem(v, 0)->valuestring);
		else if (cJSON_IsString(v) && *v->valuestring)
			file = xstrndup(v->valuestring, strcspn(v->valuestring, " \t"));
		cJSON_Delete(root);
	}
	strbuf_release(&json);
	return file;
}

static void print_cache_plan(const char *where, const char *url, size_t paths,
			     unsigned long long bytes, int dry)
{
	struct strbuf sb = STRBUF_INIT;
	diffshow_size(&sb, (int64_t)bytes, 0);
	fprintf(stderr, "%s for the cache '%s'%s: %zu paths (%s) %s\n", dry ? "plan" : "push",
		url, where, paths, sb.buf, dry ? "to push once" : "pushed once");
	strbuf_release(&sb);
}

char *pushto_write_url(const char *url)
{
	static const char *const caches[] = { "file://", "s3://", "http://", "https://" };
	const char *q = strchr(url, '?');
	int cache = 0;

	for (size_t i = 0; i < sizeof(caches) / sizeof(*caches); i++)
		cache |= !strncmp(url, caches[i], strlen(caches[i]));
	/* a parameter named exactly compression (not ls-compression...) */
	for (const char *p = q; cache && p; p = strchr(p + 1, '&'))
		if (!strncmp(p + 1, "compression=", 12))
			cache = 0;
	if (!cache)
		return xstrdup(url);
	return xstrfmt("%s%ccompression=zstd", url, q ? '&' : '?');
}

/* --push-to by nix here. */
static int push_here(struct options *o, const struct host *local,
		     const struct strvec *toplevels, const struct strvec *closure,
		     int dry, struct strvec *warnings, struct nrr_err *e)
{
	char *key = o->sign_key ? xstrdup(o->sign_key) : local_secret_key_file();
	struct strvec argv = STRVEC_INIT;
	unsigned long long bytes = 0;
	struct nrr_err ignored;
	int ret = 0, st;

	if (!key)
		return nrr_fail(e, NRR_EUSAGE,
				"--push-to needs a signing key: --sign-key FILE, or secret-key-files in nix.conf");
	if ((ret = pushto_public_key(key, &o->cache_key_buf, e)))
		goto out;
	o->cache_key = o->cache_key_buf;
	if (closure_size(local, closure, &bytes, &ignored))
		bytes = 0;
	if (dry) {
		print_cache_plan("", o->push_to, closure->nr, bytes, 1);
		goto out;
	}
	int is_ssh = !strncmp(o->push_to, "ssh://", 6) || !strncmp(o->push_to, "ssh-ng://", 9);
	if (is_ssh) {
		/* ssh stores keep the signatures paths come with: sign here */
		nix_push_command(&argv, "store");
		strvec_pushl(&argv, "sign", "--key-file", key, "--recursive", NULL);
		strvec_pushvec(&argv, toplevels);
		struct strbuf sout = STRBUF_INIT, serr = STRBUF_INIT;
		st = nix_run(&argv, &sout, &serr, NIX_RUN_QUIET, o->debug, warnings, e);
		strbuf_release(&sout);
		strbuf_release(&serr);
		if (st) {
			ret = st < 0 ? e->status
				     : nrr_fail(e, NRR_ECOPY, "signing the closure with '%s' failed", key);
			goto out;
		}
		strvec_clear(&argv);
	}
	nix_push_command(&argv, "copy");
	strvec_push(&argv, "--to");
	if (is_ssh)
		strvec_push(&argv, o->push_to);
	else {
		char *url = pushto_write_url(o->push_to);
		strvec_pushf(&argv, "%s%csecret-key=%s", url, strchr(url, '?') ? '&' : '?', key);
		free(url);
	}
	strvec_pushvec(&argv, toplevels);
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	st = nix_run(&argv, &out, &err, NIX_RUN_QUIET, o->debug, warnings, e);
	if (st > 0) {
		char why[512];
		nix_error_summary(err.buf, why, sizeof(why));
		ret = nrr_fail(e, NRR_ECOPY, "pushing the closure to '%s' failed: %s", o->push_to, why);
	} else if (st < 0) {
		ret = e->status;
	} else {
		print_cache_plan("", o->push_to, closure->nr, bytes, 0);
	}
	strbuf_release(&out);
	strbuf_release(&err);
out:
	strvec_clear(&argv);
	free(key);
	return ret;
}

/* pushcache.sh's arguments: the URL it writes, the key file, then with
 * import "--import", then (unless dry) the paths. */
static void pushcache_args(const struct options *o, const struct strvec *toplevels, int dry,
			   int import, struct strvec *args)
{
	char *url = pushto_write_url(o->push_to);
	strvec_pushl(args, url, o->sign_key ? o->sign_key : "", NULL);
	free(url);
	if (import)
		strvec_push(args, "--import");
	/* with no path, the script only says its key */
	if (!dry)
		strvec_pushvec(args, toplevels);
}

static int cache_failed(const struct options *o, const struct host *host, int st,
			const char *err, struct nrr_err *e)
{
	char why[512];

	nix_error_summary(err, why, sizeof(why));
	return nrr_fail(e, st == PUSHCACHE_ST_NOKEY ? NRR_EUSAGE : NRR_ECOPY,
			"writing the cache '%s' on '%s' failed: %s", o->push_to, host->name, why);
}

/*
 * pushcache.sh on host ended with st, saying out and err: its key into
 * o->cache_key and the line that says what was written (sent/size: what
 * was streamed to it; own: it built them), or e.
 */
static int cache_written(struct options *o, const struct host *host, int st,
			 struct strbuf *out, const char *err, int dry, int own, size_t sent,
			 unsigned long long size, struct nrr_err *e)
{
	if (st || strncmp(out->buf, "key ", 4))
		return cache_failed(o, host, st, err, e);
	strbuf_rtrim(out);
	free(o->cache_key_buf);
	o->cache_key_buf = xstrdup(out->buf + 4);
	o->cache_key = o->cache_key_buf;
	if (own) {
		fprintf(stderr, "%s the cache '%s' on '%s' from its own store\n",
			dry ? "plan: writing" : "written:", o->push_to, host->name);
	} else {
		char *where = xstrfmt(" on '%s'", host->name);
		print_cache_plan(where, o->push_to, sent, size, dry);
		free(where);
	}
	return 0;
}

/*
 * host writes the cache: `nix copy` of toplevels there (nothing with dry),
 * signed with --sign-key (a file there) or its own secret-key-files; its
 * public key into o->cache_key. sent/size: what was streamed to it, for
 * the line that says so; own: it built them (the build host), nothing was.
 */
static int write_cache(struct options *o, const struct host *host,
		       const struct strvec *toplevels, int dry, int own, size_t sent,
		       unsigned long long size, struct nrr_err *e)
{
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	struct strvec args = STRVEC_INIT;
	int ret;

	pushcache_args(o, toplevels, dry, 0, &args);
	int st = host_run(host, NULL, "push", script_pushcache, (const char *const *)args.v,
			  NULL, 0, &out, &err, -1, e);
	ret = st < 0 ? e->status : cache_written(o, host, st, &out, err.buf, dry, own, sent, size, e);
	strvec_clear(&args);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

/* The merged push's end, when not 0: its import's failure, or its writing's. */
static int push_sink_failed(void *data, const struct host *dst, int status, const char *err,
			    struct nrr_err *e)
{
	if (status == PUSHCACHE_ST_NOKEY || status == PUSHCACHE_ST_COPY)
		return cache_failed(data, dst, status, err, e);
	return closure_import_failed(dst, status, err, e);
}

/*
 * What the cache host lacks (missing, of toplevels' closures) streamed from
 * src, and the cache written, in one session there (pushcache.sh --import):
 * one round trip and one ssh less than the stream, then the writing, and
 * its key looked up while the stream comes. *bytes: what was streamed.
 */
static int stream_and_write(struct options *o, const struct host *src, const struct host *cache,
			    const struct strvec *toplevels, const struct strvec *missing,
			    unsigned long long *bytes, struct nrr_err *e)
{
	struct strvec args = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int ret;

	pushcache_args(o, toplevels, 0, 1, &args);
	struct closure_sink sink = { script_pushcache, (const char *const *)args.v,
				     push_sink_failed, o, &out, &err };
	ret = closure_send_into(src, cache, missing, &sink, bytes, e);
	if (!ret)
		ret = cache_written(o, cache, 0, &out, err.buf, 0, 0, missing->nr, *bytes, e);
	strvec_clear(&args);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

/*
 * --cache-host: stream what it lacks from src (this machine, or the build
 * host) over our masters, then it writes the cache. closure: toplevels'
 * closures on src, or NULL to ask src for them once they are needed.
 * conn: the cache host connected by the caller already (it stays the
 * caller's), or NULL.
 */
static int push_via(struct options *o, struct ssh_ctx *ctx, const struct host *src,
		    const struct strvec *toplevels, const struct strvec *closure,
		    struct ssh_host *conn, int dry, unsigned long long *bytes, struct nrr_err *e)
{
	struct ssh_host own, *sh = conn ? conn : &own;
	struct host cache = { o->cache_host, sh, ctx };
	struct strvec missing = STRVEC_INIT, listed = STRVEC_INIT;
	unsigned long long size = 0;
	struct nrr_err ignored;
	int ret = 0;

	memset(&own, 0, sizeof(own));
	child_init(&own.master_proc);
	if (!conn && (ret = ssh_host_resolve(ctx, o->cache_host, &own, e)))
		goto out;
	if (src->ssh && ssh_host_same(sh, src->ssh)) {
		/* the build host is the cache host: it has it all */
		ret = write_cache(o, src, toplevels, dry, 1, 0, 0, e);
		goto out;
	}
	if (!closure && !(ret = closure_of_all(src, toplevels, &listed, e)))
		closure = &listed;
	if (ret || (ret = ssh_host_connect(ctx, sh, e)) ||
	    (ret = closure_query(&cache, closure, 0, &missing, e)))
		goto out;
	if (dry && missing.nr && closure_size(src, &missing, &size, &ignored))
		size = 0;
	if (!dry && missing.nr)
		ret = stream_and_write(o, src, &cache, toplevels, &missing, bytes, e);
	else
		ret = write_cache(o, &cache, toplevels, dry, 0, missing.nr, dry ? size : *bytes, e);
out:
	ssh_host_release(ctx, &own);
	strvec_clear(&missing);
	strvec_clear(&listed);
	return ret;
}

int pushto_push_built(struct options *o, struct ssh_ctx *ctx, const struct host *built,
		      const char *toplevel, unsigned long long *bytes, struct nrr_err *e)
{
	struct strvec tops = STRVEC_INIT;
	int ret;

	*bytes = 0;
	strvec_push(&tops, toplevel);
	if (!o->cache_host)
		ret = write_cache(o, built, &tops, 0, 1, 0, 0, e);
	else
		ret = push_via(o, ctx, built, &tops, NULL, NULL, 0, bytes, e);
	strvec_clear(&tops);
	return ret;
}

int pushto_closure(const struct strvec *toplevels, struct strvec *closure,
		   struct nrr_err *e)
{
	struct ssh_ctx ctx;
	struct host local = { "localhost", NULL, &ctx };
	/* what ssh's settings warn of, the push's own connection says */
	struct strvec unsaid = STRVEC_INIT;
	int ret;

	memset(&ctx, 0, sizeof(ctx));
	if (!(ret = ssh_ctx_init(&ctx, &unsaid, e)))
		ret = closure_of_all(&local, toplevels, closure, e);
	ssh_ctx_release(&ctx);
	strvec_clear(&unsaid);
	return ret;
}

int pushto_push(struct options *o, const struct strvec *toplevels, int dry,
		struct strvec *closure, struct ssh_host *cache_ssh, struct strvec *warnings,
		unsigned long long *bytes, struct nrr_err *e)
{
	struct ssh_ctx ctx;
	struct host local = { "localhost", NULL, &ctx };
	int ret;

	*bytes = 0;
	/* one nix-store for the whole fleet: its union, dependencies first */
	if (!closure->nr && (ret = pushto_closure(toplevels, closure, e)))
		return ret;
	memset(&ctx, 0, sizeof(ctx));
	if ((ret = ssh_ctx_init(&ctx, warnings, e)))
		return ret;
	ctx.trace = o->debug || o->verbose;
	if (o->cache_host)
		ret = push_via(o, &ctx, &local, toplevels, closure, cache_ssh, dry, bytes, e);
	else
		ret = push_here(o, &local, toplevels, closure, dry, warnings, e);
	ssh_ctx_release(&ctx);
	return ret;
}

/* url without "?..." and a final '/', into buf. */
static void bare_url(const char *url, char *buf, size_t size)
{
	size_t n = strcspn(url, "?");
	while (n && url[n - 1] == '/')
		n--;
	snprintf(buf, size, "%.*s", (int)n, url);
}

int pushto_check_target(const char *host, const struct nix_settings *ns,
			const char *url, const char *key, struct nrr_err *e)
{
	char want[1024], got[1024];
	int found = 0;

	bare_url(url, want, sizeof(want));
	for (size_t i = 0; !found && i < ns->substituters.nr; i++) {
		bare_url(ns->substituters.v[i], got, sizeof(got));
		found = !strcmp(got, want);
	}
	if (!found) {
		nrr_fail(e, NRR_ECHECK, "'%s' would not fetch from the cache: '%s' is not among its substituters",
			 host, want);
		nrr_hint(e, "add it to nix.conf's substituters there (nix.settings.substituters), "
			 "or deploy that host without --push-to; nothing was changed");
		return e->status;
	}
	if (key && ns->require_sigs && strvec_find(&ns->trusted_public_keys, key) < 0) {
		nrr_fail(e, NRR_ECHECK, "'%s' would not fetch from the cache: it does not trust the key '%s'",
			 host, key);
		nrr_hint(e, "add it to nix.conf's trusted-public-keys there (nix.settings.trusted-public-keys), "
			 "or deploy that host without --push-to; nothing was changed");
		return e->status;
	}
	return 0;
}
