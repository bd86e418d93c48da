#include "diffshow.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Past this width a column stops setting the alignment of the others. */
#define COL_MAX 40

/* ---- text ---- */

void diffshow_size(struct strbuf *out, int64_t n, int sign)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	uint64_t mag = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
	const char *s = !sign || !n ? "" : n < 0 ? "-" : "+";

	if (mag < 1024) {
		strbuf_addf(out, "%s%" PRIu64 " B", s, mag);
		return;
	}
	double v = (double)mag / 1024;
	size_t u = 0;
	/* 1023.96 KiB would print as "1024.0 KiB": step up instead */
	while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(*units)) {
		v /= 1024;
		u++;
	}
	strbuf_addf(out, "%s%.1f %s", s, v, units[u]);
}

static void join_versions(struct strbuf *sb, const struct strvec *v)
{
	for (size_t i = 0; i < v->nr; i++) {
		if (i)
			strbuf_addstr(sb, ", ");
		strbuf_addstr(sb, *v->v[i] ? v->v[i] : "(none)");
	}
}

/* A line's text before alignment. */
struct row {
	const struct pkgdiff_entry *en;
	struct strbuf vers, delta;
};

static const char *mark_of(enum pkgdiff_kind k)
{
	switch (k) {
	case PKGDIFF_ADDED: return "+";
	case PKGDIFF_REMOVED: return "-";
	case PKGDIFF_UPGRADE: return ">";
	case PKGDIFF_DOWNGRADE: return "<";
	case PKGDIFF_CHANGED: break;
	}
	return "~";
}

static const char *colour_of(enum pkgdiff_kind k)
{
	switch (k) {
	case PKGDIFF_ADDED: return "\033[32m";      /* green */
	case PKGDIFF_REMOVED: return "\033[31m";    /* red */
	case PKGDIFF_UPGRADE: return "\033[36m";    /* cyan */
	case PKGDIFF_DOWNGRADE: return "\033[33m";  /* yellow */
	case PKGDIFF_CHANGED: break;
	}
	return "\033[35m";                          /* magenta */
}

static void pad(struct strbuf *out, size_t have, size_t want)
{
	for (; have < want; have++)
		strbuf_addch(out, ' ');
}

static void fill_row(struct row *r, const struct pkgdiff_entry *en,
		     int sizes)
{
	r->en = en;
	strbuf_init(&r->vers);
	strbuf_init(&r->delta);
	if (en->kind == PKGDIFF_ADDED) {
		join_versions(&r->vers, &en->new_versions);
	} else if (en->kind == PKGDIFF_REMOVED) {
		join_versions(&r->vers, &en->old_versions);
	} else {
		join_versions(&r->vers, &en->old_versions);
		strbuf_addstr(&r->vers, " -> ");
		join_versions(&r->vers, &en->new_versions);
	}
	if (sizes)
		diffshow_size(&r->delta,
				    (int64_t)en->new_size - (int64_t)en->old_size, 1);
}

void diffshow_format(struct strbuf *out, const struct pkgdiff *d,
		    unsigned flags)
{
	const struct {
		const char *title;
		const struct pkgdiff_entry *list;
		size_t nr;
	} sections[] = {
		{ "Changed:", d->changed, d->changed_nr },
		{ "Added:", d->added, d->added_nr },
		{ "Removed:", d->removed, d->removed_nr },
	};
	int colour = flags & DIFFSHOW_COLOR;
	int sizes = d->old_size || d->new_size;
	size_t nrows = d->changed_nr + d->added_nr + d->removed_nr;
	struct row *rows = xcalloc(nrows, sizeof(*rows));
	size_t name_w = 0, vers_w = 0, delta_w = 0, k = 0;

	for (size_t s = 0; s < 3; s++)
		for (size_t i = 0; i < sections[s].nr; i++) {
			struct row *r = &rows[k++];
			fill_row(r, &sections[s].list[i], sizes);
			size_t nl = strlen(r->en->name);
			if (nl <= COL_MAX && nl > name_w)
				name_w = nl;
			if (r->vers.len <= COL_MAX && r->vers.len > vers_w)
				vers_w = r->vers.len;
			if (r->delta.len > delta_w)
				delta_w = r->delta.len;
		}

	if (!nrows)
		strbuf_addstr(out, "No package versions changed.\n");
	k = 0;
	for (size_t s = 0; s < 3; s++) {
		if (!sections[s].nr)
			continue;
		strbuf_addf(out, "%s\n", sections[s].title);
		for (size_t i = 0; i < sections[s].nr; i++) {
			struct row *r = &rows[k++];
			const char *name = r->en->name;
			strbuf_addstr(out, "  ");
			if (colour)
				strbuf_addf(out, "%s%s %s\033[m",
					    colour_of(r->en->kind),
					    mark_of(r->en->kind), name);
			else
				strbuf_addf(out, "%s %s", mark_of(r->en->kind),
					    name);
			pad(out, strlen(name), name_w);
			strbuf_addstr(out, "  ");
			strbuf_add(out, r->vers.buf, r->vers.len);
			if (sizes) {
				pad(out, r->vers.len, vers_w);
				strbuf_addstr(out, "  ");
				pad(out, r->delta.len, delta_w);
				strbuf_add(out, r->delta.buf, r->delta.len);
			}
			strbuf_addch(out, '\n');
		}
	}

	strbuf_addf(out, "Closure: %zu -> %zu paths (+%zu, -%zu)",
		    d->old_paths, d->new_paths, d->paths_added,
		    d->paths_removed);
	if (sizes) {
		strbuf_addstr(out, ", ");
		diffshow_size(out, (int64_t)d->old_size, 0);
		strbuf_addstr(out, " -> ");
		diffshow_size(out, (int64_t)d->new_size, 0);
		strbuf_addstr(out, " (");
		diffshow_size(out, d->size_delta, 1);
		strbuf_addch(out, ')');
	}
	strbuf_addch(out, '\n');

	for (size_t i = 0; i < nrows; i++) {
		strbuf_release(&rows[i].vers);
		strbuf_release(&rows[i].delta);
	}
	free(rows);
}

/* ---- JSON ---- */

static const char *kind_name(enum pkgdiff_kind k)
{
	switch (k) {
	case PKGDIFF_ADDED: return "added";
	case PKGDIFF_REMOVED: return "removed";
	case PKGDIFF_UPGRADE: return "upgrade";
	case PKGDIFF_DOWNGRADE: return "downgrade";
	case PKGDIFF_CHANGED: break;
	}
	return "changed";
}

static cJSON *json_strings(const struct strvec *v)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < v->nr; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v->v[i]));
	return a;
}

static cJSON *json_entries(const struct pkgdiff_entry *list, size_t nr)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < nr; i++) {
		const struct pkgdiff_entry *en = &list[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", en->name);
		cJSON_AddStringToObject(o, "kind", kind_name(en->kind));
		cJSON_AddItemToObject(o, "oldVersions",
				      json_strings(&en->old_versions));
		cJSON_AddItemToObject(o, "newVersions",
				      json_strings(&en->new_versions));
		cJSON_AddNumberToObject(o, "oldSize", (double)en->old_size);
		cJSON_AddNumberToObject(o, "newSize", (double)en->new_size);
		cJSON_AddNumberToObject(o, "sizeDelta",
					(double)en->new_size - (double)en->old_size);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

struct cJSON *diffshow_json(const struct pkgdiff *d)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "changed", json_entries(d->changed, d->changed_nr));
	cJSON_AddItemToObject(o, "added", json_entries(d->added, d->added_nr));
	cJSON_AddItemToObject(o, "removed", json_entries(d->removed, d->removed_nr));
	cJSON *c = cJSON_CreateObject();
	cJSON_AddNumberToObject(c, "oldPaths", (double)d->old_paths);
	cJSON_AddNumberToObject(c, "newPaths", (double)d->new_paths);
	cJSON_AddNumberToObject(c, "pathsAdded", (double)d->paths_added);
	cJSON_AddNumberToObject(c, "pathsRemoved", (double)d->paths_removed);
	cJSON_AddNumberToObject(c, "oldSize", (double)d->old_size);
	cJSON_AddNumberToObject(c, "newSize", (double)d->new_size);
	cJSON_AddNumberToObject(c, "sizeDelta", (double)d->size_delta);
	cJSON_AddItemToObject(o, "closure", c);
	return o;
}
