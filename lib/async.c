#define _GNU_SOURCE	/* SOCK_CLOEXEC */
#include "async.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int async_start(struct async *a, struct nrr_err *e)
{
	int p[2];

	child_init(&a->c);
	a->out = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p))
		return nrr_fail(e, NRR_EFAIL, "socketpair: %s", strerror(errno)), -1;
	fflush(NULL);
	pid_t pid = run_fork(p[1]);
	if (pid == 0)
		_exit(a->proc(p[1], a->data) & 0xff);
	close(p[1]);
	if (pid < 0) {
		int err = errno;
		close(p[0]);
		return nrr_fail(e, NRR_EFAIL, "fork: %s", strerror(err)), -1;
	}
	a->c.pid = pid;
	a->out = p[0];
	fcntl(a->out, F_SETFL, O_NONBLOCK);
	return 0;
}

int async_finish(struct async *a)
{
	if (a->out >= 0) {
		close(a->out);
		a->out = -1;
	}
	return child_wait(&a->c);
}

void async_settle(struct async *a, struct nrr_err *err, const char *what)
{
	int st = async_finish(a);
	if (!st)
		nrr_err_clear(err);
	else if (!err->status)
		nrr_fail(err, st > 0 && st < 128 ? st : NRR_EFAIL, "%s stopped (status %d)", what, st);
}

void async_stop(struct async *a)
{
	if (a->c.pid > 0) {
		child_kill(&a->c, SIGTERM);
		async_finish(a);
	}
}

void async_say(int fd, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line))
		n = sizeof(line) - 1, line[n - 1] = '\n';
	if (n > 0 && fd_write_all(fd, line, (size_t)n)) {
		/* the fleet is gone: nobody to tell */
	}
}

/* s with its tabs and line ends made spaces (a field of a line), in buf. */
static const char *flat(char *buf, size_t size, const char *s)
{
	snprintf(buf, size, "%s", s);
	for (char *c = buf; *c; c++)
		if (*c == '\t' || *c == '\n' || *c == '\r')
			*c = ' ';
	return buf;
}

void async_say_text(int fd, char kind, const char *text)
{
	char a[1536];
	async_say(fd, "%c %s\n", kind, flat(a, sizeof(a), text));
}

void async_say_error(int fd, const struct nrr_err *e)
{
	char a[1024], b[1024];
	async_say(fd, "e %d\t%s\t%s\n", e->status, flat(a, sizeof(a), e->msg),
		  flat(b, sizeof(b), e->hint));
}

void async_take_error(const char *line, struct nrr_err *e)
{
	const char *msg = strchr(line, '\t');
	const char *hint = msg ? strchr(msg + 1, '\t') : NULL;
	int st = atoi(line + 2);
	if (!msg)
		msg = "\t";
	nrr_fail(e, st > 0 ? st : NRR_EFAIL, "%.*s",
		 (int)(hint ? (size_t)(hint - msg - 1) : strlen(msg + 1)), msg + 1);
	if (hint && hint[1])
		nrr_hint(e, "%s", hint + 1);
}
