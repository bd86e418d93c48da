#define _GNU_SOURCE	/* ucontext, SYS_pidfd_open */
#include "fiber.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "strbuf.h"

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif
#ifdef FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
/* its frames carry red zones: more room for the same code */
#define STACK_SIZE (4u << 20)
#else
#define STACK_SIZE (1u << 20)
#endif

enum fiber_state { F_READY, F_WAITING, F_DONE };

struct fiber {
	ucontext_t ctx;
	void *map;		/* the stack, with a guard page below it */
	size_t map_size;
	fiber_fn *fn;
	void *arg;
	int in, err;
	enum fiber_state state;
	int ret;
	/* while waiting: what for, and until when (ms, -1: no limit) */
	struct pollfd *fds;
	nfds_t n;
	long long deadline;
	/* what its fiber_poll returns */
	int result, result_errno;
	/* epoll: one of its fds fired, or one cannot be watched (look now) */
	int maybe;
	struct fiber *next;
};

static struct fiber *fibers;
static struct fiber *current;
static ucontext_t outside;
/* the fds 0, 1 and 2 of the code outside every fiber, while one runs;
 * /dev/null, a fiber's stdout (a host's child had none either) */
static int saved[3] = { -1, -1, -1 }, null_fd = -1;
/* what each of fds 0-2 holds now, while fibers run (-1: ours): a batch of
 * fibers shares /dev/null as fd 1, and as fd 0 mostly, which then stays
 * from one to the next (each dup2 is a system call, and a batch is often
 * a few short turns) */
static int installed[3] = { -1, -1, -1 };
#ifdef __linux__
/* the waiting fibers' fds, watched by epoll while fibers live (-1: none,
 * and their fds go into the one poll(2) as the outside's do). A poll(2)
 * of every host's fds at every turn was a tenth of a fleet's CPU at 50
 * hosts, and grows with the fleet; epoll costs a wait its own fds. */
static int ep = -1;
#endif
#ifdef FIBER_ASAN
static const void *outside_bottom;
static size_t outside_size;
#endif

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Back outside, for good when last (the fiber's fake stack goes). */
static void switch_out(struct fiber *f, int last)
{
#ifdef FIBER_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(last ? NULL : &fake, outside_bottom, outside_size);
#else
	(void)last;
#endif
	swapcontext(&f->ctx, &outside);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(fake, &outside_bottom, &outside_size);
#endif
}

static void trampoline(void)
{
	struct fiber *f = current;
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(NULL, &outside_bottom, &outside_size);
#endif
	f->ret = f->fn(f->arg);
	f->state = F_DONE;
	switch_out(f, 1);
}

struct fiber *fiber_new(fiber_fn *fn, void *arg, int in, int err)
{
	long page = sysconf(_SC_PAGESIZE);
	struct fiber *f;

	if (null_fd < 0 && (null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		return NULL;
	for (int i = 0; i < 3; i++)
		if (saved[i] < 0 && (saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 3)) < 0)
			return NULL;
#ifdef __linux__
	if (!fibers && ep < 0)
		ep = epoll_create1(EPOLL_CLOEXEC);	/* none: poll(2) alone */
#endif
	f = xcalloc(1, sizeof(*f));
	/* all of it before getcontext(), which returns twice to the
	 * compiler's eyes: nothing of ours is read after it */
	f->fn = fn;
	f->arg = arg;
	f->in = in < 0 ? null_fd : in;
	f->err = err;
	f->map_size = STACK_SIZE + (size_t)page;
	/* untouched pages cost nothing: a host's deploy touches a few dozen */
	f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (f->map == MAP_FAILED) {
		free(f);
		return NULL;
	}
	mprotect(f->map, (size_t)page, PROT_NONE);	/* an overflow faults */
	getcontext(&f->ctx);
	f->ctx.uc_stack.ss_sp = (char *)f->map + page;
	f->ctx.uc_stack.ss_size = STACK_SIZE;
	f->ctx.uc_link = NULL;
	makecontext(&f->ctx, trampoline, 0);
	f->state = F_READY;
	f->next = fibers;
	fibers = f;
	return f;
}

int fiber_done(const struct fiber *f, int *ret)
{
	if (f->state != F_DONE)
		return 0;
	*ret = f->ret;
	return 1;
}

void fiber_free(struct fiber *f)
{
	for (struct fiber **p = &fibers; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	munmap(f->map, f->map_size);
	free(f);
#ifdef __linux__
	if (!fibers && ep >= 0) {
		/* a fleet's last: what it watched goes with it */
		close(ep);
		ep = -1;
	}
#endif
}

/* What fd, as f has it while it runs, is outside it. */
static int own_fd(const struct fiber *f, int fd)
{
	return fd == 0 ? f->in : fd == 1 ? null_fd : fd == 2 ? f->err : fd;
}

/* Runs f until it waits again or ends, on its own fds 0-2 (which stay
 * until restore_ours puts ours back: fibers run in turns, and most turns
 * are short, so each dup2 counts). */
static void resume(struct fiber *f)
{
	/* what ours, or the last one's, left in stdio's buffer goes to its
	 * own fd 1 */
	fflush(stdout);
	int want[3] = { f->in, null_fd, f->err };
	for (int i = 0; i < 3; i++)
		if (installed[i] != want[i] && dup2(want[i], i) >= 0)
			installed[i] = want[i];
	current = f;
#ifdef FIBER_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(&fake, (char *)f->ctx.uc_stack.ss_sp, STACK_SIZE);
#endif
	swapcontext(&outside, &f->ctx);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	current = NULL;
}

static void run_ready(void)
{
	for (struct fiber *f = fibers; f; f = f->next)
		if (f->state == F_READY)
			resume(f);
}

/* Our fds 0-2 back, once we return to our caller: the fibers' stay while
 * we only poll between their turns. */
static void restore_ours(void)
{
	fflush(stdout);	/* the last one's, to its fd 1 */
	for (int i = 0; i < 3; i++)
		if (installed[i] >= 0) {
			dup2(saved[i], i);
			installed[i] = -1;
		}
}

static int any_alive(void)
{
	for (struct fiber *f = fibers; f; f = f->next)
		if (f->state != F_DONE)
			return 1;
	return 0;
}

/* Every waiting fiber wakes with poll's failure (an interrupt). */
static void wake_all(int err)
{
	for (struct fiber *f = fibers; f; f = f->next)
		if (f->state == F_WAITING) {
			f->state = F_READY;
			f->result = -1;
			f->result_errno = err;
		}
}

/* f's fds into to (f->n of them), as they are outside f: its 0-2 are
 * not ours. */
static void real_fds(const struct fiber *f, struct pollfd *to)
{
	for (nfds_t i = 0; i < f->n; i++)
		to[i] = (struct pollfd){ f->fds[i].fd < 0 ? -1 : own_fd(f, f->fds[i].fd),
					 f->fds[i].events, 0 };
}

#ifdef __linux__
/* Watches fd for one event of those asked (EPOLLONESHOT: each wait arms
 * its own, so that nothing fires for a wait that is over). 0; or 1 when
 * epoll cannot watch it (a regular file, /dev/null, which poll(2) calls
 * ready; a closed fd, which poll(2) names): look at it now. The fd is
 * new to the set, or was there already, perhaps as an earlier file of
 * that number (closed since: MOD finds it gone, ADD then holds). */
static int arm(int fd, short events)
{
	struct epoll_event ev = { .events = EPOLLONESHOT, .data.fd = fd };
	if (events & POLLIN)
		ev.events |= EPOLLIN;
	if (events & POLLOUT)
		ev.events |= EPOLLOUT;
	if (events & POLLPRI)
		ev.events |= EPOLLPRI;
	if (!epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev))
		return 0;
	if (errno == ENOENT && !epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		return 0;
	return 1;
}

static void arm_fiber(struct fiber *f)
{
	f->maybe = 0;
	for (nfds_t i = 0; i < f->n; i++)
		if (f->fds[i].fd >= 0 && arm(own_fd(f, f->fds[i].fd), f->fds[i].events))
			f->maybe = 1;
}

/* What epoll names: the waiting fibers with one of those fds, to be
 * looked at (an event of an fd closed and of its number reused since is
 * a look for nothing: the look, not the event, decides). */
static void take_events(void)
{
	struct epoll_event ev[64];
	int k;
	do {
		k = epoll_wait(ep, ev, 64, 0);
		for (int i = 0; i < k; i++)
			for (struct fiber *f = fibers; f; f = f->next)
				for (nfds_t j = 0; f->state == F_WAITING && !f->maybe && j < f->n; j++)
					if (f->fds[j].fd >= 0 && own_fd(f, f->fds[j].fd) == ev[i].data.fd)
						f->maybe = 1;
	} while (k == 64);
}

/* f's fds as poll(2) has them now (into their revents): how many are
 * ready. */
static int look(struct fiber *f)
{
	struct pollfd small[8], *p = f->n > 8 ? xcalloc(f->n, sizeof(*p)) : small;
	real_fds(f, p);
	int got = poll(p, f->n, 0);
	for (nfds_t i = 0; i < f->n; i++)
		f->fds[i].revents = got > 0 ? p[i].revents : 0;
	if (p != small)
		free(p);
	return got > 0 ? got : 0;
}
#endif

/* How many fds the waiting fibers wait on. */
static nfds_t fibers_fds(void)
{
	nfds_t total = 0;
	for (struct fiber *f = fibers; f; f = f->next)
		if (f->state == F_WAITING)
			total += f->n;
	return total;
}

/* After the poll: which waiting fibers have what they wait for, or
 * their time up (the fds in all from k on are theirs, unless epoll
 * watches them). */
static void wake_waiting(const struct pollfd *all, nfds_t k, long long now)
{
	for (struct fiber *f = fibers; f; f = f->next) {
		if (f->state != F_WAITING)
			continue;
		int got = 0, due = f->deadline >= 0 && now >= f->deadline;
#ifdef __linux__
		if (ep >= 0) {
			if (!f->maybe && !due)
				continue;
			got = f->maybe ? look(f) : 0;
			if (!got && !due) {
				arm_fiber(f);	/* nothing after all: again */
				continue;
			}
		} else
#endif
		{
			for (nfds_t i = 0; i < f->n; i++)
				got += (f->fds[i].revents = all[k + i].revents) != 0;
			k += f->n;
			if (!got && !due)
				continue;
		}
		f->state = F_READY;
		f->result = got;
		f->result_errno = 0;
	}
}

/* Outside every fiber: polls fds, and the waiting fibers' (through
 * epoll, or in the same poll), running the fibers that become ready,
 * until fds say something or the deadline passes. */
static int poll_outside(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	for (;;) {
		run_ready();
		long long next = deadline;
		for (struct fiber *f = fibers; f; f = f->next)
			if (f->state == F_WAITING && f->deadline >= 0 &&
			    (next < 0 || f->deadline < next))
				next = f->deadline;
#ifdef __linux__
		nfds_t theirs = ep >= 0 ? 1 : fibers_fds();
#else
		nfds_t theirs = fibers_fds();
#endif
		nfds_t total = n + theirs;
		struct pollfd *all = xcalloc(total ? total : 1, sizeof(*all));
		if (n)
			memcpy(all, fds, n * sizeof(*fds));
		/* ours of 0-2 are saved while a fiber's are in place */
		for (nfds_t i = 0; i < n; i++)
			if (all[i].fd >= 0 && all[i].fd < 3 && installed[all[i].fd] >= 0)
				all[i].fd = saved[all[i].fd];
#ifdef __linux__
		if (ep >= 0)
			all[n] = (struct pollfd){ ep, POLLIN, 0 };
		else
#endif
		{
			nfds_t k = n;
			for (struct fiber *f = fibers; f; f = f->next)
				if (f->state == F_WAITING) {
					real_fds(f, all + k);
					k += f->n;
				}
		}
		long long wait = next < 0 ? -1 : next - now_ms();
		int r = poll(all, total, wait < 0 ? (next < 0 ? -1 : 0) : (int)wait);
		int err = errno;
		if (r < 0) {
			free(all);
			wake_all(err);
			run_ready();
			restore_ours();
			errno = err;
			return -1;
		}
		int mine = 0;
		for (nfds_t i = 0; i < n; i++)
			mine += (fds[i].revents = all[i].revents) != 0;
#ifdef __linux__
		if (ep >= 0 && all[n].revents)
			take_events();
#endif
		long long now = now_ms();
		wake_waiting(all, n, now);
		free(all);
		if (mine || (deadline >= 0 && now >= deadline)) {
			run_ready();
			restore_ours();
			return mine;
		}
	}
}

int fiber_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct fiber *f = current;

	if (!f)
		return any_alive() ? poll_outside(fds, n, timeout_ms) : poll(fds, n, timeout_ms);
	if (timeout_ms == 0)
		return poll(fds, n, 0);
	for (nfds_t i = 0; i < n; i++)
		fds[i].revents = 0;
	f->fds = fds;
	f->n = n;
	f->deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	f->state = F_WAITING;
#ifdef __linux__
	if (ep >= 0)
		arm_fiber(f);
#endif
	switch_out(f, 0);
	errno = f->result_errno;
	return f->result;
}

pid_t fiber_waitpid(pid_t pid, int *status, int options)
{
	if (!current || (options & WNOHANG))
		return waitpid(pid, status, options);
	for (;;) {
		pid_t r = waitpid(pid, status, options | WNOHANG);
		if (r != 0)
			return r;
#ifdef SYS_pidfd_open
		/* readable once the child has ended */
		int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pfd >= 0) {
			struct pollfd p = { pfd, POLLIN, 0 };
			int got = fiber_poll(&p, 1, -1);
			int err = errno;
			close(pfd);
			if (got < 0 && err == EINTR) {
				errno = EINTR;
				return -1;
			}
			continue;
		}
#endif
		fiber_sleep_ms(10);
	}
}

void fiber_sleep_ms(long ms)
{
	long long until = now_ms() + ms;
	long long left;
	while ((left = until - now_ms()) > 0)
		if (fiber_poll(NULL, 0, (int)left) < 0 && errno == EINTR)
			return;
}

int fiber_wait_readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return fiber_poll(&p, 1, -1) < 0 ? -1 : 0;
}

void fiber_forget(void)
{
	/* (in a copy of this process: its fibers are its parent's) */
	fibers = NULL;
	current = NULL;
#ifdef __linux__
	if (ep >= 0) {
		close(ep);	/* the parent's watches: not this copy's to change */
		ep = -1;
	}
#endif
}
