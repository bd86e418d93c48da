/*
 * narinfo: what a Nix binary cache says about a store path, and whether
 * to believe it.
 *
 * A cache holds "<hash part>.narinfo" for each path it serves: "Key: value"
 * lines giving the path, the hash and size of its NAR, its references and
 * its signatures. A signature is Ed25519 over a fingerprint of those fields
 * (narinfo_fingerprint()); the path is trusted when one of its signatures
 * verifies with a key of trusted-public-keys (narinfo_verify()). Besides
 * narinfo, this module reads nix-cache-info, nix-base32, Nix hashes in
 * their three encodings, and public keys.
 *
 * Everything here is pure: inputs are byte buffers with a length, and any
 * bytes are safe (NULs and other bytes where they do not belong are
 * refused with an error); nothing is read, printed or kept between calls.
 * Parsers fail with status NRR_EFAIL and a one-line message that names the
 * line and field at fault; on failure their output holds nothing to free.
 * Inputs larger than NARINFO_MAX_INPUT are refused, which bounds memory.
 *
 * The store directory is /nix/store (NIX_STORE_DIR): paths of any other
 * store could not be substituted into the targets we deploy.
 */
#ifndef NRR_NARINFO_H
#define NRR_NARINFO_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"
#include "strvec.h"

#define NIX_STORE_DIR "/nix/store"
#define NIX_HASH_PART_LEN 32		/* nix-base32 chars of a store path hash */
#define NARINFO_MAX_INPUT (4u << 20)	/* largest narinfo, config, JSON we read */

/* ---- nix-base32 ---------------------------------------------------------- */

/*
 * nix-base32 reads bytes as one little-endian integer and prints it in
 * base 32 with the alphabet "0123456789abcdfghijklmnpqrsvwxyz" (no e, o,
 * u, t), most significant digit first: nix32_len(n) = ceil(8n / 5) digits.
 */
size_t nix32_len(size_t nbytes);
/* Writes nix32_len(n) digits and a NUL to out (room for nix32_len(n) + 1). */
void nix32_encode(const unsigned char *bytes, size_t n, char *out);
/*
 * Decodes exactly nix32_len(n) digits of s into n bytes. Returns 0, or -1
 * when slen is not nix32_len(n), a digit is outside the alphabet, or the
 * digits encode a number that does not fit in n bytes.
 */
int nix32_decode(const char *s, size_t slen, unsigned char *out, size_t n);

/* ---- hashes -------------------------------------------------------------- */

enum nix_hash_algo { NIX_HASH_MD5, NIX_HASH_SHA1, NIX_HASH_SHA256, NIX_HASH_SHA512 };

struct nix_hash {
	enum nix_hash_algo algo;
	size_t len;			/* bytes used in digest */
	unsigned char digest[64];
};

/*
 * Parses "algo:DIGEST" with DIGEST in base16 (either case), nix-base32 or
 * padded base64, told apart by length as Nix does, or the SRI form
 * "algo-BASE64". Returns 0, or fills e and returns NRR_EFAIL.
 */
int nix_hash_parse(struct nix_hash *h, const char *s, size_t len, struct nrr_err *e);
/* "sha256:<nix32>" and the like. The caller must free() the string. */
char *nix_hash_to_nix32(const struct nix_hash *h);
/* "sha256:<hex>". The caller must free() the string. */
char *nix_hash_to_base16(const struct nix_hash *h);

/* ---- store paths --------------------------------------------------------- */

/*
 * 1 if s[0..len) is a store path base name, "<32 nix32 chars>-<name>" with
 * a name of 1 to 211 chars of [A-Za-z0-9+-._?=] that is not "." or ".."
 * nor starts with ".-" or "..-" (Nix's rules); 0 otherwise.
 */
int nix_store_base_valid(const char *s, size_t len);
/* 1 if s (NUL-terminated) is NIX_STORE_DIR "/" followed by a valid base name. */
int nix_store_path_valid(const char *s);

/* ---- narinfo ------------------------------------------------------------- */

struct narinfo {
	char *store_path;		/* "/nix/store/<hash>-<name>", checked */
	char *url;			/* of the compressed NAR, relative to the cache */
	char *compression;		/* "bzip2" when the narinfo says nothing */
	char *file_hash;		/* as written (checked to parse), or NULL */
	uint64_t file_size;		/* 0 when absent */
	struct nix_hash nar_hash;	/* always SHA-256 */
	uint64_t nar_size;		/* never 0 */
	struct strvec references;	/* base names as written (checked), may hold the path itself */
	char *deriver;			/* base name, or NULL (absent or "unknown-deriver") */
	struct strvec sigs;		/* "keyname:base64", in file order */
	char *ca;			/* content address as written, or NULL */
};

#define NARINFO_INIT { .nar_hash = { .algo = NIX_HASH_SHA256 }, \
		       .references = STRVEC_INIT, .sigs = STRVEC_INIT }

void narinfo_init(struct narinfo *ni);
/* Frees the contents; ni is left as after narinfo_init(). */
void narinfo_release(struct narinfo *ni);

/*
 * Parses the narinfo in buf[0..len) into ni (which must be empty, as after
 * narinfo_init()). StorePath, URL, NarHash (SHA-256) and a non-zero
 * NarSize are required; every value is checked, a field may not appear
 * twice (Sig excepted), unknown keys are skipped as Nix skips them.
 * Returns 0, or fills e, leaves ni empty and returns NRR_EFAIL.
 */
int narinfo_parse(struct narinfo *ni, const char *buf, size_t len, struct nrr_err *e);

/*
 * The string a narinfo's signatures sign:
 *   1;<store path>;sha256:<nix32 NarHash>;<NarSize>;<references as full
 *   store paths, sorted and without repeats, comma-separated>
 * The caller must free() it.
 */
char *narinfo_fingerprint(const struct narinfo *ni);

/* ---- keys and signatures ------------------------------------------------- */

struct nix_pubkey {
	char *name;			/* "cache.nixos.org-1" */
	unsigned char key[32];		/* Ed25519 public key */
};

/* A set of trusted public keys. Init with TRUSTED_KEYS_INIT. */
struct trusted_keys {
	struct nix_pubkey *v;
	size_t nr, alloc;
};
#define TRUSTED_KEYS_INIT { NULL, 0, 0 }

/*
 * Adds "name:base64(32 bytes)" to keys. Returns 0, or fills e and returns
 * NRR_EFAIL for a malformed key (keys is unchanged).
 */
int trusted_keys_add(struct trusted_keys *keys, const char *spec, struct nrr_err *e);
void trusted_keys_release(struct trusted_keys *keys);

enum narinfo_trust {
	NARINFO_VERIFIED = 0,	/* a trusted key's signature verifies */
	NARINFO_UNSIGNED,	/* no Sig line at all */
	NARINFO_UNTRUSTED,	/* signed, but by no key we trust */
	NARINFO_BAD_SIG,	/* a trusted key name signed, and it does not verify:
				 * the narinfo was changed, or the key is not the one
				 * that signed, or the signature is malformed */
};

/* "verified", "unsigned", "untrusted", "bad signature". Static strings. */
const char *narinfo_trust_name(enum narinfo_trust t);

/*
 * Checks ni's signatures against keys, as Nix does when it substitutes:
 * one good signature by a trusted key suffices; signatures by other keys
 * are ignored. When why is not NULL, a reason is appended to it: the name
 * of the key that verified, or what is wrong ("signed by 'k1', 'k2', which
 * are not trusted").
 */
enum narinfo_trust narinfo_verify(const struct narinfo *ni, const struct trusted_keys *keys,
				  struct strbuf *why);

/* ---- nix-cache-info ------------------------------------------------------ */

struct nix_cache_info {
	char *store_dir;		/* NULL when not given */
	int want_mass_query;		/* 0 unless "WantMassQuery: 1" */
	int priority;			/* 0 unless given (lower is preferred) */
	int has_priority;
};

/* Parses nix-cache-info text. Returns 0, or fills e and returns NRR_EFAIL. */
int nix_cache_info_parse(struct nix_cache_info *ci, const char *buf, size_t len,
			 struct nrr_err *e);
void nix_cache_info_release(struct nix_cache_info *ci);

#endif
