#define _GNU_SOURCE
#include "prompt.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

int prompt_read_yes(int fd)
{
	char c = 0, answer = 0;
	while (read(fd, &c, 1) == 1 && c != '\n')
		if (!answer)
			answer = c;
	return answer == 'y' || answer == 'Y';
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
