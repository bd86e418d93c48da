/*
 * fleet: one command, many hosts (--on NAMES).
 *
 * Every selected configuration is built by one nix call here, so that nix
 * schedules all builds together and shared paths are built once. Each
 * host gets its own deploy of this very program (`ACTION --store-path
 * PATH --target-host TARGET`), at most --parallel at a time, from while
 * the fleet builds (they connect, lock, and wait for its go, as a single
 * deploy locks before it builds): a fiber of this process (lib/fiber.h)
 * that runs what main runs for that command line, or, for a host with
 * keys or an environment of its own, a child process that runs it.
 * Each has its own ssh master (one handshake per host), its own deploy
 * lock, its own failure, and reports its phases and its result on a pipe
 * (lib/fleetproto.h); the options it is given are those the option table
 * marks OF_FLEET, as the user spelled them.
 * The parent shows a live line per host on a terminal (plain timestamped
 * lines otherwise), a summary table, and with --json a report on stdout
 * (lib/fleetview.c).
 */
#ifndef NRR_FLEET_H
#define NRR_FLEET_H

#include "error.h"
#include "options.h"
#include "keys.h"
#include "strvec.h"

struct fleet_member {
	char *name;		/* nixosConfigurations name */
	char *target;		/* [user@]host */
	char *path;		/* NULL, or its system, built already (fleet_deploy) */
	struct strvec args;	/* more options for its child, after the fleet's */
	struct strvec env;	/* its child's environment changes (NAME=VALUE) */
	struct keyset *keys;	/* NULL, or a hive node's deployment.keys for its
				 * child (on its stdin, --keys-fd 0); malloc'ed,
				 * freed by fleet_members_free */
};

/*
 * Expands --on's list: NAME, NAME=TARGET, globs over names (the
 * configuration names in all). user, if set, prefixes targets without one.
 * Fills *members (malloc'ed array of n). Returns 0 or NRR_EUSAGE.
 */
int fleet_expand(const char *spec, const struct strvec *all, const char *user,
		 struct fleet_member **members, size_t *n, struct nrr_err *e);
void fleet_members_free(struct fleet_member *m, size_t n);

/*
 * The command line of the child that deploys store_path to target: this
 * program (/proc/self/exe), the options o->fleet_args holds, and what the
 * fleet decides for its children (elevation, diff, --ask, the password on
 * stdin when password is set). store_path NULL: none (apply keys builds
 * nothing); report_fd: the fd it reports on, as the child has it.
 * Appends to argv. A member's keys are added by the fleet
 * (--keys-fd 0, lib/deploykeys.h).
 */
void fleet_child_argv(const struct options *o, const char *store_path,
		      const char *target, int password, int report_fd, struct strvec *argv);

/*
 * Runs the whole fleet deploy. argv0 is this program; password, when set,
 * goes to every child through a pipe. Returns 0 if every host succeeded,
 * NRR_EFLEET if some failed, NRR_ENOSTART if none could start (evaluation
 * or build failed), or another status with e filled.
 */
int fleet_run(struct options *o, const char *password, struct strvec *warnings,
	      struct nrr_err *e);

/*
 * What must happen before the members' systems exist (the fleet's build),
 * run by fleet_deploy in a copy beside its loop (lib/fleetprep.h) while
 * the hosts' children connect and take their targets' locks: those wait
 * for it (--wait-go) and go on when it succeeded. run returns 0, or a
 * status with e filled, which is then the fleet's (no host goes on).
 */
struct fleet_prepare {
	int (*run)(void *data, struct strvec *warnings, struct nrr_err *e);
	void *data;
	/* NULL: it builds (the hosts' "build" phase ends with it); else the
	 * name of the phase it adds to every host (fleet_run's "push") */
	const char *phase;
	const struct strvec *closure;	/* once run succeeded: the union of the
					 * systems' closures, dependencies first,
					 * if it listed them (else NULL or empty) */
};

/*
 * Deploys members (their path set; each with its own child options and
 * environment) as fleet_run does after its build: the same scheduler,
 * live lines, summary, --json and exit statuses. prep, if set, makes their
 * systems (struct fleet_prepare); else they are built already. The members
 * stay the caller's. started: when their evaluation began (fleet_now()),
 * the --json timeline's 0 and its "evaluate" phase's start (it ends now).
 */
int fleet_deploy(struct options *o, const struct fleet_member *members, size_t n,
		 const char *password, const struct fleet_prepare *prep, double started,
		 struct strvec *warnings, struct nrr_err *e);

#endif
