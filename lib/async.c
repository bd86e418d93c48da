#define _GNU_SOURCE	/* SOCK_CLOEXEC */
#include "async.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
