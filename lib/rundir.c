#include "rundir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

/* 1 if dir may hold a run's private files: an absolute path to a
 * directory (not a link) of this uid, closed to group and others. */
static int is_private(const char *dir)
{
	struct stat st;

	return dir && dir[0] == '/' && !lstat(dir, &st) && S_ISDIR(st.st_mode) &&
	       st.st_uid == geteuid() && !(st.st_mode & 077);
}

/* mkdtemp of base/prefix.XXXXXX: its path, or NULL (errno set). */
static char *make_in(const char *base, const char *prefix)
{
	char *dir = xstrfmt("%s/%s.XXXXXX", base, prefix);

	if (mkdtemp(dir))
		return dir;
	int err = errno;
	free(dir);
	errno = err;
	return NULL;
}

char *rundir_make(const char *prefix, size_t max_base)
{
	const char *bases[2] = { getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR") };
	char *dir;

	if (!is_private(bases[0]))
		bases[0] = NULL;	/* not the user's own: the spec's promise fails */
	for (int i = 0; i < 2; i++)
		if (bases[i] && *bases[i] && (!max_base || strlen(bases[i]) <= max_base) &&
		    (dir = make_in(bases[i], prefix)))
			return dir;
	return make_in("/tmp", prefix);
}
