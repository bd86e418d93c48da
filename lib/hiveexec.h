/*
 * hiveexec: colmena's `exec --on RULES -- COMMAND...` on a hive's nodes.
 *
 * Each selected node is reached as apply reaches it: targetUser@targetHost
 * with its targetPort and sshOptions after NIX_SSHOPTS, over one master
 * per node (lib/exec.c). As colmena does, a node whose targetUser is set
 * and is not root runs the command under its privilegeEscalationCommand
 * (no password is given to it: a sudo that asks one fails on that node).
 * A node without targetHost (apply-local only) cannot be reached: a usage
 * error naming it, before any host is contacted.
 */
#ifndef NRR_HIVEEXEC_H
#define NRR_HIVEEXEC_H

#include <stddef.h>

#include "error.h"
#include "hive.h"
#include "strvec.h"

/*
 * Runs cmd on the n nodes sel[] (indexes into h->nodes), at most parallel
 * at once (0: all), their lines on stdout and stderr under their names.
 * Returns 0 when it exited 0 everywhere, NRR_EFLEET (12) naming the nodes
 * where it did not, NRR_EUSAGE, NRR_EINT; e filled.
 */
int hive_exec(const struct hive *h, const size_t *sel, size_t n,
	      const char *const *cmd, int parallel, int verbose,
	      struct strvec *warnings, struct nrr_err *e);

#endif
