/*
 * exec: one command on many hosts, colmena's `exec --on RULES -- CMD`.
 *
 * The command is argv words, each quoted by sq_quote_buf() into one
 * string for the remote login shell (whatever shell it is), and run on
 * each host through its master (lib/ssh.c): one handshake per host, made
 * for all hosts at once before the commands start, then at most
 * `parallel` commands at a time. Every line a host writes is shown under
 * its name, "NAME | LINE", stdout's on out_fd and stderr's on err_fd, a
 * whole line per write so that hosts' lines never mix within a line.
 *
 * The exit status says whether any failed: 0 when every host ran the
 * command and it exited 0; NRR_EFLEET (12) otherwise, with a message
 * naming each failed host and why (its status, or that it could not be
 * reached), the others' output shown in full all the same.
 */
#ifndef NRR_EXEC_H
#define NRR_EXEC_H

#include <stddef.h>

#include "error.h"
#include "ssh.h"

struct exec_target {
	const char *name;	/* shown before its lines */
	struct ssh_host *ssh;	/* resolved (ssh_host_resolve); connected
				 * here if it is not yet, released by the caller */
	struct ssh_ctx *ctx;	/* NULL: exec_run's; else this host's own (its
				 * port and ssh options), the caller's */
	const char *const *prefix; /* NULL, or words run before the command
				 * (a privilege escalation command) */
	/* results */
	int status;		/* the command's exit status; -1: did not run */
	struct nrr_err err;	/* why, when status != 0 */
};

/*
 * Runs argv on every target (n of them), at most parallel at a time
 * (0: all at once). Returns 0 or NRR_EFLEET as above (NRR_EUSAGE for an
 * empty command; NRR_EINT if interrupted); each target's status and err
 * say what happened to it.
 */
int exec_run(struct ssh_ctx *ctx, struct exec_target *t, size_t n,
	     const char *const *argv, int parallel, int out_fd, int err_fd,
	     struct nrr_err *e);

/*
 * Appends "NAME | " and each complete line of buf (len bytes) to dst,
 * leaving an unfinished last line in *rest (for the next chunk); with
 * final, the unfinished line too, ended by a newline. For the unit tests.
 */
struct strbuf;
void exec_prefix_lines(struct strbuf *dst, const char *name,
		       struct strbuf *rest, int final);

#endif
