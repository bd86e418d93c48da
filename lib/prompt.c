#define _GNU_SOURCE
#include "prompt.h"
#include "strbuf.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

int prompt_read_yes(int fd)
{
	return prompt_read_go(fd, NULL);
}

int prompt_read_go(int fd, char **rest)
{
	struct strbuf line = STRBUF_INIT;
	char c;

	if (rest)
		*rest = NULL;
	while (read(fd, &c, 1) == 1 && c != '\n')
		strbuf_add(&line, &c, 1);
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
