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

#endif
