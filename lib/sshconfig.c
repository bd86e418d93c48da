#define _GNU_SOURCE
#include "sshconfig.h"
#include "strbuf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ssh_check_name(const char *spec, struct nrr_err *e)
{
	if (!*spec)
		return nrr_fail(e, NRR_EUSAGE, "empty host name");
	if (spec[0] == '-')
		return nrr_fail(e, NRR_EUSAGE,
				"refusing host name '%s': it begins with '-'", spec);
	for (const char *p = spec; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return nrr_fail(e, NRR_EUSAGE,
					"refusing host name '%s': it contains %s", spec,
					*p == ' ' ? "a space" : "a control character");
		/* braces too, as OpenSSH 9.6 refuses them: a shell's brace
		 * expansion could reach a ProxyCommand's %h */
		if (strchr("'\"`$;|&<>(){}\\", *p))
			return nrr_fail(e, NRR_EUSAGE,
					"refusing host name '%s': it contains '%c'", spec, *p);
	}
	return 0;
}

void ssh_config_release(struct ssh_config *cfg)
{
	free(cfg->user);
	free(cfg->hostname);
	free(cfg->control_path);
	free(cfg->control_master);
	free(cfg->control_persist);
	memset(cfg, 0, sizeof(*cfg));
}

int ssh_config_parse(const char *text, struct ssh_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	while (*text) {
		const char *eol = strchrnul(text, '\n');
		const char *sp = memchr(text, ' ', (size_t)(eol - text));
		if (sp) {
			size_t kl = (size_t)(sp - text);
			char *val = xstrndup(sp + 1, (size_t)(eol - sp - 1));
			char **slot = NULL;
			if (kl == 4 && !strncmp(text, "user", 4))
				slot = &cfg->user;
			else if (kl == 8 && !strncmp(text, "hostname", 8))
				slot = &cfg->hostname;
			else if (kl == 11 && !strncmp(text, "controlpath", 11))
				slot = &cfg->control_path;
			else if (kl == 13 && !strncmp(text, "controlmaster", 13))
				slot = &cfg->control_master;
			else if (kl == 14 && !strncmp(text, "controlpersist", 14))
				slot = &cfg->control_persist;
			else if (kl == 14 && !strncmp(text, "connecttimeout", 14))
				cfg->connect_timeout_set = strcmp(val, "none") != 0;
			else if (kl == 19 && !strncmp(text, "serveraliveinterval", 19))
				cfg->server_alive_set = strcmp(val, "0") != 0;
			else if (kl == 11 && !strncmp(text, "compression", 11))
				cfg->compression = !strcmp(val, "yes");
			else if (kl == 4 && !strncmp(text, "port", 4) && !cfg->port)
				cfg->port = atoi(val);
			if (slot && !*slot) {
				*slot = val;
				val = NULL;
			}
			free(val);
		}
		text = *eol ? eol + 1 : eol;
	}
	if (cfg->control_path && !strcmp(cfg->control_path, "none")) {
		free(cfg->control_path);
		cfg->control_path = NULL;
	}
	if (!cfg->user || !cfg->hostname || cfg->port <= 0)
		return -1;
	return 0;
}

/* 1 if name ends in suffix (a whole label). */
static int ends_with_label(const char *name, const char *suffix)
{
	size_t n = strlen(name), k = strlen(suffix);
	return n > k && name[n - k - 1] == '.' && !strcasecmp(name + n - k, suffix);
}

int ssh_host_is_near(const char *hostname)
{
	static const char *const lan_suffixes[] = { "local", "lan", "home.arpa", "internal" };
	unsigned char a[16];

	if (!hostname || !*hostname)
		return 0;
	if (!strcasecmp(hostname, "localhost") || ends_with_label(hostname, "localhost"))
		return 1;
	if (inet_pton(AF_INET, hostname, a) == 1)
		return a[0] == 127 || a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		       (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254);
	if (inet_pton(AF_INET6, hostname, a) == 1) {
		static const unsigned char loop[16] = { [15] = 1 };
		return !memcmp(a, loop, 16) || (a[0] & 0xfe) == 0xfc ||
		       (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
	}
	if (!strchr(hostname, '.'))
		return 1;
	for (size_t i = 0; i < sizeof(lan_suffixes) / sizeof(lan_suffixes[0]); i++)
		if (ends_with_label(hostname, lan_suffixes[i]))
			return 1;
	return 0;
}

void ssh_config_hosts(const char *text, struct strvec *hosts,
		      struct strvec *includes)
{
	while (*text) {
		size_t len = strcspn(text, "\n");
		char *line = xstrndup(text, len);
		char *p = line + strspn(line, " \t");
		size_t kl = strcspn(p, " \t=");
		int is_host = kl == 4 && !strncasecmp(p, "host", 4);
		int is_inc = kl == 7 && !strncasecmp(p, "include", 7);
		if (is_host || is_inc) {
			p += kl;
			for (;;) {
				p += strspn(p, " \t=");
				size_t wl = strcspn(p, " \t");
				if (!wl || *p == '#')
					break;
				char *w = xstrndup(p, wl);
				if (is_inc)
					strvec_push(includes, w);
				else if (!strpbrk(w, "*?!") && strvec_find(hosts, w) < 0)
					strvec_push(hosts, w);
				free(w);
				p += wl;
			}
		}
		free(line);
		text += len + (text[len] ? 1 : 0);
	}
}
