#include "reboot.h"
#include "fiber.h"
#include "quote.h"
#include "run.h"
#include "scripts.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* REBOOT_ST_* come from lib/scripts/reboot.def. */

void reboot_result_release(struct reboot_result *r)
{
	free(r->old_boot_id);
	free(r->new_boot_id);
	free(r->system);
	memset(r, 0, sizeof(*r));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps s seconds, or less if interrupted. */
static void pause_for(double s)
{
	if (s > 0)
		fiber_sleep_ms((long)(s * 1000));
}

/* Line number n (0-based) of text, malloc'ed, or NULL. */
static char *nth_line(const char *text, int n)
{
	for (; n > 0 && text; n--) {
		text = strchr(text, '\n');
		if (text)
			text++;
	}
	if (!text || !*text)
		return NULL;
	return xstrndup(text, strcspn(text, "\n"));
}

/* A boot id: 36 characters of hex digits and dashes. */
static int is_boot_id(const char *s)
{
	if (!s || strlen(s) != 36)
		return 0;
	for (; *s; s++)
		if (!strchr("0123456789abcdefABCDEF-", *s))
			return 0;
	return 1;
}

/* Runs c, collecting stdout and stderr, until it ends or until deadline
 * (then it is killed). Returns its status, or -1 (not started, or killed). */
static int run_until(struct child *c, double deadline, struct strbuf *out,
		     struct strbuf *err)
{
	struct nrr_err e;
	int killed = 0;

	c->in = CHILD_NULL;
	c->out = c->err = CHILD_PIPE;
	if (child_start(c, &e))
		return -1;
	while (c->out_fd >= 0 || c->err_fd >= 0) {
		double left = deadline - now();
		if (left <= 0 || run_interrupted()) {
			child_kill(c, SIGKILL);
			killed = 1;
			left = 1;	/* now only reading what is left */
		}
		struct pump_fd fds[] = {
			{ .fd = &c->out_fd, .sb = out },
			{ .fd = &c->err_fd, .sb = err },
		};
		if (pump(fds, 2, (int)(left * 1000) + 1) < 0)
			break;
	}
	int st = child_wait(c);
	return killed ? -1 : st;
}

/* One attempt: a new connection asking for the boot id and the system.
 * Returns 1 with them (malloc'ed) when it answered, else 0 with why. */
static int ask_booted(const struct host *h, double deadline, char **boot_id,
		      char **system, struct strbuf *why)
{
	struct child c = CHILD_INIT;
	struct strbuf cmd = STRBUF_INIT, out = STRBUF_INIT, err = STRBUF_INIT;
	const char *words[] = { "/bin/sh", "-c", script_booted, NULL };
	int left = (int)(deadline - now()), st, ok = 0;

	sq_quote_argv(&cmd, words);
	/* the connection attempt, not only the whole run, is bounded */
	ssh_host_argv_fresh(h->ctx, h->ssh, cmd.buf, left < 10 ? (left > 0 ? left : 1) : 10,
			    &c.args);
	st = run_until(&c, deadline, &out, &err);
	*boot_id = nth_line(out.buf, 0);
	*system = nth_line(out.buf, 1);
	if (st == 0 && is_boot_id(*boot_id)) {
		ok = 1;
	} else {
		size_t n;
		const char *l = last_line(err.buf, &n);
		strbuf_reset(why);
		if (n)
			strbuf_add(why, l, n);
		else
			strbuf_addstr(why, st < 0 ? "no answer" : "no boot id");
		free(*boot_id);
		free(*system);
		*boot_id = *system = NULL;
	}
	child_clear(&c);
	strbuf_release(&cmd);
	strbuf_release(&out);
	strbuf_release(&err);
	return ok;
}

int reboot_host(const struct host *h, const struct elevation *el,
		const struct reboot_opts *o, struct reboot_result *r,
		struct nrr_err *e)
{
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT, why = STRBUF_INIT;
	const char *args[] = { NULL };
	int timeout = o->timeout > 0 ? o->timeout : REBOOT_TIMEOUT_DEFAULT;
	int interval = o->interval > 0 ? o->interval : REBOOT_INTERVAL_DEFAULT;
	double deadline;
	int st, ret = 0;

	memset(r, 0, sizeof(*r));
	if (!h->ssh)
		return nrr_fail(e, NRR_EUSAGE, "--reboot reboots remote hosts, not this machine");
	st = host_run(h, el, "reboot", script_reboot, args, NULL, 0, &out, &err, -1, e);
	r->old_boot_id = nth_line(out.buf, 0);
	if (st == REBOOT_ST_NO_BOOT_ID) {
		ret = nrr_fail(e, NRR_EFAIL, "'%s' has no boot id "
			       "(/proc/sys/kernel/random/boot_id) to prove a reboot by; not rebooted",
			       h->name);
	} else if (!is_boot_id(r->old_boot_id)) {
		/* it did not get as far as the reboot: e says why, or st does */
		if (st >= 0) {
			size_t n;
			const char *l = last_line(err.buf, &n);
			ret = nrr_fail(e, NRR_EFAIL, "cannot reboot '%s': status %d%s%.*s",
				       h->name, st, n ? ": " : "", (int)n, l);
		} else {
			ret = e->status;
		}
	} else if (st == REBOOT_ST_REFUSED) {
		size_t n;
		const char *l = last_line(err.buf, &n);
		ret = nrr_fail(e, NRR_EFAIL, "the reboot of '%s' failed%s%.*s; not rebooted",
			       h->name, n ? ": " : "", (int)n, l);
	}
	/* st 0, or -1 for the connection that dropped as the host went down */
	strbuf_release(&out);
	strbuf_release(&err);
	if (ret)
		return ret;
	nrr_err_clear(e);

	deadline = now() + timeout;
	strbuf_addstr(&why, "no answer");
	for (;;) {
		char *id = NULL, *sys = NULL;
		double wake = now() + interval;
		if (wake > deadline)
			wake = deadline;
		pause_for(wake - now());
		if (run_interrupted()) {
			ret = nrr_fail(e, NRR_EINT, "interrupted while waiting for '%s' to come back",
				       h->name);
			break;
		}
		if (now() >= deadline) {
			ret = nrr_fail(e, NRR_EREBOOT, "'%s' did not come back within %d s after the reboot",
				       h->name, timeout);
			nrr_hint(e, "the last attempt: %s; it may still be booting, or did not boot "
				 "(its console says); --reboot-timeout waits longer", why.buf);
			break;
		}
		r->attempts++;
		if (!ask_booted(h, deadline, &id, &sys, &why))
			continue;
		if (!strcmp(id, r->old_boot_id)) {
			/* not down yet */
			strbuf_reset(&why);
			strbuf_addstr(&why, "it had not gone down yet");
			free(id);
			free(sys);
			continue;
		}
		r->new_boot_id = id;
		r->system = sys;
		if (o->expect && (!sys || strcmp(sys, o->expect))) {
			ret = nrr_fail(e, NRR_EACTIVATE, "'%s' came back running %s, not the new system %s",
				       h->name, sys && *sys ? sys : "no system", o->expect);
			nrr_hint(e, "it booted another generation: is the new one its boot loader's default?");
		}
		break;
	}
	strbuf_release(&why);
	if (!ret && h->ssh->connected)
		ret = ssh_host_reconnect(h->ctx, h->ssh, e);
	return ret;
}
