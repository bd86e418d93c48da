/*
 * curlload: libcurl, loaded the first time a binary cache is queried.
 *
 * Linked, libcurl and the libraries it needs (TLS, Kerberos, LDAP, SSH,
 * HTTP/2, IDN...: about thirty) cost every start of this binary about
 * 17 ms of CPU in the dynamic loader, and a fleet starts it once per host
 * (lib/fleet.c) although most runs never ask a cache anything. So the
 * binary is not linked with it: curlload() dlopen()s it and fills the
 * table below, once per process, on the first query (lib/cache.c): by
 * its soname, as the loader finds it, else from the directory the build
 * found it in (NRR_LIBCURL_DIR, from pkg-config: on Nix, where no search
 * path leads, the store path also keeps libcurl in the package's closure).
 *
 * Include this instead of <curl/curl.h>: the names of the functions used
 * become calls through the table, with the same arguments (the variadic
 * setopt functions get them as they would directly). Call curlload()
 * first; it runs curl_global_init() too. Process-wide state: the table,
 * written once; the first call must not race with another thread.
 */
#ifndef NRR_CURLLOAD_H
#define NRR_CURLLOAD_H

/* the type checks of curl.h call the functions by name, which are ours */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "error.h"

/* The soname dlopen()ed: libcurl's ABI has been 4 since 2006. */
#define CURLLOAD_SONAME "libcurl.so.4"

struct curlload_api {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	void (*easy_cleanup)(CURL *);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_cleanup)(CURLM *);
	curl_version_info_data *(*version_info)(CURLversion);
};

extern struct curlload_api curlload_api;

/*
 * Loads libcurl (once: later calls return at once) and runs
 * curl_global_init(CURL_GLOBAL_DEFAULT). Returns 0, or NRR_EFAIL with e
 * saying what could not be loaded.
 */
int curlload(struct nrr_err *e);

/* curl.h makes some of these function-like macros of their own */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (curlload_api.global_init)
#define curl_easy_init (curlload_api.easy_init)
#define curl_easy_setopt (curlload_api.easy_setopt)
#define curl_easy_getinfo (curlload_api.easy_getinfo)
#define curl_easy_strerror (curlload_api.easy_strerror)
#define curl_easy_cleanup (curlload_api.easy_cleanup)
#define curl_multi_init (curlload_api.multi_init)
#define curl_multi_setopt (curlload_api.multi_setopt)
#define curl_multi_add_handle (curlload_api.multi_add_handle)
#define curl_multi_remove_handle (curlload_api.multi_remove_handle)
#define curl_multi_perform (curlload_api.multi_perform)
#define curl_multi_poll (curlload_api.multi_poll)
#define curl_multi_info_read (curlload_api.multi_info_read)
#define curl_multi_cleanup (curlload_api.multi_cleanup)
#define curl_version_info (curlload_api.version_info)

#endif
