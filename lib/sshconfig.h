/*
 * sshconfig: what OpenSSH's configuration says about a host, read from
 * text: `ssh -G`'s answer (the settings that decide how we connect), the
 * Host names of a config file (completion), and the checks of a host name
 * before it reaches ssh. Pure: no process is started here (lib/ssh.h runs
 * ssh -G and connects).
 */
#ifndef NRR_SSHCONFIG_H
#define NRR_SSHCONFIG_H

#include "error.h"
#include "strvec.h"

struct ssh_config {
	char *user, *hostname;
	int port;
	char *control_path;	/* NULL unless the user's config sets one */
	char *control_master;	/* "false", "true", "auto", ... */
	char *control_persist;	/* "no", "yes" or seconds */
	int connect_timeout_set, server_alive_set; /* the user chose them */
	int compression;	/* "compression yes" */
};

/* Refuses host names that ssh would take as options or that hold
 * white space or control characters. Returns 0 or NRR_EUSAGE. */
int ssh_check_name(const char *spec, struct nrr_err *e);

/* Parses `ssh -G` output into cfg (strings are malloc'ed; see
 * ssh_config_release). Returns 0, or -1 if user/hostname/port are missing. */
int ssh_config_parse(const char *text, struct ssh_config *cfg);

/*
 * 1 if hostname names this machine or a private network: localhost, a
 * loopback, private, link-local or unique-local address literal, a name
 * without a dot (a LAN's short name) or under .local, .lan, .home.arpa or
 * .internal. Decides compression: our master compresses links that are
 * likely slower than zlib (the others, where the upload is the bottleneck).
 */
int ssh_host_is_near(const char *hostname);
/* Frees what ssh_config_parse() set, and zeroes cfg. */
void ssh_config_release(struct ssh_config *cfg);

/*
 * Collects Host names (no wildcards or negations) from the ssh config
 * text, and Include patterns into includes (pure; for unit tests).
 */
void ssh_config_hosts(const char *text, struct strvec *hosts,
		      struct strvec *includes);

#endif
