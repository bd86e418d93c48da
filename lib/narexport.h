/*
 * narexport: a store path's NAR, made here from the store's files, for
 * paths whose registration we already hold.
 *
 * A fleet's child knows every path of its closure from the fleet's one
 * `nix-store --dump-db` (lib/closuredb.h): its NAR hash and size, its
 * deriver and references, which is all a path's AddToStoreNar carries
 * beside the NAR (lib/serveproto.h). Writing the NARs ourselves spares
 * this machine a shell, a cat and a nix-store per host, the costliest
 * processes a fleet's copy starts here (most of a nix-store's time is
 * loading its libraries).
 *
 * A NAR, as `nix-store --dump` writes it and Nix 2.8 to today's Nix and
 * Lix read it (archive.cc): the string "nix-archive-1" and the path's
 * tree: a directory's entries sorted bytewise by name, a file's
 * executable bit and contents, a symlink's target; nothing else (times,
 * owners, other modes). Numbers are 64-bit little-endian; strings are
 * their length, their bytes and zeros up to a multiple of 8.
 *
 * What checks a NAR against the store's registration of it (a bug here,
 * a store changed behind Nix's back): its receiver. AddToStoreNar, of the
 * daemon and of nix-store --serve alike, is told the hash and size first,
 * hashes what it reads and refuses a mismatch, as `nix-store --export`
 * here would have. So narexport only holds back a NAR that passes its
 * registered size and leaves the hash to the receiver: hashing it here
 * too was most of a fleet host's copy (SHA-256 at about 400 MB/s, 3 ms a
 * host for a 1.3 MiB closure).
 */
#ifndef NRR_NAREXPORT_H
#define NRR_NAREXPORT_H

#include <stddef.h>

/* One path to send and the store's registration of it. */
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
 * the form AddToStoreNar's info carries. */
int narexport_hash_usable(const char *hash);

/*
 * p's NAR, for a receiver told p's info before it, which checks the
 * hash (AddToStoreNar: lib/daemon.h frames it, lib/serve.h does not):
 * 0; NAREXPORT_MISMATCH with why when its size differs from the
 * registration, and then no more than the registered size was sent (the
 * receiver, which reads exactly that many bytes, still waits for some, or
 * refuses what it got); or -1 with why (a file it cannot read, the sink
 * stopped). *bytes: what was written. stop, if set, is asked between
 * pieces of at most 64 KiB and ends the NAR when it returns non-zero (an
 * interrupt).
 */
int narexport_nar(const struct narexport_path *p, narexport_sink sink, void *ctx,
		  int (*stop)(void), unsigned long long *bytes, char *why, size_t whylen);

/*
 * Where a regular file's contents may go instead of through sink: len
 * bytes of fd from where it stands, not copied here. Returns 0; -1 to
 * stop (the reader is gone); NAREXPORT_SHORT if the file ended first;
 * or 1, nothing taken, to have them go through sink after all.
 */
#define NAREXPORT_SHORT (-3)
typedef int (*narexport_file_sink)(void *ctx, int fd, unsigned long long len);

/* narexport_nar, with the contents of big files (64 KiB and more) handed
 * to file_sink: a NAR's bytes are mostly those. */
int narexport_nar_files(const struct narexport_path *p, narexport_sink sink,
			narexport_file_sink file_sink, void *ctx, int (*stop)(void),
			unsigned long long *bytes, char *why, size_t whylen);

/* The NAR of the file tree at path (any path, not only a store's) to sink,
 * as `nix-store --dump` writes it: for tests. Same returns. */
int narexport_dump(const char *path, narexport_sink sink, void *ctx,
		   char *why, size_t whylen);

#endif
