/*
 * async: a function run in a forked copy of this process beside our own
 * loop, as git's start_async (without threads: nothing in lib/ is
 * thread-safe). The copy tells us what it does through a socket (a
 * stream: a pipe that also carries what we tell it, if anything).
 *
 * The copy keeps stdin, stdout and stderr and its end of the socket
 * (proc's fd); every other fd of ours is closed there, our children are
 * not its (run_fork), it dies with us (Linux), and it ends with
 * _exit(proc(fd, data)): no atexit handler of ours runs twice, and stdio's
 * buffers are flushed before the fork so that nothing is written twice.
 * What proc changes in memory is the copy's: only the pipe tells us.
 */
#ifndef NRR_ASYNC_H
#define NRR_ASYNC_H

#include "error.h"
#include "run.h"

struct async {
	int (*proc)(int fd, void *data);
	void *data;
	int out;		/* ours: our end of the socket (nonblocking), or -1 */
	struct child c;		/* the copy, for child_wait/child_kill */
};

/* Starts a->proc in a copy. Returns 0, or -1 with e filled (NRR_EFAIL). */
int async_start(struct async *a, struct nrr_err *e);

/* Waits for the copy, closing a->out if still open. Returns what proc
 * returned (its low 8 bits), 128 + N if signal N ended it, -1 if there
 * was no copy. */
int async_finish(struct async *a);

/* Once a->out is closed: waits for the copy. err (what the copy said, if
 * anything) is cleared when it succeeded, else, if it said nothing, set
 * to "WHAT stopped (status N)". */
void async_settle(struct async *a, struct nrr_err *err, const char *what);

/* A copy still running: SIGTERM, then waits for it. */
void async_stop(struct async *a);

/* In the copy: a line to us on fd, cut to fit (a socket's write of it is
 * whole, so lines never interleave). */
void async_say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* In the copy: the line "KIND TEXT", TEXT's tabs and line ends made
 * spaces. */
void async_say_text(int fd, char kind, const char *text);

/* In the copy: e's failure as the line "e STATUS<TAB>MESSAGE<TAB>HINT"
 * (tabs and line ends in them made spaces). */
void async_say_error(int fd, const struct nrr_err *e);

/* Ours: such a line (starting "e ") into e. */
void async_take_error(const char *line, struct nrr_err *e);

#endif
