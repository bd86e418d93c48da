/*
 * fleetview: what a fleet run (see fleet.h) shows of its hosts: the live
 * lines on a terminal, timestamps for plain lines, the summary table with
 * the failed hosts' last lines, and the --json report. It reads the
 * hosts' state; fleet.c changes it.
 */
#ifndef NRR_FLEETVIEW_H
#define NRR_FLEETVIEW_H

#include "fleet.h"
#include "run.h"
#include "strbuf.h"

#include <time.h>

/* How many lines of a failed host's output the summary shows. */
#define FLEET_TAIL_LINES 15

enum host_state { H_WAITING, H_RUNNING, H_DONE, H_SKIPPED };

/* One phase of a host's deploy, on the monotonic clock (fleet_now). */
struct fleet_phase {
	char name[16];
	double start, end;	/* end: 0 while it lasts */
};

struct fleet_host {
	struct fleet_member m;
	char *path;		/* built system */
	enum host_state state;
	struct child c;
	/* or its deploy in a fiber of this process (lib/fiber.h), which
	 * runs host_main with c.args as its argv, on its end of the stdin
	 * pipe (closed by it when its deploy returns) and its stderr (a
	 * memfd, read and closed by fleet_host_finish); its report goes
	 * straight into progress (fiber_set_report) */
	struct fiber *fiber;
	int (*host_main)(int argc, const char *const *argv);
	int fiber_in, fiber_err;
	int progress_fd;	/* our end of the child's report pipe (a child's) */
	int answer_fd;		/* the child's stdin, kept open for --ask's answer
				 * and the fleet's go (going) */
	int going;		/* how many gos of the fleet the child still waits
				 * for (--wait-go, --wait-push: 2 for both) */
	int asking;		/* the child waits for the answer */
	struct strbuf progress, err;
	struct strbuf diff_text;	/* its diff, as the user reads it */
	struct strbuf plan_text;	/* its "plan for ..." lines */
	struct strbuf warn_text;	/* its warnings, a line each */
	struct cJSON *diff;
	char phase[32];
	struct fleet_phase *phases;	/* in order; the fleet's evaluate and build first */
	size_t nr_phases;
	struct timespec start, end;
	/* from the child's result line */
	int status, gen_before, gen_after;
	char step[32], message[1024];
	unsigned long long bytes, fetch_bytes;	/* pushed; fetched from its caches */
};

/* Seconds on the monotonic clock. */
double fleet_now(void);
/* How long h has been (or was) deploying; 0 before it started. */
double fleet_elapsed(const struct fleet_host *h);
/* h's phase while it runs, its verdict after ("done", "failed", ...). */
const char *fleet_result_of(const struct fleet_host *h);
/* The wall-clock time as HH:MM:SS, for plain lines. */
void fleet_timestamp(char *buf, size_t size);
/* Draws a live line per host and a counter line on stderr (a terminal);
 * redraw: over the lines drawn last time. namew: the names' column. */
void fleet_draw(struct fleet_host *hosts, size_t n, int redraw, int color,
		size_t namew);
/* The summary table, then the last lines of every failed host, on stderr. */
void fleet_print_summary(const struct options *o, struct fleet_host *hosts,
			 size_t n, size_t namew);
/* h enters phase name now (nothing if it is in it already): the phase
 * before it ends, for the --json report's timeline and the live lines. */
void fleet_set_phase(struct fleet_host *h, const char *name);
/* The same at the time at (fleet_now()'s clock), as the child said it;
 * now when at is 0, in the future, or before the phase it ends. */
void fleet_set_phase_at(struct fleet_host *h, const char *name, double at);
/* The last phase of h ends now. */
void fleet_end_phases(struct fleet_host *h);
/* --ask: every host still running waits at the question; shows their
 * diffs and asks once for all of them, then answers them (fleet_answer). */
void fleet_ask(struct fleet_host *hosts, size_t n);
/* Answers every host waiting before activation: yes or no. */
void fleet_answer(struct fleet_host *hosts, size_t n, int yes);

/* The --json report on stdout (it takes each host's diff object); phase
 * times are given in seconds since t0 (fleet_now() when the run began). */
void fleet_print_json(const struct options *o, struct fleet_host *hosts, size_t n,
		      double t0);

#endif
