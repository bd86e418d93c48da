/*
 * libFuzzer harness: every parser of what reaches us from outside, on any
 * bytes. The first byte picks the parser; the rest is its input:
 *   0 NIX_SSHOPTS splitting (and quoting back: what splits, quotes and
 *     splits again to the same words)
 *   1 `ssh -G` output          2 flake references and names
 *   3 `nix build --json`       4 nix error output
 *   5 generation listings      6 closure listings with sizes
 *   7 the command line (NUL-separated words)
 *   8 derivation files (their system), builders settings, uname -m
 *   9 export streams (binary; fed whole, then a byte and 7 bytes at a
 *     time: the same verdict at the same byte each way)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/exportcheck.h"
#include "../../lib/generations.h"
#include "../../lib/nix.h"
#include "../../lib/options.h"
#include "../../lib/pkgdiff.h"
#include "../../lib/platform.h"
#include "../../lib/quote.h"
#include "../../lib/ssh.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void words(const char *s)
{
	struct strvec a = STRVEC_INIT, b = STRVEC_INIT;
	struct strbuf q = STRBUF_INIT;
	const char *why;
	if (!split_cmdline(s, &a, &why)) {
		sq_quote_argv(&q, a.v);
		if (split_cmdline(q.buf, &b, &why) || a.nr != b.nr)
			abort();
		for (size_t i = 0; i < a.nr; i++)
			if (strcmp(a.v[i], b.v[i]))
				abort();
	}
	strvec_clear(&a);
	strvec_clear(&b);
	strbuf_release(&q);
}

static void argv_of(const char *s, size_t n)
{
	struct strvec v = STRVEC_INIT;
	struct options o;
	struct nrr_err e;
	strvec_push(&v, "nixos-rebuild-remote");
	for (size_t i = 0; i < n; i += strlen(s + i) + 1)
		strvec_push(&v, s + i);
	options_init(&o);
	options_parse(&o, (int)v.nr, v.v, &e);
	options_release(&o);
	strvec_clear(&v);
}

/* What the checker forwards of buf fed chunk bytes at a time (0: whole),
 * and its verdict in why. */
static size_t export_fed(const unsigned char *buf, size_t len, size_t chunk, char *why,
			 size_t whylen)
{
	/* the seed's path, and one more */
	const char *asked[] = { "/nix/store/ab3li50xq0nl4q5lxdyinb8w8y13my9s-f",
				"/nix/store/lxbxd32h16465vx67j65q1qcqsbf88am-a" };
	struct exportcheck ck;
	size_t sent = 0;
	exportcheck_init(&ck, asked, 2);
	while (sent < len && !ck.failed) {
		size_t take = chunk && len - sent > chunk ? chunk : len - sent;
		size_t n = exportcheck_feed(&ck, buf + sent, take);
		if (n > take || (n < take && !ck.failed))
			abort();
		sent += n;
	}
	exportcheck_finish(&ck);
	snprintf(why, whylen, "%s", ck.why);
	exportcheck_release(&ck);
	return sent;
}

static void export_stream(const unsigned char *buf, size_t len)
{
	char whole[512], one[512], seven[512];
	size_t n = export_fed(buf, len, 0, whole, sizeof(whole));
	if (export_fed(buf, len, 1, one, sizeof(one)) != n || strcmp(one, whole) ||
	    export_fed(buf, len, 7, seven, sizeof(seven)) != n || strcmp(seven, whole))
		abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (!size)
		return 0;
	/* a NUL-terminated copy; parsers of text stop at the first NUL */
	char *s = malloc(size + 1);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 10) {
	case 0:
		words(s);
		break;
	case 1: {
		struct ssh_config c;
		ssh_config_parse(s, &c);
		ssh_config_release(&c);
		struct nrr_err e;
		ssh_check_name(s, &e);
		break;
	}
	case 2: {
		char *ref, *name, *attr;
		struct nrr_err e;
		nix_split_flake(s, &ref, &name);
		if (!nix_check_config_name(name, &e)) {
			attr = nix_flake_attr(ref, name, "config.system.build.toplevel");
			free(attr);
		}
		free(ref);
		free(name);
		break;
	}
	case 3:
		free(nix_build_json_out(s));
		break;
	case 4: {
		char buf[512];
		nix_error_summary(s, buf, sizeof(buf));
		nix_error_is_build(s);
		free(nix_unknown_flag(s));
		struct nix_dry_run dr;
		nix_dry_run_parse(s, &dr);
		break;
	}
	case 5: {
		struct generation *g;
		int n;
		generations_parse(s, &g, &n);
		generations_previous(g, n);
		generations_free(g, n);
		break;
	}
	case 6: {
		struct pkgdiff_closure c = PKGDIFF_CLOSURE_INIT;
		struct nrr_err e;
		pkgdiff_closure_parse(&c, s, &e);
		pkgdiff_closure_release(&c);
		break;
	}
	case 7:
		argv_of(s, size - 1);
		break;
	case 8: {
		char sys[64];
		platform_drv_system(s, size - 1, sys, sizeof(sys));
		platform_builders_have(s, "riscv64-linux");
		platform_of_machine(s, sys, sizeof(sys));
		break;
	}
	case 9:
		export_stream(data + 1, size - 1);
		break;
	}
	free(s);
	return 0;
}
