/*
 * cachedir: where this user's caches live between runs.
 *
 * $XDG_CACHE_HOME/nixos-rebuild-remote/SUB, or ~/.cache/nixos-rebuild-remote/SUB
 * without it: the place a user expects to clear, and never shared with
 * another user. A cache is only ever an optimisation: callers treat every
 * failure here as "not cached".
 */
#ifndef NRR_CACHEDIR_H
#define NRR_CACHEDIR_H

#include <stddef.h>

/* The directory for sub, malloc'ed (the caller frees it); NULL when
 * neither variable holds an absolute path. Nothing is created. */
char *cachedir_path(const char *sub);

/* mkdir -p path, mode 0700 for what it makes. 0, or -1. */
int cachedir_make(const char *path);

/* Writes len bytes of data to path (in a directory that exists) whole or
 * not at all: a temp file of mode 0600 beside it, then a rename, so that
 * a reader, another run included, never sees half an entry. 0, or -1. */
int cachedir_put(const char *path, const char *data, size_t len);

#endif
