#include "quote.h"

#include <stdio.h>
#include <string.h>

void sq_quote_buf(struct strbuf *dst, const char *s)
{
	if (!*s) {
		strbuf_addstr(dst, "''");
		return;
	}
	/* a run without ' or \ quoted whole: the scripts sent are kilobytes,
	 * quoted once for each host of a fleet */
	while (*s) {
		size_t run = strcspn(s, "'\\");
		if (run) {
			strbuf_addch(dst, '\'');
			strbuf_add(dst, s, run);
			strbuf_addch(dst, '\'');
			s += run;
		}
		for (; *s == '\'' || *s == '\\'; s++) {
			strbuf_addch(dst, '\\');
			strbuf_addch(dst, *s);
		}
	}
}

void sq_quote_argv(struct strbuf *dst, const char *const *argv)
{
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			strbuf_addch(dst, ' ');
		sq_quote_buf(dst, argv[i]);
	}
}

int split_cmdline(const char *s, struct strvec *out, const char **why)
{
	struct strbuf word = STRBUF_INIT;
	int in_word = 0;

	while (*s) {
		char c = *s++;
		if (c == ' ' || c == '\t' || c == '\n') {
			if (in_word) {
				strvec_push(out, word.buf);
				strbuf_reset(&word);
				in_word = 0;
			}
			continue;
		}
		in_word = 1;
		if (c == '\'') {
			const char *end = strchr(s, '\'');
			if (!end)
				goto unterminated;
			strbuf_add(&word, s, (size_t)(end - s));
			s = end + 1;
		} else if (c == '"') {
			for (;;) {
				if (!*s)
					goto unterminated;
				c = *s++;
				if (c == '"')
					break;
				/* inside "", \ only escapes these */
				if (c == '\\' && *s && strchr("\"\\$`\n", *s))
					c = *s++;
				strbuf_addch(&word, c);
			}
		} else if (c == '\\') {
			if (!*s) {
				*why = "trailing backslash";
				strbuf_release(&word);
				return -1;
			}
			c = *s++;
			if (c != '\n')
				strbuf_addch(&word, c);
		} else {
			strbuf_addch(&word, c);
		}
	}
	if (in_word)
		strvec_push(out, word.buf);
	strbuf_release(&word);
	return 0;
unterminated:
	*why = "unterminated quote";
	strbuf_release(&word);
	return -1;
}

int is_plain_word(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789-_./:@+=,%", *s))
			return 0;
	return 1;
}

void sq_trace_argv(const char *const *argv)
{
	struct strbuf sb = STRBUF_INIT;
	sq_quote_argv(&sb, argv);
	fprintf(stderr, "$ %s\n", sb.buf);
	strbuf_release(&sb);
}
