#include "host.h"
#include "quote.h"
#include "scripts.h"

#include <stdio.h>
#include <string.h>

static void push_elevated(struct strvec *words, const struct elevation *el)
{
	if (!el || el->kind == ELEVATE_NONE)
		return;
	if (el->kind == ELEVATE_SUDO) {
		strvec_push(words, "sudo");
		if (el->password)
			strvec_pushl(words, "-S", "-p", HOST_SUDO_PROMPT, NULL);
		strvec_pushvec(words, &el->sudo_opts);
		strvec_push(words, "--");
	} else if (el->kind == ELEVATE_COMMAND) {
		strvec_pushvec(words, &el->sudo_opts);	/* the command */
	} else {
		strvec_pushl(words, "/bin/sh", "-c", script_run0, "sh", NULL);
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
	/* sudo reads it (before any input) only if it asks; a script run
	 * this way reads no input of its own (see session.h for one that
	 * does); run0 never reads one */
	if (elevated && el->kind == ELEVATE_SUDO && el->password) {
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
	for (char *p; (p = strstr(err->buf, HOST_SUDO_PROMPT));) {
		size_t n = strlen(HOST_SUDO_PROMPT);
		memmove(p, p + n, err->len - (size_t)(p - err->buf) - n + 1);
		strbuf_setlen(err, err->len - n);
	}
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
