#include "pkgdiff.h"

/* placeholder so the module compiles while it is written */
typedef int pkgdiff_placeholder;
