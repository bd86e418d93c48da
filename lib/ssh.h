/*
 * ssh: hosts, resolved by OpenSSH itself and reached over one connection.
 *
 * A host is named as the user typed it ("root@web1"); `ssh -G` tells what
 * that means after ~/.ssh/config (aliases, Host patterns, Match, Include)
 * and NIX_SSHOPTS: the real user, hostname and port, and any ControlPath
 * the user set up. Two names are the same host when those three agree.
 *
 * Connecting opens exactly one SSH connection per host per run: a
 * ControlMaster that every later ssh of the run goes through. Whose master:
 *  - the user's, when their config multiplexes and a master already runs
 *    (reused, never closed by us: no handshake at all);
 *  - the user's, started by us, when their config asks for a persistent
 *    master (left running, as their ControlPersist says);
 *  - otherwise ours: a foreground `ssh -M -N` child in a private 0700
 *    directory with a short socket path, closed at the end of the run and
 *    killed by the kernel if we die (PR_SET_PDEATHSIG).
 * With NIXOS_REBUILD_SSH_DEFAULT_OPTS set, its words replace our master
 * options and we start no master (the user's config decides, as in ng).
 */
#ifndef NRR_SSH_H
#define NRR_SSH_H

#include "error.h"
#include "run.h"
#include "sshconfig.h"
#include "strvec.h"

enum ssh_master { MASTER_NONE, MASTER_OURS, MASTER_USERS };

struct ssh_host {
	char *spec;		/* as typed: [user@]host */
	struct ssh_config cfg;
	char *control_path;	/* the socket used, NULL for MASTER_NONE */
	enum ssh_master master;
	struct child master_proc;
	char *errpath;		/* where our master's stderr goes */
	int connected, pending;	/* pending: our master started, not yet up */
	/* where our master forwards the target's nix-daemon socket, or NULL
	 * (ctx->daemon_fwd and a root login: lib/daemon.h) */
	char *daemon_path;
};

struct ssh_ctx {
	struct strvec opts;	/* NIX_SSHOPTS, split like a shell */
	struct strvec default_opts; /* NIXOS_REBUILD_SSH_DEFAULT_OPTS words */
	int use_default_opts;	/* that variable is set */
	char *ctl_dir;		/* private 0700 directory, created lazily */
	int nhosts;
	int trace;		/* print ssh command lines on stderr */
	int daemon_fwd;		/* our masters forward the target's nix-daemon */
};

/*
 * Reads NIX_SSHOPTS and NIXOS_REBUILD_SSH_DEFAULT_OPTS from the
 * environment; what is odd about them is pushed to warnings. Returns 0,
 * or NRR_EUSAGE if one cannot be split.
 */
int ssh_ctx_init(struct ssh_ctx *ctx, struct strvec *warnings,
		 struct nrr_err *e);
/* Removes the control directory; hosts must be disconnected first. */
void ssh_ctx_release(struct ssh_ctx *ctx);

/* Resolves spec with `ssh -G`. Returns 0 or NRR_ECONNECT/NRR_EUSAGE. */
int ssh_host_resolve(struct ssh_ctx *ctx, const char *spec,
		     struct ssh_host *h, struct nrr_err *e);
/* 1 if a and b are the same user@hostname:port. */
int ssh_host_same(const struct ssh_host *a, const struct ssh_host *b);
/* "user@hostname:port", malloc'ed. */
char *ssh_host_address(const struct ssh_host *h);

/* Opens (or adopts) the host's master. Returns 0 or NRR_ECONNECT with the
 * reason, and a hint for host keys, refused keys and unreachable hosts. */
int ssh_host_connect(struct ssh_ctx *ctx, struct ssh_host *h,
		     struct nrr_err *e);
/* The same in two halves, so that several hosts connect at once: start
 * launches the master, wait waits until it is logged in. */
int ssh_host_connect_start(struct ssh_ctx *ctx, struct ssh_host *h,
			   struct nrr_err *e);
int ssh_host_connect_wait(struct ssh_host *h, struct nrr_err *e);
/* 0 if h's master, ours, has ended (its connection lost), else 1: ours
 * still runs, or the master is not ours to watch. Reaps nothing. */
int ssh_host_alive(const struct ssh_host *h);
/*
 * The error of a host whose master, ours, has ended: "lost 'web1'
 * (root@10.0.0.5:22)WHILE: its ssh connection ended", and when a signal
 * ended it here (a kill by hand, the out-of-memory killer) which one
 * (ssh_host_end_text). No hint: the caller's (ssh_hint_ended, or its own).
 * `whilst` is "" or " while ...". Returns NRR_ECONNECT.
 */
int ssh_host_lost(const struct ssh_host *h, const char *whilst, struct nrr_err *e);
/* The signal that ended our master on this machine, or 0: it runs, it
 * ended by itself (its host or network), or it is not ours. */
int ssh_host_killed(const struct ssh_host *h);
/* "its ssh connection ended", with ": ssh was killed on this machine
 * (SIGNAL)" when ssh_host_killed says so, into buf. */
void ssh_host_end_text(const struct ssh_host *h, char *buf, size_t size);
/* Sets e's hint for a master that a signal ended here. */
void ssh_hint_killed(const struct ssh_host *h, struct nrr_err *e);
/* Sets e's hint for a master that ended: ssh_hint_killed's when a signal
 * here ended it, else ssh_hint_not_responding's. */
void ssh_hint_ended(const struct ssh_host *h, struct nrr_err *e);
/* After h's connection was lost on purpose (a reboot): ends what is left
 * of its master and connects again (one new handshake). Returns as
 * ssh_host_connect. */
int ssh_host_reconnect(struct ssh_ctx *ctx, struct ssh_host *h,
		       struct nrr_err *e);
/* Closes a master we own and frees h's contents. Safe to call twice. */
void ssh_host_release(struct ssh_ctx *ctx, struct ssh_host *h);

/*
 * Appends to argv an ssh invocation that runs `command` on h through its
 * master: ssh OPTS -o ControlPath=.. -T -- SPEC COMMAND. The command is
 * one string for the remote login shell (see quote.h).
 */
void ssh_host_argv(struct ssh_ctx *ctx, const struct ssh_host *h,
		   const char *command, struct strvec *argv);

/*
 * The same, but over a new connection of its own, not through any master:
 * proof that the host can still be reached the way the user reaches it.
 * timeout bounds the connection attempt, in seconds.
 */
void ssh_host_argv_fresh(struct ssh_ctx *ctx, const struct ssh_host *h,
			 const char *command, int timeout, struct strvec *argv);

/*
 * Classifies ssh's stderr into e for step `step` on host h ("cannot reach
 * 'web1' (root@10.0.0.5:22): ..."). Returns NRR_ECONNECT.
 */
int ssh_connect_error(const struct ssh_host *h, const char *stderr_text,
		      struct nrr_err *e);

/*
 * Why our master gave up on h during the run, when it did so by itself: a
 * host that stopped answering its keepalives (ServerAliveInterval). Its
 * sessions then end with status 255 and say nothing. Returns ssh's line
 * ("Timeout, server 10.0.0.5 not responding."), malloc'ed (caller frees),
 * or NULL.
 */
char *ssh_host_lost_reason(const struct ssh_host *h);

/* Sets e's hint for a host that stopped answering (see above). */
void ssh_hint_not_responding(const struct ssh_host *h, struct nrr_err *e);

#endif
