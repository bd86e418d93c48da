/*
 * serveproto: the few words of `nix-store --serve` we speak inside a
 * deploy's conversation (lib/scripts/activate.sh).
 *
 * One `nix-store --serve --write` on the target answers which paths of
 * the closure it has (after trying its own caches, when asked to), then
 * imports what we stream to it: one nix process where a validity query,
 * a realise and an import took three. Every Nix since long before 2.8
 * speaks it, as does Lix (protocol 2.5 and later, unchanged for these
 * commands): the handshake (magic, version), QueryValidPaths (1),
 * ImportPaths (4, then the very stream `nix-store --export` writes: for a
 * stream another host exports) and AddToStoreNar (9: a path's info, then
 * its NAR of exactly the size it gave, unframed; the answer is 1; for
 * NARs made here). A path's AddToStoreNar checks the NAR's hash and size
 * against its info and refuses a mismatch (Nix 2.8's and today's
 * LocalStore::addToStore), where ImportPaths registers whatever it reads;
 * a path the target has meanwhile is skipped, its NAR read to its end.
 * Each answers only after its NAR, so we send them all before reading
 * the answers: one round trip for the closure, not one a path as Nix's
 * own ssh:// store waits.
 *
 * Numbers are 64-bit little-endian; a string is its length, its bytes
 * and zeros up to a multiple of 8. The serving process stops only at the
 * end of its input, which in a conversation never comes: we end it with
 * a command number no Nix knows (SERVEPROTO_END), after which it exits
 * with "unknown serve command 0" (the same words in Nix 2.8, today's Nix
 * and Lix: their nix-store.cc), which the script takes as the good end
 * and does not show; any other end is a failed copy.
 */
#ifndef NRR_SERVEPROTO_H
#define NRR_SERVEPROTO_H

#include <stdint.h>

#include "narexport.h"
#include "strbuf.h"
#include "strvec.h"

#define SERVEPROTO_MAGIC_1 0x390c9debULL	/* ours */
#define SERVEPROTO_MAGIC_2 0x5452eecbULL	/* nix-store's answer */
#define SERVEPROTO_VERSION 0x205ULL
#define SERVEPROTO_QUERY_VALID 1ULL
#define SERVEPROTO_IMPORT 4ULL
#define SERVEPROTO_ADD_NAR 9ULL
#define SERVEPROTO_END 0ULL
/* the longest path and the most paths we take from a target */
#define SERVEPROTO_MAX_STRING 4096

void serveproto_add_u64(struct strbuf *out, uint64_t v);
void serveproto_add_string(struct strbuf *out, const char *s);

/* The handshake and one QueryValidPaths of paths (lock: the target holds
 * them as temporary GC roots while it serves; substitute: it tries its
 * caches first), appended to out. */
void serveproto_hello_query(struct strbuf *out, const struct strvec *paths,
			    int lock, int substitute);

/*
 * p's info as AddToStoreNar has it, in nix-store --serve's and the
 * daemon's (protocol 1.16 on) alike: path, deriver, NAR hash (base16),
 * references, registration time 0 (now), NAR size, not ultimate, no
 * signatures, no content address. Appended to out.
 */
void serveproto_add_info(struct strbuf *out, const struct narexport_path *p);

uint64_t serveproto_get_u64(const unsigned char b[8]);

/* Bytes a string of len takes after its length word: len, padded. */
uint64_t serveproto_padded(uint64_t len);

#endif
