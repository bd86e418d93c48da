/*
 * report: what a deploy tells programs. --json's report of one deploy on
 * stdout (target, action, result, error, store path, generations, what was
 * copied, the plan and the diff), and a fleet child's last word to its
 * fleet: one "result JSON" line on its report pipe (see fleetproto.h).
 */
#ifndef NRR_REPORT_H
#define NRR_REPORT_H

#include "deploy.h"

struct cJSON;

/*
 * The word for a deploy's result in every report, by its exit status:
 * "ok", "rolled-back" (--magic-rollback undid it), "declined" (--ask was
 * answered no) or "failed" (a fleet adds "skipped" for hosts it did not
 * start). Static: nothing to free.
 */
const char *report_result(int status);

/*
 * Prints the --json report of d on stdout (its shape:
 * doc/report.schema.json). status: the run's exit status
 * (0: ok); message: the error's, when it failed. *diff, if set, goes into
 * the report and is taken (*diff is NULL afterwards).
 */
void report_json(const struct deploy *d, const char *action, int status,
			const char *message, struct cJSON **diff);

/* Adds what a deploy left on its host to the report object j: the store
 * path (when known) and "generation": {"before", "after"} (those known),
 * as the one-host and the fleet reports both say it. */
void report_add_outcome(struct cJSON *j, const char *store_path, int gen_before,
			int gen_after);

/* A fleet's child's result, as one line on fd: status, failed step and
 * message, store path, generations, bytes pushed and fetched. */
void report_child_result(const struct deploy *d, int fd, int status,
			  const char *message);

#endif
