/*
 * quote: the one place where words meet a shell.
 *
 * Remote commands travel through ssh as one string that the remote user's
 * login shell parses, and that shell may be sh, bash, dash, zsh or fish.
 * sq_quote_buf() produces a word all of them read back unchanged: runs of
 * ordinary characters inside single quotes, and each ' or \ outside quotes
 * as \' or \\ (fish treats \ specially even inside single quotes, so a
 * backslash never appears inside our quotes).
 *
 * Words containing a newline cannot be passed safely to every shell (csh),
 * but sh and fish accept them inside single quotes, which is all we need
 * for our own multi-line scripts.
 *
 * split_cmdline() is the inverse direction: it splits a user's option
 * string (NIX_SSHOPTS, NIX_SUDOOPTS) like a POSIX shell would, honouring
 * single and double quotes and backslashes, without any expansion.
 */
#ifndef NRR_QUOTE_H
#define NRR_QUOTE_H

#include "strbuf.h"
#include "strvec.h"

/* Appends s, quoted, to dst. */
void sq_quote_buf(struct strbuf *dst, const char *s);
/* Appends every word of argv, quoted, separated by single spaces. */
void sq_quote_argv(struct strbuf *dst, const char *const *argv);
/* Prints "$ " and argv quoted as sq_quote_argv does, a line on stderr: how
 * -v and --debug show a command they run. */
void sq_trace_argv(const char *const *argv);

/*
 * Splits s into words appended to out. Returns 0, or -1 (with a message in
 * *why, a static string) on an unterminated quote or trailing backslash;
 * out may then hold the words before the error: the caller clears it.
 */
int split_cmdline(const char *s, struct strvec *out, const char **why);

/* 1 if s is safe to show unquoted in a message or a log line. */
int is_plain_word(const char *s);

#endif
