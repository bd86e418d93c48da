#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int session_pump(struct session *s, const char **data, size_t *len, int room);

int session_start(struct session *s, const struct host *h,
		  const struct elevation *el, const char *script,
		  const char *const *args, int echo_fd, struct nrr_err *e)
{
	memset(s, 0, sizeof(*s));
	child_init(&s->c);
	strbuf_init(&s->out);
	strbuf_init(&s->err);
	s->echo_fd = echo_fd;
	s->held_echo = -1;
	s->host = h;
	host_script_argv(h, el, script, args, &s->c);
	/* what we send it (a closure) wakes us when it has room for much of
	 * it, not at every read ssh makes */
	s->c.in = CHILD_SOCKET;
	s->c.out = s->c.err = CHILD_PIPE;
	if (child_start(&s->c, e))
		return -1;
	/* its words (the script, quoted: kilobytes) are the child's now: a
	 * fleet's next host's session takes their memory */
	strvec_clear(&s->c.args);
	fcntl(s->c.in_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->c.out_fd, F_SETFL, O_NONBLOCK);
	fcntl(s->c.err_fd, F_SETFL, O_NONBLOCK);
	if (el && el->kind == ELEVATE_SUDO && el->password) {
		s->hangup_on = "Sorry, try again";
		s->prompt = HOST_SUDO_PROMPT;
		s->held_echo = s->echo_fd;
		s->echo_fd = -1;
		/* sudo asks, or the script speaks first (sudo did not ask), or
		 * it all ends (session_finish says why) */
		while (!s->prompted && s->out.len == s->out_at &&
		       (s->c.out_fd >= 0 || s->c.err_fd >= 0) && !run_interrupted())
			session_pump(s, NULL, NULL, 0);
		if (run_interrupted()) {
			child_kill(&s->c, SIGTERM);
			session_release(s);
			nrr_fail(e, NRR_EINT, "interrupted while sudo on '%s' started", h->name);
			return -1;
		}
		if (s->prompted) {
			struct strbuf pw = STRBUF_INIT;
			strbuf_addf(&pw, "%s\n", el->password);
			session_send(s, pw.buf, pw.len);	/* gone: finish says why */
			strbuf_release_secret(&pw);
		}
	}
	return 0;
}

/* What of a session's stderr is kept (lines from its end); a real
 * activation says a few KiB. */
#define SESSION_ERR_MAX (256u << 10)

/* Cuts sudo's prompts out of what stderr said, counting them. */
static void cut_prompts(struct session *s)
{
	size_t n = strlen(s->prompt);
	char *p;

	while ((p = strstr(s->err.buf, s->prompt))) {
		memmove(p, p + n, s->err.len - (size_t)(p - s->err.buf) - n + 1);
		strbuf_setlen(&s->err, s->err.len - n);
		s->prompted++;
	}
}

/* The script has begun: sudo will not ask again; the user sees what it
 * said so far. */
static void release_echo(struct session *s)
{
	if (s->held_echo < 0)
		return;
	s->echo_fd = s->held_echo;
	s->held_echo = -1;
	if (s->err.len)
		fd_write_all(s->echo_fd, s->err.buf, s->err.len);
}

static void echo_err(void *data, const char *buf, size_t n)
{
	const struct session *s = data;
	fd_write_all(s->echo_fd, buf, n);
}

/* Waits for something to happen on stdout/stderr (and, while *len, for
 * stdin to take *data; with room, for stdin to have room), and reads
 * (writes) what it can. Returns -1 if stdin's reader is gone. */
static int session_pump(struct session *s, const char **data, size_t *len, int room)
{
	size_t none = 0;
	struct pump_fd fds[] = {
		{ .fd = &s->c.out_fd, .sb = &s->out },
		{ .fd = &s->c.err_fd, .sb = &s->err,
		  .on_read = s->echo_fd >= 0 ? echo_err : NULL, .data = s },
		{ .fd = &s->c.in_fd, .write = 1, .buf = data,
		  .len = len ? len : &none, .keep_open = 1, .room = room },
	};
	pump(fds, 3, -1);
	if (s->prompt)
		cut_prompts(s);
	if (s->hangup_on && s->c.in_fd >= 0 && strstr(s->err.buf, s->hangup_on)) {
		close(s->c.in_fd);
		s->c.in_fd = -1;
	}
	/* its last lines are what a message quotes; a flood is not kept */
	strbuf_keep_tail(&s->err, SESSION_ERR_MAX);
	return fds[2].gone ? -1 : 0;
}

int session_send(struct session *s, const char *data, size_t len)
{
	/* a pipe with room takes it now: a wait (a fiber's turn given away,
	 * a poll) only when it is full; then the session's output is read
	 * too, so that neither side waits on the other */
	if (len && s->c.in_fd >= 0 &&
	    fd_feed(&s->c.in_fd, &data, &len, 1) < 0)
		return -1;
	while (len && s->c.in_fd >= 0) {
		if (session_pump(s, &data, &len, 0))
			return -1;
		if (s->c.out_fd < 0 && s->c.err_fd < 0 && len)
			break;	/* it ended without reading everything */
	}
	return len ? -1 : 0;
}

int session_send_file(struct session *s, int fd, unsigned long long len)
{
#ifdef __linux__
	int moved = 0;

	while (len && s->c.in_fd >= 0) {
		/* the file's pages to the socket, not through our memory */
		ssize_t n = sendfile(s->c.in_fd, fd, NULL,
				     len < (1u << 30) ? (size_t)len : (1u << 30));
		if (n > 0) {
			len -= (unsigned long long)n;
			moved = 1;
		} else if (n == 0) {
			return SESSION_FILE_SHORT;
		} else if (errno == EAGAIN) {
			if (session_pump(s, NULL, NULL, 1))
				return -1;
		} else if (errno != EINTR) {
			/* a kernel or a file that sends nothing so: the caller
			 * writes it as before */
			return !moved && (errno == EINVAL || errno == ENOSYS) ? 1 : -1;
		}
	}
	return len ? -1 : 0;
#else
	(void)s;
	(void)fd;
	(void)len;
	return 1;
#endif
}

/* Consumes n bytes of stdout. What is left moves to the front only once
 * it is no longer than what was consumed: a list of thousands of paths in
 * one read is not moved once per line. */
static void consume(struct session *s, size_t n)
{
	s->out_at += n;
	if (2 * s->out_at >= s->out.len) {
		memmove(s->out.buf, s->out.buf + s->out_at, s->out.len - s->out_at);
		strbuf_setlen(&s->out, s->out.len - s->out_at);
		s->out_at = 0;
	}
	release_echo(s);
}

int session_line(struct session *s, struct strbuf *line)
{
	for (;;) {
		const char *at = s->out.buf + s->out_at;
		const char *nl = memchr(at, '\n', s->out.len - s->out_at);
		if (nl) {
			strbuf_reset(line);
			strbuf_add(line, at, (size_t)(nl - at));
			consume(s, (size_t)(nl - at) + 1);
			return 0;
		}
		if (s->c.out_fd < 0)
			return -1;
		session_pump(s, NULL, NULL, 0);
	}
}

int session_read(struct session *s, void *buf, size_t n)
{
	while (s->out.len - s->out_at < n) {
		if (s->c.out_fd < 0)
			return -1;
		session_pump(s, NULL, NULL, 0);
	}
	memcpy(buf, s->out.buf + s->out_at, n);
	consume(s, n);
	return 0;
}

void session_hangup(struct session *s)
{
	if (s->c.in_fd >= 0) {
		close(s->c.in_fd);
		s->c.in_fd = -1;
	}
}

int session_finish(struct session *s)
{
	if (s->c.pid <= 0)
		return -1;
	session_hangup(s);
	while (s->c.out_fd >= 0 || s->c.err_fd >= 0)
		session_pump(s, NULL, NULL, 0);
	return child_wait(&s->c);
}

void session_release(struct session *s)
{
	if (s->c.pid > 0)
		session_finish(s);
	child_clear(&s->c);
	strbuf_release(&s->out);
	strbuf_release(&s->err);
}
