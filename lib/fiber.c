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
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "pump.h"
#include "strbuf.h"

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif
#ifdef FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
/* its frames carry red zones: more room for the same code */
#define STACK_SIZE (4u << 20)
#else
#define STACK_SIZE (1u << 20)
#endif

/*
 * A context: where a fiber, or the code outside every fiber, stopped.
 * On x86-64, switching is ours: the callee-saved registers pushed on the
 * stack being left, its pointer kept, the other's loaded. swapcontext(3)
 * does the same and also saves and sets the signal mask, two system
 * calls a switch and so four a turn, for a mask that is the same in
 * every fiber here (lib/run.c blocks signals only around what never
 * gives way). Elsewhere, and where the compiler promises a shadow stack
 * (__CET__, which a switch of ours would break), ucontext it is (and
 * with -DFIBER_UCONTEXT).
 */
#if defined(__x86_64__) && !defined(__CET__) && !defined(FIBER_UCONTEXT)
struct ctx {
	void *sp;
};
/* Saves the callee-saved registers and the FPU's control words on the
 * current stack, its pointer into *save; then loads load's. */
void nrr_fiber_switch(void **save, void *load) __attribute__((visibility("hidden")));
__asm__(".text\n"
	".globl nrr_fiber_switch\n"
	".type nrr_fiber_switch, @function\n"
	"nrr_fiber_switch:\n"
	"	pushq %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	subq $8, %rsp\n"
	"	stmxcsr (%rsp)\n"
	"	fnstcw 4(%rsp)\n"
	"	movq %rsp, (%rdi)\n"
	"	movq %rsi, %rsp\n"
	"	ldmxcsr (%rsp)\n"
	"	fldcw 4(%rsp)\n"
	"	addq $8, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	ret\n"
	".size nrr_fiber_switch, .-nrr_fiber_switch\n");

/* A context that starts entry on the stack [base, base + size), as if
 * nrr_fiber_switch had saved it just before a call of entry: the return
 * address entry, zeroed registers, the FPU's default control words. */
static void ctx_make(struct ctx *c, void *base, size_t size, void (*entry)(void))
{
	uintptr_t top = ((uintptr_t)base + size) & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)top;

	*--sp = 0;			/* entry's own return address: it never returns */
	*--sp = (uint64_t)(uintptr_t)entry;
	for (int i = 0; i < 6; i++)
		*--sp = 0;		/* rbp, rbx, r12-r15 */
	*--sp = 0x037fULL << 32 | 0x1f80;	/* x87 control word, MXCSR */
	c->sp = sp;
}

static void ctx_switch(struct ctx *save, struct ctx *load)
{
	nrr_fiber_switch(&save->sp, load->sp);
}
#else
struct ctx {
	ucontext_t uc;
};

static void ctx_make(struct ctx *c, void *base, size_t size, void (*entry)(void))
{
	getcontext(&c->uc);
	c->uc.uc_stack.ss_sp = base;
	c->uc.uc_stack.ss_size = size;
	c->uc.uc_link = NULL;
	makecontext(&c->uc, entry, 0);
}

static void ctx_switch(struct ctx *save, struct ctx *load)
{
	swapcontext(&save->uc, &load->uc);
}
#endif

enum fiber_state { F_READY, F_WAITING, F_DONE };

struct fiber {
	struct ctx ctx;
	void *map;		/* the stack, with a guard page below it */
	size_t map_size;
	void *stack;		/* its usable part, STACK_SIZE bytes */
	fiber_fn *fn;
	void *arg;
	int in, err;
	FILE *err_file;		/* stderr while it runs: writes to err */
	enum fiber_state state;
	int ret;
	/* while waiting: what for, and until when (ms, -1: no limit) */
	struct pollfd *fds;
	nfds_t n;
	long long deadline;
	/* what its fiber_poll returns */
	int result, result_errno;
	/* epoll: this wait's number (in each event of its fds); one of its
	 * fds cannot be watched (look now); one fired (its revents set) */
	uint32_t gen;
	int maybe, fired;
	struct strbuf *report;	/* fiber_set_report's sink, or NULL */
	struct fiber *next;
};

static struct fiber *fibers;
static struct fiber *current;
static struct ctx outside;
/* /dev/null: a fiber's stdout's fd (a host's child had none either), and
 * its stdin's without one of its own */
static int null_fd = -1;
/* a fiber's stdout: what it prints goes nowhere, without a system call */
static FILE *null_file;
#ifdef __linux__
/* the waiting fibers' fds, watched by epoll while fibers live (-1: none,
 * and their fds go into the one poll(2) as the outside's do). A poll(2)
 * of every host's fds at every turn was a tenth of a fleet's CPU at 50
 * hosts, and grows with the fleet; epoll costs a wait its own fds. */
static int ep = -1;
/* the last wait's number: an event of an earlier wait is stale */
static uint32_t gens;
#endif
/* The stacks of fibers that ended, for the next ones, each holding the
 * next's address in its top word. A new stack's pages each fault at their
 * first touch, and an unmapping is a flush of the TLB: a fleet of
 * --parallel N uses N stacks however many hosts it has. They stay until
 * the process ends, as the memory malloc is given back does. */
static void *spare_stacks;
/* How many reports and ends of fibers there were; whether a wait outside
 * returns at the next (fiber_wake_on_news) */
static unsigned long news;
static int wake_on_news;
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

static ssize_t to_err(void *cookie, const char *buf, size_t n)
{
	const struct fiber *f = cookie;
	return fd_write_all(f->err, buf, n) ? -1 : (ssize_t)n;
}

static ssize_t to_nothing(void *cookie, const char *buf, size_t n)
{
	(void)cookie;
	(void)buf;
	return (ssize_t)n;
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
	ctx_switch(&f->ctx, &outside);
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
	news++;
	switch_out(f, 1);
}

/* The top word of f's stack: a spare stack's link to the next. */
static void **top_word(const struct fiber *f)
{
	return (void **)((char *)f->map + f->map_size - sizeof(void *));
}

int fiber_report_fd(void)
{
	if (null_fd < 0)
		null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	return null_fd;
}

void fiber_set_report(struct fiber *f, struct strbuf *sink)
{
	f->report = sink;
}

struct strbuf *fiber_report(int fd)
{
	if (!current || fd < 0 || fd != null_fd || !current->report)
		return NULL;
	news++;
	return current->report;
}

void fiber_wake_on_news(int on)
{
	wake_on_news = on;
}

struct fiber *fiber_new(fiber_fn *fn, void *arg, int in, int err)
{
	long page = sysconf(_SC_PAGESIZE);
	struct fiber *f;

	if (fiber_report_fd() < 0)
		return NULL;
	if (!null_file &&
	    !(null_file = fopencookie(NULL, "w", (cookie_io_functions_t){ .write = to_nothing })))
		return NULL;
#ifdef __linux__
	if (!fibers && ep < 0)
		ep = epoll_create1(EPOLL_CLOEXEC);	/* none: poll(2) alone */
#endif
	f = xcalloc(1, sizeof(*f));
	/* all of it before ctx_make(), whose getcontext() returns twice to the
	 * compiler's eyes: nothing of ours is read after it */
	f->fn = fn;
	f->arg = arg;
	f->in = in < 0 ? null_fd : in;
	f->err = err;
	/* unbuffered, as stderr is: each line whole, in its order */
	f->err_file = fopencookie(f, "w", (cookie_io_functions_t){ .write = to_err });
	if (!f->err_file) {
		free(f);
		return NULL;
	}
	setvbuf(f->err_file, NULL, _IONBF, 0);
	f->map_size = STACK_SIZE + (size_t)page;
	if (spare_stacks) {
		f->map = spare_stacks;
#ifdef FIBER_ASAN
		/* what the last fiber's frames left poisoned */
		__asan_unpoison_memory_region((char *)f->map + page, STACK_SIZE);
#endif
		spare_stacks = *top_word(f);
	} else {
		/* untouched pages cost nothing: a host's deploy touches a dozen */
		f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		if (f->map == MAP_FAILED) {
			fclose(f->err_file);
			free(f);
			return NULL;
		}
		mprotect(f->map, (size_t)page, PROT_NONE);	/* an overflow faults */
	}
	f->stack = (char *)f->map + page;
	ctx_make(&f->ctx, f->stack, STACK_SIZE, trampoline);
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
#ifdef FIBER_ASAN
	__asan_unpoison_memory_region(top_word(f), sizeof(void *));
#endif
	*top_word(f) = spare_stacks;
	spare_stacks = f->map;
	fclose(f->err_file);
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

int fiber_std_fd(int fd)
{
	return current ? own_fd(current, fd) : fd;
}

/* Runs f until it waits again or ends, with its own stdout and stderr.
 * Only the FILE pointers change: the fds 0-2 of this process stay ours,
 * and a fiber's are named by fiber_std_fd (a dup2 of each was two system
 * calls a turn, and a host takes a few dozen turns). */
static void resume(struct fiber *f)
{
	FILE *our_out = stdout, *our_err = stderr;

	stdout = null_file;
	stderr = f->err_file;
	current = f;
#ifdef FIBER_ASAN
	void *fake = NULL;
	__sanitizer_start_switch_fiber(&fake, f->stack, STACK_SIZE);
#endif
	ctx_switch(&outside, &f->ctx);
#ifdef FIBER_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	current = NULL;
	stdout = our_out;
	stderr = our_err;
}

static void run_ready(void)
{
	for (struct fiber *f = fibers; f; f = f->next)
		if (f->state == F_READY)
			resume(f);
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
 * its own, so that nothing fires for a wait that is over), the event to
 * carry gen. 0; or 1 when epoll cannot watch it (a regular file,
 * /dev/null, which poll(2) calls ready; a closed fd, which poll(2)
 * names): look at it now. The fd is new to the set, or was there
 * already, perhaps as an earlier file of that number (closed since: MOD
 * finds it gone, ADD then holds; the earlier file's registration, if a
 * child still holds that file, fires with an earlier wait's number). */
static int arm(int fd, short events, uint32_t gen)
{
	struct epoll_event ev = { .events = EPOLLONESHOT,
				  .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd };
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

/* Arms f's fds for a new wait: each once, for what any entry of it asks
 * (a second arming of an fd would replace the first's events). */
static void arm_fiber(struct fiber *f)
{
	f->maybe = f->fired = 0;
	if (!++gens)
		++gens;		/* 0 is no wait's */
	f->gen = gens;
	for (nfds_t i = 0; i < f->n; i++) {
		f->fds[i].revents = 0;
		if (f->fds[i].fd < 0)
			continue;
		int fd = own_fd(f, f->fds[i].fd), again = 0;
		short events = f->fds[i].events;
		for (nfds_t j = 0; j < f->n; j++)
			if (j != i && f->fds[j].fd >= 0 && own_fd(f, f->fds[j].fd) == fd) {
				again |= j < i;
				events |= f->fds[j].events;
			}
		if (!again && arm(fd, events, f->gen))
			f->maybe = 1;
	}
}

/* poll(2)'s names of an epoll event's bits. */
static short poll_bits(uint32_t ev)
{
	return (short)((ev & EPOLLIN ? POLLIN : 0) | (ev & EPOLLOUT ? POLLOUT : 0) |
		       (ev & EPOLLPRI ? POLLPRI : 0) | (ev & EPOLLERR ? POLLERR : 0) |
		       (ev & EPOLLHUP ? POLLHUP : 0));
}

/* What epoll says, into the revents of the fibers whose wait armed it
 * (the number an event carries names the wait: an earlier one's, of an
 * fd closed and of its number reused since, is dropped). A fiber's event
 * says what poll(2) would of that fd, so no look is needed. */
static void take_events(void)
{
	struct epoll_event ev[64];
	int k;
	do {
		k = epoll_wait(ep, ev, 64, 0);
		for (int i = 0; i < k; i++) {
			uint32_t gen = (uint32_t)(ev[i].data.u64 >> 32);
			int fd = (int)(uint32_t)ev[i].data.u64;
			struct fiber *f = fibers;
			while (f && !(f->state == F_WAITING && f->gen == gen))
				f = f->next;
			for (nfds_t j = 0; f && j < f->n; j++) {
				if (f->fds[j].fd < 0 || own_fd(f, f->fds[j].fd) != fd)
					continue;
				short got = poll_bits(ev[i].events) &
					    (f->fds[j].events | POLLERR | POLLHUP);
				f->fds[j].revents |= got;
				f->fired |= got != 0;
			}
		}
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
			if (!f->maybe && !f->fired && !due)
				continue;
			if (f->maybe)
				got = look(f);
			else
				for (nfds_t i = 0; i < f->n; i++)
					got += f->fds[i].revents != 0;
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
	unsigned long seen = news;

	for (;;) {
		run_ready();
		if (wake_on_news && news != seen) {
			for (nfds_t i = 0; i < n; i++)
				fds[i].revents = 0;
			return 0;
		}
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
		/* poll(2) of the epoll fd, then a look, even with nothing else
		 * to poll: epoll_wait(2) fails with EINTR after a stop and
		 * SIGCONT (Ctrl-Z and fg, a tracer's every stop: signal(7)),
		 * which would wake every waiting fiber as an interrupt; poll(2)
		 * resumes */
		int r = poll(all, total, wait < 0 ? (next < 0 ? -1 : 0) : (int)wait);
		int err = errno;
		if (r < 0) {
			free(all);
			wake_all(err);
			run_ready();
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
	if (current) {
		/* made by a fiber: the copy is that deploy's own process, its
		 * stdio the fiber's (the FILEs are already) */
		int want[3] = { current->in, null_fd, current->err };
		for (int i = 0; i < 3; i++)
			dup2(want[i], i);
	}
	fibers = NULL;
	current = NULL;
#ifdef __linux__
	if (ep >= 0) {
		close(ep);	/* the parent's watches: not this copy's to change */
		ep = -1;
	}
#endif
}
