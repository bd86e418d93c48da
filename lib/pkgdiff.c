#include "pkgdiff.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Store path hashes are 32 characters of Nix's base32 (digits and
 * lowercase letters without e, o, u, t); we accept any [0-9a-z]. */
#define HASH_LEN 32

void pkgdiff_closure_init(struct pkgdiff_closure *c)
{
	c->items = NULL;
	c->nr = c->alloc = 0;
}

static void closure_add_n(struct pkgdiff_closure *c, const char *path,
			  size_t len, uint64_t nar_size)
{
	if (c->nr == c->alloc) {
		c->alloc = c->alloc ? 2 * c->alloc : 64;
		c->items = xrealloc(c->items, c->alloc * sizeof(*c->items));
	}
	c->items[c->nr].path = xstrndup(path, len);
	c->items[c->nr].nar_size = nar_size;
	c->nr++;
}

void pkgdiff_closure_add(struct pkgdiff_closure *c, const char *path,
			 uint64_t nar_size)
{
	closure_add_n(c, path, strlen(path), nar_size);
}

void pkgdiff_closure_release(struct pkgdiff_closure *c)
{
	for (size_t i = 0; i < c->nr; i++)
		free(c->items[i].path);
	free(c->items);
	pkgdiff_closure_init(c);
}

/* ---- parsing listings ---- */

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Parses the decimal count [s, s+n) into *out; -1 if it is not one. */
static int parse_size(const char *s, size_t n, uint64_t *out)
{
	unsigned long long v;
	if (parse_decimal_u64(s, n, &v))
		return -1;
	*out = (uint64_t)v;
	return 0;
}

/*
 * Walks text line by line: sets [*start, *end) to the next line without
 * its newline and trailing blanks, skipping blank lines. Returns 0 at the
 * end. *lineno counts every line, blank ones too, for messages.
 */
static int next_line(const char **pos, const char **start, const char **end,
		     size_t *lineno)
{
	const char *p = *pos;
	while (*p) {
		const char *nl = strchr(p, '\n');
		const char *e = nl ? nl : p + strlen(p);
		const char *s = p;
		p = nl ? nl + 1 : e;
		(*lineno)++;
		while (s < e && is_blank(*s))
			s++;
		while (e > s && is_blank(e[-1]))
			e--;
		if (s < e) {
			*pos = p;
			*start = s;
			*end = e;
			return 1;
		}
	}
	*pos = p;
	return 0;
}

/*
 * [s, s+n) for an error message, in buf: at most 32 bytes, anything but
 * printable ASCII as '?', since the text may come from a remote host.
 */
static const char *shown(const char *s, size_t n, char buf[static 36])
{
	size_t i;
	for (i = 0; i < n && i < 32; i++)
		buf[i] = (unsigned char)s[i] < ' ' || (unsigned char)s[i] >= 0x7f
			 ? '?' : s[i];
	if (n > 32) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/*
 * Whether [s, s+n) can be a store path: it starts with '/' and holds only
 * printable ASCII. Store path names are narrower still; this keeps a
 * listing from a compromised host from putting terminal escapes into the
 * diff we print.
 */
static int valid_path(const char *s, size_t n)
{
	if (!n || *s != '/')
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

int pkgdiff_closure_parse(struct pkgdiff_closure *c, const char *text,
			  struct nrr_err *e)
{
	const char *pos = text, *s, *end;
	size_t lineno = 0;
	char buf[36];

	while (next_line(&pos, &s, &end, &lineno)) {
		const char *p = s;
		while (p < end && !is_blank(*p))
			p++;
		const char *path = s;
		size_t path_len = (size_t)(p - s);
		while (p < end && is_blank(*p))
			p++;
		uint64_t size = 0;
		if (!valid_path(path, path_len))
			return nrr_fail(e, NRR_EFAIL,
					"bad closure line %zu: not a store path",
					lineno);
		if (p < end && parse_size(p, (size_t)(end - p), &size))
			return nrr_fail(e, NRR_EFAIL,
					"bad closure line %zu: size '%s' is not a byte count",
					lineno, shown(p, (size_t)(end - p), buf));
		closure_add_n(c, path, path_len, size);
	}
	return 0;
}

int pkgdiff_closure_parse_lists(struct pkgdiff_closure *c,
				const char *paths_text, const char *sizes_text,
				struct nrr_err *e)
{
	const char *pp = paths_text, *sp = sizes_text, *ps, *pe, *ss, *se;
	size_t pline = 0, sline = 0, npaths = 0, nsizes = 0;
	size_t first = c->nr;

	for (;;) {
		int have_path = next_line(&pp, &ps, &pe, &pline);
		int have_size = next_line(&sp, &ss, &se, &sline);
		npaths += have_path;
		nsizes += have_size;
		if (!have_path || !have_size) {
			/* count the rest, for the message */
			while (next_line(&pp, &ps, &pe, &pline))
				npaths++;
			while (next_line(&sp, &ss, &se, &sline))
				nsizes++;
			break;
		}
		uint64_t size;
		if (parse_size(ss, (size_t)(se - ss), &size)) {
			char buf[36];
			nrr_fail(e, NRR_EFAIL,
				 "bad size line %zu: '%s' is not a byte count",
				 sline, shown(ss, (size_t)(se - ss), buf));
			goto fail;
		}
		if (!valid_path(ps, (size_t)(pe - ps))) {
			nrr_fail(e, NRR_EFAIL,
				 "bad closure line %zu: not a store path", pline);
			goto fail;
		}
		closure_add_n(c, ps, (size_t)(pe - ps), size);
	}
	if (npaths != nsizes) {
		nrr_fail(e, NRR_EFAIL,
			 "closure listing has %zu paths but %zu sizes",
			 npaths, nsizes);
		goto fail;
	}
	return 0;
fail:
	while (c->nr > first)
		free(c->items[--c->nr].path);
	return e->status;
}

/* ---- names and versions ---- */

static int is_hash_char(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z');
}

static int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

void pkgdiff_split_name(const char *store_path, const char **name,
			size_t *name_len, const char **version,
			size_t *version_len)
{
	const char *base = strrchr(store_path, '/');
	base = base ? base + 1 : store_path;
	size_t len = strlen(base);

	size_t i = 0;
	while (i < len && i < HASH_LEN && is_hash_char(base[i]))
		i++;
	if (i == HASH_LEN && len > HASH_LEN && base[HASH_LEN] == '-') {
		base += HASH_LEN + 1;
		len -= HASH_LEN + 1;
	}
	if (len > 4 && !memcmp(base + len - 4, ".drv", 4))
		len -= 4;

	/* nvd's name is non-empty, so a dash at 0 never starts a version */
	for (i = 1; i + 1 < len; i++)
		if (base[i] == '-' && is_digit(base[i + 1]))
			break;
	*name = base;
	if (i + 1 < len) {
		*name_len = i;
		*version = base + i + 1;
		*version_len = len - i - 1;
	} else {
		*name_len = len;
		*version = base + len;
		*version_len = 0;
	}
}

/*
 * The next component of a version at *p (up to end): separators skipped,
 * then a run of digits or a run of anything else but separators. Sets
 * [*s, *s + *n) and whether it is a number; *n == 0 at the end.
 */
static void next_component(const char **p, const char *end, const char **s,
			   size_t *n, int *num)
{
	const char *q = *p;
	while (q < end && (*q == '.' || *q == '-'))
		q++;
	*s = q;
	*num = q < end && is_digit(*q);
	if (*num)
		while (q < end && is_digit(*q))
			q++;
	else
		while (q < end && *q != '.' && *q != '-' && !is_digit(*q))
			q++;
	*n = (size_t)(q - *s);
	*p = q;
}

/* Two digit runs by value, whatever their length. */
static int cmp_numbers(const char *a, size_t an, const char *b, size_t bn)
{
	while (an > 1 && *a == '0')
		a++, an--;
	while (bn > 1 && *b == '0')
		b++, bn--;
	if (an != bn)
		return an < bn ? -1 : 1;
	return memcmp(a, b, an);
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	int r = memcmp(a, b, an < bn ? an : bn);
	if (r)
		return r;
	return an < bn ? -1 : an > bn;
}

static int is_pre(const char *s, size_t n)
{
	return n == 3 && !memcmp(s, "pre", 3);
}

/*
 * One component against another, as Nix orders them: "pre" first, then
 * the empty component (the end of a version), then other strings
 * byte-wise, then numbers by value.
 */
static int cmp_components(const char *a, size_t an, int anum,
			  const char *b, size_t bn, int bnum)
{
	if (anum && bnum)
		return cmp_numbers(a, an, b, bn);
	if (anum || bnum)
		return anum ? 1 : -1;
	int apre = is_pre(a, an), bpre = is_pre(b, bn);
	if (apre || bpre)
		return bpre - apre;
	return cmp_bytes(a, an, b, bn);
}

static int cmp_versions_n(const char *a, size_t an, const char *b, size_t bn)
{
	const char *ae = a + an, *be = b + bn;
	while (a < ae || b < be) {
		const char *as, *bs;
		size_t al, bl;
		int anum, bnum;
		next_component(&a, ae, &as, &al, &anum);
		next_component(&b, be, &bs, &bl, &bnum);
		int r = cmp_components(as, al, anum, bs, bl, bnum);
		if (r)
			return r;
	}
	return 0;
}

int pkgdiff_compare_versions(const char *a, const char *b)
{
	return cmp_versions_n(a, strlen(a), b, strlen(b));
}

/* ---- computing ---- */

/* A path of one closure, split; spans point into the closure's strings. */
struct item {
	const char *path;
	const char *name, *ver;
	size_t name_len, ver_len;
	uint64_t size;
};

/* The paths of one name in a closure: items[first, first + nr). */
struct group {
	const struct item *items;
	size_t nr;
	uint64_t size;
};

static int cmp_item_path(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	return strcmp(a->path, b->path);
}

/* By name, then version in Nix's order, then version bytes, so that
 * equal versions are adjacent and the order is total. */
static int cmp_item_name_ver(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int r = cmp_bytes(a->name, a->name_len, b->name, b->name_len);
	if (!r)
		r = cmp_versions_n(a->ver, a->ver_len, b->ver, b->ver_len);
	if (!r)
		r = cmp_bytes(a->ver, a->ver_len, b->ver, b->ver_len);
	return r;
}

/*
 * The distinct paths of c, split, sorted by path; *size gets their total.
 * The caller frees the array (not the strings, which are c's).
 */
static struct item *unique_items(const struct pkgdiff_closure *c, size_t *nr,
				 uint64_t *size)
{
	struct item *it = xcalloc(c->nr, sizeof(*it));
	for (size_t i = 0; i < c->nr; i++) {
		it[i].path = c->items[i].path;
		it[i].size = c->items[i].nar_size;
	}
	qsort(it, c->nr, sizeof(*it), cmp_item_path);
	size_t n = 0;
	*size = 0;
	for (size_t i = 0; i < c->nr; i++) {
		if (n && !strcmp(it[n - 1].path, it[i].path))
			continue;
		it[n] = it[i];
		pkgdiff_split_name(it[n].path, &it[n].name, &it[n].name_len,
				   &it[n].ver, &it[n].ver_len);
		*size += it[n].size;
		n++;
	}
	*nr = n;
	return it;
}

/* Sorts items by name and version and cuts them into groups by name. */
static struct group *group_items(struct item *it, size_t nr, size_t *ngroups)
{
	qsort(it, nr, sizeof(*it), cmp_item_name_ver);
	struct group *g = xcalloc(nr, sizeof(*g));
	size_t n = 0;
	for (size_t i = 0; i < nr; i++) {
		if (!n || cmp_bytes(g[n - 1].items->name, g[n - 1].items->name_len,
				    it[i].name, it[i].name_len)) {
			g[n].items = &it[i];
			n++;
		}
		g[n - 1].nr++;
		g[n - 1].size += it[i].size;
	}
	*ngroups = n;
	return g;
}

static int same_version(const struct item *a, const struct item *b)
{
	return a->ver_len == b->ver_len && !memcmp(a->ver, b->ver, a->ver_len);
}

/* The distinct versions of g, in order, pushed onto v. */
static void push_versions(struct strvec *v, const struct group *g)
{
	for (size_t i = 0; i < g->nr; i++) {
		if (i && same_version(&g->items[i - 1], &g->items[i]))
			continue;
		char *s = xstrndup(g->items[i].ver, g->items[i].ver_len);
		strvec_push(v, s);
		free(s);
	}
}

static int same_version_sets(const struct strvec *a, const struct strvec *b)
{
	if (a->nr != b->nr)
		return 0;
	for (size_t i = 0; i < a->nr; i++)
		if (strcmp(a->v[i], b->v[i]))
			return 0;
	return 1;
}

/*
 * Whether a changed package goes up or down: compares the highest version
 * only in old with the highest only in new. Both vectors are sorted in the
 * same total order, so a merge finds what each side alone has.
 */
static enum pkgdiff_kind change_kind(const struct strvec *o,
				     const struct strvec *n)
{
	const char *lost = NULL, *gained = NULL;
	size_t i = 0, j = 0;
	while (i < o->nr || j < n->nr) {
		int r;
		if (i == o->nr)
			r = 1;
		else if (j == n->nr)
			r = -1;
		else {
			r = pkgdiff_compare_versions(o->v[i], n->v[j]);
			if (!r)
				r = strcmp(o->v[i], n->v[j]);
		}
		if (r < 0)
			lost = o->v[i++];
		else if (r > 0)
			gained = n->v[j++];
		else
			i++, j++;
	}
	if (!lost || !gained)
		return PKGDIFF_CHANGED;
	int r = pkgdiff_compare_versions(lost, gained);
	return r < 0 ? PKGDIFF_UPGRADE : r > 0 ? PKGDIFF_DOWNGRADE : PKGDIFF_CHANGED;
}

static struct pkgdiff_entry *push_entry(struct pkgdiff_entry **list,
					size_t *nr, size_t *alloc,
					const struct group *g)
{
	if (*nr == *alloc) {
		*alloc = *alloc ? 2 * *alloc : 16;
		*list = xrealloc(*list, *alloc * sizeof(**list));
	}
	struct pkgdiff_entry *en = &(*list)[(*nr)++];
	memset(en, 0, sizeof(*en));
	en->name = xstrndup(g->items->name, g->items->name_len);
	strvec_init(&en->old_versions);
	strvec_init(&en->new_versions);
	return en;
}

void pkgdiff_compute(struct pkgdiff *d, const struct pkgdiff_closure *old,
		     const struct pkgdiff_closure *new)
{
	size_t on, nn, og, ng;
	size_t changed_alloc = 0, added_alloc = 0, removed_alloc = 0;
	uint64_t osize, nsize;
	struct item *oi = unique_items(old, &on, &osize);
	struct item *ni = unique_items(new, &nn, &nsize);

	memset(d, 0, sizeof(*d));
	d->old_size = osize;
	d->new_size = nsize;
	d->old_paths = on;
	d->new_paths = nn;
	d->size_delta = (int64_t)d->new_size - (int64_t)d->old_size;

	/* Both are sorted by path: a merge counts what each alone has. */
	for (size_t i = 0, j = 0; i < on || j < nn;) {
		int r = i == on ? 1 : j == nn ? -1 : strcmp(oi[i].path, ni[j].path);
		if (r < 0)
			d->paths_removed++, i++;
		else if (r > 0)
			d->paths_added++, j++;
		else
			i++, j++;
	}

	struct group *ogr = group_items(oi, on, &og);
	struct group *ngr = group_items(ni, nn, &ng);
	for (size_t i = 0, j = 0; i < og || j < ng;) {
		int r;
		if (i == og)
			r = 1;
		else if (j == ng)
			r = -1;
		else
			r = cmp_bytes(ogr[i].items->name, ogr[i].items->name_len,
				      ngr[j].items->name, ngr[j].items->name_len);
		struct pkgdiff_entry *en;
		if (r < 0) {
			en = push_entry(&d->removed, &d->removed_nr,
					&removed_alloc, &ogr[i]);
			en->kind = PKGDIFF_REMOVED;
			push_versions(&en->old_versions, &ogr[i]);
			en->old_size = ogr[i].size;
			en->old_paths = ogr[i].nr;
			i++;
		} else if (r > 0) {
			en = push_entry(&d->added, &d->added_nr, &added_alloc,
					&ngr[j]);
			en->kind = PKGDIFF_ADDED;
			push_versions(&en->new_versions, &ngr[j]);
			en->new_size = ngr[j].size;
			en->new_paths = ngr[j].nr;
			j++;
		} else {
			struct strvec ov = STRVEC_INIT, nv = STRVEC_INIT;
			push_versions(&ov, &ogr[i]);
			push_versions(&nv, &ngr[j]);
			if (same_version_sets(&ov, &nv)) {
				strvec_clear(&ov);
				strvec_clear(&nv);
			} else {
				en = push_entry(&d->changed, &d->changed_nr,
						&changed_alloc, &ogr[i]);
				en->old_versions = ov;
				en->new_versions = nv;
				en->kind = change_kind(&ov, &nv);
				d->upgrades += en->kind == PKGDIFF_UPGRADE;
				d->downgrades += en->kind == PKGDIFF_DOWNGRADE;
				en->old_size = ogr[i].size;
				en->new_size = ngr[j].size;
				en->old_paths = ogr[i].nr;
				en->new_paths = ngr[j].nr;
			}
			i++, j++;
		}
	}
	free(ogr);
	free(ngr);
	free(oi);
	free(ni);
}

static void release_entries(struct pkgdiff_entry *list, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		free(list[i].name);
		strvec_clear(&list[i].old_versions);
		strvec_clear(&list[i].new_versions);
	}
	free(list);
}

void pkgdiff_release(struct pkgdiff *d)
{
	release_entries(d->changed, d->changed_nr);
	release_entries(d->added, d->added_nr);
	release_entries(d->removed, d->removed_nr);
	memset(d, 0, sizeof(*d));
}
