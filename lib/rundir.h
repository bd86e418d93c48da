/*
 * rundir: where a run keeps what lives only as long as it does: its ssh
 * control sockets (and their masters' error files) and the fleet's
 * closure files.
 *
 * $XDG_RUNTIME_DIR when it is the user's own (a directory of this uid,
 * closed to everyone else, as the XDG spec promises: a tmpfs under
 * /run/user on a systemd machine), else $TMPDIR, else /tmp. The runtime
 * directory comes first because a fleet makes a few of these a host:
 * in /tmp on ext4 each directory and file made and removed cost a host
 * about 0.1 ms of CPU here, against a tenth of that on a tmpfs
 * (bench/README.md), and nothing of it has to survive a reboot.
 */
#ifndef NRR_RUNDIR_H
#define NRR_RUNDIR_H

#include <stddef.h>

/*
 * Makes a new directory, mode 0700, named PREFIX.XXXXXX in the first of
 * those places whose path is at most max_base characters long (0: any;
 * a control socket's whole path must fit in a sockaddr_un) and where it
 * can be made, /tmp last. Returns its path, malloc'ed (the caller frees
 * it, and removes the directory); NULL with errno set when /tmp failed
 * too.
 */
char *rundir_make(const char *prefix, size_t max_base);

#endif
