/*
 * cache: which binary caches a Nix store substitutes from, and which of
 * many store paths they can serve.
 *
 * Settings. A store substitutes from its `substituters` and believes the
 * signatures of its `trusted-public-keys`. nix_settings_from_json() reads
 * them from `nix show-config --json` (Nix's own merged view, the exact
 * answer: this machine's), nix_settings_from_shown() from the lines of
 * `nix show-config` a target sends (the same view, only the settings we
 * read), nix_settings_from_conf() from nix.conf text, for when nix cannot
 * be asked. All are pure parsers.
 *
 * Query. cache_query() asks the caches about many paths at once, as Nix
 * does before it substitutes:
 *  - GET <cache>/nix-cache-info, every cache at once. A cache must answer
 *    it with StoreDir /nix/store (or none). Caches are then asked in the
 *    order of their Priority (lower first; "?priority=N" on the URL wins,
 *    as in Nix; ties keep the configured order).
 *  - For each path, GET <cache>/<hash part>.narinfo of each cache in turn
 *    until one serves a narinfo that is for that very path and whose
 *    signature verifies (any narinfo when require_sigs is off). A narinfo
 *    that is served but not trusted is kept as the answer unless a later
 *    cache serves a trusted one.
 *  - All requests go through one libcurl multi handle: connections are
 *    reused, HTTP/2 streams multiplexed when the server speaks HTTP/2, at
 *    most max_connections connections per cache and max_requests
 *    transfers in flight (fewer for HTTP/1.1: one per connection).
 *  - 404, 410 and 403 (S3) mean absent. Other 4xx fail at once. 5xx, 408,
 *    429 and network errors are tried again, up to `tries` times in all,
 *    after backoff_ms, twice that, and so on, each plus up to half again
 *    at random. A cache whose nix-cache-info cannot be had, or that fails
 *    at the network level after its retries, is down: nothing more is
 *    sent to it, its transfers are cancelled, and its error names it:
 *    "cache 'http://127.0.0.1:8080' is down: Connection refused".
 *  - Time: every request is bounded by connect_timeout_ms and timeout_ms.
 *    A cache that stops answering costs about tries x timeout_ms (plus
 *    backoff) once, not once per path: its first request to fail at the
 *    network level after its retries takes it out of the query.
 *  - Memory: a reply larger than CACHE_MAX_REPLY is refused; at most
 *    max_requests replies are held at once, plus the parsed narinfos that
 *    the answers keep.
 *
 * Only http://, https:// and file:// caches are asked; any other
 * substituter (ssh://, s3://, daemon...) is reported as not queried.
 *
 * Process-wide state: curl_global_init() and sodium_init(), both run once
 * on the first query; the first call must not race with another thread.
 * A query checks run_interrupted() (lib/run.h) and stops with NRR_EINT.
 */
#ifndef NRR_CACHE_H
#define NRR_CACHE_H

#include "narinfo.h"
#include "nixconf.h"

#define CACHE_MAX_REPLY (1u << 20)

/* ---- querying caches ----------------------------------------------------- */

enum cache_http {
	CACHE_HTTP_AUTO = 0,	/* HTTP/2 over TLS when offered (ALPN), HTTP/1.1 otherwise */
	CACHE_HTTP_1,		/* HTTP/1.1 only */
	CACHE_HTTP_2,		/* HTTP/2 also over plain http://, with prior knowledge (h2c);
				 * needs libcurl 8.0 or later: before, a reused h2c
				 * connection fails (curl issue 10634) */
};

struct cache_config {
	struct strvec urls;		/* substituter URLs, as in nix.conf */
	struct strvec trusted_keys;	/* "name:base64" public keys */
	int require_sigs;		/* 1: only a verified narinfo serves a path */
	enum cache_http http;
	int max_connections;		/* per cache; 25 (Nix's http-connections) */
	int max_requests;		/* transfers in flight in all; 100 */
	long connect_timeout_ms;	/* 5000; 0: libcurl's (300 s) */
	long timeout_ms;		/* per request, all included; 20000; 0: none */
	int tries;			/* per request, first included; 3 */
	long backoff_ms;		/* before the first retry; 250 */
	char *netrc_file;		/* credentials for the caches, or NULL */
	char *ca_file;			/* CA certificates to trust (Nix's ssl-cert-file), or
					 * NULL for the system's */
	int from_host;			/* urls are a host's own (its nix.conf, as it sent
					 * them): only http:// and https:// ones are asked,
					 * none with a '#', at most CACHE_HOST_URLS_MAX */
};

/* What a host may make this machine ask: a hostile target must not turn the
 * deployer into its HTTP client for thousands of URLs. */
#define CACHE_HOST_URLS_MAX 16

/*
 * Sets the defaults above; no URL, no key, no netrc or CA file. Counts
 * below 1 act as 1.
 */
void cache_config_init(struct cache_config *cfg);
/* Frees the contents; cfg is left as after cache_config_init(). */
void cache_config_release(struct cache_config *cfg);
/* Copies substituters, trusted-public-keys and require-sigs of s into cfg. */
void cache_config_from_settings(struct cache_config *cfg, const struct nix_settings *s);

struct cache_status {
	char *url;		/* as configured, less its "?..." parameters and final '/' */
	int priority;
	int want_mass_query;
	int up;			/* answered nix-cache-info, and never failed since */
	char *error;		/* why it is not up ("cache '...' is down: ..."), or NULL */
	int http_version;	/* of its last reply: 1, 2, or 0 (none, or file://) */
	unsigned requests;	/* requests sent, retries included */
	unsigned connections;	/* connections opened */
};

enum cache_state {
	CACHE_ABSENT = 0,	/* every cache asked lacks the path */
	CACHE_PRESENT,		/* caches[cache] serves it: see trust */
	CACHE_UNKNOWN,		/* no cache serves it and some could not tell: see why */
};

const char *cache_state_name(enum cache_state s);	/* "absent"... (static) */

struct cache_answer {
	char *path;		/* the store path asked about */
	enum cache_state state;
	int cache;		/* PRESENT: index into caches of the serving cache; else -1 */
	enum narinfo_trust trust;	/* PRESENT: verified, or why it is not */
	char *why;		/* PRESENT: the key that verified, or what is wrong with
				 * the signatures; UNKNOWN: each cache's error, "; "
				 * between; ABSENT: NULL */
	struct narinfo info;	/* PRESENT: the narinfo served (sizes, references...);
				 * else empty */
};

/*
 * A target with these settings can substitute a path when its answer is
 * PRESENT with trust NARINFO_VERIFIED (or any PRESENT if it does not
 * require signatures). A target may still refuse: it may remember a 404
 * for an hour (narinfo-cache-negative-ttl).
 */
struct cache_result {
	struct cache_status *caches;	/* in the order asked (priority), down ones too */
	size_t nr_caches;
	struct cache_answer *answers;	/* one per path asked, in the same order */
	size_t nr;
};
#define CACHE_RESULT_INIT { NULL, 0, NULL, 0 }

/*
 * Asks cfg's caches about each of paths (full store paths). res must be
 * empty (CACHE_RESULT_INIT); the caller frees it with cache_result_release(),
 * whatever the return. Returns 0 when every path has an answer, caches down
 * or not (see res->caches[i].error). Otherwise fills e and returns:
 * NRR_EUSAGE for a path that is not a store path, a malformed key, or
 * CACHE_HTTP_2 for an http:// cache with a libcurl that cannot do it,
 * NRR_EINT when interrupted, NRR_EFAIL when libcurl fails us.
 */
int cache_query(const struct cache_config *cfg, const struct strvec *paths,
		struct cache_result *res, struct nrr_err *e);
void cache_result_release(struct cache_result *res);

#endif
