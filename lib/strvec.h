/*
 * strvec: a NULL-terminated vector of owned strings, ready to be an argv.
 *
 * After STRVEC_INIT, v is never NULL and v[nr] == NULL. Every pushed string
 * is copied; strvec_clear() frees the copies and the array.
 */
#ifndef NRR_STRVEC_H
#define NRR_STRVEC_H

#include <stddef.h>

struct strvec {
	const char **v;
	size_t nr;
	size_t alloc;
};

extern const char *strvec_empty[];
#define STRVEC_INIT { strvec_empty, 0, 0 }

void strvec_init(struct strvec *sv);
void strvec_push(struct strvec *sv, const char *s);
void strvec_pushf(struct strvec *sv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Pushes each string of a NULL-terminated list. */
void strvec_pushl(struct strvec *sv, ...);
void strvec_pushv(struct strvec *sv, const char *const *v);
void strvec_pushvec(struct strvec *sv, const struct strvec *src);
void strvec_pop(struct strvec *sv);
void strvec_clear(struct strvec *sv);
/* Index of s in sv, or -1. */
int strvec_find(const struct strvec *sv, const char *s);

/*
 * strindex: where a string is among n others, in O(log n), for lists long
 * enough that strvec_find's scan would make a loop over them quadratic (a
 * system's closure: thousands of store paths). The strings are not copied:
 * they must outlive the index.
 */
struct strindex_entry {
	const char *s;
	size_t at;
};

struct strindex {
	struct strindex_entry *by;	/* sorted by s */
	size_t n;
};

void strindex_init(struct strindex *ix, const char *const *v, size_t n);
/* The position of s in the indexed strings (one of them if repeated), or -1. */
long strindex_find(const struct strindex *ix, const char *s);
void strindex_release(struct strindex *ix);

#endif
