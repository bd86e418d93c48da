/*
 * fleetproto: what a fleet's child tells its fleet (see fleet.h), the one
 * definition of that conversation. The child writes lines of text on its
 * report pipe (fd 3, --progress-fd); the fleet reads them; each line is a
 * kind, a space and its text:
 *
 *   phase NAME T   the deploy entered phase NAME (connect, check, fetch,
 *                  copy, activate, confirm) at T, seconds on the monotonic
 *                  clock the fleet shares with its children (the fleet may
 *                  read the line much later: while it pushes, say)
 *   say TEXT       one line of its diff, as the user reads it
 *   diff JSON      its diff (diffshow_json), on one line
 *   ask            it waits for --ask's answer on its stdin
 *   warn TEXT      a warning, shown under its name after the summary
 *   result JSON    its last word: status, failed step, message, store path,
 *                  generations, bytes pushed and fetched from its caches
 *
 * Writers are the child's (lib/deploy.c, main, lib/report.c); the parser
 * is the fleet's (lib/fleet.c). A line of another kind is ignored, so that
 * a newer child may say more.
 */
#ifndef NRR_FLEETPROTO_H
#define NRR_FLEETPROTO_H

struct cJSON;

enum fleetproto_kind {
	FLEETPROTO_OTHER = 0,	/* not ours: ignore it */
	FLEETPROTO_PHASE,
	FLEETPROTO_SAY,
	FLEETPROTO_DIFF,
	FLEETPROTO_ASK,
	FLEETPROTO_RESULT,
	FLEETPROTO_WARN,
};

/* A child's result line. */
struct fleetproto_result {
	int status;		/* the child's exit status */
	int gen_before, gen_after;	/* 0: not known */
	char step[32];		/* what failed ("" when it did not) */
	char message[1024];
	char store_path[512];	/* "" when not known */
	unsigned long long bytes;	/* pushed to the host */
	unsigned long long fetch_bytes;	/* fetched from its caches */
	int fetched;		/* fetch_bytes is known (--use-substitutes=auto) */
};

/* One parsed line. */
struct fleetproto_msg {
	enum fleetproto_kind kind;
	const char *text;	/* phase, say: points into the line */
	struct cJSON *diff;	/* diff: the caller's to cJSON_Delete (NULL if bad) */
	struct fleetproto_result result;	/* result */
};

/* The child's side; fd < 0 writes nothing. */
void fleetproto_phase(int fd, const char *phase);

/* A phase line's text into its name (malloc'ed, the caller frees it) and
 * *at, its time: 0 when the line has none (a child of another version). */
char *fleetproto_phase_parse(const char *text, double *at);
/* Every line of text, as "say" lines. */
void fleetproto_say(int fd, const char *text);
void fleetproto_diff(int fd, const struct cJSON *diff);
void fleetproto_ask(int fd);
void fleetproto_warn(int fd, const char *text);
void fleetproto_result(int fd, const struct fleetproto_result *r);

/* The fleet's side: parses one line (without its newline) into *m. */
void fleetproto_parse(const char *line, struct fleetproto_msg *m);

#endif
