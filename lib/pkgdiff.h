/* pkgdiff: placeholder, being written. */
#ifndef NRR_PKGDIFF_H
#define NRR_PKGDIFF_H
#endif
