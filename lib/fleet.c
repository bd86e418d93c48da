#define _GNU_SOURCE
#include "fleet.h"
#include "fleetview.h"
#include "fleetproto.h"
#include "prompt.h"
#include "quote.h"
#include "nix.h"
#include "run.h"
#include "closure.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void fleet_members_free(struct fleet_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].target);
		free(m[i].path);
		strvec_clear(&m[i].args);
		strvec_clear(&m[i].env);
	}
	free(m);
}

static void add_member(struct fleet_member **m, size_t *n, const char *name,
		       const char *target, const char *user)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*m)[i].name, name))
			return;
	*m = xrealloc(*m, (*n + 1) * sizeof(**m));
	(*m)[*n].name = xstrdup(name);
	(*m)[*n].path = NULL;
	strvec_init(&(*m)[*n].args);
	strvec_init(&(*m)[*n].env);
	if (user && !strchr(target, '@'))
		(*m)[*n].target = xstrfmt("%s@%s", user, target);
	else
		(*m)[*n].target = xstrdup(target);
	(*n)++;
}

int fleet_expand(const char *spec, const struct strvec *all, const char *user,
		 struct fleet_member **members, size_t *n, struct nrr_err *e)
{
	struct strvec items = STRVEC_INIT;
	int ret = 0;

	*members = NULL;
	*n = 0;
	for (const char *p = spec; *p;) {
		size_t len = strcspn(p, ",");
		if (len)
			strvec_pushf(&items, "%.*s", (int)len, p);
		p += len + (p[len] ? 1 : 0);
	}
	for (size_t i = 0; i < items.nr && !ret; i++) {
		char *item = xstrdup(items.v[i]);
		char *eq = strchr(item, '=');
		const char *target = NULL;
		if (eq) {
			*eq = '\0';
			target = eq + 1;
		}
		if (item[0] == '@') {
			/* tags are a hive's; a flake's configurations have none */
			nrr_fail(e, NRR_EUSAGE,
				 "--on '%s': @tags select the nodes of a colmena hive, not supported here yet",
				 item);
			nrr_hint(e, "nixos-rebuild-remote apply switch --on '%s'", item);
			ret = NRR_EUSAGE;
		} else if (nix_check_config_name(item, e)) {
			ret = e->status;
		} else if (strpbrk(item, "*?[")) {
			int hit = 0;
			for (size_t k = 0; k < all->nr && !ret; k++)
				if (!fnmatch(item, all->v[k], 0)) {
					/* a name the flake chose goes into the --apply
					 * expression too: the same check as a typed one */
					if (nix_check_config_name(all->v[k], e)) {
						ret = e->status;
						break;
					}
					add_member(members, n, all->v[k],
						   target ? target : all->v[k], user);
					hit = 1;
				}
			if (!hit && !ret)
				ret = nrr_fail(e, NRR_EUSAGE,
					       "--on: '%s' matches no configuration", item);
		} else if (all->nr && strvec_find(all, item) < 0) {
			ret = nrr_fail(e, NRR_EUSAGE,
				       "--on: there is no configuration '%s'", item);
		} else {
			add_member(members, n, item, target ? target : item, user);
		}
		free(item);
	}
	if (!ret && !*n)
		ret = nrr_fail(e, NRR_EUSAGE, "--on: no hosts given");
	strvec_clear(&items);
	return ret;
}

static void push_flake_flags(const struct options *o, struct strvec *argv)
{
	strvec_pushvec(argv, &o->nix_common);
	strvec_pushvec(argv, &o->nix_build);
	strvec_pushvec(argv, &o->nix_flake_common);
	strvec_pushvec(argv, &o->nix_flake_eval);
}

/* The configuration names of the flake, for globs. */
static int flake_names(const struct options *o, const char *ref,
		       struct strvec *names, struct strvec *warnings,
		       struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	char why[512];
	int ret = 0;

	strvec_pushl(&argv, "nix", "--extra-experimental-features",
		     "nix-command flakes", "eval", "--json", NULL);
	strvec_pushf(&argv, "%s#nixosConfigurations", ref);
	strvec_pushl(&argv, "--apply", "builtins.attrNames", NULL);
	strvec_pushvec(&argv, &o->nix_flake_eval);
	int st = nix_run(&argv, &out, &err, NIX_RUN_QUIET, o->verbose, warnings, e);
	if (st < 0) {
		ret = e->status;
	} else if (st) {
		nix_error_summary(err.buf, why, sizeof(why));
		ret = nrr_fail(e, NRR_ENOSTART, "evaluating '%s#nixosConfigurations' failed: %s",
			       ref, why);
	} else {
		cJSON *arr = cJSON_Parse(out.buf), *it;
		cJSON_ArrayForEach(it, arr)
			if (cJSON_IsString(it))
				strvec_push(names, it->valuestring);
		cJSON_Delete(arr);
	}
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	return ret;
}

/*
 * Evaluates every host's system in one nix process (their derivations and
 * outputs, by name: nix build --json does not keep the installables'
 * order), then builds them all in one nix-store call, so that nix
 * schedules the builds together and shared paths are built once.
 */
static int build_all(const struct options *o, const char *ref,
		     struct fleet_host *hosts, size_t n, const char *roots,
		     struct strvec *warnings, struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT, expr = STRBUF_INIT;
	char why[512];
	int ret = 0;

	/* names were checked by nix_check_config_name: safe in "..." */
	strbuf_addstr(&expr, "cs: builtins.listToAttrs (map (n: { name = n; value = "
		      "let t = cs.${n}.config.system.build.toplevel; in "
		      "{ drv = t.drvPath; out = t.outPath; }; }) [");
	for (size_t i = 0; i < n; i++)
		strbuf_addf(&expr, " \"%s\"", hosts[i].m.name);
	strbuf_addstr(&expr, " ])");
	strvec_pushl(&argv, "nix", "--extra-experimental-features",
		     "nix-command flakes", "eval", "--json", NULL);
	strvec_pushf(&argv, "%s#nixosConfigurations", ref);
	strvec_pushl(&argv, "--apply", expr.buf, NULL);
	push_flake_flags(o, &argv);
	int st = nix_run(&argv, &out, &err, 0, o->verbose, warnings, e);
	if (st) {
		if (st > 0) {
			nix_error_summary(err.buf, why, sizeof(why));
			nrr_fail(e, NRR_ENOSTART, "evaluating the fleet's systems failed: %s", why);
		}
		ret = e->status;
		goto out;
	}
	cJSON *all = cJSON_Parse(out.buf);
	strvec_clear(&argv);
	strvec_pushl(&argv, "nix-store", "--realise", NULL);
	for (size_t i = 0; i < n; i++) {
		cJSON *h = cJSON_GetObjectItemCaseSensitive(all, hosts[i].m.name);
		cJSON *drv = cJSON_GetObjectItemCaseSensitive(h, "drv");
		cJSON *p = cJSON_GetObjectItemCaseSensitive(h, "out");
		if (!cJSON_IsString(drv) || !cJSON_IsString(p)) {
			ret = nrr_fail(e, NRR_ENOSTART, "nix gave no system for '%s'",
				       hosts[i].m.name);
			break;
		}
		hosts[i].path = xstrdup(p->valuestring);
		strvec_push(&argv, drv->valuestring);
	}
	cJSON_Delete(all);
	if (ret)
		goto out;
	/* GC roots for the deploy's duration, in a directory of our own */
	if (roots) {
		strvec_push(&argv, "--add-root");
		strvec_pushf(&argv, "%s/system", roots);
		strvec_push(&argv, "--indirect");
	}
	strvec_pushvec(&argv, &o->nix_common);
	st = nix_run(&argv, &out, &err, 0, o->verbose, warnings, e);
	if (st > 0) {
		nix_error_summary(err.buf, why, sizeof(why));
		nrr_fail(e, NRR_ENOSTART, "building the fleet's systems failed: %s", why);
	}
	if (st)
		ret = e->status;
out:
	strvec_clear(&argv);
	strbuf_release(&out);
	strbuf_release(&err);
	strbuf_release(&expr);
	return ret;
}

void fleet_child_argv(const struct options *o, const char *store_path,
		      const char *target, int password, struct strvec *argv)
{
	static const char *const elevates[] = { "none", "sudo", "run0" };

	strvec_pushl(argv, "/proc/self/exe", o->action, "--store-path", store_path,
		     "--target-host", target, "--progress-fd", "3", NULL);
	/* what the option table passes on (OF_FLEET), as the user said it */
	strvec_pushvec(argv, &o->fleet_args);
	/* what this run decided for all its hosts: the password is ours to
	 * ask (-S implies sudo), the diff comes to us (shown here, asked
	 * about, in --json), and --yes answers here */
	if (password)
		strvec_pushl(argv, "--password-fd", "0", NULL);
	strvec_pushl(argv, "--elevate", elevates[o->elevate], NULL);
	strvec_push(argv, o->diff == 1 || (o->diff < 0 && isatty(2)) || o->ask ||
			  (o->json && o->diff != 0) ? "--diff" : "--no-diff");
	if (o->ask && !o->yes)
		strvec_push(argv, "--ask");
}

/* Shows the child's command line, as --debug and -v show commands. */
static void trace_child(const struct options *o, const struct strvec *argv)
{
	struct strbuf sb = STRBUF_INIT;
	if (!o->debug && !o->verbose)
		return;
	sq_quote_argv(&sb, argv->v);
	fprintf(stderr, "$ %s\n", sb.buf);
	strbuf_release(&sb);
}

static int start_host(const struct options *o, struct fleet_host *h,
		      const char *password, struct nrr_err *e)
{
	int rep[2], pw[2] = { -1, -1 };

	if (pipe2(rep, O_CLOEXEC))
		return nrr_fail(e, NRR_EFAIL, "pipe: %s", strerror(errno));
	child_init(&h->c);
	fleet_child_argv(o, h->path, h->m.target, password != NULL, &h->c.args);
	/* the member's own (a hive node's elevation, ssh options) come last */
	strvec_pushvec(&h->c.args, &h->m.args);
	strvec_pushvec(&h->c.env, &h->m.env);
	trace_child(o, &h->c.args);
	h->c.in = CHILD_NULL;
	h->c.out = CHILD_NULL;
	h->c.err = CHILD_PIPE;
	h->c.map_fd = rep[1];
	h->c.map_to = 3;
	if (password || (o->ask && !o->yes)) {
		/* the password waits in a pipe of its own, never in argv or env;
		 * --ask's answer comes the same way, later */
		if (pipe2(pw, O_CLOEXEC)) {
			close(rep[0]);
			close(rep[1]);
			return nrr_fail(e, NRR_EFAIL, "pipe: %s", strerror(errno));
		}
		/* the child's stdin: one line each (--password-fd 0, --ask) */
		h->c.in = CHILD_FD;
		h->c.in_fd = pw[0];
	}
	clock_gettime(CLOCK_MONOTONIC, &h->start);
	int ret = child_start(&h->c, e);
	close(rep[1]);
	if (ret) {
		close(rep[0]);
		if (pw[1] >= 0)
			close(pw[1]);
		return e->status;
	}
	h->progress_fd = rep[0];
	fcntl(h->progress_fd, F_SETFL, O_NONBLOCK);
	fcntl(h->c.err_fd, F_SETFL, O_NONBLOCK);
	if (password) {
		struct strbuf sb = STRBUF_INIT;
		strbuf_addf(&sb, "%s\n", password);
		if (write(pw[1], sb.buf, sb.len) < 0) {
			/* the child is gone already; its result says why */
		}
		strbuf_release_secret(&sb);
	}
	if (o->ask && !o->yes) {
		h->answer_fd = pw[1];
	} else if (pw[1] >= 0) {
		close(pw[1]);
	}
	h->state = H_RUNNING;
	snprintf(h->phase, sizeof(h->phase), "connect");
	return 0;
}

/* Takes the complete lines of the child's report. */
static void read_report(struct fleet_host *h)
{
	char *nl;
	while ((nl = memchr(h->progress.buf, '\n', h->progress.len))) {
		*nl = '\0';
		struct fleetproto_msg m;
		fleetproto_parse(h->progress.buf, &m);
		switch (m.kind) {
		case FLEETPROTO_PHASE:
			snprintf(h->phase, sizeof(h->phase), "%s", m.text);
			break;
		case FLEETPROTO_SAY:
			strbuf_addf(&h->diff_text, "%s\n", m.text);
			break;
		case FLEETPROTO_DIFF:
			cJSON_Delete(h->diff);
			h->diff = m.diff;
			break;
		case FLEETPROTO_ASK:
			h->asking = 1;
			snprintf(h->phase, sizeof(h->phase), "ask");
			break;
		case FLEETPROTO_RESULT:
			h->status = m.result.status;
			h->gen_before = m.result.gen_before;
			h->gen_after = m.result.gen_after;
			h->bytes = m.result.bytes;
			h->fetch_bytes = m.result.fetch_bytes;
			snprintf(h->step, sizeof(h->step), "%s", m.result.step);
			snprintf(h->message, sizeof(h->message), "%s", m.result.message);
			break;
		case FLEETPROTO_OTHER:
			break;
		}
		size_t used = (size_t)(nl - h->progress.buf) + 1;
		memmove(h->progress.buf, nl + 1, h->progress.len - used);
		strbuf_setlen(&h->progress, h->progress.len - used);
	}
}

static void keep_tail(struct strbuf *err)
{
	/* only the last lines matter: the tail shown for a failed host */
	size_t lines = 0, i = err->len;
	while (i > 0) {
		if (err->buf[i - 1] == '\n' && ++lines > FLEET_TAIL_LINES * 4)
			break;
		i--;
	}
	if (i > 0) {
		memmove(err->buf, err->buf + i, err->len - i);
		strbuf_setlen(err, err->len - i);
	}
}

static void finish_host(struct fleet_host *h)
{
	int st = child_wait(&h->c);
	clock_gettime(CLOCK_MONOTONIC, &h->end);
	if (h->progress_fd >= 0) {
		fd_drain(&h->progress_fd, &h->progress, -1);
		if (h->progress_fd >= 0)
			close(h->progress_fd);
		h->progress_fd = -1;
	}
	read_report(h);
	if (h->answer_fd >= 0)
		close(h->answer_fd);
	h->answer_fd = -1;
	h->asking = 0;
	if (!h->status && st)
		h->status = st;		/* died without a result */
	if (h->status && !h->step[0])
		snprintf(h->step, sizeof(h->step), "deploy");
	h->state = H_DONE;
	child_clear(&h->c);
}

/* Every host still running waits at --ask's question: shows their diffs
 * and asks once for all of them. */
static void ask_fleet(struct fleet_host *hosts, size_t n)
{
	struct strbuf q = STRBUF_INIT;
	size_t asking = 0;

	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		if (!h->asking)
			continue;
		fprintf(stderr, "\n%s", h->diff_text.buf);
		strbuf_reset(&h->diff_text);
		/* the question names ten; the diffs above name them all */
		if (asking < 10)
			strbuf_addf(&q, "%s%s", asking ? ", " : "", h->m.name);
		asking++;
	}
	if (asking > 10)
		strbuf_addf(&q, " and %zu more", asking - 10);
	int yes = asking > 1
		? prompt_yes("\nActivate on %zu hosts (%s)? [y/N] ", asking, q.buf)
		: prompt_yes("\nActivate on %s? [y/N] ", q.buf);
	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		if (!h->asking)
			continue;
		if (write(h->answer_fd, yes ? "y\n" : "n\n", 2) < 0) {
			/* the child is gone: its result says why */
		}
		close(h->answer_fd);
		h->answer_fd = -1;
		h->asking = 0;
		snprintf(h->phase, sizeof(h->phase), "%s", yes ? "activate" : "declined");
	}
	strbuf_release(&q);
}

/* The fds of ours a host in flight holds: its report pipe, its stderr,
 * and with --ask its stdin, kept for the answer. */
static size_t fds_per_host(const struct options *o)
{
	return o->ask && !o->yes ? 3 : 2;
}

/* How many fds this process has open now (Linux; else a guess). */
static size_t fds_open(void)
{
	size_t n = 0;
	glob_t g;
	if (glob("/proc/self/fd/*", 0, NULL, &g))
		return 16;
	n = g.gl_pathc;
	globfree(&g);
	return n;
}

/*
 * How many hosts may be in flight at once for the open-files limit: it
 * raises the soft limit to the hard one first, and when even that is too
 * small for want hosts, says so in warnings. Starting a host takes a few
 * more fds for a moment (pipes to the new child): kept in reserve.
 */
static size_t fit_open_files(const struct options *o, size_t want,
			     struct strvec *warnings)
{
	struct rlimit rl;
	size_t reserve = fds_open() + 8, per = fds_per_host(o);

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= reserve + want * per)
		return want;
	size_t fit = rl.rlim_cur > reserve + per ? (size_t)(rl.rlim_cur - reserve) / per : 1;
	strvec_pushf(warnings, "%zu hosts in flight need %zu open files, and this system allows "
		     "%llu (ulimit -n): at most %zu were in flight at once; raise the hard "
		     "limit (ulimit -Hn, limits.conf) for more", want, reserve + want * per,
		     (unsigned long long)rl.rlim_cur, fit);
	return fit;
}

/* Runs the children of hosts[] (built: their path set), at most
 * --parallel at a time; the summary, --json, and the fleet's status. */
static int run_hosts(struct options *o, struct fleet_host *hosts, size_t n, size_t namew,
		     const char *password, struct strvec *warnings, struct nrr_err *e)
{
	int tty = isatty(2), color = tty && !(getenv("NO_COLOR") && *getenv("NO_COLOR"));
	int ret = 0;

	size_t limit = o->parallel && (size_t)o->parallel < n ? (size_t)o->parallel : n;
	size_t running = 0, next = 0;
	/* --ask: a host waiting for the answer gives its slot to the next,
	 * so all of them may be in flight */
	size_t cap = fit_open_files(o, o->ask && !o->yes ? n : limit, warnings);
	struct pollfd *pfd = xcalloc(2 * n, sizeof(*pfd));
	struct fleet_host **who = xcalloc(2 * n, sizeof(*who));
	int stop = 0, drawn = 0;
	char ts[16];
	double last_draw = 0;
	for (;;) {
		size_t asking = 0;
		for (size_t i = 0; i < n; i++)
			asking += hosts[i].asking;
		/* a host waiting for --ask's answer gives its slot to the next */
		while (!stop && running - asking < limit && running < cap && next < n) {
			struct fleet_host *h = &hosts[next++];
			if (start_host(o, h, password, e)) {
				h->state = H_DONE;
				h->status = e->status;
				snprintf(h->step, sizeof(h->step), "start");
				snprintf(h->message, sizeof(h->message), "%s", e->msg);
				continue;
			}
			running++;
			if (!tty) {
				fleet_timestamp(ts, sizeof(ts));
				fprintf(stderr, "%s %s: started (%s)\n", ts, h->m.name, h->m.target);
			}
		}
		if (!running)
			break;
		/* ask once no other host can start */
		if (asking && asking == running && (stop || next == n || running >= cap)) {
			ask_fleet(hosts, n);
			drawn = 0;
			continue;
		}
		nfds_t np = 0;
		for (size_t i = 0; i < n; i++) {
			struct fleet_host *h = &hosts[i];
			if (h->state != H_RUNNING)
				continue;
			if (h->progress_fd >= 0) {
				who[np] = h;
				pfd[np++] = (struct pollfd){ h->progress_fd, POLLIN, 0 };
			}
			if (h->c.err_fd >= 0) {
				who[np] = h;
				pfd[np++] = (struct pollfd){ h->c.err_fd, POLLIN, 0 };
			}
		}
		int pr = np ? poll(pfd, np, tty ? 200 : 1000) : 0;
		if (!np)
			usleep(20000);
		for (nfds_t k = 0; pr > 0 && k < np; k++) {
			if (!pfd[k].revents)
				continue;
			struct fleet_host *h = who[k];
			if (pfd[k].fd == h->progress_fd) {
				char before[32];
				snprintf(before, sizeof(before), "%s", h->phase);
				fd_drain(&h->progress_fd, &h->progress, -1);
				read_report(h);
				if (!tty && strcmp(before, h->phase)) {
					fleet_timestamp(ts, sizeof(ts));
					fprintf(stderr, "%s %s: %s\n", ts, h->m.name, h->phase);
				}
			} else {
				fd_drain(&h->c.err_fd, &h->err, -1);
				keep_tail(&h->err);
			}
		}
		/* a host is done when both its pipes are closed */
		for (size_t i = 0; i < n; i++) {
			struct fleet_host *h = &hosts[i];
			if (h->state != H_RUNNING || h->progress_fd >= 0 || h->c.err_fd >= 0)
				continue;
			finish_host(h);
			running--;
			if (h->status && !o->keep_going)
				stop = 1;
			if (!tty) {
				fleet_timestamp(ts, sizeof(ts));
				fprintf(stderr, "%s %s: %s%s%s\n", ts, h->m.name, fleet_result_of(h),
					h->status ? ": " : "", h->status ? h->message : "");
			}
		}
		if (run_interrupted()) {
			stop = 1;
			/* a host waiting for the answer hears no */
			for (size_t i = 0; i < n; i++)
				if (hosts[i].answer_fd >= 0) {
					close(hosts[i].answer_fd);
					hosts[i].answer_fd = -1;
					hosts[i].asking = 0;
				}
		}
		if (tty && (fleet_now() - last_draw > 0.2 || !running)) {
			fleet_draw(hosts, n, drawn, color, namew);
			drawn = 1;
			last_draw = fleet_now();
		}
	}
	free(pfd);
	free(who);
	size_t failed = 0, skipped = 0, declined = 0;
	for (size_t i = 0; i < n; i++) {
		if (hosts[i].state == H_WAITING)
			hosts[i].state = H_SKIPPED;
		if (hosts[i].state == H_SKIPPED)
			skipped++;
		else if (hosts[i].status == NRR_EDECLINED)
			declined++;
		else if (hosts[i].status)
			failed++;
	}
	if (o->diff == 1 || (o->diff < 0 && tty))
		for (size_t i = 0; i < n; i++)
			if (hosts[i].diff_text.len)
				fprintf(stderr, "\n%s", hosts[i].diff_text.buf);
	fleet_print_summary(o, hosts, n, namew);
	if (o->json)
		fleet_print_json(o, hosts, n);
	if (run_interrupted())
		ret = nrr_fail(e, NRR_EINT, "interrupted");
	else if (declined && !failed && !skipped)
		ret = nrr_fail(e, NRR_EDECLINED, "declined: nothing activated on %zu of %zu hosts",
			       declined, n);
	else if (failed || skipped || declined)
		ret = nrr_fail(e, NRR_EFLEET, "%zu of %zu hosts failed, %zu skipped%s",
			       failed + declined, n, skipped,
			       skipped ? " (-k/--keep-going deploys the others after a failure)" : "");
	return ret;
}

int fleet_deploy(struct options *o, const struct fleet_member *members, size_t n,
		 const char *password, struct strvec *warnings, struct nrr_err *e)
{
	struct fleet_host *hosts = xcalloc(n, sizeof(*hosts));
	size_t namew = 4;
	int ret;

	for (size_t i = 0; i < n; i++) {
		hosts[i].m = members[i];
		hosts[i].path = xstrdup(members[i].path);
		hosts[i].progress_fd = -1;
		hosts[i].answer_fd = -1;
		strbuf_init(&hosts[i].diff_text);
		strbuf_init(&hosts[i].progress);
		strbuf_init(&hosts[i].err);
		if (strlen(members[i].name) > namew)
			namew = strlen(members[i].name);
	}
	ret = run_hosts(o, hosts, n, namew, password, warnings, e);
	for (size_t i = 0; i < n; i++) {
		free(hosts[i].path);
		cJSON_Delete(hosts[i].diff);
		strbuf_release(&hosts[i].diff_text);
		strbuf_release(&hosts[i].progress);
		strbuf_release(&hosts[i].err);
	}
	free(hosts);
	return ret;
}

int fleet_run(struct options *o, const char *password, struct strvec *warnings,
	      struct nrr_err *e)
{
	struct strvec names = STRVEC_INIT;
	struct fleet_member *members = NULL;
	struct fleet_host *hosts = NULL;
	size_t n = 0, namew = 4;
	char *ref = NULL, *unused = NULL;
	int ret;
	char roots[] = "/tmp/nrr-roots.XXXXXX";
	int have_roots = 0;

	nix_split_flake(o->flake, &ref, &unused);
	if (strpbrk(o->on, "*?[") &&
	    (ret = flake_names(o, ref, &names, warnings, e)))
		goto out;
	if ((ret = fleet_expand(o->on, &names, o->target_user, &members, &n, e)))
		goto out;
	hosts = xcalloc(n, sizeof(*hosts));
	for (size_t i = 0; i < n; i++) {
		hosts[i].m = members[i];
		hosts[i].progress_fd = -1;
		hosts[i].answer_fd = -1;
		strbuf_init(&hosts[i].diff_text);
		strbuf_init(&hosts[i].progress);
		strbuf_init(&hosts[i].err);
		if (strlen(members[i].name) > namew)
			namew = strlen(members[i].name);
	}
	have_roots = mkdtemp(roots) != NULL;
	if ((ret = build_all(o, ref, hosts, n, have_roots ? roots : NULL, warnings, e)))
		goto out;

	ret = run_hosts(o, hosts, n, namew, password, warnings, e);
out:
	if (have_roots) {
		/* unlink the roots nix-store made (system, system-2, ...) */
		glob_t g;
		char *pat = xstrfmt("%s/*", roots);
		if (!glob(pat, 0, NULL, &g)) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		}
		free(pat);
		rmdir(roots);
	}
	for (size_t i = 0; hosts && i < n; i++) {
		free(hosts[i].path);
		cJSON_Delete(hosts[i].diff);
		strbuf_release(&hosts[i].diff_text);
		strbuf_release(&hosts[i].progress);
		strbuf_release(&hosts[i].err);
	}
	free(hosts);
	if (members)
		fleet_members_free(members, n);
	strvec_clear(&names);
	free(ref);
	free(unused);
	return ret;
}
