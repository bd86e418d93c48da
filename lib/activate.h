/*
 * activate: make a built system the running one, as nixos-rebuild does.
 *
 * One remote command does the whole of it (one round trip, one sudo
 * prompt): check that the closure is a NixOS system and has what the
 * action needs, set the profile (switch, boot), then run
 * switch-to-configuration ACTION, under systemd-run when the target has a
 * working systemd so that activation survives a dropped connection.
 *
 * The checks come before anything changes: when they fail, the profile and
 * the running system are as they were. The script reports which step
 * failed through reserved exit statuses (see activate.c).
 */
#ifndef NRR_ACTIVATE_H
#define NRR_ACTIVATE_H

#include "daemon.h"
#include "host.h"
#include "keys.h"
#include "pkgdiff.h"
#include "session.h"

#include <time.h>

enum profile_op {
	PROFILE_KEEP,		/* test, dry-activate */
	PROFILE_SET,		/* switch, boot: nix-env --set */
	PROFILE_ROLLBACK,	/* switch/boot --rollback: nix-env --rollback */
};

struct activation {
	const char *action;	/* switch-to-configuration's argument, or NULL
				 * to stop after the profile */
	const char *toplevel;	/* for PROFILE_ROLLBACK: unused */
	const char *profile;	/* full profile path */
	const char *specialisation; /* or NULL */
	int install_bootloader;
	int diff;		/* diff the running (boot: profile's) closure with the new */
	/* With diff: this machine's store, or NULL. When it holds the system
	 * the target runs, the diff's closures and sizes come from it and the
	 * target starts no nix for them (on a small board each costs more
	 * than the rest of a no-op). Not for boot, rollback or a closure
	 * that is not here: the target makes those diffs. */
	const struct host *diff_from;
	const unsigned long long *closure_sizes; /* closure's sizes, or NULL */
	int ask;		/* with diff: activate only if on_diff says so */
	/* Called with the diff (before anything changes): shows it, and
	 * returns 1 to activate, 0 to leave the target as it is. */
	int (*on_diff)(void *data, const char *host, const struct pkgdiff *d);
	void *on_diff_data;
	int no_validate;	/* skip the checks of kernel, init and architecture */
	enum profile_op op;

	/* Given a closure, the same command first checks that the target has
	 * all of it (letting it substitute first if substitute): if not, it
	 * changes nothing, sets incomplete and fills missing. */
	const struct strvec *closure;
	int substitute;		/* 1: -s, the target tries its caches for all
				 * it lacks; 2: auto, we ask them (plan) */
	int plan;		/* also without auto: send the settings (a plan is
				 * shown, as for dry-activate) */
	struct strbuf *nixconf;	/* auto, plan: the target's settings, as
				 * `nix show-config` prints them */
	struct strvec *missing;
	int incomplete;
	/* Not with plan or auto: ask and send through the target's
	 * nix-store --serve (lib/serve.h), one nix there for the query, its
	 * caches and the import. serve_token: set by activation_offer, sent
	 * as the script's field; served: that is what happened (the closure
	 * then goes with serve_import, and "go" was said) */
	int serve;
	char serve_token[48];
	int served;
	/* set by activation_offer: the query went with the closure (to the
	 * script's nix-store --serve, or to the nix-daemon), as the script
	 * surely serves (the system profile, which the lock's answer says
	 * holds another system): its "serve" line and the answer share the
	 * offer's round trip */
	int serve_asked;
	/* With serve: what the closure's paths registered is known here (a
	 * fleet's dump), so the target's nix-daemon may take it instead, when
	 * the master forwards it (lib/daemon.h); via_daemon: it does (set by
	 * activation_offer; the token then starts with "daemon-", which tells
	 * the script to start no nix-store) */
	int serve_daemon;
	int via_daemon;
	char daemon_why[160];	/* why not, when it was asked: for -v */

	/* > 0: arm a watchdog that undoes the activation unless a new
	 * connection removes token in time; the target makes the token (in a
	 * fresh directory only the login user may write) and names it.
	 * token_time: when its line came, as the watchdog started (after the
	 * diff and the user's answer): the confirmation's deadline counts from
	 * it */
	int confirm_seconds;
	char token[256];
	time_t token_time;

	/* after activation: the profile's generation before and after (0 if
	 * unknown) */
	int gen_before, gen_after;

	/* colmena's deployment.keys (lib/keys.h), loaded: the stages that
	 * `keys_which` selects go in this conversation, pre-activation keys
	 * after the checks and the diff's question and before the profile is
	 * set (their owners may come with the new system: fixed after
	 * activation), post-activation keys after a successful activation.
	 * The session must have been begun with_keys. */
	const struct keyset *keys;
	int keys_which;
	struct keys_result keys_pre, keys_post;	/* what the target did */
};

/* The profile path for --profile-name NAME, malloc'ed. */
char *profile_path(const char *name);

/*
 * A deploy's conversation with the target (see session.h): begin takes
 * the target's deploy lock (NRR_ELOCKED naming the holder if another run
 * has it); offer sends what to activate and learns what the target lacks
 * (a->incomplete, a->missing: send those, then go); go activates and
 * reports. The lock is held until end.
 * Errors: NRR_ECHECK (nothing changed), NRR_EACTIVATE (a key that could
 * not be written among them, naming it; with confirm_seconds, also an
 * activation whose undo failed too), NRR_EROLLEDBACK (activation failed
 * and was undone), NRR_ECONNECT, NRR_ECOPY.
 */
struct activation_session {
	struct session s;
	const struct host *host;
	const struct elevation *el;
	int started;
	char machine[32];	/* the target's uname -m, from its first line */
	char current[512];	/* the system a deploy replaces (lib/scripts/
				 * profile.sh's answer), from the same line; "" if none */
	char running[512];	/* /run/current-system, from the same line; "" if none */
	/* the diff made from diff_from's store at offer (local_diff set) */
	int local_diff;
	struct pkgdiff_closure diff_old, diff_new;
	/* the target's nix-daemon, greeted as the script starts (lib/daemon.h) */
	struct daemon_conn daemon;
};

/*
 * Appends the fields of the conversation (lib/scripts/activate.def), one
 * a line, as activation_offer sends them before the closure; local_diff:
 * the diff is made here (diff_from), not by the target.
 */
void activation_fields(const struct activation *a, int local_diff, struct strbuf *msg);

/* with_keys: the keys functions (lib/scripts/keys.sh) go before the
 * script, for an activation with keys. activation_start and then
 * activation_ready, the target's answer (its lock taken, what it runs). */
int activation_begin(struct activation_session *as, const struct host *h,
		     const struct elevation *el, const char *holder,
		     int with_keys, struct nrr_err *e);
/* The conversation started, its answer not read: whatever goes on
 * meanwhile overlaps its round trips. activation_ready reads the answer
 * (on failure the session is ended); activation_end ends it either way. */
int activation_start(struct activation_session *as, const struct host *h,
		     const struct elevation *el, const char *holder,
		     int with_keys, struct nrr_err *e);
int activation_ready(struct activation_session *as, struct nrr_err *e);
int activation_offer(struct activation_session *as, struct activation *a,
		     struct nrr_err *e);
int activation_go(struct activation_session *as, struct activation *a,
		  struct nrr_err *e);
/* After offer: the target substitutes paths (its caches serve them);
 * a->missing and a->incomplete say what it still lacks. */
int activation_fetch(struct activation_session *as, struct activation *a,
		     const struct strvec *paths, struct nrr_err *e);
void activation_end(struct activation_session *as);

/* "user@host (pid N) since DATE": who holds a lock. Caller frees. */
char *activation_holder(void);

/* begin, offer and go in one, for an activation with nothing to copy. */
int activate(const struct host *h, const struct elevation *el,
	     struct activation *a, struct nrr_err *e);

#endif
