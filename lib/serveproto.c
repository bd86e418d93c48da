#include <string.h>

#include "serveproto.h"

void serveproto_add_u64(struct strbuf *out, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	strbuf_add(out, b, 8);
}

uint64_t serveproto_padded(uint64_t len)
{
	return (len + 7) & ~(uint64_t)7;
}

void serveproto_add_string(struct strbuf *out, const char *s)
{
	static const char zeros[8];
	size_t len = strlen(s);
	serveproto_add_u64(out, len);
	strbuf_add(out, s, len);
	strbuf_add(out, zeros, (size_t)(serveproto_padded(len) - len));
}

void serveproto_hello_query(struct strbuf *out, const struct strvec *paths,
			    int lock, int substitute)
{
	serveproto_add_u64(out, SERVEPROTO_MAGIC_1);
	serveproto_add_u64(out, SERVEPROTO_VERSION);
	serveproto_add_u64(out, SERVEPROTO_QUERY_VALID);
	serveproto_add_u64(out, lock ? 1 : 0);
	serveproto_add_u64(out, substitute ? 1 : 0);
	serveproto_add_u64(out, paths->nr);
	for (size_t i = 0; i < paths->nr; i++)
		serveproto_add_string(out, paths->v[i]);
}

void serveproto_add_info(struct strbuf *out, const struct narexport_path *p)
{
	serveproto_add_string(out, p->path);
	serveproto_add_string(out, p->deriver);
	serveproto_add_string(out, p->nar_hash);
	serveproto_add_u64(out, p->nrefs);
	for (size_t i = 0; i < p->nrefs; i++)
		serveproto_add_string(out, p->refs[i]);
	serveproto_add_u64(out, 0);
	serveproto_add_u64(out, p->nar_size);
	serveproto_add_u64(out, 0);
	serveproto_add_u64(out, 0);
	serveproto_add_string(out, "");
}

uint64_t serveproto_get_u64(const unsigned char b[8])
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}
