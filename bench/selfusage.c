/*
 * selfusage: run a command and report what that one process cost, apart from its children.
 *
 *   selfusage OUTFILE CMD [ARG]...
 *
 * Writes one line of key=value pairs to OUTFILE, then exits with CMD's status (128+N when
 * killed by signal N):
 *   exit          CMD's exit status
 *   wall_s        wall time from fork to reaping CMD
 *   self_cpu_s    CPU time of CMD's own process (all its threads still alive at exit), from
 *                 /proc/PID/task/TID/schedstat (nanoseconds): not its children's
 *   self_user_s   the user part of it, self_sys_s the system part (/proc/PID/stat, which
 *                 counts in clock ticks: 10 ms steps)
 *   self_maxrss_kb  CMD's own peak resident memory (VmHWM of /proc/PID/status)
 *   tree_cpu_s    CPU time of CMD plus every descendant it waited for (wait4's rusage): the
 *                 local cost of a run, nix and ssh included (not ssh masters left running in
 *                 the background, which nobody waits for)
 *
 * Why ptrace: a process's own figures vanish when it exits (VmHWM goes with its memory), and
 * what wait4 returns adds in the children it reaped (nix evaluations, ssh). PTRACE_O_TRACEEXIT
 * stops CMD on its way out, memory still mapped, so that its own counters can be read. No
 * system call is traced: the only other stops are signals delivered to CMD (SIGCHLD when a
 * child ends), which are passed on at once.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* SIGTERM and SIGHUP meant for the run go to CMD, which decides what to do with them. */
static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

struct self {
	int ok;
	double cpu_s, user_s, sys_s;
	long maxrss_kb;
};

/* Read CMD's own counters while it is stopped at exit. */
static void read_self(pid_t pid, struct self *s)
{
	char path[64], buf[4096];
	FILE *f;

	s->cpu_s = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (dir) {
		struct dirent *de;
		while ((de = readdir(dir))) {
			if (de->d_name[0] == '.')
				continue;
			char p[320];
			unsigned long long ns = 0;
			snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
			if ((f = fopen(p, "r"))) {
				if (fscanf(f, "%llu", &ns) == 1)
					s->cpu_s += ns / 1e9;
				fclose(f);
			}
		}
		closedir(dir);
	}

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r"))) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		/* The command name may hold spaces and parentheses: fields start after the last ')'. */
		char *p = strrchr(buf, ')');
		unsigned long ut, st;
		/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st) == 2) {
			long hz = sysconf(_SC_CLK_TCK);
			s->user_s = (double)ut / hz;
			s->sys_s = (double)st / hz;
		}
	}

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r"))) {
		while (fgets(buf, sizeof(buf), f))
			if (!strncmp(buf, "VmHWM:", 6))
				s->maxrss_kb = strtol(buf + 6, NULL, 10);
		fclose(f);
	}
	s->ok = 1;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: selfusage OUTFILE CMD [ARG]...\n");
		return 2;
	}
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		fprintf(stderr, "selfusage: cannot write '%s': %s\n", argv[1], strerror(errno));
		return 2;
	}

	/* As system() does: an interrupt from the terminal is for CMD; we wait for it to end. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	double t0 = now_s();
	child = fork();
	if (child < 0) {
		perror("selfusage: fork");
		return 2;
	}
	if (child == 0) {
		fclose(out);
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) {
			perror("selfusage: ptrace");
			_exit(127);
		}
		/* Let the parent set its options before exec. */
		raise(SIGSTOP);
		execvp(argv[2], argv + 2);
		fprintf(stderr, "selfusage: cannot run '%s': %s\n", argv[2], strerror(errno));
		_exit(127);
	}

	struct self self = { 0 };
	struct rusage ru;
	int status, first = 1;
	for (;;) {
		pid_t w = wait4(child, &status, 0, &ru);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			perror("selfusage: wait4");
			return 2;
		}
		if (!WIFSTOPPED(status))
			break;
		int sig = WSTOPSIG(status), event = status >> 16, pass = 0;
		if (first) {
			/* The SIGSTOP before exec. If this fails, we only lose the self figures. */
			ptrace(PTRACE_SETOPTIONS, child, NULL,
			       (void *)(long)(PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC |
					      PTRACE_O_EXITKILL));
			first = 0;
		} else if (event == PTRACE_EVENT_EXIT) {
			read_self(child, &self);
		} else if (event == 0 && sig != SIGTRAP) {
			pass = sig;  /* a signal for CMD: deliver it */
		}
		ptrace(PTRACE_CONT, child, NULL, (void *)(long)pass);
	}
	double wall = now_s() - t0;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	double tree = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
		      ru.ru_stime.tv_usec / 1e6;

	fprintf(out, "exit=%d wall_s=%.6f", code, wall);
	if (self.ok)
		fprintf(out, " self_cpu_s=%.6f self_user_s=%.2f self_sys_s=%.2f self_maxrss_kb=%ld",
			self.cpu_s, self.user_s, self.sys_s, self.maxrss_kb);
	fprintf(out, " tree_cpu_s=%.6f\n", tree);
	if (fclose(out) != 0)
		perror("selfusage: write");
	return code;
}
