#define _GNU_SOURCE
#include "deploy.h"
#include "action.h"
#include "activate.h"
#include "deployplan.h"
#include "fiber.h"
#include "fleetproto.h"
#include "nix.h"
#include "progress.h"
#include "quote.h"
#include "scripts.h"
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOPLEVEL "config.system.build.toplevel"

void deploy_init(struct deploy *d, struct options *opt, struct strvec *warnings)
{
	memset(d, 0, sizeof(*d));
	d->opt = opt;
	d->warnings = warnings;
	strvec_init(&d->closure);
	strvec_init(&d->elev.sudo_opts);
	child_init(&d->target_ssh.master_proc);
	child_init(&d->build_ssh.master_proc);
	child_init(&d->unroot);
	child_init(&d->export);
	d->local.name = "localhost";
	d->progress_fd = -1;
	d->local.ctx = &d->ssh;
}

/* Starts unroot.sh on the build host for d->build_root, as d->unroot
 * (not waited for). 0, or -1 when it could not start. */
static int unroot_start(struct deploy *d)
{
	const char *args[] = { d->build_root, NULL };
	struct nrr_err ignored;

	child_clear(&d->unroot);
	child_init(&d->unroot);
	host_script_argv(&d->build, NULL, script_unroot, args, &d->unroot);
	d->unroot.in = d->unroot.out = d->unroot.err = CHILD_NULL;
	return child_start(&d->unroot, &ignored);
}

void deploy_release(struct deploy *d)
{
	/* the conversation hung up now and waited for once the target's
	 * master is gone: the script's end (the lock's release) then costs no
	 * round trip of ours (the next run's handshake takes several) */
	int talking = d->locked || d->lock_pending;
	if (talking)
		session_hangup(&d->as.s);
	closure_export_cancel(&d->export);
	keyset_release(&d->keys);
	if (d->drv_serving)
		session_release(&d->drv_serve);
	/* the build host's GC root pins a whole system: it goes now,
	 * interrupted or not (best effort: the link may be gone). Started
	 * early, it is done by now; gone with an interrupt: once more */
	if (d->build_root && (d->unroot.pid <= 0 || child_wait(&d->unroot) != 0) &&
	    !unroot_start(d))
		child_wait(&d->unroot);
	child_clear(&d->unroot);
	free(d->build_root);
	if (d->build_remote && !d->build_on_target)
		ssh_host_release(&d->ssh, &d->build_ssh);
	if (d->target_remote)
		ssh_host_release(&d->ssh, &d->target_ssh);
	if (talking)
		activation_end(&d->as);
	ssh_ctx_release(&d->ssh);
	strvec_clear(&d->elev.sudo_opts);
	strvec_clear(&d->closure);
	free(d->closure_sizes);
	closuredb_release(&d->db);
	free(d->flake_ref);
	free(d->flake_name);
	free(d->etc_flake);
	free(d->toplevel);
	free(d->drv);
	if (d->root_dir) {
		char *root = xstrfmt("%s/result", d->root_dir);
		unlink(root);
		rmdir(d->root_dir);
		free(root);
		free(d->root_dir);
	}
}

void deploy_phase(struct deploy *d, const char *phase)
{
	fleetproto_phase(d->progress_fd, phase);
}

/* "localhost" and this machine's own names mean: build here. */
static int names_this_machine(const char *spec)
{
	const char *at = strrchr(spec, '@');
	const char *h = at ? at + 1 : spec;
	char me[256];

	if (!strcmp(h, "localhost") || !strcmp(h, "127.0.0.1") || !strcmp(h, "::1"))
		return 1;
	if (gethostname(me, sizeof(me)))
		return 0;
	me[sizeof(me) - 1] = '\0';
	if (!strcmp(h, me))
		return 1;
	size_t n = strcspn(me, ".");
	return strlen(h) == n && !strncmp(h, me, n);
}

/* The closure is sent within the deploy's conversation (lib/serve.h),
 * not by the build host, the cache route or after a plan of the target's
 * caches (auto). */
static int copies_in_conversation(const struct options *o)
{
	return !o->copy_direct && !o->cache_url && o->substitutes != 2;
}

int deploy_setup(struct deploy *d, struct nrr_err *e)
{
	struct options *o = d->opt;
	const char *sudo_opts = getenv("NIX_SUDOOPTS");
	const char *why;
	int ret;

	if ((ret = ssh_ctx_init(&d->ssh, d->warnings, e)))
		return ret;
	d->ssh.trace = d->trace;
	/* the target's nix-daemon takes a closure sent from here within the
	 * conversation (lib/daemon.h): not for the other routes, nor for the
	 * actions that send none */
	d->ssh.daemon_fwd = o->act && (o->act->needs & AN_ACTIVATES) &&
			    !(o->act->needs & (AN_DRY | AN_PLAN)) && !o->rollback && !o->keys_only &&
			    !o->build_host && copies_in_conversation(o);
	d->elev.kind = o->elevate;
	if (o->elevate != ELEVATE_COMMAND && sudo_opts &&
	    split_cmdline(sudo_opts, &d->elev.sudo_opts, &why))
		return nrr_fail(e, NRR_EUSAGE, "cannot split NIX_SUDOOPTS: %s", why);
	/* sudo_opts holds the command's words then (host.h) */
	if (o->elevate == ELEVATE_COMMAND &&
	    (!o->elevate_command || split_cmdline(o->elevate_command, &d->elev.sudo_opts, &why) ||
	     !d->elev.sudo_opts.nr))
		return nrr_fail(e, NRR_EUSAGE, "cannot split --elevate-command '%s'",
				o->elevate_command ? o->elevate_command : "");

	if (o->store_path) {
		d->src = SRC_STORE_PATH;
		/* a derivation: realised first, on the build host if any (a
		 * hive node built on its target) */
		if (strlen(o->store_path) > 4 &&
		    !strcmp(o->store_path + strlen(o->store_path) - 4, ".drv"))
			d->drv = xstrdup(o->store_path);
	} else if (o->flake) {
		d->src = SRC_FLAKE;
	} else if (o->file || o->attr || o->no_flake) {
		d->src = SRC_CLASSIC;
	} else {
		struct stat st;
		d->src = stat("/etc/nixos/flake.nix", &st) ? SRC_CLASSIC : SRC_FLAKE;
		if (d->src == SRC_FLAKE)
			o->flake = "/etc/nixos";
		/* a link to a flake.nix elsewhere: that flake, as nixos-rebuild
		 * takes it (its lock file and inputs are there) */
		if (d->src == SRC_FLAKE && (d->etc_flake = nix_flake_dir_of("/etc/nixos/flake.nix")))
			o->flake = d->etc_flake;
	}
	if (d->src == SRC_FLAKE) {
		struct stat st;
		nix_split_flake(o->flake, &d->flake_ref, &d->flake_name);
		/* "examples/demo" names a directory here, not a registry entry */
		if (!strchr(d->flake_ref, ':') && d->flake_ref[0] != '/' &&
		    d->flake_ref[0] != '.' && !stat(d->flake_ref, &st) &&
		    S_ISDIR(st.st_mode)) {
			char *rel = xstrfmt("./%s", d->flake_ref);
			free(d->flake_ref);
			d->flake_ref = rel;
		}
		if ((ret = nix_check_config_name(d->flake_name, e)))
			return ret;
	}
	/* -A alone is an attribute of ./default.nix, as nixos-rebuild has it */
	d->file = o->file ? o->file : o->attr ? "default.nix" : "<nixpkgs/nixos>";
	d->attr = o->attr;

	if (o->target_host) {
		if ((ret = ssh_host_resolve(&d->ssh, o->target_host, &d->target_ssh, e)))
			return ret;
		d->target_remote = 1;
		d->target.name = o->target_host;
		d->target.ssh = &d->target_ssh;
		d->target.ctx = &d->ssh;
	} else {
		d->target = d->local;
	}
	if (o->build_host && !names_this_machine(o->build_host)) {
		if ((ret = ssh_host_resolve(&d->ssh, o->build_host, &d->build_ssh, e)))
			return ret;
		d->build_remote = 1;
		if (d->target_remote && ssh_host_same(&d->build_ssh, &d->target_ssh)) {
			/* one host under two names: one connection, no copy */
			d->build_on_target = 1;
			ssh_host_release(&d->ssh, &d->build_ssh);
			d->build = d->target;
			d->build.name = o->build_host;
		} else {
			d->build.name = o->build_host;
			d->build.ssh = &d->build_ssh;
			d->build.ctx = &d->ssh;
		}
	} else {
		d->build = d->local;
	}
	return 0;
}

/* The hosts a deploy connects to, into hosts; returns how many. */
static int hosts_needed(struct deploy *d, int need_target, int need_build,
			struct ssh_host *hosts[2])
{
	int n = 0;
	if ((need_target || (need_build && d->build_on_target)) && d->target_remote)
		hosts[n++] = &d->target_ssh;
	if (need_build && d->build_remote && !d->build_on_target)
		hosts[n++] = &d->build_ssh;
	return n;
}

int deploy_connect_start(struct deploy *d, int need_target, int need_build,
			 struct nrr_err *e)
{
	struct ssh_host *hosts[2];
	int n = hosts_needed(d, need_target, need_build, hosts), ret = 0;

	deploy_phase(d, "connect");
	/* both handshakes at once: each costs several round trips */
	for (int i = 0; i < n && !ret; i++)
		ret = ssh_host_connect_start(&d->ssh, hosts[i], e);
	return ret;
}

int deploy_connect_wait(struct deploy *d, int need_target, int need_build,
			struct nrr_err *e)
{
	struct ssh_host *hosts[2];
	int n = hosts_needed(d, need_target, need_build, hosts), ret = 0;

	for (int i = 0; i < n && !ret; i++)
		ret = ssh_host_connect_wait(hosts[i], e);
	return ret;
}

int deploy_connect(struct deploy *d, int need_target, int need_build,
		   struct nrr_err *e)
{
	int ret = deploy_connect_start(d, need_target, need_build, e);
	return ret ? ret : deploy_connect_wait(d, need_target, need_build, e);
}

int deploy_default_name(struct deploy *d, struct nrr_err *e)
{
	if (d->src != SRC_FLAKE || *d->flake_name)
		return 0;
	free(d->flake_name);
	d->flake_name = NULL;
	if (d->target_remote) {
		struct strbuf out = STRBUF_INIT;
		const char *noargs[] = { NULL };
		int st = host_run(&d->target, NULL, "hostname", script_hostname,
				  noargs, NULL, 0, &out, NULL, -1, e);
		if (st < 0) {
			strbuf_release(&out);
			return e->status;
		}
		strbuf_rtrim(&out);
		if (st == 0 && out.len)
			d->flake_name = strbuf_detach(&out);
		strbuf_release(&out);
	} else {
		char me[256];
		if (!gethostname(me, sizeof(me))) {
			me[sizeof(me) - 1] = '\0';
			d->flake_name = xstrdup(me);
		}
	}
	if (!d->flake_name)
		d->flake_name = xstrdup("default");
	return nix_check_config_name(d->flake_name, e);
}

char *deploy_attr(const struct deploy *d, const char *tail)
{
	if (d->src == SRC_FLAKE)
		return nix_flake_attr(d->flake_ref, d->flake_name, tail);
	if (d->attr && *d->attr)
		return xstrfmt("%s.%s", d->attr, tail);
	return xstrdup(tail);
}


/* The target has the system from the build host: the build host's GC
 * root of it can go, while the target activates, rather than a round trip
 * after it (deploy_release waits for it, or tries again). */
static void unroot_early(struct deploy *d, const struct host *src)
{
	/* (a build host that is the target keeps it until the profile has
	 * it: nothing else roots the system there in between) */
	if (src == &d->build && !d->build_on_target && d->build_root && d->unroot.pid <= 0)
		unroot_start(d);
}

/* Sends missing (paths dst lacks, in closure order) from src to dst. */
static int send_paths(struct deploy *d, const struct host *src,
		      const struct host *dst, const struct strvec *missing,
		      size_t of, struct nrr_err *e)
{
	unsigned long long bytes = 0;
	int ret;

	if (!missing->nr)
		return 0;
	if (d->trace)
		fprintf(stderr, "copying %zu of %zu paths from '%s' to '%s'\n",
			missing->nr, of, src->name, dst->name);
	if (d->opt->copy_direct && src->ssh && dst->ssh)
		ret = closure_send_direct(src, dst->ssh->cfg.user,
					  dst->ssh->cfg.hostname,
					  dst->ssh->cfg.port, missing, e);
	else
		ret = closure_send(src, dst, missing, &bytes, e);
	d->bytes_copied += bytes;
	d->paths_copied += missing->nr;
	if (!ret && dst == &d->target)
		unroot_early(d, src);
	return ret;
}

int deploy_copy_closure(struct deploy *d, const struct host *src,
			const struct host *dst, const struct strvec *closure,
			struct nrr_err *e)
{
	struct strvec missing = STRVEC_INIT;
	int ret = closure_query(dst, closure, d->opt->substitutes, &missing, e);
	if (!ret)
		ret = send_paths(d, src, dst, &missing, closure->nr, e);
	strvec_clear(&missing);
	return ret;
}

/* Sends missing into the conversation's nix-store --serve (lib/serve.h),
 * then lets the target go on. */
static int serve_missing(struct deploy *d, struct activation *a,
			 const struct strvec *missing, struct nrr_err *e)
{
	const struct host *src = d->built_at == AT_BUILD ? &d->build : &d->local;
	unsigned long long bytes = 0;
	int ret;

	if (d->trace)
		fprintf(stderr, "copying %zu of %zu paths from '%s' to '%s' %s%s%s\n",
			missing->nr, d->closure.nr, src->name, d->target.name,
			a->via_daemon ? "through its nix-daemon" : "through its nix-store --serve",
			a->daemon_why[0] ? ": " : "", a->daemon_why);
	/* from this machine with the registration of every path (a fleet's
	 * dump, or one now: a --dump-db in place of the --export the stream
	 * would start): the stream is made here (lib/narexport.h), for the
	 * target's nix-daemon or its nix-store --serve */
	struct narexport_path *here = NULL;
	struct nrr_err ignored = { 0 };
	if (src == &d->local && !d->db.n)
		closuredb_load(&d->local, &d->closure, &d->db, &ignored);
	if (src == &d->local && d->db.n)
		closuredb_export_list(&d->db, missing, &here);
	ret = serve_import(&d->as.s, a->via_daemon ? &d->as.daemon : NULL, src, &d->export,
			   missing, here, &bytes, e);
	closuredb_export_free(here, missing->nr);
	d->bytes_copied += bytes;
	if (!ret) {
		d->paths_copied += missing->nr;
		unroot_early(d, src);
		ret = serve_end(&d->as.s, a->via_daemon, a->serve_token, e);
	}
	return ret;
}

int deploy_send_missing(struct deploy *d, const struct strvec *missing,
			struct nrr_err *e)
{
	const struct host *src = d->built_at == AT_BUILD ? &d->build : &d->local;
	return send_paths(d, src, &d->target, missing, d->closure.nr, e);
}


int deploy_copy(struct deploy *d, struct nrr_err *e)
{
	int ret = 0;
	if (d->target_remote) {
		if (d->built_at == AT_TARGET) {
			return 0;
		}
		const struct host *src = d->built_at == AT_BUILD ? &d->build : &d->local;
		ret = deploy_copy_closure(d, src, &d->target, &d->closure, e);
	} else if (d->built_at == AT_BUILD) {
		ret = deploy_copy_closure(d, &d->build, &d->local, &d->closure, e);
		if (!ret)
			d->built_at = AT_LOCAL;
	}
	return ret;
}

const struct host *deploy_target(const struct deploy *d)
{
	return &d->target;
}

/* 1 if a new connection to the target removed the token in time. */
static int confirmed(struct deploy *d, const char *token, time_t deadline)
{
	struct strbuf cmd = STRBUF_INIT;
	const char *words[] = { "/bin/sh", "-c", script_confirm, "sh", token, NULL };
	int ok = 0;

	sq_quote_argv(&cmd, words);
	while (!ok && time(NULL) < deadline && !run_interrupted()) {
		struct child c = CHILD_INIT;
		struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
		struct nrr_err e;
		ssh_host_argv_fresh(&d->ssh, d->target.ssh, cmd.buf,
				    (int)(deadline - time(NULL)), &c.args);
		c.in = CHILD_NULL;
		struct capture cap = CAPTURE_INIT;
		cap.out = &out;
		cap.err = &err;
		int st = child_capture(&c, &cap, &e);
		child_clear(&c);
		ok = st == 0 && strstr(out.buf, "confirmed");
		int gone = st == 0 && !ok;	/* the watchdog was first */
		strbuf_release(&out);
		strbuf_release(&err);
		if (gone)
			break;
		if (!ok)
			fiber_sleep_ms(1000);
	}
	strbuf_release(&cmd);
	return ok;
}


int deploy_lock_start(struct deploy *d, struct nrr_err *e)
{
	char *holder;
	int ret;

	if (d->locked || d->lock_pending)
		return 0;
	holder = d->opt->lock_holder ? xstrdup(d->opt->lock_holder) : activation_holder();
	ret = activation_start(&d->as, &d->target, &d->elev, holder, d->keys.nr > 0, e);
	free(holder);
	d->lock_pending = !ret;
	return ret;
}

int deploy_lock(struct deploy *d, struct nrr_err *e)
{
	int ret;

	if (d->locked)
		return 0;
	if ((ret = deploy_lock_start(d, e)))
		return ret;
	d->lock_pending = 0;
	ret = activation_ready(&d->as, e);
	d->locked = !ret;
	return ret;
}

void deploy_export_ahead(struct deploy *d)
{
	struct nrr_err ignored = { 0 };

	/* as deploy_activate decides a->serve: an activation whose copy goes
	 * through the target's conversation, from the build host */
	if (options_needs(d->opt, AN_ACTIVATES) && d->target_remote &&
	    d->build_remote && !d->build_on_target && !d->want_plan &&
	    copies_in_conversation(d->opt) && d->export.pid <= 0)
		closure_export_start(&d->build, &d->export, &ignored);
}

int deploy_activate(struct deploy *d, struct activation *a, struct nrr_err *e)
{
	struct strvec missing = STRVEC_INIT;
	time_t deadline = 0;
	int ret;

	/* the result must be here first when it was built elsewhere for here */
	if (!d->target_remote && d->built_at == AT_BUILD && (ret = deploy_copy(d, e)))
		return ret;
	if ((ret = deploy_lock(d, e)))
		return ret;
	a->token[0] = '\0';
	if (a->confirm_seconds <= 0 || !d->target_remote)
		a->confirm_seconds = 0;
	/* the activation checks the target's store itself: with nothing to
	 * copy, the whole deploy is this one remote conversation */
	a->closure = d->target_remote && d->built_at != AT_TARGET ? &d->closure : NULL;
	/* where that closure is: the diff comes from there when it can */
	a->diff_from = d->built_at == AT_BUILD ? &d->build : &d->local;
	a->closure_sizes = a->closure ? d->closure_sizes : NULL;
	struct strbuf nixconf = STRBUF_INIT;
	a->substitute = d->opt->substitutes;
	a->plan = d->want_plan;
	a->missing = &missing;
	a->nixconf = &nixconf;
	/* the closure through the target's nix-store --serve, within this
	 * conversation, unless a plan must be shown first or the build host
	 * sends it itself */
	a->serve = a->closure && !a->plan && copies_in_conversation(d->opt);
	/* the import's path infos are this store's (the fleet's dump, or
	 * one made when something is missing): then the target's nix-daemon
	 * may take the closure (lib/daemon.h) */
	a->serve_daemon = d->built_at != AT_BUILD;
	/* (the build host's exporter, if any, started with the build:
	 * deploy_export_ahead) */
	deploy_phase(d, "check");
	ret = activation_offer(&d->as, a, e);
	if (!ret && d->hold) {
		ret = d->hold(d->hold_data, e);
		d->hold = NULL;
	}
	if (!ret && a->incomplete && (a->substitute == 2 || a->plan)) {
		ret = deploy_plan_and_fetch(d, a, &nixconf, e);
	} else if (!ret && a->plan && a->closure) {
		d->plan.known = 1;
		d->plan.paths = d->plan.present = d->closure.nr;
		deploy_print_plan(d);
	}
	strbuf_release(&nixconf);
	if (!ret && a->incomplete) {
		deploy_phase(d, "copy");
		ret = a->served ? serve_missing(d, a, &missing, e) :
				  deploy_send_missing(d, &missing, e);
	}
	/* not needed (nothing missing, not served, a failure) or taken */
	closure_export_cancel(&d->export);
	strvec_clear(&missing);
	a->token_time = 0;
	if (!ret) {
		deploy_phase(d, "activate");
		ret = activation_go(&d->as, a, e);
	}
	d->gen_before = a->gen_before;
	d->gen_after = a->gen_after;
	if (ret || !a->confirm_seconds)
		return ret;
	if (!a->token[0]) {
		nrr_protocol(e, d->target.name, "it armed no confirmation token");
		/* and it has activated: nothing here can confirm or undo it */
		nrr_hint(e, "a broken or hostile host: it activated the new system without "
			 "the watchdog --magic-rollback asked for; '--rollback' goes back");
		return NRR_EPROTO;
	}
	/* from when the target armed its watchdog, after the diff and the
	 * user's answer (which may take longer than the timeout; a fleet
	 * waits for its slowest host's): not from before them */
	deadline = a->token_time + a->confirm_seconds;
	deploy_phase(d, "confirm");
	if (confirmed(d, a->token, deadline)) {
		fprintf(stderr, "confirmed: '%s' answers over a new connection\n",
			d->target.name);
		return 0;
	}
	/* Not confirmed: the target undoes the activation by itself at the
	 * deadline. Say what it runs now, if the old connection still can. */
	while (time(NULL) < deadline + 3 && !run_interrupted())
		fiber_sleep_ms(1000);
	struct strbuf out = STRBUF_INIT;
	const char *noargs[] = { NULL };
	struct nrr_err ignored;
	int st = host_run(&d->target, NULL, "confirm", script_current, noargs,
			  NULL, 0, &out, NULL, -1, &ignored);
	strbuf_rtrim(&out);
	if (st == 0 && out.len && strcmp(out.buf, d->toplevel))
		nrr_fail(e, NRR_EROLLEDBACK,
			 "'%s' did not answer a new connection within %d s: it rolled back to %s",
			 d->target.name, a->confirm_seconds, out.buf);
	else
		nrr_fail(e, NRR_EROLLEDBACK,
			 "'%s' did not answer a new connection within %d s: it rolls back to the previous system by itself",
			 d->target.name, a->confirm_seconds);
	nrr_hint(e, "the new system cut off ssh access (network, firewall, sshd, keys?)");
	strbuf_release(&out);
	return NRR_EROLLEDBACK;
}
