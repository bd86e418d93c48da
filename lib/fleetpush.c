#include "fleetpush.h"
#include "pushto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct go {
	struct strvec *tops, *closure;
	int said;		/* "g" came */
};

static void go_line(void *data, char *line)
{
	struct go *g = data;
	if (!strncmp(line, "t ", 2))
		strvec_push(g->tops, line + 2);
	else if (!strncmp(line, "c ", 2))
		strvec_push(g->closure, line + 2);
	else if (!strcmp(line, "g"))
		g->said = 1;
}

/* In the copy: what the fleet has it push (fleetpush_go). 0, or -1 when
 * the fleet closed the socket first (nothing to push). */
static int read_go(int fd, struct strvec *tops, struct strvec *closure)
{
	struct strbuf in = STRBUF_INIT;
	struct go g = { tops, closure, 0 };
	char buf[16384];

	while (!g.said) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR && !run_interrupted())
			continue;
		if (n <= 0)
			break;
		strbuf_add(&in, buf, (size_t)n);
		strbuf_take_lines(&in, go_line, &g);
	}
	strbuf_release(&in);
	return g.said ? 0 : -1;
}

/* The copy's work: the cache host's handshake, the go, the push, then
 * what became of it. */
static int push_proc(int fd, void *data)
{
	struct fleetpush *p = data;
	struct strvec warnings = STRVEC_INIT, unsaid = STRVEC_INIT;
	struct strvec tops = STRVEC_INIT, closure = STRVEC_INIT;
	struct ssh_ctx ctx;
	struct ssh_host sh;
	struct nrr_err e;
	unsigned long long relayed = 0;
	int ret = 0;

	nrr_err_clear(&e);
	memset(&ctx, 0, sizeof(ctx));
	memset(&sh, 0, sizeof(sh));
	child_init(&sh.master_proc);
	/* (what ssh's settings warn of, the push's own connection says) */
	if (p->o->cache_host && !(ret = ssh_ctx_init(&ctx, &unsaid, &e))) {
		ctx.trace = p->o->debug || p->o->verbose;
		if (!(ret = ssh_host_resolve(&ctx, p->o->cache_host, &sh, &e)))
			ret = ssh_host_connect(&ctx, &sh, &e);
	}
	int ended = !ret && read_go(fd, &tops, &closure);	/* before its push */
	/* a long evaluation may have outlived that connection (its keepalives
	 * unanswered): one more handshake then */
	if (!ret && !ended && p->o->cache_host && !ssh_host_alive(&sh))
		ret = ssh_host_reconnect(&ctx, &sh, &e);
	if (!ret && !ended)
		ret = pushto_push(p->o, &tops, 0, &closure, p->o->cache_host ? &sh : NULL,
				  &warnings, &relayed, &e);
	ssh_host_release(&ctx, &sh);
	ssh_ctx_release(&ctx);
	strvec_clear(&unsaid);
	strvec_clear(&tops);
	strvec_clear(&closure);
	if (ended) {
		strvec_clear(&warnings);
		return 0;	/* the fleet had nothing to push */
	}
	/* (Ctrl-C reaches the copy too, and its commands from it) */
	if (ret && run_interrupted())
		ret = nrr_fail(&e, NRR_EINT, "interrupted while pushing to the cache '%s'",
			       p->o->push_to);
	for (size_t i = 0; i < warnings.nr; i++)
		async_say_text(fd, 'x', warnings.v[i]);
	if (ret) {
		e.status = ret;
		async_say_error(fd, &e);
	} else {
		async_say(fd, "k %s\n", p->o->cache_key && !strpbrk(p->o->cache_key, " \t\n") ?
				       p->o->cache_key : "-");
	}
	strvec_clear(&warnings);
	return ret;
}

int fleetpush_start(struct fleetpush *p, struct options *o, struct nrr_err *e)
{
	memset(p, 0, sizeof(*p));
	p->o = o;
	strbuf_init(&p->in);
	strvec_init(&p->warnings);
	p->a.proc = push_proc;
	p->a.data = p;
	if (async_start(&p->a, e)) {
		p->done = 1;
		return e->status;
	}
	return 0;
}

int fleetpush_go(struct fleetpush *p, const struct strvec *tops, const struct strvec *closure)
{
	struct strbuf go = STRBUF_INIT;
	int ret = -1;

	for (size_t i = 0; i < tops->nr; i++)
		strbuf_addf(&go, "t %s\n", tops->v[i]);
	for (size_t i = 0; i < closure->nr; i++)
		strbuf_addf(&go, "c %s\n", closure->v[i]);
	strbuf_addstr(&go, "g\n");
	if (!p->done && p->a.out >= 0) {
		/* our end is the fleet loop's, nonblocking; the copy is reading */
		int fl = fcntl(p->a.out, F_GETFL);
		fcntl(p->a.out, F_SETFL, fl & ~O_NONBLOCK);
		ret = fd_write_all(p->a.out, go.buf, go.len);
		fcntl(p->a.out, F_SETFL, fl);
	}
	strbuf_release(&go);
	return ret;
}

void fleetpush_line(struct fleetpush *p, const char *line)
{
	if (!strncmp(line, "k ", 2)) {
		free(p->key);
		p->key = strcmp(line + 2, "-") ? xstrdup(line + 2) : NULL;
	} else if (!strncmp(line, "x ", 2)) {
		strvec_push(&p->warnings, line + 2);
	} else if (!strncmp(line, "e ", 2)) {
		async_take_error(line, &p->err);
	}
}

static void take_line(void *data, char *line)
{
	fleetpush_line(data, line);
}

void fleetpush_take(struct fleetpush *p)
{
	strbuf_take_lines(&p->in, take_line, p);
}

void fleetpush_end(struct fleetpush *p)
{
	if (p->done)
		return;
	fleetpush_take(p);
	async_settle(&p->a, &p->err, "the push to the cache");
	p->done = 1;
}

void fleetpush_release(struct fleetpush *p)
{
	if (!p->done)
		async_stop(&p->a);
	p->done = 1;
	strbuf_release(&p->in);
	strvec_clear(&p->warnings);
	free(p->key);
	p->key = NULL;
}
