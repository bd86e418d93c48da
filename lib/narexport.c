#define _GNU_SOURCE
#include "narexport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIECE (64 * 1024)
/* store trees are shallow; a deeper one is refused, not a stack overflow */
#define MAX_DEPTH 256

struct out {
	narexport_sink sink;
	narexport_file_sink file_sink;
	void *ctx;
	int (*stop)(void);
	size_t len;
	unsigned long long bytes;
	/* the NAR being written: its size so far; when limited, the path
	 * whose registered size it must not pass (nothing past it is sent) */
	int in_nar;
	unsigned long long nar_size;
	const struct narexport_path *limited;
	int failed, mismatched;
	char *why;
	size_t whylen;
	unsigned char buf[PIECE];	/* last: never zeroed (see write_nar) */
};

static int fail(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->failed)
		return -1;
	o->failed = 1;
	va_start(ap, fmt);
	vsnprintf(o->why, o->whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* The NAR differs from its registration: fails, and says so. */
static int differs(struct out *o, const char *path)
{
	if (!o->failed)
		o->mismatched = 1;
	return fail(o, "'%s' does not match the store's registration of it "
		    "(its NAR's size differs)", path);
}

static int flush(struct out *o)
{
	if (o->failed)
		return -1;
	/* nar_size never passes a NAR's true size: past the registered one,
	 * this NAR is not the registered one, and its receiver, which reads
	 * exactly that many bytes, must not get them all */
	if (o->limited && o->nar_size > o->limited->nar_size)
		return differs(o, o->limited->path);
	if (o->stop && o->stop())
		return fail(o, "interrupted");
	if (o->len && o->sink(o->ctx, o->buf, o->len))
		return fail(o, "the receiving end went away");
	o->bytes += o->len;
	o->len = 0;
	return 0;
}

static int put(struct out *o, const void *data, size_t n)
{
	const unsigned char *p = data;

	if (o->in_nar)
		o->nar_size += n;
	while (n && !o->failed) {
		size_t k = PIECE - o->len < n ? PIECE - o->len : n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
		if (o->len == PIECE)
			flush(o);
	}
	return o->failed ? -1 : 0;
}

static int put_u64(struct out *o, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	return put(o, b, 8);
}

static int put_pad(struct out *o, uint64_t len)
{
	static const unsigned char zeros[8];
	return len % 8 ? put(o, zeros, 8 - len % 8) : 0;
}

static int put_bytes(struct out *o, const char *s, size_t n)
{
	if (put_u64(o, n) || put(o, s, n))
		return -1;
	return put_pad(o, n);
}

static int put_str(struct out *o, const char *s)
{
	return put_bytes(o, s, strlen(s));
}

/* The words of a NAR, in order. */
static int put_strs(struct out *o, const char *const *words)
{
	for (; *words; words++)
		if (put_str(o, *words))
			return -1;
	return 0;
}

/* A regular file's node: its contents as they are read, which must be
 * st_size bytes (a file that changes while it is read fails). They are
 * read straight into the buffer that goes out, not copied there. */
static int put_file(struct out *o, const char *path, const struct stat *st)
{
	const char *head[] = { "(", "type", "regular", NULL };
	const char *exec[] = { "executable", "", NULL };
	unsigned long long left = (unsigned long long)st->st_size;
	int fd, ret = 0;

	if (put_strs(o, head) || ((st->st_mode & S_IXUSR) && put_strs(o, exec)) ||
	    put_str(o, "contents") || put_u64(o, left))
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return fail(o, "cannot read '%s': %s", path, strerror(errno));
	if (o->file_sink && left >= PIECE) {
		/* what is before it goes first; past the registered size,
		 * none of it goes */
		int r = flush(o);
		if (!r && o->in_nar && o->limited &&
		    o->nar_size + left > o->limited->nar_size)
			r = differs(o, o->limited->path);
		if (!r && !(r = o->file_sink(o->ctx, fd, left))) {
			if (o->in_nar)
				o->nar_size += left;
			o->bytes += left;
			left = 0;
		} else if (r < 0) {
			ret = r == NAREXPORT_SHORT
				? fail(o, "cannot read '%s': it is shorter than it was", path)
				: fail(o, "the receiving end went away");
		}
		/* 1: through the buffer after all */
	}
	while (left && !ret) {
		if (o->len == PIECE && (ret = flush(o)))
			break;
		size_t room = PIECE - o->len;
		ssize_t r = read(fd, o->buf + o->len, left < room ? (size_t)left : room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = fail(o, "cannot read '%s': %s", path,
				   r < 0 ? strerror(errno) : "it is shorter than it was");
		} else {
			o->len += (size_t)r;
			if (o->in_nar)
				o->nar_size += (unsigned long long)r;
			left -= (unsigned long long)r;
		}
	}
	close(fd);
	if (ret || put_pad(o, (uint64_t)st->st_size))
		return -1;
	return put_str(o, ")");
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's entries, sorted bytewise (as Nix's std::map keeps them),
 * into *names (malloc'ed, each too); their count, or -1. */
static ssize_t read_names(struct out *o, const char *path, char ***names)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0, alloc = 0;

	*names = NULL;
	if (!d)
		return fail(o, "cannot read '%s': %s", path, strerror(errno));
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 16;
			char **grown = realloc(*names, alloc * sizeof(**names));
			if (!grown)
				break;
			*names = grown;
		}
		if (!((*names)[n] = strdup(de->d_name)))
			break;
		n++;
		errno = 0;
	}
	int err = errno;
	closedir(d);
	if (err) {
		for (size_t i = 0; i < n; i++)
			free((*names)[i]);
		free(*names);
		*names = NULL;
		return fail(o, "cannot read '%s': %s", path, strerror(err));
	}
	if (n > 1)
		qsort(*names, n, sizeof(**names), by_name);
	return (ssize_t)n;
}

static int put_node(struct out *o, const char *path, int depth);

static int put_dir(struct out *o, const char *path, int depth)
{
	const char *head[] = { "(", "type", "directory", NULL };
	const char *entry[] = { "entry", "(", "name", NULL };
	char **names;
	ssize_t n;
	int ret = 0;

	if (put_strs(o, head) || (n = read_names(o, path, &names)) < 0)
		return -1;
	for (ssize_t i = 0; i < n; i++) {
		if (!ret) {
			char *sub = NULL;
			if (asprintf(&sub, "%s/%s", path, names[i]) < 0)
				ret = fail(o, "out of memory");
			else if (put_strs(o, entry) || put_str(o, names[i]) ||
				 put_str(o, "node") || put_node(o, sub, depth + 1) ||
				 put_str(o, ")"))
				ret = -1;
			free(sub);
		}
		free(names[i]);
	}
	free(names);
	return ret ? -1 : put_str(o, ")");
}

static int put_node(struct out *o, const char *path, int depth)
{
	struct stat st;

	if (depth > MAX_DEPTH)
		return fail(o, "'%s' is nested deeper than %d directories", path, MAX_DEPTH);
	if (lstat(path, &st))
		return fail(o, "cannot read '%s': %s", path, strerror(errno));
	if (S_ISREG(st.st_mode))
		return put_file(o, path, &st);
	if (S_ISDIR(st.st_mode))
		return put_dir(o, path, depth);
	if (S_ISLNK(st.st_mode)) {
		const char *head[] = { "(", "type", "symlink", "target", NULL };
		char target[PATH_MAX];
		ssize_t len = readlink(path, target, sizeof(target));
		if (len < 0 || (size_t)len >= sizeof(target))
			return fail(o, "cannot read the link '%s': %s", path,
				    len < 0 ? strerror(errno) : "too long");
		if (put_strs(o, head) || put_bytes(o, target, (size_t)len))
			return -1;
		return put_str(o, ")");
	}
	return fail(o, "'%s' is not a file, a directory or a symlink", path);
}

static int put_nar(struct out *o, const char *path)
{
	return put_str(o, "nix-archive-1") || put_node(o, path, 0) ? -1 : 0;
}

int narexport_hash_usable(const char *hash)
{
	return strlen(hash) == 64 && strspn(hash, "0123456789abcdef") == 64;
}

/* Writes p's NAR, never more of it than its registered size: 0, or
 * NAREXPORT_MISMATCH when it is longer or shorter (what was held back
 * then is not sent), or -1. Its hash is the receiver's to check. */
static int put_sized_nar(struct out *o, const struct narexport_path *p)
{
	o->in_nar = 1;
	o->nar_size = 0;
	o->limited = p;
	int ret = put_nar(o, p->path);
	if (!ret && o->nar_size != p->nar_size)
		ret = differs(o, p->path);
	if (!ret)
		ret = flush(o);
	o->in_nar = 0;
	o->limited = NULL;
	return o->mismatched ? NAREXPORT_MISMATCH : ret;
}

/* One NAR: path's, its size checked against p's registration when p is
 * set. */
static int write_nar(const char *path, const struct narexport_path *p, narexport_sink sink,
		     narexport_file_sink file_sink, void *ctx, int (*stop)(void),
		     unsigned long long *bytes, char *why, size_t whylen)
{
	/* its buffer is written before it is read: zeroing 64 KiB for each
	 * path of every host's closure was a tenth of a fleet host's copy */
	struct out *o = malloc(sizeof(*o));
	int ret;

	if (bytes)
		*bytes = 0;
	if (!o) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	memset(o, 0, offsetof(struct out, buf));
	o->sink = sink;
	o->file_sink = file_sink;
	o->ctx = ctx;
	o->stop = stop;
	o->why = why;
	o->whylen = whylen;
	ret = p ? put_sized_nar(o, p) : put_nar(o, path);
	if (!ret)
		ret = flush(o);
	if (bytes)
		*bytes = o->bytes;
	free(o);
	return ret;
}

int narexport_nar(const struct narexport_path *p, narexport_sink sink, void *ctx,
		  int (*stop)(void), unsigned long long *bytes, char *why, size_t whylen)
{
	return write_nar(p->path, p, sink, NULL, ctx, stop, bytes, why, whylen);
}

int narexport_nar_files(const struct narexport_path *p, narexport_sink sink,
			narexport_file_sink file_sink, void *ctx, int (*stop)(void),
			unsigned long long *bytes, char *why, size_t whylen)
{
	return write_nar(p->path, p, sink, file_sink, ctx, stop, bytes, why, whylen);
}

int narexport_dump(const char *path, narexport_sink sink, void *ctx,
		   char *why, size_t whylen)
{
	return write_nar(path, NULL, sink, NULL, ctx, NULL, NULL, why, whylen);
}
