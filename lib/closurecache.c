#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachedir.h"
#include "closurecache.h"
#include "narinfo.h"
#include "strbuf.h"

#define HEADER "nrr-closure 1 "

int closurecache_parse(const char *text, const char *system, struct strvec *closure,
		       unsigned long long **sizes)
{
	struct strvec got = STRVEC_INIT;
	unsigned long long *sz = NULL;
	size_t cap = 0;
	const char *p = text, *nl = strchr(p, '\n');
	int has_system = 0, ret = -1;

	if (!nl || strncmp(p, HEADER, strlen(HEADER)) ||
	    (size_t)(nl - p) != strlen(HEADER) + strlen(system) ||
	    strncmp(p + strlen(HEADER), system, strlen(system)))
		return -1;
	for (p = nl + 1; *p; p = nl + 1) {
		const char *tab;
		unsigned long long size;
		if (!(nl = strchr(p, '\n')) || !(tab = memchr(p, '\t', (size_t)(nl - p))) ||
		    parse_decimal_u64(tab + 1, (size_t)(nl - tab - 1), &size))
			goto out;
		char *path = xstrndup(p, (size_t)(tab - p));
		if (!nix_store_path_valid(path)) {
			free(path);
			goto out;
		}
		has_system |= !strcmp(path, system);
		strvec_push(&got, path);
		free(path);
		if (got.nr > cap) {
			cap = cap ? 2 * cap : 64;
			sz = xrealloc(sz, cap * sizeof(*sz));
		}
		sz[got.nr - 1] = size;
	}
	/* a closure holds its root: anything else is not this system's */
	if (!has_system)
		goto out;
	strvec_pushvec(closure, &got);
	*sizes = sz;
	sz = NULL;
	ret = 0;
out:
	free(sz);
	strvec_clear(&got);
	return ret;
}

/* The entry's file for system, malloc'ed; NULL when there is none to have. */
static char *entry_path(const char *system)
{
	char *dir, *p;
	if (!nix_store_path_valid(system) || !(dir = cachedir_path("closures")))
		return NULL;
	p = xstrfmt("%s/%s", dir, strrchr(system, '/') + 1);
	free(dir);
	return p;
}

int closurecache_get(const char *system, struct strvec *closure,
		     unsigned long long **sizes)
{
	struct strbuf text = STRBUF_INIT;
	char *path = entry_path(system);
	int ret = -1;

	if (path && strbuf_read_file(&text, path) >= 0 &&
	    !(ret = closurecache_parse(text.buf, system, closure, sizes)))
		utimensat(AT_FDCWD, path, NULL, 0); /* used: kept longer */
	free(path);
	strbuf_release(&text);
	return ret;
}

int closurecache_has(const char *system)
{
	char *path = entry_path(system);
	int has = path && !access(path, F_OK);
	free(path);
	return has;
}

struct aged {
	char *name;
	struct timespec mtime;
};

static int older_first(const void *a, const void *b)
{
	const struct aged *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Removes the least recently used entries of dir beyond the newest keep,
 * once there are a quarter more: every deploy of a fleet's host puts an
 * entry, and a stat of each of hundreds of entries each time cost more
 * than the rest of the put. Counting them is one read of the directory. */
static void prune(const char *dir, size_t keep)
{
	DIR *d = opendir(dir);
	struct aged *all = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	struct stat st;

	if (!d)
		return;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	if (n <= keep + keep / 4) {
		closedir(d);
		return;
	}
	rewinddir(d);
	n = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			all = xrealloc(all, cap * sizeof(*all));
		}
		all[n].name = xstrdup(de->d_name);
		all[n++].mtime = st.st_mtim;
	}
	if (n > keep) {
		qsort(all, n, sizeof(*all), older_first);
		for (size_t i = 0; i < n - keep; i++)
			unlinkat(dirfd(d), all[i].name, 0);
	}
	for (size_t i = 0; i < n; i++)
		free(all[i].name);
	free(all);
	closedir(d);
}

void closurecache_put(const char *system, const char *const *closure,
		      const unsigned long long *sizes, size_t n)
{
	struct strbuf text = STRBUF_INIT;
	char *path = entry_path(system), *dir;

	if (!path)
		return;
	dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	strbuf_addf(&text, HEADER "%s\n", system);
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&text, "%s\t%llu\n", closure[i], sizes[i]);
	/* the count is looked at by one put in eight, those of the systems
	 * whose hash begins with 0-3 (4 of its 32 letters, as likely as any
	 * other): a read of the directory, a dozen entries and more a
	 * fleet, was half of each put, to find nothing to prune nearly
	 * always. The directory overshoots by a few entries at most, and is
	 * pruned back to the newest CLOSURECACHE_KEEP. */
	const char *hash = strrchr(path, '/') + 1;
	if (!cachedir_make(dir) && !cachedir_put(path, text.buf, text.len) &&
	    hash[0] >= '0' && hash[0] <= '3')
		prune(dir, CLOSURECACHE_KEEP);
	strbuf_release(&text);
	free(dir);
	free(path);
}
