#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "fiber.h"
#include "nix.h"
#include "run.h"
#include "serveproto.h"

#define OUR_MINOR 35
#define OP_BUILD_PATHS 9ULL
#define BUILD_MODE_REPAIR 1ULL
#define OP_QUERY_VALID 31ULL
#define OP_ADD_TO_STORE_NAR 39ULL

#define STDERR_NEXT 0x6f6c6d67ULL
#define STDERR_READ 0x64617461ULL
#define STDERR_WRITE 0x64617416ULL
#define STDERR_LAST 0x616c7473ULL
#define STDERR_ERROR 0x63787470ULL
#define STDERR_START_ACTIVITY 0x53545254ULL
#define STDERR_STOP_ACTIVITY 0x53544f50ULL
#define STDERR_RESULT 0x52534c54ULL

/* no answer for this long, while we wait for one: the link is gone */
#define STALL_MS (10 * 60 * 1000)

static int fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

int daemon_open(struct daemon_conn *d, const char *socket_path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct strbuf hello = STRBUF_INIT;

	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	d->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->fd < 0)
		return -1;
	if (connect(d->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(d->fd);
		d->fd = -1;
		return -1;
	}
	/* magic and version, then the obsolete CPU affinity (0: none) and
	 * reserveSpace (0) that every daemon from 1.14 on reads next; then
	 * whether it trusts us, which a daemon before 1.35 does not say: a
	 * repair of nothing (BuildPaths of no paths, mode repair) is refused
	 * to a login it does not trust, and does nothing for one it does.
	 * All of it before any answer, which needs no round trip of its own. */
	serveproto_add_u64(&hello, DAEMON_MAGIC_1);
	serveproto_add_u64(&hello, 1 << 8 | OUR_MINOR);
	serveproto_add_u64(&hello, 0);
	serveproto_add_u64(&hello, 0);
	serveproto_add_u64(&hello, OP_BUILD_PATHS);
	serveproto_add_u64(&hello, 0);
	serveproto_add_u64(&hello, BUILD_MODE_REPAIR);
	ssize_t w = send(d->fd, hello.buf, hello.len, MSG_NOSIGNAL);
	int whole = w == (ssize_t)hello.len;
	strbuf_release(&hello);
	if (!whole) {
		daemon_close(d);
		return -1;
	}
	return 0;
}

void daemon_close(struct daemon_conn *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	strbuf_release(&d->in);
	strbuf_release(&d->log);
	d->at = 0;
}

/*
 * What d->in may hold unread: the longest string we accept (1 MiB) and
 * more than a real daemon says while we send it a path. A daemon that
 * says more is not one: its words are not kept until memory runs out.
 */
#define DAEMON_IN_MAX (16u << 20)

/* Reads what is there into d->in. 1 read, 0 nothing yet, -1 end or error,
 * -2 too much unread (DAEMON_IN_MAX). */
static int take(struct daemon_conn *d)
{
	char buf[16384];
	/* what was read is copied out at once: drop it, now and then */
	if (d->at >= sizeof(buf) * 4 || (d->at && d->at == d->in.len)) {
		memmove(d->in.buf, d->in.buf + d->at, d->in.len - d->at);
		strbuf_setlen(&d->in, d->in.len - d->at);
		d->at = 0;
	}
	if (d->in.len > DAEMON_IN_MAX)
		return -2;
	ssize_t r = read(d->fd, buf, sizeof(buf));
	if (r > 0) {
		strbuf_add(&d->in, buf, (size_t)r);
		return 1;
	}
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	return -1;
}

/* take's -2, said: -1 with why. */
static int flooded(char *why, size_t whylen)
{
	return fail(why, whylen, "its nix-daemon sent more than %u MiB unasked",
		    DAEMON_IN_MAX >> 20);
}

/* Until d->in holds n unread bytes, waiting at most timeout_ms for each
 * piece. 0, or -1 with why. */
static int need(struct daemon_conn *d, size_t n, int timeout_ms, char *why, size_t whylen)
{
	while (d->in.len - d->at < n) {
		struct pollfd p = { d->fd, POLLIN, 0 };
		int r = fiber_poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR && run_interrupted())
			return fail(why, whylen, "interrupted");
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return fail(why, whylen, "its nix-daemon did not answer in %d s", timeout_ms / 1000);
		int t = r < 0 ? -1 : take(d);
		if (t == -2)
			return flooded(why, whylen);
		if (t < 0)
			return fail(why, whylen, "its nix-daemon hung up%s%s",
				    d->log.len ? ": " : "", d->log.len ? d->log.buf : "");
	}
	return 0;
}

static int get_u64(struct daemon_conn *d, uint64_t *v, char *why, size_t whylen)
{
	if (need(d, 8, STALL_MS, why, whylen))
		return -1;
	*v = serveproto_get_u64((const unsigned char *)d->in.buf + d->at);
	d->at += 8;
	return 0;
}

/* A string into out (NULL: skipped). Longer than max: a protocol error. */
static int get_str(struct daemon_conn *d, struct strbuf *out, size_t max, char *why,
		   size_t whylen)
{
	uint64_t len;
	if (get_u64(d, &len, why, whylen))
		return -1;
	if (len > max)
		return fail(why, whylen, "its nix-daemon sent a string of %llu bytes",
			    (unsigned long long)len);
	size_t padded = (size_t)serveproto_padded(len);
	if (need(d, padded, STALL_MS, why, whylen))
		return -1;
	if (out) {
		strbuf_reset(out);
		strbuf_add(out, d->in.buf + d->at, (size_t)len);
	}
	d->at += padded;
	return 0;
}

/* An activity's fields: a count, then each a type (0 a number, 1 a
 * string) and its value. */
static int skip_fields(struct daemon_conn *d, char *why, size_t whylen)
{
	uint64_t n, type, v;
	if (get_u64(d, &n, why, whylen))
		return -1;
	if (n > 4096)
		return fail(why, whylen, "its nix-daemon sent %llu fields", (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++) {
		if (get_u64(d, &type, why, whylen))
			return -1;
		if (type == 0 ? get_u64(d, &v, why, whylen) :
		    type == 1 ? get_str(d, NULL, 1 << 20, why, whylen) :
		    fail(why, whylen, "its nix-daemon sent a field of type %llu",
			 (unsigned long long)type))
			return -1;
	}
	return 0;
}

/* The daemon's error (STDERR_ERROR) into why: from 1.26 a structured
 * one ("Error", level, name, message, no position, traces), before that
 * a message and a status. Always -1. */
static int read_error(struct daemon_conn *d, char *why, size_t whylen)
{
	struct strbuf msg = STRBUF_INIT;
	uint64_t v, n;
	int ret = 0;

	if (d->minor >= 26) {
		ret = get_str(d, &msg, 1 << 20, why, whylen);
		if (!ret && strcmp(msg.buf, "Error"))
			ret = fail(why, whylen, "its nix-daemon sent an error of type '%.40s'", msg.buf);
		if (!ret)
			ret = get_u64(d, &v, why, whylen) || get_str(d, NULL, 1 << 20, why, whylen) ||
			      get_str(d, &msg, 1 << 20, why, whylen) || get_u64(d, &v, why, whylen);
		if (!ret && v)
			ret = fail(why, whylen, "its nix-daemon sent an error with a position");
		if (!ret)
			ret = get_u64(d, &n, why, whylen);
		for (uint64_t i = 0; !ret && i < n && i < 4096; i++)
			ret = get_u64(d, &v, why, whylen) || v ||
			      get_str(d, NULL, 1 << 20, why, whylen);
	} else {
		ret = get_str(d, &msg, 1 << 20, why, whylen) || get_u64(d, &v, why, whylen);
	}
	if (!ret) {
		/* its first line (the rest is a trace for a human at a
		 * terminal), without the colours Nix puts in for one, and
		 * nothing else a terminal would act on */
		char shown[256], *nl = strchr(msg.buf, '\n');
		if (nl)
			*nl = '\0';
		nix_strip_escapes(msg.buf);
		fail(why, whylen, "its nix-daemon says: %s", nrr_printable(shown, sizeof(shown), msg.buf));
	}
	strbuf_release(&msg);
	return -1;
}

/* The daemon's messages up to STDERR_LAST: 0; its error or a broken
 * stream: -1 with why. */
static int drain(struct daemon_conn *d, char *why, size_t whylen)
{
	struct strbuf s = STRBUF_INIT;
	uint64_t msg, v;
	int ret = 0;

	while (!ret) {
		if (get_u64(d, &msg, why, whylen)) {
			ret = -1;
			break;
		}
		if (msg == STDERR_LAST)
			break;
		switch (msg) {
		case STDERR_NEXT:
			if (!(ret = get_str(d, &s, 1 << 20, why, whylen))) {
				/* kept for a failure's message, the last few KiB */
				if (d->log.len > 4096)
					strbuf_reset(&d->log);
				strbuf_add(&d->log, s.buf, s.len);
			}
			break;
		case STDERR_ERROR:
			ret = read_error(d, why, whylen);
			break;
		case STDERR_START_ACTIVITY:
			ret = get_u64(d, &v, why, whylen) || get_u64(d, &v, why, whylen) ||
			      get_u64(d, &v, why, whylen) || get_str(d, NULL, 1 << 20, why, whylen) ||
			      skip_fields(d, why, whylen) || get_u64(d, &v, why, whylen);
			break;
		case STDERR_STOP_ACTIVITY:
			ret = get_u64(d, &v, why, whylen);
			break;
		case STDERR_RESULT:
			ret = get_u64(d, &v, why, whylen) || get_u64(d, &v, why, whylen) ||
			      skip_fields(d, why, whylen);
			break;
		default:
			/* READ and WRITE: never asked for by these operations */
			ret = fail(why, whylen, "its nix-daemon sent message %#llx",
				   (unsigned long long)msg);
		}
	}
	strbuf_release(&s);
	return ret ? -1 : 0;
}

int daemon_hello(struct daemon_conn *d, int timeout_ms, char *why, size_t whylen)
{
	struct strbuf s = STRBUF_INIT;
	uint64_t magic, version, trust = 0;
	int ret = -1;

	if (d->fd < 0)
		return fail(why, whylen, "no connection to its nix-daemon");
	/* the greeting's first words within the time given: the rest follows.
	 * None at all: the master's channel to the socket was refused (sshd
	 * forwards no sockets) or nothing listens there */
	if (need(d, 16, timeout_ms, why, whylen)) {
		if (!d->in.len)
			fail(why, whylen, "no nix-daemon answered on its socket (or its sshd forwards none)");
		goto out;
	}
	if (get_u64(d, &magic, why, whylen) || get_u64(d, &version, why, whylen))
		goto out;
	if (magic != DAEMON_MAGIC_2 || version >> 8 != 1) {
		fail(why, whylen, "its nix-daemon answered %#llx %#llx",
		     (unsigned long long)magic, (unsigned long long)version);
		goto out;
	}
	d->minor = (unsigned)(version & 0xff) < OUR_MINOR ? (unsigned)(version & 0xff) : OUR_MINOR;
	if (d->minor < 32) {
		fail(why, whylen, "its nix-daemon speaks protocol 1.%u, before 1.32",
		     d->minor);
		goto out;
	}
	if (d->minor >= 33) {
		if (get_str(d, &s, 256, why, whylen))
			goto out;
		snprintf(d->version, sizeof(d->version), "%s", s.buf);
	}
	if (d->minor >= 35 && get_u64(d, &trust, why, whylen))
		goto out;
	if (drain(d, why, whylen))
		goto out;
	/* 2: it does not trust this login, and would want signatures */
	if (trust == 2) {
		fail(why, whylen, "its nix-daemon does not trust this login");
		goto out;
	}
	/* the repair of nothing: refused (an error, or a hang-up) unless
	 * it trusts us */
	uint64_t done = 0;
	if (drain(d, why, whylen) || get_u64(d, &done, why, whylen) || done != 1) {
		if (done != 1)
			fail(why, whylen, "its nix-daemon does not trust this login");
		goto out;
	}
	d->trusted = 1;
	ret = 0;
out:
	strbuf_release(&s);
	if (ret)
		daemon_close(d);
	return ret;
}

/*
 * Writes all of buf, or with buf NULL len bytes of the file fd from where
 * it stands (sendfile(2): its pages go to the socket without being copied
 * here), reading what the daemon says whenever the link is full (its log
 * must never fill the link while we write). 0; -1 with why (-2: it
 * flooded us, DAEMON_IN_MAX; NAREXPORT_SHORT: the file ended first); or
 * 1, nothing sent, where the system cannot send a file so.
 */
static int send_from(struct daemon_conn *d, const char *buf, int file, size_t len,
		     char *why, size_t whylen)
{
	const char *p = buf;
	int moved = 0;

	while (len) {
		ssize_t w;
#ifdef __linux__
		w = p ? send(d->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
		      : sendfile(d->fd, file, NULL, len);
#else
		if (!p)
			return 1;
		w = send(d->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
#endif
		if (w > 0) {
			if (p)
				p += w;
			len -= (size_t)w;
			moved = 1;
			continue;
		}
		if (w == 0 && !p)
			return NAREXPORT_SHORT;
		if (w < 0 && !p && !moved && (errno == EINVAL || errno == ENOSYS))
			return 1;
		if (w < 0 && errno != EINTR && errno != EAGAIN)
			return fail(why, whylen, "its nix-daemon hung up");
		/* full: wait for room, and read what it says meanwhile */
		struct pollfd pf = { d->fd, POLLOUT | POLLIN, 0 };
		int r = fiber_poll(&pf, 1, STALL_MS);
		if (r < 0 && errno == EINTR && run_interrupted())
			return fail(why, whylen, "interrupted");
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fail(why, whylen, "its nix-daemon stopped reading");
		int t = (pf.revents & POLLIN) ? take(d) : 0;
		if (t == -2) {
			flooded(why, whylen);
			return -2;
		}
		if (t < 0 && !(pf.revents & POLLOUT))
			return fail(why, whylen, "its nix-daemon hung up");
	}
	return 0;
}

static int send_all(struct daemon_conn *d, const void *buf, size_t len, char *why,
		    size_t whylen)
{
	return send_from(d, buf, -1, len, why, whylen);
}

int daemon_query_send(struct daemon_conn *d, const struct strvec *paths, int substitute,
		      char *why, size_t whylen)
{
	struct strbuf msg = STRBUF_INIT;
	int ret;

	serveproto_add_u64(&msg, OP_QUERY_VALID);
	serveproto_add_u64(&msg, paths->nr);
	for (size_t i = 0; i < paths->nr; i++)
		serveproto_add_string(&msg, paths->v[i]);
	if (d->minor >= 27)
		serveproto_add_u64(&msg, substitute ? 1 : 0);
	ret = send_all(d, msg.buf, msg.len, why, whylen) ? -1 : 0;
	strbuf_release(&msg);
	return ret;
}

int daemon_query_valid(struct daemon_conn *d, const struct strvec *paths, int substitute,
		       struct strvec *valid, char *why, size_t whylen)
{
	return daemon_query_send(d, paths, substitute, why, whylen) ? -1 :
	       daemon_query_answer(d, paths, valid, why, whylen);
}

int daemon_query_answer(struct daemon_conn *d, const struct strvec *paths,
			struct strvec *valid, char *why, size_t whylen)
{
	struct strbuf s = STRBUF_INIT;
	uint64_t n;
	int ret = -1;

	if (drain(d, why, whylen) || get_u64(d, &n, why, whylen))
		goto out;
	if (n > paths->nr) {
		fail(why, whylen, "its nix-daemon has %llu of the %zu paths it was asked about",
		     (unsigned long long)n, paths->nr);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		if (get_str(d, &s, SERVEPROTO_MAX_STRING, why, whylen))
			goto out;
		strvec_push(valid, s.buf);
	}
	ret = 0;
out:
	strbuf_release(&s);
	return ret;
}

/* narexport's sink: each piece one frame of the framed stream. */
struct framed {
	struct daemon_conn *d;
	char *why;
	size_t whylen;
	int gone;	/* 1: the link broke; 2: the daemon flooded it */
};

/* A frame's head: its length, as send_all returns. */
static int send_frame_head(struct framed *f, uint64_t len)
{
	unsigned char head[8];
	for (int i = 0; i < 8; i++)
		head[i] = (unsigned char)(len >> (8 * i));
	return send_all(f->d, head, sizeof(head), f->why, f->whylen);
}

static int to_frame(void *ctx, const void *buf, size_t len)
{
	struct framed *f = ctx;
	int r = send_frame_head(f, len);
	if (!r)
		r = send_all(f->d, buf, len, f->why, f->whylen);
	if (r)
		f->gone = r == -2 ? 2 : 1;
	return f->gone ? -1 : 0;
}

/*
 * narexport's file sink: a big file in frames of FRAME_MAX, each one's
 * bytes sent from the file (a daemon holds a frame whole in its memory
 * as it reads it: a file's size in one frame would be that much).
 */
#define FRAME_MAX (1u << 20)
static int file_to_frames(void *ctx, int fd, unsigned long long len)
{
	struct framed *f = ctx;
#ifndef __linux__
	(void)f;
	(void)fd;
	(void)len;
	return 1;	/* no sendfile(2) to a socket: through the buffer */
#else
	int fl = fcntl(f->d->fd, F_GETFL), r = 0;

	/* sendfile(2) has no MSG_DONTWAIT: the socket itself must not block */
	if (fl < 0 || fcntl(f->d->fd, F_SETFL, fl | O_NONBLOCK))
		return 1;
	while (len && !r) {
		size_t n = len < FRAME_MAX ? (size_t)len : FRAME_MAX;
		r = send_frame_head(f, n);
		if (!r)
			r = send_from(f->d, NULL, fd, n, f->why, f->whylen);
		if (r == 1)	/* a frame promised, and its bytes not sent */
			r = fail(f->why, f->whylen, "cannot send a file to its nix-daemon");
		len -= n;
	}
	fcntl(f->d->fd, F_SETFL, fl);
	if (r == NAREXPORT_SHORT)
		return r;
	if (r)
		f->gone = r == -2 ? 2 : 1;
	return f->gone ? -1 : 0;
#endif
}

/* AddToStoreNar's words before p's NAR: its info (lib/serveproto.h),
 * repair 0 and dontCheckSigs 1 (a trusted login's). */
static void add_header(struct strbuf *msg, const struct narexport_path *p)
{
	serveproto_add_u64(msg, OP_ADD_TO_STORE_NAR);
	serveproto_add_info(msg, p);
	serveproto_add_u64(msg, 0);
	serveproto_add_u64(msg, 1);
}

int daemon_add(struct daemon_conn *d, const struct narexport_path *paths, size_t n,
	       int (*stop)(void), unsigned long long *bytes, char *why, size_t whylen)
{
	struct strbuf msg = STRBUF_INIT;
	struct framed f = { d, why, whylen, 0 };
	size_t sent = 0;
	int ret = 0;

	*bytes = 0;
	/* one operation a path, all sent before any answer is awaited: the
	 * daemon takes them in order (a path's references first), and each
	 * NAR is framed, so a path it has by then (another import, a build:
	 * its NAR is not read) is skipped whole. In AddMultipleToStore's one
	 * stream such a path's NAR is read as the next path's info, up to
	 * the Nix that reads every NAR to its end (2.8 does not) */
	for (; sent < n && !ret; sent++) {
		unsigned long long nar = 0;
		strbuf_reset(&msg);
		add_header(&msg, &paths[sent]);
		int r = send_all(d, msg.buf, msg.len, why, whylen);
		if (r) {
			f.gone = r == -2 ? 2 : 1;
			break;
		}
		ret = narexport_nar_files(&paths[sent], to_frame, file_to_frames, &f, stop,
					  &nar, why, whylen);
		*bytes += msg.len + nar;
		if (!ret && to_frame(&f, "", 0))
			ret = -1;
	}
	strbuf_release(&msg);
	if (ret && !f.gone)
		return ret;	/* ours: a mismatch, an unreadable file, a stop */
	/* a flood is not read on for the daemon's last words */
	if (f.gone == 2)
		return flooded(why, whylen);
	/* each operation's answer: its log, then the end or its error */
	for (size_t i = 0; i < sent; i++) {
		char daemon_why[512] = "";
		if (drain(d, daemon_why, sizeof(daemon_why))) {
			snprintf(why, whylen, "%s", daemon_why);
			return -1;
		}
	}
	return f.gone ? -1 : 0;
}
