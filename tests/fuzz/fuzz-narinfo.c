/*
 * libFuzzer harness: narinfo_parse() and nix_cache_info_parse() on any
 * bytes, and on what parses, the fingerprint and signature check. Aborts
 * when an invariant breaks; the sanitizers catch the rest.
 */
#include <stdlib.h>
#include <string.h>

#include "../../lib/narinfo.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static struct trusted_keys keys = TRUSTED_KEYS_INIT;
	struct narinfo ni = NARINFO_INIT;
	struct nix_cache_info ci;
	struct nrr_err e = { 0 };
	struct strbuf why = STRBUF_INIT;

	if (!keys.nr &&
	    (trusted_keys_add(&keys, "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=", &e) ||
	     trusted_keys_add(&keys, "test-1:a8jrEwFmsGuvDHRYPwQnxhEJfrlyfBWOb3HA5IzBA2I=", &e)))
		abort();
	if (!narinfo_parse(&ni, (const char *)data, size, &e)) {
		if (!ni.store_path || !ni.url || !ni.compression || !ni.nar_size ||
		    ni.nar_hash.algo != NIX_HASH_SHA256 || !nix_store_path_valid(ni.store_path))
			abort();
		for (size_t i = 0; i < ni.references.nr; i++)
			if (!nix_store_base_valid(ni.references.v[i], strlen(ni.references.v[i])))
				abort();
		char *fp = narinfo_fingerprint(&ni);
		if (strncmp(fp, "1;/nix/store/", 13))
			abort();
		free(fp);
		enum narinfo_trust t = narinfo_verify(&ni, &keys, &why);
		if (t == NARINFO_VERIFIED && !ni.sigs.nr)
			abort();
		narinfo_release(&ni);
	} else if (ni.store_path || ni.references.nr || ni.sigs.nr || !e.msg[0]) {
		abort(); /* a failed parse leaves nothing behind, and says why */
	}
	if (!nix_cache_info_parse(&ci, (const char *)data, size, &e))
		nix_cache_info_release(&ci);
	strbuf_release(&why);
	return 0;
}
