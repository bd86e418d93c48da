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
 * reading its stdout and stderr together with poll(): nix writes progress
 * on stderr and results on stdout, and reading one after the other can
 * deadlock on a full pipe.
 *
 * Exit statuses: a normal exit gives its status; death by signal N gives
 * 128 + N, as shells report it.
 *
 * Signals: run_signals_install() makes SIGINT, SIGTERM and SIGHUP set a
 * flag and forward SIGTERM to every running child (ssh without a tty does
 * not forward signals to the remote side, so stopping our ssh clients is
 * what stops remote work). The running-children table and the flag are the
 * only process-wide state in lib/, because a signal handler can reach
 * nothing else. The table has room for any number of children: it grows
 * in child_start, with those signals blocked while it does.
 */
#ifndef NRR_RUN_H
#define NRR_RUN_H

#include <sys/types.h>

#include "error.h"
#include "strbuf.h"
#include "strvec.h"

enum child_io {
	CHILD_INHERIT = 0,
	CHILD_NULL,	/* /dev/null */
	CHILD_PIPE,	/* a pipe; our end is left in in_fd/out_fd/err_fd */
	CHILD_FD,	/* the fd in in_fd/out_fd/err_fd (closed by us after start) */
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
};

#define CHILD_INIT { STRVEC_INIT, STRVEC_INIT, CHILD_INHERIT, CHILD_INHERIT, \
		     CHILD_INHERIT, -1, -1, -1, 0, -1, -1, 0, -1 }

void child_init(struct child *c);
/* Frees args and env; does not wait. */
void child_clear(struct child *c);

/* Starts c. Returns 0, or fills e (status NRR_EFAIL) and returns -1. */
int child_start(struct child *c, struct nrr_err *e);
/* Waits for c; returns its exit status (128+N for signal N). */
int child_wait(struct child *c);
/* 1 and the status in *status if c has exited, 0 if it still runs. */
int child_poll(struct child *c, int *status);
/* Sends sig to c if it runs. */
void child_kill(struct child *c, int sig);

/*
 * Runs c to completion. input (may be NULL) of inlen bytes is written to
 * its stdin (with no input, stdin is what c->in says); out and err (may be NULL) collect stdout and stderr. When
 * echo_fd >= 0, stderr is also copied there as it arrives (live progress).
 * Returns the exit status, or -1 with e filled if it could not start.
 */
int child_capture(struct child *c, const void *input, size_t inlen,
		  struct strbuf *out, struct strbuf *err, int echo_fd,
		  struct nrr_err *e);

/* For poll loops: reads what is available on *fd into sb (copying it to
 * echo_fd if >= 0); at EOF or on error closes *fd and sets it to -1. */
void fd_drain(int *fd, struct strbuf *sb, int echo_fd);
/* For poll loops: writes what it can of *buf (*len bytes) to *fd and
 * advances; once all is written closes *fd and sets it to -1, unless
 * keep_open. Returns -1 (fd closed) if the reader is gone, else 0. */
int fd_feed(int *fd, const char **buf, size_t *len, int keep_open);

/* The same, handing every chunk of stderr to on_err as it arrives. */
int child_capture_cb(struct child *c, const void *input, size_t inlen,
		     struct strbuf *out, struct strbuf *err,
		     void (*on_err)(void *data, const char *buf, size_t n),
		     void *data, struct nrr_err *e);

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
