#include "host.h"
#include "quote.h"

#include <stdio.h>
#include <string.h>

/* run0 has no way to keep the caller's PATH but to say it; "$@" is the
 * /bin/sh -c SCRIPT sh ARGS that follows. */
static const char run0_wrapper[] =
	"exec systemd-run --uid=0 --pipe --quiet --wait --collect "
	"--service-type=exec --send-sighup --setenv=PATH=\"$PATH\" -- \"$@\"";

static void push_elevated(struct strvec *words, const struct elevation *el)
{
	if (!el || el->kind == ELEVATE_NONE)
		return;
	if (el->kind == ELEVATE_SUDO) {
		strvec_push(words, "sudo");
		if (el->password)
			strvec_pushl(words, "-S", "-p", "", NULL);
		strvec_pushvec(words, &el->sudo_opts);
		strvec_push(words, "--");
	} else {
		strvec_pushl(words, "/bin/sh", "-c", run0_wrapper, "sh", NULL);
	}
}

void host_script_argv(const struct host *h, const struct elevation *el,
		      const char *script, const char *const *args,
		      struct child *c)
{
	struct strvec words = STRVEC_INIT;

	push_elevated(&words, el);
	strvec_pushl(&words, "/bin/sh", "-c", script, "sh", NULL);
	strvec_pushv(&words, args);
	if (!h->ssh) {
		strvec_pushvec(&c->args, &words);
	} else {
		struct strbuf cmd = STRBUF_INIT;
		sq_quote_argv(&cmd, words.v);
		ssh_host_argv(h->ctx, h->ssh, cmd.buf, &c->args);
		strbuf_release(&cmd);
	}
	strvec_clear(&words);
}

int host_run(const struct host *h, const struct elevation *el,
	     const char *step, const char *script, const char *const *args,
	     const void *input, size_t inlen, struct strbuf *out,
	     struct strbuf *err, int echo_fd, struct nrr_err *e)
{
	struct child c = CHILD_INIT;
	struct strbuf in = STRBUF_INIT, errbuf = STRBUF_INIT;
	int elevated = el && el->kind != ELEVATE_NONE;
	int st;

	host_script_argv(h, el, script, args, &c);
	c.in = CHILD_NULL;
	if (elevated && el->password) {
		strbuf_addstr(&in, el->password);
		strbuf_addch(&in, '\n');
	}
	if (input)
		strbuf_add(&in, input, inlen);
	if (!err)
		err = &errbuf;
	/* a local sudo without a password asks on the terminal itself */
	if (!h->ssh && elevated && !el->password && !in.len)
		c.in = CHILD_INHERIT;
	struct capture cap = { .in = in.len || input ? in.buf : NULL,
			       .in_len = in.len, .out = out, .err = err,
			       .echo_fd = echo_fd };
	st = child_capture(&c, &cap, e);
	strbuf_release_secret(&in);
	child_clear(&c);
	if (st < 0) {
		strbuf_release(&errbuf);
		return -1;
	}
	if (h->ssh && st == 255) {
		ssh_connect_error(h->ssh, err->buf, e);
		/* say which step lost the connection */
		nrr_prefix(e, step);
		strbuf_release(&errbuf);
		return -1;
	}
	strbuf_release(&errbuf);
	return st;
}
