#include "cache.h"

/* placeholder so the module compiles while it is written */
typedef int cache_placeholder;
