#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachedir.h"
#include "pump.h"
#include "strbuf.h"

char *cachedir_path(const char *sub)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg == '/')
		return xstrfmt("%s/nixos-rebuild-remote/%s", xdg, sub);
	if (home && *home == '/')
		return xstrfmt("%s/.cache/nixos-rebuild-remote/%s", home, sub);
	return NULL;
}

int cachedir_make(const char *path)
{
	char *p;
	int ret = 0;

	/* it is there but for the first run: one mkdir, not one a level (a
	 * fleet's every host puts an entry, and each mkdir is a lookup of
	 * every level) */
	if (!mkdir(path, 0700) || errno == EEXIST)
		return 0;
	p = xstrdup(path);
	for (char *s = p + 1; ret == 0; s++) {
		if (*s && *s != '/')
			continue;
		char end = *s;
		*s = '\0';
		if (mkdir(p, 0700) && errno != EEXIST)
			ret = -1;
		*s = end;
		if (!end)
			break;
	}
	free(p);
	return ret;
}

int cachedir_put(const char *path, const char *data, size_t len)
{
	char *tmp = xstrfmt("%s.tmp%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	int ok = 0;

	/* one write, not stdio's (whose fdopen asks the fd's flags and size
	 * first: a fleet's every host puts an entry) */
	if (fd >= 0) {
		ok = !fd_write_all(fd, data, len);
		ok = !close(fd) && ok;
	}
	if (!ok || rename(tmp, path)) {
		unlink(tmp);
		ok = 0;
	}
	free(tmp);
	return ok ? 0 : -1;
}
