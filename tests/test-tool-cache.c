/*
 * test-tool cache-*: the narinfo and cache modules, for tests/cache.bats
 * and bench/cache-bench. Parsers read stdin and print what they understood;
 * errors go to stderr as "error: ..." with exit status 1 (2 for usage).
 *
 *   cache-base32 HEX            nix-base32 of the bytes
 *   cache-base32-decode NIX32   the bytes in hex
 *   cache-hash HASH             the hash as sha256:<nix32>, then sha256:<hex>
 *   cache-parse                 a narinfo's fields, normalised
 *   cache-fingerprint           what a narinfo's signatures sign
 *   cache-verify KEY...         "verified: KEYNAME" (exit 0) or
 *                               "<untrusted|unsigned|bad signature>: why" (exit 1)
 *   cache-sign SECRETKEY        the narinfo with one more Sig line
 *   cache-info                  a nix-cache-info's fields
 *   cache-showconfig            settings from `nix show-config --json`
 *   cache-conf [FILE]           settings from nix.conf text (stdin, or FILE
 *                               with its includes read)
 *   cache-keygen NAME           a secret key line, then its public key line
 *   cache-gen DIR N SECRETKEY   N signed narinfos in DIR (a cache with no
 *                               NARs), their paths on stdout
 *   cache-query [OPTIONS] PATH...|-   ask caches; one line per path:
 *       PATH present CACHE verified KEY nar=N file=N
 *       PATH present CACHE <trust>: why
 *       PATH absent
 *       PATH unknown: why
 *     then with --stats, one line per cache. Options: --cache URL,
 *     --key KEY, --no-require-sigs, --http 1|2|auto, --timeout MS,
 *     --connect-timeout MS, --tries N, --backoff MS, --max-connections N,
 *     --max-requests N, --ca-file FILE, --from-host, --stats, --quiet (only a count
 *     per state).
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cache.h"
#include "../lib/run.h"

int test_tool_cache(int argc, const char **argv);

static int usage(const char *msg)
{
	fprintf(stderr, "usage: test-tool %s\n", msg);
	return 2;
}

static int fail(const struct nrr_err *e)
{
	fprintf(stderr, "error: %s\n", e->msg);
	return 1;
}

static void read_all(FILE *f, struct strbuf *sb)
{
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(sb, buf, n);
}

static int read_narinfo(struct narinfo *ni, struct strbuf *text, struct nrr_err *e)
{
	read_all(stdin, text);
	return narinfo_parse(ni, text->buf, text->len, e);
}

static int cmd_base32(int argc, const char **argv)
{
	if (argc != 2)
		return usage("cache-base32 HEX");
	size_t hl = strlen(argv[1]), n = hl / 2;
	unsigned char *bytes = xmalloc(n + 1);
	char *out = xmalloc(nix32_len(n) + 1);
	if (sodium_hex2bin(bytes, n + 1, argv[1], hl, NULL, &n, NULL) || 2 * n != hl) {
		fprintf(stderr, "error: '%s' is not hex\n", argv[1]);
		free(bytes);
		free(out);
		return 1;
	}
	nix32_encode(bytes, n, out);
	puts(out);
	free(bytes);
	free(out);
	return 0;
}

static int cmd_base32_decode(int argc, const char **argv)
{
	if (argc != 2)
		return usage("cache-base32-decode NIX32");
	size_t sl = strlen(argv[1]), n = sl * 5 / 8;
	unsigned char *bytes = xmalloc(n + 1);
	if (nix32_len(n) != sl || nix32_decode(argv[1], sl, bytes, n)) {
		fprintf(stderr, "error: '%s' is not nix-base32\n", argv[1]);
		free(bytes);
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		printf("%02x", bytes[i]);
	printf("\n");
	free(bytes);
	return 0;
}

static int cmd_hash(int argc, const char **argv)
{
	struct nix_hash h;
	struct nrr_err e = { 0 };
	if (argc != 2)
		return usage("cache-hash HASH");
	if (nix_hash_parse(&h, argv[1], strlen(argv[1]), &e))
		return fail(&e);
	char *a = nix_hash_to_nix32(&h), *b = nix_hash_to_base16(&h);
	printf("%s\n%s\n", a, b);
	free(a);
	free(b);
	return 0;
}

static int cmd_parse(void)
{
	struct narinfo ni = NARINFO_INIT;
	struct strbuf text = STRBUF_INIT;
	struct nrr_err e = { 0 };
	int ret = read_narinfo(&ni, &text, &e);
	strbuf_release(&text);
	if (ret)
		return fail(&e);
	char *nh = nix_hash_to_nix32(&ni.nar_hash);
	printf("StorePath: %s\nURL: %s\nCompression: %s\nFileHash: %s\nFileSize: %llu\n"
	       "NarHash: %s\nNarSize: %llu\nReferences:", ni.store_path, ni.url, ni.compression,
	       ni.file_hash ? ni.file_hash : "(none)", (unsigned long long)ni.file_size, nh,
	       (unsigned long long)ni.nar_size);
	for (size_t i = 0; i < ni.references.nr; i++)
		printf(" %s", ni.references.v[i]);
	printf("\nDeriver: %s\nCA: %s\n", ni.deriver ? ni.deriver : "(none)", ni.ca ? ni.ca : "(none)");
	for (size_t i = 0; i < ni.sigs.nr; i++)
		printf("Sig: %s\n", ni.sigs.v[i]);
	free(nh);
	narinfo_release(&ni);
	return 0;
}

static int cmd_fingerprint(void)
{
	struct narinfo ni = NARINFO_INIT;
	struct strbuf text = STRBUF_INIT;
	struct nrr_err e = { 0 };
	int ret = read_narinfo(&ni, &text, &e);
	strbuf_release(&text);
	if (ret)
		return fail(&e);
	char *fp = narinfo_fingerprint(&ni);
	puts(fp);
	free(fp);
	narinfo_release(&ni);
	return 0;
}

static int cmd_verify(int argc, const char **argv)
{
	struct narinfo ni = NARINFO_INIT;
	struct trusted_keys keys = TRUSTED_KEYS_INIT;
	struct strbuf text = STRBUF_INIT, why = STRBUF_INIT;
	struct nrr_err e = { 0 };
	int ret = 0;
	for (int i = 1; i < argc && !ret; i++)
		ret = trusted_keys_add(&keys, argv[i], &e);
	if (!ret)
		ret = read_narinfo(&ni, &text, &e);
	if (ret) {
		ret = fail(&e);
	} else {
		enum narinfo_trust t = narinfo_verify(&ni, &keys, &why);
		printf("%s: %s\n", narinfo_trust_name(t), why.buf);
		ret = t != NARINFO_VERIFIED;
	}
	strbuf_release(&text);
	strbuf_release(&why);
	narinfo_release(&ni);
	trusted_keys_release(&keys);
	return ret;
}

/* Parses a secret key "name:base64(64 bytes)"; returns the name's length or 0. */
static size_t secret_key(const char *spec, unsigned char sk[crypto_sign_SECRETKEYBYTES])
{
	const char *colon = strchr(spec, ':');
	size_t got;
	if (!colon || colon == spec ||
	    sodium_base642bin(sk, crypto_sign_SECRETKEYBYTES, colon + 1, strlen(colon + 1), NULL,
			      &got, NULL, sodium_base64_VARIANT_ORIGINAL) ||
	    got != crypto_sign_SECRETKEYBYTES)
		return 0;
	return (size_t)(colon - spec);
}

/* Appends "Sig: name:base64(signature of ni)" to out. */
static void sign_into(struct strbuf *out, const struct narinfo *ni, const char *name,
		      size_t nlen, const unsigned char *sk)
{
	unsigned char sig[crypto_sign_BYTES];
	char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char *fp = narinfo_fingerprint(ni);
	crypto_sign_detached(sig, NULL, (const unsigned char *)fp, strlen(fp), sk);
	sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
	strbuf_addf(out, "Sig: %.*s:%s\n", (int)nlen, name, b64);
	free(fp);
}

static int cmd_sign(int argc, const char **argv)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	struct narinfo ni = NARINFO_INIT;
	struct strbuf text = STRBUF_INIT;
	struct nrr_err e = { 0 };
	size_t nlen;
	if (argc != 2)
		return usage("cache-sign SECRETKEY < narinfo");
	if (!(nlen = secret_key(argv[1], sk))) {
		fprintf(stderr, "error: not a secret key\n");
		return 1;
	}
	if (read_narinfo(&ni, &text, &e)) {
		strbuf_release(&text);
		return fail(&e);
	}
	strbuf_rtrim(&text);
	strbuf_addch(&text, '\n');
	sign_into(&text, &ni, argv[1], nlen, sk);
	fwrite(text.buf, 1, text.len, stdout);
	strbuf_release(&text);
	narinfo_release(&ni);
	sodium_memzero(sk, sizeof(sk));
	return 0;
}

static int cmd_info(void)
{
	struct nix_cache_info ci;
	struct strbuf text = STRBUF_INIT;
	struct nrr_err e = { 0 };
	read_all(stdin, &text);
	int ret = nix_cache_info_parse(&ci, text.buf, text.len, &e);
	strbuf_release(&text);
	if (ret)
		return fail(&e);
	printf("StoreDir: %s\nWantMassQuery: %d\nPriority: %d%s\n",
	       ci.store_dir ? ci.store_dir : "(none)", ci.want_mass_query, ci.priority,
	       ci.has_priority ? "" : " (default)");
	nix_cache_info_release(&ci);
	return 0;
}

static void print_settings(const struct nix_settings *s)
{
	const struct strvec *lists[] = { &s->substituters, &s->trusted_substituters,
					 &s->trusted_public_keys, &s->includes,
					 &s->extra_platforms };
	const char *names[] = { "substituters", "trusted-substituters", "trusted-public-keys",
				"includes", "extra-platforms" };
	for (size_t i = 0; i < 5; i++) {
		printf("%s =", names[i]);
		for (size_t j = 0; j < lists[i]->nr; j++)
			printf(" %s", lists[i]->v[j]);
		printf("\n");
	}
	printf("store = %s\nstore-dir = %s\nrequire-sigs = %s\n", s->store, s->store_dir,
	       s->require_sigs ? "true" : "false");
	printf("system = %s\nbuilders = %s\n", s->system ? s->system : "(unset)",
	       s->builders ? s->builders : "(unset)");
}

static int cmd_showconfig(void)
{
	struct nix_settings s;
	struct strbuf text = STRBUF_INIT;
	struct nrr_err e = { 0 };
	nix_settings_init(&s);
	read_all(stdin, &text);
	int ret = nix_settings_from_json(&s, text.buf, text.len, &e);
	if (ret)
		fail(&e);
	else
		print_settings(&s);
	strbuf_release(&text);
	nix_settings_release(&s);
	return ret ? 1 : 0;
}

/* The include callback of cache-conf: reads the file, as a caller would. */
static int include_file(struct nix_settings *s, const char *path, int optional, int depth,
			void *data, struct nrr_err *e)
{
	struct strbuf text = STRBUF_INIT;
	FILE *f = fopen(path, "r");
	(void)data;
	if (!f) {
		if (optional && errno == ENOENT)
			return 0;
		return nrr_fail(e, NRR_EFAIL, "cannot read '%s': %s", path, strerror(errno));
	}
	read_all(f, &text);
	fclose(f);
	int ret = nix_settings_from_conf(s, text.buf, text.len, path, include_file, NULL, depth, e);
	strbuf_release(&text);
	return ret;
}

static int cmd_conf(int argc, const char **argv)
{
	struct nix_settings s;
	struct nrr_err e = { 0 };
	int ret;
	nix_settings_init(&s);
	if (argc > 1) {
		ret = include_file(&s, argv[1], 0, 0, NULL, &e);
	} else {
		struct strbuf text = STRBUF_INIT;
		read_all(stdin, &text);
		ret = nix_settings_from_conf(&s, text.buf, text.len, NULL, NULL, NULL, 0, &e);
		strbuf_release(&text);
	}
	if (ret)
		fail(&e);
	else
		print_settings(&s);
	nix_settings_release(&s);
	return ret ? 1 : 0;
}

static int cmd_keygen(int argc, const char **argv)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char b64[sodium_base64_ENCODED_LEN(crypto_sign_SECRETKEYBYTES,
					   sodium_base64_VARIANT_ORIGINAL)];
	if (argc != 2)
		return usage("cache-keygen NAME");
	if (sodium_init() < 0)
		return 1;
	crypto_sign_keypair(pk, sk);
	sodium_bin2base64(b64, sizeof(b64), sk, sizeof(sk), sodium_base64_VARIANT_ORIGINAL);
	printf("%s:%s\n", argv[1], b64);
	sodium_bin2base64(b64, sizeof(b64), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
	printf("%s:%s\n", argv[1], b64);
	sodium_memzero(sk, sizeof(sk));
	return 0;
}

/* Writes len bytes of buf to path; 0, or -1 with a message on stderr. */
static int write_file(const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "w");
	int ok = f && fwrite(buf, 1, len, f) == len;
	if ((f && fclose(f)) || !ok) {
		fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int cmd_gen(int argc, const char **argv)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES], hash[20], digest[32];
	struct nrr_err e = { 0 };
	size_t nlen;
	long n;
	if (argc != 4 || (n = atol(argv[2])) <= 0)
		return usage("cache-gen DIR N SECRETKEY");
	if (sodium_init() < 0 || !(nlen = secret_key(argv[3], sk))) {
		fprintf(stderr, "error: not a secret key\n");
		return 1;
	}
	static const char info[] = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n";
	char *file = xstrfmt("%s/nix-cache-info", argv[1]);
	int ret = write_file(file, info, strlen(info));
	free(file);
	if (ret)
		return 1;
	struct strvec names = STRVEC_INIT;
	for (long i = 0; i < n; i++) {
		struct strbuf text = STRBUF_INIT;
		struct narinfo ni = NARINFO_INIT;
		char h32[33], d32[53];
		randombytes_buf(hash, sizeof(hash));
		randombytes_buf(digest, sizeof(digest));
		nix32_encode(hash, sizeof(hash), h32);
		nix32_encode(digest, sizeof(digest), d32);
		strvec_pushf(&names, "%s-bench-%ld", h32, i);
		strbuf_addf(&text, "StorePath: %s/%s\nURL: nar/%s.nar.xz\nCompression: xz\n"
			    "FileHash: sha256:%s\nFileSize: %ld\nNarHash: sha256:%s\nNarSize: %ld\n"
			    "References:", NIX_STORE_DIR, names.v[i], d32, d32, 1000 + i, d32, 4096 + i);
		/* a few references, the path itself among them, as real paths have */
		for (long r = i > 3 ? i - 3 : 0; r <= i; r++)
			strbuf_addf(&text, " %s", names.v[r]);
		strbuf_addstr(&text, "\n");
		if (narinfo_parse(&ni, text.buf, text.len, &e)) {
			strbuf_release(&text);
			strvec_clear(&names);
			return fail(&e);
		}
		sign_into(&text, &ni, argv[3], nlen, sk);
		file = xstrfmt("%s/%s.narinfo", argv[1], h32);
		ret = write_file(file, text.buf, text.len);
		free(file);
		if (!ret)
			printf("%s\n", ni.store_path);
		strbuf_release(&text);
		narinfo_release(&ni);
		if (ret)
			break;
	}
	strvec_clear(&names);
	sodium_memzero(sk, sizeof(sk));
	return ret ? 1 : 0;
}

static void print_answer(const struct cache_result *res, const struct cache_answer *a)
{
	printf("%s %s", a->path, cache_state_name(a->state));
	if (a->state == CACHE_PRESENT) {
		printf(" %s %s", res->caches[a->cache].url, narinfo_trust_name(a->trust));
		if (a->trust == NARINFO_VERIFIED)
			printf(" %s nar=%llu file=%llu", a->why, (unsigned long long)a->info.nar_size,
			       (unsigned long long)a->info.file_size);
		else
			printf(": %s", a->why);
	} else if (a->state == CACHE_UNKNOWN) {
		printf(": %s", a->why);
	}
	printf("\n");
}

static int cmd_query(int argc, const char **argv)
{
	struct cache_config cfg;
	struct cache_result res = CACHE_RESULT_INIT;
	struct strvec paths = STRVEC_INIT;
	struct nrr_err e = { 0 };
	int stats = 0, quiet = 0, ret;
	cache_config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;
		if (!strcmp(o, "--cache") && v)
			strvec_push(&cfg.urls, v);
		else if (!strcmp(o, "--key") && v)
			strvec_push(&cfg.trusted_keys, v);
		else if (!strcmp(o, "--http") && v)
			cfg.http = !strcmp(v, "1") ? CACHE_HTTP_1 : !strcmp(v, "2") ? CACHE_HTTP_2 :
				   CACHE_HTTP_AUTO;
		else if (!strcmp(o, "--timeout") && v)
			cfg.timeout_ms = atol(v);
		else if (!strcmp(o, "--connect-timeout") && v)
			cfg.connect_timeout_ms = atol(v);
		else if (!strcmp(o, "--tries") && v)
			cfg.tries = atoi(v);
		else if (!strcmp(o, "--backoff") && v)
			cfg.backoff_ms = atol(v);
		else if (!strcmp(o, "--max-connections") && v)
			cfg.max_connections = atoi(v);
		else if (!strcmp(o, "--ca-file") && v)
			cfg.ca_file = xstrdup(v);
		else if (!strcmp(o, "--max-requests") && v)
			cfg.max_requests = atoi(v);
		else if ((takes = 0), !strcmp(o, "--no-require-sigs"))
			cfg.require_sigs = 0;
		else if (!strcmp(o, "--from-host"))
			cfg.from_host = 1;
		else if (!strcmp(o, "--stats"))
			stats = 1;
		else if (!strcmp(o, "--quiet"))
			quiet = 1;
		else if (!strcmp(o, "-")) {
			char line[4096];
			while (fgets(line, sizeof(line), stdin)) {
				line[strcspn(line, "\n")] = '\0';
				if (line[0])
					strvec_push(&paths, line);
			}
		} else if (o[0] == '-') {
			cache_config_release(&cfg);
			strvec_clear(&paths);
			return usage("cache-query [--cache URL]... [--key KEY]... [OPTIONS] PATH...|-");
		} else
			strvec_push(&paths, o);
		i += takes;
	}
	run_signals_install(); /* SIGINT stops the query, as in the tool */
	ret = cache_query(&cfg, &paths, &res, &e);
	if (ret) {
		fail(&e);
	} else if (quiet) {
		size_t count[3] = { 0 }, verified = 0;
		for (size_t i = 0; i < res.nr; i++) {
			count[res.answers[i].state]++;
			verified += res.answers[i].state == CACHE_PRESENT &&
				    res.answers[i].trust == NARINFO_VERIFIED;
		}
		printf("present %zu verified %zu absent %zu unknown %zu\n", count[CACHE_PRESENT],
		       verified, count[CACHE_ABSENT], count[CACHE_UNKNOWN]);
	} else {
		for (size_t i = 0; i < res.nr; i++)
			print_answer(&res, &res.answers[i]);
	}
	for (size_t i = 0; !ret && stats && i < res.nr_caches; i++) {
		const struct cache_status *c = &res.caches[i];
		printf("cache %s %s priority=%d mass-query=%d http=%d requests=%u connections=%u%s%s\n",
		       c->url, c->up ? "up" : "down", c->priority, c->want_mass_query,
		       c->http_version, c->requests, c->connections, c->error ? " error: " : "",
		       c->error ? c->error : "");
	}
	cache_result_release(&res);
	cache_config_release(&cfg);
	strvec_clear(&paths);
	return ret == NRR_EUSAGE || ret == NRR_EINT ? ret : ret ? 1 : 0;
}

int test_tool_cache(int argc, const char **argv)
{
	const char *cmd = argv[0];
	if (!strcmp(cmd, "cache-base32"))
		return cmd_base32(argc, argv);
	if (!strcmp(cmd, "cache-base32-decode"))
		return cmd_base32_decode(argc, argv);
	if (!strcmp(cmd, "cache-hash"))
		return cmd_hash(argc, argv);
	if (!strcmp(cmd, "cache-parse"))
		return cmd_parse();
	if (!strcmp(cmd, "cache-fingerprint"))
		return cmd_fingerprint();
	if (!strcmp(cmd, "cache-verify"))
		return cmd_verify(argc, argv);
	if (!strcmp(cmd, "cache-sign"))
		return cmd_sign(argc, argv);
	if (!strcmp(cmd, "cache-info"))
		return cmd_info();
	if (!strcmp(cmd, "cache-showconfig"))
		return cmd_showconfig();
	if (!strcmp(cmd, "cache-conf"))
		return cmd_conf(argc, argv);
	if (!strcmp(cmd, "cache-keygen"))
		return cmd_keygen(argc, argv);
	if (!strcmp(cmd, "cache-gen"))
		return cmd_gen(argc, argv);
	if (!strcmp(cmd, "cache-query"))
		return cmd_query(argc, argv);
	fprintf(stderr, "test-tool: unknown command '%s'\n", cmd);
	return 2;
}
