#include <stdlib.h>
#include <string.h>

#include "closure.h"
#include "daemon.h"
#include "narinfo.h"
#include "nix.h"
#include "serve.h"
#include "serveproto.h"
#include "run.h"

/* One number of the target's answer into *v. 0, or -1 if it stopped. */
static int read_u64(struct session *s, uint64_t *v)
{
	unsigned char b[8];
	if (session_read(s, b, sizeof(b)))
		return -1;
	*v = serveproto_get_u64(b);
	return 0;
}

/* The target stopped answering, or answered outside the protocol: the
 * conversation ends here, and how it ended (ssh's status, what nix said on
 * stderr) says why. */
static int lost(struct session *s, struct nrr_err *e)
{
	int st = session_finish(s);
	return closure_import_failed(s->host, st, s->err.buf, e);
}

/* The daemon failed: as a copy through nix-store --serve that failed so
 * (the connection lost, a full disk: the same words and hints), with the
 * daemon's words for the rest. */
static int daemon_failed(struct session *s, const char *why, struct nrr_err *e)
{
	if (run_interrupted())
		return nrr_fail(e, NRR_EINT, "interrupted while copying to '%s'", s->host->name);
	int st = session_finish(s);
	return closure_import_failed(s->host, st, why, e);
}

/* What the target has (valid) against the closure: anything it names
 * outside it is refused (NRR_EPROTO); the rest of the closure, in its
 * order, is appended to missing. */
static int lacking(struct session *s, const struct strvec *closure, const struct strvec *valid,
		   struct strvec *missing, struct nrr_err *e)
{
	struct strindex in_closure = { NULL, 0 };
	char *has = xcalloc(closure->nr + 1, 1), shown[256];
	int ret = 0;

	strindex_init(&in_closure, closure->v, closure->nr);
	for (size_t i = 0; i < valid->nr && !ret; i++) {
		long at = strindex_find(&in_closure, valid->v[i]);
		if (at < 0)
			ret = nrr_protocol(e, s->host->name, "it has '%s', which is not in the closure we sent",
					   nrr_printable(shown, sizeof(shown), valid->v[i]));
		else
			has[at] = 1;
	}
	for (size_t i = 0; !ret && i < closure->nr; i++)
		if (!has[i])
			strvec_push(missing, closure->v[i]);
	free(has);
	strindex_release(&in_closure);
	return ret;
}

int serve_not_started(const struct session *s, const char *said, struct nrr_err *e)
{
	char shown[256];
	return nrr_protocol(e, s->host->name, "it said '%s' where its nix-store --serve was to start",
			    nrr_printable(shown, sizeof(shown), said));
}

/* The paths of closure nix-store --serve says the target has (asked with
 * serve_query_ahead), into valid; first, when set, the line the script says
 * before it (serve_query). */
static int serve_valid(struct session *s, const char *first, const struct strvec *closure,
		       struct strvec *valid, struct nrr_err *e)
{
	struct strbuf path = STRBUF_INIT;
	uint64_t magic, version, n, len;
	int ret = 0;

	if (first) {
		if (session_line(s, &path)) {
			ret = lost(s, e);
			goto out;
		}
		if (strcmp(path.buf, first)) {
			ret = serve_not_started(s, path.buf, e);
			goto out;
		}
	}
	if (read_u64(s, &magic) || read_u64(s, &version)) {
		ret = lost(s, e);
		goto out;
	}
	if (magic != SERVEPROTO_MAGIC_2 || (version >> 8) != 2) {
		ret = nrr_protocol(e, s->host->name, "its nix-store --serve answered the handshake with %#llx %#llx",
				   (unsigned long long)magic, (unsigned long long)version);
		goto out;
	}
	if (read_u64(s, &n)) {
		ret = lost(s, e);
		goto out;
	}
	if (n > closure->nr) {
		ret = nrr_protocol(e, s->host->name, "it has %llu paths of the %zu it was asked about",
				   (unsigned long long)n, closure->nr);
		goto out;
	}
	for (uint64_t i = 0; i < n && !ret; i++) {
		char shown[256];
		if (read_u64(s, &len)) {
			ret = lost(s, e);
			break;
		}
		if (len > SERVEPROTO_MAX_STRING) {
			ret = nrr_protocol(e, s->host->name, "it named a path of %llu bytes",
					   (unsigned long long)len);
			break;
		}
		strbuf_reset(&path);
		strbuf_grow(&path, (size_t)serveproto_padded(len) + 1);
		if (session_read(s, path.buf, (size_t)serveproto_padded(len))) {
			ret = lost(s, e);
			break;
		}
		strbuf_setlen(&path, (size_t)len);
		if (strlen(path.buf) != len)
			ret = nrr_protocol(e, s->host->name, "it has '%s', which is not in the closure we sent",
					   nrr_printable(shown, sizeof(shown), path.buf));
		else
			strvec_push(valid, path.buf);
	}
out:
	strbuf_release(&path);
	return ret;
}

int serve_query_ahead(struct session *s, struct daemon_conn *d, struct strbuf *msg,
		      const struct strvec *closure, int substitute, struct nrr_err *e)
{
	char why[512];

	if (!d) {
		serveproto_hello_query(msg, closure, 1, substitute);
		return 0;
	}
	return daemon_query_send(d, closure, substitute, why, sizeof(why)) ?
	       daemon_failed(s, why, e) : 0;
}

int serve_query_answer(struct session *s, struct daemon_conn *d, const char *first,
		       const struct strvec *closure, struct strvec *missing, struct nrr_err *e)
{
	struct strvec valid = STRVEC_INIT;
	char why[512];
	int ret;

	if (d)
		ret = daemon_query_answer(d, closure, &valid, why, sizeof(why)) ?
		      daemon_failed(s, why, e) : 0;
	else
		ret = serve_valid(s, first, closure, &valid, e);
	if (!ret)
		ret = lacking(s, closure, &valid, missing, e);
	strvec_clear(&valid);
	return ret;
}

int serve_query(struct session *s, struct daemon_conn *d, const char *first,
		const struct strvec *closure, int substitute, struct strvec *missing,
		struct nrr_err *e)
{
	struct strbuf msg = STRBUF_INIT;
	int ret = serve_query_ahead(s, d, &msg, closure, substitute, e);

	if (!ret && msg.len && session_send(s, msg.buf, msg.len))
		ret = lost(s, e);
	if (!ret)
		ret = serve_query_answer(s, d, first, closure, missing, e);
	strbuf_release(&msg);
	return ret;
}

/* narexport's sink: into the session, which may have ended. */
struct to_session {
	struct session *s;
	int gone;
};

static int to_session(void *ctx, const void *buf, size_t len)
{
	struct to_session *t = ctx;
	if (session_send(t->s, buf, len))
		t->gone = 1;
	return t->gone ? -1 : 0;
}

/* narexport's file sink: the same, a big file's pages sent from the file. */
static int file_to_session(void *ctx, int fd, unsigned long long len)
{
	struct to_session *t = ctx;
	int r = session_send_file(t->s, fd, len);
	if (r == -1)
		t->gone = 1;
	return r == SESSION_FILE_SHORT ? NAREXPORT_SHORT : r;
}

/* narexport failed here (ret, why: a path that differs from its
 * registration, a file it cannot read, an interrupt), whichever way the
 * stream went. Returns e->status. */
static int here_failed(struct session *s, int ret, const char *why, struct nrr_err *e)
{
	if (run_interrupted())
		return nrr_fail(e, NRR_EINT, "interrupted while copying to '%s'", s->host->name);
	nrr_fail(e, NRR_ECOPY, "copying to '%s' failed: %s", s->host->name, why);
	if (ret == NAREXPORT_MISMATCH)
		closure_hint_store_changed(e);
	return e->status;
}

/* The n paths here, their NARs made from this machine's store (lib/
 * narexport.h), one AddToStoreNar each, all sent before the first answer
 * is read. 0, or a status with e filled. */
static int add_here(struct session *s, const struct narexport_path *here, size_t n,
		    unsigned long long *bytes, struct nrr_err *e)
{
	struct to_session t = { s, 0 };
	struct strbuf head = STRBUF_INIT;
	char why[512];
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		unsigned long long nar = 0;
		strbuf_reset(&head);
		serveproto_add_u64(&head, SERVEPROTO_ADD_NAR);
		serveproto_add_info(&head, &here[i]);
		if (to_session(&t, head.buf, head.len))
			break;
		ret = narexport_nar_files(&here[i], to_session, file_to_session, &t,
					  run_interrupted, &nar, why, sizeof(why));
		*bytes += head.len + nar;
	}
	strbuf_release(&head);
	if (t.gone)
		return lost(s, e);
	if (ret) {
		/* ours: the target's complaint about the cut NAR, when we
		 * hang up, would only blame the target */
		s->echo_fd = -1;
		return here_failed(s, ret, why, e);
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t ok;
		if (read_u64(s, &ok) || ok != 1)
			return lost(s, e);
	}
	return 0;
}

int serve_import(struct session *s, struct daemon_conn *d, const struct host *src,
		 struct child *exp, const struct strvec *paths,
		 const struct narexport_path *here, unsigned long long *bytes,
		 struct nrr_err *e)
{
	struct strbuf cmd = STRBUF_INIT;
	uint64_t ok;
	int ret;

	*bytes = 0;
	if (d) {
		char why[512];
		/* (an interrupt ends the dump that would have told them) */
		if (!here && run_interrupted())
			return nrr_fail(e, NRR_EINT, "interrupted while copying to '%s'",
					s->host->name);
		if (!here)
			return nrr_fail(e, NRR_ECOPY, "copying to '%s' failed: the closure's "
					"registrations are not known here", s->host->name);
		ret = daemon_add(d, here, paths->nr, run_interrupted, bytes, why, sizeof(why));
		return ret == NAREXPORT_MISMATCH ? here_failed(s, ret, why, e) :
		       ret ? daemon_failed(s, why, e) : 0;
	}
	if (here)
		return add_here(s, here, paths->nr, bytes, e);
	serveproto_add_u64(&cmd, SERVEPROTO_IMPORT);
	ret = session_send(s, cmd.buf, cmd.len) ? lost(s, e) :
	      closure_stream_into(src, s->host, exp, &s->c, &s->out, &s->err, paths, bytes, e);
	strbuf_release(&cmd);
	if (ret) {
		/* the source failed: the target's complaint about the cut
		 * stream, when we hang up, would only blame the target */
		s->echo_fd = -1;
		return ret;
	}
	if (read_u64(s, &ok) || ok != 1)
		return lost(s, e);
	return 0;
}

int serve_end(struct session *s, int via_daemon, const char *token, struct nrr_err *e)
{
	struct strbuf msg = STRBUF_INIT, line = STRBUF_INIT;
	int ret = 0;

	/* (the daemon's connection stays: its temporary roots hold what it
	 * imported until the conversation ends) */
	if (!via_daemon)
		serveproto_add_u64(&msg, SERVEPROTO_END);
	if ((msg.len && session_send(s, msg.buf, msg.len)) || session_line(s, &line) ||
	    strcmp(line.buf, "served")) {
		ret = lost(s, e);
	} else {
		strbuf_reset(&msg);
		strbuf_addf(&msg, "go %s\n", token);
		session_send(s, msg.buf, msg.len);
	}
	strbuf_release(&msg);
	strbuf_release(&line);
	return ret;
}
