#include "exec.h"
#include "quote.h"
#include "run.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void exec_prefix_lines(struct strbuf *dst, const char *name,
		       struct strbuf *rest, int final)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(rest->buf + start, '\n', rest->len - start);
		size_t end = nl ? (size_t)(nl - rest->buf) : rest->len;
		if (!nl && (!final || start == rest->len))
			break;
		strbuf_addf(dst, "%s | ", name);
		strbuf_add(dst, rest->buf + start, end - start);
		strbuf_addch(dst, '\n');
		start = nl ? end + 1 : rest->len;
	}
	memmove(rest->buf, rest->buf + start, rest->len - start);
	strbuf_setlen(rest, rest->len - start);
}

/* One running command. */
struct job {
	struct exec_target *t;
	struct child c;
	struct strbuf out, err;	/* bytes not yet shown */
	struct strbuf errall;	/* all of stderr: ssh's reasons */
	int running;
	int out_to, err_to;	/* where its lines are shown */
};

/* Shows what job's fd brought (all of it, with final). */
static void show(struct job *j, struct strbuf *pending, int fd, int final)
{
	struct strbuf lines = STRBUF_INIT;

	exec_prefix_lines(&lines, j->t->name, pending, final);
	fd_write_all(fd, lines.buf, lines.len);	/* nobody reading: nothing to tell */
	strbuf_release(&lines);
}

static int job_start(struct ssh_ctx *ctx, struct job *j, const char *cmd)
{
	child_init(&j->c);
	strbuf_init(&j->out);
	strbuf_init(&j->err);
	strbuf_init(&j->errall);
	if (j->t->prefix && j->t->prefix[0]) {
		/* this host's escalation words, quoted as the command's are */
		struct strbuf full = STRBUF_INIT;
		sq_quote_argv(&full, j->t->prefix);
		strbuf_addf(&full, " %s", cmd);
		ssh_host_argv(j->t->ctx ? j->t->ctx : ctx, j->t->ssh, full.buf, &j->c.args);
		strbuf_release(&full);
	} else {
		ssh_host_argv(j->t->ctx ? j->t->ctx : ctx, j->t->ssh, cmd, &j->c.args);
	}
	j->c.in = CHILD_NULL;
	j->c.out = j->c.err = CHILD_PIPE;
	if (child_start(&j->c, &j->t->err)) {
		child_clear(&j->c);
		return -1;
	}
	j->running = 1;
	return 0;
}

static void job_end(struct job *j)
{
	struct exec_target *t = j->t;
	int st = child_wait(&j->c);

	t->status = st;
	if (st == 255) {
		/* ssh's own failure (or the command's 255: ssh cannot tell) */
		ssh_connect_error(t->ssh, j->errall.buf, &t->err);
	} else if (st) {
		nrr_fail(&t->err, NRR_EFAIL, "exited with status %d", st);
	}
	child_clear(&j->c);
	strbuf_release(&j->out);
	strbuf_release(&j->err);
	strbuf_release(&j->errall);
	j->running = 0;
}

static void show_out(void *data, const char *buf, size_t n)
{
	struct job *j = data;
	(void)buf;
	(void)n;
	show(j, &j->out, j->out_to, 0);
}

static void show_err(void *data, const char *buf, size_t n)
{
	struct job *j = data;
	strbuf_add(&j->errall, buf, n);
	strbuf_keep_tail(&j->errall, 256u << 10);	/* ssh's reasons end it */
	show(j, &j->err, j->err_to, 0);
}

/* Waits for output of the running jobs (run.c's pump) and shows it; ends
 * jobs whose output is done. */
static void exec_pump(struct job *jobs, size_t n, int out_fd, int err_fd)
{
	struct pump_fd *fds = xcalloc(2 * n + 1, sizeof(*fds));
	size_t nf = 0;

	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		if (!j->running)
			continue;
		j->out_to = out_fd;
		j->err_to = err_fd;
		fds[nf++] = (struct pump_fd){ .fd = &j->c.out_fd, .sb = &j->out,
					      .on_read = show_out, .data = j };
		fds[nf++] = (struct pump_fd){ .fd = &j->c.err_fd, .sb = &j->err,
					      .on_read = show_err, .data = j };
	}
	pump(fds, nf, -1);
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		if (!j->running || j->c.out_fd >= 0 || j->c.err_fd >= 0)
			continue;
		show(j, &j->out, out_fd, 1);
		show(j, &j->err, err_fd, 1);
		job_end(j);
	}
	free(fds);
}

int exec_run(struct ssh_ctx *ctx, struct exec_target *t, size_t n,
	     const char *const *argv, int parallel, int out_fd, int err_fd,
	     struct nrr_err *e)
{
	struct strbuf cmd = STRBUF_INIT, failed = STRBUF_INIT;
	struct job *jobs;
	size_t next = 0, running = 0, nfailed = 0;

	if (!argv || !argv[0])
		return nrr_fail(e, NRR_EUSAGE, "exec: no command given");
	sq_quote_argv(&cmd, argv);
	if (parallel <= 0 || (size_t)parallel > n)
		parallel = (int)n;
	jobs = xcalloc(n ? n : 1, sizeof(*jobs));

	/* every handshake at once: the slowest host, not their sum */
	for (size_t i = 0; i < n; i++) {
		t[i].status = -1;
		nrr_err_clear(&t[i].err);
		jobs[i].t = &t[i];
		if (!t[i].ssh->connected &&
		    ssh_host_connect_start(t[i].ctx ? t[i].ctx : ctx, t[i].ssh, &t[i].err))
			jobs[i].t = NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (jobs[i].t && !t[i].ssh->connected && ssh_host_connect_wait(t[i].ssh, &t[i].err))
			jobs[i].t = NULL;

	while (!run_interrupted()) {
		while (next < n && running < (size_t)parallel) {
			struct job *j = &jobs[next++];
			if (j->t && !job_start(ctx, j, cmd.buf))
				running++;
		}
		if (!running)
			break;
		exec_pump(jobs, n, out_fd, err_fd);
		running = 0;
		for (size_t i = 0; i < n; i++)
			running += jobs[i].running;
	}
	/* interrupted: our children had SIGTERM from run.c's handler */
	for (size_t i = 0; i < n; i++)
		while (jobs[i].running)
			exec_pump(&jobs[i], 1, out_fd, err_fd);

	for (size_t i = 0; i < n; i++) {
		if (!t[i].status)
			continue;
		if (t[i].status < 0 && !t[i].err.msg[0])
			nrr_fail(&t[i].err, NRR_EFAIL, "not run");
		strbuf_addf(&failed, "%s%s (%s)", nfailed ? ", " : "", t[i].name, t[i].err.msg);
		nfailed++;
	}
	free(jobs);
	strbuf_release(&cmd);
	if (run_interrupted()) {
		strbuf_release(&failed);
		return nrr_fail(e, NRR_EINT, "exec: interrupted");
	}
	if (nfailed) {
		nrr_fail(e, NRR_EFLEET, "exec failed on %zu of %zu hosts: %s", nfailed, n, failed.buf);
		strbuf_release(&failed);
		return e->status;
	}
	strbuf_release(&failed);
	return 0;
}
