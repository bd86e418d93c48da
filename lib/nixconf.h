/*
 * nixconf: the settings that decide where a Nix store substitutes from and
 * whom it trusts, as Nix reports them (`nix show-config`, or `nix config
 * show` from Nix 2.20: this machine's as JSON, a target's as the lines we
 * read) or as nix.conf says them.
 */
#ifndef NRR_NIXCONF_H
#define NRR_NIXCONF_H

#include "error.h"
#include "strvec.h"

/* The settings that decide where a store substitutes from and whom it
 * trusts, and which platforms it builds for. */
struct nix_settings {
	struct strvec substituters;
	struct strvec trusted_substituters;
	struct strvec trusted_public_keys;
	char *store;			/* the "store" setting ("auto" by default) */
	char *store_dir;		/* NIX_STORE_DIR unless a setting says otherwise */
	int require_sigs;		/* 1 by default */
	char *system;			/* "x86_64-linux"; NULL unless a setting says */
	struct strvec extra_platforms;
	char *builders;			/* remote builders, or "@FILE"; NULL unless said */
	struct strvec includes;		/* nix.conf: "path" or "!path", per include line met */
};

/*
 * Sets s to Nix's defaults: substituters https://cache.nixos.org/ and its
 * key, require-sigs true, store "auto". Release with nix_settings_release().
 */
void nix_settings_init(struct nix_settings *s);
void nix_settings_release(struct nix_settings *s);

/*
 * Reads the JSON of `nix show-config --json` (Nix 2.8; `nix config show
 * --json` from 2.20): an object mapping each setting to {"value": ...}.
 * Settings found replace those of s, the others keep their value. A list
 * may be a JSON array of strings or one whitespace-separated string.
 * Returns 0, or fills e and returns NRR_EFAIL (s is then unchanged).
 */
int nix_settings_from_json(struct nix_settings *s, const char *json, size_t len,
			   struct nrr_err *e);

/*
 * Called for "include PATH" (optional 0) and "!include PATH" (optional 1)
 * in nix.conf, PATH made absolute against the including file's directory.
 * It may read the file and hand its text to nix_settings_from_conf() with
 * depth + 1, so that its settings apply where the include stands, as in
 * Nix. Returns 0, or fills e and returns non-zero to stop the parse.
 */
typedef int (*nix_conf_include_fn)(struct nix_settings *s, const char *path, int optional,
				   int depth, void *data, struct nrr_err *e);

/*
 * Applies nix.conf text to s line by line, as Nix reads it: "name = value"
 * ('#' starts a comment, words are split on blanks), "extra-name" appends
 * to name's list, the old aliases (binary-caches, binary-cache-public-keys,
 * trusted-binary-caches) are understood, other names are skipped. origin
 * names the file in messages and anchors relative includes (may be NULL).
 * Every include is recorded in s->includes and passed to include (may be
 * NULL: then only recorded). depth counts nested includes (0 at the top);
 * past 10 is an error, which stops include loops.
 * Returns 0, or fills e and returns NRR_EFAIL; s then holds the settings
 * of the lines before the bad one.
 */
int nix_settings_from_conf(struct nix_settings *s, const char *text, size_t len,
			   const char *origin, nix_conf_include_fn include, void *data,
			   int depth, struct nrr_err *e);

/*
 * Reads what `nix show-config` (`nix config show` from Nix 2.20) prints, or
 * the lines of it a target sent: the settings in effect, "name = value"
 * each, lists separated by blanks. It is nix.conf's syntax without
 * includes, so nix_settings_from_conf() reads it; whose settings they are
 * (origin) names them in messages. Returns as nix_settings_from_conf().
 */
int nix_settings_from_shown(struct nix_settings *s, const char *text, size_t len,
			    const char *origin, struct nrr_err *e);

#endif
