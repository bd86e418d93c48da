#define _GNU_SOURCE
#include "complete.h"
#include "action.h"
#include "colmena.h"
#include "nix.h"
#include "options.h"
#include "quote.h"
#include "run.h"
#include "ssh.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void hosts_from(const char *path, const char *sshdir,
		       struct strvec *hosts, int depth)
{
	struct strvec inc = STRVEC_INIT;
	char *text;
	if (depth > 8)
		return;
	text = read_file_text(path);
	ssh_config_hosts(text, hosts, &inc);
	free(text);
	for (size_t i = 0; i < inc.nr; i++) {
		const char *pat = inc.v[i];
		char *full;
		glob_t g;
		if (pat[0] == '~')
			full = xstrfmt("%s/..%s", sshdir, pat + 1);
		else if (pat[0] == '/')
			full = xstrdup(pat);
		else
			full = xstrfmt("%s/%s", sshdir, pat);
		if (!glob(full, 0, NULL, &g)) {
			for (size_t k = 0; k < g.gl_pathc; k++)
				hosts_from(g.gl_pathv[k], sshdir, hosts, depth + 1);
			globfree(&g);
		}
		free(full);
	}
	strvec_clear(&inc);
}

/* ssh reads ~ from the passwd entry, not $HOME; -F in NIX_SSHOPTS wins. */
static void print_hosts(void)
{
	struct strvec hosts = STRVEC_INIT;
	const char *opts = getenv("NIX_SSHOPTS");
	char *file = NULL;
	struct passwd *pw = getpwuid(getuid());
	char *sshdir = xstrfmt("%s/.ssh", pw ? pw->pw_dir : "/");

	if (opts) {
		struct strvec w = STRVEC_INIT;
		const char *why;
		if (!split_cmdline(opts, &w, &why))
			for (size_t i = 0; i + 1 < w.nr; i++)
				if (!strcmp(w.v[i], "-F"))
					file = xstrdup(w.v[i + 1]);
		strvec_clear(&w);
	}
	if (!file)
		file = xstrfmt("%s/config", sshdir);
	hosts_from(file, sshdir, &hosts, 0);
	hosts_from("/etc/ssh/ssh_config", "/etc/ssh", &hosts, 0);
	for (size_t i = 0; i < hosts.nr; i++)
		puts(hosts.v[i]);
	strvec_clear(&hosts);
	free(file);
	free(sshdir);
}

static int print_flake_outputs(const char *ref)
{
	const char *cache_home = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	struct strbuf key = STRBUF_INIT;
	char *cache = NULL, *text = NULL;
	struct stat st;
	char cwd[4096];

	/* the cache key is the reference as seen from here */
	strbuf_addstr(&key, getcwd(cwd, sizeof(cwd)) ? cwd : "");
	strbuf_addf(&key, "|%s", ref);
	unsigned long h = 5381;
	for (size_t i = 0; i < key.len; i++)
		h = h * 33 + (unsigned char)key.buf[i];
	strbuf_release(&key);
	if (cache_home && *cache_home)
		cache = xstrfmt("%s/nixos-rebuild-remote", cache_home);
	else if (home && *home)
		cache = xstrfmt("%s/.cache/nixos-rebuild-remote", home);
	char *file = cache ? xstrfmt("%s/flake-%lx", cache, h) : NULL;
	if (file && !stat(file, &st) && time(NULL) - st.st_mtime < 60)
		text = read_file_text(file);
	if (text && !*text) {
		free(text);	/* unreadable, or empty: ask again */
		text = NULL;
	}
	if (!text) {
		struct strvec argv = STRVEC_INIT;
		struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
		nix_push_command(&argv, "eval");
		strvec_push(&argv, "--json");
		strvec_pushf(&argv, "%s#nixosConfigurations", ref);
		strvec_pushl(&argv, "--apply", "builtins.attrNames", NULL);
		int s = nix_capture(&argv, &out, &err);
		strvec_clear(&argv);
		strbuf_release(&err);
		if (s != 0) {
			strbuf_release(&out);
			free(cache);
			free(file);
			return 0;	/* nothing to offer is not an error */
		}
		text = strbuf_detach(&out);
		if (file) {
			mkdir(cache, 0700);
			FILE *f = fopen(file, "w");
			if (f) {
				fputs(text, f);
				fclose(f);
			}
		}
	}
	cJSON *arr = cJSON_Parse(text);
	cJSON *it;
	cJSON_ArrayForEach(it, arr)
		if (cJSON_IsString(it))
			puts(it->valuestring);
	cJSON_Delete(arr);
	free(text);
	free(cache);
	free(file);
	return 0;
}

int complete_print(const char *what, struct nrr_err *e)
{
	if (!strcmp(what, "options")) {
		options_print_completion(stdout, 0);
	} else if (!strcmp(what, "options-table")) {
		options_print_completion(stdout, 1);
	} else if (!strcmp(what, "actions")) {
		for (const struct action *a = action_table; a->name; a++)
			puts(a->name);
	} else if (!strcmp(what, "hosts")) {
		print_hosts();
	} else if (!strncmp(what, "flake:", 6)) {
		return print_flake_outputs(what[6] ? what + 6 : ".");
	} else if (!colmena_complete(what)) {
		return 0;
	} else {
		return nrr_fail(e, NRR_EUSAGE, "--complete: unknown topic '%s'", what);
	}
	return 0;
}
