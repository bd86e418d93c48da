/* Building the system: here, or evaluated here and realised on the
 * build host (see deploy.h for the deploy it is part of). */
#include "build.h"
#include "closuredb.h"
#include "hive.h"
#include "narinfo.h"
#include "nix.h"
#include "nixconf.h"
#include "platform.h"
#include "quote.h"
#include "scripts.h"
#include "serve.h"
#include "session.h"

#include <sys/utsname.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* Of the build flags, only --builders concerns a realisation: -I and
 * --show-trace were for the evaluation, -L is ours to show. */
void build_push_builders(struct strvec *argv, const struct strvec *nix_build)
{
	for (size_t i = 0; i + 1 < nix_build->nr; i++)
		if (!strcmp(nix_build->v[i], "--builders"))
			strvec_pushl(argv, nix_build->v[i], nix_build->v[i + 1], NULL);
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

/* Makes d->root_dir, a private directory for the result's GC root (removed
 * by deploy_release). Returns 0, or -1 (then the build goes without). */
static int add_root_dir(struct deploy *d)
{
	const char *tmp = getenv("TMPDIR");
	if (d->root_dir)
		return 0;
	char *dir = xstrfmt("%s/nrr-root.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	d->root_dir = dir;
	return 0;
}

/* What nix said a dry run would do, for the plan. */
static void record_dry_run(struct deploy *d, const char *said)
{
	struct nix_dry_run dr;
	nix_dry_run_parse(said, &dr);
	d->plan.build_known = 1;
	d->plan.build = dr.build;
	d->plan.fetch_here = dr.fetch;
	d->plan.download_mib = dr.download_mib;
}

static int build_local(struct deploy *d, const char *attr, int dry,
		       const char *link, struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int ret = 0, flags = 0;

	if (d->drv) {
		/* evaluated already (build_preflight): build it as it is */
		const struct strvec *b = &d->opt->nix_build;
		strvec_pushl(&argv, "nix-store", "--realise", d->drv, NULL);
		if (dry)
			strvec_push(&argv, "--dry-run");
		else if (!add_root_dir(d))
			/* a root of our own until the deploy ends: the result
			 * must not be collected before it is copied */
		{
			strvec_push(&argv, "--add-root");
			strvec_pushf(&argv, "%s/result", d->root_dir);
		}
		if (d->root_dir)
			strvec_push(&argv, "--indirect");	/* Nix 2.8 needs it; later ones ignore it */
		strvec_pushvec(&argv, &d->opt->nix_common);
		build_push_builders(&argv, b);
		if (strvec_find(b, "--print-build-logs") >= 0)
			flags |= NIX_RUN_LOGS;
	} else {
		int flake = d->src == SRC_FLAKE;
		if (flake) {
			nix_push_command(&argv, "build");
			strvec_pushl(&argv, attr, "--json", NULL);
		} else {
			strvec_pushl(&argv, "nix-build", d->file, "--attr", attr, NULL);
		}
		if (dry)
			strvec_push(&argv, "--dry-run");
		else if (link)
			strvec_pushl(&argv, "--out-link", link, NULL);
		else
			strvec_push(&argv, flake ? "--no-link" : "--no-out-link");
	}
	if (!d->drv)
		push_local_flags(d, &argv);
	int st = nix_run(&argv, &out, &err, flags, d->trace, d->warnings, e);
	if (st < 0) {
		ret = e->status;
	} else if (st) {
		ret = local_nix_fail("evaluating", attr, err.buf, e);
	} else if (dry) {
		record_dry_run(d, err.buf);
	} else {
		char *path;
		if (d->src == SRC_FLAKE && !d->drv) {
			path = nix_build_json_out(out.buf);
		} else if (d->drv && d->root_dir) {
			/* with --add-root, nix-store prints the root */
			char *root = xstrfmt("%s/result", d->root_dir), buf[4096];
			ssize_t n = readlink(root, buf, sizeof(buf) - 1);
			path = n > 0 ? xstrndup(buf, (size_t)n) : NULL;
			free(root);
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

/*
 * When the flake has no nixosConfigurations.NAME: the derivation of its
 * colmena hive's node NAME, as apply builds it. Returns 0 with *drv set,
 * 1 when the flake has no hive or the hive no such node (e untouched), or
 * the hive's evaluation error.
 */
static int hive_node_drv(struct deploy *d, char **drv, struct nrr_err *e)
{
	struct hive h = HIVE_INIT;
	struct hive_opts o = { .config = d->flake_ref, .verbose = d->trace };
	struct nrr_err quiet = { 0 };
	const struct hive_node *node;
	char *out = NULL;
	int ret = 1;

	if (hive_load(&h, &o, d->warnings, &quiet) ||
	    !(node = hive_node(&h, d->flake_name)))
		goto out;
	size_t sel = (size_t)(node - h.nodes);
	ret = hive_toplevels(&h, &o, &sel, 1, drv, &out, d->warnings, e);
	if (!ret)
		fprintf(stderr, "'%s' has no nixosConfigurations.%s: building its colmena hive's node '%s'\n",
			d->flake_ref, d->flake_name, d->flake_name);
	/* its activation began before its hive was known: keys go with apply */
	if (!ret && node->keys.nr)
		strvec_pushf(d->warnings, "node '%s' has deployment.keys: they are not uploaded this "
			     "way ('apply --on %s' uploads them)", d->flake_name, d->flake_name);
out:
	free(out);
	hive_release(&h);
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
		nix_push_command(&argv, "path-info");
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
	else if (st && d->src == SRC_FLAKE && *d->flake_name &&
		 strstr(err.buf, "does not provide attribute") &&
		 (ret = hive_node_drv(d, drv, e)) != 1)
		;	/* a hive's node of that name: its derivation or its error */
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

/*
 * The derivations' closure (drvs, dependencies first) to the build host,
 * through one nix-store --serve there: asked which it lacks (after its
 * substituters with -s) and sent those, registrations and NARs made here
 * (lib/serve.h). One session, its start overlapping the local listing,
 * where a query and an import were two sessions one after the other.
 */
static int copy_drvs(struct deploy *d, const struct strvec *drvs, struct nrr_err *e)
{
	const char *noargs[] = { NULL };
	struct strvec missing = STRVEC_INIT;
	struct closuredb db = CLOSUREDB_INIT;
	struct narexport_path *here = NULL;
	unsigned long long bytes = 0;
	struct session *s = &d->drv_serve;
	int ret;

	if (session_start(s, &d->build, NULL, script_serve, noargs, -1, e))
		return e->status;
	d->drv_serving = 1;
	ret = serve_query(s, NULL, "serve", drvs, d->opt->substitutes != 0, &missing, e);
	if (!ret && missing.nr) {
		if (d->trace)
			fprintf(stderr, "copying %zu of %zu paths from 'localhost' to '%s'\n",
				missing.nr, drvs->nr, d->build.name);
		/* (the whole closure: a registration's references must be in it) */
		if (!(ret = closuredb_load(&d->local, drvs, &db, e)) &&
		    closuredb_export_list(&db, &missing, &here))
			ret = nrr_fail(e, NRR_ECOPY, "copying to '%s' failed: this machine's "
				       "store has no registration of a path it listed",
				       d->build.name);
		if (!ret)
			ret = serve_import(s, NULL, &d->local, NULL, &missing, here, &bytes, e);
		closuredb_export_free(here, missing.nr);
		d->bytes_copied += bytes;
		if (!ret)
			d->paths_copied += missing.nr;
	}
	/* every path's answer is in: its end of input ends it, while the
	 * build starts (deploy_release waits for it) */
	if (!ret)
		session_hangup(s);
	closuredb_release(&db);
	strvec_clear(&missing);
	return ret;
}

static int build_remote(struct deploy *d, const char *attr, int dry,
			struct nrr_err *e)
{
	struct strvec drv_closure = STRVEC_INIT, args = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	char *drv = NULL;
	int ret;

	if (d->drv)
		drv = xstrdup(d->drv);
	else if ((ret = eval_drv(d, attr, &drv, e)))
		goto out;
	if ((ret = closure_of(&d->local, drv, &drv_closure, e)))
		goto out;
	strvec_pushl(&args, drv, dry ? "dry" : "build", NULL);
	struct nix_log log = {
		.render = strvec_find(&d->opt->nix_common, "--log-format") < 0,
		.logs = strvec_find(&d->opt->nix_build, "--print-build-logs") >= 0,
		.verbosity = d->opt->verbose,
	};
	if (log.render)
		strvec_pushl(&args, "--log-format", "internal-json", NULL);
	strvec_pushvec(&args, &d->opt->nix_common);
	/* the build's session starts with the derivations' copy, and waits
	 * for its "go": its start overlaps the copy's round trips */
	struct child c = CHILD_INIT;
	host_script_argv(&d->build, NULL, script_realise, args.v, &c);
	c.in = c.out = c.err = CHILD_PIPE;
	c.keep_stdin_open = 1;
	if (child_start(&c, e)) {
		ret = e->status;
		child_clear(&c);
		goto out;
	}
	if (!dry)
		deploy_export_ahead(d);
	if ((ret = copy_drvs(d, &drv_closure, e)) ||
	    fd_write_all(c.in_fd, "go\n", 3) < 0) {
		/* its stdin's end, and it ends without building */
		close(c.in_fd);
		c.in_fd = -1;
		struct capture none = CAPTURE_INIT;
		struct strbuf ignored = STRBUF_INIT;
		none.out = none.err = &ignored;
		child_capture(&c, &none, e);
		strbuf_release(&ignored);
		child_clear(&c);
		if (!ret)
			ret = nrr_fail(e, NRR_EBUILD, "cannot start the build on '%s'", d->build.name);
		goto out;
	}
	int st = nix_capture_log(&c, &log, &out, &err, e);
	child_clear(&c);
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
	} else if (dry) {
		record_dry_run(d, err.buf);
	} else {
		struct strvec lines = STRVEC_INIT;
		split_lines(out.buf, &lines);
		strvec_clear(&d->closure);
		free(d->closure_sizes);
		d->closure_sizes = NULL;
		int after = 0;
		for (size_t i = 0; i < lines.nr && !ret; i++) {
			if (!after && !strncmp(lines.v[i], "root ", 5)) {
				free(d->build_root);
				d->build_root = xstrdup(lines.v[i] + 5);
			} else if (strcmp(lines.v[i], "--") && !nix_store_path_valid(lines.v[i])) {
				char shown[256];
				ret = nrr_protocol(e, d->build.name, "its result is not a store "
						   "path: '%s'",
						   nrr_printable(shown, sizeof(shown), lines.v[i]));
			} else if (!strcmp(lines.v[i], "--"))
				after = 1;
			else if (after)
				strvec_push(&d->closure, lines.v[i]);
			else if (!d->toplevel)
				d->toplevel = xstrdup(lines.v[i]);
		}
		strvec_clear(&lines);
		if (!ret && !d->toplevel)
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
	struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, "nix-store", "--realise", d->toplevel,
		     "--add-root", link, "--indirect", NULL);
	int st = nix_capture(&argv, NULL, NULL);
	strvec_clear(&argv);
	if (st)
		return nrr_fail(e, NRR_EFAIL, "cannot create the link '%s'", link);
	return 0;
}

char *build_image_file(struct deploy *d, const char *tail)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	struct nrr_err e;
	char *attr = deploy_attr(d, tail), *file = NULL;

	if (d->src == SRC_FLAKE) {
		nix_push_command(&argv, "eval");
		strvec_pushf(&argv, "%s.passthru.filePath", attr);
		strvec_push(&argv, "--raw");
	} else {
		strvec_pushl(&argv, "nix-instantiate", "--eval", "--json", d->file, "--attr", NULL);
		strvec_pushf(&argv, "%s.passthru.filePath", attr);
	}
	/* the flags the system's own evaluation takes (eval_drv) */
	push_local_flags(d, &argv);
	if (d->src == SRC_CLASSIC)
		nix_drop_flag(&argv, "--no-build-output");
	if (!nix_run(&argv, &out, &err, NIX_RUN_QUIET, d->trace, d->warnings, &e)) {
		strbuf_rtrim(&out);
		/* classic: a JSON string, which a file name needs no escape in */
		if (d->src != SRC_FLAKE && out.len >= 2 && out.buf[0] == '"' &&
		    out.buf[out.len - 1] == '"' && !memchr(out.buf + 1, '\\', out.len - 2))
			file = xstrndup(out.buf + 1, out.len - 2);
		else if (d->src == SRC_FLAKE && out.len)
			file = xstrdup(out.buf);
	}
	/* a name inside the output, never a way out of it */
	if (file && (!*file || file[0] == '/' || strstr(file, "..") || strchr(file, '\n'))) {
		free(file);
		file = NULL;
	}
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	free(attr);
	return file;
}

int build_system(struct deploy *d, const char *tail, int dry,
		 const char *link, struct nrr_err *e)
{
	int ret;
	char *attr;

	if (d->src == SRC_STORE_PATH && !d->drv) {
		d->toplevel = xstrdup(d->opt->store_path);
		d->built_at = AT_LOCAL;
		/* dry-build's plan says itself when the path is not here yet */
		if (dry)
			return 0;
		/* a fleet's child: from the fleet's one query when it has it */
		if (d->opt->closure_db && !closuredb_read(d->opt->closure_db, &d->db) &&
		    !closuredb_select(&d->db, d->toplevel, &d->closure, &d->closure_sizes))
			return 0;
		return closure_of(&d->local, d->toplevel, &d->closure, e);
	}
	/* --store-path DRV: built as an evaluated configuration is */
	attr = d->src == SRC_STORE_PATH ? xstrdup(d->drv) : deploy_attr(d, tail);
	if (d->build_remote) {
		ret = build_remote(d, attr, dry, e);
		if (!ret && !dry && link && !d->target_remote) {
			/* the result is wanted here: bring it home */
			if (!(ret = deploy_copy(d, e)))
				ret = add_result_link(d, link, e);
		}
	} else {
		ret = build_local(d, attr, dry, d->drv ? NULL : link, e);
		if (!ret && !dry && d->drv && link)
			ret = add_result_link(d, link, e);
		if (!ret && !dry)
			ret = closure_of(&d->local, d->toplevel, &d->closure, e);
	}
	free(attr);
	return ret;
}

/* A setting's value as text (a list joined by spaces), malloc'ed or NULL. */
/* 1 if this machine can build for system: its own, an extra platform, or a
 * remote builder (nix.conf's or --builders). */
static int can_build_here(const struct deploy *d, const char *system)
{
	struct strbuf json = STRBUF_INIT;
	struct nix_settings ns;
	struct nrr_err ignored;
	char *builders;
	int yes = 0;

	nix_settings_init(&ns);
	if (!nix_local_config(&json))
		nix_settings_from_json(&ns, json.buf, json.len, &ignored);
	builders = ns.builders ? xstrdup(ns.builders) : NULL;
	for (size_t i = 0; i + 1 < d->opt->nix_build.nr; i++)
		if (!strcmp(d->opt->nix_build.v[i], "--builders")) {
			free(builders);
			builders = xstrdup(d->opt->nix_build.v[i + 1]);
		}
	if (builders && builders[0] == '@') {
		/* "@FILE": the machines file */
		struct strbuf text = STRBUF_INIT;
		strbuf_read_file(&text, builders + 1);
		free(builders);
		builders = strbuf_detach(&text);
	}
	yes = (ns.system && !strcmp(ns.system, system)) ||
	      strvec_find(&ns.extra_platforms, system) >= 0 ||
	      (builders && platform_builders_have(builders, system));
	free(builders);
	nix_settings_release(&ns);
	strbuf_release(&json);
	return yes;
}

/* 1 if realising drv here would build something (rather than find or
 * substitute everything). */
static int would_build(const char *drv)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf err = STRBUF_INIT;
	strvec_pushl(&argv, "nix-store", "--realise", "--dry-run", drv, NULL);
	nix_capture(&argv, NULL, &err);
	strvec_clear(&argv);
	int yes = strstr(err.buf, "will be built") != NULL;
	strbuf_release(&err);
	return yes;
}

int build_preflight(struct deploy *d, const char *tail, struct nrr_err *e)
{
	struct utsname u;
	char here[64], there[64], drvsys[64];
	struct strbuf text = STRBUF_INIT;
	int ret = 0;

	if (d->src == SRC_STORE_PATH || d->build_remote || !d->target_remote ||
	    !d->as.machine[0] || d->opt->no_validate || uname(&u))
		return 0;
	platform_of_machine_order(u.machine, __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
				  here, sizeof(here));
	platform_of_machine(d->as.machine, there, sizeof(there));
	if (!strcmp(here, there))
		return 0;	/* the common case costs nothing */
	char *attr = deploy_attr(d, tail);
	if (!d->drv && (ret = eval_drv(d, attr, &d->drv, e)))
		goto out;
	strbuf_read_file(&text, d->drv);
	if (platform_drv_system(text.buf, text.len, drvsys, sizeof(drvsys)) ||
	    !strcmp(drvsys, here) || can_build_here(d, drvsys) || !would_build(d->drv))
		goto out;
	ret = nrr_fail(e, NRR_ECHECK,
		       "cannot build '%s' for '%s' (%s): its derivations are for %s, which this machine (%s) "
		       "cannot build, no builder is set up for, and no binary cache has",
		       d->src == SRC_FLAKE && d->flake_name ? d->flake_name : attr,
		       d->target.name, there, drvsys, here);
	nrr_hint(e, "build on a %s machine (--build-host, which may be the target itself), "
		 "add one to --builders, or cross-compile (nixpkgs.buildPlatform = \"%s\")",
		 drvsys, here);
out:
	free(attr);
	strbuf_release(&text);
	return ret;
}

int build_evaluate(struct deploy *d, const char *tail, struct nrr_err *e)
{
	if (d->src == SRC_STORE_PATH || d->drv)
		return 0;
	char *attr = deploy_attr(d, tail);
	int ret = eval_drv(d, attr, &d->drv, e);
	free(attr);
	return ret;
}
