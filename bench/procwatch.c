/*
 * procwatch: what every process of one program costs while a run lasts, for the fleet bench.
 *
 *   procwatch OUTFILE INTERVAL_MS EXE
 *
 * Every INTERVAL_MS, looks at each process of the machine whose /proc/PID/exe is EXE (the
 * tool: its parent and the one child per host that `--on` starts, which run /proc/self/exe)
 * and keeps, per process (pid and start time), its last CPU time (sum of its tasks'
 * schedstat, ns) while it runs EXE: a fork of the tool seen before it exec'ed ssh or nix
 * counts only up to the look that finds it running something else. At each look it sums, over those processes alive, their VmRSS, their Pss
 * (smaps_rollup: shared pages counted once across the processes) and their open file
 * descriptors, and keeps the peaks. On SIGTERM or SIGINT it writes one line of key=value:
 *   procs         processes of EXE seen in all
 *   peak_procs    most alive at one look
 *   cpu_s         their CPU time, summed (up to the last look before each one exited: at most
 *                 INTERVAL_MS of a process's last moments is missed)
 *   child_cpu_s   the part of it spent by those whose parent is one of them too (the tool's
 *                 per-host children, not the parent the bench measures exactly itself)
 *   peak_rss_kb   the largest sum of VmRSS at one look (shared pages counted in each)
 *   peak_pss_kb   the largest sum of Pss at one look (what they really held together)
 *   peak_fds      the largest sum of open descriptors at one look
 *   peak_fds_one  the most open descriptors one of them had
 *   looks         how many looks were made
 * Sampling, not tracing: it never stops the processes it watches.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Pids are classified once (by pid and start time): readlink is for new ones only. */
struct proc {
	int pid;
	unsigned long long start;
	int mine;		/* its exe is EXE */
	int seen;		/* alive at the last look */
	int ppid;		/* its parent, when first seen */
	int away;		/* seen as EXE, then exec'ed something else */
	unsigned long long cpu_ns;
};

static struct proc *procs;
static size_t nprocs, cap;
static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

/* /proc/PID/stat into buf; returns where field 3 begins (after the
 * command's ')', which may hold spaces), or NULL. */
static char *read_stat(int pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	return p ? p + 1 : NULL;
}

static unsigned long long start_time(int pid)
{
	char buf[2048];
	char *p = read_stat(pid, buf, sizeof(buf));
	if (!p)
		return 0;
	/* field 22 is the start time; p is where field 3's space-separated run begins */
	int field = 2;
	for (; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	return strtoull(p, NULL, 10);
}

/* Whether pid runs exe now. */
static int is_exe(int pid, const char *exe)
{
	char path[64], link[4096];
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = '\0';
	return n > 0 && !strcmp(link, exe);
}

/* The parent of pid (field 4 of /proc/PID/stat), or 0. */
static int parent_of(int pid)
{
	char buf[2048];
	char *p = read_stat(pid, buf, sizeof(buf));
	int ppid = 0;
	if (!p || sscanf(p, " %*c %d", &ppid) != 1)
		return 0;
	return ppid;
}

static struct proc *lookup(int pid, unsigned long long st, const char *exe)
{
	for (size_t i = 0; i < nprocs; i++)
		if (procs[i].pid == pid && procs[i].start == st)
			return &procs[i];
	if (nprocs == cap) {
		cap = cap ? 2 * cap : 1024;
		procs = realloc(procs, cap * sizeof(*procs));
		if (!procs) {
			perror("procwatch");
			exit(1);
		}
	}
	struct proc *p = &procs[nprocs++];
	*p = (struct proc){ .pid = pid, .start = st, .mine = is_exe(pid, exe),
			    .ppid = parent_of(pid) };
	return p;
}

static unsigned long long cpu_of(int pid)
{
	char path[96];
	unsigned long long sum = 0, ns;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[400];
		snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", pid, de->d_name);
		FILE *f = fopen(p, "r");
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				sum += ns;
			fclose(f);
		}
	}
	closedir(d);
	return sum;
}

/* The value in kB of the line KEY of a /proc file, or 0. */
static long kb_of(const char *path, const char *key)
{
	char line[256];
	long v = 0;
	size_t k = strlen(key);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, k)) {
			v = strtol(line + k, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int fds_of(int pid)
{
	char path[64];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: procwatch OUTFILE INTERVAL_MS EXE\n");
		return 2;
	}
	const char *out = argv[1], *exe = argv[3];
	long interval = strtol(argv[2], NULL, 10);
	if (interval < 1)
		interval = 20;
	struct sigaction act;
	memset(&act, 0, sizeof(act));
	act.sa_handler = on_stop;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);

	long peak_rss = 0, peak_pss = 0, looks = 0;
	int peak_fds = 0, peak_one = 0, peak_procs = 0;
	while (!stop) {
		DIR *d = opendir("/proc");
		if (!d)
			break;
		long rss = 0, pss = 0;
		int fds = 0, alive = 0;
		struct dirent *de;
		while ((de = readdir(d))) {
			int pid = atoi(de->d_name);
			if (pid <= 0 || pid == getpid())
				continue;
			unsigned long long st = start_time(pid);
			if (!st)
				continue;
			struct proc *p = lookup(pid, st, exe);
			if (!p->mine || p->away)
				continue;
			/* one of the tool's forks that has exec'ed ssh or nix since: its CPU
			 * from now on is theirs (the start time stays the same across exec) */
			if (!is_exe(pid, exe)) {
				p->away = 1;
				continue;
			}
			unsigned long long c = cpu_of(pid);
			if (c > p->cpu_ns)
				p->cpu_ns = c;
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/status", pid);
			rss += kb_of(path, "VmRSS:");
			snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
			pss += kb_of(path, "Pss:");
			int n = fds_of(pid);
			fds += n;
			if (n > peak_one)
				peak_one = n;
			alive++;
		}
		closedir(d);
		if (rss > peak_rss)
			peak_rss = rss;
		if (pss > peak_pss)
			peak_pss = pss;
		if (fds > peak_fds)
			peak_fds = fds;
		if (alive > peak_procs)
			peak_procs = alive;
		looks++;
		struct timespec ts = { interval / 1000, (interval % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	unsigned long long cpu = 0, child_cpu = 0;
	int mine = 0;
	for (size_t i = 0; i < nprocs; i++)
		if (procs[i].mine) {
			cpu += procs[i].cpu_ns;
			mine++;
			for (size_t k = 0; k < nprocs; k++)
				if (procs[k].mine && procs[k].pid == procs[i].ppid &&
				    procs[k].start <= procs[i].start) {
					child_cpu += procs[i].cpu_ns;
					break;
				}
		}
	FILE *f = fopen(out, "w");
	if (!f) {
		perror(out);
		return 1;
	}
	fprintf(f, "procs=%d peak_procs=%d cpu_s=%.4f child_cpu_s=%.4f peak_rss_kb=%ld "
		"peak_pss_kb=%ld peak_fds=%d peak_fds_one=%d looks=%ld\n", mine, peak_procs,
		(double)cpu / 1e9, (double)child_cpu / 1e9, peak_rss, peak_pss, peak_fds, peak_one,
		looks);
	fclose(f);
	free(procs);
	return 0;
}
