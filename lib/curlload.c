#define _GNU_SOURCE
#include "curlload.h"

#include <dlfcn.h>
#include <string.h>

struct curlload_api curlload_api;

/* The table's entries and the names they are loaded from, in order. */
static const char *const names[] = {
	"curl_global_init", "curl_easy_init", "curl_easy_setopt", "curl_easy_getinfo",
	"curl_easy_strerror", "curl_easy_cleanup", "curl_multi_init", "curl_multi_setopt",
	"curl_multi_add_handle", "curl_multi_remove_handle", "curl_multi_perform",
	"curl_multi_poll", "curl_multi_info_read", "curl_multi_cleanup", "curl_version_info",
};

int curlload(struct nrr_err *e)
{
	static int loaded;
	void *slots[sizeof(names) / sizeof(*names)];

	_Static_assert(sizeof(slots) == sizeof(curlload_api),
		       "one name for each entry of curlload_api");
	if (loaded)
		return 0;
	/* RTLD_LOCAL: its symbols are reached through the table only */
	void *lib = dlopen(CURLLOAD_SONAME, RTLD_NOW | RTLD_LOCAL);
#ifdef NRR_LIBCURL_DIR
	/* where the build found it: a Nix store path, which no search path
	 * names (and which this string keeps in the binary's closure) */
	if (!lib && NRR_LIBCURL_DIR[0])
		lib = dlopen(NRR_LIBCURL_DIR "/" CURLLOAD_SONAME, RTLD_NOW | RTLD_LOCAL);
#endif
	if (!lib) {
		const char *why = dlerror();
		nrr_fail(e, NRR_EFAIL, "cannot load libcurl to query the binary caches: %s",
			 why ? why : CURLLOAD_SONAME " not found");
		nrr_hint(e, "install libcurl (Debian: libcurl4)");
		return e->status;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		slots[i] = dlsym(lib, names[i]);
		if (!slots[i]) {
			nrr_fail(e, NRR_EFAIL, "cannot load libcurl to query the binary caches: "
				 "%s has no %s (too old?)", CURLLOAD_SONAME, names[i]);
			dlclose(lib);
			return e->status;
		}
	}
	/* data pointers to function pointers: what POSIX's dlsym promises */
	memcpy(&curlload_api, slots, sizeof(curlload_api));
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return nrr_fail(e, NRR_EFAIL, "cannot initialise libcurl");
	loaded = 1;
	return 0;
}
