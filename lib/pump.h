/*
 * pump: reading and writing the pipes of our children, and the one poll()
 * over any number of them.
 *
 * A child's stdout and stderr are read together (nix writes progress on
 * one and results on the other: reading them in turn can deadlock on a
 * full pipe), while its stdin is fed, all in one loop, pump(), which
 * child_capture() (lib/run.h), a session's conversation and a fleet's
 * parent each drive. The fd_ helpers are its steps, and what a caller
 * with one fd needs. Nothing here allocates what a caller must free, and
 * nothing blocks but pump() (up to its timeout) and fd_write_all() /
 * fd_read_exact() on a blocking fd.
 */
#ifndef NRR_PUMP_H
#define NRR_PUMP_H

#include <stddef.h>

#include "strbuf.h"

/* Writes all n bytes of p to fd, again after EINTR. Returns 0, or -1 when
 * fd takes no more (its reader gone: callers that only echo ignore it). */
int fd_write_all(int fd, const void *p, size_t n);
/* Reads exactly n bytes into buf, as they come (a pipe, a socket).
 * 0, or -1 at an error or an end before n. */
int fd_read_exact(int fd, void *buf, size_t n);

/* For poll loops: reads what is available on *fd into sb (copying it to
 * echo_fd if >= 0); at EOF or on error closes *fd and sets it to -1. */
void fd_drain(int *fd, struct strbuf *sb, int echo_fd);
/* For poll loops: writes what it can of *buf (*len bytes) to *fd and
 * advances; once all is written closes *fd and sets it to -1, unless
 * keep_open. Returns -1 (fd closed) if the reader is gone, else 0. */
int fd_feed(int *fd, const char **buf, size_t *len, int keep_open);

/*
 * pump: one poll() over any number of fds of our children, so that no
 * caller writes its own poll loop. Each struct pump_fd is one fd to read
 * (what arrives is appended to sb, then handed to on_read) or to write
 * (the *len bytes at *buf, advanced as they go; *fd is closed once all is
 * written, unless keep_open). An fd is closed and set to -1 at EOF, on a
 * read error, or when its reader is gone (then gone is set). Entries whose
 * fd is NULL or -1, and writers with nothing to write, are skipped, so a
 * caller may keep one array and let its fds close one by one.
 */
struct pump_fd {
	int *fd;
	int write;
	/* reading */
	struct strbuf *sb;
	void (*on_read)(void *data, const char *buf, size_t n);
	void *data;
	/* writing */
	const char **buf;
	size_t *len;
	int keep_open;
	/* a writer waited on for room, with nothing of ours to write (what
	 * goes in is the caller's: sendfile(2)) */
	int room;
	int gone;
};

/*
 * Waits up to timeout_ms (-1: without limit) until some of fds are ready,
 * and reads or writes those. Returns how many were ready (0: the time ran
 * out or a signal came), or -1 if none of them is open any more.
 */
int pump(struct pump_fd *fds, size_t n, int timeout_ms);

#endif
