#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cachedir.h"
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
	char *p = xstrdup(path);
	int ret = 0;
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
