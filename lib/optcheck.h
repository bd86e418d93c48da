/*
 * optcheck: the rules between the options of one command line, checked
 * once they are all parsed (lib/options.c): which go with which action,
 * which go together, names that must be one path component or one line;
 * and the defaults that follow from others (a flake's, the pass-through
 * flags of classic builds).
 */
#ifndef NRR_OPTCHECK_H
#define NRR_OPTCHECK_H

#include "options.h"

/* Checks o as options_parse left it, and completes it. Returns 0 or
 * NRR_EUSAGE with e filled (one line naming the option). */
int options_check(struct options *o, struct nrr_err *e);

#endif
