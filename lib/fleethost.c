#define _GNU_SOURCE
#include "fleethost.h"
#include "fleetproto.h"
#include "fleetview.h"
#include "closuredb.h"
#include "deploykeys.h"
#include "fiber.h"
#include "quote.h"
#include "run.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Whether every host waits before it activates until the fleet answers
 * (its child gets --ask): for --ask's question, and for the cache route,
 * so that every host is checked against the cache before any is
 * activated (see answer_hosts).
 */
int fleet_holds(const struct options *o)
{
	return (o->ask && !o->yes) || o->push_to;
}

void fleet_child_argv(const struct options *o, const char *store_path,
		      const char *target, int password, int report_fd, struct strvec *argv)
{
	static const char *const elevates[] = { "none", "sudo", "run0" };

	strvec_pushl(argv, "/proc/self/exe", o->action, NULL);
	/* none for apply keys: it builds nothing */
	if (store_path)
		strvec_pushl(argv, "--store-path", store_path, NULL);
	strvec_pushl(argv, "--target-host", target, "--progress-fd", NULL);
	strvec_pushf(argv, "%d", report_fd);
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
	if (fleet_holds(o))
		strvec_push(argv, "--ask");
	/* the cache route: the fleet pushed; each host checks and fetches */
	if (o->cache_url)
		strvec_pushl(argv, "--cache-url", o->cache_url, NULL);
	if (o->cache_key)
		strvec_pushl(argv, "--cache-key", o->cache_key, NULL);
}

/* Shows the child's command line, as --debug and -v show commands. */
static void trace_child(const struct options *o, const struct strvec *argv)
{
	if (o->debug || o->verbose)
		sq_trace_argv((const char *const *)argv->v);
}

/* The fiber of a host: its deploy; the fleet sees it done (fiber_done). */
static int host_fiber(void *data)
{
	struct fleet_host *h = data;
	int ret = h->host_main((int)h->c.args.nr, (const char *const *)h->c.args.v);
	if (h->fiber_in >= 0)
		close(h->fiber_in);
	h->fiber_in = -1;
	return ret;
}

/* Starts h's deploy in a fiber (in: its stdin, the fiber's from now on),
 * its report into h->progress (lib/fiber.h: no pipe). */
static int start_fiber(struct fleet_host *h, int in, struct nrr_err *e)
{
	int err = memfd_create("nrr-host-stderr", MFD_CLOEXEC);

	/* (in < 0: the fibers' shared /dev/null) */
	h->fiber_in = in;
	h->fiber_err = err;
	if (err >= 0)
		h->fiber = fiber_new(host_fiber, h, in, err);
	if (!h->fiber) {
		int why = errno;
		if (err >= 0)
			close(err);
		if (in >= 0)
			close(in);
		h->fiber_in = h->fiber_err = -1;
		return nrr_fail(e, NRR_EFAIL, "cannot start the deploy of '%s': %s",
				h->m.name, strerror(why));
	}
	fiber_set_report(h->fiber, &h->progress);
	return 0;
}

int fleet_host_start(const struct options *o, struct fleet_host *h,
		     const char *password, const char *closure_db, const char *holder,
		     enum fleet_hold hold, struct nrr_err *e)
{
	int wait_go = hold != HOLD_NONE;
	int rep[2] = { -1, -1 }, pw[2] = { -1, -1 };
	int keys = h->m.keys && h->m.keys->nr;
	/* a deploy of ours, in this process: not one with keys on its stdin or
	 * an environment of its own, which a process of its own keeps apart */
	int in_fiber = o->host_main && !keys && !h->m.env.nr;

	if (in_fiber ? (rep[1] = fiber_report_fd()) < 0 : pipe2(rep, O_CLOEXEC))
		return nrr_fail(e, NRR_EFAIL, "%s: %s", in_fiber ? "/dev/null" : "pipe",
				strerror(errno));
	child_init(&h->c);
	h->fiber = NULL;
	h->fiber_in = h->fiber_err = -1;
	h->host_main = o->host_main;
	fleet_child_argv(o, h->path, h->m.target, password != NULL, in_fiber ? rep[1] : 3,
			 &h->c.args);
	/* the member's own (a hive node's elevation, ssh options) come last */
	strvec_pushvec(&h->c.args, &h->m.args);
	/* a hive node's keys follow the password on the child's stdin, read
	 * by it before anything else: never in argv or the environment */
	if (keys)
		strvec_pushl(&h->c.args, "--keys-fd", "0", NULL);
	if (closure_db && h->path)
		strvec_pushl(&h->c.args, "--closure-db", closure_db, NULL);
	if (holder)
		strvec_pushl(&h->c.args, "--lock-holder", holder, NULL);
	if (hold == HOLD_BUILD || hold == HOLD_BOTH)
		strvec_push(&h->c.args, "--wait-go");
	if (hold == HOLD_PUSH || hold == HOLD_BOTH)
		strvec_push(&h->c.args, "--wait-push");
	strvec_pushvec(&h->c.env, &h->m.env);
	trace_child(o, &h->c.args);
	h->c.in = CHILD_NULL;
	h->c.out = CHILD_NULL;
	h->c.err = CHILD_PIPE;
	h->c.map_fd = rep[1];
	h->c.map_to = 3;
	if (password || fleet_holds(o) || keys || wait_go) {
		/* the password waits in a pipe of its own, never in argv or env;
		 * the fleet's go and --ask's answer come the same way, later.
		 * A fiber's is a socket, whose lines it can peek at and take
		 * whole (prompt_read_go): no read a byte */
		if (in_fiber ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pw)
			     : pipe2(pw, O_CLOEXEC)) {
			int why = errno;
			if (!in_fiber) {
				close(rep[0]);
				close(rep[1]);
			}
			return nrr_fail(e, NRR_EFAIL, "pipe: %s", strerror(why));
		}
		if (in_fiber)
			shutdown(pw[0], SHUT_WR);	/* one way, as a pipe */
		/* the child's stdin: one line each (--password-fd 0, --ask) */
		h->c.in = CHILD_FD;
		h->c.in_fd = pw[0];
	}
	clock_gettime(CLOCK_MONOTONIC, &h->start);
	int ret;
	if (in_fiber) {
		ret = start_fiber(h, pw[0], e);
	} else {
		ret = child_start(&h->c, e);
		close(rep[1]);
	}
	if (ret) {
		if (rep[0] >= 0)
			close(rep[0]);
		if (pw[1] >= 0)
			close(pw[1]);
		return e->status;
	}
	h->progress_fd = rep[0];	/* a fiber's: -1, its report is h->progress */
	if (h->progress_fd >= 0)
		fcntl(h->progress_fd, F_SETFL, O_NONBLOCK);
	if (h->c.err_fd >= 0)
		fcntl(h->c.err_fd, F_SETFL, O_NONBLOCK);
	if (password) {
		struct strbuf sb = STRBUF_INIT;
		strbuf_addf(&sb, "%s\n", password);
		if (write(pw[1], sb.buf, sb.len) < 0) {
			/* the child is gone already; its result says why */
		}
		strbuf_release_secret(&sb);
	}
	/* The keys' texts (or where to read them) go straight from guarded
	 * memory into the pipe. Bigger than the pipe, the write waits for the
	 * child, which reads them first thing; a child gone is told by its
	 * result (its stdin ended early). */
	if (keys && keys_write_specs(h->m.keys, h->m.name, pw[1])) {
		/* the child's result says why */
	}
	if (fleet_holds(o) || wait_go) {
		h->answer_fd = pw[1];
		h->going = hold == HOLD_BOTH ? 2 : wait_go;
	} else if (pw[1] >= 0) {
		close(pw[1]);
	}
	h->state = H_RUNNING;
	fleet_set_phase(h, "connect");
	return 0;
}

struct fleet_host *fleet_hosts_new(const struct fleet_member *members, size_t n, double t0,
				   double evaluated, double built, size_t *namew)
{
	struct fleet_host *hosts = xcalloc(n ? n : 1, sizeof(*hosts));
	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		h->m = members[i];
		h->path = members[i].path ? xstrdup(members[i].path) : NULL;
		h->progress_fd = -1;
		h->answer_fd = -1;
		strbuf_init(&h->diff_text);
		strbuf_init(&h->plan_text);
		strbuf_init(&h->warn_text);
		strbuf_init(&h->progress);
		strbuf_init(&h->err);
		if (strlen(members[i].name) > *namew)
			*namew = strlen(members[i].name);
		h->phases = xcalloc(2, sizeof(*h->phases));
		h->phases[0] = (struct fleet_phase){ "evaluate", t0, evaluated };
		h->phases[1] = (struct fleet_phase){ "build", evaluated, built };
		h->nr_phases = 2;
	}
	return hosts;
}

void fleet_hosts_free(struct fleet_host *hosts, size_t n)
{
	for (size_t i = 0; hosts && i < n; i++) {
		free(hosts[i].path);
		free(hosts[i].phases);
		cJSON_Delete(hosts[i].diff);
		strbuf_release(&hosts[i].diff_text);
		strbuf_release(&hosts[i].plan_text);
		strbuf_release(&hosts[i].warn_text);
		strbuf_release(&hosts[i].progress);
		strbuf_release(&hosts[i].err);
	}
	free(hosts);
}

size_t fleet_hosts_asking(const struct fleet_host *hosts, size_t n)
{
	size_t asking = 0;
	for (size_t i = 0; i < n; i++)
		asking += hosts[i].asking;
	return asking;
}

size_t fleet_hosts_connecting(const struct fleet_host *hosts, size_t n)
{
	size_t connecting = 0;
	for (size_t i = 0; i < n; i++)
		connecting += hosts[i].state == H_RUNNING && !strcmp(hosts[i].phase, "connect");
	return connecting;
}

void fleet_hosts_built_go(struct fleet_host *hosts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		if (h->going == 2 && write(h->answer_fd, "y\n", 2) == 2)
			h->going = 1;
	}
}

void fleet_hosts_systems(const struct fleet_host *hosts, size_t n, struct strvec *tops)
{
	for (size_t i = 0; i < n; i++) {
		const char *p = hosts[i].path;
		if (p && (hosts[i].state == H_WAITING || hosts[i].state == H_RUNNING) &&
		    strvec_find(tops, p) < 0)
			strvec_push(tops, p);
	}
}

int fleet_hosts_dump(const struct fleet_host *hosts, size_t n, const struct strvec *closure,
		     const char *dir)
{
	struct strvec tops = STRVEC_INIT;
	struct closuredb db = CLOSUREDB_INIT;
	const char **each = xcalloc(n + 1, sizeof(*each));
	int ret;

	fleet_hosts_systems(hosts, n, &tops);
	for (size_t i = 0; i < n; i++)
		each[i] = hosts[i].path;
	ret = !tops.nr || closuredb_load_here(&tops, closure, &db) ||
	      closuredb_split(&db, dir, each, n) ? -1 : 0;
	closuredb_release(&db);
	strvec_clear(&tops);
	free(each);
	return ret;
}

/* One line of the child's report. */
static void take_report(void *data, char *line)
{
	struct fleet_host *h = data;
	struct fleetproto_msg m;

	fleetproto_parse(line, &m);
	switch (m.kind) {
	case FLEETPROTO_PHASE: {
		double at;
		char *name = fleetproto_phase_parse(m.text, &at);
		fleet_set_phase_at(h, name, at);
		free(name);
		break;
	}
	case FLEETPROTO_SAY:
		strbuf_addf(!strncmp(m.text, "plan for '", 10) ? &h->plan_text
							       : &h->diff_text, "%s\n", m.text);
		break;
	case FLEETPROTO_WARN: {
		char shown[2048];
		strbuf_addf(&h->warn_text, "warning: %s: %s\n", h->m.name,
			    nrr_one_line_of(shown, sizeof(shown), m.text));
		break;
	}
	case FLEETPROTO_DIFF:
		cJSON_Delete(h->diff);
		h->diff = m.diff;
		break;
	case FLEETPROTO_ASK:
		h->asking = 1;
		fleet_set_phase(h, "ask");
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
}

/* Takes the complete lines of the child's report. */
void fleet_host_read(struct fleet_host *h)
{
	strbuf_take_lines(&h->progress, take_report, h);
}

void fleet_host_keep_tail(struct strbuf *err)
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

/* What a fiber wrote on its stderr: its tail, into h->err. */
static void take_fiber_stderr(struct fleet_host *h)
{
	char buf[16384];
	ssize_t n;
	off_t at = 0;

	while ((n = pread(h->fiber_err, buf, sizeof(buf), at)) > 0) {
		strbuf_add(&h->err, buf, (size_t)n);
		at += n;
		fleet_host_keep_tail(&h->err);
	}
	close(h->fiber_err);
	h->fiber_err = -1;
}

int fleet_host_over(const struct fleet_host *h)
{
	int ret;
	if (h->progress_fd >= 0 || h->c.err_fd >= 0)
		return 0;
	return !h->fiber || fiber_done(h->fiber, &ret);
}

void fleet_host_finish(struct fleet_host *h)
{
	int st;
	if (h->fiber) {
		fiber_done(h->fiber, &st);
		fiber_free(h->fiber);
		h->fiber = NULL;
		take_fiber_stderr(h);
	} else {
		st = child_wait(&h->c);
	}
	clock_gettime(CLOCK_MONOTONIC, &h->end);
	if (h->progress_fd >= 0) {
		fd_drain(&h->progress_fd, &h->progress, -1);
		if (h->progress_fd >= 0)
			close(h->progress_fd);
		h->progress_fd = -1;
	}
	fleet_host_read(h);
	if (h->answer_fd >= 0)
		close(h->answer_fd);
	h->answer_fd = -1;
	h->asking = 0;
	if (!h->status && st)
		h->status = st;		/* died without a result */
	if (h->status && !h->step[0])
		snprintf(h->step, sizeof(h->step), "deploy");
	h->state = H_DONE;
	fleet_end_phases(h);
	child_clear(&h->c);
}
