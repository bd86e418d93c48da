#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Whether the bytes at s start a terminal control: C0 and DEL, and the C1
 * controls as UTF-8 (0xc2 0x80-0x9f: U+009B is a CSI to some terminals).
 * Returns the length of the control (0: none). Other UTF-8 stays as it is:
 * nix's messages quote with U+2018 and U+2019.
 */
static size_t control_at(const unsigned char *s)
{
	if (*s < 0x20 || *s == 0x7f)
		return 1;
	if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
		return 2;
	return 0;
}

/* Writes byte c as \xNN at out; returns 4. */
static size_t put_hex(char *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 15];
	return 4;
}

/* nrr_one_line of s, written into out (of size bytes, more than 0). */
static void one_line_into(char *out, size_t size, const char *s)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && n + 9 < size;) {
		size_t c = control_at(p);
		if (!c || *p == '\t') {
			out[n++] = (char)*p++;
		} else if (*p == '\n' || *p == '\r') {
			out[n++] = ' ';
			p++;
		} else {
			for (size_t i = 0; i < c; i++, p++)
				n += put_hex(out + n, *p);
		}
	}
	out[n] = '\0';
}

void nrr_one_line(char *s, size_t size)
{
	char out[2048];

	if (!size)
		return;
	one_line_into(out, size < sizeof(out) ? size : sizeof(out), s);
	memcpy(s, out, strlen(out) + 1);
}

char *nrr_one_line_of(char *buf, size_t size, const char *s)
{
	if (size)
		one_line_into(buf, size, s);
	return buf;
}

int nrr_fail(struct nrr_err *e, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	nrr_one_line(e->msg, sizeof(e->msg));
	e->status = status;
	e->hint[0] = '\0';
	return status;
}

void nrr_hint(struct nrr_err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->hint, sizeof(e->hint), fmt, ap);
	va_end(ap);
	nrr_one_line(e->hint, sizeof(e->hint));
}

char *nrr_printable(char *buf, size_t size, const char *s)
{
	size_t n = 0, shown = 0;

	for (; *s && n + 8 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (shown++ == 160) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[n++] = (char)c;
		else
			n += put_hex(buf + n, c);
	}
	if (size)
		buf[n < size ? n : size - 1] = '\0';
	return buf;
}

int nrr_protocol(struct nrr_err *e, const char *host, const char *fmt, ...)
{
	char what[sizeof(e->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	nrr_fail(e, NRR_EPROTO, "protocol error from '%s': %s", host, what);
	nrr_hint(e, "a broken or hostile host: its answer was not used");
	return NRR_EPROTO;
}

void nrr_err_clear(struct nrr_err *e)
{
	memset(e, 0, sizeof(*e));
}

void nrr_prefix(struct nrr_err *e, const char *prefix)
{
	char old[sizeof(e->msg)];
	memcpy(old, e->msg, sizeof(old));
	size_t pl = strlen(prefix);
	if (pl + 2 >= sizeof(e->msg))
		return;
	memcpy(e->msg, prefix, pl);
	memcpy(e->msg + pl, ": ", 2);
	size_t room = sizeof(e->msg) - pl - 3;
	size_t ol = strnlen(old, room);
	memcpy(e->msg + pl + 2, old, ol);
	e->msg[pl + 2 + ol] = '\0';
}
