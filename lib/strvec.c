#include "strvec.h"
#include "strbuf.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *strvec_empty[] = { NULL };

void strvec_init(struct strvec *sv)
{
	sv->v = strvec_empty;
	sv->nr = sv->alloc = 0;
}

static void strvec_push_nodup(struct strvec *sv, char *s)
{
	if (sv->nr + 2 > sv->alloc) {
		size_t n = sv->alloc ? sv->alloc * 2 : 8;
		const char **nv = xrealloc(sv->alloc ? sv->v : NULL,
					   n * sizeof(*nv));
		sv->v = nv;
		sv->alloc = n;
	}
	sv->v[sv->nr++] = s;
	sv->v[sv->nr] = NULL;
}

void strvec_push(struct strvec *sv, const char *s)
{
	strvec_push_nodup(sv, xstrdup(s));
}

void strvec_pushf(struct strvec *sv, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	strvec_push_nodup(sv, strbuf_detach(&sb));
}

void strvec_pushl(struct strvec *sv, ...)
{
	va_list ap;
	const char *s;
	va_start(ap, sv);
	while ((s = va_arg(ap, const char *)))
		strvec_push(sv, s);
	va_end(ap);
}

void strvec_pushv(struct strvec *sv, const char *const *v)
{
	for (; v && *v; v++)
		strvec_push(sv, *v);
}

void strvec_pushvec(struct strvec *sv, const struct strvec *src)
{
	for (size_t i = 0; i < src->nr; i++)
		strvec_push(sv, src->v[i]);
}

void strvec_pop(struct strvec *sv)
{
	if (!sv->nr)
		return;
	free((char *)sv->v[--sv->nr]);
	sv->v[sv->nr] = NULL;
}

void strvec_clear(struct strvec *sv)
{
	if (sv->alloc) {
		for (size_t i = 0; i < sv->nr; i++)
			free((char *)sv->v[i]);
		free(sv->v);
	}
	strvec_init(sv);
}

int strvec_find(const struct strvec *sv, const char *s)
{
	for (size_t i = 0; i < sv->nr; i++)
		if (!strcmp(sv->v[i], s))
			return (int)i;
	return -1;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct strindex_entry *)a)->s, ((const struct strindex_entry *)b)->s);
}

void strindex_init(struct strindex *ix, const char *const *v, size_t n)
{
	ix->by = xcalloc(n + 1, sizeof(*ix->by));
	ix->n = n;
	for (size_t i = 0; i < n; i++)
		ix->by[i] = (struct strindex_entry){ v[i], i };
	qsort(ix->by, n, sizeof(*ix->by), cmp_entry);
}

long strindex_find(const struct strindex *ix, const char *s)
{
	struct strindex_entry key = { s, 0 };
	const struct strindex_entry *hit = ix->n ? bsearch(&key, ix->by, ix->n, sizeof(*ix->by),
							   cmp_entry) : NULL;
	return hit ? (long)hit->at : -1;
}

void strindex_release(struct strindex *ix)
{
	free(ix->by);
	ix->by = NULL;
	ix->n = 0;
}
