#define _GNU_SOURCE
#include "prompt.h"
#include "fiber.h"
#include "resources.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

int prompt_read_yes(int fd)
{
	return prompt_read_go(fd, NULL);
}

/* What of the line has come on a socket: peeked, then read up to the
 * line's end and no further. 1 at its end, 0 for more to come, -1 for
 * no socket (ENOTSOCK: read a byte at a time). */
static int take_peeked(int fd, struct strbuf *line)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && errno == ENOTSOCK)
		return -1;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return 1;	/* its end, or an error: the line is what came */
	char *nl = memchr(buf, '\n', (size_t)n);
	size_t want = nl ? (size_t)(nl - buf) + 1 : (size_t)n;
	ssize_t got = read(fd, buf, want);
	if (got <= 0)
		return 1;
	strbuf_add(line, buf, nl && (size_t)got == want ? want - 1 : (size_t)got);
	return nl && (size_t)got == want;
}

int prompt_read_go(int fd, char **rest)
{
	struct strbuf line = STRBUF_INIT;
	char c;

	if (rest)
		*rest = NULL;
	fd = fiber_std_fd(fd);	/* 0: a fiber's stdin is its own */
	/* never past the line (the next is someone else's), and one wait
	 * for what has come, not one a byte: in a fleet's fiber each wait is
	 * a turn given away, and a go line carries a key. A socket (the
	 * fleet's) is peeked, two system calls a line; anything else is read
	 * a byte at a time, as much as FIONREAD says is there */
	for (int end = 0; !end && !fiber_wait_readable(fd);) {
		int ready = 0;
		if ((end = take_peeked(fd, &line)) >= 0)
			continue;
		end = 0;
		if (ioctl(fd, FIONREAD, &ready) < 0 || ready < 1)
			ready = 1;	/* its end: the read says so */
		for (; ready > 0 && !end; ready--) {
			if (read(fd, &c, 1) != 1 || c == '\n')
				end = 1;
			else
				strbuf_add(&line, &c, 1);
		}
	}
	int yes = line.len && (line.buf[0] == 'y' || line.buf[0] == 'Y');
	if (rest && yes && line.len > 2 && line.buf[1] == ' ')
		*rest = xstrdup(line.buf + 2);
	strbuf_release(&line);
	return yes;
}

int prompt_yes(const char *fmt, ...)
{
	va_list ap;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), yes;
	if (fd < 0)
		return 0;
	va_start(ap, fmt);
	vdprintf(fd, fmt, ap);
	va_end(ap);
	yes = prompt_read_yes(fd);
	close(fd);
	return yes;
}

/* One line from fd into *out (sodium memory), up to 1023 bytes. 0, or
 * PROMPT_INTERRUPTED (a signal ended the read: nothing is kept). */
static int read_secret_line(int fd, char **out, size_t *len)
{
	char *pw = sodium_init() < 0 ? NULL : sodium_malloc(1024), c;
	size_t n = 0;
	ssize_t got;

	*out = NULL;
	*len = 0;
	if (!pw)
		return PROMPT_NONE;
	while (n < 1023 && (got = read(fd, &c, 1)) == 1 && c != '\n' && c != '\r')
		pw[n++] = c;
	pw[n] = '\0';
	/* Ctrl-C ends read() (EINTR), not the password: nothing may go on
	 * with the part typed so far (a sudo attempt with it is a strike) */
	if (n < 1023 && got < 0 && errno == EINTR) {
		sodium_free(pw);	/* wipes it */
		return PROMPT_INTERRUPTED;
	}
	*out = pw;
	*len = n;
	return got == 1 || n ? 0 : PROMPT_NONE;
}

int prompt_password(const char *host, char **out)
{
	struct termios old, noecho;
	size_t len;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), st;

	secrets_held();
	if (fd < 0) {
		fputs("warning: no terminal to ask on: reading the sudo password from standard input\n",
		      stderr);
		st = read_secret_line(0, out, &len);
		if (st == PROMPT_NONE && *out) {
			sodium_free(*out);
			*out = NULL;
		}
		return st;
	}
	dprintf(fd, "[sudo] password for %s: ", host);
	int have_tc = !tcgetattr(fd, &old);
	if (have_tc) {
		noecho = old;
		noecho.c_lflag &= (tcflag_t)~ECHO;
		tcsetattr(fd, TCSANOW, &noecho);
	}
	st = read_secret_line(fd, out, &len);
	if (have_tc)
		tcsetattr(fd, TCSANOW, &old);
	dprintf(fd, "\n");
	close(fd);
	/* on a terminal an empty line is a password (sudo may take it) */
	return st == PROMPT_NONE && *out ? 0 : st;
}
