/*
 * narexport: the stream `nix-store --export` writes, made here from the
 * store's files, for paths whose registration we already hold.
 *
 * A fleet's child knows every path of its closure from the fleet's one
 * `nix-store --dump-db` (lib/closuredb.h): its NAR hash and size, its
 * deriver and references, which is all the export format carries beside
 * the NAR. Writing that stream ourselves spares this machine a shell, a
 * cat and a nix-store per host, the costliest processes a fleet's copy
 * starts here (most of a nix-store's time is loading its libraries).
 *
 * The format, as Nix 2.8 to today's Nix and Lix read it (export-import.cc,
 * archive.cc): for each path the number 1, its NAR, the number 0x4558494e
 * ("NIXE"), the path, its references (a count, then each), its deriver ("")
 * and 0 (no signature); after the last path, 0. Numbers are 64-bit
 * little-endian; strings are their length, their bytes and zeros up to a
 * multiple of 8. A NAR is "nix-archive-1" and the path's tree: a
 * directory's entries sorted bytewise by name, a file's executable bit,
 * a symlink's target; nothing else (times, owners, other modes) is in it.
 *
 * The importer trusts what it is sent (with --write, no signature is
 * checked): so every NAR is hashed as it is written and compared with the
 * hash the store registered before the path's trailer is sent. A path that
 * differs (a bug here, a store changed behind Nix's back) stops the stream
 * before the importer could register it.
 */
#ifndef NRR_NAREXPORT_H
#define NRR_NAREXPORT_H

#include <stddef.h>

/* One path to export and the store's registration of it. */
struct narexport_path {
	const char *path;
	const char *nar_hash;		/* SHA-256 in base16, as --dump-db prints it */
	unsigned long long nar_size;
	const char *deriver;		/* "" when none */
	size_t nrefs;
	const char *const *refs;
};

#define NAREXPORT_MISMATCH (-2)

/* Where the stream goes: returns 0, or -1 to stop (the reader is gone). */
typedef int (*narexport_sink)(void *ctx, const void *buf, size_t len);

/* 1 if hash is what --dump-db prints for a SHA-256 (64 base16 digits):
 * the only form export can check against. */
int narexport_hash_usable(const char *hash);

/*
 * Writes the export stream of paths (dependencies first, as the importer
 * needs) to sink, in pieces of at most 64 KiB, and *bytes the size of what
 * it wrote. Returns 0; or NAREXPORT_MISMATCH with why (naming the path)
 * when a path does not match its registration; or -1 with why when a file
 * cannot be read or the sink stopped (why then says so). stop, if set, is asked between
 * pieces and ends the stream when it returns non-zero (an interrupt).
 */
int narexport_write(const struct narexport_path *paths, size_t n, narexport_sink sink,
		    void *ctx, int (*stop)(void), unsigned long long *bytes,
		    char *why, size_t whylen);

/*
 * p's NAR alone, hashed as it is written (lib/daemon.h sends it framed,
 * after p's info): 0; NAREXPORT_MISMATCH with why, once all of it was
 * written, when it differs from the registration (a daemon, which checks
 * it too, refuses it then); or -1 with why. *bytes, stop: as above.
 */
int narexport_nar(const struct narexport_path *p, narexport_sink sink, void *ctx,
		  int (*stop)(void), unsigned long long *bytes, char *why, size_t whylen);

/* The NAR of the file tree at path (any path, not only a store's) to sink,
 * as `nix-store --dump` writes it: for tests. Same returns. */
int narexport_dump(const char *path, narexport_sink sink, void *ctx,
		   char *why, size_t whylen);

#endif
