/*
 * serve: the closure's query and import inside a deploy's conversation,
 * spoken to the target's `nix-store --serve --write` (lib/serveproto.h).
 *
 * lib/scripts/activate.sh says "serve" and runs it; serve_query asks it
 * which paths of the closure the target has (after its caches were tried,
 * with substitute), serve_import streams what it lacks from where the
 * closure is, and serve_end stops it and lets the script go on: "served"
 * from the script, then "go TOKEN" from us. The token is the field the
 * script got: when an import fails half-way, the rest of the stream is
 * read as lines by the script, and no such stream holds the token, so
 * nothing is activated from it.
 *
 * With d (lib/daemon.h, its greeting answered), the query and the import
 * go to the target's nix-daemon instead, and the script started no
 * nix-store: it said "serve" and "served" at once, and waits for the go.
 *
 * Each returns 0 or an NRR_* status with e filled; after a failure the
 * caller hangs up (session_finish), and the target changed nothing but
 * the paths it imported.
 */
#ifndef NRR_SERVE_H
#define NRR_SERVE_H

#include "daemon.h"
#include "narexport.h"
#include "session.h"
#include "strvec.h"

/* Paths of closure the target lacks, in closure's order, appended to
 * missing. Anything it names outside closure is refused (NRR_EPROTO).
 * first: the line the script says before its nix-store --serve answers
 * (lib/scripts/serve.sh's "serve"), read after the query is sent, so that
 * the two share a round trip; NULL when it was read already. */
int serve_query(struct session *s, struct daemon_conn *d, const char *first,
		const struct strvec *closure, int substitute, struct strvec *missing,
		struct nrr_err *e);

/* The script said said where its "serve" line was due: our query waits
 * in its input, and nothing may go on. Returns NRR_EPROTO, e filled. */
int serve_not_started(const struct session *s, const char *said, struct nrr_err *e);

/* serve_query in two, for a query asked ahead of the script's "serve":
 * the question, appended to msg (to go in the same write as what makes
 * the script start its nix-store --serve), or through d sent at once;
 * then the answer, read as serve_query reads it. 0, or a status with e
 * filled. */
int serve_query_ahead(struct session *s, struct daemon_conn *d, struct strbuf *msg,
		      const struct strvec *closure, int substitute, struct nrr_err *e);
int serve_query_answer(struct session *s, struct daemon_conn *d, const char *first,
		       const struct strvec *closure, struct strvec *missing, struct nrr_err *e);

/* Streams paths (missing there, in closure order) from src; *bytes gets
 * the stream's size. here, if set (src is this machine): what its store
 * registered of each of paths, and each path goes as that registration
 * and its NAR, made here from the store (lib/narexport.h), which the
 * target checks against it (AddToStoreNar); else src's nix-store exports
 * (ImportPaths): exp, when started (closure_export_start), is that
 * exporter, and is taken; else one is started. Through d, here is
 * required. */
int serve_import(struct session *s, struct daemon_conn *d, const struct host *src,
		 struct child *exp, const struct strvec *paths,
		 const struct narexport_path *here, unsigned long long *bytes,
		 struct nrr_err *e);

/* Ends the serving process (none via_daemon) and says "go TOKEN". */
int serve_end(struct session *s, int via_daemon, const char *token, struct nrr_err *e);

#endif
