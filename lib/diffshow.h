/*
 * diffshow: a package diff (see pkgdiff.h) as people and programs read
 * it: aligned text for a terminal, and JSON for --json reports. Sizes in
 * binary units are shared with the other reports of the tool.
 */
#ifndef NRR_DIFFSHOW_H
#define NRR_DIFFSHOW_H

#include "pkgdiff.h"
#include "strbuf.h"

#include <stdint.h>

/* Flags of diffshow_format(). */
#define DIFFSHOW_COLOR 0x1 /* ANSI colours; the caller checks NO_COLOR/tty */

/*
 * Appends to out the diff as text for a terminal: a section per list
 * ("Changed:", "Added:", "Removed:", empty ones left out, or the one line
 * "No package versions changed."), a line per package, then the closure:
 *
 *   Changed:
 *     > hello    2.12.1 -> 2.12.2  +4.0 KiB
 *     < linux    6.6.1 -> 6.1.70        0 B
 *   Added:
 *     + ripgrep  14.1.0            +3.3 MiB
 *   Removed:
 *     - nano     7.2               -2.1 MiB
 *   Closure: 3 -> 3 paths (+3, -3), 10.8 MiB -> 12.0 MiB (+1.2 MiB)
 *
 * The mark is '>' upgrade, '<' downgrade, '~' changed otherwise, '+'
 * added, '-' removed; the last column is the change in NAR size of the
 * package's paths. Several versions are joined with ", ", an unversioned
 * path shows as "(none)". Columns align over all sections; a name or
 * version column wider than 40 characters pushes its own line only. When
 * neither closure has any size, sizes are left out. "(+3, -3)" counts
 * store paths gained and lost, rebuilds included. With DIFFSHOW_COLOR the
 * mark and name are coloured by kind. Every line ends in '\n'.
 */
void diffshow_format(struct strbuf *out, const struct pkgdiff *d,
		    unsigned flags);

/*
 * The diff as a new cJSON object, for the --json report; the caller frees
 * it with cJSON_Delete(). Shape (sizes in bytes):
 *
 *   { "changed": [ENTRY...], "added": [ENTRY...], "removed": [ENTRY...],
 *     "closure": { "oldPaths", "newPaths", "pathsAdded", "pathsRemoved",
 *                  "oldSize", "newSize", "sizeDelta" } }
 *   ENTRY = { "name", "kind": "upgrade"|"downgrade"|"changed"|"added"|
 *             "removed", "oldVersions": [..], "newVersions": [..],
 *             "oldSize", "newSize", "sizeDelta" }
 * (doc/diff.schema.json; keys in camelCase, as in every report)
 */
struct cJSON *diffshow_json(const struct pkgdiff *d);

/*
 * Appends n bytes to out in binary units ("512 B", "4.0 KiB", "1.2 GiB");
 * with sign, a '+' or '-' first ("0 B" stays unsigned).
 */
void diffshow_size(struct strbuf *out, int64_t n, int sign);

#endif
