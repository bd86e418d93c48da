/*
 * deployplan: what a deploy would move, per route, before anything moves.
 *
 * The target's answer to the offer says which paths it lacks (and, for a
 * plan or --use-substitutes=auto, its settings). From that, this machine
 * asks the target's caches which of them they would serve and trust, and
 * prints the plan line: paths present, fetched from its caches, pushed,
 * with their sizes; without a plan (auto), the target then fetches what
 * they serve. Split from deploy.c, whose activation uses it.
 */
#ifndef NRR_DEPLOYPLAN_H
#define NRR_DEPLOYPLAN_H

#include "deploy.h"

/* Prints d->plan, as one line (to the fleet, in a fleet's child). */
void deploy_print_plan(const struct deploy *d);
/* Prints "plan for 'TARGET': " and the rest (printf-style) as one line,
 * on stderr and to the fleet, which shows its hosts' plans together:
 * deploy_print_plan's way, for a plan that is not known. */
void deploy_say_plan(const struct deploy *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * After an offer that found a->missing: the plan from the target's caches
 * (nixconf: its settings, as JSON), printed with a->plan; without it, the
 * target fetches what its caches serve, and a->missing keeps the rest.
 * Returns 0, or a status with e filled.
 */
int deploy_plan_and_fetch(struct deploy *d, struct activation *a,
			  const struct strbuf *nixconf, struct nrr_err *e);

#endif
