#include "strbuf.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char strbuf_empty[1];

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("fatal: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p) {
		fputs("fatal: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fputs("fatal: out of memory\n", stderr);
		abort();
	}
	return p;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xstrfmt(const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	return strbuf_detach(&sb);
}

void strbuf_init(struct strbuf *sb)
{
	sb->alloc = sb->len = 0;
	sb->buf = strbuf_empty;
	sb->secret = 0;
}

void strbuf_init_secret(struct strbuf *sb)
{
	strbuf_init(sb);
	sb->secret = 1;
}

void wipe_bytes(void *p, size_t n)
{
	/* volatile keeps the compiler from dropping the wipe */
	volatile char *v = p;
	for (size_t i = 0; i < n; i++)
		v[i] = 0;
}

/* Empty again, as secret as it was. */
static void reinit(struct strbuf *sb)
{
	int secret = sb->secret;
	strbuf_init(sb);
	sb->secret = secret;
}

void strbuf_release(struct strbuf *sb)
{
	if (sb->alloc) {
		if (sb->secret)
			wipe_bytes(sb->buf, sb->alloc);
		free(sb->buf);
	}
	reinit(sb);
}

void strbuf_release_secret(struct strbuf *sb)
{
	if (sb->alloc)
		wipe_bytes(sb->buf, sb->alloc);
	strbuf_release(sb);
}

char *strbuf_detach(struct strbuf *sb)
{
	char *res = sb->alloc ? sb->buf : xstrdup("");
	reinit(sb);
	return res;
}

void strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;
	if (need <= sb->alloc)
		return;
	size_t n = sb->alloc ? sb->alloc : 64;
	while (n < need)
		n *= 2;
	if (!sb->alloc) {
		sb->buf = xmalloc(n);
		sb->buf[0] = '\0';
	} else if (sb->secret) {
		/* not realloc: it would free the old copy as it is */
		char *moved = xmalloc(n);
		memcpy(moved, sb->buf, sb->len + 1);
		wipe_bytes(sb->buf, sb->alloc);
		free(sb->buf);
		sb->buf = moved;
	} else {
		sb->buf = xrealloc(sb->buf, n);
	}
	sb->alloc = n;
}

void strbuf_reset(struct strbuf *sb)
{
	strbuf_setlen(sb, 0);
}

void strbuf_setlen(struct strbuf *sb, size_t len)
{
	if (!sb->alloc)
		return;
	sb->len = len;
	sb->buf[len] = '\0';
}

void strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	if (!len)
		return;
	strbuf_grow(sb, len);
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void strbuf_addstr(struct strbuf *sb, const char *s)
{
	strbuf_add(sb, s, strlen(s));
}

void strbuf_addch(struct strbuf *sb, int c)
{
	char ch = (char)c;
	strbuf_add(sb, &ch, 1);
}

void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n <= 0)
		return;
	strbuf_grow(sb, (size_t)n);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void strbuf_rtrim(struct strbuf *sb)
{
	while (sb->len && strchr(" \t\r\n", sb->buf[sb->len - 1]))
		sb->len--;
	if (sb->alloc)
		sb->buf[sb->len] = '\0';
}

void strbuf_keep_tail(struct strbuf *sb, size_t limit)
{
	if (sb->len <= limit)
		return;
	size_t from = sb->len - limit / 2;
	const char *nl = sb->buf[from - 1] == '\n' ? NULL :
			 memchr(sb->buf + from, '\n', sb->len - from);
	if (nl && nl + 1 < sb->buf + sb->len)
		from = (size_t)(nl + 1 - sb->buf);
	memmove(sb->buf, sb->buf + from, sb->len - from);
	strbuf_setlen(sb, sb->len - from);
}

void strbuf_take_lines(struct strbuf *sb, void (*fn)(void *data, char *line), void *data)
{
	char *line = sb->buf, *nl;
	while ((nl = memchr(line, '\n', sb->len - (size_t)(line - sb->buf)))) {
		*nl = '\0';
		fn(data, line);
		line = nl + 1;
	}
	size_t used = (size_t)(line - sb->buf);
	if (used) {
		memmove(sb->buf, line, sb->len - used);
		strbuf_setlen(sb, sb->len - used);
	}
}

const char *last_line(const char *s, size_t *len)
{
	const char *end = s + strlen(s);
	while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	const char *start = end;
	while (start > s && start[-1] != '\n')
		start--;
	*len = (size_t)(end - start);
	return start;
}

int parse_decimal_u64(const char *s, size_t n, unsigned long long *out)
{
	unsigned long long v = 0;
	if (!n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (~0ULL - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

char *read_file_text(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_read_file(&sb, path);
	return strbuf_detach(&sb);
}

int strbuf_read_file(struct strbuf *sb, const char *path)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strbuf_add(sb, buf, (size_t)n);
	close(fd);
	return n < 0 ? -1 : 0;
}
