/*
 * procwatch: what every process of one program costs while a run lasts, for the fleet bench.
 *
 *   procwatch OUTFILE INTERVAL_MS EXE ANCESTOR_PID
 *
 * Every INTERVAL_MS, walks the process tree under ANCESTOR_PID (the bench's shell, which
 * starts the run) through /proc/PID/task/TID/children, down to the processes whose
 * /proc/PID/exe is EXE (the tool: its parent and the one child per host that `--on` starts,
 * which run /proc/self/exe), and below those only through processes that run EXE too. It
 * keeps, per process (pid and start time), its last CPU time (sum of its tasks' schedstat,
 * ns) while it runs EXE: a fork of the tool seen before it exec'ed ssh or nix counts only up
 * to the look that finds it running something else. Every MEM_EVERY-th look it also sums,
 * over those processes alive, their VmRSS, their Pss (smaps_rollup: shared pages counted once
 * across the processes) and their open file descriptors, and keeps the peaks. On SIGTERM or
 * SIGINT, or once ANCESTOR_PID is gone, it writes one line of key=value:
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
 *   looks         how many looks were made (mem_looks: of them, with the memory)
 * Sampling, not tracing: it never stops the processes it watches.
 *
 * The walk (finding new processes) is every WALK_EVERY-th look and the memory every
 * MEM_EVERY-th; at every look, each of the tool's processes known alive costs two pread()s of
 * files kept open (its schedstat, and its comm, whose change tells an exec: then its exe is
 * read again). Why: a look at every process of the machine (a stat of each, 1,000 and more
 * with 200 fake hosts) and a Pss of every tool process 50 times a second cost 2 s of CPU in a
 * 28 s run of 200 hosts (perf), on the two cores the run is measured on: more than the tool
 * itself; opening /proc paths (each a lookup and a permission check) was most of what was
 * left. A process found 100 ms late loses nothing (schedstat is a total; the tool's
 * processes live for seconds), and the tool's memory is a plateau while its hosts are in
 * flight, which 200 ms catches.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define WALK_EVERY 5
#define MEM_EVERY 10

struct proc {
	int pid;
	unsigned long long start;
	int mine;		/* its exe is EXE */
	int ppid;		/* its parent, when first seen */
	int away;		/* seen as EXE, then exec'ed something else */
	long walk;		/* the last walk that saw it */
	unsigned long long cpu_ns;
	/* while it is the tool's and alive: its schedstat and comm, open (-1: not), the
	 * comm it had, and whether it has more than one task (then each is read) */
	int sched_fd, comm_fd;
	char comm[128];
	int threads;
};

static struct proc *procs;
static size_t nprocs, cap;
/* pid -> 1 + index in procs of the latest process with that pid (0: none) */
static size_t *by_pid;
static long pid_max;
static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		perror("procwatch");
		exit(1);
	}
	return p;
}

/* The start time (field 22) and parent (field 4) of pid; 0 if it is gone. */
static unsigned long long start_time(int pid, int *ppid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* after the command's ')', which may hold spaces, field 3 begins */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", ppid) != 1)
		return 0;
	int field = 2;
	for (p++; *p && field < 22; p++)
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

/* The process pid is now: the one known under it if the last walk saw it (so it is the same:
 * a walk sees every child, and pids do not come round again in 100 ms), else a new one,
 * classified. NULL if it is gone. */
static struct proc *lookup(int pid, const char *exe, long walk)
{
	if (pid <= 0 || pid > pid_max)
		return NULL;
	size_t i = by_pid[pid];
	if (i && procs[i - 1].walk >= walk - 1)
		return &procs[i - 1];
	int ppid = 0;
	unsigned long long st = start_time(pid, &ppid);
	if (!st)
		return NULL;
	if (nprocs == cap) {
		cap = cap ? 2 * cap : 1024;
		procs = xrealloc(procs, cap * sizeof(*procs));
	}
	struct proc *p = &procs[nprocs++];
	*p = (struct proc){ .pid = pid, .start = st, .mine = is_exe(pid, exe), .ppid = ppid,
			    .walk = walk, .sched_fd = -1, .comm_fd = -1 };
	by_pid[pid] = nprocs;
	return p;
}

/* Calls fn with /proc/PID/task/TID/NAME open, for each task of pid. */
static void each_task_file(int pid, const char *name, void (*fn)(FILE *f, void *data), void *data)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[400];
		snprintf(p, sizeof(p), "/proc/%d/task/%s/%s", pid, de->d_name, name);
		FILE *f = fopen(p, "r");
		if (f) {
			fn(f, data);
			fclose(f);
		}
	}
	closedir(d);
}

/* A task's schedstat: its CPU time (ns), added to *data. */
static void add_cpu(FILE *f, void *data)
{
	unsigned long long ns;
	if (fscanf(f, "%llu", &ns) == 1)
		*(unsigned long long *)data += ns;
}

static unsigned long long cpu_of(int pid)
{
	unsigned long long sum = 0;
	each_task_file(pid, "schedstat", add_cpu, &sum);
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

/* Where children_of puts the pids. */
struct kids {
	int *v;
	size_t n, size;
};

/* A task's children file: its pids, appended to the struct kids. */
static void add_kids(FILE *f, void *data)
{
	struct kids *k = data;
	int kid;
	while (fscanf(f, "%d", &kid) == 1) {
		if (k->n == k->size) {
			k->size = k->size ? 2 * k->size : 256;
			k->v = xrealloc(k->v, k->size * sizeof(*k->v));
		}
		k->v[k->n++] = kid;
	}
}

/* Appends the children of every task of pid to k. */
static void children_of(int pid, struct kids *k)
{
	each_task_file(pid, "children", add_kids, k);
}

struct sums {
	long rss, pss;
	int fds, alive, peak_one;
};

/* The tool's processes alive at the last look (indices in procs). */
static size_t *alive;
static size_t nalive, alive_cap;

static void keep_alive(size_t i)
{
	if (nalive == alive_cap) {
		alive_cap = alive_cap ? 2 * alive_cap : 256;
		alive = xrealloc(alive, alive_cap * sizeof(*alive));
	}
	alive[nalive++] = i;
}

/* pread of a /proc file kept open into buf (NUL-terminated); its length, or -1 (the
 * process is gone: the file is bound to it, not to its pid). */
static ssize_t reread(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? n : -1;
}

static void drop(struct proc *p)
{
	if (p->sched_fd >= 0)
		close(p->sched_fd);
	if (p->comm_fd >= 0)
		close(p->comm_fd);
	p->sched_fd = p->comm_fd = -1;
}

/* Opens p's files (the first look at it, in a walk). 0, or -1 if it is gone. */
static int hold(struct proc *p)
{
	char path[64], buf[128];
	snprintf(path, sizeof(path), "/proc/%d/schedstat", p->pid);
	p->sched_fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/comm", p->pid);
	p->comm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (p->sched_fd < 0 || p->comm_fd < 0 || reread(p->comm_fd, buf, sizeof(buf)) < 0) {
		drop(p);
		return -1;
	}
	memcpy(p->comm, buf, sizeof(p->comm));
	return 0;
}

/* Reads p's CPU (and memory when mem) if it still runs exe; 0 if it no longer does (it
 * exec'ed something else, or is gone). */
static int look_at(struct proc *p, const char *exe, int mem, struct sums *s)
{
	char buf[128];
	if (p->sched_fd < 0 && hold(p))
		return p->away = 1, 0;
	/* one of the tool's forks that has exec'ed ssh or nix since: its CPU from now on is
	 * theirs (the start time stays the same across exec). An exec changes the comm. */
	if (reread(p->comm_fd, buf, sizeof(buf)) < 0 ||
	    (strcmp(buf, p->comm) && !is_exe(p->pid, exe))) {
		drop(p);
		return p->away = 1, 0;
	}
	memcpy(p->comm, buf, sizeof(p->comm));
	unsigned long long c = 0;
	if (p->threads)
		c = cpu_of(p->pid);
	else if (reread(p->sched_fd, buf, sizeof(buf)) > 0)
		c = strtoull(buf, NULL, 10);
	if (c > p->cpu_ns)
		p->cpu_ns = c;
	s->alive++;
	if (mem) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/status", p->pid);
		s->rss += kb_of(path, "VmRSS:");
		p->threads = kb_of(path, "Threads:") > 1;
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", p->pid);
		s->pss += kb_of(path, "Pss:");
		int n = fds_of(p->pid);
		s->fds += n;
		if (n > s->peak_one)
			s->peak_one = n;
	}
	return 1;
}

/* A walk: the tree under root, each of the tool's processes looked at (with its memory). */
static void walk_tree(int root, const char *exe, long walk, int mem, struct sums *s)
{
	/* the walk's stack: pid, and whether it is under one of the tool's processes */
	static int *stack, *inside;
	static size_t size;
	struct kids kids = { NULL, 0, 0 };
	size_t top = 0;

	if (!size) {
		size = 1024;
		stack = xrealloc(NULL, size * sizeof(*stack));
		inside = xrealloc(NULL, size * sizeof(*inside));
	}
	nalive = 0;
	stack[top] = root;
	inside[top++] = 0;
	while (top) {
		int pid = stack[--top], in = inside[top];
		struct proc *p = lookup(pid, exe, walk);
		if (!p)
			continue;
		p->walk = walk;
		if (p->mine && !p->away) {
			if (!look_at(p, exe, mem, s))
				continue;
			keep_alive((size_t)(p - procs));
			in = 1;
		} else if (in || pid == getpid()) {
			/* below the tool, only its own processes lead on (not ssh's relays) */
			continue;
		}
		kids.n = 0;
		children_of(pid, &kids);
		for (size_t k = 0; k < kids.n; k++) {
			if (top == size) {
				size *= 2;
				stack = xrealloc(stack, size * sizeof(*stack));
				inside = xrealloc(inside, size * sizeof(*inside));
			}
			stack[top] = kids.v[k];
			inside[top++] = in;
		}
	}
	free(kids.v);
}

/* Between walks: the tool's processes alive at the last look. */
static void look_again(const char *exe, int mem, struct sums *s)
{
	size_t kept = 0;
	for (size_t k = 0; k < nalive; k++)
		if (look_at(&procs[alive[k]], exe, mem, s))
			alive[kept++] = alive[k];
	nalive = kept;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: procwatch OUTFILE INTERVAL_MS EXE ANCESTOR_PID\n");
		return 2;
	}
	const char *out = argv[1], *exe = argv[3];
	long interval = strtol(argv[2], NULL, 10);
	int root = atoi(argv[4]);
	if (interval < 1)
		interval = 20;
	FILE *pm = fopen("/proc/sys/kernel/pid_max", "r");
	if (!pm || fscanf(pm, "%ld", &pid_max) != 1 || pid_max < 1)
		pid_max = 4194304;
	if (pm)
		fclose(pm);
	by_pid = calloc((size_t)pid_max + 1, sizeof(*by_pid));
	if (!by_pid) {
		perror("procwatch");
		return 1;
	}
	/* two files held open per process of the tool */
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	struct sigaction act;
	memset(&act, 0, sizeof(act));
	act.sa_handler = on_stop;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);

	long peak_rss = 0, peak_pss = 0, looks = 0, mem_looks = 0;
	int peak_fds = 0, peak_one = 0, peak_procs = 0;
	while (!stop) {
		struct sums s = { 0, 0, 0, 0, 0 };
		int mem = looks % MEM_EVERY == 0;
		/* walks count from 1: a process seen at walk W is known at W + 1 */
		if (looks % WALK_EVERY == 0)
			walk_tree(root, exe, looks / WALK_EVERY + 1, mem, &s);
		else
			look_again(exe, mem, &s);
		if (mem) {
			mem_looks++;
			if (s.rss > peak_rss)
				peak_rss = s.rss;
			if (s.pss > peak_pss)
				peak_pss = s.pss;
			if (s.fds > peak_fds)
				peak_fds = s.fds;
			if (s.peak_one > peak_one)
				peak_one = s.peak_one;
		}
		if (s.alive > peak_procs)
			peak_procs = s.alive;
		looks++;
		/* the run is over when its job is gone (reaped): a bench killed
		 * before its SIGTERM must not leave us running */
		if (kill(root, 0) && errno == ESRCH)
			break;
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
		"peak_pss_kb=%ld peak_fds=%d peak_fds_one=%d looks=%ld mem_looks=%ld\n", mine,
		peak_procs, (double)cpu / 1e9, (double)child_cpu / 1e9, peak_rss, peak_pss, peak_fds,
		peak_one, looks, mem_looks);
	fclose(f);
	for (size_t i = 0; i < nprocs; i++)
		drop(&procs[i]);
	free(procs);
	free(by_pid);
	free(alive);
	return 0;
}
