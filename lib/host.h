/*
 * host: run one of our shell scripts on a machine, remote or this one.
 *
 * Every remote step is a short POSIX sh script of ours, sent as
 * `/bin/sh -c SCRIPT sh ARGS...` with every word quoted by sq_quote_buf(),
 * so that the remote user's login shell (bash, dash, zsh or fish) hands it
 * to /bin/sh unchanged. Arguments travel as positional parameters, never
 * pasted into the script text. On this machine the same argv runs without
 * ssh, so local and remote activation are one code path.
 *
 * Elevation wraps the whole script once: `sudo [-S -p ''] [NIX_SUDOOPTS]
 * -- /bin/sh -c ...`, or run0 (systemd-run --uid=0 --pipe --wait, with the
 * caller's PATH carried over). A password, when given, is written to the
 * child's stdin before any other input: sudo -S reads exactly one line.
 */
#ifndef NRR_HOST_H
#define NRR_HOST_H

#include "error.h"
#include "ssh.h"
#include "strbuf.h"

/* What sudo -S says when it asks for the password (-p): we send it then,
 * and only then, and cut the prompt out of what the user sees. */
#define HOST_SUDO_PROMPT "[nixos-rebuild-remote: sudo asks for the password]"

/* How a script gains root (--elevate). */
/* ELEVATE_COMMAND: a hive node's privilegeEscalationCommand other than
 * sudo, its words as given; it is never given a password */
enum elevate { ELEVATE_NONE, ELEVATE_SUDO, ELEVATE_RUN0, ELEVATE_COMMAND };

struct elevation {
	enum elevate kind;
	const char *password;	/* borrowed; NULL if none was asked for */
	struct strvec sudo_opts; /* NIX_SUDOOPTS words; for ELEVATE_COMMAND,
				  * the command's words */
};

struct host {
	const char *name;	/* for messages: as typed, or "localhost" */
	struct ssh_host *ssh;	/* NULL: this machine */
	struct ssh_ctx *ctx;
};

/* Fills c->args to run script with args on h, elevated if el != NULL
 * and el->kind != ELEVATE_NONE. */
void host_script_argv(const struct host *h, const struct elevation *el,
		      const char *script, const char *const *args,
		      struct child *c);

/*
 * Runs script on h and waits. input/out/err/echo_fd as child_capture().
 * Returns the script's exit status. When ssh itself fails (status 255),
 * or the child cannot start, returns -1 with e filled (NRR_ECONNECT naming
 * the host and step).
 */
int host_run(const struct host *h, const struct elevation *el,
	     const char *step, const char *script, const char *const *args,
	     const void *input, size_t inlen, struct strbuf *out,
	     struct strbuf *err, int echo_fd, struct nrr_err *e);

#endif
