/* Building the system: here, or evaluated here and realised on the
 * build host (see deploy.h for the deploy it is part of). */
#include "deploy.h"
#include "nix.h"
#include "progress.h"
#include "quote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Realises $1 (a derivation) with nix-store and prints its output, "--",
 * then its closure. Dies with the connection: ssh without a tty does not
 * pass signals on, so a watcher ends the build when our end of stdin
 * closes (Ctrl-C, a killed run, a dropped link). Non-interactive sh gives
 * background jobs /dev/null as stdin, hence the copy on fd 3.
 * $2: "dry" for --dry-run. The rest: flags for nix-store.
 * The result gets a GC root in a private directory of the build host's
 * temp dir, so that it cannot be collected before it is copied.
 */
static const char realise_script[] =
	"PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin\n"
	"drv=$1 mode=$2; shift 2\n"
	"exec 3<&0\n"
	"if [ \"$mode\" = dry ]; then\n"
	"  nix-store --realise --dry-run \"$drv\" \"$@\" </dev/null 3<&- & p=$!\n"
	"else\n"
	"  root=$(mktemp -d \"${TMPDIR:-/tmp}/nrr-result.XXXXXX\")/result || exit\n"
	"  nix-store --realise \"$drv\" --add-root \"$root\" --indirect \"$@\" </dev/null >/dev/null 3<&- & p=$!\n"
	"fi\n"
	"( cat <&3 >/dev/null 2>&1; kill -TERM $p 2>/dev/null ) >/dev/null 2>&1 &\n"
	"exec 3<&-\n"
	"wait $p; s=$?\n"
	"[ \"$mode\" = dry ] && exit $s\n"
	"[ $s = 0 ] || exit $s\n"
	"out=$(readlink -f \"$root\") || exit\n"
	"echo \"$out\"; echo --\n"
	"exec nix-store --query --requisites $out\n";

static void push_nix(struct strvec *argv, const char *sub)
{
	strvec_pushl(argv, "nix", "--extra-experimental-features",
		     "nix-command flakes", sub, NULL);
}

/* Flags for local evaluation and builds, by source. */
static void push_local_flags(const struct deploy *d, struct strvec *argv)
{
	const struct options *o = d->opt;
	strvec_pushvec(argv, &o->nix_common);
	strvec_pushvec(argv, &o->nix_build);
	if (d->src == SRC_FLAKE) {
		strvec_pushvec(argv, &o->nix_flake_common);
		strvec_pushvec(argv, &o->nix_flake_eval);
	} else {
		strvec_pushvec(argv, &o->nix_classic);
	}
}

static int local_nix_fail(const char *what, const char *attr,
			  const char *err, struct nrr_err *e)
{
	char why[512];
	nix_error_summary(err, why, sizeof(why));
	if (nix_error_is_build(err))
		return nrr_fail(e, NRR_EBUILD, "building '%s' failed: %s", attr, why);
	return nrr_fail(e, NRR_EEVAL, "%s '%s' failed: %s", what, attr, why);
}

static int build_local(struct deploy *d, const char *attr, int dry,
		       const char *link, struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int ret = 0;

	if (d->src == SRC_FLAKE) {
		push_nix(&argv, "build");
		strvec_pushl(&argv, attr, "--json", NULL);
		if (dry)
			strvec_push(&argv, "--dry-run");
		else if (link)
			strvec_pushl(&argv, "--out-link", link, NULL);
		else
			strvec_push(&argv, "--no-link");
	} else {
		strvec_pushl(&argv, "nix-build", d->file, "--attr", attr, NULL);
		if (dry)
			strvec_push(&argv, "--dry-run");
		else if (link)
			strvec_pushl(&argv, "--out-link", link, NULL);
		else
			strvec_push(&argv, "--no-out-link");
	}
	push_local_flags(d, &argv);
	int st = nix_run(&argv, &out, &err, 0, d->trace, d->warnings, e);
	if (st < 0) {
		ret = e->status;
	} else if (st) {
		ret = local_nix_fail("evaluating", attr, err.buf, e);
	} else if (!dry) {
		char *path;
		if (d->src == SRC_FLAKE) {
			path = nix_build_json_out(out.buf);
		} else {
			size_t n;
			const char *l = last_line(out.buf, &n);
			path = n ? xstrndup(l, n) : NULL;
		}
		if (!path)
			ret = nrr_fail(e, NRR_EBUILD, "nix printed no result for '%s'", attr);
		free(d->toplevel);
		d->toplevel = path;
		d->built_at = AT_LOCAL;
	}
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

/* The derivation of attr, evaluated here. */
static int eval_drv(struct deploy *d, const char *attr, char **drv,
		    struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int ret = 0;

	if (d->src == SRC_FLAKE) {
		/* path-info --derivation answers from nix's evaluation cache for a
		 * clean flake (as `nix build` does); `nix eval .drvPath` evaluates
		 * the whole configuration every time */
		push_nix(&argv, "path-info");
		strvec_pushl(&argv, "--derivation", attr, NULL);
	} else {
		strvec_pushl(&argv, "nix-instantiate", d->file, "--attr", attr, NULL);
	}
	push_local_flags(d, &argv);
	if (d->src == SRC_CLASSIC)
		nix_drop_flag(&argv, "--no-build-output");
	int st = nix_run(&argv, &out, &err, 0, d->trace, d->warnings, e);
	if (st < 0)
		ret = e->status;
	else if (st)
		ret = local_nix_fail("evaluating", attr, err.buf, e);
	else {
		strbuf_rtrim(&out);
		size_t n;
		const char *l = last_line(out.buf, &n);
		*drv = xstrndup(l, n);
	}
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

static void feed(void *data, const char *buf, size_t n)
{
	progress_feed(data, buf, n);
}

static int build_remote(struct deploy *d, const char *attr, int dry,
			struct nrr_err *e)
{
	struct strvec drv_closure = STRVEC_INIT, args = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	char *drv = NULL;
	int ret;

	if ((ret = eval_drv(d, attr, &drv, e)))
		goto out;
	if ((ret = closure_of(&d->local, drv, &drv_closure, e)))
		goto out;
	if ((ret = deploy_copy_closure(d, &d->local, &d->build, &drv_closure,
				d->build_on_target, e)))
		goto out;
	strvec_pushl(&args, drv, dry ? "dry" : "build", NULL);
	int render = strvec_find(&d->opt->nix_common, "--log-format") < 0;
	if (render)
		strvec_pushl(&args, "--log-format", "internal-json", NULL);
	strvec_pushvec(&args, &d->opt->nix_common);
	struct child c = CHILD_INIT;
	struct progress pr;
	host_script_argv(&d->build, NULL, realise_script, args.v, &c);
	c.keep_stdin_open = 1;
	progress_init(&pr, render ? 2 : -1, isatty(2),
		      strvec_find(&d->opt->nix_build, "--print-build-logs") >= 0,
		      d->opt->verbose);
	int st = render ? child_capture_cb(&c, NULL, 0, &out, &err, feed, &pr, e)
			: child_capture(&c, NULL, 0, &out, &err, 2, e);
	progress_finish(&pr);
	child_clear(&c);
	if (render && st != 255) {
		strbuf_reset(&err);
		strbuf_add(&err, pr.plain.buf, pr.plain.len);
	}
	progress_release(&pr);
	if (st < 0) {
		ret = e->status;
	} else if (run_interrupted()) {
		ret = nrr_fail(e, NRR_EINT, "interrupted while building on '%s'",
			       d->build.name);
	} else if (st == 255 && d->build.ssh) {
		/* ssh's own words, if it said any; not the build's last line */
		const char *said = strstr(err.buf, "ssh:") ? strstr(err.buf, "ssh:")
			: strstr(err.buf, "Connection") ? strstr(err.buf, "Connection")
			: "connection lost";
		ret = ssh_connect_error(d->build.ssh, said, e);
		nrr_prefix(e, "while building");
	} else if (st) {
		char why[512];
		nix_error_summary(err.buf, why, sizeof(why));
		ret = nrr_fail(e, NRR_EBUILD, "building '%s' on '%s' failed: %s",
			       attr, d->build.name, why);
	} else if (!dry) {
		struct strvec lines = STRVEC_INIT;
		split_lines(out.buf, &lines);
		strvec_clear(&d->closure);
		int after = 0;
		for (size_t i = 0; i < lines.nr; i++) {
			if (!strcmp(lines.v[i], "--"))
				after = 1;
			else if (after)
				strvec_push(&d->closure, lines.v[i]);
			else if (!d->toplevel)
				d->toplevel = xstrdup(lines.v[i]);
		}
		strvec_clear(&lines);
		if (!d->toplevel)
			ret = nrr_fail(e, NRR_EBUILD, "'%s' printed no result for '%s'",
				       d->build.name, drv);
		d->built_at = d->build_on_target ? AT_TARGET : AT_BUILD;
	}
out:
	free(drv);
	strvec_clear(&drv_closure);
	strvec_clear(&args);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

static int add_result_link(struct deploy *d, const char *link, struct nrr_err *e)
{
	struct child c = CHILD_INIT;
	strvec_pushl(&c.args, "nix-store", "--realise", d->toplevel,
		     "--add-root", link, "--indirect", NULL);
	c.in = CHILD_NULL;
	c.out = CHILD_NULL;
	int st = child_start(&c, e) ? -1 : child_wait(&c);
	child_clear(&c);
	if (st)
		return nrr_fail(e, NRR_EFAIL, "cannot create the link '%s'", link);
	return 0;
}

int deploy_build(struct deploy *d, const char *tail, int dry,
		 const char *link, struct nrr_err *e)
{
	int ret;
	char *attr;

	if (d->src == SRC_STORE_PATH) {
		d->toplevel = xstrdup(d->opt->store_path);
		d->built_at = AT_LOCAL;
		return closure_of(&d->local, d->toplevel, &d->closure, e);
	}
	attr = deploy_attr(d, tail);
	if (d->build_remote) {
		ret = build_remote(d, attr, dry, e);
		if (!ret && !dry && link && !d->target_remote) {
			/* the result is wanted here: bring it home */
			if (!(ret = deploy_copy(d, e)))
				ret = add_result_link(d, link, e);
		}
	} else {
		ret = build_local(d, attr, dry, link, e);
		if (!ret && !dry)
			ret = closure_of(&d->local, d->toplevel, &d->closure, e);
	}
	free(attr);
	return ret;
}
