/*
 * test-tool's daemon-chat: lib/daemon.c against a scripted nix-daemon, for
 * what the real one here (Nix 2.8) never says: another protocol version,
 * its trust in the greeting, activities, a structured error with colours.
 * The tests of the real daemon are in tests/on.bats.
 *
 *   daemon-chat SCENARIO DIR
 *
 * The fake daemon listens on DIR/socket, checks every word the client
 * sends (the greeting and trust probe, QueryValidPaths, one AddToStoreNar
 * a path with its NAR framed) and prints what it got as "daemon: ..."; the
 * client prints "hello: ...", "valid: ...", "add: ...". The two paths are
 * files made in DIR (b refers to a). SCENARIO: nix28 (protocol 1.34, no
 * trust in the greeting: the probe answers), trusting (1.35, trusted),
 * distrusting (1.35, not trusted), untrusted-probe (1.34, the probe is
 * refused), old (1.31), failing (1.34, b's import fails with an error in
 * colours and a trace), flooding (1.34: at b's import it stops reading and
 * writes 17 MiB of log lines nobody asked for).
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/daemon.h"
#include "../lib/narexport.h"
#include "../lib/run.h"
#include "../lib/serveproto.h"
#include "../lib/strbuf.h"

int test_tool_daemon(int argc, const char **argv);

#define STDERR_NEXT 0x6f6c6d67ULL
#define STDERR_LAST 0x616c7473ULL
#define STDERR_ERROR 0x63787470ULL
#define STDERR_START_ACTIVITY 0x53545254ULL
#define STDERR_STOP_ACTIVITY 0x53544f50ULL
#define STDERR_RESULT 0x52534c54ULL

static int rd_u64(int fd, uint64_t *v)
{
	unsigned char b[8];
	if (fd_read_exact(fd, b, 8))
		return -1;
	*v = serveproto_get_u64(b);
	return 0;
}

/* A string into s (reset first). */
static int rd_str(int fd, struct strbuf *s)
{
	uint64_t len;
	char pad[8];
	if (rd_u64(fd, &len) || len > 4096)
		return -1;
	strbuf_reset(s);
	strbuf_grow(s, (size_t)len + 1);
	if (fd_read_exact(fd, s->buf, (size_t)len))
		return -1;
	strbuf_setlen(s, (size_t)len);
	return len % 8 ? fd_read_exact(fd, pad, 8 - len % 8) : 0;
}

static int send_out(int fd, struct strbuf *o)
{
	int ret = write(fd, o->buf, o->len) == (ssize_t)o->len ? 0 : -1;
	strbuf_reset(o);
	return ret;
}

/* The structured error (protocol 1.26 on) of Nix's stopWork. */
static void add_error(struct strbuf *o, const char *msg, const char *trace)
{
	serveproto_add_u64(o, STDERR_ERROR);
	serveproto_add_string(o, "Error");
	serveproto_add_u64(o, 0);
	serveproto_add_string(o, "Error");
	serveproto_add_string(o, msg);
	serveproto_add_u64(o, 0);
	serveproto_add_u64(o, trace ? 1 : 0);
	if (trace) {
		serveproto_add_u64(o, 0);
		serveproto_add_string(o, trace);
	}
}

#define CHECK(cond, what) \
	do { \
		if (!(cond)) { \
			printf("daemon: bad %s\n", what); \
			return 1; \
		} \
	} while (0)

/* The daemon's side of one connection. 0, or 1 after saying what was wrong. */
static int fake_daemon(int fd, const char *scenario)
{
	struct strbuf o = STRBUF_INIT, s = STRBUF_INIT;
	uint64_t v[7], minor = !strcmp(scenario, "old") ? 31 :
			       !strncmp(scenario, "trusting", 8) || !strcmp(scenario, "distrusting") ? 35 : 34;

	for (int i = 0; i < 7; i++)
		CHECK(!rd_u64(fd, &v[i]), "greeting");
	CHECK(v[0] == DAEMON_MAGIC_1 && v[1] == (1 << 8 | 35) && !v[2] && !v[3], "greeting words");
	CHECK(v[4] == 9 && v[5] == 0 && v[6] == 1, "trust probe (BuildPaths, none, repair)");
	printf("daemon: greeting and probe\n");
	serveproto_add_u64(&o, DAEMON_MAGIC_2);
	serveproto_add_u64(&o, 1 << 8 | minor);
	if (minor >= 33)
		serveproto_add_string(&o, "2.8.0");
	if (minor >= 35)
		serveproto_add_u64(&o, !strcmp(scenario, "distrusting") ? 2 : 1);
	serveproto_add_u64(&o, STDERR_LAST);
	/* the probe's answer */
	if (!strcmp(scenario, "untrusted-probe")) {
		add_error(&o, "repairing is not allowed because you are not in 'trusted-users'", NULL);
	} else {
		serveproto_add_u64(&o, STDERR_START_ACTIVITY);
		serveproto_add_u64(&o, 7);
		serveproto_add_u64(&o, 3);
		serveproto_add_u64(&o, 105);
		serveproto_add_string(&o, "probing");
		serveproto_add_u64(&o, 2);
		serveproto_add_u64(&o, 0);
		serveproto_add_u64(&o, 42);
		serveproto_add_u64(&o, 1);
		serveproto_add_string(&o, "a field");
		serveproto_add_u64(&o, 0);
		serveproto_add_u64(&o, STDERR_RESULT);
		serveproto_add_u64(&o, 7);
		serveproto_add_u64(&o, 101);
		serveproto_add_u64(&o, 0);
		serveproto_add_u64(&o, STDERR_STOP_ACTIVITY);
		serveproto_add_u64(&o, 7);
		serveproto_add_u64(&o, STDERR_LAST);
		serveproto_add_u64(&o, 1);
	}
	CHECK(!send_out(fd, &o), "write");

	uint64_t op, n, x;
	if (rd_u64(fd, &op)) {
		printf("daemon: the client hung up\n");
		return 0;
	}
	CHECK(op == 31, "operation (QueryValidPaths)");
	CHECK(!rd_u64(fd, &n) && n == 2, "path count");
	struct strbuf first = STRBUF_INIT;
	CHECK(!rd_str(fd, &first) && !rd_str(fd, &s) && !rd_u64(fd, &x), "query");
	printf("daemon: query of %llu paths, substitute %llu\n", (unsigned long long)n,
	       (unsigned long long)x);
	serveproto_add_u64(&o, STDERR_NEXT);
	serveproto_add_string(&o, "querying\n");
	serveproto_add_u64(&o, STDERR_LAST);
	serveproto_add_u64(&o, 1);
	serveproto_add_string(&o, first.buf);
	CHECK(!send_out(fd, &o), "write");
	strbuf_release(&first);

	for (int k = 0; !rd_u64(fd, &op); k++) {
		uint64_t nrefs, size, frame, got = 0;
		struct strbuf path = STRBUF_INIT;
		CHECK(op == 39, "operation (AddToStoreNar)");
		CHECK(!rd_str(fd, &path) && !rd_str(fd, &s), "path and deriver");
		CHECK(!rd_str(fd, &s) && s.len == 64, "NAR hash");
		CHECK(!rd_u64(fd, &nrefs) && nrefs < 8, "references");
		for (uint64_t i = 0; i < nrefs; i++)
			CHECK(!rd_str(fd, &s), "reference");
		CHECK(!rd_u64(fd, &x) && x == 0, "registration time");
		CHECK(!rd_u64(fd, &size), "NAR size");
		CHECK(!rd_u64(fd, &x) && x == 0, "ultimate");
		CHECK(!rd_u64(fd, &x) && x == 0, "signatures");
		CHECK(!rd_str(fd, &s) && s.len == 0, "CA");
		CHECK(!rd_u64(fd, &x) && x == 0, "repair");
		CHECK(!rd_u64(fd, &x) && x == 1, "dontCheckSigs");
		if (!strcmp(scenario, "flooding") && k == 1) {
			/* a 1 MiB log line 17 times, while b's NAR waits unread */
			struct strbuf line = STRBUF_INIT;
			for (size_t i = 0; i < (1u << 20) - 64; i++)
				strbuf_addch(&line, 'x');
			for (int i = 0; i < 17; i++) {
				serveproto_add_u64(&o, STDERR_NEXT);
				serveproto_add_string(&o, line.buf);
				if (send_out(fd, &o))
					break;
			}
			strbuf_release(&line);
			printf("daemon: flooded\n");
			break;
		}
		while (!rd_u64(fd, &frame) && frame) {
			char buf[65536];
			CHECK(frame <= sizeof(buf) && !fd_read_exact(fd, buf, (size_t)frame), "frame");
			got += frame;
		}
		CHECK(got == size, "NAR (its size is not the one announced)");
		printf("daemon: added %s: %llu references, a NAR of %llu bytes\n",
		       strrchr(path.buf, '/') + 1, (unsigned long long)nrefs, (unsigned long long)got);
		strbuf_release(&path);
		if (!strcmp(scenario, "failing") && k == 1)
			add_error(&o, "\033[35;1mhash mismatch\033[0m importing path\nsecond line",
				  "while adding it");
		else
			serveproto_add_u64(&o, STDERR_LAST);
		CHECK(!send_out(fd, &o), "write");
	}
	strbuf_release(&o);
	strbuf_release(&s);
	return 0;
}

/* A path's registration, made from its NAR as narexport writes it. */
struct nar_sum {
	crypto_hash_sha256_state st;
	unsigned long long size;
};

static int sum_sink(void *ctx, const void *buf, size_t len)
{
	struct nar_sum *n = ctx;
	crypto_hash_sha256_update(&n->st, buf, len);
	n->size += len;
	return 0;
}

static void registration(struct narexport_path *p, const char *path, char hex[65])
{
	struct nar_sum n = { .size = 0 };
	unsigned char h[crypto_hash_sha256_BYTES];
	char why[256];

	crypto_hash_sha256_init(&n.st);
	narexport_dump(path, sum_sink, &n, why, sizeof(why));
	crypto_hash_sha256_final(&n.st, h);
	sodium_bin2hex(hex, 65, h, sizeof(h));
	*p = (struct narexport_path){ path, hex, n.size, "", 0, NULL };
}

int test_tool_daemon(int argc, const char **argv)
{
	if (argc != 3 || strcmp(argv[0], "daemon-chat")) {
		fprintf(stderr, "test-tool: daemon-chat SCENARIO DIR\n");
		return 2;
	}
	const char *scenario = argv[1], *dir = argv[2];
	char *sock = xstrfmt("%s/socket", dir), *a = xstrfmt("%s/a", dir), *b = xstrfmt("%s/b", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), status = 0;
	char why[512], ha[65], hb[65];

	if (sodium_init() < 0 || strlen(sock) >= sizeof(sa.sun_path))
		return 2;
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	unlink(sock);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1)) {
		perror("daemon-chat: listen");
		return 2;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = accept(lfd, NULL, NULL);
		int ret = fd < 0 ? 1 : fake_daemon(fd, scenario);
		fflush(stdout);
		_exit(ret);
	}
	close(lfd);

	struct daemon_conn d = DAEMON_CONN_INIT;
	if (daemon_open(&d, sock)) {
		printf("open: failed\n");
	} else if (daemon_hello(&d, 5000, why, sizeof(why))) {
		printf("hello: refused: %s\n", why);
	} else {
		printf("hello: ok, protocol 1.%u, Nix %s, trusted %d\n", d.minor, d.version, d.trusted);
		struct strvec paths = STRVEC_INIT, valid = STRVEC_INIT;
		strvec_pushl(&paths, a, b, NULL);
		if (daemon_query_valid(&d, &paths, 1, &valid, why, sizeof(why)))
			printf("valid: failed: %s\n", why);
		for (size_t i = 0; i < valid.nr; i++)
			printf("valid: %s\n", strrchr(valid.v[i], '/') + 1);
		struct narexport_path p[2] = { { 0 }, { 0 } };
		const char *refs_b[] = { a, NULL };
		registration(&p[0], a, ha);
		registration(&p[1], b, hb);
		p[1].nrefs = 1;
		p[1].refs = refs_b;
		unsigned long long bytes = 0;
		if (daemon_add(&d, p, 2, NULL, &bytes, why, sizeof(why)))
			printf("add: failed: %s\n", why);
		else
			printf("add: ok\n");
		strvec_clear(&paths);
		strvec_clear(&valid);
	}
	fflush(stdout);
	daemon_close(&d);
	waitpid(pid, &status, 0);
	printf("daemon exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	unlink(sock);
	free(sock);
	free(a);
	free(b);
	return 0;
}
