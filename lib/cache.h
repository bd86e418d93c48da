/* cache: placeholder, being written. */
#ifndef NRR_CACHE_H
#define NRR_CACHE_H
#endif
