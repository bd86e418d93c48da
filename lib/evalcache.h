/*
 * evalcache: the hive evaluator's answers kept between runs, where Nix
 * would keep its own eval cache.
 *
 * Nix caches `nix eval FLAKE#attr` of a locked flake under the flake's
 * fingerprint, but not an --apply, which our evaluator is (hive.h). So we
 * keep its answers ourselves, under a key made of everything they depend
 * on: the flake's lock as `nix flake metadata` gives it (the locked source
 * and its narHash or revision, the store path of its source, every input's
 * lock), the evaluator's text, this tool's version, the nix arguments
 * given for evaluation (--option N V, --show-trace), NIX_CONFIG, and the
 * question (info, or the systems of one selection of nodes). Never cached,
 * as Nix does not cache them: a hive.nix (not a flake), --impure, a flake
 * without a fingerprint (a git tree with uncommitted changes: no revision),
 * nix's `eval-cache` set to false (--option eval-cache false, NIX_CONFIG).
 *
 * Entries live in $XDG_CACHE_HOME/nixos-rebuild-remote/eval (default
 * ~/.cache/...), one file each, named by the key's SHA-256, mode 0600,
 * written to a temp file and renamed. They hold no key text (the "info"
 * answer never has it). Systems from the cache are used only when all
 * their derivations are still valid in the store (a garbage collection
 * sends the run back to evaluating).
 *
 * Nothing here fails a deploy: whatever goes wrong (nix flake metadata,
 * an unreadable or unwritable entry) means "not cached", said with -v.
 */
#ifndef NRR_EVALCACHE_H
#define NRR_EVALCACHE_H

#include <stddef.h>

#include "hive.h"
#include "strbuf.h"
#include "strvec.h"

struct evalcache {
	char *dir;		/* where entries live; NULL: the cache is off */
	char *fingerprint;	/* hex SHA-256 of the flake and evaluator; NULL: off */
	int verbose;		/* say hits, misses and why it is off */
	int fresh;		/* its entries were put by this run's own evaluation:
				 * their derivations were written just now */
};

#define EVALCACHE_INIT { NULL, NULL, 0, 0 }

/*
 * Opens the cache for hive h (found, not yet evaluated) with o's options:
 * asks `nix flake metadata` for the flake's lock and makes the
 * fingerprint. Leaves c off (dir NULL) when the hive cannot be cached.
 * nix's warnings go to warnings.
 */
void evalcache_open(struct evalcache *c, const struct hive *h, const struct hive_opts *o,
		    struct strvec *warnings);

/*
 * The cached answer to what/args (as hive_eval_argv takes them), malloc'ed
 * (the caller frees it), or NULL. *evaluated gets the flake output it was
 * read from (1 colmenaHive, 0 colmena).
 */
char *evalcache_get(const struct evalcache *c, const char *what, const char *args,
		    int *evaluated);

/* Keeps json as the answer to what/args, read from output `evaluated`. */
void evalcache_put(const struct evalcache *c, const char *what, const char *args,
		   int evaluated, const char *json);

/* 1 if all n derivations drv[] are valid in the local store. */
int evalcache_drvs_valid(char *const *drv, size_t n, int verbose);

/* Frees what c holds; c is off again. */
void evalcache_release(struct evalcache *c);

/* Pure, for the unit tests: whether the `locked` attributes of nix flake
 * metadata (JSON) give a fingerprint (a git or mercurial tree needs its
 * revision, anything else its narHash). */
int evalcache_locked_has_fingerprint(const char *locked_json);

#endif
