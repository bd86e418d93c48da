#include "fleetprep.h"

#include <stdlib.h>
#include <string.h>

/* The copy's work: the prepare, then what became of it. */
static int prep_proc(int fd, void *data)
{
	struct fleetprep *p = data;
	struct strvec warnings = STRVEC_INIT;
	struct nrr_err e;

	nrr_err_clear(&e);
	int ret = p->prep->run(p->prep->data, &warnings, &e);
	for (size_t i = 0; i < warnings.nr; i++)
		async_say_text(fd, 'x', warnings.v[i]);
	if (ret) {
		e.status = ret;
		async_say_error(fd, &e);
	} else if (p->prep->closure) {
		for (size_t i = 0; i < p->prep->closure->nr; i++)
			async_say_text(fd, 'c', p->prep->closure->v[i]);
	}
	strvec_clear(&warnings);
	return ret;
}

int fleetprep_start(struct fleetprep *p, const struct fleet_prepare *prep, struct nrr_err *e)
{
	memset(p, 0, sizeof(*p));
	p->prep = prep;
	strbuf_init(&p->in);
	strvec_init(&p->warnings);
	strvec_init(&p->closure);
	p->a.proc = prep_proc;
	p->a.data = p;
	if (async_start(&p->a, e)) {
		p->done = 1;
		return e->status;
	}
	return 0;
}

static void take_line(void *data, char *line)
{
	struct fleetprep *p = data;

	if (!strncmp(line, "x ", 2))
		strvec_push(&p->warnings, line + 2);
	else if (!strncmp(line, "c ", 2))
		strvec_push(&p->closure, line + 2);
	else if (!strncmp(line, "e ", 2))
		async_take_error(line, &p->err);
}

void fleetprep_take(struct fleetprep *p)
{
	strbuf_take_lines(&p->in, take_line, p);
}

void fleetprep_end(struct fleetprep *p)
{
	if (p->done)
		return;
	fleetprep_take(p);
	async_settle(&p->a, &p->err, "the fleet's build");
	p->done = 1;
}

void fleetprep_release(struct fleetprep *p)
{
	if (!p->done)
		async_stop(&p->a);
	p->done = 1;
	strbuf_release(&p->in);
	strvec_clear(&p->warnings);
	strvec_clear(&p->closure);
}
