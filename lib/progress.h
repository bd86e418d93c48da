/*
 * progress: nix's internal-json log, shown the way a person wants it.
 *
 * Builds run with `--log-format internal-json`; each "@nix {...}" line on
 * stderr is an event (activities starting and stopping, progress counts,
 * build log lines, messages). On a terminal we keep one status line --
 * builds done/running/total, downloads, the current derivation, elapsed
 * time -- and print messages above it; elsewhere plain lines. A failed
 * build's log tail is printed in full; with -L every log line is. Lines we
 * do not understand are passed through unchanged, never fatal: Nix
 * versions differ in what they send.
 *
 * Everything the user would have read from nix is also kept as plain text
 * (progress.plain), for the one-line error summary.
 */
#ifndef NRR_PROGRESS_H
#define NRR_PROGRESS_H

#include "strbuf.h"

#define PROGRESS_LOG_TAIL 25
#define PROGRESS_ENDED 16	/* stopped builds whose logs are kept */

struct progress_build {
	unsigned long long id;
	int type;
	char *name;		/* what is built, short */
	struct strbuf log;	/* its last lines */
};

struct progress {
	int fd;			/* where to draw (stderr) */
	int tty, print_logs, verbose;
	struct strbuf line;	/* an incomplete input line */
	struct strbuf plain;	/* what nix said, as text */
	struct progress_build *acts;
	size_t nacts, alloc;
	struct progress_build ended[PROGRESS_ENDED];
	size_t nended;
	int no_color;
	unsigned long long builds_done, builds_expected, builds_running,
		builds_failed, downloads_done, downloads_expected;
	char current[160];
	double start, last_draw;
	int status_shown;
};

void progress_init(struct progress *p, int fd, int tty, int print_logs,
		   int verbose);
/* Takes a chunk of nix's stderr. */
void progress_feed(struct progress *p, const char *buf, size_t len);
/* Clears the status line; the plain text stays until release. */
void progress_finish(struct progress *p);
void progress_release(struct progress *p);

#endif
