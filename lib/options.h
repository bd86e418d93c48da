/*
 * options: the command line, driven by one table.
 *
 * option_table[] is the single source of truth for every option: the
 * parser reads it, --help prints it section by section, `--complete
 * options` lists it for the shell completion scripts, and the test suite
 * checks that the man page and both completion scripts know exactly these
 * options. Add an option here and nowhere else first.
 *
 * Parsing follows nixos-rebuild-ng's argparse parser: no abbreviations,
 * `--name=value` and `--name value`, bundled short flags (-vvv, -j4),
 * nargs 2 for --option/--override-input/--arg/--argstr, an optional value
 * for --flake (bare --flake means "."). Usage errors are status 2.
 *
 * Flags that nixos-rebuild hands to nix are collected, already spelled as
 * nix wants them, into struct options' nix_* vectors, one per group of nix
 * calls that receive them (see the group comments below).
 */
#ifndef NRR_OPTIONS_H
#define NRR_OPTIONS_H

#include <stdio.h>

#include "error.h"
#include "host.h"
#include "strvec.h"

enum opt_id {
	OPT_VERBOSE, OPT_QUIET, OPT_MAX_JOBS, OPT_CORES, OPT_LOG_FORMAT,
	OPT_KEEP_GOING, OPT_KEEP_FAILED, OPT_FALLBACK, OPT_REPAIR, OPT_OPTION,
	OPT_BUILDERS, OPT_INCLUDE, OPT_PRINT_BUILD_LOGS, OPT_SHOW_TRACE,
	OPT_OFFLINE, OPT_NO_NET, OPT_ACCEPT_FLAKE_CONFIG, OPT_REFRESH,
	OPT_IMPURE, OPT_RECREATE_LOCK_FILE, OPT_NO_UPDATE_LOCK_FILE,
	OPT_NO_WRITE_LOCK_FILE, OPT_NO_REGISTRIES, OPT_COMMIT_LOCK_FILE,
	OPT_UPDATE_INPUT, OPT_OVERRIDE_INPUT, OPT_ARG, OPT_ARGSTR,
	OPT_NO_BUILD_OUTPUT, OPT_USE_SUBSTITUTES,
	OPT_HELP, OPT_VERSION, OPT_DEBUG, OPT_FILE, OPT_ATTR, OPT_FLAKE,
	OPT_NO_FLAKE, OPT_INSTALL_BOOTLOADER, OPT_INSTALL_GRUB,
	OPT_PROFILE_NAME, OPT_SPECIALISATION, OPT_ROLLBACK, OPT_STORE_PATH,
	OPT_UPGRADE, OPT_UPGRADE_ALL, OPT_JSON, OPT_ELEVATE,
	OPT_ASK_ELEVATE_PASSWORD, OPT_SUDO, OPT_ASK_SUDO_PASSWORD,
	OPT_USE_REMOTE_SUDO, OPT_NO_SSH_TTY, OPT_NO_REEXEC, OPT_FAST,
	OPT_BUILD_HOST, OPT_TARGET_HOST, OPT_NO_BUILD_NIX, OPT_IMAGE_VARIANT,
	OPT_DIFF, OPT_COPY_DIRECT, OPT_COMPLETE, OPT_NO_VALIDATE,
	OPT_MAGIC_ROLLBACK, OPT_CONFIRM_TIMEOUT, OPT_REBOOT, OPT_REBOOT_TIMEOUT,
	OPT_NO_DIFF, OPT_ASK, OPT_YES,
	OPT_ON, OPT_PARALLEL, OPT_EVAL_JOBS, OPT_TARGET_USER, OPT_PROGRESS_FD, OPT_PASSWORD_FD,
	OPT_PUSH_TO, OPT_SIGN_KEY, OPT_CACHE_HOST, OPT_CACHE_URL, OPT_CACHE_KEY,
	OPT_PROFILE_GUARD, OPT_ELEVATE_COMMAND, OPT_KEYS_FD, OPT_KEYS_ONLY, OPT_CLOSURE_DB, OPT_LOCK_HOLDER, OPT_WAIT_GO, OPT_WAIT_PUSH,
};

/* Where a pass-through flag goes (nixos-rebuild-ng's groups). */
enum opt_group {
	G_NONE = 0,
	G_COMMON = 1,		/* every nix call, copies and remote realise too */
	G_BUILD = 2,		/* local builds and evaluations only */
	G_FLAKE_COMMON = 4,	/* flake builds (local and remote) and evals */
	G_FLAKE_EVAL = 8,	/* local flake evaluation and build only */
	G_CLASSIC = 16,		/* nix-build / nix-instantiate only */
	G_COPY = 32,		/* closure copies */
};

enum opt_flags {
	OF_HIDDEN = 1,		/* not in --help or completion */
	OF_DEPRECATED = 2,	/* accepted with a warning */
	OF_NEW = 4,		/* ours, not nixos-rebuild-ng's */
	OF_FLEET = 8,		/* with --on, passed on to every host's deploy */
};

struct option_spec {
	const char *name;	/* long name without "--" */
	char short_name;	/* 0 if none */
	int nargs;		/* 0, 1, 2, or -1 for an optional value */
	enum opt_id id;
	unsigned group;
	unsigned flags;
	const char *section;
	const char *metavar;
	const char *help;
};

extern const struct option_spec option_table[];

struct action;

struct options {
	const struct action *act;	/* its row in action.h; NULL if none */
	const char *action;	/* act's name (dry-run -> dry-build); NULL if none */
	int verbose, quiet, debug, json, help, version;
	const char *complete;	/* --complete WHAT */

	/* where the configuration comes from */
	const char *flake;	/* NULL: not given; "." for a bare --flake */
	int no_flake;
	const char *file, *attr;
	const char *store_path;

	const char *target_host, *build_host;
	int copy_direct;

	enum elevate elevate;
	int ask_password;
	int substitutes;

	/* the cache route (lib/pushto.h): --push-to STORE-URL, signed with
	 * --sign-key, written on --cache-host when given; the targets
	 * substitute from --cache-url (default: push_to without its
	 * parameters) and must trust cache_key (a fleet's child is given it) */
	const char *push_to, *sign_key, *cache_host, *cache_url;
	char *cache_url_buf;	/* cache_url when made from push_to (owned) */
	const char *cache_key;
	char *cache_key_buf;	/* cache_key when worked out here (owned) */

	const char *profile_name, *specialisation, *image_variant;
	int install_bootloader, rollback, upgrade, upgrade_all;
	int diff;		/* 1 --diff, 0 --no-diff, -1 default (on a terminal) */
	int ask, yes;

	/* fleets: --on NAMES */
	const char *on, *target_user;
	int parallel;		/* hosts in flight; 0: no limit */
	int eval_jobs;		/* --eval-jobs; 0: chosen by fleet_eval_all */
	int keep_going;		/* -k: also go on with other hosts */
	/* the deploy of one host as this program runs it (argv as a fleet's
	 * child gets it), for a fleet to run in a fiber of its own process
	 * (lib/fiber.h); NULL: each host's child is a process. Set by main,
	 * never by an option */
	int (*host_main)(int argc, const char *const *argv);
	int progress_fd, password_fd;	/* a fleet's child: how it reports */
	int keys_fd;		/* a hive node's child: its keys come on it */
	const char *closure_db;	/* a fleet run's child: lib/closuredb.h's dump */
	const char *lock_holder;	/* a fleet run's child: its lock's holder, the fleet's */
	int wait_go;		/* a fleet run's child: wait for the fleet's go (lib/fleet.h) */
	int wait_push;		/* ... after the target said what it lacks (deploy.h's hold) */
	int keys_only;		/* and it uploads them, nothing else (apply keys) */
	/* a hive node's child (replaceUnknownProfiles = false): 0 no guard,
	 * 1 refuse a system this machine does not know, 2 replace it warning */
	int profile_guard;
	const char *elevate_command;	/* --elevate-command: words, shell-quoted */
	int no_build_output;
	int no_validate;
	int confirm_timeout;	/* --magic-rollback: seconds, 0 = off */
	int reboot;		/* --reboot: reboot after switch/boot and wait */
	int reboot_timeout;	/* --reboot-timeout: seconds, 0 = the default */

	/* pass-through flags, spelled for nix, by group */
	struct strvec nix_common, nix_build, nix_flake_common, nix_flake_eval,
		nix_classic;

	/* the OF_FLEET options given, in order, spelled long: for a fleet's
	 * children */
	struct strvec fleet_args;

	/* "warning: ..." lines the caller should print */
	struct strvec warnings;
};

void options_init(struct options *o);
void options_release(struct options *o);

/* 1 if the run's action (o->act) has every one of the AN_* bits
 * (lib/action.h); 0 without an action. */
int options_needs(const struct options *o, unsigned bits);

/*
 * Parses argv[1..argc-1] into o. Returns 0, or NRR_EUSAGE with e filled.
 * Checks that hold whatever the environment (conflicts, actions that take
 * an option) are done here; checks that need the world are main's.
 */
int options_parse(struct options *o, int argc, const char *const *argv,
		  struct nrr_err *e);

/* Writes --help text to fp. */
void options_print_help(FILE *fp);
/* Lists every visible option (--long and -s spellings), one per line. */
void options_print_completion(FILE *fp, int with_nargs);

#endif
