#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "fiber.h"

extern char **environ;

/*
 * The running children, for the signal handler: a table that grows with
 * them (a fleet has hundreds). The handler, which may run between any two
 * steps of ours (never during one of its own), sees either the old table
 * or the new one, whole: the new one is filled before it is stored, the
 * pointer before the larger size, and the old one freed after, when no
 * handler can still be reading it (track). A slot is one aligned store.
 */
static volatile pid_t *volatile running;
static volatile size_t running_cap;
static volatile sig_atomic_t interrupted;
/* how many signals the handler took: child_start's look for one that
 * came while it started a child */
static volatile sig_atomic_t signals_taken;

static int decode_status(int st);

/* The signals whose disposition this program changes: the ones with our
 * handler, and SIGPIPE, ignored (a write to a gone reader fails instead).
 * A child gets them back as they were by default (child_exec). */
static const int caught[] = { SIGINT, SIGTERM, SIGHUP };
static const int changed[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };

static void block_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		sigaddset(&set, caught[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

/* The handler may run at any step: it sees the old table or the new
 * one, whole (the pointer is stored before the larger size; the old one
 * is freed only after), and a slot is one aligned store. */
static void track(pid_t pid)
{
	for (size_t i = 0; i < running_cap; i++)
		if (!running[i]) {
			running[i] = pid;
			return;
		}
	size_t cap = running_cap ? 2 * running_cap : 64;
	volatile pid_t *grown = xcalloc(cap, sizeof(*grown)), *old = running;
	for (size_t i = 0; i < running_cap; i++)
		grown[i] = old[i];
	grown[running_cap] = pid;
	running = grown;
	running_cap = cap;
	free((void *)old);
}

/* Signals stay as they are: a slot's pid is one aligned int, which the
 * handler sees before or after the store, never torn (the table only
 * moves in track). Blocking them was two system calls a child reaped. */
static void untrack(pid_t pid)
{
	for (size_t i = 0; i < running_cap; i++)
		if (running[i] == pid)
			running[i] = 0;
}

size_t run_children_tracked(void)
{
	size_t n = 0;
	for (size_t i = 0; i < running_cap; i++)
		n += running[i] > 0;
	return n;
}

static void on_signal(int sig)
{
	int saved = errno;
	if (!interrupted)
		interrupted = sig;
	signals_taken++;
	for (size_t i = 0; i < running_cap; i++)
		if (running[i] > 0)
			kill(running[i], SIGTERM);
	errno = saved;
}

void run_signals_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		sigaction(caught[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int run_interrupted(void)
{
	return interrupted;
}

void child_init(struct child *c)
{
	struct child blank = CHILD_INIT;
	*c = blank;
}

void child_clear(struct child *c)
{
	strvec_clear(&c->args);
	strvec_clear(&c->env);
}

/*
 * What PATH gave for a command, once a process: a fleet's hosts, in fibers
 * of one process, start the same few (ssh) hundreds of times, and each
 * search stats every directory of PATH before the one that has it (ten
 * on a machine with a few tools' shims in front). PATH does not change
 * while we run. Like the table above, state of the process, kept here
 * because no caller's context reaches child_start.
 */
static struct found_cmd {
	char *name, *path;
} found_cmds[8];

static char *search_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchrnul(path, ':');
		char *cand = xstrfmt("%.*s/%s", (int)(end - path), path, name);
		struct stat st;
		if (!stat(cand, &st) && S_ISREG(st.st_mode) && !access(cand, X_OK))
			return cand;
		free(cand);
		path = *end ? end + 1 : end;
	}
	return NULL;
}

char *find_in_path(const char *name)
{
	size_t i;

	if (strchr(name, '/'))
		return access(name, X_OK) ? NULL : xstrdup(name);
	for (i = 0; i < sizeof(found_cmds) / sizeof(*found_cmds) && found_cmds[i].name; i++)
		if (!strcmp(found_cmds[i].name, name))
			return xstrdup(found_cmds[i].path);
	char *path = search_path(name);
	if (path && i < sizeof(found_cmds) / sizeof(*found_cmds))
		found_cmds[i] = (struct found_cmd){ xstrdup(name), xstrdup(path) };
	return path;
}

/* The environment for the child: ours with c->env applied. */
static char **child_envp(const struct child *c)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = xcalloc(n + c->env.nr + 1, sizeof(*envp));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int overridden = 0;
		for (size_t j = 0; j < c->env.nr; j++) {
			const char *ch = c->env.v[j];
			const char *ceq = strchr(ch, '=');
			size_t cl = ceq ? (size_t)(ceq - ch) : strlen(ch);
			if (cl == nl && !strncmp(ch, environ[i], nl))
				overridden = 1;
		}
		if (!overridden)
			envp[k++] = environ[i];
	}
	for (size_t j = 0; j < c->env.nr; j++)
		if (strchr(c->env.v[j], '='))
			envp[k++] = (char *)c->env.v[j];
	envp[k] = NULL;
	return envp;
}

/* /dev/null, opened once a process and lent to every child that reads
 * or writes nothing: a fleet's host starts several, and each open and
 * close was two system calls. Process state, as the tables above; a copy
 * of this process (run_fork) closes it and opens its own. */
static int null_fd = -1;

static int shared_null(void)
{
	if (null_fd < 0)
		null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	return null_fd;
}

/* Sets up the child's standard fd std; -1 on failure. *child_end is
 * what goes there, ours to close after the start unless *borrowed. */
static int prepare_io(enum child_io mode, int *fd, int std, int *child_end, int *borrowed)
{
	int p[2], is_input = std == 0;
	*child_end = -1;
	*borrowed = 0;
	switch (mode) {
	case CHILD_INHERIT:
		/* a fiber's own (lib/fiber.h), not this process's */
		*child_end = fiber_std_fd(std);
		if (*child_end == std)
			*child_end = -1;	/* ours: it inherits it as it is */
		else
			*borrowed = 1;
		return 0;
	case CHILD_NULL:
		*child_end = shared_null();
		*borrowed = 1;
		return *child_end < 0 ? -1 : 0;
	case CHILD_PIPE:
		if (pipe2(p, O_CLOEXEC))
			return -1;
		*child_end = is_input ? p[0] : p[1];
		*fd = is_input ? p[1] : p[0];
		return 0;
	case CHILD_FD:
		*child_end = *fd;
		*fd = -1;
		return 0;
	case CHILD_SOCKET:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p))
			return -1;
		/* one way, as a pipe is */
		shutdown(p[0], is_input ? SHUT_WR : SHUT_RD);
		shutdown(p[1], is_input ? SHUT_RD : SHUT_WR);
		*child_end = p[0];
		*fd = p[1];
		return 0;
	}
	return -1;
}

/* Closes every fd from 3 up but keep1 and keep2 (-1: none). */
static void close_fds_but(int keep1, int keep2)
{
	int lo = 3;
	int keep[2] = { keep1 < keep2 ? keep1 : keep2, keep1 < keep2 ? keep2 : keep1 };
	for (int k = 0; k <= 2; k++) {
		int hi = k < 2 ? keep[k] : -1;	/* up to, not including; -1: the end */
		if (k < 2 && hi <= lo) {
			if (hi == lo)
				lo++;	/* kept */
			continue;
		}
#ifdef SYS_close_range
		if (syscall(SYS_close_range, (unsigned)lo,
			    hi < 0 ? ~0U : (unsigned)hi - 1, 0) == 0) {
			lo = hi + 1;
			continue;
		}
#endif
		for (int fd = lo; fd < (hi < 0 ? 1024 : hi); fd++)
			close(fd);
		lo = hi + 1;
	}
}

/*
 * In the child of vfork(): only async-signal-safe calls from here to
 * exec, and no memory written but this function's own locals and, when
 * the exec fails, *exec_errno (it shares the parent's until it execs;
 * errno too, which the parent does not read after a vfork that
 * succeeded). Signal dispositions, the mask and the fd
 * table are the child's own. vfork, not fork: a fleet's host starts a
 * dozen commands, and fork's copy of the page tables and the faults that
 * follow were most of what each start cost us.
 */
static void child_exec(const char *path, char *const argv[], char **envp,
		       const int ends[3], volatile int *exec_errno, int die_with_parent,
		       int map_fd, int map_to, int own_group)
{
	sigset_t all;
	struct sigaction dfl;

	/* only the ones we changed, which execve would not all undo: a
	 * handler of ours must not run past here (the memory is the parent's;
	 * before, it does only what the parent's would: child_start), and
	 * SIGPIPE stays ignored across
	 * execve. What our own parent ignored stays ignored, as with
	 * posix_spawn and git's run-command (nohup's SIGHUP: ours is reset
	 * here, as we caught it). Resetting every signal was 64 calls a
	 * start, and a fleet's host starts several. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++)
		sigaction(changed[i], &dfl, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (own_group)
		setpgid(0, 0);
#ifdef __linux__
	if (die_with_parent)
		prctl(PR_SET_PDEATHSIG, SIGTERM);
#else
	(void)die_with_parent;
#endif
	for (int i = 0; i < 3; i++)
		if (ends[i] >= 0 && dup2(ends[i], i) < 0)
			goto fail;
	if (map_fd >= 0 && map_to >= 3 && dup2(map_fd, map_to) < 0)
		goto fail;
	/* everything else is close-on-exec or closed here: all of it, as a
	 * fleet raises the open-files limit past 1024 */
	close_fds_but(map_to, -1);
	execve(path, argv, envp);
fail:
	*exec_errno = errno;
	_exit(127);
}

/* vfork and child_exec, apart: nothing of child_start's lives across the
 * vfork (the compiler could keep it where the child writes). Returns the
 * pid, or -1 with errno set; *exec_errno is why the exec failed (0: it
 * did not).
 *
 * Why no pipe: the parent of a vfork() resumes only once the child has
 * exec'd or exited, in the memory they share, so the child's errno is
 * there to read, as glibc's posix_spawn reports it. A close-on-exec pipe
 * was four system calls a start (git's way, for fork). Under valgrind,
 * which runs vfork() as fork(), a failed exec shows only as the child's
 * status 127 (every command we run is first found in PATH: that error,
 * the usual one, is told before any start). */
static __attribute__((noinline)) pid_t spawn(const struct child *c, const char *path,
					     char **envp, const int ends[3],
					     volatile int *exec_errno)
{
	pid_t pid = vfork();
	if (pid == 0)
		child_exec(path, (char *const *)c->args.v, envp, ends, exec_errno,
			   c->die_with_parent, c->map_fd, c->map_to, c->stop_group);
	return pid;
}

pid_t run_fork(int keep_fd)
{
	sigset_t old;
	block_signals(&old);
	pid_t pid = fork();
	if (pid == 0) {
		/* our children are not the copy's: its signals reach its own */
		for (size_t i = 0; i < running_cap; i++)
			running[i] = 0;
		/* nor are a fleet's hosts in fibers its to run */
		fiber_forget();
		null_fd = -1;	/* closed below: the copy opens its own */
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
		close_fds_but(keep_fd, -1);
	} else if (pid > 0) {
		track(pid);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
}

int child_start(struct child *c, struct nrr_err *e)
{
	int ends[3] = { -1, -1, -1 }, borrowed[3] = { 0, 0, 0 };
	volatile int exec_errno = 0;
	char *path;

	if (!c->args.nr)
		return nrr_fail(e, NRR_EFAIL, "internal: empty command"), -1;
	path = find_in_path(c->args.v[0]);
	if (!path) {
		nrr_fail(e, NRR_EFAIL, "cannot run '%s': not found in PATH",
			 c->args.v[0]);
		return -1;
	}
	if (prepare_io(c->in, &c->in_fd, 0, &ends[0], &borrowed[0]) ||
	    prepare_io(c->out, &c->out_fd, 1, &ends[1], &borrowed[1]) ||
	    prepare_io(c->err, &c->err_fd, 2, &ends[2], &borrowed[2])) {
		nrr_fail(e, NRR_EFAIL, "cannot start '%s': %s", c->args.v[0],
			 strerror(errno));
		free(path);
		return -1;
	}
	char **envp = child_envp(c);
	/*
	 * Signals are not blocked around the start (two system calls a
	 * start, and a fleet's host starts three): an interrupt between the
	 * vfork and track() found the table without this child, so it is
	 * stopped here once tracked (not a child started after an interrupt,
	 * to clean up); track() keeps the table whole for the handler at
	 * every step. In the child, before child_exec resets them, the
	 * handler may run too: it only records the signal (which the parent
	 * is sent as well) and stops the children of the table.
	 */
	sig_atomic_t taken = signals_taken;
	pid_t pid = spawn(c, path, envp, ends, &exec_errno);
	if (pid > 0 && c->stop_group)
		setpgid(pid, pid);	/* as the child does: whoever runs first */
	int fork_errno = errno;
	if (pid > 0) {
		track(pid);
		if (signals_taken != taken)
			kill(pid, SIGTERM);
	}
	free(envp);
	free(path);
	for (int i = 0; i < 3; i++)
		if (ends[i] >= 0 && !borrowed[i])
			close(ends[i]);
	if (pid < 0) {
		nrr_fail(e, NRR_EFAIL, "cannot fork for '%s': %s",
			 c->args.v[0], strerror(fork_errno));
		return -1;
	}
	int child_errno = exec_errno;
	if (child_errno) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		untrack(pid);
		nrr_fail(e, NRR_EFAIL, "cannot run '%s': %s", c->args.v[0],
			 strerror(child_errno));
		return -1;
	}
	c->pid = pid;
	return 0;
}

int child_wait(struct child *c)
{
	int st;
	pid_t r;
	if (c->pid <= 0)
		return -1;
	while ((r = fiber_waitpid(c->pid, &st, 0)) < 0 && errno == EINTR)
		;
	untrack(c->pid);
	c->pid = -1;
	if (r < 0)
		return -1;
	return decode_status(st);
}

static int decode_status(int st)
{
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

int child_poll(struct child *c, int *status)
{
	int st;
	if (c->pid <= 0)
		return 1;
	pid_t r = waitpid(c->pid, &st, WNOHANG);
	if (r == 0)
		return 0;
	untrack(c->pid);
	c->pid = -1;
	*status = r < 0 ? -1 : decode_status(st);
	return 1;
}

void child_kill(struct child *c, int sig)
{
	if (c->pid > 0)
		kill(c->pid, sig);
}

static void echo_chunk(void *data, const char *buf, size_t n)
{
	fd_write_all(*(const int *)data, buf, n);
}

/* Both: the echo, then the caller's callback. */
static void capture_err(void *data, const char *buf, size_t n)
{
	const struct capture *cap = data;
	if (cap->echo_fd >= 0)
		echo_chunk((void *)&cap->echo_fd, buf, n);
	if (cap->on_err)
		cap->on_err(cap->data, buf, n);
}

/* Milliseconds left until *end, which the first call sets to ms from now. */
static long grace_left(struct timespec *end, long ms)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!end->tv_sec && !end->tv_nsec) {
		*end = now;
		end->tv_sec += ms / 1000;
		end->tv_nsec += (ms % 1000) * 1000000L;
		if (end->tv_nsec >= 1000000000L) {
			end->tv_sec++;
			end->tv_nsec -= 1000000000L;
		}
	}
	return (end->tv_sec - now.tv_sec) * 1000L + (end->tv_nsec - now.tv_nsec) / 1000000L;
}

int child_capture(struct child *c, const struct capture *cap,
		  struct nrr_err *e)
{
	const char *inp = cap->in;
	size_t inlen = cap->in_len;
	if (cap->in || c->keep_stdin_open)
		c->in = CHILD_PIPE;
	if (cap->out)
		c->out = CHILD_PIPE;
	if (cap->err)
		c->err = CHILD_PIPE;
	if (c->pid <= 0 && child_start(c, e))
		return -1;

	if (c->in == CHILD_PIPE && !inlen && !c->keep_stdin_open) {
		close(c->in_fd);
		c->in_fd = -1;
	}
	if (c->in_fd >= 0)
		fcntl(c->in_fd, F_SETFL, O_NONBLOCK);

	struct pump_fd fds[] = {
		{ .fd = &c->in_fd, .write = 1, .buf = &inp, .len = &inlen,
		  .keep_open = c->keep_stdin_open },
		{ .fd = cap->out ? &c->out_fd : NULL, .sb = cap->out },
		{ .fd = cap->err ? &c->err_fd : NULL, .sb = cap->err,
		  .on_read = cap->echo_fd >= 0 || cap->on_err ? capture_err : NULL,
		  .data = (void *)cap },
	};
	struct timespec grace_end = { 0, 0 };
	for (;;) {
		int timeout = -1;
		if (c->stop_group && run_interrupted() && c->pid > 0) {
			/* SIGTERM went out with the interrupt: a moment to end on
			 * its own (and say so), then the group goes */
			long left = grace_left(&grace_end, 250);
			if (left <= 0) {
				kill(-c->pid, SIGKILL);
				break;	/* what it started may still hold the pipes */
			}
			timeout = (int)left;
		}
		if (pump(fds, 3, timeout) < 0)
			break;
	}
	if (c->in_fd >= 0 && !c->keep_stdin_open) {
		close(c->in_fd);
		c->in_fd = -1;
	}
	for (int *fd = &c->out_fd; fd; fd = fd == &c->out_fd ? &c->err_fd : NULL)
		if (*fd >= 0) {
			close(*fd);
			*fd = -1;
		}
	int status = child_wait(c);
	if (c->in_fd >= 0) {
		close(c->in_fd);
		c->in_fd = -1;
	}
	return status;
}

int child_run(const struct strvec *argv, struct nrr_err *e)
{
	struct child c = CHILD_INIT;
	strvec_pushvec(&c.args, argv);
	int st = child_start(&c, e) ? -1 : child_wait(&c);
	child_clear(&c);
	if (st < 0)
		return e->status;
	return st ? nrr_fail(e, NRR_EFAIL, "'%s' failed with status %d",
			     argv->v[0], st) : 0;
}

int child_capture_all(struct child *cs, size_t n, size_t at_once, struct strbuf *outs,
		      struct strbuf *errs, int *sts, struct nrr_err *e)
{
	struct pump_fd *fds = xcalloc(n ? 2 * n : 1, sizeof(*fds));
	size_t next = 0, live = 0;
	int ret = 0;
	struct timespec grace_end = { 0, 0 };

	if (!at_once)
		at_once = n;
	for (;;) {
		while (!ret && !run_interrupted() && next < n && live < at_once) {
			struct child *c = &cs[next];
			c->in = CHILD_NULL;
			c->out = CHILD_PIPE;
			c->err = CHILD_PIPE;
			if (child_start(c, e)) {
				ret = -1;
				break;
			}
			fds[2 * next] = (struct pump_fd){ .fd = &c->out_fd, .sb = &outs[next] };
			fds[2 * next + 1] = (struct pump_fd){ .fd = &c->err_fd, .sb = &errs[next] };
			next++;
			live++;
		}
		if (!live)
			break;
		int timeout = -1;
		if (run_interrupted()) {
			/* as child_capture: a moment, then the evaluators' groups go */
			long left = grace_left(&grace_end, 250);
			if (left <= 0) {
				for (size_t i = 0; i < next; i++)
					if (cs[i].stop_group && cs[i].pid > 0)
						kill(-cs[i].pid, SIGKILL);
				break;
			}
			timeout = (int)left;
		}
		pump(fds, 2 * next, timeout);
		/* reap those whose pipes are both closed */
		for (size_t i = 0; i < next; i++)
			if (cs[i].pid > 0 && cs[i].out_fd < 0 && cs[i].err_fd < 0) {
				sts[i] = child_wait(&cs[i]);
				live--;
			}
	}
	for (size_t i = 0; i < next; i++) {
		if (cs[i].pid <= 0)
			continue;
		for (int *fd = &cs[i].out_fd; fd; fd = fd == &cs[i].out_fd ? &cs[i].err_fd : NULL)
			if (*fd >= 0) {
				close(*fd);
				*fd = -1;
			}
		sts[i] = child_wait(&cs[i]);
	}
	free(fds);
	return ret;
}
