/* narinfo: placeholder, being written. */
#ifndef NRR_NARINFO_H
#define NRR_NARINFO_H
#endif
