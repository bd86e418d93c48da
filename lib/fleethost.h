/*
 * fleethost: one host of a fleet run, as the fleet sees it: the child
 * this program starts for it (its command line, the pipes for its password,
 * keys and the fleet's answers), the report lines it writes on fd 3
 * (lib/fleetproto.h), and its end. fleet.c schedules many of them.
 */
#ifndef NRR_FLEETHOST_H
#define NRR_FLEETHOST_H

#include "fleet.h"
#include "fleetview.h"

/* Whether every host waits before it activates until the fleet answers
 * (its child gets --ask): for --ask's question, and for the cache route. */
int fleet_holds(const struct options *o);

/* What a host started now waits for before it goes on. */
enum fleet_hold {
	HOLD_NONE,
	HOLD_BUILD,	/* --wait-go: connected and locked, the fleet's build */
	HOLD_PUSH,	/* --wait-push: its system built, the cache route's push:
			 * the child asks the target what it lacks meanwhile */
	HOLD_BOTH,	/* --wait-go --wait-push: the build, then (two gos)
			 * the push as HOLD_PUSH */
};

/* Starts h's child (h->path its system, NULL for apply's keys), which
 * waits for the fleet's go as hold says and names holder (NULL: its own)
 * as its lock's. 0, or a status with e filled. */
int fleet_host_start(const struct options *o, struct fleet_host *h,
		     const char *password, const char *closure_db, const char *holder,
		     enum fleet_hold hold, struct nrr_err *e);

/*
 * The hosts of members[0..n) (kept by reference: still the caller's), not
 * started; their first phases are the fleet's evaluation (t0 to evaluated)
 * and build (to built). *namew grows to the longest name. Freed, with
 * what the run adds to them, by fleet_hosts_free.
 */
struct fleet_host *fleet_hosts_new(const struct fleet_member *members, size_t n, double t0,
				   double evaluated, double built, size_t *namew);
void fleet_hosts_free(struct fleet_host *hosts, size_t n);

/* How many of hosts[0..n) wait for --ask's answer; how many are in flight
 * in their handshake. */
size_t fleet_hosts_asking(const struct fleet_host *hosts, size_t n);
size_t fleet_hosts_connecting(const struct fleet_host *hosts, size_t n);

/* The build's go to the hosts waiting for the push's too (HOLD_BOTH):
 * they ask their targets what they lack while it goes on. */
void fleet_hosts_built_go(struct fleet_host *hosts, size_t n);

/* The systems of hosts[0..n) still to deploy or in flight, each once,
 * appended to tops. */
void fleet_hosts_systems(const struct fleet_host *hosts, size_t n, struct strvec *tops);

/*
 * Writes the closure of each of hosts[0..n)'s systems into a file of dir
 * (lib/closuredb.h: the registrations its child reads instead of asking
 * the store), from one query of this store: of closure when the build
 * listed it, else of their systems' closures. 0, or -1 when the store
 * cannot tell: the caller removes dir.
 */
int fleet_hosts_dump(const struct fleet_host *hosts, size_t n, const struct strvec *closure,
		     const char *dir);

/* Takes the complete lines of h's report. */
void fleet_host_read(struct fleet_host *h);

/* Keeps only the last lines of a host's stderr (the tail a failure shows). */
void fleet_host_keep_tail(struct strbuf *err);

/* 1 once h's pipes closed and its deploy is over. */
int fleet_host_over(const struct fleet_host *h);

/* Reaps h once it is over: its result, its phases' end. */
void fleet_host_finish(struct fleet_host *h);

#endif
