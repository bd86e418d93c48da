#include "closure.h"
#include "exportcheck.h"
#include "narinfo.h"
#include "nix.h"
#include "quote.h"
#include "scripts.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


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

void closure_parse_missing(const char *text, struct strvec *missing)
{
	const char *sep = strstr(text, "--\n");
	while (sep && sep != text && sep[-1] != '\n')
		sep = strstr(sep + 1, "--\n");
	if (sep)
		split_lines(sep + 3, missing);
}

int closure_check_members(const struct host *h, const struct strvec *closure,
			  const struct strvec *paths, struct nrr_err *e)
{
	struct strindex in_closure;
	int ret = 0;

	if (!paths->nr)
		return 0;
	strindex_init(&in_closure, closure ? closure->v : NULL, closure ? closure->nr : 0);
	for (size_t i = 0; i < paths->nr && !ret; i++) {
		const char *p = paths->v[i];
		if (strindex_find(&in_closure, p) < 0) {
			char shown[256];
			ret = nrr_protocol(e, h->name, "it asks for '%s', which is not "
					   "in the closure we sent",
					   nrr_printable(shown, sizeof(shown), p));
		}
	}
	strindex_release(&in_closure);
	return ret;
}


static void join_lines(const struct strvec *v, struct strbuf *sb)
{
	for (size_t i = 0; i < v->nr; i++) {
		strbuf_addstr(sb, v->v[i]);
		strbuf_addch(sb, '\n');
	}
}

int closure_query(const struct host *dst, const struct strvec *closure,
		  int substitute, struct strvec *missing, struct nrr_err *e)
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
		struct strvec lacks = STRVEC_INIT;
		closure_parse_missing(out.buf, &lacks);
		if (closure_check_members(dst, closure, &lacks, e))
			st = e->status;
		else
			for (size_t i = 0; i < lacks.nr; i++)
				strvec_push(missing, lacks.v[i]);
		strvec_clear(&lacks);
	}
	strbuf_release(&in);
	strbuf_release(&out);
	strbuf_release(&err);
	return st ? e->status : 0;
}

/* closure_of and closure_of_all: args the paths, NULL-terminated. */
static int closure_of_args(const struct host *h, const char *const *args, size_t n,
			   struct strvec *out, struct nrr_err *e)
{
	struct strbuf o = STRBUF_INIT, err = STRBUF_INIT;
	char why[512];
	int st = host_run(h, NULL, "query", script_closure, args, NULL, 0, &o,
			  &err, -1, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		if (n > 1)
			nrr_fail(e, NRR_ECOPY, "cannot list the closures of '%s' and %zu more on '%s': %s",
				 args[0], n - 1, h->name, why);
		else
			nrr_fail(e, NRR_ECOPY, "cannot list the closure of '%s' on '%s': %s",
				 args[0], h->name, why);
	} else if (st == 0) {
		split_lines(o.buf, out);
	}
	strbuf_release(&o);
	strbuf_release(&err);
	return st ? e->status : 0;
}

int closure_of(const struct host *h, const char *path, struct strvec *out,
	       struct nrr_err *e)
{
	const char *args[] = { path, NULL };
	return closure_of_args(h, args, 1, out, e);
}

int closure_of_all(const struct host *h, const struct strvec *paths, struct strvec *out,
		   struct nrr_err *e)
{
	if (!paths->nr)
		return 0;
	return closure_of_args(h, (const char *const *)paths->v, paths->nr, out, e);
}

/* Moves data between the exporter and the importer while collecting both
 * sides' messages. One chunk in flight bounds memory use. Every chunk is
 * checked before it goes (lib/exportcheck.h): at the first byte of an
 * entry not asked for (or of anything else the checker refuses), the
 * exporter is stopped and the importer's stdin closed after the bytes
 * before it, so that its cut entry is never complete. */
struct relay {
	struct child *src, *dst;
	struct strbuf *src_err, *dst_err, *dst_out;
	const char *list;	/* paths for the exporter's stdin */
	size_t list_len;
	unsigned long long bytes;
	int keep_dst;		/* dst goes on after the stream: no EOF */
	struct exportcheck *check;
	int refused;		/* the checker stopped the stream */
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void relay_run(struct relay *p)
{
	struct strbuf chunk = STRBUF_INIT;
	const char *data = NULL;
	size_t have = 0;

	fcntl(p->src->in_fd, F_SETFL, O_NONBLOCK);
	fcntl(p->dst->in_fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pump_fd fds[] = {
			{ .fd = &p->src->in_fd, .write = 1, .buf = &p->list,
			  .len = &p->list_len },
			/* read more only when the chunk is written */
			{ .fd = have ? NULL : &p->src->out_fd, .sb = &chunk },
			{ .fd = &p->dst->in_fd, .write = 1, .buf = &data,
			  .len = &have, .keep_open = 1 },
			{ .fd = &p->src->err_fd, .sb = p->src_err },
			{ .fd = &p->dst->err_fd, .sb = p->dst_err },
			{ .fd = &p->dst->out_fd, .sb = p->dst_out },
		};
		/* a chunk is read only when the last one is written: what
		 * chunk holds after pump is new only then */
		int reading = !have;
		if (reading)
			strbuf_reset(&chunk);
		if (pump(fds, sizeof(fds) / sizeof(fds[0]), -1) < 0)
			break;
		if (reading && chunk.len) {
			data = chunk.buf;
			have = exportcheck_feed(p->check, chunk.buf, chunk.len);
			p->bytes += have;
			if (p->check->failed) {
				/* nothing more from it: what it would send
				 * next is no more to be trusted */
				p->refused = 1;
				close_fd(&p->src->out_fd);
				close_fd(&p->src->in_fd);
				child_kill(p->src, SIGTERM);
			}
		}
		/* refused: the importer gets the bytes before the refused
		 * one, then its end, whether or not it was to go on */
		if (p->refused && !have)
			close_fd(&p->dst->in_fd);
		/* the importer gone, stop the exporter too */
		if (fds[2].gone)
			close_fd(&p->src->out_fd);
		/* the stream has ended: the importer sees EOF, or, when it
		 * goes on, the relay ends with the exporter */
		if (p->src->out_fd < 0 && !have) {
			if (!p->keep_dst)
				close_fd(&p->dst->in_fd);
			else if (p->src->err_fd < 0 && p->src->in_fd < 0)
				break;
		}
		if (p->keep_dst && p->dst->in_fd < 0) {
			close_fd(&p->src->out_fd);
			have = 0;
		}
	}
	strbuf_release(&chunk);
}

void closure_hint_store_changed(struct nrr_err *e)
{
	nrr_hint(e, "this machine's store changed behind Nix's back: "
		 "`nix-store --verify --check-contents` finds what, "
		 "`nix-store --repair-path PATH` mends it");
}

int closure_import_failed(const struct host *dst, int status, const char *err,
			  struct nrr_err *e)
{
	char why[512];
	char *lost = dst->ssh && status == 255 ? ssh_host_lost_reason(dst->ssh) : NULL;

	if (!lost && dst->ssh && !ssh_host_alive(dst->ssh)) {
		/* its master ended: what the importer said of it (a daemon
		 * that hung up, a stream cut) only blames the target */
		ssh_host_end_text(dst->ssh, why, sizeof(why));
		nrr_fail(e, NRR_ECOPY, "copying to '%s' failed: %s", dst->name, why);
		ssh_hint_ended(dst->ssh, e);
		return e->status;
	}
	nix_error_summary(lost ? lost : *err ? err : "connection lost", why, sizeof(why));
	nrr_fail(e, NRR_ECOPY, "copying to '%s' failed: %s", dst->name, why);
	if (lost)
		ssh_hint_not_responding(dst->ssh, e);
	else if (strstr(err, "lacks a signature") || strstr(err, "not a trusted user") ||
		 strstr(err, "trusted"))
		nrr_hint(e, "the ssh user on '%s' must be in nix.conf's "
			 "trusted-users to import unsigned paths (or deploy as root)",
			 dst->name);
	else if (strstr(err, "hash mismatch importing path") ||
		 strstr(err, "size mismatch importing path"))
		closure_hint_store_changed(e);
	else if (strstr(err, "No space left"))
		nrr_hint(e, "'%s' is out of disk space: collect garbage there "
			 "(nix-collect-garbage -d) and try again", dst->name);
	free(lost);
	return e->status;
}

/*
 * How a stream from src to dst ended, into e: interrupted; the source lost
 * (a source that stopped answering cuts the stream, and the importer's
 * complaint about it would only blame the destination); the importer's
 * failure (si, derr; 0 when it is not ours to judge); the exporter's own
 * (se, serr). Returns 0 when none of them, else e->status.
 */
static int stream_failed(const struct host *src, const struct host *dst, int se,
			 const char *serr, int si, const char *derr,
			 const struct closure_sink *sink, struct nrr_err *e)
{
	char why[512];
	char *src_lost = src->ssh && se == 255 ? ssh_host_lost_reason(src->ssh) : NULL;
	int ret = 0;

	if (run_interrupted()) {
		ret = nrr_fail(e, NRR_EINT, "interrupted while copying to '%s'", dst->name);
	} else if (src_lost) {
		ret = nrr_fail(e, NRR_ECOPY, "exporting from '%s' failed: %s", src->name, src_lost);
		ssh_hint_not_responding(src->ssh, e);
	} else if (si != 0) {
		ret = sink && sink->failed ? sink->failed(sink->data, dst, si, derr, e)
					   : closure_import_failed(dst, si, derr, e);
	} else if (se != 0) {
		nix_error_summary(*serr ? serr : "connection lost", why, sizeof(why));
		ret = nrr_fail(e, NRR_ECOPY, "exporting from '%s' failed: %s", src->name, why);
	}
	free(src_lost);
	return ret;
}

/* The checker refused src's stream (refused): its protocol error, naming
 * src and what it sent, into e, and NRR_EPROTO; else 0. */
static int stream_checked(const struct host *src, const struct exportcheck *check,
			  int refused, struct nrr_err *e)
{
	if (!refused)
		return 0;
	nrr_protocol(e, src->name, "%s", check->why);
	/* the entries before the refused one were asked for, and stay */
	nrr_hint(e, "a broken or hostile host: the copy stopped before what was not asked for; "
		 "nothing was activated");
	return NRR_EPROTO;
}

int closure_send(const struct host *src, const struct host *dst,
		 const struct strvec *paths, unsigned long long *bytes,
		 struct nrr_err *e)
{
	const char *noargs[] = { NULL };
	struct closure_sink sink = { script_import, noargs, NULL, NULL, NULL, NULL };

	return closure_send_into(src, dst, paths, &sink, bytes, e);
}

int closure_send_into(const struct host *src, const struct host *dst,
		      const struct strvec *paths, const struct closure_sink *sink,
		      unsigned long long *bytes, struct nrr_err *e)
{
	struct child exp = CHILD_INIT, imp = CHILD_INIT;
	struct strbuf list = STRBUF_INIT, serr = STRBUF_INIT,
		      derr = STRBUF_INIT, dout = STRBUF_INIT;
	int ret = 0;

	*bytes = 0;
	if (!paths->nr)
		return 0;
	join_lines(paths, &list);
	host_script_argv(dst, NULL, sink->script, sink->args, &imp);
	imp.in = imp.out = imp.err = CHILD_PIPE;
	if (closure_export_start(src, &exp, e)) {
		ret = e->status;
		goto out;
	}
	if (child_start(&imp, e)) {
		ret = e->status;
		closure_export_cancel(&exp);
		goto out;
	}
	struct exportcheck check;
	exportcheck_init(&check, paths->v, paths->nr);
	struct relay p = { &exp, &imp, &serr, &derr, &dout, list.buf, list.len, 0, 0, &check, 0 };
	relay_run(&p);
	*bytes = p.bytes;
	int se = child_wait(&exp);
	int si = child_wait(&imp);
	ret = stream_checked(src, &check, p.refused, e);
	if (!ret)
		ret = stream_failed(src, dst, se, serr.buf, si, derr.buf, sink, e);
	if (!ret && exportcheck_finish(&check))
		ret = stream_checked(src, &check, 1, e);
	exportcheck_release(&check);
	if (sink->out)
		strbuf_add(sink->out, dout.buf, dout.len);
	if (sink->err)
		strbuf_add(sink->err, derr.buf, derr.len);
out:
	child_clear(&exp);
	child_clear(&imp);
	strbuf_release(&list);
	strbuf_release(&serr);
	strbuf_release(&derr);
	strbuf_release(&dout);
	return ret;
}

int closure_export_start(const struct host *src, struct child *exp, struct nrr_err *e)
{
	const char *noargs[] = { NULL };

	host_script_argv(src, NULL, script_export, noargs, exp);
	exp->in = exp->out = exp->err = CHILD_PIPE;
	if (child_start(exp, e)) {
		child_clear(exp);
		return e->status;
	}
	return 0;
}

void closure_export_cancel(struct child *exp)
{
	close_fd(&exp->in_fd);
	close_fd(&exp->out_fd);
	close_fd(&exp->err_fd);
	if (exp->pid > 0) {
		child_kill(exp, SIGTERM);
		child_wait(exp);
	}
	child_clear(exp);
}

int closure_stream_into(const struct host *src, const struct host *dst, struct child *started,
			struct child *into, struct strbuf *out, struct strbuf *err,
			const struct strvec *paths, unsigned long long *bytes,
			struct nrr_err *e)
{
	struct child own = CHILD_INIT, *exp = started && started->pid > 0 ? started : &own;
	struct strbuf list = STRBUF_INIT, serr = STRBUF_INIT;
	int ret = 0;

	*bytes = 0;
	join_lines(paths, &list);
	if (exp == &own && closure_export_start(src, exp, e)) {
		ret = e->status;
		goto out;
	}
	struct exportcheck check;
	exportcheck_init(&check, paths->v, paths->nr);
	struct relay p = { exp, into, &serr, err, out, list.buf, list.len, 0, 1, &check, 0 };
	relay_run(&p);
	*bytes = p.bytes;
	if (p.src->out_fd >= 0 || p.src->err_fd >= 0) {
		/* the importer went first: the exporter has nowhere to write */
		child_kill(exp, SIGTERM);
	}
	int se = child_wait(exp);
	ret = stream_checked(src, &check, p.refused, e);
	/* stopped by us because into went away: into's end says why */
	if (into->in_fd < 0 && se != 255)
		se = 0;
	if (!ret)
		ret = stream_failed(src, dst, se, serr.buf, 0, "", NULL, e);
	/* a stream that ended early leaves into waiting for the rest;
	 * when into went away, its end says why */
	if (!ret && into->in_fd >= 0 && exportcheck_finish(&check))
		ret = stream_checked(src, &check, 1, e);
	exportcheck_release(&check);
out:
	closure_export_cancel(exp);
	strbuf_release(&list);
	strbuf_release(&serr);
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

int closure_sizes(const struct host *h, const struct strvec *paths,
		  unsigned long long *sizes, struct nrr_err *e)
{
	struct strbuf in = STRBUF_INIT, out = STRBUF_INIT;
	struct strvec lines = STRVEC_INIT;
	const char *noargs[] = { NULL };
	int ret = 0;

	for (size_t i = 0; i < paths->nr; i++)
		strbuf_addf(&in, "%s\n", paths->v[i]);
	int st = host_run(h, NULL, "size", script_size, noargs, in.buf, in.len, &out,
			  NULL, -1, e);
	if (st < 0)
		ret = e->status;
	split_lines(out.buf, &lines);
	if (!ret && (st || lines.nr != paths->nr))
		ret = nrr_fail(e, NRR_EFAIL, "cannot query the sizes of %zu paths on '%s'",
			       paths->nr, h->name);
	for (size_t i = 0; !ret && i < lines.nr; i++)
		if (parse_decimal_u64(lines.v[i], strlen(lines.v[i]), &sizes[i]))
			ret = nrr_fail(e, NRR_EFAIL, "'%s' gave no size for '%s'",
				       h->name, paths->v[i]);
	strvec_clear(&lines);
	strbuf_release(&in);
	strbuf_release(&out);
	return ret;
}

int closure_size(const struct host *h, const struct strvec *paths,
		 unsigned long long *bytes, struct nrr_err *e)
{
	unsigned long long *sizes = xcalloc(paths->nr + 1, sizeof(*sizes));
	int ret = closure_sizes(h, paths, sizes, e);

	*bytes = 0;
	for (size_t i = 0; !ret && i < paths->nr; i++)
		*bytes += sizes[i];
	free(sizes);
	return ret;
}
