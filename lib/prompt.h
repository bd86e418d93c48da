/*
 * prompt: yes-or-no questions. --ask asks on the terminal (/dev/tty, so
 * that it works with stdin and stderr redirected); a fleet's child hears
 * its fleet's answer on a pipe. Either way the answer is one line.
 */
#ifndef NRR_PROMPT_H
#define NRR_PROMPT_H

/* Reads one line from fd: 1 if it starts with 'y' or 'Y', 0 for anything
 * else or the end of input. */
int prompt_read_yes(int fd);

/* The same, and, when rest is set, what follows "y " on that line (a
 * fleet's go: the cache route's key, learned by the fleet's push after
 * its hosts started), as a malloc'ed string into *rest (the caller frees
 * it), or NULL. */
int prompt_read_go(int fd, char **rest);

/* Asks the question (printf-style) on the terminal and reads the answer
 * there. Returns 1 for yes; 0 for no, end of input or no terminal. */
int prompt_yes(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Reads a sudo password into sodium memory (*out; sodium_free wipes it),
 * once secrets_held() made this process keep it to itself: on the
 * terminal without echo, asked as sudo asks for host's; without one,
 * standard input's first line, as nixos-rebuild's getpass takes it (a
 * warning says so). Returns 0; PROMPT_NONE, *out NULL, when there is no
 * terminal and nothing on standard input; PROMPT_INTERRUPTED, *out NULL,
 * when a signal ended the read.
 */
#define PROMPT_NONE 1
#define PROMPT_INTERRUPTED 2
int prompt_password(const char *host, char **out);

#endif
