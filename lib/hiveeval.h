/*
 * hiveeval: the systems of many hive nodes, evaluated in bounded parallel
 * (colmena's --eval-node-limit idea, against its out-of-memory kills).
 *
 * The nodes go to nix in chunks, one nix process a chunk, at most `jobs`
 * processes at once: at most chunk * jobs nodes are being evaluated at any
 * time. A chunk that fails is evaluated again node by node, so that every
 * failure is reported under its node's name and the chunk's other nodes
 * still get their systems.
 */
#ifndef NRR_HIVEEVAL_H
#define NRR_HIVEEVAL_H

#include <stddef.h>

#include "error.h"
#include "hive.h"
#include "strvec.h"

struct hive_eval_limits {
	size_t nodes;		/* at once in all; 0: from memory (hive_eval_auto) */
	size_t jobs;		/* nix processes at once; 0: from the cores */
};

/* colmena's automatic limit: (available MiB - 1024) / 512 nodes, at least 1. */
size_t hive_eval_auto(void);

/*
 * As hive_toplevels (hive.h), but in bounded parallel. Every node that
 * evaluated has drv[i] and out[i] set (malloc'ed, the caller frees them);
 * a node that failed has NULL there and its name and nix's reason pushed
 * as one line to failed ("node 'NAME': WHY"). Returns 0 when all evaluated,
 * NRR_EEVAL when some failed (e says how many and which), or another
 * status (nix could not be started, an interrupt).
 */
int hive_toplevels_limited(struct hive *h, const struct hive_opts *o,
			   const size_t *sel, size_t n, const struct hive_eval_limits *lim,
			   char **drv, char **out, struct strvec *failed,
			   struct strvec *warnings, struct nrr_err *e);

/*
 * apply or build without --on wants every node's system: the hive's info
 * and all the systems at once, one pass over each node instead of two
 * (info, then the systems), in as many nix processes as hive_toplevels_
 * limited would run, each taking every K-th node, and nothing when the
 * hive has more nodes than the limit allows at once. Both answers go to
 * h->cache (open, with a fingerprint; h found), where hive_load and
 * hive_toplevels_limited then find them. Returns 0 when both were kept,
 * -1 when not (too many nodes, a node that fails, nix that cannot run):
 * the caller then evaluates as usual, which reports any failure.
 */
int hive_prefetch_all(struct hive *h, const struct hive_opts *o,
		      const struct hive_eval_limits *lim, struct strvec *warnings);

#endif
