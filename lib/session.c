#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void pump(struct session *s, int want_write);

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
	s->c.in = s->c.out = s->c.err = CHILD_PIPE;
	if (child_start(&s->c, e))
		return -1;
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
		while (!s->prompted && !s->out.len &&
		       (s->c.out_fd >= 0 || s->c.err_fd >= 0) && !run_interrupted())
			pump(s, 0);
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
	if (s->err.len && write(s->echo_fd, s->err.buf, s->err.len) < 0) {
		/* the user's terminal is gone: nothing to tell it */
	}
}

/* Waits for something to happen on stdout/stderr (and stdin writable, if
 * want_write), and reads what came. */
static void pump(struct session *s, int want_write)
{
	struct pollfd pfd[3];
	int n = 0, io = -1, ie = -1;

	if (s->c.out_fd >= 0) {
		pfd[n] = (struct pollfd){ s->c.out_fd, POLLIN, 0 };
		io = n++;
	}
	if (s->c.err_fd >= 0) {
		pfd[n] = (struct pollfd){ s->c.err_fd, POLLIN, 0 };
		ie = n++;
	}
	if (want_write && s->c.in_fd >= 0)
		pfd[n++] = (struct pollfd){ s->c.in_fd, POLLOUT, 0 };
	if (!n || (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR))
		return;
	if (io >= 0 && pfd[io].revents)
		fd_drain(&s->c.out_fd, &s->out, -1);
	if (ie >= 0 && pfd[ie].revents) {
		fd_drain(&s->c.err_fd, &s->err, s->echo_fd);
		if (s->prompt)
			cut_prompts(s);
	}
	if (s->hangup_on && s->c.in_fd >= 0 && strstr(s->err.buf, s->hangup_on)) {
		close(s->c.in_fd);
		s->c.in_fd = -1;
	}
}

int session_send(struct session *s, const char *data, size_t len)
{
	while (len && s->c.in_fd >= 0) {
		pump(s, 1);
		if (s->c.in_fd >= 0 && fd_feed(&s->c.in_fd, &data, &len, 1))
			return -1;
		if (s->c.out_fd < 0 && s->c.err_fd < 0 && len)
			break;	/* it ended without reading everything */
	}
	return len ? -1 : 0;
}

int session_line(struct session *s, struct strbuf *line)
{
	for (;;) {
		char *nl = memchr(s->out.buf, '\n', s->out.len);
		if (nl) {
			size_t n = (size_t)(nl - s->out.buf);
			strbuf_reset(line);
			strbuf_add(line, s->out.buf, n);
			memmove(s->out.buf, nl + 1, s->out.len - n - 1);
			strbuf_setlen(&s->out, s->out.len - n - 1);
			release_echo(s);
			return 0;
		}
		if (s->c.out_fd < 0)
			return -1;
		pump(s, 0);
	}
}

int session_finish(struct session *s)
{
	if (s->c.pid <= 0)
		return -1;
	if (s->c.in_fd >= 0) {
		close(s->c.in_fd);
		s->c.in_fd = -1;
	}
	while (s->c.out_fd >= 0 || s->c.err_fd >= 0)
		pump(s, 0);
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
