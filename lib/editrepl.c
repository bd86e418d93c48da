/* editrepl: edit and repl, the configuration opened for a person. */
#define _GNU_SOURCE	/* mkstemps, realpath */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "editrepl.h"
#include "nix.h"
#include "run.h"
#include "strbuf.h"
#include "strvec.h"

/* The configuration file of classic mode, as nixos-rebuild finds it:
 * $NIXOS_CONFIG, else <nixos-config>, else /etc/nixos/configuration.nix;
 * a directory's default.nix. NULL when there is none. */
static char *classic_config_file(const struct deploy *d)
{
	const char *env = getenv("NIXOS_CONFIG");
	char *file = env && *env ? xstrdup(env) : nix_find_file("nixos-config", &d->opt->nix_build);
	struct stat st;

	if (!file)
		file = xstrdup("/etc/nixos/configuration.nix");
	if (!stat(file, &st) && S_ISDIR(st.st_mode)) {
		char *in = xstrfmt("%s/default.nix", file);
		free(file);
		file = in;
	}
	if (stat(file, &st)) {
		free(file);
		return NULL;
	}
	return file;
}

int config_edit(struct deploy *d, struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	int ret;

	if ((ret = deploy_default_name(d, e)))
		return ret;
	if (d->src == SRC_FLAKE) {
		char *installable = xstrfmt("%s#nixosConfigurations.\"%s\"",
					    d->flake_ref, d->flake_name);
		ret = nix_edit(installable, &d->opt->nix_flake_eval, e);
		free(installable);
		return ret;
	}
	const char *editor = getenv("EDITOR");
	char *file = classic_config_file(d);
	if (!file) {
		const char *env = getenv("NIXOS_CONFIG");
		nrr_fail(e, NRR_EFAIL, "cannot find the NixOS configuration file%s%s%s",
			 env && *env ? " '" : "", env && *env ? env : "", env && *env ? "'" : "");
		nrr_hint(e, "set NIXOS_CONFIG, or nixos-config in NIX_PATH, or use --flake");
		return e->status;
	}
	strvec_push(&argv, editor && *editor ? editor : "nano");
	strvec_push(&argv, file);
	free(file);
	ret = child_run(&argv, e);
	strvec_clear(&argv);
	return ret;
}

/*
 * nix repl on the configuration. Old and new nix disagree on how repl
 * takes a flake (2.8 loads only files), so both get a file of ours that
 * puts the configuration's parts in scope, as nixos-rebuild's repl does.
 */
int config_repl(struct deploy *d, struct nrr_err *e)
{
	char path[] = "/tmp/nrr-repl-XXXXXX.nix";
	int ret, fd;

	if ((ret = deploy_default_name(d, e)))
		return ret;
	fd = mkstemps(path, 4);
	if (fd < 0)
		return nrr_fail(e, NRR_EFAIL, "cannot create a file in /tmp: %s",
				strerror(errno));
	FILE *f = fdopen(fd, "w");
	struct strbuf src = STRBUF_INIT;
	char *abs = NULL;
	if (d->src == SRC_FLAKE) {
		if (d->flake_ref[0] == '.' || d->flake_ref[0] == '/')
			abs = realpath(d->flake_ref, NULL);
		nix_string_escape(&src, abs ? abs : d->flake_ref);
		fprintf(f, "let flake = builtins.getFlake \"%s\";\n"
			   "    configuration = flake.nixosConfigurations.\"%s\";\n",
			src.buf, d->flake_name);
	} else {
		/* a file is called when it is a function, as nix repl --file
		 * and nix-build call it; an attribute set is taken as it is */
		if (d->file[0] == '<') {
			strbuf_addstr(&src, d->file);
		} else {
			abs = realpath(d->file, NULL);
			strbuf_addch(&src, '"');
			nix_string_escape(&src, abs ? abs : d->file);
			strbuf_addch(&src, '"');
		}
		fprintf(f, "let file = import %s;\n"
			   "    configuration = (if builtins.isFunction file then file { } else file)%s%s;\n",
			src.buf, d->attr ? "." : "", d->attr ? d->attr : "");
	}
	free(abs);
	strbuf_release(&src);
	fputs("in {\n"
	      "  inherit configuration;\n"
	      "  inherit (configuration) config;\n"
	      "  options = configuration.options or { };\n"
	      "  pkgs = configuration.pkgs or { };\n"
	      "  lib = configuration.lib or configuration.pkgs.lib or { };\n"
	      "}\n", f);
	fclose(f);

	ret = nix_repl(path, &d->opt->nix_build, e);
	unlink(path);
	return ret;
}
