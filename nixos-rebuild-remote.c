/*
 * nixos-rebuild-remote: nixos-rebuild for other machines.
 *
 * main() owns the run: it parses the command line, asks for a password
 * when told to, runs the action through lib/, and is the only place that
 * prints errors and decides the exit status (see lib/error.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/action.h"
#include "lib/activate.h"
#include "lib/build.h"
#include "lib/fiber.h"
#include "lib/colmena.h"
#include "lib/profileguard.h"
#include "lib/complete.h"
#include "lib/deploy.h"
#include "lib/deploykeys.h"
#include "lib/deployplan.h"
#include "lib/fleet.h"
#include "lib/fleetproto.h"
#include "lib/fleetview.h"
#include "lib/generations.h"
#include "lib/nix.h"
#include "lib/options.h"
#include "lib/diffshow.h"
#include "lib/editrepl.h"
#include "lib/pkgdiff.h"
#include "lib/prompt.h"
#include "lib/pushto.h"
#include "lib/reboot.h"
#include "lib/rollback.h"
#include "lib/report.h"
#include "lib/run.h"

#ifndef NRR_VERSION
#define NRR_VERSION "0.1.0"
#endif

#define TOPLEVEL "config.system.build.toplevel"

/* The run's context: everything main's helpers share. */
struct run {
	struct options opt;
	struct strvec warnings;
	struct deploy d;
	char *password;		/* sodium_malloc'ed, wiped at exit */
	struct nrr_err err;
	struct cJSON *diff;	/* the target's diff, for the --json report */
	double started;		/* fleet_now() at start: a fleet's timeline's 0 */
};

/* OpenSSH's sanitise_stdfd: never let a file we open become fd 0-2. */
static void sanitise_stdfd(void)
{
	int fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd <= 2)
		fd = dup(fd);
	if (fd > 2)
		close(fd);
}

static void flush_warnings(struct strvec *w)
{
	char line[2048];

	/* some quote a host's words */
	for (size_t i = 0; i < w->nr; i++)
		fprintf(stderr, "warning: %s\n", nrr_one_line_of(line, sizeof(line), w->v[i]));
	strvec_clear(w);
}

/*
 * Shows a run's failure (nothing for 0) and returns its exit status: a
 * signal's 128 + N when one stopped it, whatever the failure it caused.
 */
static int show_failure(struct run *r, int ret)
{
	if (!ret)
		return 0;
	if (run_interrupted())
		ret = 128 + run_interrupted();
	if (run_interrupted() && !strncmp(r->err.msg, "interrupted", 11))
		fprintf(stderr, "error: %s\n", r->err.msg);	/* says it already */
	else if (run_interrupted())
		fprintf(stderr, "error: interrupted%s%s\n", r->err.msg[0] ? ": " : "", r->err.msg);
	else
		fprintf(stderr, "error: %s\n", r->err.msg[0] ? r->err.msg : "failed");
	if (r->err.hint[0] && !run_interrupted())
		fprintf(stderr, "hint: %s\n", r->err.hint);
	return ret;
}

/* -S: the password, asked once for the whole run (lib/prompt.h). */
static int ask_password(struct run *r, const char *host)
{
	int st = prompt_password(host, &r->password);

	if (st == PROMPT_INTERRUPTED || run_interrupted()) {
		if (r->password)
			sodium_free(r->password);	/* wipes it */
		r->password = NULL;
		return nrr_fail(&r->err, NRR_EINT, "interrupted at the password prompt");
	}
	if (st == PROMPT_NONE)
		return nrr_fail(&r->err, NRR_EUSAGE, "--ask-elevate-password: no terminal to ask "
				"on, and no password on standard input");
	return 0;
}

/*
 * A fleet's child shows nothing itself: its diff goes to the fleet, as
 * "say" lines of text and one "diff" line of JSON, and with --ask it asks
 * the fleet ("ask"), which asks the user once for every host and answers
 * on the child's stdin. Returns 1 to activate.
 */
static int fleet_child_diff(struct run *r, const struct strbuf *text,
			    const struct pkgdiff *pd)
{
	int fd = r->opt.progress_fd;
	cJSON *j = diffshow_json(pd);

	fleetproto_say(fd, text->buf);
	fleetproto_diff(fd, j);
	cJSON_Delete(j);
	if (!r->opt.ask || r->opt.yes)
		return 1;
	fleetproto_ask(fd);
	return prompt_read_yes(0);
}

/* Shows a target's diff; with --ask, asks whether to activate there. */
static int show_diff(void *data, const char *host, const struct pkgdiff *pd)
{
	struct run *r = data;
	struct strbuf sb = STRBUF_INIT;
	const char *nc = getenv("NO_COLOR");
	int child = r->opt.progress_fd >= 0;
	int color = !child && isatty(fiber_std_fd(2)) && !(nc && *nc);
	int yes = 1;

	strbuf_addf(&sb, "%s%s%s:\n", color ? "\033[1m" : "", host,
		    color ? "\033[0m" : "");
	diffshow_format(&sb, pd, color ? DIFFSHOW_COLOR : 0);
	if (r->d.paths_copied) {
		strbuf_addf(&sb, "This run copied %zu paths (", r->d.paths_copied);
		diffshow_size(&sb, (int64_t)r->d.bytes_copied, 0);
		strbuf_addstr(&sb, ").\n");
	}
	if (child) {
		yes = fleet_child_diff(r, &sb, pd);
		strbuf_release(&sb);
		return yes;
	}
	fputs(sb.buf, stderr);
	strbuf_release(&sb);
	if (r->opt.json && !r->diff)
		r->diff = diffshow_json(pd);
	if (r->opt.ask && !r->opt.yes)
		yes = prompt_yes("Activate on %s? [y/N] ", host);
	return yes;
}

/* Whether the run's action has every one of the AN_* bits. */
static int needs(const struct run *r, unsigned bits)
{
	return options_needs(&r->opt, bits);
}

static int action_list_generations(struct run *r)
{
	return rollback_list(&r->d, &r->opt, &r->err);
}

static const char *build_tail(struct run *r, char *buf, size_t size)
{
	const char *attr = r->opt.act->attr;
	if (!attr)
		return TOPLEVEL;
	if (!needs(r, AN_IMAGE_VARIANT))
		return attr;
	snprintf(buf, size, "%s.%s", attr, r->opt.image_variant);
	return buf;
}

/* --upgrade(-all): the root user's channels, before a classic build. */
#define ROOT_CHANNELS "/nix/var/nix/profiles/per-user/root/channels"
static int upgrade_channels(struct run *r)
{
	/* root's channels build the system: a user's own are not them */
	if (getuid() != 0 && r->opt.elevate != ELEVATE_SUDO) {
		nrr_fail(&r->err, NRR_EUSAGE, "--upgrade updates root's channels: run as root, or add --sudo");
		return r->err.status;
	}
	return nix_channel_update(ROOT_CHANNELS, r->opt.upgrade_all, getuid() != 0, &r->warnings,
				  &r->err);
}

/* --push-to: the closure once to the cache (dry: only the cache's plan). */
static int push_closure(struct run *r, int dry)
{
	struct strvec tops = STRVEC_INIT, closure = STRVEC_INIT;
	unsigned long long relayed = 0;
	int ret;

	strvec_push(&tops, r->d.toplevel);
	/* the build listed it here already: no second nix-store for it */
	if (!r->d.build_remote)
		strvec_pushvec(&closure, &r->d.closure);
	deploy_phase(&r->d, "push");
	if (r->d.build_remote && !dry)
		ret = pushto_push_built(&r->opt, &r->d.ssh, &r->d.build, r->d.toplevel, &relayed,
					&r->err);
	else
		ret = pushto_push(&r->opt, &tops, dry, &closure, NULL, r->d.warnings, &relayed,
				  &r->err);
	strvec_clear(&tops);
	strvec_clear(&closure);
	return ret;
}

/*
 * dry-build --target-host: each route's plan for the target, when the
 * system is built here already (else what it holds is not known yet).
 */
static int plan_target(struct run *r, const char *tail)
{
	struct deploy *d = &r->d;
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT;
	struct nrr_err ignored;
	int ret = 0;

	if (!d->toplevel) {
		if ((ret = build_evaluate(d, tail, &r->err)))
			goto out;
		strvec_pushl(&argv, "nix-store", "--query", "--outputs", d->drv, NULL);
		if (!nix_capture(&argv, &out, NULL)) {
			strbuf_rtrim(&out);
			if (out.len && !strchr(out.buf, '\n'))
				d->toplevel = strbuf_detach(&out);
		}
	}
	if (!d->toplevel || closure_of(&d->local, d->toplevel, &d->closure, &ignored)) {
		deploy_say_plan(d, "not known until the system is built here "
				"(build it, then dry-build again)");
		goto out;
	}
	if (r->opt.push_to && (ret = push_closure(r, 1)))
		goto out;
	ret = deploy_connect(d, 1, 0, &r->err);
	if (ret == NRR_ECONNECT) {
		/* a dry run says what it can: nixos-rebuild's never connects
		 * (the message is one line already: nrr_fail made it) */
		deploy_say_plan(d, "not known: %s", r->err.msg);
		nrr_err_clear(&r->err);
		ret = 0;
	} else if (!ret) {
		ret = deploy_plan_target(d, &r->err);
	}
out:
	strvec_clear(&argv);
	strbuf_release(&out);
	return ret;
}

/*
 * --reboot: the activation's session (and its lock) ends first, as the
 * reboot takes it down; then reboot_host proves the new boot id and that
 * the new system runs. Returns 0 or its error (NRR_EREBOOT: not back).
 */
static int reboot_after(struct deploy *d, int timeout, struct nrr_err *e)
{
	struct reboot_opts ro = { .timeout = timeout, .expect = d->toplevel };
	struct reboot_result rr;
	int ret;

	memset(&rr, 0, sizeof(rr));
	if (d->locked) {
		activation_end(&d->as);
		d->locked = 0;
	}
	deploy_phase(d, "reboot");
	ret = reboot_host(&d->target, &d->elev, &ro, &rr, e);
	if (!ret)
		fprintf(stderr, "rebooted: '%s' is back (boot id %s) running %s\n",
			d->target.name, rr.new_boot_id, rr.system ? rr.system : d->toplevel);
	reboot_result_release(&rr);
	/* colmena's order: post-activation keys once it is back */
	return ret ? ret : deploy_keys_after_reboot(d, e);
}

/*
 * Before anything reaches the target, after a wait (the fleet's go, the
 * build): its lock went with its connection if its master ended, and
 * nothing may go on (a command through the master's socket would connect
 * anew, and unlocked). Returns 0, or NRR_ECONNECT with e filled.
 */
static int target_lost(struct run *r, const char *whilst, struct nrr_err *e)
{
	struct ssh_host *sh = r->d.target_remote ? r->d.target.ssh : NULL;
	char why[sizeof(e->hint) + 4] = "";

	if (!sh || ssh_host_alive(sh))
		return 0;
	ssh_host_lost(sh, whilst, e);
	if (ssh_host_killed(sh)) {
		ssh_hint_killed(sh, e);
		snprintf(why, sizeof(why), " (%s)", e->hint);
	}
	nrr_hint(e, "nothing was changed there; deploy it again%s", why);
	return NRR_ECONNECT;
}

/*
 * A fleet's child waits, connected and locked, for the fleet's go on stdin
 * (the fleet built its system, or pushed it to the cache). Returns 0, or
 * NRR_ENOSTART when the fleet says no.
 */
static int wait_for_go(void *data, struct nrr_err *e)
{
	struct run *r = data;
	char *key;

	deploy_phase(&r->d, "ready");
	if (!prompt_read_go(0, &key))
		return nrr_fail(e, NRR_ENOSTART,
				"not deployed: the fleet's build or push did not finish");
	if (target_lost(r, " while waiting for the fleet", e)) {
		free(key);
		return NRR_ECONNECT;
	}
	if (key && r->opt.cache_url) {
		/* the key its push learned, which this target must trust */
		free(r->opt.cache_key_buf);
		r->opt.cache_key = r->opt.cache_key_buf = key;
	} else {
		free(key);
	}
	return 0;
}

static int do_build_and_activate(struct run *r)
{
	struct deploy *d = &r->d;
	int dry = needs(r, AN_DRY);
	int activating = needs(r, AN_ACTIVATES);
	/* ./result: what is built here, or copied here from a build host
	 * (nixos-rebuild links it for `build --target-host` too) */
	int local_result = (!d->target_remote || !d->build_remote) && needs(r, AN_RESULT);
	const char *link = local_result && !r->opt.no_build_output ? "result" : NULL;
	char tailbuf[256];
	int ret;

	if (r->opt.image_variant && strpbrk(r->opt.image_variant, "\"\\$ ."))
		return nrr_fail(&r->err, NRR_EUSAGE, "refusing image variant '%s'",
				r->opt.image_variant);
	if (r->opt.upgrade && d->src == SRC_CLASSIC && (ret = upgrade_channels(r)))
		return ret;
	int need_target = d->target_remote && !dry;
	const char *tail = build_tail(r, tailbuf, sizeof(tailbuf));
	if ((ret = deploy_connect_start(d, need_target, 1, &r->err)))
		return ret;
	/* While the handshakes go on, evaluate: the derivation is what a
	 * build host builds, and what a remote target's system is built from
	 * here (unless the configuration's name is the target's to say) */
	if (!dry && (d->build_remote || (activating && d->target_remote)) &&
	    (d->src != SRC_FLAKE || *d->flake_name) &&
	    (ret = build_evaluate(d, tail, &r->err))) {
		struct nrr_err ignored;
		deploy_connect_wait(d, need_target, 1, &ignored);
		return ret;
	}
	/* on a build host, the build needs nothing of the lock's answer (what
	 * the target runs, its machine): it goes on while the answer comes,
	 * read before anything reaches the target */
	int lock_later = d->build_remote && !r->opt.profile_guard && !r->opt.wait_go &&
			 !r->opt.wait_push;
	if ((ret = deploy_connect_wait(d, need_target, 1, &r->err)) ||
	    (activating && lock_later && (ret = deploy_lock_start(d, &r->err))) ||
	    (activating && !lock_later && (ret = deploy_lock(d, &r->err))) ||
	    /* replaceUnknownProfiles = false: the lock's answer says what runs */
	    (activating && r->opt.profile_guard &&
	     (ret = profile_guard_check(d->target.name, d->as.current, r->opt.profile_guard == 2,
					&r->warnings, &r->err))) ||
	    (ret = deploy_default_name(d, &r->err)))
		return ret;
	/* a fleet's child started while the fleet still builds: connected
	 * and holding the lock, it goes on once the systems are there */
	if (r->opt.wait_go && (ret = wait_for_go(r, &r->err)))
		return ret;
	if (r->opt.wait_push && activating) {
		/* built: the target says what it lacks while the push goes on,
		 * and the activation waits for it after that (deploy.h) */
		d->hold = wait_for_go;
		d->hold_data = r;
	} else if (r->opt.wait_push && (ret = wait_for_go(r, &r->err))) {
		return ret;
	}
	d->want_plan = needs(r, AN_PLAN);
	if ((activating && (ret = build_preflight(d, tail, &r->err))) ||
	    (ret = build_system(d, tail, dry, link, &r->err)) ||
	    /* a build takes its time: a target lost meanwhile is said so,
	     * not found by the copy */
	    (!dry && (ret = target_lost(r, " while building", &r->err))))
		return ret;
	if (dry) {
		const struct deploy_plan *p = &d->plan;
		if (p->build_known)
			fprintf(stderr, "plan: %zu derivations to build %s%s%s, %zu paths to fetch (%.1f MiB download)\n",
				p->build, d->build_remote ? "on '" : "here",
				d->build_remote ? d->build.name : "", d->build_remote ? "'" : "",
				p->fetch_here, p->download_mib);
		if (d->target_remote && !d->build_remote && (ret = plan_target(r, tail)))
			return ret;
		if (r->opt.json)
			report_json(&r->d, r->opt.action, 0, NULL, &r->diff);
		return 0;
	}
	if (activating && r->opt.push_to && (ret = push_closure(r, 0)))
		return ret;
	if (!activating && d->target_remote && (ret = deploy_copy(d, &r->err)))
		return ret;
	if (activating) {
		char *profile = profile_path(r->opt.profile_name);
		struct activation a = {
			.action = r->opt.action,
			.toplevel = d->toplevel,
			.profile = profile,
			.specialisation = r->opt.specialisation,
			.install_bootloader = r->opt.install_bootloader,
			.diff = r->opt.diff == 1 || (r->opt.diff < 0 && isatty(fiber_std_fd(2))) ||
				r->opt.ask || (r->opt.json && r->opt.diff != 0),
			.ask = r->opt.ask,
			.on_diff = show_diff,
			.on_diff_data = r,
			.no_validate = r->opt.no_validate,
			.op = needs(r, AN_SETS_PROFILE) ? PROFILE_SET : PROFILE_KEEP,
			.confirm_seconds = r->opt.confirm_timeout,
		};
		deploy_keys_activation(d, &a, r->opt.reboot);
		ret = deploy_activate(d, &a, &r->err);
		free(profile);
		if (!ret && r->opt.reboot)
			ret = reboot_after(d, r->opt.reboot_timeout, &r->err);
		if (ret)
			return ret;
	}
	if (needs(r, AN_VM)) {
		/* as nixos-rebuild: the sentence on stderr, the script that
		 * starts the VM on stdout, for $(...) */
		char *pat = xstrfmt("%s/bin/run-*-vm", d->toplevel);
		glob_t g;
		int found = !glob(pat, 0, NULL, &g) && g.gl_pathc;
		fputs("Done. The virtual machine can be started by running ", stderr);
		fflush(stderr);
		printf("%s\n", found ? g.gl_pathv[0] : pat);
		if (found)
			globfree(&g);
		free(pat);
		return 0;
	}
	if (needs(r, AN_IMAGE_VARIANT)) {
		/* as nixos-rebuild: the image file itself on stdout */
		char *file = build_image_file(d, tail);
		fputs("Done. The disk image can be found in ", stderr);
		fflush(stderr);
		printf("%s%s%s\n", d->toplevel, file ? "/" : "", file ? file : "");
		free(file);
		return 0;
	}
	if (!r->opt.act->attr)
		fprintf(stderr, "Done. The new configuration is %s\n", d->toplevel);
	if (r->opt.json && activating) {
		report_json(&r->d, r->opt.action, 0, NULL, &r->diff);
		return 0;
	}
	printf("%s\n", d->toplevel);
	return 0;
}

static int action_edit(struct run *r)
{
	return config_edit(&r->d, &r->err);
}

static int action_repl(struct run *r)
{
	return config_repl(&r->d, &r->err);
}

/* Every action that builds (or, with --rollback, goes back to) a system. */
static int action_deploy(struct run *r)
{
	if (r->opt.rollback)
		return rollback_run(&r->d, &r->opt, &r->err);
	return do_build_and_activate(r);
}

/* action_table[]'s dispatch functions, row by row (see lib/action.h). */
typedef int action_fn(struct run *r);
#define RUN(fn, name, needs, attr, help) action_##fn,
static action_fn *const action_run[] = { NRR_ACTIONS(RUN) };
#undef RUN

/* A fleet's child reads the password its parent asked for from fd. */
static int read_password_fd(struct run *r, int fd)
{
	size_t n = 0;
	char c;

	fd = fiber_std_fd(fd);	/* 0: a fiber's stdin is its own */
	if (sodium_init() < 0 || !(r->password = sodium_malloc(1024)))
		return nrr_fail(&r->err, NRR_EFAIL, "cannot hold the password in guarded memory");
	while (n < 1023 && !fiber_wait_readable(fd) && read(fd, &c, 1) == 1 && c != '\n')
		r->password[n++] = c;
	r->password[n] = '\0';
	return 0;
}

/* The hive's build as the fleet's prepare, in *prep, or NULL when its
 * systems are built already. */
static const struct fleet_prepare *hive_build(struct colmena_deploy *plan,
					      struct fleet_prepare *prep)
{
	*prep = (struct fleet_prepare){ colmena_build_run, &plan->build, NULL, &plan->build.closure };
	return plan->build.argv.nr ? prep : NULL;
}

/* --on RULES with @tags on a flake that has a hive: its nodes, built as
 * `apply ACTION` builds them, deployed with this command line's options. */
static int hive_fleet(struct run *r)
{
	struct colmena_deploy plan;
	struct fleet_prepare prep;
	int ret;

	colmena_deploy_init(&plan);
	ret = colmena_tag_plan(&r->opt, &plan, &r->warnings, &r->err);
	if (!ret && plan.n)
		ret = fleet_deploy(&r->opt, plan.members, plan.n, r->password,
				   hive_build(&plan, &prep), r->started, &r->warnings, &r->err);
	colmena_deploy_release(&plan);
	return ret;
}

static int dispatch(struct run *r)
{
	int ret;

	/* a fleet's child asks through its fleet, which checked the terminal */
	if (r->opt.ask && !r->opt.yes && r->opt.progress_fd < 0) {
		int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return nrr_fail(&r->err, NRR_EUSAGE,
					"--ask needs a terminal to ask on (add --yes to go ahead without one)");
		close(fd);
	}
	if (r->opt.on) {
		flush_warnings(&r->warnings);
		if (r->opt.ask_password && r->opt.elevate != ELEVATE_NONE &&
		    (ret = ask_password(r, r->opt.target_user ? r->opt.target_user : "the fleet")))
			return ret;
		if (r->opt.flake && colmena_on_has_tag(r->opt.on))
			return hive_fleet(r);
		return fleet_run(&r->opt, r->password, &r->warnings, &r->err);
	}
	if (r->opt.password_fd >= 0 && (ret = read_password_fd(r, r->opt.password_fd)))
		return ret;
	/* a hive node's keys follow the password; read, and their contents
	 * loaded, before anything touches the host */
	if (r->opt.keys_fd >= 0 && (ret = deploy_keys_receive(&r->d, r->opt.keys_fd, &r->err)))
		return ret;

	if ((ret = deploy_setup(&r->d, &r->err)))
		return ret;
	flush_warnings(&r->warnings);
	if (r->password) {
		r->d.elev.password = r->password;
	} else if (r->opt.ask_password && r->opt.elevate != ELEVATE_NONE &&
		   needs(r, AN_PASSWORD)) {
		if ((ret = ask_password(r, r->opt.target_host ? r->opt.target_host
							     : "localhost")))
			return ret;
		r->d.elev.password = r->password;
	}
	if (r->opt.keys_only)
		return deploy_keys_only(&r->d, &r->err);
	return action_run[r->opt.act - action_table](r);
}

/* apply's deploy goals: the hive's nodes, built by colmena_main, go
 * through the fleet with the options plan->argv says. */
static int colmena_fleet(struct run *r, struct colmena_deploy *plan)
{
	struct fleet_prepare prep;
	int ret = options_parse(&r->opt, (int)plan->argv.nr,
				(const char *const *)plan->argv.v, &r->err);

	strvec_pushvec(&r->warnings, &r->opt.warnings);
	if (ret)
		return ret;
	flush_warnings(&r->warnings);
	if (r->opt.ask_password && r->opt.elevate != ELEVATE_NONE &&
	    (ret = ask_password(r, "the nodes' target users")))
		return ret;
	return fleet_deploy(&r->opt, plan->members, plan->n, r->password,
			    hive_build(plan, &prep), r->started, &r->warnings, &r->err);
}

/* Deploys as r->opt says once it is read, and reports the result;
 * returns the exit status. */
static int deploy_and_report(struct run *r, struct colmena_deploy *plan)
{
	int ret;

	deploy_init(&r->d, &r->opt, &r->warnings);
	r->d.trace = r->opt.verbose > 0 || r->opt.debug;
	r->d.progress_fd = r->opt.progress_fd;
	ret = plan->keys ? deploy_keys_take(&r->d, plan->keys, plan->keys_node, &r->err) : 0;
	if (!ret)
		ret = dispatch(r);
	if (r->opt.progress_fd >= 0) {
		/* a fleet's child: its fleet shows them under its name */
		for (size_t i = 0; i < r->warnings.nr; i++)
			fleetproto_warn(r->opt.progress_fd, r->warnings.v[i]);
		report_child_result(&r->d, r->opt.progress_fd,
				     run_interrupted() && ret ? 128 + run_interrupted() : ret,
				     r->err.msg);
	}
	/* a failed deploy is reported too: scripts read stdout either way */
	if (ret && r->opt.json && !r->opt.on && !r->opt.rollback &&
	    needs(r, AN_REPORT))
		report_json(&r->d, r->opt.action, ret, r->err.msg, &r->diff);
	flush_warnings(&r->warnings);
	ret = show_failure(r, ret);
	deploy_release(&r->d);
	return ret;
}

static void run_init(struct run *r, struct colmena_deploy *plan)
{
	colmena_deploy_init(plan);
	memset(r, 0, sizeof(*r));
	r->started = fleet_now();
	options_init(&r->opt);
	strvec_init(&r->warnings);
}

static void run_release(struct run *r, struct colmena_deploy *plan)
{
	colmena_deploy_release(plan);
	flush_warnings(&r->warnings);
	if (r->password)
		sodium_free(r->password);	/* wipes it */
	cJSON_Delete(r->diff);
	options_release(&r->opt);
}

/* Says why options_parse refused the command line. */
static void show_usage_error(const struct run *r)
{
	fprintf(stderr, "error: %s\n", r->err.msg);
	fputs("hint: see 'nixos-rebuild-remote --help'\n", stderr);
}

/* A fleet's host, in a fiber of the fleet's process (lib/fiber.h): what
 * main does for the child it would otherwise start for it, same argv. */
static int host_main(int argc, const char *const *argv)
{
	struct run r;
	struct colmena_deploy plan;
	int ret;

	run_init(&r, &plan);
	ret = options_parse(&r.opt, argc, argv, &r.err);
	strvec_pushvec(&r.warnings, &r.opt.warnings);
	if (ret)
		show_usage_error(&r);
	else
		ret = deploy_and_report(&r, &plan);
	run_release(&r, &plan);
	return ret;
}

int main(int argc, char **argv)
{
	struct run r;
	struct colmena_deploy plan;	/* kept to the end: apply-local's argv */
	int ret;

	sanitise_stdfd();
	/* no sodium_init() here: each use of libsodium that needs it calls it
	 * (its CPU probe traps to the hypervisor of a VM: a tenth of a fleet
	 * host's child, which needs none of it without a password or keys) */
	run_init(&r, &plan);
	r.opt.host_main = host_main;
	/* colmena's commands (build, eval, ...) have options of their own */
	if (argc > 1 && colmena_is_command(argv[1])) {
		run_signals_install();
		ret = colmena_main(argc - 1, (const char *const *)argv + 1, &r.warnings, &plan,
				   &r.err);
		if (!ret && plan.n)
			ret = colmena_fleet(&r, &plan);
		if (!ret && plan.eval_failed.status) {
			/* -k: the nodes that failed evaluation are failed nodes */
			r.err = plan.eval_failed;
			ret = NRR_EFLEET;
		}
		if (!ret && plan.local) {
			/* apply-local: the node's system, deployed here as an action */
			ret = options_parse(&r.opt, (int)plan.argv.nr,
					    (const char *const *)plan.argv.v, &r.err);
			strvec_pushvec(&r.warnings, &r.opt.warnings);
			if (!ret) {
				ret = deploy_and_report(&r, &plan);
				goto done;
			}
		}
		ret = show_failure(&r, ret);
		goto done;
	}
	ret = options_parse(&r.opt, argc, (const char *const *)argv, &r.err);
	strvec_pushvec(&r.warnings, &r.opt.warnings);
	if (ret) {
		show_usage_error(&r);
		goto done;
	}
	if (r.opt.complete) {
		ret = complete_print(r.opt.complete, &r.err);
		if (ret)
			fprintf(stderr, "error: %s\n", r.err.msg);
		goto done;
	}
	if (r.opt.version) {
		printf("nixos-rebuild-remote %s\n", NRR_VERSION);
		goto done;
	}
	if (r.opt.help || !r.opt.action) {
		options_print_help(stdout);
		goto done;
	}
	run_signals_install();
	ret = deploy_and_report(&r, &plan);
done:
	run_release(&r, &plan);
	return ret;
}
