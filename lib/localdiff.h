/*
 * localdiff: a deploy's diff made here, not by the target.
 *
 * The diff needs two closures with their paths' sizes: the system the
 * target runs, and the new one. Where the new one was built (this machine,
 * or the build host) usually holds the running one too, from the last
 * deploy; asking that store, or better the closure cache (closurecache.h),
 * spares the target starting any nix for the diff.
 */
#ifndef NRR_LOCALDIFF_H
#define NRR_LOCALDIFF_H

#include "host.h"
#include "pkgdiff.h"
#include "strvec.h"

/*
 * The diff from from's store into diff_old and diff_new: the closure of
 * running (the new one's when they are the same system), then the sizes not
 * known yet (known_sizes, new's, when a fleet's closure dump has them; else
 * NULL) in one query. A system deployed from here before is in the closure
 * cache: then the store is not asked at all, and both closures are kept
 * there for the next deploy. new: toplevel's closure. 0, or -1 when that
 * store cannot (it lacks the running system): both are left empty, and the
 * target makes the diff, as before.
 */
int localdiff_prepare(const struct host *from, const char *running, const char *toplevel,
		      const struct strvec *new, const unsigned long long *known_sizes,
		      struct pkgdiff_closure *diff_old, struct pkgdiff_closure *diff_new);

#endif
