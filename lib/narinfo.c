#include "narinfo.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char nix32_alphabet[] = "0123456789abcdfghijklmnpqrsvwxyz";

/*
 * Copies at most 60 bytes of s[0..len) into out for a message, bytes that
 * are not printable ASCII replaced by '?': a value comes from the network,
 * and must not reach the user's terminal as escape sequences.
 */
static const char *shown(char out[80], const char *s, size_t len)
{
	size_t n = len > 60 ? 60 : len, i;
	for (i = 0; i < n; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n < len)
		memcpy(out + n, "...", 4);
	else
		out[n] = '\0';
	return out;
}

/* ---- nix-base32 ---------------------------------------------------------- */

size_t nix32_len(size_t nbytes)
{
	return (nbytes * 8 + 4) / 5;
}

/* Digit k (k = 0 least significant) is bits 5k..5k+4 of the integer. */
void nix32_encode(const unsigned char *bytes, size_t n, char *out)
{
	size_t digits = nix32_len(n);
	for (size_t k = 0; k < digits; k++) {
		size_t bit = k * 5, i = bit / 8, shift = bit % 8;
		unsigned v = bytes[i] >> shift;
		if (shift > 3 && i + 1 < n)
			v |= (unsigned)bytes[i + 1] << (8 - shift);
		out[digits - 1 - k] = nix32_alphabet[v & 0x1f];
	}
	out[digits] = '\0';
}

static int nix32_value(char c)
{
	const char *p = c ? strchr(nix32_alphabet, c) : NULL;
	return p ? (int)(p - nix32_alphabet) : -1;
}

int nix32_decode(const char *s, size_t slen, unsigned char *out, size_t n)
{
	if (slen != nix32_len(n))
		return -1;
	memset(out, 0, n);
	for (size_t k = 0; k < slen; k++) {
		int v = nix32_value(s[slen - 1 - k]);
		if (v < 0)
			return -1;
		size_t bit = k * 5, i = bit / 8, shift = bit % 8;
		out[i] |= (unsigned char)(v << shift);
		unsigned rest = (unsigned)v >> (8 - shift);
		if (shift > 3 && rest) {
			/* high bits past the last byte would be lost: not a number of n bytes */
			if (i + 1 >= n)
				return -1;
			out[i + 1] |= (unsigned char)rest;
		}
	}
	return 0;
}

/* ---- hashes -------------------------------------------------------------- */

static const struct {
	const char *name;
	enum nix_hash_algo algo;
	size_t len;
} hash_algos[] = {
	{ "md5", NIX_HASH_MD5, 16 },
	{ "sha1", NIX_HASH_SHA1, 20 },
	{ "sha256", NIX_HASH_SHA256, 32 },
	{ "sha512", NIX_HASH_SHA512, 64 },
};

static size_t base64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

static int base64_decode(const char *s, size_t len, unsigned char *out, size_t n)
{
	size_t got;
	const char *end;
	if (len != base64_len(n))
		return -1;
	if (sodium_base642bin(out, n, s, len, NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) || end != s + len || got != n)
		return -1;
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int nix_hash_parse(struct nix_hash *h, const char *s, size_t len, struct nrr_err *e)
{
	char b[80];
	size_t cut = 0;
	int sri = 0;
	while (cut < len && s[cut] != ':' && s[cut] != '-')
		cut++;
	if (cut == len)
		return nrr_fail(e, NRR_EFAIL, "hash '%s' does not say its type", shown(b, s, len));
	sri = s[cut] == '-';
	size_t a;
	for (a = 0; a < sizeof(hash_algos) / sizeof(hash_algos[0]); a++)
		if (strlen(hash_algos[a].name) == cut && !memcmp(s, hash_algos[a].name, cut))
			break;
	if (a == sizeof(hash_algos) / sizeof(hash_algos[0]))
		return nrr_fail(e, NRR_EFAIL, "hash '%s' has an unknown type", shown(b, s, len));
	h->algo = hash_algos[a].algo;
	h->len = hash_algos[a].len;
	const char *d = s + cut + 1;
	size_t dlen = len - cut - 1;
	int ok = -1;
	if (sri || dlen == base64_len(h->len)) {
		ok = base64_decode(d, dlen, h->digest, h->len);
	} else if (dlen == 2 * h->len) {
		ok = 0;
		for (size_t i = 0; i < h->len && !ok; i++) {
			int hi = hex_value(d[2 * i]), lo = hex_value(d[2 * i + 1]);
			if (hi < 0 || lo < 0)
				ok = -1;
			else
				h->digest[i] = (unsigned char)(hi << 4 | lo);
		}
	} else if (dlen == nix32_len(h->len)) {
		ok = nix32_decode(d, dlen, h->digest, h->len);
	}
	if (ok)
		return nrr_fail(e, NRR_EFAIL, "hash '%s' is not valid %s in base16, nix-base32 or base64",
				shown(b, s, len), hash_algos[a].name);
	return 0;
}

static const char *hash_algo_name(enum nix_hash_algo algo)
{
	for (size_t a = 0; a < sizeof(hash_algos) / sizeof(hash_algos[0]); a++)
		if (hash_algos[a].algo == algo)
			return hash_algos[a].name;
	return "unknown";
}

char *nix_hash_to_nix32(const struct nix_hash *h)
{
	char digits[104];
	nix32_encode(h->digest, h->len, digits);
	return xstrfmt("%s:%s", hash_algo_name(h->algo), digits);
}

char *nix_hash_to_base16(const struct nix_hash *h)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_addf(&sb, "%s:", hash_algo_name(h->algo));
	for (size_t i = 0; i < h->len; i++)
		strbuf_addf(&sb, "%02x", h->digest[i]);
	return strbuf_detach(&sb);
}

/* ---- store paths --------------------------------------------------------- */

int nix_store_base_valid(const char *s, size_t len)
{
	if (len < NIX_HASH_PART_LEN + 2 || s[NIX_HASH_PART_LEN] != '-')
		return 0;
	for (size_t i = 0; i < NIX_HASH_PART_LEN; i++)
		if (nix32_value(s[i]) < 0)
			return 0;
	const char *name = s + NIX_HASH_PART_LEN + 1;
	size_t nlen = len - NIX_HASH_PART_LEN - 1;
	if (nlen > 211)
		return 0;
	if (name[0] == '.' && (nlen == 1 || name[1] == '-' ||
			       (name[1] == '.' && (nlen == 2 || name[2] == '-'))))
		return 0;
	for (size_t i = 0; i < nlen; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c && strchr("+-._?=", c))))
			return 0;
	}
	return 1;
}

int nix_store_path_valid(const char *s)
{
	size_t dl = strlen(NIX_STORE_DIR);
	return !strncmp(s, NIX_STORE_DIR "/", dl + 1) && nix_store_base_valid(s + dl + 1, strlen(s + dl + 1));
}

/* ---- "Key: value" lines -------------------------------------------------- */

struct kv_reader {
	const char *p, *end;
	int lineno;
};

/*
 * Moves to the next non-blank line. Returns 1 with the key and value (both
 * trimmed of blanks; the value starts after ':' and its blanks), 0 at the
 * end, -1 for a line without ':' (key then holds the whole line).
 */
static int kv_next(struct kv_reader *r, const char **key, size_t *klen,
		   const char **val, size_t *vlen)
{
	for (;;) {
		if (r->p >= r->end)
			return 0;
		const char *line = r->p, *nl = memchr(line, '\n', (size_t)(r->end - line));
		const char *eol = nl ? nl : r->end;
		r->p = nl ? nl + 1 : r->end;
		r->lineno++;
		while (eol > line && (eol[-1] == ' ' || eol[-1] == '\t' || eol[-1] == '\r'))
			eol--;
		if (eol == line)
			continue;
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		*key = line;
		if (!colon) {
			*klen = (size_t)(eol - line);
			return -1;
		}
		*klen = (size_t)(colon - line);
		const char *v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		*val = v;
		*vlen = (size_t)(eol - v);
		return 1;
	}
}

static int key_is(const char *k, size_t klen, const char *name)
{
	return strlen(name) == klen && !memcmp(k, name, klen);
}

/* Parses 1-20 decimal digits into *out; -1 on anything else or overflow. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	unsigned long long v;
	if (len > 20 || parse_decimal_u64(s, len, &v))
		return -1;
	*out = (uint64_t)v;
	return 0;
}

/* ---- narinfo ------------------------------------------------------------- */

void narinfo_init(struct narinfo *ni)
{
	struct narinfo blank = NARINFO_INIT;
	*ni = blank;
}

void narinfo_release(struct narinfo *ni)
{
	free(ni->store_path);
	free(ni->url);
	free(ni->compression);
	free(ni->file_hash);
	free(ni->deriver);
	free(ni->ca);
	strvec_clear(&ni->references);
	strvec_clear(&ni->sigs);
	narinfo_init(ni);
}

enum {
	F_STOREPATH = 1 << 0, F_URL = 1 << 1, F_COMPRESSION = 1 << 2, F_FILEHASH = 1 << 3,
	F_FILESIZE = 1 << 4, F_NARHASH = 1 << 5, F_NARSIZE = 1 << 6, F_REFERENCES = 1 << 7,
	F_DERIVER = 1 << 8, F_CA = 1 << 9,
};

static const struct {
	const char *key;
	int flag;
} narinfo_fields[] = {
	{ "StorePath", F_STOREPATH }, { "URL", F_URL }, { "Compression", F_COMPRESSION },
	{ "FileHash", F_FILEHASH }, { "FileSize", F_FILESIZE }, { "NarHash", F_NARHASH },
	{ "NarSize", F_NARSIZE }, { "References", F_REFERENCES }, { "Deriver", F_DERIVER },
	{ "CA", F_CA }, { "Sig", 0 },
};

/* Splits a References value on blanks into base names, each checked. */
static int parse_references(struct narinfo *ni, const char *v, size_t vlen, int lineno,
			    struct nrr_err *e)
{
	char b[80];
	size_t i = 0;
	while (i < vlen) {
		while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
			i++;
		size_t start = i;
		while (i < vlen && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i == start)
			break;
		if (!nix_store_base_valid(v + start, i - start))
			return nrr_fail(e, NRR_EFAIL, "line %d: reference '%s' is not a store path name",
					lineno, shown(b, v + start, i - start));
		char *ref = xstrndup(v + start, i - start);
		strvec_push(&ni->references, ref);
		free(ref);
	}
	return 0;
}

/* Puts "line N: FIELD: " before the message of an already failed e. */
static int fail_at(struct nrr_err *e, int lineno, const char *field)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "line %d: %s", lineno, field);
	nrr_prefix(e, prefix);
	return e->status;
}

static int narinfo_field(struct narinfo *ni, int flag, const char *v, size_t vlen,
			 int lineno, struct nrr_err *e)
{
	char b[80];
	struct nix_hash h;
	switch (flag) {
	case F_STOREPATH:
		ni->store_path = xstrndup(v, vlen);
		if (!nix_store_path_valid(ni->store_path))
			return nrr_fail(e, NRR_EFAIL, "line %d: StorePath '%s' is not a path in %s",
					lineno, shown(b, v, vlen), NIX_STORE_DIR);
		return 0;
	case F_URL:
		if (!vlen)
			return nrr_fail(e, NRR_EFAIL, "line %d: URL is empty", lineno);
		ni->url = xstrndup(v, vlen);
		return 0;
	case F_COMPRESSION:
		ni->compression = xstrndup(v, vlen);
		return 0;
	case F_FILEHASH:
		if (nix_hash_parse(&h, v, vlen, e))
			return fail_at(e, lineno, "FileHash");
		ni->file_hash = xstrndup(v, vlen);
		return 0;
	case F_FILESIZE:
	case F_NARSIZE:
		if (parse_u64(v, vlen, flag == F_FILESIZE ? &ni->file_size : &ni->nar_size))
			return nrr_fail(e, NRR_EFAIL, "line %d: %s '%s' is not a number", lineno,
					flag == F_FILESIZE ? "FileSize" : "NarSize", shown(b, v, vlen));
		if (flag == F_NARSIZE && !ni->nar_size)
			return nrr_fail(e, NRR_EFAIL, "line %d: NarSize is 0", lineno);
		return 0;
	case F_NARHASH:
		if (nix_hash_parse(&ni->nar_hash, v, vlen, e))
			return fail_at(e, lineno, "NarHash");
		if (ni->nar_hash.algo != NIX_HASH_SHA256)
			return nrr_fail(e, NRR_EFAIL, "line %d: NarHash '%s' is not SHA-256",
					lineno, shown(b, v, vlen));
		return 0;
	case F_REFERENCES:
		return parse_references(ni, v, vlen, lineno, e);
	case F_DERIVER:
		if (key_is(v, vlen, "unknown-deriver"))
			return 0;
		if (!nix_store_base_valid(v, vlen))
			return nrr_fail(e, NRR_EFAIL, "line %d: Deriver '%s' is not a store path name",
					lineno, shown(b, v, vlen));
		ni->deriver = xstrndup(v, vlen);
		return 0;
	case F_CA:
		if (vlen)
			ni->ca = xstrndup(v, vlen);
		return 0;
	default: /* Sig */
		if (!vlen || !memchr(v, ':', vlen))
			return nrr_fail(e, NRR_EFAIL, "line %d: Sig '%s' is not 'keyname:signature'",
					lineno, shown(b, v, vlen));
		char *sig = xstrndup(v, vlen);
		strvec_push(&ni->sigs, sig);
		free(sig);
		return 0;
	}
}

static int narinfo_parse_1(struct narinfo *ni, const char *buf, size_t len, struct nrr_err *e)
{
	struct kv_reader r = { buf, buf + len, 0 };
	const char *k, *v;
	size_t klen, vlen;
	char b[80];
	int seen = 0, ret;

	if (len > NARINFO_MAX_INPUT)
		return nrr_fail(e, NRR_EFAIL, "narinfo of %zu bytes is too large", len);
	if (memchr(buf, '\0', len))
		return nrr_fail(e, NRR_EFAIL, "narinfo holds a NUL byte");
	while ((ret = kv_next(&r, &k, &klen, &v, &vlen))) {
		if (ret < 0)
			return nrr_fail(e, NRR_EFAIL, "line %d: '%s' is not 'Key: value'",
					r.lineno, shown(b, k, klen));
		size_t f;
		for (f = 0; f < sizeof(narinfo_fields) / sizeof(narinfo_fields[0]); f++)
			if (key_is(k, klen, narinfo_fields[f].key))
				break;
		if (f == sizeof(narinfo_fields) / sizeof(narinfo_fields[0]))
			continue; /* System (Nix 2.8-2.9) and whatever comes later */
		int flag = narinfo_fields[f].flag;
		if (seen & flag)
			return nrr_fail(e, NRR_EFAIL, "line %d: %s given twice", r.lineno,
					narinfo_fields[f].key);
		seen |= flag;
		if (narinfo_field(ni, flag, v, vlen, r.lineno, e))
			return e->status;
	}
	static const int required[] = { F_STOREPATH, F_URL, F_NARHASH, F_NARSIZE };
	static const char *const names[] = { "StorePath", "URL", "NarHash", "NarSize" };
	for (size_t i = 0; i < 4; i++)
		if (!(seen & required[i]))
			return nrr_fail(e, NRR_EFAIL, "narinfo has no %s", names[i]);
	if (!ni->compression)
		ni->compression = xstrdup("bzip2");
	return 0;
}

int narinfo_parse(struct narinfo *ni, const char *buf, size_t len, struct nrr_err *e)
{
	int ret = narinfo_parse_1(ni, buf, len, e);
	if (ret)
		narinfo_release(ni);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *narinfo_fingerprint(const struct narinfo *ni)
{
	struct strbuf sb = STRBUF_INIT;
	char digits[53];
	size_t n = ni->references.nr;
	const char **refs = xcalloc(n ? n : 1, sizeof(*refs));

	nix32_encode(ni->nar_hash.digest, 32, digits);
	strbuf_addf(&sb, "1;%s;sha256:%s;%llu;", ni->store_path ? ni->store_path : "", digits,
		    (unsigned long long)ni->nar_size);
	/* Nix signs a set: sorted, each reference once. */
	memcpy(refs, ni->references.v, n * sizeof(*refs));
	qsort(refs, n, sizeof(*refs), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i && !strcmp(refs[i], refs[i - 1]))
			continue;
		strbuf_addf(&sb, "%s%s/%s", i ? "," : "", NIX_STORE_DIR, refs[i]);
	}
	free(refs);
	return strbuf_detach(&sb);
}

/* ---- keys and signatures ------------------------------------------------- */

int trusted_keys_add(struct trusted_keys *keys, const char *spec, struct nrr_err *e)
{
	char b[80];
	size_t len = strlen(spec);
	const char *colon = strchr(spec, ':');
	unsigned char key[32];

	if (!colon || colon == spec)
		return nrr_fail(e, NRR_EFAIL, "public key '%s' is not 'name:base64'", shown(b, spec, len));
	if (base64_decode(colon + 1, strlen(colon + 1), key, sizeof(key)))
		return nrr_fail(e, NRR_EFAIL, "public key '%s' is not 32 bytes in base64",
				shown(b, spec, len));
	if (keys->nr == keys->alloc) {
		keys->alloc = keys->alloc ? 2 * keys->alloc : 4;
		keys->v = xrealloc(keys->v, keys->alloc * sizeof(*keys->v));
	}
	keys->v[keys->nr].name = xstrndup(spec, (size_t)(colon - spec));
	memcpy(keys->v[keys->nr].key, key, sizeof(key));
	keys->nr++;
	return 0;
}

void trusted_keys_release(struct trusted_keys *keys)
{
	for (size_t i = 0; i < keys->nr; i++)
		free(keys->v[i].name);
	free(keys->v);
	keys->v = NULL;
	keys->nr = keys->alloc = 0;
}

const char *narinfo_trust_name(enum narinfo_trust t)
{
	switch (t) {
	case NARINFO_VERIFIED: return "verified";
	case NARINFO_UNSIGNED: return "unsigned";
	case NARINFO_UNTRUSTED: return "untrusted";
	case NARINFO_BAD_SIG: return "bad signature";
	}
	return "unknown";
}

/*
 * 1 if the key named name[0..nlen) verifies sig (base64) over fp, 0 if
 * it does not, -1 if no key has that name. Of two trusted keys of one
 * name the first counts, as in Nix (a later one cannot widen the trust).
 * *malformed is set when the signature is not 64 bytes of base64.
 */
static int verify_one(const struct trusted_keys *keys, const char *name, size_t nlen,
		      const char *sig, const char *fp, int *malformed)
{
	unsigned char raw[crypto_sign_BYTES];
	*malformed = base64_decode(sig, strlen(sig), raw, sizeof(raw)) != 0;
	for (size_t i = 0; i < keys->nr; i++) {
		if (strlen(keys->v[i].name) != nlen || memcmp(keys->v[i].name, name, nlen))
			continue;
		return !*malformed &&
		       !crypto_sign_verify_detached(raw, (const unsigned char *)fp, strlen(fp),
						    keys->v[i].key);
	}
	return -1;
}

enum narinfo_trust narinfo_verify(const struct narinfo *ni, const struct trusted_keys *keys,
				  struct strbuf *why)
{
	struct strbuf strangers = STRBUF_INIT, failed = STRBUF_INIT;
	enum narinfo_trust t;
	int malformed_any = 0;
	char *fp;
	char b[80];

	/* Idempotent; picks libsodium's implementations before first use. */
	if (sodium_init() < 0) {
		if (why)
			strbuf_addstr(why, "libsodium cannot start");
		return NARINFO_BAD_SIG;
	}
	fp = narinfo_fingerprint(ni);
	for (size_t i = 0; i < ni->sigs.nr; i++) {
		const char *s = ni->sigs.v[i], *colon = strchr(s, ':');
		int malformed;
		if (!colon)
			continue;
		size_t nlen = (size_t)(colon - s);
		int r = verify_one(keys, s, nlen, colon + 1, fp, &malformed);
		if (r > 0) {
			if (why)
				strbuf_addstr(why, shown(b, s, nlen));
			free(fp);
			strbuf_release(&strangers);
			strbuf_release(&failed);
			return NARINFO_VERIFIED;
		}
		struct strbuf *list = r < 0 ? &strangers : &failed;
		strbuf_addf(list, "%s'%s'", list->len ? ", " : "", shown(b, s, nlen));
		if (r == 0 && malformed)
			malformed_any = 1;
	}
	if (failed.len) {
		t = NARINFO_BAD_SIG;
		if (why && malformed_any)
			strbuf_addf(why, "malformed signature by %s", failed.buf);
		else if (why)
			strbuf_addf(why, "signature by %s does not match: the narinfo was changed, "
				    "or signed with another key of that name", failed.buf);
	} else if (strangers.len) {
		t = NARINFO_UNTRUSTED;
		if (why)
			strbuf_addf(why, "signed by %s, not a trusted key", strangers.buf);
	} else {
		t = NARINFO_UNSIGNED;
		if (why)
			strbuf_addstr(why, "no signature");
	}
	free(fp);
	strbuf_release(&strangers);
	strbuf_release(&failed);
	return t;
}

/* ---- nix-cache-info ------------------------------------------------------ */

/* Parses an optionally signed decimal int in [-1e9, 1e9]. */
static int parse_int(const char *s, size_t len, int *out)
{
	uint64_t v;
	int neg = len && s[0] == '-';
	if (parse_u64(s + neg, len - neg, &v) || v > 1000000000)
		return -1;
	*out = neg ? -(int)v : (int)v;
	return 0;
}

int nix_cache_info_parse(struct nix_cache_info *ci, const char *buf, size_t len,
			 struct nrr_err *e)
{
	struct kv_reader r = { buf, buf + len, 0 };
	const char *k, *v;
	size_t klen, vlen;
	char b[80];
	int ret;

	memset(ci, 0, sizeof(*ci));
	if (len > NARINFO_MAX_INPUT || memchr(buf, '\0', len))
		return nrr_fail(e, NRR_EFAIL, "nix-cache-info is not text");
	while ((ret = kv_next(&r, &k, &klen, &v, &vlen))) {
		if (ret < 0)
			continue; /* Nix ignores lines without a colon here */
		if (key_is(k, klen, "StoreDir")) {
			free(ci->store_dir);
			ci->store_dir = xstrndup(v, vlen);
		} else if (key_is(k, klen, "WantMassQuery")) {
			ci->want_mass_query = key_is(v, vlen, "1");
		} else if (key_is(k, klen, "Priority")) {
			if (parse_int(v, vlen, &ci->priority)) {
				nix_cache_info_release(ci);
				return nrr_fail(e, NRR_EFAIL, "nix-cache-info line %d: Priority '%s' "
						"is not a number", r.lineno, shown(b, v, vlen));
			}
			ci->has_priority = 1;
		}
	}
	return 0;
}

void nix_cache_info_release(struct nix_cache_info *ci)
{
	free(ci->store_dir);
	memset(ci, 0, sizeof(*ci));
}
