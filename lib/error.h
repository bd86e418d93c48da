/*
 * error: how lib/ reports failure without printing or exiting.
 *
 * A failing lib/ function fills a struct nrr_err and returns its status,
 * which is also the exit status main() uses. The message is one line in
 * git's style (lowercase, what failed first, the subject quoted); the hint,
 * when set, is a second line telling the user what to try.
 *
 * Exit statuses are part of the interface (documented in the man page):
 * keep them stable.
 */
#ifndef NRR_ERROR_H
#define NRR_ERROR_H

#include <stddef.h>

enum nrr_status {
	NRR_OK = 0,
	NRR_EFAIL = 1,      /* anything else, local I/O, internal */
	NRR_EUSAGE = 2,     /* bad command line (as nixos-rebuild-ng) */
	NRR_ECONNECT = 3,   /* a host cannot be reached or refused us */
	NRR_EEVAL = 4,      /* evaluating the configuration failed */
	NRR_EBUILD = 5,     /* building failed */
	NRR_ECOPY = 6,      /* copying the closure failed */
	NRR_ECHECK = 7,     /* pre-activation check failed; target unchanged */
	NRR_EACTIVATE = 8,  /* setting the profile or activating failed */
	NRR_EROLLEDBACK = 9, /* --magic-rollback: not confirmed, rolled back */
	NRR_ELOCKED = 10,   /* another deploy to the target is running */
	NRR_EDECLINED = 11, /* --ask answered no: nothing changed */
	NRR_EFLEET = 12,    /* --on: some hosts failed (the others succeeded) */
	NRR_ENOSTART = 13,  /* --on: no host could start (evaluation or build) */
	NRR_EPROTO = 14,    /* a host answered outside the protocol (broken or hostile) */
	NRR_EREBOOT = 15,   /* --reboot: the host did not come back in time */
	NRR_EINT = 130,     /* interrupted (SIGINT); SIGTERM gives 143 */
};

struct nrr_err {
	int status;
	char msg[1024];
	char hint[512];
};

/* Sets e's status and message; returns status, for `return nrr_fail(...)`. */
int nrr_fail(struct nrr_err *e, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sets the hint line of an already failed e. */
void nrr_hint(struct nrr_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Makes the string s (in a buffer of size bytes) one line fit for a
 * terminal, in place: newlines and returns become spaces, tabs stay, every
 * other control byte (C0, DEL, C1 as UTF-8) becomes \xNN, so that a host's words
 * in a message cannot move the cursor or change the terminal; it is cut to
 * fit. nrr_fail and nrr_hint do this to every message and hint.
 */
void nrr_one_line(char *s, size_t size);
/* The same, of s, into buf (size bytes); returns buf. */
char *nrr_one_line_of(char *buf, size_t size, const char *s);
/* Puts "prefix: " before e's message (it is cut to fit). */
void nrr_prefix(struct nrr_err *e, const char *prefix);
void nrr_err_clear(struct nrr_err *e);

/*
 * A host's words, fit for a message: bytes outside printable ASCII become
 * \xNN and the text is cut at 160 bytes ("..."), so that a hostile answer
 * cannot send escape sequences to the terminal. Returns buf.
 */
char *nrr_printable(char *buf, size_t size, const char *s);

/* Fails e with NRR_EPROTO: "protocol error from 'HOST': ..." with a hint
 * that nothing of it was used. */
int nrr_protocol(struct nrr_err *e, const char *host, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
