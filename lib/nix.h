/*
 * nix: what this machine's nix is asked, and how to read its answers.
 *
 * Every nix command this machine runs goes through this module: nix_capture()
 * for quiet questions (settings, version, dry runs), nix_capture_log() for
 * commands whose log is shown (a build here or on a build host), and
 * nix_run() for local evaluation and builds, which shows nix's
 * progress (stderr) live while keeping it for the error message, and which
 * copes with Nix versions: a flag that this nix does not know ("unrecognised
 * flag '--repair'" from Nix 2.8's `nix build`) is dropped with a warning
 * naming it and the command is run again, rather than failing the deploy.
 *
 * The pure helpers (version parsing, attribute paths, build --json output,
 * error classification) are exposed for the unit tests.
 */
#ifndef NRR_NIX_H
#define NRR_NIX_H

#include "error.h"
#include "strbuf.h"
#include "strvec.h"

struct nix_version {
	int major, minor, patch;
	int lix;
};

/* Parses "nix (Nix) 2.8.0", "nix-store (Nix) 2.8.0" or
 * "nix (Lix, like Nix) 2.91.1". Returns 0 or -1. */
int nix_version_parse(const char *text, struct nix_version *v);

/*
 * A configuration name must be usable inside nixosConfigurations."NAME":
 * no quotes, backslashes, '$' or control characters. Returns 0 or
 * NRR_EUSAGE.
 */
int nix_check_config_name(const char *name, struct nrr_err *e);

/* Splits "REF#NAME" (NAME may be empty); *ref and *name are malloc'ed. */
void nix_split_flake(const char *arg, char **ref, char **name);

/* The flake output attribute for NAME and attribute tail (e.g.
 * "config.system.build.toplevel"), malloc'ed. */
char *nix_flake_attr(const char *ref, const char *name, const char *tail);

/* Appends s escaped for the inside of a Nix "string" (", \, ${). */
void nix_string_escape(struct strbuf *dst, const char *s);

/* Reads the first "out" path of `nix build --json` output into a
 * malloc'ed string; NULL if there is none. */
char *nix_build_json_out(const char *json);

/*
 * The one-line reason for a failed nix command, from its stderr: the text
 * after the last "error:" line, or the last line. Written to buf.
 */
void nix_error_summary(const char *err, char *buf, size_t size);
/* Nix colours its messages; a one-line summary has no use for that: the
 * terminal's escape sequences out of s, in place, and leading blanks. */
void nix_strip_escapes(char *s);
/* 1 if stderr says a build (not the evaluation) failed. */
int nix_error_is_build(const char *err);

/* What a --dry-run said it would do. */
struct nix_dry_run {
	size_t build;		/* derivations to build */
	size_t fetch;		/* paths to fetch */
	double download_mib;	/* their download size, as nix said it */
};

/* Reads the lists nix prints for --dry-run ("these N derivations will be
 * built:", "these N paths will be fetched (X MiB download, ...)", each
 * followed by indented paths) out of text into dr (zeros if none). */
void nix_dry_run_parse(const char *text, struct nix_dry_run *dr);

/* The flag named in "unrecognised flag '--x'" / "unknown flag", or NULL
 * (malloc'ed). */
char *nix_unknown_flag(const char *err);

/*
 * Runs argv (nix, nix-build, ...) here, echoing its stderr to our stderr.
 * Unknown flags are removed from argv (with a warning pushed to warnings)
 * and the command retried. Returns the exit status with stdout in out and
 * stderr in err, or -1 if it could not start (e filled).
 * flags: NIX_RUN_QUIET shows nothing; NIX_RUN_LOGS shows build logs in
 * full, as -L does (for commands that do not take -L themselves).
 */
#define NIX_RUN_QUIET 0x1
#define NIX_RUN_LOGS 0x2
int nix_run(struct strvec *argv, struct strbuf *out, struct strbuf *err,
	    int flags, int trace, struct strvec *warnings, struct nrr_err *e);

/* Removes flag (and its values, per nix_flag_nargs) from argv.
 * Returns 1 if something was removed. */
int nix_drop_flag(struct strvec *argv, const char *flag);

/* How many values flag takes on nix's command line (0 if it is unknown). */
int nix_flag_nargs(const char *flag);

/*
 * How nix_capture_log() shows a nix command's stderr:
 *   render     stderr is nix's --log-format internal-json log (the caller
 *              asked for it): show it as our progress, and give err the
 *              log as plain text; else copy stderr to fd 2 as it comes
 *   quiet      show nothing
 *   logs       show build logs in full, as -L does
 *   verbosity  show nix's messages up to this many -v
 */
struct nix_log {
	int render, quiet, logs, verbosity;
};

/*
 * Runs c, a nix command here or through ssh on another machine, with its
 * stdout in out and its stderr in err, shown as log says. Returns the exit
 * status (255 from ssh keeps err as ssh said it), or -1 (e filled).
 */
struct child;
int nix_capture_log(struct child *c, const struct nix_log *log,
		    struct strbuf *out, struct strbuf *err, struct nrr_err *e);

/*
 * Runs the nix command argv here without showing anything of its stdout:
 * stdin /dev/null, stdout into out (NULL: dropped), stderr into err (NULL:
 * to our stderr). Returns its exit status, or -1 if it could not start.
 */
int nix_capture(const struct strvec *argv, struct strbuf *out,
		struct strbuf *err);

/* Pushes `nix --extra-experimental-features 'nix-command flakes' sub`. */
void nix_push_command(struct strvec *argv, const char *sub);

/*
 * Commands the user works with on our terminal; each returns 0, or
 * NRR_EFAIL with e filled.
 *   nix_edit            `nix edit` of installable, with flags
 *   nix_repl            `nix repl` on the Nix file at path, as this
 *                       machine's nix takes a file (2.8 only as an argument)
 *   nix_channel_update  root's channels as nixos-rebuild updates them:
 *                       those in channels_dir (root's) named nixos or
 *                       holding a file .update-on-nixos-rebuild (all:
 *                       every channel), through sudo if asked; none to
 *                       update is a warning, and so is a failed update
 *                       (the build goes on with what the channels hold)
 */
int nix_edit(const char *installable, const struct strvec *flags,
	     struct nrr_err *e);
int nix_repl(const char *path, const struct strvec *flags, struct nrr_err *e);
int nix_channel_update(const char *channels_dir, int all, int sudo, struct strvec *warnings,
		       struct nrr_err *e);

/* This machine's nix settings as JSON, into out; 0 or -1. */
int nix_local_config(struct strbuf *out);
/* This machine's nix version; 0 or -1. */
int nix_local_version(struct nix_version *v);
/* `nix-instantiate --find-file name` with flags: the path (the caller frees
 * it), or NULL. */
char *nix_find_file(const char *name, const struct strvec *flags);

/*
 * The directory of the flake whose flake.nix the file flake_nix really is,
 * when it is a link (or under one) into another directory; NULL when it
 * is in its own directory or does not resolve. The caller frees it.
 */
char *nix_flake_dir_of(const char *flake_nix);

#endif
