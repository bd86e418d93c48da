/*
 * strbuf: a growable, always NUL-terminated byte buffer.
 *
 * Invariants: after strbuf_init() (or STRBUF_INIT) buf is never NULL and
 * buf[len] == '\0'; the buffer may hold NUL bytes (len counts them).
 * Allocation failure aborts: a deploy tool cannot do anything useful
 * without memory, and every caller would only propagate it.
 * strbuf_release() frees the contents and leaves an empty, reusable buffer.
 */
#ifndef NRR_STRBUF_H
#define NRR_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	size_t alloc;
	size_t len;
	char *buf;
	/* holds a secret (strbuf_init_secret): every byte of memory it
	 * gives back is wiped first, when it grows as when it is released */
	int secret;
};

extern char strbuf_empty[];
#define STRBUF_INIT { 0, 0, strbuf_empty, 0 }

void strbuf_init(struct strbuf *sb);
/* strbuf_init for a buffer that will hold a secret (a key's text read
 * from nix): growing copies it to new memory and wipes the old (realloc
 * would free it as it is), releasing wipes it, and pump's reads into it
 * wipe their stack copy. It stays secret across strbuf_release(). */
void strbuf_init_secret(struct strbuf *sb);
/* Frees the contents (wiped first if secret): sb is empty and reusable. */
void strbuf_release(struct strbuf *sb);
/* Hands the string to the caller, who must free() it; sb is reset. */
char *strbuf_detach(struct strbuf *sb);
/* Appends the contents of the file at path. Returns 0, or -1 if it cannot
 * be opened (sb then unchanged) or a read fails (sb has what was read). */
int strbuf_read_file(struct strbuf *sb, const char *path);
/* The text of the file at path, which the caller must free(); "" (also to
 * be freed) if it cannot be read. */
char *read_file_text(const char *path);
void strbuf_grow(struct strbuf *sb, size_t extra);
void strbuf_reset(struct strbuf *sb);
void strbuf_setlen(struct strbuf *sb, size_t len);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, int c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
/* Removes trailing white space (newlines included). */
void strbuf_rtrim(struct strbuf *sb);
/*
 * Once sb is longer than limit, keeps only its last limit / 2 bytes, from
 * the first line that starts in them: what a remote says on stderr, kept
 * for the message about its end, stays bounded however much it says.
 */
void strbuf_keep_tail(struct strbuf *sb, size_t limit);
/*
 * For a stream read in pieces: calls fn(data, line) for each complete
 * line of sb, in order (its '\n' made '\0'; fn may change the line but
 * not sb), then removes them; a line without its '\n' yet stays.
 */
void strbuf_take_lines(struct strbuf *sb, void (*fn)(void *data, char *line), void *data);
/* Overwrites the contents with zeros before releasing (for secrets). */
void strbuf_release_secret(struct strbuf *sb);
/* Overwrites n bytes at p with zeros, in a way the compiler keeps. */
void wipe_bytes(void *p, size_t n);

/*
 * Returns a pointer to the start of the last non-empty line of s (or s
 * itself), and its length in *len, for "the last thing a command said".
 */
const char *last_line(const char *s, size_t *len);

/*
 * Parses the decimal digits [s, s+n) into *out. Returns 0, or -1 if n is 0,
 * a character is not a digit, or the value does not fit in 64 bits.
 */
int parse_decimal_u64(const char *s, size_t n, unsigned long long *out);

/* xmalloc family: abort on failure, as strbuf does. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xstrfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
