/*
 * fiber: many deploys in one process, each on a stack of its own.
 *
 * A fleet's hosts each ran in a process of this program, and most of what
 * a host cost this machine was that process: its exec, the loader, its
 * page faults and its exit (the same deploy costs about a quarter as much
 * run again in a process that is already up: bench/README.md). A fiber runs
 * the same code in the fleet's process, cooperatively: it gives way only
 * where it would block, in fiber_poll, fiber_waitpid and fiber_sleep_ms,
 * which lib/ calls in place of poll(2), waitpid(2) and sleeping. Whoever
 * waits outside every fiber (the fleet's loop, through those same calls)
 * runs the fibers that are ready meanwhile, with one poll(2) over its own
 * descriptors and an epoll instance that watches those the fibers wait
 * for (each wait arms its own; without epoll, they go into the one poll
 * too). With no fiber alive, each call is the plain system call.
 *
 * A fiber's stdin and stderr are its own, and its stdout goes nowhere,
 * as a host's process had them: while it runs, stderr and stdout are
 * FILEs of its own; the fds 0-2 themselves stay this process's, and code
 * that uses one by its number asks fiber_std_fd for the fiber's (lib/run.c
 * does, for the commands a fiber starts, which inherit them). The caller
 * keeps in and err open until the fiber is done.
 *
 * The list of fibers, the one running and the epoll instance are the only
 * state of this module, process-wide as the stack pointer itself is;
 * nothing else of lib/ may keep state across a wait (fibers interleave
 * there).
 */
#ifndef NRR_FIBER_H
#define NRR_FIBER_H

#include <poll.h>
#include <sys/types.h>

struct fiber;
struct strbuf;

typedef int fiber_fn(void *arg);

/*
 * A fiber that will run fn(arg) with in (-1: /dev/null) and err as its
 * fds 0 and 2; it
 * first runs in the next wait outside every fiber. NULL, errno set, when
 * no stack could be mapped. Free it with fiber_free once fiber_done says
 * so.
 */
struct fiber *fiber_new(fiber_fn *fn, void *arg, int in, int err);

/* 1, with fn's result in *ret, once the fiber's fn has returned. */
int fiber_done(const struct fiber *f, int *ret);

/* The fd that is fd (0, 1 or 2) for the fiber running now: its stdin,
 * /dev/null, its stderr; any other fd, or outside every fiber, fd itself. */
int fiber_std_fd(int fd);

/*
 * A fiber's report, kept in memory: while f runs, what lib/fleetproto.c
 * would write to fiber_report_fd() is appended to sink (the caller's,
 * kept until f is done) instead, without a system call, for whoever
 * started f to read as it likes. A fleet's every host said a dozen lines
 * through a pipe of its own, and each pass over the hosts polled every
 * one of those pipes: a tenth of the fleet's CPU at 50 hosts. The fd is
 * /dev/null, so a write that goes around the sink is lost, never someone
 * else's. fiber_report_fd() is -1 when /dev/null cannot be opened.
 */
int fiber_report_fd(void);
void fiber_set_report(struct fiber *f, struct strbuf *sink);
/* The running fiber's sink, if fd is fiber_report_fd(); else NULL. */
struct strbuf *fiber_report(int fd);
/*
 * With on, a wait outside every fiber (fiber_poll, and so pump) also
 * ends, returning 0 as if its time ran out, once a fiber has written to
 * its report or ended since the wait began: for a caller that reads the
 * reports between its waits, woken by what they say rather than by a
 * timer. Off (0) by default, and for fiber_sleep_ms.
 */
void fiber_wake_on_news(int on);

/* Frees a fiber that is done (its stack too). */
void fiber_free(struct fiber *f);

/*
 * poll(2), giving way to the other fibers until something is ready or
 * timeout_ms passes (-1: no limit). Outside every fiber it runs the ready
 * fibers meanwhile. Returns what poll(2) does: -1 with EINTR when a signal
 * came (to every fiber waiting then, so that each sees the interrupt).
 */
int fiber_poll(struct pollfd *fds, nfds_t n, int timeout_ms);

/* waitpid(2) of one child (pid > 0), giving way while it runs. */
pid_t fiber_waitpid(pid_t pid, int *status, int options);

/* Sleeps ms, giving way meanwhile. */
void fiber_sleep_ms(long ms);

/* Waits until fd is readable (or ended); 0, or -1 on EINTR or an error. */
int fiber_wait_readable(int fd);

/* In a copy of this process (fork without exec): the fibers are the
 * parent's, not the copy's to run. */
void fiber_forget(void);

#endif
