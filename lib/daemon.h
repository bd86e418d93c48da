/*
 * daemon: the closure's query and import spoken to the target's own
 * nix-daemon, through a unix socket our ssh master forwards to it
 * (`ssh -L SOCKET:/nix/var/nix/daemon-socket/socket`, lib/ssh.h), in
 * place of the `nix-store --serve` the deploy's script would start there.
 *
 * Why: starting a nix-store costs the target about 50 ms of CPU before
 * it reads a byte (its libraries), and a fleet's deploy starts one per
 * host. The daemon is already running: a connection costs it a fork.
 * It is one more channel inside the master, not a login nor a remote
 * command.
 *
 * When: the login is root (the daemon then trusts the connection, so
 * the import needs no signatures, as `nix-store --serve --write` as root
 * did), the master is ours, and what the closure's paths registered here
 * is known (a fleet's closure dump: lib/closuredb.h), for the import's
 * path infos. Anything else, or a daemon that does not answer the
 * handshake as one (no socket, forwarding refused by sshd, a protocol
 * before 1.32), and the script starts its nix-store --serve as before:
 * daemon_hello decides before the script is told which.
 *
 * The protocol (Nix 2.8's daemon.cc and worker-protocol.hh, today's
 * worker-protocol-connection.cc; Lix not checked): numbers are 64-bit
 * little-endian, strings their length, bytes and zeros to a multiple of
 * 8. We say version 1.35 and use the smaller of that and the daemon's:
 * the greeting (magic, versions, two obsolete zeros; from 1.33 the
 * daemon's Nix version, from 1.35 whether it trusts us), a BuildPaths of
 * no paths in repair mode (refused unless it trusts us: root is trusted
 * only where trusted-users says so, and Nix 2.8 does not tell), then
 * QueryValidPaths (31; from 1.27 with "substitute") and, for each path,
 * AddToStoreNar (39): its info as protocol 1.16 writes it, repair 0,
 * dontCheckSigs 1, then its NAR as a framed stream (pieces of a length
 * and its bytes, ended by a 0 length; from 1.23). Every reply is preceded
 * by the daemon's log messages, ended by STDERR_LAST, or an error
 * (STDERR_ERROR). We ask for 1.32 or later (Nix 2.4 on): older daemons
 * get nix-store --serve.
 *
 * The daemon checks every NAR against the hash and size sent before it
 * and registers nothing that differs (LocalStore::addToStore), so we do
 * not hash it again here: we only hold back a NAR that passes its
 * registered size (lib/narexport.h).
 */
#ifndef NRR_DAEMON_H
#define NRR_DAEMON_H

#include "narexport.h"
#include "strbuf.h"
#include "strvec.h"

struct daemon_conn {
	int fd;			/* -1: none */
	unsigned minor;		/* the protocol's minor version, once agreed */
	int trusted;		/* 1: it trusts this login (daemon_hello made sure) */
	char version[64];	/* the daemon's Nix version, if it said */
	struct strbuf in;	/* read, not consumed yet */
	size_t at;		/* where in in the next word starts */
	struct strbuf log;	/* what it said (STDERR_NEXT), for errors */
};

#define DAEMON_CONN_INIT { -1, 0, 0, "", STRBUF_INIT, 0, STRBUF_INIT }

/* The protocol's greeting words, to unit-test the parser. */
#define DAEMON_MAGIC_1 0x6e697863ULL
#define DAEMON_MAGIC_2 0x6478696fULL

/*
 * Connects to socket and sends our greeting, without waiting for the
 * answer (it comes while the script takes its lock). 0, or -1 when
 * there is nothing to talk to (no socket: the master does not forward).
 */
int daemon_open(struct daemon_conn *d, const char *socket);

/*
 * Reads the daemon's greeting, waiting at most timeout_ms. 0 when it can
 * take our import (a protocol of 1.32 or later, and it trusts this
 * login); else -1 with why (the connection is closed then).
 */
int daemon_hello(struct daemon_conn *d, int timeout_ms, char *why, size_t whylen);

/*
 * Which of paths the target has, after trying its caches when
 * substitute: appended to valid. 0, or -1 with why. In two, for a
 * question asked ahead of its answer: daemon_query_send, then
 * daemon_query_answer with the same paths.
 */
int daemon_query_send(struct daemon_conn *d, const struct strvec *paths, int substitute,
		      char *why, size_t whylen);
int daemon_query_answer(struct daemon_conn *d, const struct strvec *paths,
			struct strvec *valid, char *why, size_t whylen);
int daemon_query_valid(struct daemon_conn *d, const struct strvec *paths, int substitute,
		       struct strvec *valid, char *why, size_t whylen);

/*
 * Imports the n paths (dependencies first) with their registrations
 * here, their NARs made from this machine's store; *bytes: what was
 * written. 0; NAREXPORT_MISMATCH (a path differs from its registration)
 * or -1, with why. stop as narexport_write's.
 */
int daemon_add(struct daemon_conn *d, const struct narexport_path *paths, size_t n,
	       int (*stop)(void), unsigned long long *bytes, char *why, size_t whylen);

/* Closes the connection (the daemon's temporary roots of it go). */
void daemon_close(struct daemon_conn *d);

#endif
