/*
 * pkgdiff: which packages a deploy changes, read from two system closures.
 *
 * Before activating a new system the user sees what it changes, as nvd
 * shows it: the packages whose versions differ between the closure the
 * target runs and the one it is about to run, those that appear and those
 * that disappear, then the closure size before and after. Everything here
 * is pure: the caller fetches the closures (`nix-store -qR` and their NAR
 * sizes), this module compares, formats as text or JSON, and never prints.
 *
 * Package names and versions are read from store path names by nvd's rule
 * (see pkgdiff_split_name()): the version starts at the first dash that is
 * followed by a digit, so an output suffix stays in the version
 * ("xz-5.4.4-bin" is xz at version "5.4.4-bin") and a name without such a
 * dash has the empty version ("etc", "source").
 *
 * A closure may hold several versions of one name (two openssl, or xz's
 * "5.4.4" and "5.4.4-bin" outputs): a name maps to the set of its versions.
 * A name is *changed* when that set differs between the closures, *added*
 * or *removed* when the name appears or disappears. A path rebuilt at the
 * same version (same name, new hash) changes no set and is listed nowhere;
 * it shows in the closure figures only, as with nvd.
 *
 * Versions compare as Nix's builtins.compareVersions does
 * (pkgdiff_compare_versions()); a changed package is an upgrade when the
 * highest version it loses is lower than the highest one it gains.
 */
#ifndef NRR_PKGDIFF_H
#define NRR_PKGDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"
#include "strvec.h"

struct cJSON;

/* One store path of a closure and its NAR size in bytes (0 if unknown). */
struct pkgdiff_path {
	char *path;
	uint64_t nar_size;
};

/*
 * A closure as the caller collected it, in any order. Duplicate paths are
 * allowed and counted once. Owns its paths.
 */
struct pkgdiff_closure {
	struct pkgdiff_path *items;
	size_t nr, alloc;
};

#define PKGDIFF_CLOSURE_INIT { NULL, 0, 0 }

void pkgdiff_closure_init(struct pkgdiff_closure *c);
/* Appends a copy of path. */
void pkgdiff_closure_add(struct pkgdiff_closure *c, const char *path,
			 uint64_t nar_size);
/* Frees the paths and the array; c is empty and reusable. */
void pkgdiff_closure_release(struct pkgdiff_closure *c);

/*
 * Appends to c the paths of text, one per line: "PATH<TAB>SIZE", or PATH
 * and SIZE separated by any run of blanks (what `nix path-info -r -s`
 * prints), or a PATH alone (size 0, for a bare `nix-store -qR` listing).
 * SIZE is a decimal byte count; blank lines and trailing "\r" are skipped.
 * A path must start with '/' and hold printable ASCII only: the listing
 * comes from the target, and its names end up on the user's terminal. On
 * a malformed line returns NRR_EFAIL with e naming the line (its text is
 * never echoed raw), and c keeps the lines before it.
 */
int pkgdiff_closure_parse(struct pkgdiff_closure *c, const char *text,
			  struct nrr_err *e);

/*
 * Appends to c the paths of paths_text (one per line, `nix-store -qR`)
 * with the sizes of sizes_text (one per line, `nix-store -q --size` given
 * the same paths in the same order). Returns NRR_EFAIL, adding nothing,
 * when a size is malformed or the two counts differ.
 */
int pkgdiff_closure_parse_lists(struct pkgdiff_closure *c,
				const char *paths_text, const char *sizes_text,
				struct nrr_err *e);

/*
 * Splits a store path into package name and version, without allocating:
 * *name and *version point into store_path, with their lengths.
 *
 * The rule is nvd's: take the last '/'-separated component; drop the
 * 32-character hash and its dash when there is one, and a ".drv" suffix;
 * the version is what follows the first dash that has a digit after it
 * (not counting a dash at the very start); with no such dash the whole
 * rest is the name and the version is empty. So "foo-bar-1.2.3-man" is
 * foo-bar 1.2.3-man, "python3.12-requests-2.31.0" is python3.12-requests
 * 2.31.0, "glibc-2.38-44" is glibc 2.38-44, "source" is source "".
 */
void pkgdiff_split_name(const char *store_path, const char **name,
			size_t *name_len, const char **version,
			size_t *version_len);

/*
 * Compares two versions as Nix's builtins.compareVersions (and nvd):
 * returns <0, 0 or >0. Both are cut into components at '.' and '-'; a
 * component is a run of digits or a run of other characters. Components
 * compare pairwise, a missing one counting as "": "pre" first, then "",
 * then other strings byte-wise, then numbers by value. So 1.2 < 1.10,
 * 1.0pre1 < 1.0, 2.3a < 2.3.1, 1.0 < 1.0a, and (Nix's quirk) 1.0 <
 * 1.0-rc1. Numbers of any length compare by value, as nvd's Python ints
 * do; Nix alone treats one past 2^31-1 as a string. Cross-checked against
 * Nix 2.8 on 2,000 random pairs.
 */
int pkgdiff_compare_versions(const char *a, const char *b);

enum pkgdiff_kind {
	PKGDIFF_ADDED,
	PKGDIFF_REMOVED,
	PKGDIFF_UPGRADE,   /* the highest version lost < the highest gained */
	PKGDIFF_DOWNGRADE, /* the highest version lost > the highest gained */
	PKGDIFF_CHANGED,   /* a version only gained or lost, or lost and
			      gained ones compare equal */
};

/* One package name that differs between the closures. */
struct pkgdiff_entry {
	char *name;
	enum pkgdiff_kind kind;
	/*
	 * Distinct versions in ascending pkgdiff_compare_versions() order
	 * ("" for an unversioned path); old is empty for an added package,
	 * new for a removed one.
	 */
	struct strvec old_versions, new_versions;
	uint64_t old_size, new_size; /* NAR bytes of the paths of this name */
	size_t old_paths, new_paths; /* how many distinct paths have it */
};

/*
 * The result of pkgdiff_compute(). Each list is sorted by name (byte
 * order). Path and size figures count distinct paths.
 */
struct pkgdiff {
	struct pkgdiff_entry *changed, *added, *removed;
	size_t changed_nr, added_nr, removed_nr;
	size_t upgrades, downgrades;    /* among changed */
	size_t old_paths, new_paths;
	size_t paths_added, paths_removed; /* by exact store path */
	uint64_t old_size, new_size;
	int64_t size_delta;             /* new_size - old_size */
};

#define PKGDIFF_INIT { 0 }

/*
 * Fills d (which must be PKGDIFF_INIT or released) with the difference
 * from old to new. Neither closure is modified. Cannot fail; the caller
 * releases d with pkgdiff_release().
 */
void pkgdiff_compute(struct pkgdiff *d, const struct pkgdiff_closure *old,
		     const struct pkgdiff_closure *new);
/* Frees the lists; d is PKGDIFF_INIT again. */
void pkgdiff_release(struct pkgdiff *d);

#endif
