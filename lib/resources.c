/*
 * resources: see resources.h.
 */
#define _GNU_SOURCE
#include <glob.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "resources.h"

/* How many fds this process has open now (Linux; else a guess). */
static size_t fds_open(void)
{
	size_t n;
	glob_t g;
	if (glob("/proc/self/fd/*", 0, NULL, &g))
		return 16;
	n = g.gl_pathc;
	globfree(&g);
	return n;
}

size_t openfiles_fit(size_t want, size_t per, const char *what,
		     struct strvec *warnings)
{
	struct rlimit rl;
	size_t reserve = fds_open() + 8;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= reserve + want * per)
		return want;
	size_t fit = rl.rlim_cur > reserve + per ? (size_t)(rl.rlim_cur - reserve) / per : 1;
	strvec_pushf(warnings, "%zu %s in flight need %zu open files, and this system allows "
		     "%llu (ulimit -n): at most %zu were in flight at once; raise the hard "
		     "limit (ulimit -Hn, limits.conf) for more", want, what, reserve + want * per,
		     (unsigned long long)rl.rlim_cur, fit);
	return fit;
}

unsigned long long mem_available(void)
{
	unsigned long long kb = 0;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

void secrets_held(void)
{
	struct rlimit none = { 0, 0 };
	setrlimit(RLIMIT_CORE, &none);
#ifdef __linux__
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

size_t handshakes_max(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return cores < 1 ? 8 : cores > 8 ? 64 : 8 * (size_t)cores;
}
