/*
 * libFuzzer harness: the Nix settings parsers, nix_settings_from_json()
 * (output of `nix show-config --json`) and nix_settings_from_conf()
 * (nix.conf text, includes recorded but not read), on any bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "../../lib/cache.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct nix_settings s;
	struct nrr_err e = { 0 };

	nix_settings_init(&s);
	if (nix_settings_from_json(&s, (const char *)data, size, &e)) {
		/* on error nothing changes: the defaults are still there */
		if (s.substituters.nr != 1 || strcmp(s.store, "auto") || !e.msg[0])
			abort();
	}
	nix_settings_release(&s);

	nix_settings_init(&s);
	if (nix_settings_from_conf(&s, (const char *)data, size, "/etc/nix/nix.conf", NULL, NULL,
				   0, &e) && !e.msg[0])
		abort();
	nix_settings_release(&s);
	return 0;
}
