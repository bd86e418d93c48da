/*
 * closure: moving store paths between machines in one stream.
 *
 * nix-copy-closure and `nix copy` to ssh:// upload one path per round trip
 * (the legacy serve protocol), which dominates on a distant link. We ask the
 * destination once which paths it lacks, then stream all of them as one
 * `nix-store --export | nix-store --import`, relayed through this process
 * (so it also works between two remote hosts that cannot reach each other,
 * stores nothing locally, and lets us count the bytes).
 *
 * Paths are always handled in the closure's topological order as
 * `nix-store -qR` prints it (dependencies first), which is what
 * `nix-store --import` needs.
 *
 * The importer registers every entry the stream holds, so the relay
 * checks the stream as it passes (lib/exportcheck.h): a source that sends
 * a path it was not asked for (one the destination is to build later,
 * say), or anything but an export, is stopped before that entry is
 * complete, and the copy fails with NRR_EPROTO naming it. The entries
 * before it were asked for, and stay imported.
 */
#ifndef NRR_CLOSURE_H
#define NRR_CLOSURE_H

#include "host.h"

/*
 * Asks dst which of closure's paths it lacks, in one remote command. With
 * substitute, dst first tries its own substituters. Missing paths are
 * appended to missing, in order.
 */
int closure_query(const struct host *dst, const struct strvec *closure,
		  int substitute, struct strvec *missing, struct nrr_err *e);

/* Parses the query script's output (pure; for unit tests): the paths
 * after the "--" line go to missing (the facts before it are not used). */
void closure_parse_missing(const char *text, struct strvec *missing);

/*
 * Streams paths (already known to be missing on dst, in closure order)
 * from src to dst. Returns 0, NRR_ECOPY, or NRR_EPROTO when src's stream
 * was refused; *bytes gets what was forwarded of the stream.
 */
int closure_send(const struct host *src, const struct host *dst,
		 const struct strvec *paths, unsigned long long *bytes,
		 struct nrr_err *e);

/*
 * What reads a stream on dst, for closure_send_into: script with args (NULL
 * terminated), which imports the stream and may do more with it. When it
 * ends with a status other than 0 (and nothing before it failed), failed
 * fills e (data, dst, that status, its stderr) and returns e->status;
 * NULL: closure_import_failed. Its stdout is appended to out and its
 * stderr to err, each unless NULL.
 */
struct closure_sink {
	const char *script;
	const char *const *args;
	int (*failed)(void *data, const struct host *dst, int status, const char *err,
		      struct nrr_err *e);
	void *data;
	struct strbuf *out, *err;
};

/* closure_send into sink's script (closure_send's is import.sh). Returns
 * as closure_send, or what sink->failed returned. */
int closure_send_into(const struct host *src, const struct host *dst,
		      const struct strvec *paths, const struct closure_sink *sink,
		      unsigned long long *bytes, struct nrr_err *e);

/* The hint for a path whose NAR here differs from the store's registration
 * of it, found here or by the importer (which says "hash mismatch"). */
void closure_hint_store_changed(struct nrr_err *e);

/*
 * Fills e for an import into dst that ended with status (255: ssh lost
 * the connection) and said err on stderr: "copying to 'DST' failed", with
 * a hint when the reason is known. Returns NRR_ECOPY.
 */
int closure_import_failed(const struct host *dst, int status, const char *err,
			  struct nrr_err *e);

/*
 * Starts src's exporter (lib/scripts/export.sh) before the paths it is to
 * export are known: it waits for them on its stdin, so its ssh session and
 * its start overlap whatever decides them (the target's answer to which it
 * lacks). exp must be CHILD_INIT; on failure it is cleared and e filled.
 * Hand it to closure_stream_into, or end it with closure_export_cancel.
 */
int closure_export_start(const struct host *src, struct child *exp, struct nrr_err *e);

/* Stops and reaps an exporter that closure_stream_into did not take, and
 * clears it; nothing when it was never started. */
void closure_export_cancel(struct child *exp);

/*
 * Streams paths from src (its nix-store --export) into the stdin of into,
 * a running remote conversation on dst that takes them (lib/serve.h), and
 * leaves that stdin open; what into says meanwhile is appended to out and
 * err. *bytes gets what was forwarded of the stream. Returns 0, or
 * NRR_ECOPY / NRR_EINT when the export failed, NRR_EPROTO when its stream
 * was refused or ended early (then into's stdin may be closed: into
 * must not go on); whether into took it all is into's to say.
 */
int closure_stream_into(const struct host *src, const struct host *dst, struct child *started,
			struct child *into, struct strbuf *out, struct strbuf *err,
			const struct strvec *paths, unsigned long long *bytes,
			struct nrr_err *e);

/*
 * On src, streams paths to the ssh destination dest_addr
 * (user@hostname:port) with src's own ssh (--copy-direct).
 */
int closure_send_direct(const struct host *src, const char *user,
			const char *hostname, int port,
			const struct strvec *paths, struct nrr_err *e);

/* The closure of path on h (nix-store -qR), in order, appended to out. */
int closure_of(const struct host *h, const char *path, struct strvec *out,
	       struct nrr_err *e);

/* The closures of paths on h, each path once, dependencies first (one
 * nix-store -qR for all), appended to out. */
int closure_of_all(const struct host *h, const struct strvec *paths, struct strvec *out,
		   struct nrr_err *e);

/* The NAR size of each of paths on h (nix-store --query --size, one
 * query), into sizes[i] (room for paths->nr). Returns 0 or an NRR_*
 * status. */
int closure_sizes(const struct host *h, const struct strvec *paths,
		  unsigned long long *sizes, struct nrr_err *e);

/* The sum of the NAR sizes of paths on h (nix-store --query --size), in
 * *bytes. Returns 0 or an NRR_* status. */
int closure_size(const struct host *h, const struct strvec *paths,
		 unsigned long long *bytes, struct nrr_err *e);

/*
 * 0 if every one of paths (what h says it lacks) is a member of closure
 * (what we sent it; may be NULL: then none is); else NRR_EPROTO naming h
 * and the first stranger. A host may only ever ask for what we offered:
 * anything else would make us export another path of this machine (another
 * host's system, its secrets) or pass it options.
 */
int closure_check_members(const struct host *h, const struct strvec *closure,
			  const struct strvec *paths, struct nrr_err *e);

/* Splits text into lines (non-empty), appended to out. */
void split_lines(const char *text, struct strvec *out);

#endif
