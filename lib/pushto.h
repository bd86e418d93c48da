/*
 * pushto: the cache route. The closure goes once to a binary cache and
 * every target fetches it from there, so the deployer's uplink carries it
 * once, not once per host.
 *
 *   --push-to STORE-URL    `nix copy --to STORE-URL` here, signed with
 *                          --sign-key FILE (default: this machine's first
 *                          secret-key-files): a binary cache URL (file://,
 *                          s3://...) gets "?secret-key=FILE"; an ssh:// or
 *                          ssh-ng:// store gets paths signed here first
 *                          (`nix store sign`), as those stores keep the
 *                          signatures they are given.
 *   --cache-host HOST      the LAN shape: the closure is streamed to HOST
 *                          over our ssh master (only what it lacks), and
 *                          HOST runs the `nix copy --to STORE-URL` into a
 *                          cache that its web server serves; --sign-key
 *                          then names a file on HOST (default: HOST's
 *                          secret-key-files).
 *   --cache-url URL        what the targets substitute from (default: the
 *                          --push-to URL without its "?..." parameters;
 *                          required with --cache-host).
 *
 * Before a target is activated its own settings (`nix show-config`, sent
 * in the activation's first answer: no extra round trip) must list the
 * cache in `substituters` and, unless it does not require signatures, the
 * signing key in `trusted-public-keys`; a target that would not fails
 * with NRR_ECHECK naming what it lacks, unchanged. We fail rather than
 * relay to it: a misconfigured host would silently put its whole closure
 * back on the uplink, which is what the user chose this route to avoid.
 * What a target's caches do not serve is still pushed to it over ssh.
 */
#ifndef NRR_PUSHTO_H
#define NRR_PUSHTO_H

#include "host.h"
#include "nixconf.h"
#include "options.h"

/*
 * Checks the cache route's options against each other and the action,
 * and fills o->cache_url's default. Called by options_parse(). Returns 0
 * or NRR_EUSAGE with e filled.
 */
int pushto_check_options(struct options *o, struct nrr_err *e);

/*
 * The public key ("NAME:base64") of the Nix secret key in file, into *pub
 * (the caller frees it). Returns 0 or NRR_EFAIL with e filled.
 */
int pushto_public_key(const char *file, char **pub, struct nrr_err *e);

/*
 * Pushes the closures of toplevels (in this machine's store) to o->push_to
 * as the options say, and sets o->cache_key to the signing public key.
 * dry: pushes nothing, prints the cache's plan line ("plan for the cache
 * ...: N paths (SIZE) to push once"). *bytes gets what crossed our own
 * link to a cache host (0 for a push made by nix here). closure: the
 * union of toplevels' closures, dependencies first, when the caller knows
 * it; else empty, and filled here (the caller clears it either way).
 * cache_ssh: o->cache_host, resolved and connected already by the caller
 * (whose it stays), or NULL: resolved and connected here.
 * Returns 0, or NRR_ECONNECT, NRR_ECOPY, NRR_EFAIL with e filled.
 */
int pushto_push(struct options *o, const struct strvec *toplevels, int dry,
		struct strvec *closure, struct ssh_host *cache_ssh, struct strvec *warnings,
		unsigned long long *bytes, struct nrr_err *e);

/*
 * The union of the closures of toplevels in this machine's store,
 * dependencies first (one nix-store), appended to closure: what
 * pushto_push takes. Returns 0 or an NRR_* status with e filled.
 */
int pushto_closure(const struct strvec *toplevels, struct strvec *closure,
		   struct nrr_err *e);

/*
 * --push-to with --build-host: toplevel was built on built (connected in
 * ctx). Without --cache-host, or when it is the build host, the build
 * host writes the cache (--sign-key then names a file there, default its
 * secret-key-files); else the closure goes from the build host to the
 * cache host over our masters (what it lacks; *bytes its size), and the
 * cache host writes it. Sets o->cache_key. Returns 0, or NRR_ECONNECT,
 * NRR_ECOPY, NRR_EUSAGE (no key there) with e filled.
 */
int pushto_push_built(struct options *o, struct ssh_ctx *ctx, const struct host *built,
		      const char *toplevel, unsigned long long *bytes, struct nrr_err *e);

/*
 * The URL that `nix copy --to` writes: url as given, plus
 * "compression=zstd" when url is a binary cache (file://, s3://, http://,
 * https://) and names no compression. Nix's default, xz, costs the cache's
 * writer and every target several times zstd's CPU for a tenth fewer
 * bytes (bench/README.md); "?compression=xz" keeps it. Malloc'ed: the
 * caller frees it.
 */
char *pushto_write_url(const char *url);

/*
 * Whether a target with settings ns substitutes from url (compared without
 * "?..." and a final '/') and trusts key (NULL: not checked). Returns 0,
 * or NRR_ECHECK with e naming host and what it lacks.
 */
int pushto_check_target(const char *host, const struct nix_settings *ns,
			const char *url, const char *key, struct nrr_err *e);

#endif
