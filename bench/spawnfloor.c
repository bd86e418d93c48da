/*
 * bench/spawnfloor: the least CPU a deployer's own process could spend per
 * host with no process of its own per host: one process drives every host
 * through the OpenSSH subprocesses any deploy needs (`ssh -G` for the
 * alias, a ControlMaster, one session), all hosts at once from one poll()
 * loop, as an event-loop design of the tool would. The session does two
 * round trips of one short line each, where a real deploy exchanges a few
 * more and parses what comes; nothing else is done. Prints the process's
 * own CPU (getrusage RUSAGE_SELF: its children, ssh, are not counted, as
 * bench/fleet does not count them as the tool's) per host.
 *
 *   spawnfloor [-j N] SSH_CONFIG DIR HOST...
 *
 * -j: hosts in their handshake at once (default 16: the tool's 8 a core on
 * 2 cores). DIR: an empty directory for the control sockets. A measuring
 * tool, not a part of nixos-rebuild-remote: it exits on the first failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum step { S_RESOLVE, S_CONNECT, S_TALK, S_DONE };

struct host {
	const char *name;
	enum step step;
	pid_t pid, master;
	int out, in;		/* the current command's pipes, or -1 */
	int said;		/* lines the session answered */
	char sock[32];		/* the control socket's name in DIR */
};

static const char *config, *dir;

static void die(const char *what)
{
	fprintf(stderr, "spawnfloor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Starts argv with stdin from *in (a pipe we write, if in) and stdout to
 * *out (a pipe we read, if out); the rest to /dev/null. */
static pid_t spawn(char *const argv[], int *in, int *out)
{
	posix_spawn_file_actions_t fa;
	int ip[2] = { -1, -1 }, op[2] = { -1, -1 };
	pid_t pid;

	if ((in && pipe2(ip, O_CLOEXEC)) || (out && pipe2(op, O_CLOEXEC)))
		die("pipe");
	posix_spawn_file_actions_init(&fa);
	if (in)
		posix_spawn_file_actions_adddup2(&fa, ip[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out)
		posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if ((errno = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ)))
		die("posix_spawnp ssh");
	posix_spawn_file_actions_destroy(&fa);
	if (in) {
		close(ip[0]);
		*in = ip[1];
	}
	if (out) {
		close(op[1]);
		*out = op[0];
		fcntl(*out, F_SETFL, O_NONBLOCK);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* Ends a master as the tool does (lib/ssh.c): ssh can miss a signal that
 * lands just before it polls, so say it again, then insist. */
static void stop(pid_t pid)
{
	struct timespec ms10 = { 0, 10 * 1000 * 1000 };
	int st;
	for (int i = 0; i < 150; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		if (i % 20 == 0)
			kill(pid, i < 100 ? SIGTERM : SIGKILL);
		nanosleep(&ms10, NULL);
	}
	kill(pid, SIGKILL);
	reap(pid);
}

static void resolve(struct host *h)
{
	char *argv[] = { "ssh", "-F", (char *)config, "-G", "-T", "--", (char *)h->name, NULL };
	h->step = S_RESOLVE;
	h->pid = spawn(argv, NULL, &h->out);
}

static void connect_start(struct host *h)
{
	char cp[4096];
	snprintf(cp, sizeof(cp), "-oControlPath=%s/%s", dir, h->sock);
	char *argv[] = { "ssh", "-F", (char *)config, cp, "-oControlMaster=yes",
			 "-oControlPersist=no", "-N", "-T", "--", (char *)h->name, NULL };
	h->step = S_CONNECT;
	h->master = spawn(argv, NULL, NULL);
}

static void talk(struct host *h)
{
	char cp[4096];
	snprintf(cp, sizeof(cp), "-oControlPath=%s/%s", dir, h->sock);
	char *argv[] = { "ssh", "-F", (char *)config, cp, "-oControlMaster=no", "-T", "--",
			 (char *)h->name, "read a; echo x; read b; echo y", NULL };
	h->step = S_TALK;
	h->said = 0;
	h->pid = spawn(argv, &h->in, &h->out);
	if (write(h->in, "1\n", 2) != 2)
		die("write");
}

/* What came on h->out; the command's end moves h to its next step. */
static int readable(struct host *h)
{
	char buf[8192];
	ssize_t n = read(h->out, buf, sizeof(buf));
	if (n < 0)
		return errno == EAGAIN ? 0 : (die("read"), 0);
	if (n > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n' && h->step == S_TALK && ++h->said == 1 &&
			    write(h->in, "2\n", 2) != 2)
				die("write");
		return 0;
	}
	close(h->out);
	h->out = -1;
	if (h->in >= 0)
		close(h->in), h->in = -1;
	reap(h->pid);
	if (h->step == S_RESOLVE)
		return 1;	/* to connect, when a handshake slot is free */
	if (h->said != 2) {
		fprintf(stderr, "spawnfloor: %s: the session said %d lines, not 2\n", h->name,
			h->said);
		exit(1);
	}
	stop(h->master);
	h->step = S_DONE;
	return 0;
}

int main(int argc, char **argv)
{
	int jobs = 16, opt;
	while ((opt = getopt(argc, argv, "j:")) != -1)
		jobs = atoi(optarg);
	if (argc - optind < 3 || jobs < 1) {
		fputs("usage: spawnfloor [-j N] SSH_CONFIG DIR HOST...\n", stderr);
		return 2;
	}
	alarm(300);	/* a host that never connects: end, not hang */
	config = argv[optind];
	dir = argv[optind + 1];
	size_t n = (size_t)(argc - optind - 2), done = 0, waiting = 0, next = 0;
	int connecting = 0;
	struct host *hosts = calloc(n, sizeof(*hosts));
	struct pollfd *fds = calloc(n + 1, sizeof(*fds));
	size_t *which = calloc(n + 1, sizeof(*which));
	size_t *queue = calloc(n, sizeof(*queue));
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (!hosts || !fds || !which || !queue || ino < 0 ||
	    inotify_add_watch(ino, dir, IN_CREATE) < 0)
		die("setup");

	for (size_t i = 0; i < n; i++) {
		hosts[i].name = argv[optind + 2 + i];
		hosts[i].out = hosts[i].in = -1;
		snprintf(hosts[i].sock, sizeof(hosts[i].sock), "%zu", i);
		resolve(&hosts[i]);
	}
	while (done < n) {
		while (connecting < jobs && next < waiting) {
			connect_start(&hosts[queue[next++]]);
			connecting++;
		}
		size_t nf = 0;
		fds[nf++] = (struct pollfd){ .fd = ino, .events = POLLIN };
		for (size_t i = 0; i < n; i++)
			if (hosts[i].out >= 0) {
				which[nf] = i;
				fds[nf++] = (struct pollfd){ .fd = hosts[i].out, .events = POLLIN };
			}
		if (poll(fds, nf, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (fds[0].revents) {
			char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
			ssize_t len = read(ino, ev, sizeof(ev));
			for (char *p = ev; len > 0 && p < ev + len;) {
				struct inotify_event *e = (struct inotify_event *)p;
				char *end;
				size_t i = strtoul(e->name, &end, 10);
				/* ssh binds a temporary name, then links the socket's own */
				if (e->len && !*end && i < n && hosts[i].step == S_CONNECT) {
					connecting--;
					talk(&hosts[i]);
				}
				p += sizeof(*e) + e->len;
			}
		}
		for (size_t k = 1; k < nf; k++) {
			struct host *h = &hosts[which[k]];
			if (!fds[k].revents)
				continue;
			if (readable(h))
				queue[waiting++] = which[k];
			else if (h->step == S_DONE)
				done++;
		}
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
		     (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	printf("%zu hosts: %.1f ms of CPU, %.2f ms a host (user %.1f, system %.1f ms)\n", n,
	       cpu * 1e3, cpu * 1e3 / (double)n,
	       (ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6) * 1e3,
	       (ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6) * 1e3);
	free(hosts);
	free(fds);
	free(which);
	free(queue);
	return 0;
}
