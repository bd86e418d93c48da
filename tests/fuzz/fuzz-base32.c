/*
 * libFuzzer harness: nix32_decode() and nix_hash_parse() on any bytes.
 * nix-base32 is a bijection for a given byte length, so whatever decodes
 * must encode back to the same digits, and any bytes must survive an
 * encode and decode.
 */
#include <stdlib.h>
#include <string.h>

#include "../../lib/narinfo.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	unsigned char bytes[128], back[128];
	char digits[256];
	struct nix_hash h;
	struct nrr_err e = { 0 };

	/* the digits as input, for every byte length they could encode */
	for (size_t n = 0; n <= sizeof(bytes) && nix32_len(n) <= size; n++) {
		if (nix32_len(n) != size || nix32_decode((const char *)data, size, bytes, n))
			continue;
		nix32_encode(bytes, n, digits);
		if (memcmp(digits, data, size))
			abort();
	}
	/* the input as bytes */
	if (size <= sizeof(bytes)) {
		nix32_encode(data, size, digits);
		if (strlen(digits) != nix32_len(size) ||
		    nix32_decode(digits, nix32_len(size), back, size) || memcmp(back, data, size))
			abort();
	}
	if (!nix_hash_parse(&h, (const char *)data, size, &e)) {
		char *a = nix_hash_to_nix32(&h), *b = nix_hash_to_base16(&h);
		struct nix_hash h2;
		if (nix_hash_parse(&h2, a, strlen(a), &e) || h2.len != h.len ||
		    memcmp(h2.digest, h.digest, h.len))
			abort();
		free(a);
		free(b);
	}
	return 0;
}
