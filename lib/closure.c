#include "closure.h"
#include "nix.h"
#include "quote.h"
#include "scripts.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void probe_release(struct probe *p)
{
	free(p->hostname);
	free(p->nix_version);
	free(p->arch);
	free(p->current_system);
	free(p->system);
	memset(p, 0, sizeof(*p));
}

void split_lines(const char *text, struct strvec *out)
{
	while (*text) {
		size_t n = strcspn(text, "\n");
		if (n)
			strvec_pushf(out, "%.*s", (int)n, text);
		text += n;
		if (*text)
			text++;
	}
}

void probe_parse(const char *text, struct probe *probe, struct strvec *missing)
{
	int after = 0;
	while (*text) {
		size_t n = strcspn(text, "\n");
		char *line = xstrndup(text, n);
		text += n + (text[n] ? 1 : 0);
		if (after) {
			if (*line)
				strvec_push(missing, line);
		} else if (!strcmp(line, "--")) {
			after = 1;
		} else if (probe) {
			char *eq = strchr(line, '=');
			char **slot = NULL;
			if (eq) {
				*eq = '\0';
				if (!strcmp(line, "hostname"))
					slot = &probe->hostname;
				else if (!strcmp(line, "arch"))
					slot = &probe->arch;
				else if (!strcmp(line, "nix"))
					slot = &probe->nix_version;
				else if (!strcmp(line, "current"))
					slot = &probe->current_system;
				else if (!strcmp(line, "system"))
					slot = &probe->system;
				else if (!strcmp(line, "systemd"))
					probe->systemd = !strcmp(eq + 1, "1");
				if (slot) {
					free(*slot);
					*slot = xstrdup(eq + 1);
				}
			}
		}
		free(line);
	}
}

static void join_lines(const struct strvec *v, struct strbuf *sb)
{
	for (size_t i = 0; i < v->nr; i++) {
		strbuf_addstr(sb, v->v[i]);
		strbuf_addch(sb, '\n');
	}
}

int closure_query(const struct host *dst, const struct strvec *closure,
		  int substitute, struct probe *probe, struct strvec *missing,
		  struct nrr_err *e)
{
	struct strbuf in = STRBUF_INIT, out = STRBUF_INIT, err = STRBUF_INIT;
	const char *args[] = { substitute ? "1" : "0", NULL };
	char why[512];

	join_lines(closure, &in);
	int st = host_run(dst, NULL, "query", script_query, args, in.buf,
			  in.len, &out, &err, -1, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_ECOPY, "cannot query the store of '%s': %s",
			 dst->name, why);
	} else if (st == 0) {
		probe_parse(out.buf, probe, missing);
	}
	strbuf_release(&in);
	strbuf_release(&out);
	strbuf_release(&err);
	return st ? e->status : 0;
}

int closure_of(const struct host *h, const char *path, struct strvec *out,
	       struct nrr_err *e)
{
	struct strbuf o = STRBUF_INIT, err = STRBUF_INIT;
	const char *args[] = { path, NULL };
	char why[512];
	int st = host_run(h, NULL, "query", script_closure, args, NULL, 0, &o,
			  &err, -1, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_ECOPY, "cannot list the closure of '%s' on '%s': %s",
			 path, h->name, why);
	} else if (st == 0) {
		split_lines(o.buf, out);
	}
	strbuf_release(&o);
	strbuf_release(&err);
	return st ? e->status : 0;
}

/* Moves data between the exporter and the importer while collecting both
 * sides' messages. The relay buffer bounds memory use. */
struct pump {
	struct child *src, *dst;
	struct strbuf *src_err, *dst_err, *dst_out;
	const char *list;	/* paths for the exporter's stdin */
	size_t list_len;
	unsigned long long bytes;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void pump_run(struct pump *p)
{
	static char buf[1 << 17];
	const char *data = buf;
	size_t have = 0;

	fcntl(p->src->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->dst->in_fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd pfd[5];
		int n = 0, i_list = -1, i_data = -1, i_put = -1, i_serr = -1,
		    i_derr = -1, i_dout = -1;
#define WATCH(idx, fd, ev) do { if ((fd) >= 0) { \
		pfd[n] = (struct pollfd){ (fd), (ev), 0 }; (idx) = n++; } } while (0)
		WATCH(i_list, p->src->in_fd, POLLOUT);
		/* one chunk in flight: read more only when it is written */
		if (!have)
			WATCH(i_data, p->src->out_fd, POLLIN);
		else
			WATCH(i_put, p->dst->in_fd, POLLOUT);
		WATCH(i_serr, p->src->err_fd, POLLIN);
		WATCH(i_derr, p->dst->err_fd, POLLIN);
		if (n < 5)
			WATCH(i_dout, p->dst->out_fd, POLLIN);
#undef WATCH
		if (!n)
			break;
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (i_list >= 0 && pfd[i_list].revents)
			fd_feed(&p->src->in_fd, &p->list, &p->list_len, 0);
		if (i_data >= 0 && pfd[i_data].revents) {
			ssize_t r = read(p->src->out_fd, buf, sizeof(buf));
			if (r > 0) {
				have = (size_t)r;
				data = buf;
				p->bytes += (unsigned long long)r;
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				close_fd(&p->src->out_fd);
			}
		}
		/* the importer gone, stop the exporter too */
		if (i_put >= 0 && pfd[i_put].revents &&
		    fd_feed(&p->dst->in_fd, &data, &have, 1))
			close_fd(&p->src->out_fd);
		if (i_serr >= 0 && pfd[i_serr].revents)
			fd_drain(&p->src->err_fd, p->src_err, -1);
		if (i_derr >= 0 && pfd[i_derr].revents)
			fd_drain(&p->dst->err_fd, p->dst_err, -1);
		if (i_dout >= 0 && pfd[i_dout].revents)
			fd_drain(&p->dst->out_fd, p->dst_out, -1);
		/* the stream has ended: the importer sees EOF */
		if (p->src->out_fd < 0 && !have)
			close_fd(&p->dst->in_fd);
	}
}

int closure_send(const struct host *src, const struct host *dst,
		 const struct strvec *paths, unsigned long long *bytes,
		 struct nrr_err *e)
{
	struct child exp = CHILD_INIT, imp = CHILD_INIT;
	struct strbuf list = STRBUF_INIT, serr = STRBUF_INIT,
		      derr = STRBUF_INIT, dout = STRBUF_INIT;
	const char *noargs[] = { NULL };
	int ret = 0;
	char why[512];

	*bytes = 0;
	if (!paths->nr)
		return 0;
	join_lines(paths, &list);
	host_script_argv(src, NULL, script_export, noargs, &exp);
	host_script_argv(dst, NULL, script_import, noargs, &imp);
	exp.in = exp.out = exp.err = CHILD_PIPE;
	imp.in = imp.out = imp.err = CHILD_PIPE;
	if (child_start(&exp, e)) {
		ret = e->status;
		goto out;
	}
	if (child_start(&imp, e)) {
		ret = e->status;
		child_kill(&exp, SIGTERM);
		child_wait(&exp);
		goto out;
	}
	struct pump p = { &exp, &imp, &serr, &derr, &dout, list.buf, list.len, 0 };
	pump_run(&p);
	*bytes = p.bytes;
	int se = child_wait(&exp);
	int si = child_wait(&imp);
	/* a source that stopped answering cuts the stream: the importer's
	 * complaint about it would only blame the destination */
	char *src_lost = src->ssh && se == 255 ? ssh_host_lost_reason(src->ssh) : NULL;
	if (run_interrupted()) {
		ret = nrr_fail(e, NRR_EINT, "interrupted while copying to '%s'",
			       dst->name);
	} else if (src_lost) {
		ret = nrr_fail(e, NRR_ECOPY, "exporting from '%s' failed: %s",
			       src->name, src_lost);
		ssh_hint_not_responding(src->ssh, e);
	} else if (si != 0) {
		char *lost = dst->ssh && si == 255 ? ssh_host_lost_reason(dst->ssh) : NULL;
		nix_error_summary(lost ? lost : derr.len ? derr.buf : "connection lost",
					 why, sizeof(why));
		ret = nrr_fail(e, NRR_ECOPY, "copying to '%s' failed: %s",
			       dst->name, why);
		if (lost)
			ssh_hint_not_responding(dst->ssh, e);
		else if (strstr(derr.buf, "lacks a signature") ||
		    strstr(derr.buf, "not a trusted user") ||
		    strstr(derr.buf, "trusted"))
			nrr_hint(e, "the ssh user on '%s' must be in nix.conf's "
				 "trusted-users to import unsigned paths (or deploy as root)",
				 dst->name);
		else if (strstr(derr.buf, "No space left"))
			nrr_hint(e, "'%s' is out of disk space: collect garbage there "
				 "(nix-collect-garbage -d) and try again", dst->name);
		free(lost);
	} else if (se != 0) {
		nix_error_summary(serr.len ? serr.buf : "connection lost",
					 why, sizeof(why));
		ret = nrr_fail(e, NRR_ECOPY, "exporting from '%s' failed: %s",
			       src->name, why);
	}
	free(src_lost);
out:
	child_clear(&exp);
	child_clear(&imp);
	strbuf_release(&list);
	strbuf_release(&serr);
	strbuf_release(&derr);
	strbuf_release(&dout);
	return ret;
}

int closure_send_direct(const struct host *src, const char *user,
			const char *hostname, int port,
			const struct strvec *paths, struct nrr_err *e)
{
	struct strbuf in = STRBUF_INIT, err = STRBUF_INIT;
	char *dest = xstrfmt("%s@%s", user, hostname);
	char *portstr = xstrfmt("%d", port);
	const char *args[] = { dest, portstr, NULL };
	char why[512];

	join_lines(paths, &in);
	int st = host_run(src, NULL, "copy", script_direct, args, in.buf,
			  in.len, NULL, &err, -1, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_ECOPY, "'%s' could not copy to %s (port %d) itself: %s",
			 src->name, dest, port, why);
		nrr_hint(e, "without --copy-direct the closure is relayed through this machine");
	}
	free(dest);
	free(portstr);
	strbuf_release(&in);
	strbuf_release(&err);
	return st ? e->status : 0;
}

int closure_size(const struct host *h, const struct strvec *paths,
		 unsigned long long *bytes, struct nrr_err *e)
{
	struct strbuf in = STRBUF_INIT, out = STRBUF_INIT;
	const char *noargs[] = { NULL };
	int ret = 0;

	*bytes = 0;
	for (size_t i = 0; i < paths->nr; i++)
		strbuf_addf(&in, "%s\n", paths->v[i]);
	int st = host_run(h, NULL, "size", script_size, noargs, in.buf, in.len, &out,
			  NULL, -1, e);
	if (st < 0) {
		ret = e->status;
	} else if (st) {
		ret = nrr_fail(e, NRR_EFAIL, "cannot query the sizes of %zu paths on '%s'",
			       paths->nr, h->name);
	} else {
		struct strvec lines = STRVEC_INIT;
		unsigned long long n;
		split_lines(out.buf, &lines);
		for (size_t i = 0; i < lines.nr; i++)
			if (!parse_decimal_u64(lines.v[i], strlen(lines.v[i]), &n))
				*bytes += n;
		strvec_clear(&lines);
	}
	strbuf_release(&in);
	strbuf_release(&out);
	return ret;
}
