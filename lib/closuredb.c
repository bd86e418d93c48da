#include "closuredb.h"
#include "closure.h"
#include "narinfo.h"
#include "nix.h"
#include "run.h"
#include "rundir.h"
#include "scripts.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The next line of *p (without its newline) in *line, *len; 0 at the end. */
static int next_line(const char **p, const char **line, size_t *len)
{
	const char *nl;

	if (!**p)
		return 0;
	nl = strchr(*p, '\n');
	*line = *p;
	*len = nl ? (size_t)(nl - *p) : strlen(*p);
	*p = nl ? nl + 1 : *p + *len;
	return 1;
}

/* The next line as a number, or -1. */
static int next_number(const char **p, unsigned long long *v)
{
	const char *l;
	size_t len;
	return next_line(p, &l, &len) && !parse_decimal_u64(l, len, v) ? 0 : -1;
}

/* Resolves the references (text, from refoff[i] on in refpaths) to
 * indices. -1 if one is not in the dump. */
static int resolve(struct closuredb *db, const struct strvec *refpaths, const size_t *refoff)
{
	struct strindex in_db;
	int ret = 0;

	strindex_init(&in_db, (const char *const *)db->paths, db->n);
	db->refs = xcalloc(db->n + 1, sizeof(*db->refs));
	for (size_t i = 0; i < db->n && !ret; i++) {
		db->refs[i] = xcalloc(db->nrefs[i] + 1, sizeof(**db->refs));
		for (size_t k = 0; k < db->nrefs[i] && !ret; k++) {
			long at = strindex_find(&in_db, refpaths->v[refoff[i] + k]);
			if (at >= 0)
				db->refs[i][k] = (size_t)at;
			else
				ret = -1;
		}
	}
	strindex_release(&in_db);
	return ret;
}

int closuredb_parse(const char *text, struct closuredb *db)
{
	struct strvec refpaths = STRVEC_INIT;
	size_t *refoff = NULL, alloc = 0;
	const char *p = text, *l;
	size_t len;
	int ret = 0;

	memset(db, 0, sizeof(*db));
	while (!ret && next_line(&p, &l, &len)) {
		unsigned long long size, nrefs;
		const char *hash, *deriver;
		size_t hash_len, deriver_len;
		char *path = xstrndup(l, len);
		/* path, NAR hash, NAR size, deriver (or ""), references */
		if (!nix_store_path_valid(path) || !next_line(&p, &hash, &hash_len) ||
		    next_number(&p, &size) || !next_line(&p, &deriver, &deriver_len) ||
		    next_number(&p, &nrefs) || nrefs > 1000000) {
			free(path);
			ret = -1;
			break;
		}
		if (db->n == alloc) {
			alloc = alloc ? 2 * alloc : 64;
			db->paths = xrealloc(db->paths, alloc * sizeof(*db->paths));
			db->sizes = xrealloc(db->sizes, alloc * sizeof(*db->sizes));
			db->nrefs = xrealloc(db->nrefs, alloc * sizeof(*db->nrefs));
			db->hashes = xrealloc(db->hashes, alloc * sizeof(*db->hashes));
			db->derivers = xrealloc(db->derivers, alloc * sizeof(*db->derivers));
			refoff = xrealloc(refoff, alloc * sizeof(*refoff));
		}
		db->paths[db->n] = path;
		db->hashes[db->n] = xstrndup(hash, hash_len);
		db->derivers[db->n] = xstrndup(deriver, deriver_len);
		db->sizes[db->n] = size;
		db->nrefs[db->n] = (size_t)nrefs;
		refoff[db->n] = refpaths.nr;
		db->n++;
		for (unsigned long long k = 0; k < nrefs && !ret; k++) {
			if (next_line(&p, &l, &len))
				strvec_pushf(&refpaths, "%.*s", (int)len, l);
			else
				ret = -1;
		}
	}
	if (!ret && db->n)
		ret = resolve(db, &refpaths, refoff);
	if (ret)
		closuredb_release(db);
	strvec_clear(&refpaths);
	free(refoff);
	return ret;
}

static int by_index(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * The paths reachable from db's path top, each once, into picked in the
 * dump's order (dependencies first); returns how many. Those reached are
 * marked with stamp in seen[]: a caller that walks many tops gives each
 * its own stamp and keeps seen, so that each walk costs its closure, not
 * the dump. seen, stack and picked hold db->n each.
 */
static size_t reach(const struct closuredb *db, size_t top, size_t *seen, size_t stamp,
		    size_t *stack, size_t *picked)
{
	size_t sp = 0, count = 0;

	seen[top] = stamp;
	stack[sp++] = top;
	while (sp) {
		size_t at = stack[--sp];
		picked[count++] = at;
		for (size_t k = 0; k < db->nrefs[at]; k++) {
			size_t r = db->refs[at][k];
			if (seen[r] != stamp) {
				seen[r] = stamp;
				stack[sp++] = r;
			}
		}
	}
	qsort(picked, count, sizeof(*picked), by_index);
	return count;
}

int closuredb_select(const struct closuredb *db, const char *top, struct strvec *closure,
		     unsigned long long **sizes)
{
	size_t t = db->n;

	for (size_t i = 0; i < db->n && t == db->n; i++)
		if (!strcmp(db->paths[i], top))
			t = i;
	if (t == db->n)
		return -1;
	size_t *seen = xcalloc(db->n + 1, sizeof(*seen));
	size_t *stack = xcalloc(db->n + 1, sizeof(*stack));
	size_t *picked = xcalloc(db->n + 1, sizeof(*picked));
	size_t count = reach(db, t, seen, 1, stack, picked);
	*sizes = xcalloc(count + 1, sizeof(**sizes));
	for (size_t k = 0; k < count; k++) {
		strvec_push(closure, db->paths[picked[k]]);
		(*sizes)[k] = db->sizes[picked[k]];
	}
	free(seen);
	free(stack);
	free(picked);
	return 0;
}

void closuredb_release(struct closuredb *db)
{
	for (size_t i = 0; i < db->n; i++) {
		free(db->paths[i]);
		free(db->hashes[i]);
		free(db->derivers[i]);
		if (db->refs)
			free(db->refs[i]);
	}
	free(db->paths);
	free(db->hashes);
	free(db->derivers);
	free(db->sizes);
	free(db->nrefs);
	free(db->refs);
	memset(db, 0, sizeof(*db));
}

/* The registration of the paths of all (a closure) on h, into out. */
static int dump_paths(const struct host *h, const struct strvec *all, struct strbuf *out,
		      struct nrr_err *e)
{
	size_t len = 0;
	int st, ret = 0;

	for (size_t i = 0; i < all->nr; i++)
		len += strlen(all->v[i]) + 1;
	if (!h->ssh && len < 512 * 1024) {
		/* here, and short enough for one command line: without the
		 * script's shell and xargs */
		struct strvec argv = STRVEC_INIT;
		strvec_pushl(&argv, "nix-store", "--dump-db", NULL);
		strvec_pushvec(&argv, all);
		if ((st = nix_capture(&argv, out, NULL)) < 0)
			ret = nrr_fail(e, NRR_EFAIL, "cannot start nix-store here");
		strvec_clear(&argv);
	} else {
		struct strbuf in = STRBUF_INIT;
		const char *noargs[] = { NULL };
		for (size_t i = 0; i < all->nr; i++)
			strbuf_addf(&in, "%s\n", all->v[i]);
		if ((st = host_run(h, NULL, "dump", script_dumpdb, noargs, in.buf, in.len, out,
				   NULL, -1, e)) < 0)
			ret = e->status;
		strbuf_release(&in);
	}
	if (!ret && st)
		ret = nrr_fail(e, NRR_EFAIL, "cannot read the store's registration of %zu paths on '%s'",
			       all->nr, h->name);
	return ret;
}


int closuredb_load(const struct host *h, const struct strvec *closure, struct closuredb *db,
		   struct nrr_err *e)
{
	struct strbuf dump = STRBUF_INIT;
	int ret = dump_paths(h, closure, &dump, e);

	if (!ret && closuredb_parse(dump.buf ? dump.buf : "", db))
		ret = nrr_fail(e, NRR_EFAIL, "nix-store --dump-db on '%s' gave no registration of the closure",
			       h->name);
	strbuf_release(&dump);
	return ret;
}

/* 1 if the store can tell tops' closures: no derivation among them. */
static int dumpable(const struct strvec *tops)
{
	for (size_t i = 0; i < tops->nr; i++) {
		size_t len = strlen(tops->v[i]);
		if (len > 4 && !strcmp(tops->v[i] + len - 4, ".drv"))
			return 0;
	}
	return 1;
}

char *closuredb_reserve(void)
{
	return rundir_make("nrr-closures", 0);
}

char *closuredb_file(const char *dir, size_t i)
{
	return xstrfmt("%s/%zu", dir, i);
}

void closuredb_remove(const char *dir, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *file = closuredb_file(dir, i);
		unlink(file);
		free(file);
	}
	rmdir(dir);
}

int closuredb_load_here(const struct strvec *tops, const struct strvec *closure,
			struct closuredb *db)
{
	/* this machine: no ssh, so no ssh context */
	struct host local = { "localhost", NULL, NULL };
	struct strvec all = STRVEC_INIT;
	struct nrr_err ignored = { 0 };
	int ret = -1;

	memset(db, 0, sizeof(*db));
	if (!closure && dumpable(tops) && !closure_of_all(&local, tops, &all, &ignored))
		closure = &all;
	if (closure && !closuredb_load(&local, closure, db, &ignored))
		ret = 0;
	strvec_clear(&all);
	return ret;
}

/* Appends the registration of db's path i to out, as --dump-db writes it. */
static void add_entry(const struct closuredb *db, size_t i, struct strbuf *out)
{
	strbuf_addf(out, "%s\n%s\n%llu\n%s\n%zu\n", db->paths[i], db->hashes[i], db->sizes[i],
		    db->derivers[i], db->nrefs[i]);
	for (size_t k = 0; k < db->nrefs[i]; k++)
		strbuf_addf(out, "%s\n", db->paths[db->refs[i][k]]);
}

/* A new file (dir is ours, 0700) holding out. 0 or -1. */
static int write_new(const char *file, const struct strbuf *out)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int ret = fd < 0 ? -1 : fd_write_all(fd, out->buf ? out->buf : "", out->len);

	if (fd >= 0 && close(fd))
		ret = -1;
	return ret;
}

/* Each top's walk has its own stamp (reach): the cost is each closure's,
 * not the fleet's, per host. */
int closuredb_split(const struct closuredb *db, const char *dir, const char *const *tops,
		    size_t n)
{
	struct strindex in_db;
	size_t *seen = xcalloc(db->n + 1, sizeof(*seen));
	size_t *stack = xcalloc(db->n + 1, sizeof(*stack));
	size_t *picked = xcalloc(db->n + 1, sizeof(*picked));
	struct strbuf out = STRBUF_INIT;
	int ret = 0;

	strindex_init(&in_db, (const char *const *)db->paths, db->n);
	for (size_t i = 0; i < n && !ret; i++) {
		long t = tops[i] ? strindex_find(&in_db, tops[i]) : -1;
		if (t < 0)
			continue;	/* its child asks the store */
		size_t count = reach(db, (size_t)t, seen, i + 1, stack, picked);
		strbuf_reset(&out);
		for (size_t k = 0; k < count; k++)
			add_entry(db, picked[k], &out);
		char *file = closuredb_file(dir, i);
		ret = write_new(file, &out);
		free(file);
	}
	strindex_release(&in_db);
	strbuf_release(&out);
	free(seen);
	free(stack);
	free(picked);
	return ret;
}

int closuredb_read(const char *file, struct closuredb *db)
{
	struct strbuf text = STRBUF_INIT;
	int ret = -1;

	memset(db, 0, sizeof(*db));
	if (!strbuf_read_file(&text, file))
		ret = closuredb_parse(text.buf ? text.buf : "", db);
	strbuf_release(&text);
	return ret;
}

int closuredb_export_list(const struct closuredb *db, const struct strvec *paths,
			  struct narexport_path **out)
{
	struct strindex in_db;
	struct narexport_path *list = xcalloc(paths->nr + 1, sizeof(*list));
	size_t i;

	strindex_init(&in_db, (const char *const *)db->paths, db->n);
	for (i = 0; i < paths->nr; i++) {
		long at = strindex_find(&in_db, paths->v[i]);
		if (at < 0 || !narexport_hash_usable(db->hashes[at]))
			break;
		const char **refs = xcalloc(db->nrefs[at] + 1, sizeof(*refs));
		for (size_t k = 0; k < db->nrefs[at]; k++)
			refs[k] = db->paths[db->refs[at][k]];
		list[i] = (struct narexport_path){ paths->v[i], db->hashes[at], db->sizes[at],
						   db->derivers[at], db->nrefs[at], refs };
	}
	strindex_release(&in_db);
	if (i < paths->nr) {
		closuredb_export_free(list, i);
		*out = NULL;
		return -1;
	}
	*out = list;
	return 0;
}

void closuredb_export_free(struct narexport_path *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free((void *)list[i].refs);
	free(list);
}
