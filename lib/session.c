#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int session_start(struct session *s, const struct host *h,
		  const struct elevation *el, const char *script,
		  const char *const *args, int echo_fd, struct nrr_err *e)
{
	memset(s, 0, sizeof(*s));
	child_init(&s->c);
	strbuf_init(&s->out);
	strbuf_init(&s->err);
	s->echo_fd = echo_fd;
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
		struct strbuf pw = STRBUF_INIT;
		strbuf_addf(&pw, "%s\n", el->password);
		int ret = session_send(s, pw.buf, pw.len);
		strbuf_release_secret(&pw);
		if (ret)
			return 0;	/* gone already: session_finish says why */
	}
	return 0;
}

static void echo_err(void *data, const char *buf, size_t n)
{
	const struct session *s = data;
	fd_write_all(s->echo_fd, buf, n);
}

/* Waits for something to happen on stdout/stderr (and, while *len, for
 * stdin to take *data), and reads (writes) what it can. Returns -1 if
 * stdin's reader is gone. */
static int session_pump(struct session *s, const char **data, size_t *len)
{
	size_t none = 0;
	struct pump_fd fds[] = {
		{ .fd = &s->c.out_fd, .sb = &s->out },
		{ .fd = &s->c.err_fd, .sb = &s->err,
		  .on_read = s->echo_fd >= 0 ? echo_err : NULL, .data = s },
		{ .fd = &s->c.in_fd, .write = 1, .buf = data,
		  .len = len ? len : &none, .keep_open = 1 },
	};
	pump(fds, 3, -1);
	if (s->hangup_on && s->c.in_fd >= 0 && strstr(s->err.buf, s->hangup_on)) {
		close(s->c.in_fd);
		s->c.in_fd = -1;
	}
	return fds[2].gone ? -1 : 0;
}

int session_send(struct session *s, const char *data, size_t len)
{
	while (len && s->c.in_fd >= 0) {
		if (session_pump(s, &data, &len))
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
			return 0;
		}
		if (s->c.out_fd < 0)
			return -1;
		session_pump(s, NULL, NULL);
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
		session_pump(s, NULL, NULL);
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
