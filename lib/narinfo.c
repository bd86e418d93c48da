#include "narinfo.h"

/* placeholder so the module compiles while it is written */
typedef int narinfo_placeholder;
