/*
 * reboot: colmena's --reboot, with a time limit and a proof.
 *
 * One remote command reads the host's boot id and reboots it (the
 * connection dropping under it, ssh's status 255, is success). Then new
 * connections (not the master, which went down with the host), each with
 * a ConnectTimeout and killed at the deadline, ask for the boot id and the
 * running system every `interval` seconds until the boot id is new. That
 * proves a reboot; the running system must then be the expected one (the
 * new generation, for switch and boot). A host that does not come back
 * within the time limit is NRR_EREBOOT, never a hang. Once it is back, its
 * master is connected again (ssh_host_reconnect), so that later steps
 * (post-activation keys) go through one connection as before.
 */
#ifndef NRR_REBOOT_H
#define NRR_REBOOT_H

#include "error.h"
#include "host.h"

#define REBOOT_TIMEOUT_DEFAULT 300	/* seconds: --reboot-timeout */
#define REBOOT_INTERVAL_DEFAULT 2	/* seconds between attempts */

struct reboot_opts {
	int timeout;		/* seconds; <= 0: REBOOT_TIMEOUT_DEFAULT */
	int interval;		/* seconds; <= 0: REBOOT_INTERVAL_DEFAULT */
	const char *expect;	/* the system it must run after, or NULL */
};

/* What happened, for reports. The caller frees old_boot_id, new_boot_id
 * and system (reboot_result_release). */
struct reboot_result {
	char *old_boot_id, *new_boot_id, *system;
	int attempts;		/* new connections tried */
};

/*
 * Reboots h (elevated per el) and waits for it as above. Returns 0, or:
 * NRR_EREBOOT (it did not come back in time), NRR_EACTIVATE (it came
 * back running another system), NRR_EFAIL (no boot id, or the reboot
 * command failed: not rebooted), NRR_ECONNECT (unreachable before, or
 * after on reconnecting), NRR_EUSAGE (h is this machine), NRR_EINT.
 */
int reboot_host(const struct host *h, const struct elevation *el,
		const struct reboot_opts *o, struct reboot_result *r,
		struct nrr_err *e);

void reboot_result_release(struct reboot_result *r);

#endif
