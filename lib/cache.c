#include "cache.h"
#include "curlload.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run.h"

#ifndef NRR_VERSION
#define NRR_VERSION "unknown"
#endif

void cache_config_init(struct cache_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strvec_init(&cfg->urls);
	strvec_init(&cfg->trusted_keys);
	cfg->require_sigs = 1;
	cfg->http = CACHE_HTTP_AUTO;
	cfg->max_connections = 25;
	cfg->max_requests = 100;
	cfg->connect_timeout_ms = 5000;
	cfg->timeout_ms = 20000;
	cfg->tries = 3;
	cfg->backoff_ms = 250;
}

void cache_config_release(struct cache_config *cfg)
{
	strvec_clear(&cfg->urls);
	strvec_clear(&cfg->trusted_keys);
	free(cfg->netrc_file);
	free(cfg->ca_file);
	cache_config_init(cfg);
}

void cache_config_from_settings(struct cache_config *cfg, const struct nix_settings *s)
{
	strvec_clear(&cfg->urls);
	strvec_pushvec(&cfg->urls, &s->substituters);
	strvec_clear(&cfg->trusted_keys);
	strvec_pushvec(&cfg->trusted_keys, &s->trusted_public_keys);
	cfg->require_sigs = s->require_sigs;
}

const char *cache_state_name(enum cache_state s)
{
	switch (s) {
	case CACHE_ABSENT: return "absent";
	case CACHE_PRESENT: return "present";
	case CACHE_UNKNOWN: return "unknown";
	}
	return "?";
}

void cache_result_release(struct cache_result *res)
{
	for (size_t i = 0; i < res->nr_caches; i++) {
		free(res->caches[i].url);
		free(res->caches[i].error);
	}
	for (size_t i = 0; i < res->nr; i++) {
		free(res->answers[i].path);
		free(res->answers[i].why);
		narinfo_release(&res->answers[i].info);
	}
	free(res->caches);
	free(res->answers);
	memset(res, 0, sizeof(*res));
}

/* ---- the query ------------------------------------------------------------ */

#define NO_JOB ((size_t)-1)		/* a slot's job when it fetches nix-cache-info */
#define MAX_CACHE_INFO (64u << 10)

struct cache_rt {
	struct cache_status st;
	char *base;		/* URL less parameters: requests append "/<file>" */
	size_t order;		/* position in the configuration, for a stable sort */
	int url_priority, has_url_priority;
	int url_mass_query;	/* -1: none given on the URL */
	int down;
	unsigned active;	/* its transfers in the multi handle */
	size_t *queue;		/* jobs waiting for this cache (ring of nr_jobs + 1) */
	size_t head, queued;
};

enum slot_state { SLOT_FREE, SLOT_ACTIVE, SLOT_WAITING };

/* A transfer and its retries. */
struct slot {
	CURL *h;
	enum slot_state state;
	size_t job, cache;
	int tries;
	long long due;		/* SLOT_WAITING: when to send again, in ms */
	int too_big;
	struct strbuf body;
	char errbuf[CURL_ERROR_SIZE];
};

struct job {
	size_t next;		/* index of the next cache to ask */
	struct strbuf errors;
};

struct query {
	const struct cache_config *cfg;
	struct trusted_keys keys;
	CURLM *multi;
	struct cache_rt *caches;
	size_t nr_caches;
	struct slot *slots;
	size_t nr_slots, busy;
	size_t *free_slots;
	size_t nr_free;
	struct cache_answer *answers;
	struct job *jobs;
	size_t nr_jobs;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t write_body(char *data, size_t size, size_t n, void *arg)
{
	struct slot *s = arg;
	size_t cap = s->job == NO_JOB ? MAX_CACHE_INFO : CACHE_MAX_REPLY, len = size * n;
	if (len > cap - s->body.len) {
		s->too_big = 1;
		return 0; /* curl then fails the transfer with CURLE_WRITE_ERROR */
	}
	strbuf_add(&s->body, data, len);
	return len;
}

/* Reads "priority=N" and "want-mass-query=B" of "url?a=b&c=d", as Nix does. */
static void url_parse(struct cache_rt *c, const char *url)
{
	const char *q = strchr(url, '?');
	size_t blen = q ? (size_t)(q - url) : strlen(url);
	while (blen && url[blen - 1] == '/')
		blen--;
	c->base = xstrndup(url, blen);
	c->st.url = xstrdup(c->base);
	c->url_mass_query = -1;
	while (q && *q) {
		const char *param = q + 1, *amp = strchr(param, '&');
		size_t plen = amp ? (size_t)(amp - param) : strlen(param);
		char *p = xstrndup(param, plen);
		if (!strncmp(p, "priority=", 9)) {
			c->url_priority = atoi(p + 9);
			c->has_url_priority = 1;
		}
		else if (!strncmp(p, "want-mass-query=", 16))
			c->url_mass_query = !strcmp(p + 16, "true") || !strcmp(p + 16, "1");
		free(p);
		q = amp;
	}
}

static void cache_fail(struct cache_rt *c, const char *what, const char *why)
{
	if (c->down)
		return;
	c->down = 1;
	c->st.up = 0;
	c->st.error = xstrfmt("cache '%s' %s: %s", c->st.url, what, why);
}

static void enqueue(struct query *q, size_t cache, size_t job)
{
	struct cache_rt *c = &q->caches[cache];
	size_t cap = q->nr_jobs + 1;
	c->queue[(c->head + c->queued) % cap] = job;
	c->queued++;
}

static void job_error(struct query *q, size_t j, const char *msg)
{
	struct strbuf *sb = &q->jobs[j].errors;
	strbuf_addf(sb, "%s%s", sb->len ? "; " : "", msg);
}

/* Sends job j to its next cache that is up, or settles its answer. */
static void job_advance(struct query *q, size_t j)
{
	struct job *job = &q->jobs[j];
	struct cache_answer *a = &q->answers[j];
	while (job->next < q->nr_caches) {
		struct cache_rt *c = &q->caches[job->next++];
		if (!c->down) {
			enqueue(q, (size_t)(c - q->caches), j);
			return;
		}
		job_error(q, j, c->st.error);
	}
	if (a->state == CACHE_PRESENT)
		return; /* an untrusted narinfo, and no cache had better */
	if (job->errors.len) {
		a->state = CACHE_UNKNOWN;
		a->why = strbuf_detach(&job->errors);
	}
}

static void got_cache_info(struct query *q, size_t cache, const struct strbuf *body)
{
	struct cache_rt *c = &q->caches[cache];
	struct nix_cache_info ci;
	struct nrr_err e = { 0 };
	if (nix_cache_info_parse(&ci, body->buf, body->len, &e)) {
		cache_fail(c, "is not usable", e.msg);
		return;
	}
	if (ci.store_dir && strcmp(ci.store_dir, NIX_STORE_DIR)) {
		char *why = xstrfmt("it is for store '%.100s', not " NIX_STORE_DIR, ci.store_dir);
		cache_fail(c, "is not usable", why);
		free(why);
	} else {
		c->st.up = 1;
	}
	c->st.priority = c->has_url_priority ? c->url_priority : ci.priority;
	c->st.want_mass_query = c->url_mass_query >= 0 ? c->url_mass_query : ci.want_mass_query;
	nix_cache_info_release(&ci);
}

static void got_narinfo(struct query *q, size_t cache, size_t job, const struct strbuf *body)
{
	struct cache_rt *c = &q->caches[cache];
	struct cache_answer *a = &q->answers[job];
	struct narinfo ni = NARINFO_INIT;
	struct strbuf why = STRBUF_INIT;
	struct nrr_err e = { 0 };
	char *msg;

	if (narinfo_parse(&ni, body->buf, body->len, &e))
		msg = xstrfmt("cache '%s' sent a bad narinfo for '%s': %s", c->st.url, a->path, e.msg);
	else if (strcmp(ni.store_path, a->path))
		msg = xstrfmt("cache '%s' answered for '%s' with '%s'", c->st.url, a->path,
			      ni.store_path);
	else
		msg = NULL;
	if (msg) {
		job_error(q, job, msg);
		free(msg);
		narinfo_release(&ni);
		job_advance(q, job);
		return;
	}
	enum narinfo_trust t = narinfo_verify(&ni, &q->keys, &why);
	int good = t == NARINFO_VERIFIED || !q->cfg->require_sigs;
	if (good || a->state != CACHE_PRESENT) {
		narinfo_release(&a->info);
		free(a->why);
		a->info = ni;
		a->state = CACHE_PRESENT;
		a->cache = (int)cache;
		a->trust = t;
		a->why = strbuf_detach(&why);
	} else {
		narinfo_release(&ni);
		strbuf_release(&why);
	}
	if (good)
		q->jobs[job].next = q->nr_caches; /* settled: ask no further */
	job_advance(q, job);
}

static void slot_free(struct query *q, struct slot *s)
{
	s->state = SLOT_FREE;
	q->free_slots[q->nr_free++] = (size_t)(s - q->slots);
	q->busy--;
}

/* The transfer of s failed for good with msg; at the network level if net. */
static void slot_failed(struct query *q, struct slot *s, const char *msg, int net);

/* Ends every transfer to cache c, which just went down. */
static void cancel_cache(struct query *q, size_t cache)
{
	for (size_t i = 0; i < q->nr_slots; i++) {
		struct slot *s = &q->slots[i];
		if (s->state == SLOT_FREE || s->cache != cache)
			continue;
		if (s->state == SLOT_ACTIVE) {
			curl_multi_remove_handle(q->multi, s->h);
			q->caches[cache].active--;
		}
		slot_failed(q, s, NULL, 1);
	}
}

static void slot_failed(struct query *q, struct slot *s, const char *msg, int net)
{
	struct cache_rt *c = &q->caches[s->cache];
	size_t job = s->job, cache = s->cache;
	slot_free(q, s);
	if (net && !c->down) {
		cache_fail(c, "is down", msg);
		cancel_cache(q, cache);
	} else if (job == NO_JOB) {
		cache_fail(c, "is not usable", msg);
	}
	if (job == NO_JOB)
		return;
	if (net || c->down) {
		job_error(q, job, c->st.error);
	} else {
		char *m = xstrfmt("cache '%s': %s", c->st.url, msg);
		job_error(q, job, m);
		free(m);
	}
	job_advance(q, job);
}

static int net_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT: case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
		return 1;
	default:
		return 0;
	}
}

/* A transfer ended with rc: absent, present, failed, or to be tried again. */
static void slot_done(struct query *q, struct slot *s, CURLcode rc)
{
	struct cache_rt *c = &q->caches[s->cache];
	long code = 0, version = 0, conns = 0, oserr = 0;
	char msg[CURL_ERROR_SIZE + 64];
	int retry = 0, net = 0;

	curl_multi_remove_handle(q->multi, s->h);
	c->active--;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(s->h, CURLINFO_HTTP_VERSION, &version);
	curl_easy_getinfo(s->h, CURLINFO_NUM_CONNECTS, &conns);
	c->st.connections += (unsigned)conns;
	if (version)
		c->st.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : 1;

	if (rc == CURLE_OK && (code == 200 || code == 0)) { /* 0: file:// */
		slot_free(q, s); /* no request starts before the loop's next turn */
		if (s->job == NO_JOB)
			got_cache_info(q, s->cache, &s->body);
		else
			got_narinfo(q, s->cache, s->job, &s->body);
		return;
	}
	if ((rc == CURLE_OK && (code == 404 || code == 410 || code == 403)) ||
	    rc == CURLE_FILE_COULDNT_READ_FILE) {
		if (s->job == NO_JOB) {
			slot_failed(q, s, "no nix-cache-info: not a binary cache", 0);
			return;
		}
		size_t job = s->job;
		slot_free(q, s);
		job_advance(q, job);
		return;
	}
	if (rc == CURLE_OK) {
		retry = code >= 500 || code == 408 || code == 429;
		snprintf(msg, sizeof(msg), "HTTP %ld on '%s'", code,
			 s->job == NO_JOB ? "nix-cache-info" : q->answers[s->job].path);
	} else if (s->too_big) {
		snprintf(msg, sizeof(msg), "reply larger than %u bytes",
			 s->job == NO_JOB ? MAX_CACHE_INFO : CACHE_MAX_REPLY);
	} else {
		retry = net = net_error(rc);
		if (rc == CURLE_COULDNT_CONNECT &&
		    !curl_easy_getinfo(s->h, CURLINFO_OS_ERRNO, &oserr) && oserr)
			snprintf(msg, sizeof(msg), "%s", strerror((int)oserr));
		else
			snprintf(msg, sizeof(msg), "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
		if (!net)
			net = rc != CURLE_WRITE_ERROR; /* TLS, protocol...: the cache is unusable */
	}
	if (retry && s->tries < q->cfg->tries && !c->down) {
		long long delay = q->cfg->backoff_ms << (s->tries - 1 < 16 ? s->tries - 1 : 16);
		if (delay > 30000)
			delay = 30000;
		delay += randombytes_uniform((uint32_t)(delay / 2 + 1));
		s->state = SLOT_WAITING;
		s->due = now_ms() + delay;
		return;
	}
	if (retry && s->tries > 1 && !net) {
		size_t l = strlen(msg);
		snprintf(msg + l, sizeof(msg) - l, " (%d tries)", s->tries);
	}
	slot_failed(q, s, msg, net);
}

static CURL *easy_new(const struct query *q, struct slot *s)
{
	const struct cache_config *cfg = q->cfg;
	CURL *h = curl_easy_init();
	long version = cfg->http == CACHE_HTTP_1 ? CURL_HTTP_VERSION_1_1 :
		       cfg->http == CACHE_HTTP_2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE :
		       CURL_HTTP_VERSION_2TLS;
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)s);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, cfg->from_host ? "http,https" : "http,https,file");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS |
						      (cfg->from_host ? 0 : CURLPROTO_FILE)));
#endif
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cfg->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "nixos-rebuild-remote/" NRR_VERSION
			 " curl/" LIBCURL_VERSION);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	/* Without HTTP/2 in libcurl, AUTO is plain HTTP/1.1: no harm. */
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, version);
	/* Wait for a connection that can multiplex rather than open another. */
	curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
	if (cfg->netrc_file) {
		curl_easy_setopt(h, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(h, CURLOPT_NETRC_FILE, cfg->netrc_file);
	}
	if (cfg->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
	return h;
}

/* Starts (or restarts) the transfer of slot s. Returns 0, or -1 if curl fails. */
static int slot_send(struct query *q, struct slot *s)
{
	struct cache_rt *c = &q->caches[s->cache];
	char *url;
	if (!s->h && !(s->h = easy_new(q, s)))
		return -1;
	if (s->job == NO_JOB)
		url = xstrfmt("%s/nix-cache-info", c->base);
	else
		url = xstrfmt("%s/%.*s.narinfo", c->base, NIX_HASH_PART_LEN,
			      q->answers[s->job].path + strlen(NIX_STORE_DIR) + 1);
	CURLcode rc = curl_easy_setopt(s->h, CURLOPT_URL, url);
	/* an https cache is never left for plain http by a redirect: its
	 * answer would cross the network unprotected */
	int tls = !strncmp(c->base, "https://", 8);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(s->h, CURLOPT_REDIR_PROTOCOLS_STR, tls ? "https" : "http,https");
#else
	curl_easy_setopt(s->h, CURLOPT_REDIR_PROTOCOLS,
			 tls ? (long)CURLPROTO_HTTPS : (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	free(url);
	strbuf_reset(&s->body);
	s->too_big = 0;
	s->errbuf[0] = '\0';
	if (rc || curl_multi_add_handle(q->multi, s->h))
		return -1;
	s->state = SLOT_ACTIVE;
	s->tries++;
	c->active++;
	c->st.requests++;
	return 0;
}

/* How many transfers cache c may have at once: one per connection, unless HTTP/2. */
static unsigned cache_cap(const struct query *q, const struct cache_rt *c)
{
	int conns = q->cfg->max_connections > 0 ? q->cfg->max_connections : 1;
	return c->st.http_version == 2 ? (unsigned)q->nr_slots : (unsigned)conns;
}

/* Sends retries that are due and queued requests while slots are free. */
static int start_ready(struct query *q, long long *next_due)
{
	long long now = now_ms();
	*next_due = -1;
	for (size_t i = 0; i < q->nr_slots; i++) {
		struct slot *s = &q->slots[i];
		if (s->state != SLOT_WAITING)
			continue;
		if (s->due > now) {
			if (*next_due < 0 || s->due < *next_due)
				*next_due = s->due;
		} else if (q->caches[s->cache].down) {
			slot_failed(q, s, NULL, 1);
		} else if (slot_send(q, s)) {
			return -1;
		}
	}
	for (size_t ci = 0; ci < q->nr_caches; ci++) {
		struct cache_rt *c = &q->caches[ci];
		while (c->queued && (c->down || (q->nr_free && c->active < cache_cap(q, c)))) {
			size_t job = c->queue[c->head];
			c->head = (c->head + 1) % (q->nr_jobs + 1);
			c->queued--;
			if (c->down) {
				job_error(q, job, c->st.error);
				job_advance(q, job);
				continue;
			}
			struct slot *s = &q->slots[q->free_slots[--q->nr_free]];
			q->busy++;
			s->job = job;
			s->cache = ci;
			s->tries = 0;
			if (slot_send(q, s))
				return -1;
		}
	}
	return 0;
}

/* Runs transfers until no slot is busy and no request is queued. */
static int run(struct query *q, struct nrr_err *e)
{
	for (;;) {
		long long due;
		int running, left;
		CURLMsg *m;
		if (run_interrupted())
			return nrr_fail(e, NRR_EINT, "interrupted while asking the binary caches");
		if (start_ready(q, &due))
			return nrr_fail(e, NRR_EFAIL, "cannot start a transfer (libcurl)");
		if (!q->busy)
			return 0;
		if (curl_multi_perform(q->multi, &running))
			return nrr_fail(e, NRR_EFAIL, "libcurl failed to run transfers");
		int settled = 0;
		while ((m = curl_multi_info_read(q->multi, &left))) {
			char *p = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
			struct slot *s = (struct slot *)p;
			CURLcode rc = m->data.result;
			if (s && s->state == SLOT_ACTIVE) {
				slot_done(q, s, rc);
				settled = 1;
			}
		}
		if (settled)
			continue; /* start what they queued before waiting */
		/* Wake at least every 100 ms to notice signals and retries. */
		long long wait = 100, now = now_ms();
		if (due >= 0 && due - now < wait)
			wait = due > now ? due - now : 0;
		if (curl_multi_poll(q->multi, NULL, 0, (int)wait, NULL))
			return nrr_fail(e, NRR_EFAIL, "libcurl failed to wait for transfers");
	}
}

static int cmp_cache(const void *a, const void *b)
{
	const struct cache_rt *x = a, *y = b;
	if (x->st.priority != y->st.priority)
		return x->st.priority < y->st.priority ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int query_init(struct query *q, const struct cache_config *cfg, const struct strvec *paths,
		      struct cache_result *res, struct nrr_err *e)
{
	static int curl_ready;
	if (!curl_ready) {
		if (curlload(e))
			return e->status;
		if (sodium_init() < 0)
			return nrr_fail(e, NRR_EFAIL, "cannot initialise libsodium");
		curl_ready = 1;
	}
	q->cfg = cfg;
	for (size_t i = 0; i < cfg->trusted_keys.nr; i++)
		if (trusted_keys_add(&q->keys, cfg->trusted_keys.v[i], e))
			return e->status = NRR_EUSAGE;
	for (size_t i = 0; i < paths->nr; i++)
		if (!nix_store_path_valid(paths->v[i]))
			return nrr_fail(e, NRR_EUSAGE, "'%.200s' is not a store path in " NIX_STORE_DIR,
					paths->v[i]);
	q->nr_jobs = res->nr = paths->nr;
	res->answers = xcalloc(paths->nr ? paths->nr : 1, sizeof(*res->answers));
	q->answers = res->answers;
	q->jobs = xcalloc(paths->nr ? paths->nr : 1, sizeof(*q->jobs));
	for (size_t i = 0; i < paths->nr; i++) {
		q->answers[i].path = xstrdup(paths->v[i]);
		q->answers[i].cache = -1;
		narinfo_init(&q->answers[i].info);
		strbuf_init(&q->jobs[i].errors);
	}
	q->nr_caches = cfg->urls.nr;
	q->caches = xcalloc(q->nr_caches ? q->nr_caches : 1, sizeof(*q->caches));
	for (size_t i = 0; i < q->nr_caches; i++) {
		q->caches[i].order = i;
		q->caches[i].queue = xcalloc(q->nr_jobs + 1, sizeof(size_t));
		url_parse(&q->caches[i], cfg->urls.v[i]);
		const char *b = q->caches[i].base;
		int web = !strncmp(b, "http://", 7) || !strncmp(b, "https://", 8);
		if (!web && strncmp(b, "file://", 7))
			cache_fail(&q->caches[i], "is not asked",
				   "only http://, https:// and file:// caches are");
		/* a host's file:// cache is a directory there, not here; a '#'
		 * would cut off what we ask for */
		else if (cfg->from_host && !web)
			cache_fail(&q->caches[i], "is not asked",
				   "a host's file:// cache is on that host");
		else if (cfg->from_host && strchr(cfg->urls.v[i], '#'))
			cache_fail(&q->caches[i], "is not asked", "its URL has a '#'");
		else if (cfg->from_host && i >= CACHE_HOST_URLS_MAX)	/* 16 */
			cache_fail(&q->caches[i], "is not asked",
				   "only a host's first 16 caches are");
		else
			enqueue(q, i, NO_JOB);
	}
	q->nr_slots = cfg->max_requests > 0 ? (size_t)cfg->max_requests : 1;
	q->slots = xcalloc(q->nr_slots, sizeof(*q->slots));
	q->free_slots = xcalloc(q->nr_slots, sizeof(size_t));
	for (size_t i = 0; i < q->nr_slots; i++) {
		strbuf_init(&q->slots[i].body);
		q->free_slots[q->nr_free++] = q->nr_slots - 1 - i;
	}
	q->multi = curl_multi_init();
	if (!q->multi)
		return nrr_fail(e, NRR_EFAIL, "cannot start libcurl");
	long conns = cfg->max_connections > 0 ? cfg->max_connections : 1;
	curl_multi_setopt(q->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(q->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
	curl_multi_setopt(q->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns * (long)(q->nr_caches + 1));
	curl_multi_setopt(q->multi, CURLMOPT_MAXCONNECTS, conns * (long)(q->nr_caches + 1));
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	if (cfg->http == CACHE_HTTP_2 && !(cv->features & CURL_VERSION_HTTP2))
		return nrr_fail(e, NRR_EUSAGE, "libcurl %s cannot speak HTTP/2", cv->version);
	int cleartext = 0;
	for (size_t i = 0; i < cfg->urls.nr; i++)
		cleartext |= !strncmp(cfg->urls.v[i], "http://", 7);
	if (cfg->http == CACHE_HTTP_2 && cleartext && cv->version_num < 0x080000)
		return nrr_fail(e, NRR_EUSAGE, "libcurl %s cannot reuse HTTP/2 connections made "
				"with prior knowledge (fixed in 8.0): use https:// or HTTP/1.1",
				cv->version);
	return 0;
}

static void query_release(struct query *q)
{
	for (size_t i = 0; i < q->nr_slots; i++) {
		if (q->slots[i].state == SLOT_ACTIVE)
			curl_multi_remove_handle(q->multi, q->slots[i].h);
		if (q->slots[i].h)
			curl_easy_cleanup(q->slots[i].h);
		strbuf_release(&q->slots[i].body);
	}
	if (q->multi)
		curl_multi_cleanup(q->multi);
	for (size_t i = 0; i < q->nr_caches; i++) {
		free(q->caches[i].base);
		free(q->caches[i].queue);
		free(q->caches[i].st.url);
		free(q->caches[i].st.error);
	}
	for (size_t i = 0; i < q->nr_jobs; i++)
		strbuf_release(&q->jobs[i].errors);
	free(q->caches);
	free(q->slots);
	free(q->free_slots);
	free(q->jobs);
	trusted_keys_release(&q->keys);
}

int cache_query(const struct cache_config *cfg, const struct strvec *paths,
		struct cache_result *res, struct nrr_err *e)
{
	struct query q;
	int ret;

	memset(&q, 0, sizeof(q));
	ret = query_init(&q, cfg, paths, res, e);
	/* Every cache's nix-cache-info first: the order of asking depends on it. */
	if (!ret)
		ret = run(&q, e);
	if (!ret) {
		if (q.nr_caches > 1)
			qsort(q.caches, q.nr_caches, sizeof(*q.caches), cmp_cache);
		for (size_t j = 0; j < q.nr_jobs; j++)
			job_advance(&q, j);
		ret = run(&q, e);
	}
	res->caches = xcalloc(q.nr_caches ? q.nr_caches : 1, sizeof(*res->caches));
	res->nr_caches = q.nr_caches;
	for (size_t i = 0; i < q.nr_caches; i++) {
		res->caches[i] = q.caches[i].st;
		q.caches[i].st.url = q.caches[i].st.error = NULL;
	}
	query_release(&q);
	return ret;
}
