#define _GNU_SOURCE
#include "pump.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "fiber.h"

int fd_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	fd = fiber_std_fd(fd);	/* a fiber's stderr is its own (lib/fiber.h) */
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		/* a fiber's report pipe: its reader runs only when it waits */
		if (w < 0 && errno == EAGAIN) {
			struct pollfd out = { fd, POLLOUT, 0 };
			if (fiber_poll(&out, 1, -1) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int fd_read_exact(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The least room fd_drain reads into, and the most it makes for a
 * stream that fills it: a reader that empties sb after each piece (a line
 * parser, a relay) would read 2 KiB at a time forever, where a stream
 * comes in 64 KiB pieces (a pipe's size). */
#define DRAIN_ROOM 1024
#define DRAIN_ROOM_MAX (64u << 10)

void fd_drain(int *fd, struct strbuf *sb, int echo_fd)
{
	/* straight into sb, as much as it has room for: a buffer of 64 KB on
	 * the stack put what fd_drain calls 64 KB further down a fiber's
	 * stack, on pages of its own, each a fault at its first touch (and a
	 * secret is never copied where it must be wiped) */
	strbuf_grow(sb, DRAIN_ROOM);
	char *at = sb->buf + sb->len;
	size_t room = sb->alloc - sb->len - 1;
	ssize_t n = read(*fd, at, room);
	if (n > 0) {
		strbuf_setlen(sb, sb->len + (size_t)n);
		if (echo_fd >= 0)
			fd_write_all(echo_fd, at, (size_t)n);
		/* it filled the room: twice that for the next piece */
		if ((size_t)n == room && room < DRAIN_ROOM_MAX)
			strbuf_grow(sb, 2 * room);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

int fd_feed(int *fd, const char **buf, size_t *len, int keep_open)
{
	int gone = 0;
	ssize_t w = write(*fd, *buf, *len);
	if (w > 0) {
		*buf += w;
		*len -= (size_t)w;
	} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
		*len = 0;	/* the reader is gone: nothing more to give */
		gone = 1;
	}
	if ((!*len && !keep_open) || gone) {
		close(*fd);
		*fd = -1;
	}
	return gone ? -1 : 0;
}

int pump(struct pump_fd *fds, size_t n, int timeout_ms)
{
	struct pollfd small[8], *pfd = n > 8 ? xcalloc(n, sizeof(*pfd)) : small;
	size_t small_which[8], *which = n > 8 ? xcalloc(n, sizeof(*which)) : small_which;
	nfds_t np = 0;
	int ready;

	for (size_t i = 0; i < n; i++) {
		struct pump_fd *p = &fds[i];
		if (!p->fd || *p->fd < 0 || (p->write && !p->room && !*p->len))
			continue;
		pfd[np] = (struct pollfd){ *p->fd, p->write ? POLLOUT : POLLIN, 0 };
		which[np++] = i;
	}
	if (!np) {
		ready = -1;
		goto out;
	}
	ready = fiber_poll(pfd, np, timeout_ms);
	if (ready < 0) {
		ready = errno == EINTR ? 0 : -1;
		goto out;
	}
	for (nfds_t k = 0; k < np; k++) {
		struct pump_fd *p = &fds[which[k]];
		if (!pfd[k].revents)
			continue;
		if (p->room) {
			/* its reader gone: the caller's write says so */
			continue;
		}
		if (p->write) {
			if (fd_feed(p->fd, p->buf, p->len, p->keep_open))
				p->gone = 1;
			continue;
		}
		size_t before = p->sb->len;
		fd_drain(p->fd, p->sb, -1);
		if (p->on_read && p->sb->len > before)
			p->on_read(p->data, p->sb->buf + before, p->sb->len - before);
	}
out:
	if (pfd != small) {
		free(pfd);
		free(which);
	}
	return ready;
}
