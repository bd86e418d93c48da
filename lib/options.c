#include "options.h"
#include "action.h"
#include "optcheck.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAIN "Configuration"
#define S_HOSTS "Hosts and privileges"
#define S_ACT "Activation"
#define S_OUT "Output"
#define S_NIX "Passed to nix"
#define S_FLAKE "Passed to nix for flakes"
#define S_CLASSIC "Passed to nix for classic configurations"

const struct option_spec option_table[] = {
	/* configuration source */
	{ "flake", 'F', -1, OPT_FLAKE, 0, 0, S_MAIN, "FLAKE[#NAME]",
	  "build nixosConfigurations.NAME of FLAKE (bare: \".\"; NAME defaults to the target's hostname)" },
	{ "no-flake", 0, 0, OPT_NO_FLAKE, 0, 0, S_MAIN, NULL,
	  "do not use /etc/nixos/flake.nix even if it exists" },
	{ "file", 'f', 1, OPT_FILE, 0, 0, S_MAIN, "FILE",
	  "build the configuration from FILE (classic mode)" },
	{ "attr", 'A', 1, OPT_ATTR, 0, 0, S_MAIN, "ATTR",
	  "attribute of FILE (default ./default.nix) holding the configuration (classic mode)" },
	{ "store-path", 0, 1, OPT_STORE_PATH, 0, 0, S_MAIN, "PATH",
	  "activate this already built system closure (a .drv: built first, on --build-host if given)" },
	{ "image-variant", 0, 1, OPT_IMAGE_VARIANT, 0, 0, S_MAIN, "VARIANT",
	  "image to build with build-image" },
	{ "upgrade", 0, 0, OPT_UPGRADE, 0, 0, S_MAIN, NULL,
	  "update the root user's NixOS channel first (classic mode)" },
	{ "upgrade-all", 0, 0, OPT_UPGRADE_ALL, 0, 0, S_MAIN, NULL,
	  "update all of the root user's channels first (classic mode)" },

	/* hosts and privileges */
	{ "target-host", 0, 1, OPT_TARGET_HOST, 0, 0, S_HOSTS, "[USER@]HOST",
	  "activate on HOST over ssh (resolved with ssh -G)" },
	{ "build-host", 0, 1, OPT_BUILD_HOST, 0, 0, S_HOSTS, "[USER@]HOST",
	  "build on HOST over ssh (\"localhost\": here)" },
	{ "copy-direct", 0, 0, OPT_COPY_DIRECT, 0, OF_NEW, S_HOSTS, NULL,
	  "the build host copies to the target itself instead of through this machine" },
	{ "use-substitutes", 's', 0, OPT_USE_SUBSTITUTES, G_COPY, OF_FLEET, S_HOSTS, NULL,
	  "let hosts fetch paths from their own binary caches before copying (=auto: ask their caches first, fetch only what they serve)" },
	{ "substitute-on-destination", 's', 0, OPT_USE_SUBSTITUTES, G_COPY, OF_FLEET, S_HOSTS, NULL,
	  "alias of --use-substitutes" },
	{ "push-to", 0, 1, OPT_PUSH_TO, 0, OF_NEW, S_HOSTS, "STORE-URL",
	  "copy the closure once to this Nix store (a binary cache), signed; the targets fetch it from there" },
	{ "sign-key", 0, 1, OPT_SIGN_KEY, 0, OF_NEW, S_HOSTS, "FILE",
	  "with --push-to: the secret key that signs it (default: nix.conf's secret-key-files)" },
	{ "cache-host", 0, 1, OPT_CACHE_HOST, 0, OF_NEW, S_HOSTS, "[USER@]HOST",
	  "with --push-to: stream the closure to HOST over ssh, which writes the cache (--push-to there)" },
	{ "cache-url", 0, 1, OPT_CACHE_URL, 0, OF_NEW, S_HOSTS, "URL",
	  "the cache as the targets substitute from it (checked before activation; default: --push-to's)" },
	{ "cache-key", 0, 1, OPT_CACHE_KEY, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "KEY",
	  "a fleet run's child: the public key the targets must trust" },
	{ "elevate", 0, 1, OPT_ELEVATE, 0, 0, S_HOSTS, "none|sudo|run0",
	  "how to gain root for activation on the target" },
	{ "sudo", 0, 0, OPT_SUDO, 0, 0, S_HOSTS, NULL,
	  "use sudo for activation (--elevate=sudo)" },
	{ "ask-elevate-password", 'S', 0, OPT_ASK_ELEVATE_PASSWORD, 0, 0, S_HOSTS, NULL,
	  "ask once for the sudo password and give it to every host that needs it" },
	{ "ask-sudo-password", 0, 0, OPT_ASK_SUDO_PASSWORD, 0, 0, S_HOSTS, NULL,
	  "alias of --elevate=sudo --ask-elevate-password" },
	{ "use-remote-sudo", 0, 0, OPT_USE_REMOTE_SUDO, 0, OF_DEPRECATED, S_HOSTS, NULL,
	  "deprecated alias of --sudo" },
	{ "no-ssh-tty", 0, 0, OPT_NO_SSH_TTY, 0, OF_DEPRECATED, S_HOSTS, NULL,
	  "deprecated, no effect: no tty is ever allocated" },

	{ "on", 0, 1, OPT_ON, 0, OF_NEW, S_HOSTS, "NAMES",
	  "deploy these configurations (comma-separated, globs, NAME=TARGET), each to the host of its name" },
	{ "parallel", 0, 1, OPT_PARALLEL, 0, OF_NEW, S_HOSTS, "N",
	  "with --on: hosts in flight at once (default 10, 0: all)" },
	{ "eval-jobs", 0, 1, OPT_EVAL_JOBS, 0, OF_NEW, S_HOSTS, "N",
	  "with --on: nix processes evaluating the systems at once (default: by hosts, cores and memory)" },
	{ "target-user", 0, 1, OPT_TARGET_USER, 0, OF_NEW, S_HOSTS, "USER",
	  "with --on: log in to every host as USER" },
	{ "progress-fd", 0, 1, OPT_PROGRESS_FD, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "FD",
	  "a fleet run's child: report phases on FD" },
	{ "password-fd", 0, 1, OPT_PASSWORD_FD, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "FD",
	  "a fleet run's child: read the sudo password from FD" },
	{ "keys-fd", 0, 1, OPT_KEYS_FD, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "FD",
	  "a hive node's child: read its deployment.keys from FD (lib/keys.h)" },
	{ "closure-db", 0, 1, OPT_CLOSURE_DB, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "FILE",
	  "a fleet run's child: its system's closure and sizes from this dump of the fleet's (lib/closuredb.h)" },
	{ "lock-holder", 0, 1, OPT_LOCK_HOLDER, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "TEXT",
	  "a fleet run's child: who holds the target's deploy lock, as the fleet said it (user@host, pid, since)" },
	{ "wait-go", 0, 0, OPT_WAIT_GO, 0, OF_HIDDEN | OF_NEW, S_HOSTS, NULL,
	  "a fleet run's child: connect and lock, then wait for the fleet's go on stdin (its systems built)" },
	{ "wait-push", 0, 0, OPT_WAIT_PUSH, 0, OF_HIDDEN | OF_NEW, S_HOSTS, NULL,
	  "a fleet run's child: its system built, ask the target what it lacks, then wait for the fleet's go (the cache route's push)" },
	{ "keys-only", 0, 0, OPT_KEYS_ONLY, 0, OF_HIDDEN | OF_NEW | OF_FLEET, S_HOSTS, NULL,
	  "a hive node's child: upload its keys (--keys-fd), build and activate nothing (apply keys)" },
	{ "elevate-command", 0, 1, OPT_ELEVATE_COMMAND, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "WORDS",
	  "a hive node's child: gain root on the target with these words (quoted), given no password" },
	{ "profile-guard", 0, 1, OPT_PROFILE_GUARD, 0, OF_HIDDEN | OF_NEW, S_HOSTS, "check|force",
	  "a hive node's child: refuse (check) or replace with a warning (force) a system this machine does not know" },

	/* activation */
	{ "profile-name", 'p', 1, OPT_PROFILE_NAME, 0, OF_FLEET, S_ACT, "NAME",
	  "use the system profile /nix/var/nix/profiles/system-profiles/NAME" },
	{ "specialisation", 'c', 1, OPT_SPECIALISATION, 0, OF_FLEET, S_ACT, "NAME",
	  "activate specialisation NAME (switch and test)" },
	{ "rollback", 0, 0, OPT_ROLLBACK, 0, 0, S_ACT, NULL,
	  "go back to the previous generation instead of building" },
	{ "install-bootloader", 0, 0, OPT_INSTALL_BOOTLOADER, 0, OF_FLEET, S_ACT, NULL,
	  "(re)install the boot loader (NIXOS_INSTALL_BOOTLOADER=1)" },
	{ "install-grub", 0, 0, OPT_INSTALL_GRUB, 0, OF_DEPRECATED | OF_FLEET, S_ACT, NULL,
	  "deprecated alias of --install-bootloader" },
	{ "magic-rollback", 0, 0, OPT_MAGIC_ROLLBACK, 0, OF_NEW | OF_FLEET, S_ACT, NULL,
	  "undo switch/test on the target unless it answers a new ssh connection afterwards" },
	{ "confirm-timeout", 0, 1, OPT_CONFIRM_TIMEOUT, 0, OF_NEW | OF_FLEET, S_ACT, "SECONDS",
	  "how long --magic-rollback waits for that connection (default 30; implies it)" },
	{ "reboot", 0, 0, OPT_REBOOT, 0, OF_NEW | OF_FLEET, S_ACT, NULL,
	  "reboot the target after switch/boot, wait for it, prove it runs the new system" },
	{ "reboot-timeout", 0, 1, OPT_REBOOT_TIMEOUT, 0, OF_NEW | OF_FLEET, S_ACT, "SECONDS",
	  "how long --reboot waits for the target to come back (default 300)" },
	{ "no-validate", 0, 0, OPT_NO_VALIDATE, 0, OF_NEW | OF_FLEET, S_ACT, NULL,
	  "skip the checks of the new system before activation (kernel, init, architecture)" },
	{ "no-reexec", 0, 0, OPT_NO_REEXEC, 0, 0, S_ACT, NULL,
	  "accepted for compatibility: this tool never re-executes itself" },
	{ "fast", 0, 0, OPT_FAST, 0, OF_DEPRECATED, S_ACT, NULL,
	  "deprecated alias of --no-reexec" },
	{ "no-build-nix", 0, 0, OPT_NO_BUILD_NIX, 0, OF_DEPRECATED, S_ACT, NULL,
	  "deprecated, no effect" },

	/* output */
	{ "verbose", 'v', 0, OPT_VERBOSE, G_COMMON, OF_FLEET, S_OUT, NULL,
	  "show commands as they run; repeat for more nix output" },
	{ "quiet", 0, 0, OPT_QUIET, G_COMMON, OF_FLEET, S_OUT, NULL,
	  "less output from nix" },
	{ "json", 0, 0, OPT_JSON, 0, 0, S_OUT, NULL,
	  "machine-readable output on stdout: generations, or a report of the deploy (with the diff)" },
	{ "diff", 0, 0, OPT_DIFF, 0, 0, S_OUT, NULL,
	  "show what changes on the target (packages, sizes) even when not on a terminal" },
	{ "no-diff", 0, 0, OPT_NO_DIFF, 0, OF_NEW, S_OUT, NULL,
	  "do not show what changes on the target" },
	{ "ask", 0, 0, OPT_ASK, 0, OF_NEW, S_OUT, NULL,
	  "after the diff, ask before activating (with --on, once for all hosts)" },
	{ "yes", 0, 0, OPT_YES, 0, OF_NEW, S_OUT, NULL,
	  "answer --ask's question with yes (for use without a terminal)" },
	{ "debug", 0, 0, OPT_DEBUG, 0, OF_FLEET, S_OUT, NULL,
	  "show every command this tool runs" },
	{ "help", 'h', 0, OPT_HELP, 0, 0, S_OUT, NULL, "show this help" },
	{ "version", 0, 0, OPT_VERSION, 0, OF_NEW, S_OUT, NULL, "show the version" },
	{ "complete", 0, 1, OPT_COMPLETE, 0, OF_HIDDEN | OF_NEW, S_OUT, "WHAT",
	  "completion helper" },

	/* passed to nix */
	{ "max-jobs", 'j', 1, OPT_MAX_JOBS, G_COMMON, OF_FLEET, S_NIX, "N", NULL },
	{ "cores", 0, 1, OPT_CORES, G_COMMON, OF_FLEET, S_NIX, "N", NULL },
	{ "log-format", 0, 1, OPT_LOG_FORMAT, G_COMMON, OF_FLEET, S_NIX, "FORMAT", NULL },
	{ "keep-going", 'k', 0, OPT_KEEP_GOING, G_COMMON, 0, S_NIX, NULL, NULL },
	{ "keep-failed", 'K', 0, OPT_KEEP_FAILED, G_COMMON, OF_FLEET, S_NIX, NULL, NULL },
	{ "fallback", 0, 0, OPT_FALLBACK, G_COMMON, OF_FLEET, S_NIX, NULL, NULL },
	{ "repair", 0, 0, OPT_REPAIR, G_COMMON, OF_FLEET, S_NIX, NULL, NULL },
	{ "option", 0, 2, OPT_OPTION, G_COMMON, OF_FLEET, S_NIX, "NAME VALUE", NULL },
	{ "builders", 0, 1, OPT_BUILDERS, G_BUILD, 0, S_NIX, "SPEC", NULL },
	{ "include", 'I', 1, OPT_INCLUDE, G_BUILD, 0, S_NIX, "PATH", NULL },
	{ "print-build-logs", 'L', 0, OPT_PRINT_BUILD_LOGS, G_BUILD, 0, S_NIX, NULL, NULL },
	{ "show-trace", 0, 0, OPT_SHOW_TRACE, G_BUILD, 0, S_NIX, NULL, NULL },

	/* flakes */
	{ "offline", 0, 0, OPT_OFFLINE, G_FLAKE_COMMON, 0, S_FLAKE, NULL, NULL },
	{ "no-net", 0, 0, OPT_NO_NET, G_FLAKE_COMMON, 0, S_FLAKE, NULL, NULL },
	{ "accept-flake-config", 0, 0, OPT_ACCEPT_FLAKE_CONFIG, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "refresh", 0, 0, OPT_REFRESH, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "impure", 0, 0, OPT_IMPURE, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "recreate-lock-file", 0, 0, OPT_RECREATE_LOCK_FILE, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "no-update-lock-file", 0, 0, OPT_NO_UPDATE_LOCK_FILE, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "no-write-lock-file", 0, 0, OPT_NO_WRITE_LOCK_FILE, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "no-registries", 0, 0, OPT_NO_REGISTRIES, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "commit-lock-file", 0, 0, OPT_COMMIT_LOCK_FILE, G_FLAKE_EVAL, 0, S_FLAKE, NULL, NULL },
	{ "update-input", 0, 1, OPT_UPDATE_INPUT, G_FLAKE_EVAL, 0, S_FLAKE, "INPUT", NULL },
	{ "override-input", 0, 2, OPT_OVERRIDE_INPUT, G_FLAKE_EVAL, 0, S_FLAKE, "INPUT FLAKE", NULL },

	/* classic */
	{ "no-build-output", 'Q', 0, OPT_NO_BUILD_OUTPUT, G_CLASSIC, 0, S_CLASSIC, NULL, NULL },
	{ "no-link", 'Q', 0, OPT_NO_BUILD_OUTPUT, G_CLASSIC, 0, S_CLASSIC, NULL,
	  "alias of --no-build-output; with flakes, no ./result link" },
	{ "arg", 0, 2, OPT_ARG, G_CLASSIC, OF_NEW, S_CLASSIC, "NAME EXPR", NULL },
	{ "argstr", 0, 2, OPT_ARGSTR, G_CLASSIC, OF_NEW, S_CLASSIC, "NAME STRING", NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL },
};

static const char *const section_order[] = {
	S_MAIN, S_HOSTS, S_ACT, S_OUT, S_NIX, S_FLAKE, S_CLASSIC, NULL,
};

void options_init(struct options *o)
{
	memset(o, 0, sizeof(*o));
	strvec_init(&o->nix_common);
	strvec_init(&o->nix_build);
	strvec_init(&o->nix_flake_common);
	strvec_init(&o->nix_flake_eval);
	strvec_init(&o->nix_classic);
	strvec_init(&o->warnings);
	strvec_init(&o->fleet_args);
	o->profile_name = "system";
	o->diff = -1;
	o->parallel = 10;
	o->progress_fd = o->password_fd = o->keys_fd = -1;
}

int options_needs(const struct options *o, unsigned bits)
{
	return o->act && (o->act->needs & bits) == bits;
}

void options_release(struct options *o)
{
	strvec_clear(&o->nix_common);
	strvec_clear(&o->nix_build);
	strvec_clear(&o->nix_flake_common);
	strvec_clear(&o->nix_flake_eval);
	strvec_clear(&o->nix_classic);
	strvec_clear(&o->warnings);
	strvec_clear(&o->fleet_args);
	free(o->cache_url_buf);
	free(o->cache_key_buf);
}

static int is_action(const char *s)
{
	return action_find(s) != NULL;
}

static const struct option_spec *find_long(const char *name, size_t len)
{
	for (const struct option_spec *s = option_table; s->name; s++)
		if (strlen(s->name) == len && !strncmp(s->name, name, len))
			return s;
	return NULL;
}

static const struct option_spec *find_short(char c)
{
	for (const struct option_spec *s = option_table; s->name; s++)
		if (s->short_name == c)
			return s;
	return NULL;
}

static struct strvec *group_vec(struct options *o, unsigned group)
{
	switch (group) {
	case G_COMMON: return &o->nix_common;
	case G_BUILD: return &o->nix_build;
	case G_FLAKE_COMMON: return &o->nix_flake_common;
	case G_FLAKE_EVAL: return &o->nix_flake_eval;
	case G_CLASSIC: return &o->nix_classic;
	default: return NULL;
	}
}

static void deprecated(struct options *o, const char *what, const char *use)
{
	strvec_pushf(&o->warnings, "'%s' is deprecated, use '%s' instead",
		     what, use);
}

static int apply_one(struct options *o, const struct option_spec *s,
		     const char *spelled, const char **vals, struct nrr_err *e);

/* Applies one option with its values (vals has nargs entries); an
 * OF_FLEET one is also kept for a fleet's children. */
static int apply(struct options *o, const struct option_spec *s,
		 const char *spelled, const char **vals, struct nrr_err *e)
{
	if (s->flags & OF_FLEET) {
		strvec_pushf(&o->fleet_args, "--%s", s->name);
		for (int i = 0; i < s->nargs; i++)
			strvec_push(&o->fleet_args, vals[i]);
	}
	return apply_one(o, s, spelled, vals, e);
}

static int apply_one(struct options *o, const struct option_spec *s,
		     const char *spelled, const char **vals, struct nrr_err *e)
{
	struct strvec *g = group_vec(o, s->group);

	switch (s->id) {
	case OPT_VERBOSE: o->verbose++; break;
	case OPT_QUIET: o->quiet++; break;
	case OPT_HELP: o->help = 1; return 0;
	case OPT_VERSION: o->version = 1; return 0;
	case OPT_COMPLETE: o->complete = vals[0]; return 0;
	case OPT_DEBUG: o->debug = 1; return 0;
	case OPT_JSON: o->json = 1; return 0;
	case OPT_DIFF: o->diff = 1; return 0;
	case OPT_NO_DIFF: o->diff = 0; return 0;
	case OPT_ON: o->on = vals[0]; return 0;
	case OPT_TARGET_USER: o->target_user = vals[0]; return 0;
	case OPT_PARALLEL:
	case OPT_EVAL_JOBS:
	case OPT_PROGRESS_FD:
	case OPT_KEYS_FD:
	case OPT_PASSWORD_FD: {
		char *end;
		long v = strtol(vals[0], &end, 10);
		if (*end || !*vals[0] || v < 0 || v > 100000)
			return nrr_fail(e, NRR_EUSAGE, "argument %s: expected a number, got '%s'",
					spelled, vals[0]);
		if (s->id == OPT_PARALLEL)
			o->parallel = (int)v;
		else if (s->id == OPT_EVAL_JOBS)
			o->eval_jobs = (int)v;
		else if (s->id == OPT_PROGRESS_FD)
			o->progress_fd = (int)v;
		else if (s->id == OPT_KEYS_FD)
			o->keys_fd = (int)v;
		else
			o->password_fd = (int)v;
		return 0;
	}
	case OPT_ASK: o->ask = 1; return 0;
	case OPT_YES: o->yes = 1; return 0;
	case OPT_FILE: o->file = vals[0]; return 0;
	case OPT_ATTR: o->attr = vals[0]; return 0;
	case OPT_FLAKE: o->flake = vals[0] ? vals[0] : "."; return 0;
	case OPT_NO_FLAKE: o->no_flake = 1; return 0;
	case OPT_STORE_PATH: o->store_path = vals[0]; return 0;
	case OPT_CLOSURE_DB: o->closure_db = vals[0]; return 0;
	case OPT_LOCK_HOLDER: o->lock_holder = vals[0]; return 0;
	case OPT_WAIT_GO: o->wait_go = 1; return 0;
	case OPT_WAIT_PUSH: o->wait_push = 1; return 0;
	case OPT_IMAGE_VARIANT: o->image_variant = vals[0]; return 0;
	case OPT_UPGRADE: o->upgrade = 1; return 0;
	case OPT_UPGRADE_ALL: o->upgrade = o->upgrade_all = 1; return 0;
	case OPT_TARGET_HOST: o->target_host = vals[0]; return 0;
	case OPT_BUILD_HOST: o->build_host = vals[0]; return 0;
	case OPT_COPY_DIRECT: o->copy_direct = 1; return 0;
	case OPT_PUSH_TO: o->push_to = vals[0]; return 0;
	case OPT_SIGN_KEY: o->sign_key = vals[0]; return 0;
	case OPT_CACHE_HOST: o->cache_host = vals[0]; return 0;
	case OPT_CACHE_URL: o->cache_url = vals[0]; return 0;
	case OPT_CACHE_KEY: o->cache_key = vals[0]; return 0;
	case OPT_USE_SUBSTITUTES: o->substitutes = 1; return 0;
	case OPT_ELEVATE:
		if (!strcmp(vals[0], "none"))
			o->elevate = ELEVATE_NONE;
		else if (!strcmp(vals[0], "sudo"))
			o->elevate = ELEVATE_SUDO;
		else if (!strcmp(vals[0], "run0"))
			o->elevate = ELEVATE_RUN0;
		else
			return nrr_fail(e, NRR_EUSAGE,
					"argument --elevate: invalid choice '%s' (choose from none, sudo, run0)",
					vals[0]);
		return 0;
	case OPT_ELEVATE_COMMAND:
		o->elevate = ELEVATE_COMMAND;
		o->elevate_command = vals[0];
		return 0;
	case OPT_KEYS_ONLY: o->keys_only = 1; return 0;
	case OPT_PROFILE_GUARD:
		if (strcmp(vals[0], "check") && strcmp(vals[0], "force"))
			return nrr_fail(e, NRR_EUSAGE,
					"argument --profile-guard: invalid choice '%s' (choose from check, force)",
					vals[0]);
		o->profile_guard = !strcmp(vals[0], "check") ? 1 : 2;
		return 0;
	case OPT_SUDO: o->elevate = ELEVATE_SUDO; return 0;
	case OPT_USE_REMOTE_SUDO:
		deprecated(o, spelled, "--sudo");
		o->elevate = ELEVATE_SUDO;
		return 0;
	case OPT_ASK_ELEVATE_PASSWORD: o->ask_password = 1; return 0;
	case OPT_ASK_SUDO_PASSWORD:
		o->ask_password = 1;
		o->elevate = ELEVATE_SUDO;
		return 0;
	case OPT_NO_SSH_TTY:
		strvec_pushf(&o->warnings,
			     "'%s' is deprecated and has no effect: no tty is ever allocated",
			     spelled);
		return 0;
	case OPT_PROFILE_NAME: o->profile_name = vals[0]; return 0;
	case OPT_SPECIALISATION: o->specialisation = vals[0]; return 0;
	case OPT_ROLLBACK: o->rollback = 1; return 0;
	case OPT_INSTALL_BOOTLOADER: o->install_bootloader = 1; return 0;
	case OPT_INSTALL_GRUB:
		deprecated(o, spelled, "--install-bootloader");
		o->install_bootloader = 1;
		return 0;
	case OPT_NO_REEXEC: return 0;
	case OPT_NO_VALIDATE: o->no_validate = 1; return 0;
	case OPT_MAGIC_ROLLBACK:
		if (!o->confirm_timeout)
			o->confirm_timeout = 30;
		return 0;
	case OPT_CONFIRM_TIMEOUT: {
		char *end;
		long v = strtol(vals[0], &end, 10);
		if (*end || v < 1 || v > 86400)
			return nrr_fail(e, NRR_EUSAGE,
					"argument --confirm-timeout: expected seconds (1-86400), got '%s'",
					vals[0]);
		o->confirm_timeout = (int)v;
		return 0;
	}
	case OPT_REBOOT: o->reboot = 1; return 0;
	case OPT_REBOOT_TIMEOUT: {
		char *end;
		long v = strtol(vals[0], &end, 10);
		if (*end || v < 1 || v > 86400)
			return nrr_fail(e, NRR_EUSAGE,
					"argument --reboot-timeout: expected seconds (1-86400), got '%s'",
					vals[0]);
		o->reboot_timeout = (int)v;
		return 0;
	}
	case OPT_FAST:
		deprecated(o, spelled, "--no-reexec");
		return 0;
	case OPT_NO_BUILD_NIX:
		strvec_pushf(&o->warnings, "'%s' is deprecated and has no effect",
			     spelled);
		return 0;
	case OPT_NO_BUILD_OUTPUT:
		o->no_build_output = 1;
		return 0;
	default:
		break;
	}
	if (s->id == OPT_KEEP_GOING)
		o->keep_going = 1;
	if (!g)
		return 0;
	/* pass-through: nix's own long spelling, values as given */
	if (s->id == OPT_VERBOSE)
		strvec_push(g, "-v");
	else
		strvec_pushf(g, "--%s", s->name);
	for (int i = 0; i < s->nargs; i++)
		strvec_push(g, vals[i]);
	return 0;
}

static int need_values(const struct option_spec *s, const char *spelled,
		       int *i, int argc, const char *const *argv,
		       const char *glued, const char **vals, struct nrr_err *e)
{
	int k = 0;
	if (glued)
		vals[k++] = glued;
	while (k < s->nargs) {
		if (*i + 1 >= argc)
			return nrr_fail(e, NRR_EUSAGE,
					"argument %s: expected %d argument%s",
					spelled, s->nargs, s->nargs > 1 ? "s" : "");
		vals[k++] = argv[++*i];
	}
	return 0;
}

static int parse_words(struct options *o, int argc, const char *const *argv,
		       struct nrr_err *e)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *vals[2] = { NULL, NULL };

		if (a[0] == '-' && a[1] == '-' && a[2]) {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			const struct option_spec *s = find_long(a + 2, len);
			char spelled[128];
			snprintf(spelled, sizeof(spelled), "--%.*s", (int)len, a + 2);
			if (!s)
				return nrr_fail(e, NRR_EUSAGE,
						"unrecognized option '%s'", spelled);
			/* --use-substitutes=auto: ours; bare, it keeps ng's meaning */
			if (s->id == OPT_USE_SUBSTITUTES && eq) {
				if (strcmp(eq + 1, "auto"))
					return nrr_fail(e, NRR_EUSAGE,
							"argument %s: expected 'auto' after '=', got '%s'",
							spelled, eq + 1);
				o->substitutes = 2;
				strvec_pushf(&o->fleet_args, "--%s=auto", s->name);
				continue;
			}
			if (s->nargs == 0 && eq)
				return nrr_fail(e, NRR_EUSAGE,
						"argument %s: ignored explicit argument '%s'",
						spelled, eq + 1);
			if (s->nargs < 0) {
				/* optional value: =VALUE, or a next word that is
				 * neither an option nor (before any action) an action */
				if (eq)
					vals[0] = eq + 1;
				else if (i + 1 < argc && argv[i + 1][0] != '-' &&
					 !(is_action(argv[i + 1]) && !o->action))
					vals[0] = argv[++i];
			} else if (need_values(s, spelled, &i, argc, argv,
					       eq ? eq + 1 : NULL, vals, e)) {
				return e->status;
			}
			if (apply(o, s, spelled, vals, e))
				return e->status;
			continue;
		}
		if (a[0] == '-' && a[1] && a[1] != '-') {
			/* bundled short options: -vvv, -sv, -j4, -j 4 */
			for (const char *p = a + 1; *p; p++) {
				const struct option_spec *s = find_short(*p);
				char spelled[3] = { '-', *p, 0 };
				if (!s)
					return nrr_fail(e, NRR_EUSAGE,
							"unrecognized option '-%c'", *p);
				vals[0] = vals[1] = NULL;
				if (s->nargs != 0) {
					const char *glued = p[1] ? p + 1 : NULL;
					if (s->nargs < 0) {
						vals[0] = glued;
						if (!glued && i + 1 < argc &&
						    argv[i + 1][0] != '-' &&
						    !(is_action(argv[i + 1]) && !o->action))
							vals[0] = argv[++i];
					} else if (need_values(s, spelled, &i, argc,
							       argv, glued, vals, e)) {
						return e->status;
					}
					if (apply(o, s, spelled, vals, e))
						return e->status;
					break;
				}
				if (apply(o, s, spelled, vals, e))
					return e->status;
			}
			continue;
		}
		if (!strcmp(a, "--")) {
			continue;
		}
		const struct action *act = action_find(a);
		if (!act)
			return nrr_fail(e, NRR_EUSAGE,
					"argument action: invalid choice '%s'", a);
		if (o->action)
			return nrr_fail(e, NRR_EUSAGE,
					"unrecognized arguments: %s", a);
		o->act = act;
		o->action = act->name;	/* dry-run -> dry-build */
	}
	return 0;
}

static int check_words(int argc, const char *const *argv, struct nrr_err *e)
{
	for (int i = 1; i < argc; i++)
		if (strchr(argv[i], '\n') && argv[i][0] == '-')
			return nrr_fail(e, NRR_EUSAGE,
					"option with a newline: refused");
	return 0;
}

int options_parse(struct options *o, int argc, const char *const *argv,
		  struct nrr_err *e)
{
	if (check_words(argc, argv, e) || parse_words(o, argc, argv, e))
		return e->status;
	if (o->help || o->version || o->complete)
		return 0;
	return options_check(o, e);
}

static void spelling(struct strbuf *sb, const struct option_spec *s)
{
	strbuf_reset(sb);
	if (s->short_name)
		strbuf_addf(sb, "-%c, ", s->short_name);
	strbuf_addf(sb, "--%s", s->name);
	if (s->metavar)
		strbuf_addf(sb, s->nargs < 0 ? " [%s]" : " %s", s->metavar);
}

void options_print_help(FILE *fp)
{
	struct strbuf sb = STRBUF_INIT;

	fputs("usage: nixos-rebuild-remote ACTION [OPTIONS]\n\n"
	      "Build a NixOS configuration and activate it, here or on another machine\n"
	      "over one multiplexed ssh connection per host.\n\n", fp);
	action_print_help(fp);
	for (int k = 0; section_order[k]; k++) {
		fprintf(fp, "\n%s:\n", section_order[k]);
		for (const struct option_spec *s = option_table; s->name; s++) {
			if (strcmp(s->section, section_order[k]) ||
			    (s->flags & OF_HIDDEN))
				continue;
			spelling(&sb, s);
			if (s->help)
				fprintf(fp, "  %-34s %s\n", sb.buf, s->help);
			else
				fprintf(fp, "  %s\n", sb.buf);
		}
	}
	fputs("\nEnvironment: NIX_SSHOPTS, NIX_SUDOOPTS, NIXOS_REBUILD_SSH_DEFAULT_OPTS.\n"
	      "See nixos-rebuild-remote(8) for details and exit statuses.\n", fp);
	strbuf_release(&sb);
}

void options_print_completion(FILE *fp, int with_nargs)
{
	for (const struct option_spec *s = option_table; s->name; s++) {
		if (s->flags & OF_HIDDEN)
			continue;
		if (with_nargs)
			fprintf(fp, "--%s\t%c\t%d\t%s\n", s->name,
				s->short_name ? s->short_name : '-', s->nargs,
				s->help ? s->help : "");
		else {
			fprintf(fp, "--%s\n", s->name);
			if (s->short_name)
				fprintf(fp, "-%c\n", s->short_name);
		}
	}
}
