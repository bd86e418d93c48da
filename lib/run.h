/*
 * run: the one way this program starts another.
 *
 * A child is described by a struct child: its argv, changes to the
 * environment, and what each of stdin, stdout and stderr should be
 * (inherited, /dev/null, a pipe to us, or a given fd). child_start()
 * forks and execs with only async-signal-safe calls in between: signal
 * dispositions and mask reset, unneeded fds closed, and a failed exec
 * reported to the parent through a close-on-exec pipe, so "cannot run
 * 'nix'" is an error here rather than a mysterious exit 127.
 *
 * child_capture() runs a child to completion while feeding its stdin and
 * reading its stdout and stderr together with poll() (through pump(), the
 * one poll loop): nix writes progress on stderr and results on stdout, and
 * reading one after the other can deadlock on a full pipe.
 *
 * Exit statuses: a normal exit gives its status; death by signal N gives
 * 128 + N, as shells report it.
 *
 * Signals: run_signals_install() makes SIGINT, SIGTERM and SIGHUP set a
 * flag and forward SIGTERM to every running child (ssh without a tty does
 * not forward signals to the remote side, so stopping our ssh clients is
 * what stops remote work). The running-children table and the flag are
 * process-wide state, because a signal handler can reach nothing else (as
 * are the commands found in PATH, once a process, and lib/fiber.h's
 * fibers). The table has room for any number of children: it grows
 * in child_start, with those signals blocked while it does.
 */
#ifndef NRR_RUN_H
#define NRR_RUN_H

#include <sys/types.h>

#include "error.h"
#include "pump.h"
#include "strbuf.h"
#include "strvec.h"

enum child_io {
	CHILD_INHERIT = 0,
	CHILD_NULL,	/* /dev/null */
	CHILD_PIPE,	/* a pipe; our end is left in in_fd/out_fd/err_fd */
	CHILD_FD,	/* the fd in in_fd/out_fd/err_fd (closed by us after start) */
	/* a stream socket (socketpair) in place of a pipe: it wakes its
	 * writer only once it has much room (a pipe does at every read of
	 * its reader), and it takes sendfile(2) */
	CHILD_SOCKET,
};

struct child {
	struct strvec args;
	struct strvec env;	/* "NAME=VALUE" sets, "NAME" unsets */
	enum child_io in, out, err;
	int in_fd, out_fd, err_fd;
	int die_with_parent;	/* Linux: SIGTERM the child when we die */
	/* one more fd for the child: map_fd (ours) becomes map_to (>= 3)
	 * there; -1 for none */
	int map_fd, map_to;
	int keep_stdin_open;	/* child_capture: close stdin only at exit */
	pid_t pid;
	/* an evaluator: its own process group, which child_capture kills
	 * (SIGKILL) a moment after an interrupt if it has not ended by then;
	 * nix 2.8 does not look at signals inside some builtins */
	int stop_group;
};

#define CHILD_INIT { .args = STRVEC_INIT, .env = STRVEC_INIT, \
		     .in = CHILD_INHERIT, .out = CHILD_INHERIT, .err = CHILD_INHERIT, \
		     .in_fd = -1, .out_fd = -1, .err_fd = -1, .die_with_parent = 0, \
		     .map_fd = -1, .map_to = -1, .keep_stdin_open = 0, .pid = -1, \
		     .stop_group = 0 }

void child_init(struct child *c);
/* Frees args and env; does not wait. */
void child_clear(struct child *c);

/* Starts c. Returns 0, or fills e (status NRR_EFAIL) and returns -1. */
int child_start(struct child *c, struct nrr_err *e);
/*
 * fork() for a copy of this process that does not exec (lib/async.h):
 * in the copy, our children are forgotten (an interrupt reaches only its
 * own), every fd from 3 up but keep_fd is closed, and it dies with us
 * (Linux); in the parent, the copy is tracked as a child (waited for with
 * a struct child whose pid it is). Returns fork()'s result.
 */
pid_t run_fork(int keep_fd);
/* Waits for c; returns its exit status (128+N for signal N). */
int child_wait(struct child *c);
/* 1 and the status in *status if c has exited, 0 if it still runs. */
int child_poll(struct child *c, int *status);
/* Sends sig to c if it runs. */
void child_kill(struct child *c, int sig);

/*
 * What child_capture() gives a child and takes from it (git's
 * pipe_command, as a struct). Every field may be left as CAPTURE_INIT
 * sets it:
 *   in, in_len  written to stdin, which is closed after it (unless the
 *               child's keep_stdin_open); NULL: stdin is what c->in says
 *   out, err    collect stdout and stderr; NULL: c->out/c->err as set
 *   echo_fd     >= 0: stderr is also copied there as it arrives
 *   on_err      called with every chunk of stderr as it arrives (with data)
 */
struct capture {
	const void *in;
	size_t in_len;
	struct strbuf *out, *err;
	int echo_fd;
	void (*on_err)(void *data, const char *buf, size_t n);
	void *data;
};
#define CAPTURE_INIT { .in = NULL, .in_len = 0, .out = NULL, .err = NULL, \
		       .echo_fd = -1, .on_err = NULL, .data = NULL }

/*
 * Runs c to completion as cap says. Returns the exit status, or -1 with e
 * filled if it could not start. A c started already (its pipes as cap
 * says) is taken as it is.
 */
int child_capture(struct child *c, const struct capture *cap,
		  struct nrr_err *e);

/* Writes all n bytes of p to fd (retrying on EINTR); gives up on an error. */
/*
 * Runs the n children cs[], at most at_once at a time (0: all at once),
 * each with stdin /dev/null, collecting child i's stdout in outs[i], its
 * stderr in errs[i] and its exit status in sts[i] (child_capture for
 * many, through one pump). After an interrupt no more start, and children
 * with stop_group lose their process group 250 ms later, as with
 * child_capture. Returns 0, or -1 with e filled if a child could not
 * start: no more start, the ones started are waited for, the others'
 * sts[] are untouched. The caller clears cs[].
 */
int child_capture_all(struct child *cs, size_t n, size_t at_once, struct strbuf *outs,
		      struct strbuf *errs, int *sts, struct nrr_err *e);


/*
 * Runs argv on our terminal (stdin, stdout and stderr inherited) and
 * waits. Returns 0, or NRR_EFAIL with e naming the command and its status
 * (or why it could not start).
 */
int child_run(const struct strvec *argv, struct nrr_err *e);

/*
 * Finds an executable named name in PATH (or name itself if it has a '/').
 * Returns a string the caller must free(), or NULL.
 */
char *find_in_path(const char *name);

void run_signals_install(void);
/* How many started children are not waited for yet (tests). */
size_t run_children_tracked(void);
/* The signal number that interrupted the run, or 0. */
int run_interrupted(void);

#endif
