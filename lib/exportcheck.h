/*
 * exportcheck: a `nix-store --export` stream checked as it passes, so
 * that its importer registers only the paths we asked the exporter for.
 *
 * `nix-store --import` (and nix-store --serve's ImportPaths) registers
 * every entry of the stream it reads, whatever we asked for: a hostile
 * exporter could append the output path of a derivation we are to build
 * later, with contents of its choosing, and the importing store would
 * take it as built. Nix's nix-copy-closure --from adds only the paths it
 * requested; our relay (lib/closure.c) does so by feeding every chunk to
 * a checker before it forwards it, and forwarding only what the checker
 * says is safe.
 *
 * The stream, per path: u64 1, the path's NAR, u64 0x4558494e ("NIXE"),
 * the path, its references (u64 count, then each), its deriver ("" when
 * none), u64 0 (no signature); after the last path, u64 0. Numbers are
 * 64-bit little-endian; a string is its length, its bytes and zeros up to
 * a multiple of 8. A NAR ends only where its structure does, so the
 * checker parses it (the canonical form `nix-store --dump` writes, which
 * is all any exporter writes: a subset of what Nix reads, framed the same
 * way) with bounded memory: file contents are counted down, never copied
 * or kept; other strings are bounded (EXPORTCHECK_MAX_STRING), and so is
 * a NAR's depth.
 *
 * An entry is accepted when its path is one of those asked for and not
 * sent before, its references and deriver are store paths, and its
 * signature field is 0. The importer completes an entry only with the
 * last byte of that field (Nix 2.8 to today's importPaths, Lix alike), so
 * a checker that stops at the first byte it cannot accept, and forwards
 * nothing from it on, leaves the importer with a cut entry: it registers
 * nothing of it (the entries before it were asked for). After the end
 * marker nothing may follow: in a conversation (nix-store --serve) more
 * bytes would be read as its next command.
 */
#ifndef NRR_EXPORTCHECK_H
#define NRR_EXPORTCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "strvec.h"

/* The longest string other than a file's contents (a name, a symlink's
 * target, a store path) the checker takes: PATH_MAX on Linux. */
#define EXPORTCHECK_MAX_STRING 4096
/* The deepest directory tree; store trees are shallow. */
#define EXPORTCHECK_MAX_DEPTH 256

struct exportcheck {
	/* the paths asked for, and which of them came */
	struct strindex asked;
	unsigned char *seen;
	/* where the stream is: what the next item means (the grammar's
	 * state), and how much of the item is read */
	int expect;
	int reading;		/* a u64, a string's bytes, contents, padding */
	unsigned long long left;	/* bytes of the item's part still to come */
	unsigned long long pad;		/* padding after the bytes */
	unsigned char num[8];
	size_t num_len;
	char str[EXPORTCHECK_MAX_STRING + 1];
	size_t str_len;
	unsigned depth;
	unsigned long long refs_left;
	/* the entry being read: its path, once known */
	char path[EXPORTCHECK_MAX_STRING + 1];
	unsigned long long offset;	/* bytes accepted so far */
	size_t entries;			/* complete entries accepted */
	int failed;
	char why[512];
};

/*
 * Starts a check of a stream that is to carry paths[0..n) (each at most
 * once, in any order, some of them maybe not at all). paths are not
 * copied: they must outlive ck. Release with exportcheck_release.
 */
void exportcheck_init(struct exportcheck *ck, const char *const *paths, size_t n);
void exportcheck_release(struct exportcheck *ck);

/*
 * Takes the stream's next len bytes. Returns how many of them may be
 * forwarded: len, or, when they break the rules (an entry not asked for,
 * a malformed NAR or entry, bytes after the end), the number before the
 * first byte that does; then ck->why says what (a host's words in it are
 * shown through nrr_printable) and every later call returns 0.
 */
size_t exportcheck_feed(struct exportcheck *ck, const void *buf, size_t len);

/* 1 once the end marker was read (and nothing was refused). */
int exportcheck_done(const struct exportcheck *ck);

/*
 * At the stream's end: 0 if it was whole; else -1, with ck->why set (the
 * refusal's reason, or that the stream stopped before its end marker).
 */
int exportcheck_finish(struct exportcheck *ck);

#endif
