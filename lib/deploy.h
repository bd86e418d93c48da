/*
 * deploy: one configuration, from source to running system on one target.
 *
 * The phases, each a function, each leaving the target untouched when it
 * fails: hosts (resolve with ssh -G, connect one master per distinct host),
 * build (build.h: here, or on the build host from a locally evaluated
 * derivation),
 * copy (one query and one stream per hop), activate (one command).
 *
 * Where the result lives decides the copies: built here, it goes here ->
 * target; built on B, it goes B -> target relayed through us (or B copies
 * itself with --copy-direct), or B -> here when the target is this machine;
 * built on the target, nothing moves.
 */
#ifndef NRR_DEPLOY_H
#define NRR_DEPLOY_H

#include "activate.h"
#include "keys.h"
#include "closure.h"
#include "closuredb.h"
#include "host.h"
#include "options.h"
#include "ssh.h"

enum source_kind { SRC_FLAKE, SRC_CLASSIC, SRC_STORE_PATH };
enum where { AT_LOCAL, AT_BUILD, AT_TARGET };

/* What a deploy does with the system's closure on its target, per route;
 * for dry-build, what it would build. */
struct deploy_plan {
	int known;			/* the target's part was computed */
	size_t paths, present, fetch, push;
	unsigned long long fetch_bytes, push_bytes;
	int auto_fetch;			/* the target fetches what its caches serve */
	int build_known;		/* dry-build: nix said what it would do */
	size_t build, fetch_here;	/* derivations, paths (where it builds) */
	double download_mib;
};

struct deploy {
	struct options *opt;
	struct ssh_ctx ssh;
	struct ssh_host target_ssh, build_ssh;
	struct host local, target, build;
	int target_remote;	/* --target-host given */
	int build_remote;	/* --build-host given and not this machine */
	int build_on_target;	/* the build host is the target */
	struct elevation elev;
	struct strvec *warnings;
	int trace;

	enum source_kind src;
	char *flake_ref, *flake_name;
	char *etc_flake;	/* the directory /etc/nixos/flake.nix links into */
	const char *file, *attr;

	char *toplevel;		/* the built system */
	char *drv;		/* its derivation, when evaluated before the build */
	char *root_dir;		/* holds its GC root (result) while we deploy it */
	char *build_root;	/* the same on the build host (unroot.sh removes it) */
	struct child unroot;	/* unroot.sh, started once the target has the
				 * system: waited for by deploy_release */
	struct child export;	/* the build host's exporter, started with the
				 * target's check (closure_export_start) */
	struct session drv_serve; /* the build host's nix-store --serve that took
				 * the derivations, ending (build.c) */
	int drv_serving;
	enum where built_at;
	struct strvec closure;	/* of toplevel, dependencies first */
	unsigned long long *closure_sizes; /* each one's NAR size, when known
				 * (a fleet's --closure-db), or NULL */
	struct closuredb db;	/* a fleet's --closure-db: what the store registered
				 * of each path, for exporting it ourselves */
	unsigned long long bytes_copied;
	size_t paths_copied;

	struct activation_session as;	/* holds the target's deploy lock */
	int locked;
	int lock_pending;	/* deploy_lock_start's, its answer not read */
	int progress_fd;	/* a fleet's child reports its phases here */
	int gen_before, gen_after;
	int want_plan;		/* dry-activate: work out and show the plan */
	int plan_only;		/* dry-build --target-host: the plan, nothing moves */
	struct deploy_plan plan;
	struct keyset keys;	/* a hive node's deployment.keys, loaded (a
				 * fleet child's --keys-fd); the activation's
				 * conversation carries them */
	/* Called once, when the target has said what it lacks and before that
	 * is acted on (a fleet child's --wait-push: the push's end, with the
	 * key the target must trust); returns 0 to go on, else a status with
	 * e filled. NULL: nothing to wait for. */
	int (*hold)(void *data, struct nrr_err *e);
	void *hold_data;
};

/* Reports the phase the deploy is in, when it has someone to tell. */
void deploy_phase(struct deploy *d, const char *phase);

void deploy_init(struct deploy *d, struct options *opt, struct strvec *warnings);
void deploy_release(struct deploy *d);

/* Chooses the source (flake, classic, store path) and resolves hosts. */
int deploy_setup(struct deploy *d, struct nrr_err *e);
/* Connects to the hosts this action needs. */
int deploy_connect(struct deploy *d, int need_target, int need_build,
		   struct nrr_err *e);
/* The same in two halves: start the handshakes, do something else (they
 * go on in their ssh processes), then wait for them. Every start is
 * followed by a wait (with the same arguments), whatever happened. */
int deploy_connect_start(struct deploy *d, int need_target, int need_build,
			 struct nrr_err *e);
int deploy_connect_wait(struct deploy *d, int need_target, int need_build,
			struct nrr_err *e);
/* Fills in the configuration name when the flake reference has none. */
int deploy_default_name(struct deploy *d, struct nrr_err *e);

/* The attribute for tail ("config.system.build.toplevel"), malloc'ed,
 * in the form the source needs (flake output or classic -A path). */
char *deploy_attr(const struct deploy *d, const char *tail);

/* Copies the result to where it must be activated (target or here). */
int deploy_copy(struct deploy *d, struct nrr_err *e);
/* Sends the target the paths of the result it lacks (missing, as the
 * activation's own check found them), from where the result was built. */
int deploy_send_missing(struct deploy *d, const struct strvec *missing,
			struct nrr_err *e);
/* Takes the target's deploy lock (until deploy_release), so that a second
 * run fails at once; main takes it right after connecting. deploy_lock_start
 * only asks for it: a build host's build goes on meanwhile, and deploy_lock
 * (at the latest deploy_activate's) reads the answer. */
int deploy_lock_start(struct deploy *d, struct nrr_err *e);
/* With a build host whose result goes to the target through the target's
 * conversation: starts the build host's exporter now (closure.h), with
 * the build, so that its session is open when the target says what it
 * lacks. Best effort: the copy starts its own otherwise (serve_import). */
void deploy_export_ahead(struct deploy *d);
int deploy_lock(struct deploy *d, struct nrr_err *e);
/*
 * Activates the result on the target: copies what it lacks (see
 * activate.h for the one-command path), then activates; with
 * a->confirm_seconds, proves the target still answers a new ssh connection
 * before the watchdog there undoes it. Returns 0 or an NRR_* status.
 */
int deploy_activate(struct deploy *d, struct activation *a, struct nrr_err *e);
/*
 * dry-build --target-host: shows what the target has of d->closure, what
 * its caches (the --cache-url one included) would serve and what would be
 * pushed, as dry-activate does, moving and changing nothing. Takes the
 * target's deploy lock while it asks. Returns 0 or an NRR_* status.
 */
int deploy_plan_target(struct deploy *d, struct nrr_err *e);
/* Gives dst what it lacks of closure, from src. */
int deploy_copy_closure(struct deploy *d, const struct host *src,
			const struct host *dst, const struct strvec *closure,
			struct nrr_err *e);
/* The host activation runs on (target, or this machine). */
const struct host *deploy_target(const struct deploy *d);

#endif
