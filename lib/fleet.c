#define _GNU_SOURCE
#include "fleet.h"
#include "fiber.h"
#include "fleethost.h"
#include "action.h"
#include "resources.h"
#include "fleetbuild.h"
#include "fleetview.h"
#include "pushto.h"
#include "fleetpush.h"
#include "fleetprep.h"
#include "nix.h"
#include "run.h"
#include "closure.h"
#include "activate.h"
#include "closuredb.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * One fleet run's hosts in flight, as samurai keeps its jobs: start_hosts
 * fills the free slots, wait_for_hosts pumps every pipe of every host in
 * flight (run.c's pump; the set is sized from the fleet: two fds a host),
 * work_report and work_stderr take what one host said, and finish_host
 * reaps a host once both its pipes are closed.
 */
struct fleet {
	struct options *o;
	const char *password;
	struct fleet_host *hosts;
	size_t n, namew;
	size_t limit;		/* --parallel, of hosts not waiting at --ask */
	size_t cap;		/* in flight, for the open-files limit */
	size_t running, next;	/* in flight; the next to start */
	size_t connecting_max;	/* in their handshake at once, at most */
	int stop;		/* no new host starts (a failure, an interrupt) */
	int tty, color, drawn;
	double t0, last_draw;	/* when the run began; the last live lines */
	double last_pass;	/* when wait_for_hosts last looked at the pipes */
	double last_asking;	/* ... and at those of the hosts waiting for an answer */
	struct pump_fd *fds;	/* the pipes of the hosts in flight: two a host */
	char *closure_dir;	/* the hosts' closures, one file each (dump_closures) */
	struct fleet_io *io;	/* whose each is, a host's one */
	const struct fleet_prepare *prep;	/* to run once the first hosts started */
	struct fleetprep *prepping;	/* ... running, beside the hosts */
	struct strvec *warnings;
	struct nrr_err prep_err;	/* its failure (status 0: none, or not run) */
	struct strvec pushed;	/* the union of the closures pushed (push_start) */
	struct strvec tops;	/* ... of these systems */
	struct fleetpush *push;	/* --push-to: the push, beside the hosts */
	struct nrr_err push_err;	/* its copy could not start */
	char *holder;		/* who deploys, for every host's lock (activation_holder) */
};

static int holding(const struct fleet *f);
static enum fleet_hold hold_for(const struct fleet *f);
static void push_said(void *data, const char *buf, size_t n);
static void prep_said(void *data, const char *buf, size_t n);
static void prep_ended(struct fleet *f);

/* The fds of ours a host in flight holds: its report pipe, its stderr,
 * and its stdin when it waits for the fleet's word (--ask's answer, the
 * build's or the push's go). */
static size_t fds_per_host(const struct fleet *f)
{
	/* in a fiber of ours (no report pipe: lib/fiber.h), every fd of its
	 * deploy: its ssh master's and session's pipes, the forwarded daemon
	 * socket, its stderr (about 16 at the most, measured) */
	if (f->o->host_main)
		return 20;
	return fleet_holds(f->o) || f->prep || f->push ? 3 : 2;
}

/* A timestamped line for h, when the run does not draw live lines (or
 * not yet: while nix builds, its lines and ours share the terminal). */
static void note(const struct fleet *f, const struct fleet_host *h, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(const struct fleet *f, const struct fleet_host *h, const char *fmt, ...)
{
	char ts[16];
	struct strbuf line = STRBUF_INIT;
	va_list ap;

	if (f->tty && !f->prep)
		return;
	fleet_timestamp(ts, sizeof(ts));
	strbuf_addf(&line, "%s %s: ", ts, h->m.name);
	va_start(ap, fmt);
	strbuf_vaddf(&line, fmt, ap);
	va_end(ap);
	strbuf_addch(&line, '\n');
	/* one write: stderr is unbuffered, and a fleet writes a few lines a
	 * host */
	fwrite(line.buf, 1, line.len, stderr);
	strbuf_release(&line);
}

/* Starts hosts while slots are free; a host waiting for --ask's answer
 * gives its slot to the next. A host that cannot start is done. */
static void start_hosts(struct fleet *f, struct nrr_err *e)
{
	size_t asking = fleet_hosts_asking(f->hosts, f->n);
	size_t connecting = fleet_hosts_connecting(f->hosts, f->n);

	while (!f->stop && f->running - asking < f->limit && f->running < f->cap &&
	       connecting < f->connecting_max && f->next < f->n) {
		struct fleet_host *h = &f->hosts[f->next++];
		if (h->state != H_WAITING)
			continue;	/* its evaluation failed (-k) */
		char *db = f->closure_dir ? closuredb_file(f->closure_dir, (size_t)(h - f->hosts)) : NULL;
		/* once for the fleet: the user's name is a read of the
		 * password database, a dozen system calls */
		if (!f->holder)
			f->holder = activation_holder();
		int failed = fleet_host_start(f->o, h, f->password, db, f->holder, hold_for(f), e);
		free(db);
		if (failed) {
			h->state = H_DONE;
			h->status = e->status;
			snprintf(h->step, sizeof(h->step), "start");
			snprintf(h->message, sizeof(h->message), "%s", e->msg);
			continue;
		}
		f->running++;
		connecting++;
		note(f, h, "started (%s)", h->m.target);
	}
}

/* Takes what h said on fd: report lines, or output for its tail. */
/* What a pipe of a host in flight belongs to, for pump()'s callbacks. */
struct fleet_io {
	struct fleet *f;
	struct fleet_host *h;
};

/* The host's report pipe brought lines (appended to h->progress). */
static void work_report(void *data, const char *buf, size_t n)
{
	struct fleet_io *io = data;
	char before[32];
	(void)buf;
	(void)n;
	snprintf(before, sizeof(before), "%s", io->h->phase);
	fleet_host_read(io->h);
	if (strcmp(before, io->h->phase))
		note(io->f, io->h, "%s", io->h->phase);
}

/* The host's stderr brought text (appended to h->err): keep its tail. */
static void work_stderr(void *data, const char *buf, size_t n)
{
	struct fleet_io *io = data;
	(void)buf;
	(void)n;
	fleet_host_keep_tail(&io->h->err);
}

/*
 * Each pass over the hosts' pipes polls every one of them, and the
 * children's lines come one by one: at 200 hosts, passes of a line or two
 * each took half of the parent's CPU (bench/fleet). So, with more than a
 * few hosts in flight, the pipes are looked at once in PACE_S_A_FD for
 * each of them (a pass costs as much more), PACE_S to PACE_MAX_S apart,
 * and those of a host waiting for the fleet's answer (--ask, the go),
 * which says nothing until it has it, once a second (a host that died
 * there is seen then). Nothing waits on the parent that long: a child's
 * lines wait in its pipe, its phases carry their own times, and an answer,
 * or the next host's start in a freed slot, goes one pass later. A host in
 * a fiber has no pipe to poll (its report is in memory): its lines are
 * taken at the same pace, a host counting as one pipe.
 */
#define PACE_FDS 8
#define PACE_S 0.01
#define PACE_S_A_FD 0.001
#define PACE_MAX_S 0.2
#define PACE_ASKING_S 1.0

/* How long after the last pass over nf pipes the next one is due. */
static double pace_for(size_t nf)
{
	double s = (double)nf * PACE_S_A_FD;
	return s < PACE_S ? PACE_S : s > PACE_MAX_S ? PACE_MAX_S : s;
}

/* Takes the lines the hosts in fibers reported (into their progress);
 * how many had any. */
static size_t take_fiber_reports(struct fleet *f)
{
	size_t took = 0;
	for (size_t i = 0; i < f->n; i++) {
		struct fleet_host *h = &f->hosts[i];
		size_t had = h->progress.len;
		if (h->state != H_RUNNING || !h->fiber || !had)
			continue;
		work_report(&f->io[i], NULL, 0);
		took += h->progress.len != had;
	}
	return took;
}

/* Waits until some host says something (or a moment passes, for the
 * live lines), and takes what they said: run.c's pump over the pipes of
 * the hosts in flight. */
static void wait_for_hosts(struct fleet *f)
{
	size_t nf = 0, fibers = 0;
	double now = fleet_now();
	int asking_too = now - f->last_asking >= PACE_ASKING_S;

	for (size_t i = 0; i < f->n; i++) {
		struct fleet_host *h = &f->hosts[i];
		if (h->state != H_RUNNING)
			continue;
		f->io[i] = (struct fleet_io){ f, h };
		if (h->fiber) {
			fibers++;	/* no pipe: its report is in memory */
			continue;
		}
		if (h->asking && !asking_too)
			continue;
		if (h->progress_fd >= 0)
			f->fds[nf++] = (struct pump_fd){ .fd = &h->progress_fd, .sb = &h->progress,
							 .on_read = work_report, .data = &f->io[i] };
		if (h->c.err_fd >= 0)
			f->fds[nf++] = (struct pump_fd){ .fd = &h->c.err_fd, .sb = &h->err,
							 .on_read = work_stderr, .data = &f->io[i] };
	}
	if (f->push && f->push->a.out >= 0)
		f->fds[nf++] = (struct pump_fd){ .fd = &f->push->a.out, .sb = &f->push->in,
						 .on_read = push_said, .data = f };
	if (f->prepping && f->prepping->a.out >= 0)
		f->fds[nf++] = (struct pump_fd){ .fd = &f->prepping->a.out, .sb = &f->prepping->in,
						 .on_read = prep_said, .data = f };
	if (asking_too)
		f->last_asking = now;
	if (!nf && !fibers) {
		fiber_sleep_ms(20);
		return;
	}
	double pace = pace_for(nf + fibers);
	if (nf + fibers > PACE_FDS && f->last_pass + pace > now)
		fiber_sleep_ms((long)((f->last_pass + pace - now) * 1e3) + 1);
	f->last_pass = fleet_now();
	int timeout = f->tty ? 200 : 1000;
	if (!fibers) {
		pump(f->fds, nf, timeout);
		return;
	}
	/* then as soon as a fiber has news (its report, its end) or a pipe
	 * of ours says something: not a timer's every pace while the hosts
	 * are quiet (waiting for their hosts, the push or the answer) */
	if (take_fiber_reports(f))
		return;
	fiber_wake_on_news(1);
	if (nf)
		pump(f->fds, nf, timeout);
	else
		fiber_poll(NULL, 0, timeout);
	fiber_wake_on_news(0);
	take_fiber_reports(f);
}

/* Reaps every host whose pipes are both closed. */
static void finish_hosts(struct fleet *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct fleet_host *h = &f->hosts[i];
		if (h->state != H_RUNNING || !fleet_host_over(h))
			continue;
		fleet_host_finish(h);
		f->running--;
		if (h->status && !f->o->keep_going)
			f->stop = 1;
		/* stopped because the prepare failed: that failure says it */
		if (!f->prep_err.status)
			note(f, h, "%s%s%s", fleet_result_of(h), h->status ? ": " : "",
			     h->status ? h->message : "");
	}
}

/* After Ctrl-C (run.c stopped the children): nothing new starts, and a
 * host waiting for the answer hears no. */
static void interrupt_hosts(struct fleet *f)
{
	f->stop = 1;
	for (size_t i = 0; i < f->n; i++)
		if (f->hosts[i].answer_fd >= 0) {
			close(f->hosts[i].answer_fd);
			f->hosts[i].answer_fd = -1;
			f->hosts[i].asking = 0;
			f->hosts[i].going = 0;
		}
}

static void dump_closures(struct fleet *f, const struct strvec *closure);
static void push_go(struct fleet *f);

/*
 * The prepare (or the push) is over: it is every host's phase (named
 * phase; NULL: it built, the "build" phase ends with it), up to now; the
 * hosts waiting get their go, or (!ok) the end of their stdin: they stop,
 * and the fleet's status is the prepare's.
 */
static void prepared(struct fleet *f, const char *phase, int ok)
{
	double built = fleet_now();
	/* the go, with the cache route's key when the push learned it */
	char *go = f->o->cache_url && f->o->cache_key && !strchr(f->o->cache_key, '\n') ?
		   xstrfmt("y %s\n", f->o->cache_key) :
		   xstrdup("y\n");
	for (size_t i = 0; i < f->n; i++) {
		struct fleet_host *h = &f->hosts[i];
		if (phase) {
			h->phases = xrealloc(h->phases, (h->nr_phases + 1) * sizeof(*h->phases));
			memmove(h->phases + 3, h->phases + 2, (h->nr_phases - 2) * sizeof(*h->phases));
			h->phases[2] = (struct fleet_phase){ "", h->phases[1].end, built };
			snprintf(h->phases[2].name, sizeof(h->phases[2].name), "%s", phase);
			h->nr_phases++;
		} else {
			h->phases[1].end = built;
		}
		if (!h->going)
			continue;
		/* (a host still waiting for two gos: the build's failed) */
		h->going = 0;
		if (ok && write(h->answer_fd, go, strlen(go)) < 0) {
			/* the child is gone: its result says why */
		}
		if (!ok || !fleet_holds(f->o)) {
			close(h->answer_fd);
			h->answer_fd = -1;
		}
	}
	free(go);
	if (!ok)
		f->stop = 1;
}

/* The fleet's prepare (its build) starts, in a copy beside the hosts
 * (lib/fleetprep.h): the hosts go on starting, connecting and locking
 * meanwhile, as many as --parallel lets. */
static void prep_start(struct fleet *f)
{
	f->prepping = xcalloc(1, sizeof(*f->prepping));
	/* a copy that cannot start: its error is the prepare's, at once */
	if (fleetprep_start(f->prepping, f->prep, &f->prepping->err))
		prep_ended(f);
}

/* The copy said something: taken when whole, kept until it ends. */
static void prep_said(void *data, const char *buf, size_t n)
{
	struct fleet *f = data;
	(void)buf;
	(void)n;
	fleetprep_take(f->prepping);
}

/*
 * The prepare is over (its socket closed): the closures' dump, and the
 * hosts' go; hosts started after this have their systems and do not wait
 * for it.
 */
static void prep_ended(struct fleet *f)
{
	const struct fleet_prepare *prep = f->prep;
	struct fleetprep *p = f->prepping;

	fleetprep_end(p);
	strvec_pushvec(f->warnings, &p->warnings);
	if (p->err.status)
		f->prep_err = p->err;
	f->prep = NULL;
	int ok = !p->err.status;
	/* (the build listed the closures: no second nix-store for them) */
	if (ok && f->closure_dir)
		dump_closures(f, p->closure.nr ? &p->closure : NULL);
	if (ok && !prep->phase && f->push) {
		/* the cache route: the hosts ask their targets what they lack
		 * while the systems just built go to the cache (their first go), and
		 * their last go comes once they are there (push_ended) */
		double built = fleet_now();
		for (size_t i = 0; i < f->n; i++)
			f->hosts[i].phases[1].end = built;
		fleet_hosts_systems(f->hosts, f->n, &f->tops);
		if (p->closure.nr)
			strvec_pushvec(&f->pushed, &p->closure);
		else
			pushto_closure(&f->tops, &f->pushed, &f->push_err);
		if (!f->push_err.status)
			fleet_hosts_built_go(f->hosts, f->n);
		push_go(f);
		return;
	}
	/* every host's build phase is the fleet's, which the first ones'
	 * connect (and their "ready": connected, locked, waiting) overlaps */
	prepared(f, prep->phase, ok);
}

/* Whether hosts starting now wait for the fleet's go. */
static int holding(const struct fleet *f)
{
	return hold_for(f) != HOLD_NONE;
}

/*
 * What they wait for: with the systems built (and their closures dumped)
 * only the push, and then each host asks its target what it lacks (and
 * its settings) while the push goes on: the check is off the fleet's
 * critical path, which after the push is then the fetch and activation.
 */
static enum fleet_hold hold_for(const struct fleet *f)
{
	if (f->prep)
		return f->push && !f->push->done ? HOLD_BOTH : HOLD_BUILD;
	return f->push && !f->push->done ? HOLD_PUSH : HOLD_NONE;
}

/* The cache route's push, beside the hosts (lib/fleetpush.h): its copy
 * starts before the fleet evaluates or builds, and connects to the cache
 * host meanwhile. */
static void push_start(struct fleet *f)
{
	f->push = xcalloc(1, sizeof(*f->push));
	if (fleetpush_start(f->push, f->o, &f->push_err))
		f->push->done = 1;
}

/* ... and pushes once the systems are built and their closure listed
 * (f->tops, f->pushed). */
static void push_go(struct fleet *f)
{
	if (f->push_err.status) {
		f->prep_err = f->push_err;
		prepared(f, "push", 0);
	} else if (fleetpush_go(f->push, &f->tops, &f->pushed)) {
		/* the copy is gone: its line or its status says why, when
		 * the loop reads its end (push_ended) */
	}
}

/* The push said something: taken when whole (its warnings, its key or
 * its failure) and kept until it ends. */
static void push_said(void *data, const char *buf, size_t n)
{
	struct fleet *f = data;
	(void)buf;
	(void)n;
	fleetpush_take(f->push);
}

/* The push has ended (its pipe closed): what it said is the fleet's. */
static void push_ended(struct fleet *f)
{
	struct fleetpush *p = f->push;
	fleetpush_end(p);
	strvec_pushvec(f->warnings, &p->warnings);
	if (p->err.status)
		f->prep_err = p->err;
	if (p->key) {
		/* the hosts' go carries it */
		free(f->o->cache_key_buf);
		f->o->cache_key_buf = xstrdup(p->key);
		f->o->cache_key = f->o->cache_key_buf;
	}
	prepared(f, "push", !p->err.status);
}

/* Deploys every host, --parallel at a time, until none is in flight. */
static void deploy_hosts(struct fleet *f, struct nrr_err *e)
{
	for (;;) {
		start_hosts(f, e);
		if (f->prep && !f->prepping)
			prep_start(f);
		if (!f->running && !f->prep)
			break;
		/* ask once no other host can start */
		size_t asking = fleet_hosts_asking(f->hosts, f->n);
		if (asking && asking == f->running && !holding(f) &&
		    (f->stop || f->next == f->n || f->running >= f->cap)) {
			if (f->o->ask && !f->o->yes) {
				fleet_ask(f->hosts, f->n);
				f->drawn = 0;
			} else {
				/* the cache route: every host checked; after a
				 * failure none is activated, unless -k */
				if (f->stop)
					fprintf(stderr, "not activating the hosts that are ready (%zu): "
						"another failed (-k/--keep-going activates them)\n",
						asking);
				fleet_answer(f->hosts, f->n, !f->stop);
			}
			continue;
		}
		wait_for_hosts(f);
		if (f->prep && f->prepping->a.out < 0)
			prep_ended(f);
		if (f->push && !f->push->done && f->push->a.out < 0)
			push_ended(f);
		finish_hosts(f);
		if (run_interrupted())
			interrupt_hosts(f);
		/* (not while nix builds: its lines go to the same terminal) */
		if (f->tty && !f->prep && (fleet_now() - f->last_draw > 0.2 || !f->running)) {
			fleet_draw(f->hosts, f->n, f->drawn, f->color, f->namew);
			f->drawn = 1;
			f->last_draw = fleet_now();
		}
	}
}

/* Shows the outcome (diffs, summary, --json) and returns the run's status. */
static int verdict(struct fleet *f, struct nrr_err *e)
{
	const struct options *o = f->o;
	size_t failed = 0, skipped = 0, declined = 0, n = f->n;
	struct fleet_host *hosts = f->hosts;

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
	/* each host's plan, in the order of the hosts */
	for (size_t i = 0; i < n; i++)
		fputs(hosts[i].plan_text.buf, stderr);
	if (o->diff == 1 || (o->diff < 0 && f->tty))
		for (size_t i = 0; i < n; i++)
			if (hosts[i].diff_text.len)
				fprintf(stderr, "\n%s", hosts[i].diff_text.buf);
	fleet_print_summary(o, hosts, n, f->namew);
	for (size_t i = 0; i < n; i++)
		fputs(hosts[i].warn_text.buf, stderr);
	if (o->json)
		fleet_print_json(o, hosts, n, f->t0);
	if (run_interrupted())
		return nrr_fail(e, NRR_EINT, "interrupted");
	if (declined && !failed && !skipped)
		return nrr_fail(e, NRR_EDECLINED, "declined: nothing activated on %zu of %zu hosts",
				declined, n);
	if (failed || skipped || declined)
		return nrr_fail(e, NRR_EFLEET, "%zu of %zu hosts failed, %zu skipped%s",
				failed + declined, n, skipped,
				skipped ? " (-k/--keep-going deploys the others after a failure)" : "");
	return 0;
}

/* 1 for a dry run (dry-build, dry-activate): nothing is copied, so the
 * hosts' children get no closures' dump either. */
static int dry_run(const struct options *o)
{
	return options_needs(o, AN_DRY);
}

/* The hosts' closure files gone: their children ask the store. */
static void drop_closures(struct fleet *f)
{
	if (f->closure_dir) {
		closuredb_remove(f->closure_dir, f->n);
		free(f->closure_dir);
		f->closure_dir = NULL;
	}
}

/* The hosts' closures, one file each in f->closure_dir; when the store
 * cannot tell, none: each child asks the store itself. */
static void dump_closures(struct fleet *f, const struct strvec *closure)
{
	if (fleet_hosts_dump(f->hosts, f->n, closure, f->closure_dir))
		drop_closures(f);
}

/* Runs the children of f's hosts (built: their path set), at most
 * --parallel at a time; the summary, --json, and the fleet's status. */
static int fleet_deploy_hosts(struct fleet *f, struct strvec *warnings, struct nrr_err *e)
{
	const struct options *o = f->o;
	int ret;

	f->limit = o->parallel && (size_t)o->parallel < f->n ? (size_t)o->parallel : f->n;
	f->connecting_max = handshakes_max();
	/* --ask: a host waiting for the answer gives its slot to the next,
	 * so all of them may be in flight */
	f->cap = openfiles_fit(fleet_holds(o) ? f->n : f->limit, fds_per_host(f), "hosts", warnings);
	f->fds = xcalloc(2 * f->n + 2, sizeof(*f->fds));
	f->io = xcalloc(f->n + 1, sizeof(*f->io));
	/* with a prepare, the dump's files are named now, written after it */
	f->closure_dir = !dry_run(o) ? closuredb_reserve() : NULL;
	if (f->closure_dir && !f->prep)
		dump_closures(f, f->pushed.nr ? &f->pushed : NULL);
	deploy_hosts(f, e);
	/* Ctrl-C during the push: the hosts, waiting for it, may have ended
	 * before it said so (it is ended with the fleet) */
	if (run_interrupted() && f->push && !f->push->done && !f->prep_err.status)
		nrr_fail(&f->prep_err, NRR_EINT, "interrupted while pushing to the cache '%s'",
			 o->push_to);
	if (f->prep_err.status) {
		/* none went on: the prepare's failure is the fleet's */
		*e = f->prep_err;
		ret = e->status;
	} else {
		ret = verdict(f, e);
	}
	drop_closures(f);
	return ret;
}

static void fleet_release(struct fleet *f)
{
	fleet_hosts_free(f->hosts, f->n);
	free(f->fds);
	free(f->io);
	strvec_clear(&f->pushed);
	if (f->push) {
		fleetpush_release(f->push);
		free(f->push);
	}
	if (f->prepping) {
		fleetprep_release(f->prepping);
		free(f->prepping);
	}
	strvec_clear(&f->tops);
	free(f->holder);
}

int fleet_deploy(struct options *o, const struct fleet_member *members, size_t n,
		 const char *password, const struct fleet_prepare *prep, double started,
		 struct strvec *warnings, struct nrr_err *e)
{
	double now = fleet_now();
	struct fleet f = { .o = o, .password = password, .namew = 4, .tty = isatty(2),
			   .t0 = started > 0 && started <= now ? started : now, .prep = prep,
			   .warnings = warnings, .pushed = STRVEC_INIT, .tops = STRVEC_INIT };
	int ret;

	f.color = f.tty && !(getenv("NO_COLOR") && *getenv("NO_COLOR"));
	/* evaluated by the caller, from started up to now */
	f.hosts = fleet_hosts_new(members, n, f.t0, now, now, &f.namew);
	f.n = n;
	/* a hive's nodes by @tag, through the cache: pushed once built */
	if (o->push_to && !dry_run(o) && prep)
		push_start(&f);
	ret = fleet_deploy_hosts(&f, warnings, e);
	fleet_release(&f);
	return ret;
}

/* --push-to with a dry run: the cache's plan for the closures of the
 * hosts still to deploy (an evaluation that failed with -k gave one none). */
static int push_plan(struct fleet *f, struct strvec *warnings, struct nrr_err *e)
{
	struct strvec tops = STRVEC_INIT;
	unsigned long long relayed = 0;
	int ret;

	fleet_hosts_systems(f->hosts, f->n, &tops);
	strvec_clear(&f->pushed);
	ret = pushto_push(f->o, &tops, 1, &f->pushed, NULL, warnings, &relayed, e);
	strvec_clear(&tops);
	return ret;
}

int fleet_run(struct options *o, const char *password, struct strvec *warnings,
	      struct nrr_err *e)
{
	struct strvec names = STRVEC_INIT, drvs = STRVEC_INIT;
	struct fleet_member *members = NULL;
	size_t n = 0;
	struct fleet f = { .o = o, .password = password, .namew = 4, .tty = isatty(2),
			   .t0 = fleet_now(), .pushed = STRVEC_INIT,
			   .tops = STRVEC_INIT };
	struct fleet_realise build = { STRVEC_INIT, STRVEC_INIT, STRVEC_INIT, 0, 0 };
	struct fleet_prepare prep = { fleet_realise_run, &build, NULL, &build.closure };
	char *ref = NULL, *unused = NULL, roots[FLEET_ROOTS_SIZE] = "";
	int ret;

	f.color = f.tty && !(getenv("NO_COLOR") && *getenv("NO_COLOR"));
	nix_split_flake(o->flake, &ref, &unused);
	if (strpbrk(o->on, "*?[") &&
	    (ret = fleet_flake_names(o, ref, &names, warnings, e)))
		goto out;
	if ((ret = fleet_expand(o->on, &names, o->target_user, &members, &n, e)))
		goto out;
	f.hosts = fleet_hosts_new(members, n, f.t0, f.t0, f.t0, &f.namew);
	f.n = n;
	if (o->push_to && !dry_run(o))
		push_start(&f);
	fleet_roots_make(roots);
	if ((ret = fleet_eval_all(o, ref, f.hosts, f.n, &drvs, warnings, e)))
		goto out;
	/* the fleet's evaluation is every host's first phase */
	double evaluated = fleet_now();
	for (size_t i = 0; i < f.n; i++) {
		f.hosts[i].phases[0].end = evaluated;
		f.hosts[i].phases[1] = (struct fleet_phase){ "build", evaluated, evaluated };
	}
	struct strvec tops = STRVEC_INIT;
	fleet_hosts_systems(f.hosts, f.n, &tops);
	fleet_realise_plan(o, &drvs, &tops, *roots ? roots : NULL, &build);
	strvec_clear(&tops);
	if (dry_run(o)) {
		/* what the build would do, then (the cache route) the cache's
		 * plan, before any host plans its own */
		if ((ret = fleet_realise_run(&build, warnings, e)) ||
		    (o->push_to && (ret = push_plan(&f, warnings, e))))
			goto out;
		double planned = fleet_now();
		for (size_t i = 0; i < f.n; i++)
			f.hosts[i].phases[1].end = planned;
	} else {
		/* the build is the fleet's prepare, beside the hosts: they
		 * connect and lock meanwhile, and wait for it (--wait-go); then
		 * the push, when there is one (prep_ended) */
		f.prep = &prep;
	}
	ret = fleet_deploy_hosts(&f, warnings, e);
out:
	fleet_roots_remove(roots);
	fleet_release(&f);
	fleet_realise_release(&build);
	if (members)
		fleet_members_free(members, n);
	strvec_clear(&names);
	strvec_clear(&drvs);
	free(ref);
	free(unused);
	return ret;
}
