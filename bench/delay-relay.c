/*
 * delay-relay: a TCP relay that plays a distant host, for the benchmarks.
 *
 *   ProxyCommand /path/delay-relay DELAY_MS %h %p COUNTFILE [RATE]
 *
 * Connects to HOST:PORT (an IPv4 address in 127.0.0.0/8, or "localhost": nothing else, so
 * that a benchmark never sends traffic off this machine), then relays stdin to the socket
 * and the socket to stdout. Every chunk read on one side is held DELAY_MS milliseconds
 * before it is written to the other: a one-way delay, so a round trip costs 2 * DELAY_MS.
 * netem is not available on the bench machine; this gives ssh the same latency per round
 * trip.
 *
 * RATE (bytes per second, each direction on its own; 0 or absent: unlimited) makes each
 * direction a link of that bandwidth: a chunk leaves when the chunks before it have left,
 * after len / RATE seconds on the link, and arrives DELAY_MS after that. Chunks are then at
 * most 10 ms of the link's time, and a direction holds at most one round trip's worth of
 * bytes plus one chunk (as a TCP sender's window would): the writer feels the link's pace.
 *
 * SHARED (a file path, with a RATE) makes that link one for every relay given the same file:
 * all connections of a run then share RATE each way, as the hosts behind one office or home
 * line do. The file holds each direction's "link free at" time (mmap'ed, updated with an
 * atomic compare-and-swap); a relay stops reading a direction while the shared link is busy
 * for more than a round trip ahead (at least 10 ms), a router's buffer, so that no
 * connection queues seconds of everybody's data.
 *
 * COUNTFILE gets two lines appended (O_APPEND, one write each, so that relays of parallel
 * connections do not mix their lines):
 *   "open"        when the connection is made,
 *   "SENT RECV"   at exit: bytes read from stdin (client to host) and from the socket (host
 *                 to client), i.e. the traffic an ssh connection to this host cost.
 * A reader waits until every "open" has its counts line before it sums them. A failure
 * after the connection is made is appended as "# error: ..." (stderr is gone by then).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MAX 65536
/* Stop reading a side while this much of its data waits: back-pressure, bounded memory. */
#define QUEUE_MAX (8u << 20)

struct chunk {
	struct chunk *next;
	int64_t due;  /* monotonic microseconds at which it may be written */
	size_t len, off;
	char data[];
};

/* One direction: from fd `in`, held, then written to fd `out`. */
struct pipe_dir {
	int in, out;
	struct chunk *head, *tail;
	size_t queued;
	int64_t link_free;         /* with a rate: when the link has sent all read so far */
	_Atomic int64_t *shared;   /* with SHARED: the link every relay of the file shares */
	unsigned long long bytes;  /* read from `in` */
	int eof;                   /* `in` said EOF (or failed) */
	int done;                  /* everything written and `out` shut: direction over */
};

static const char *count_path;
/* Bandwidth of each direction in bytes/s (0: unlimited), and what follows from it. */
static long long rate;
static size_t read_max = CHUNK_MAX, queue_max = QUEUE_MAX;
/* With SHARED: read no more while the shared link is busy this far ahead (microseconds). */
static int64_t shared_ahead;
/* ssh ends its ProxyCommand with SIGHUP: the counts must still be written. */
static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void append_count_line(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	int fd = open(count_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
	close(fd);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int parse_loopback(const char *host, struct in_addr *a)
{
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, a) != 1)
		return -1;
	return (ntohl(a->s_addr) >> 24) == 127 ? 0 : -1;
}

/* Read what `d->in` has into a new chunk due `delay` from now (with a rate: from when the
 * link has sent it). */
static void dir_read(struct pipe_dir *d, int64_t delay)
{
	struct chunk *c = malloc(sizeof(*c) + CHUNK_MAX);
	if (!c) {
		append_count_line("# error: out of memory\n");
		exit(1);
	}
	ssize_t n = read(d->in, c->data, read_max);
	if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
		free(c);
		return;
	}
	if (n <= 0) {
		free(c);
		d->eof = 1;
		return;
	}
	c->len = (size_t)n;
	c->off = 0;
	int64_t t = now_us();
	if (rate > 0 && d->shared) {
		int64_t old = atomic_load(d->shared), next;
		do
			next = (old < t ? t : old) + (int64_t)((double)n * 1e6 / (double)rate);
		while (!atomic_compare_exchange_weak(d->shared, &old, next));
		t = next;
	} else if (rate > 0) {
		if (d->link_free < t)
			d->link_free = t;
		d->link_free += (int64_t)((double)n * 1e6 / (double)rate);
		t = d->link_free;
	}
	c->due = t + delay;
	c->next = NULL;
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	d->queued += c->len;
	d->bytes += c->len;
}

/* Write the chunks that are due; -1 when `out` refuses (its reader is gone). */
static int dir_write(struct pipe_dir *d)
{
	int64_t t = now_us();
	while (d->head && d->head->due <= t) {
		struct chunk *c = d->head;
		ssize_t n = write(d->out, c->data + c->off, c->len - c->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		c->off += (size_t)n;
		d->queued -= (size_t)n;
		if (c->off < c->len)
			return 0;
		d->head = c->next;
		if (!d->head)
			d->tail = NULL;
		free(c);
	}
	return 0;
}

static void dir_drop(struct pipe_dir *d)
{
	while (d->head) {
		struct chunk *c = d->head;
		d->head = c->next;
		free(c);
	}
	d->tail = NULL;
	d->queued = 0;
	d->eof = 1;
	d->done = 1;
}

/* The two "link free at" times of SHARED, made and sized by whoever comes first. */
static _Atomic int64_t *map_shared(const char *path)
{
	size_t size = 2 * sizeof(_Atomic int64_t);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return NULL;
	/* growing to the same size twice is harmless; a fresh file reads as zeros */
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return NULL;
	}
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return m == MAP_FAILED ? NULL : m;
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 7) {
		fprintf(stderr, "usage: delay-relay DELAY_MS HOST PORT COUNTFILE [RATE [SHARED]]\n");
		return 2;
	}
	char *end;
	long delay_ms = strtol(argv[1], &end, 10);
	long port = strtol(argv[3], NULL, 10);
	count_path = argv[4];
	if (*argv[1] == '\0' || *end != '\0' || delay_ms < 0 || delay_ms > 60000) {
		fprintf(stderr, "delay-relay: bad delay '%s' (0..60000 ms)\n", argv[1]);
		return 2;
	}
	if (argc >= 6) {
		rate = strtoll(argv[5], &end, 10);
		if (*argv[5] == '\0' || *end != '\0' || rate < 0 || rate > 100000000000LL) {
			fprintf(stderr, "delay-relay: bad rate '%s' (bytes/s, 0 = unlimited)\n",
				argv[5]);
			return 2;
		}
	}
	if (rate > 0) {
		/* 10 ms of the link a chunk (at least 1 KiB); a round trip's worth in flight */
		long long r = rate / 100, q = rate * 2 * delay_ms / 1000 + CHUNK_MAX;
		read_max = (size_t)(r < 1024 ? 1024 : r > CHUNK_MAX ? CHUNK_MAX : r);
		queue_max = (size_t)(q > QUEUE_MAX ? QUEUE_MAX : q);
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "delay-relay: bad port '%s'\n", argv[3]);
		return 2;
	}
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (parse_loopback(argv[2], &sa.sin_addr)) {
		fprintf(stderr, "delay-relay: refusing '%s': only addresses in 127.0.0.0/8\n",
			argv[2]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* No SA_RESTART: poll() returns EINTR and the loop ends. */
	struct sigaction act;
	memset(&act, 0, sizeof(act));
	act.sa_handler = on_signal;
	sigaction(SIGHUP, &act, NULL);
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);

	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "delay-relay: cannot connect to %s:%ld: %s\n", argv[2], port,
			strerror(errno));
		return 1;
	}
	/* Chunks must leave when due, not when Nagle decides. */
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	append_count_line("open\n");
	/*
	 * Processes started by ProxyCommand keep ssh's stderr; a caller that reads a master's
	 * stderr to EOF would wait for this relay as long as the master lives. Let it go.
	 */
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, 2);
		close(devnull);
	}
	set_nonblock(s);
	set_nonblock(1);

	int64_t delay = (int64_t)delay_ms * 1000;
	struct pipe_dir up = { .in = 0, .out = s }, down = { .in = s, .out = 1 };
	if (argc == 7 && rate > 0) {
		_Atomic int64_t *link = map_shared(argv[6]);
		if (!link) {
			append_count_line("# error: cannot map %s: %s\n", argv[6], strerror(errno));
			return 1;
		}
		up.shared = &link[0];
		down.shared = &link[1];
		shared_ahead = 2 * delay > 10000 ? 2 * delay : 10000;
	}
	struct pipe_dir *dirs[2] = { &up, &down };

	while ((!up.done || !down.done) && !stop_sig) {
		struct pollfd pfd[4];
		struct pipe_dir *owner[4];
		int nfd = 0, timeout = -1;
		int64_t t = now_us();

		for (int i = 0; i < 2; i++) {
			struct pipe_dir *d = dirs[i];
			if (d->done)
				continue;
			int64_t busy = d->shared ? atomic_load(d->shared) - shared_ahead - t : 0;
			if (busy > 0 && !d->eof) {
				int ms = (int)((busy + 999) / 1000);
				if (timeout < 0 || ms < timeout)
					timeout = ms;
			} else if (!d->eof && d->queued < queue_max) {
				pfd[nfd] = (struct pollfd){ .fd = d->in, .events = POLLIN };
				owner[nfd++] = d;
			}
			if (d->head) {
				if (d->head->due <= t) {
					pfd[nfd] = (struct pollfd){ .fd = d->out, .events = POLLOUT };
					owner[nfd++] = d;
				} else {
					int64_t ms = (d->head->due - t + 999) / 1000;
					if (timeout < 0 || ms < timeout)
						timeout = (int)ms;
				}
			}
		}
		if (poll(pfd, (nfds_t)nfd, timeout) < 0) {
			if (errno == EINTR)
				continue;
			append_count_line("# error: poll: %s\n", strerror(errno));
			break;
		}
		for (int i = 0; i < nfd; i++) {
			struct pipe_dir *d = owner[i];
			if (!pfd[i].revents || d->done)
				continue;
			if (pfd[i].events & POLLIN) {
				dir_read(d, delay);
			} else if (dir_write(d) < 0) {
				/* Its reader is gone: nothing more can pass either way. */
				dir_drop(&up);
				dir_drop(&down);
			}
		}
		/* A direction whose source ended and whose queue is empty passes the EOF on. */
		for (int i = 0; i < 2; i++) {
			struct pipe_dir *d = dirs[i];
			if (!d->done && d->eof && !d->head) {
				d->done = 1;
				if (d == &up)
					shutdown(s, SHUT_WR);
				else
					close(1);
			}
		}
	}
	append_count_line("%llu %llu\n", up.bytes, down.bytes);
	close(s);
	return 0;
}
