/*
 * session: a remote script we hold a conversation with while it runs.
 *
 * Most remote steps are one request and one answer (host_run). A deploy's
 * activation is a conversation instead: the script takes the target's
 * deploy lock, waits for what to activate, says what the target lacks,
 * waits while we send it, then activates and reports, and keeps the lock
 * until we hang up. One ssh session for all of it: one remote command, one
 * sudo, and a lock that cannot outlive us (our end of stdin closes when we
 * exit, however we exit).
 *
 * The script's stdout carries lines for us; its stderr is the user's and is
 * copied to echo_fd as it arrives, and kept for error messages. Every wait
 * drains both, so a chatty script never blocks on a full pipe.
 */
#ifndef NRR_SESSION_H
#define NRR_SESSION_H

#include "host.h"
#include "run.h"

struct session {
	struct child c;
	struct strbuf out;	/* stdout read, of which the first out_at */
	size_t out_at;		/* bytes are consumed already */
	struct strbuf err;	/* all of stderr */
	int echo_fd;
	const struct host *host;
	/* when stderr says this, stop feeding stdin: sudo -S asks again after
	 * a wrong password, and would wait for a line we never send */
	const char *hangup_on;
	/* sudo's prompt (HOST_SUDO_PROMPT): cut out of stderr, counted */
	const char *prompt;
	int prompted;
	/* echo_fd while sudo may still ask: stderr is shown from the script's
	 * first line on, without the prompts */
	int held_echo;
};

/*
 * Starts script on h (elevated per el). A password is written only when
 * sudo asks for it with its prompt: a sudo that does not ask (NOPASSWD,
 * !authenticate, a root login) would otherwise hand it to the script as
 * its first line. Returns 0, or -1 with e filled; NRR_EINT if interrupted
 * while waiting for sudo.
 */
int session_start(struct session *s, const struct host *h,
		  const struct elevation *el, const char *script,
		  const char *const *args, int echo_fd, struct nrr_err *e);

/* Writes data to the script's stdin. Returns 0, or -1 if it is gone. */
int session_send(struct session *s, const char *data, size_t len);

#define SESSION_FILE_SHORT (-2)
/*
 * Writes the next len bytes of the file fd to the script's stdin without
 * reading them into memory here (sendfile(2): what a big file of a NAR
 * costs this machine is then the kernel moving its pages). Returns 0;
 * -1 if the script is gone; SESSION_FILE_SHORT if the file ended first;
 * or 1, nothing written, where the system cannot (then write it with
 * session_send).
 */
int session_send_file(struct session *s, int fd, unsigned long long len);

/*
 * Reads the next line of stdout into line (without the newline).
 * Returns 0, or -1 if the script closed stdout first.
 */
int session_line(struct session *s, struct strbuf *line);

/*
 * Reads exactly n bytes of stdout into buf (a binary answer inside the
 * conversation: lib/serveproto.h). Returns 0, or -1 if the script closed
 * stdout first.
 */
int session_read(struct session *s, void *buf, size_t n);

/* Hangs up (closes stdin) and goes on: session_finish or session_release
 * waits for the script later, its end overlapping what comes next. */
void session_hangup(struct session *s);

/*
 * Hangs up (closes stdin), reads what is left and waits. Returns the
 * script's exit status (255: ssh failed), or -1 if it was never started.
 */
int session_finish(struct session *s);

void session_release(struct session *s);

#endif
