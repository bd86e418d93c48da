#define _XOPEN_SOURCE 700	/* realpath */
#include "nix.h"
#include "fiber.h"
#include "progress.h"
#include "quote.h"
#include "run.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int nix_version_parse(const char *text, struct nix_version *v)
{
	const char *p = strstr(text, ") ");
	memset(v, 0, sizeof(*v));
	if (!p)
		return -1;
	v->lix = strstr(text, "Lix") != NULL;
	if (sscanf(p + 2, "%d.%d.%d", &v->major, &v->minor, &v->patch) < 2)
		return -1;
	return 0;
}

int nix_check_config_name(const char *name, struct nrr_err *e)
{
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < ' ' || strchr("\"\\$#", *p))
			return nrr_fail(e, NRR_EUSAGE,
					"refusing configuration name '%s': it contains '%c'",
					name, (unsigned char)*p >= ' ' ? *p : '?');
	return 0;
}

void nix_split_flake(const char *arg, char **ref, char **name)
{
	const char *hash = strchr(arg, '#');
	if (!hash) {
		*ref = xstrdup(arg);
		*name = xstrdup("");
		return;
	}
	*ref = xstrndup(arg, (size_t)(hash - arg));
	*name = xstrdup(hash + 1);
	if (!**ref) {
		free(*ref);
		*ref = xstrdup(".");
	}
}

char *nix_flake_attr(const char *ref, const char *name, const char *tail)
{
	return xstrfmt("%s#nixosConfigurations.\"%s\".%s", ref, name, tail);
}

void nix_string_escape(struct strbuf *dst, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\' || (*s == '$' && s[1] == '{'))
			strbuf_addch(dst, '\\');
		strbuf_addch(dst, *s);
	}
}

char *nix_build_json_out(const char *json)
{
	cJSON *root = cJSON_Parse(json);
	char *res = NULL;
	if (!root)
		return NULL;
	cJSON *first = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : NULL;
	cJSON *outs = first ? cJSON_GetObjectItemCaseSensitive(first, "outputs") : NULL;
	cJSON *out = outs ? cJSON_GetObjectItemCaseSensitive(outs, "out") : NULL;
	if (cJSON_IsString(out) && out->valuestring)
		res = xstrdup(out->valuestring);
	cJSON_Delete(root);
	return res;
}

void nix_strip_escapes(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (*r == '\033' && r[1] == '[') {
			r += 2;
			while (*r && !(*r >= '@' && *r <= '~'))
				r++;
			if (!*r)
				break;
			continue;
		}
		*w++ = *r;
	}
	*w = '\0';
	while (*s == ' ')
		memmove(s, s + 1, strlen(s));
}

void nix_error_summary(const char *err, char *buf, size_t size)
{
	const char *best = NULL, *p = err;
	while ((p = strstr(p, "error:"))) {
		if (p == err || p[-1] == '\n' || p[-1] == ' ' || p[-1] == 'm')
			best = p;
		p += 6;
	}
	if (best) {
		best += 6;
		while (*best == ' ')
			best++;
		size_t n = strcspn(best, "\n");
		/* "error:" alone on a line: the reason is on the next one */
		if (!n && best[0] == '\n') {
			best++;
			while (*best == ' ')
				best++;
			n = strcspn(best, "\n");
		}
		snprintf(buf, size, "%.*s", (int)n, best);
		nix_strip_escapes(buf);
		return;
	}
	size_t n;
	const char *l = last_line(err, &n);
	snprintf(buf, size, "%.*s", (int)n, n ? l : "(no message)");
	nix_strip_escapes(buf);
}

int nix_error_is_build(const char *err)
{
	return strstr(err, "builder for") || strstr(err, "failed to build") ||
	       strstr(err, "dependencies couldn't be built") ||
	       strstr(err, "Cannot build") || strstr(err, "is required to build");
}

char *nix_unknown_flag(const char *err)
{
	static const char *const pats[] = {
		"unrecognised flag '", "unrecognized flag '", "unknown flag '", NULL };
	for (int i = 0; pats[i]; i++) {
		const char *p = strstr(err, pats[i]);
		if (!p)
			continue;
		p += strlen(pats[i]);
		const char *q = strchr(p, '\'');
		if (q && q > p)
			return xstrndup(p, (size_t)(q - p));
	}
	return NULL;
}

/*
 * The flags of nix's own command line that take values, and how many
 * (nix --help; the same for nix-build, nix-instantiate and nix-store).
 * tests/unit.bats checks that every flag our option table passes on to
 * nix agrees with this.
 */
static const struct { const char *flag; int nargs; } nix_flags[] = {
	{ "--max-jobs", 1 }, { "-j", 1 }, { "--cores", 1 }, { "--log-format", 1 },
	{ "--option", 2 }, { "--builders", 1 }, { "--include", 1 }, { "-I", 1 },
	{ "--update-input", 1 }, { "--override-input", 2 }, { "--arg", 2 },
	{ "--argstr", 2 }, { "--out-link", 1 }, { "-o", 1 }, { "--attr", 1 },
	{ "-A", 1 }, { "--add-root", 1 }, { "--file", 1 }, { "-f", 1 },
	{ NULL, 0 },
};

int nix_flag_nargs(const char *flag)
{
	for (size_t i = 0; nix_flags[i].flag; i++)
		if (!strcmp(flag, nix_flags[i].flag))
			return nix_flags[i].nargs;
	return 0;
}

int nix_drop_flag(struct strvec *argv, const char *flag)
{
	int removed = 0;
	int nargs = nix_flag_nargs(flag);
	struct strvec kept = STRVEC_INIT;

	for (size_t i = 0; i < argv->nr; i++) {
		if (!strcmp(argv->v[i], flag)) {
			i += (size_t)nargs;
			removed = 1;
			continue;
		}
		strvec_push(&kept, argv->v[i]);
	}
	strvec_clear(argv);
	*argv = kept;
	return removed;
}

/* How many -v the user gave: nix's messages up to that level are shown. */
static size_t nix_verbosity(const struct strvec *argv)
{
	size_t v = 0;
	for (size_t i = 0; i < argv->nr; i++)
		if (!strcmp(argv->v[i], "-v"))
			v++;
	return v;
}

static void feed_progress(void *data, const char *buf, size_t n)
{
	progress_feed(data, buf, n);
}

/* Our rendering of nix's log, unless the user chose a log format. */
static int wants_progress(const struct strvec *argv)
{
	return strvec_find(argv, "--log-format") < 0;
}

int nix_capture_log(struct child *c, const struct nix_log *log,
		    struct strbuf *out, struct strbuf *err, struct nrr_err *e)
{
	struct capture cap = { .out = out, .err = err, .echo_fd = -1 };
	struct progress pr;
	int st;

	if (!log->render) {
		cap.echo_fd = log->quiet ? -1 : 2;
		return child_capture(c, &cap, e);
	}
	progress_init(&pr, log->quiet ? -1 : 2, isatty(fiber_std_fd(2)), log->logs,
		      log->verbosity);
	cap.on_err = feed_progress;
	cap.data = &pr;
	st = child_capture(c, &cap, e);
	progress_finish(&pr);
	/* what nix said, as text: for the error summary (255 is ssh's
	 * failure, whose own words are wanted as they came) */
	if (st != 255) {
		strbuf_reset(err);
		strbuf_add(err, pr.plain.buf, pr.plain.len);
	}
	progress_release(&pr);
	return st;
}

int nix_run(struct strvec *argv, struct strbuf *out, struct strbuf *err,
	    int flags, int trace, struct strvec *warnings, struct nrr_err *e)
{
	for (int attempt = 0; attempt < 8; attempt++) {
		struct child c = CHILD_INIT;
		struct nix_log log = {
			.render = wants_progress(argv),
			.quiet = flags & NIX_RUN_QUIET,
			.logs = strvec_find(argv, "--print-build-logs") >= 0 ||
				(flags & NIX_RUN_LOGS),
			.verbosity = (int)nix_verbosity(argv),
		};
		strbuf_reset(out);
		strbuf_reset(err);
		strvec_push(&c.args, argv->v[0]);
		if (log.render)
			strvec_pushl(&c.args, "--log-format", "internal-json", NULL);
		for (size_t i = 1; i < argv->nr; i++)
			strvec_push(&c.args, argv->v[i]);
		c.in = CHILD_NULL;
		c.stop_group = 1;	/* an interrupt ends it at once */
		if (trace)
			sq_trace_argv((const char *const *)argv->v);
		int st = nix_capture_log(&c, &log, out, err, e);
		child_clear(&c);
		if (st <= 0)
			return st;
		char *flag = nix_unknown_flag(err->buf);
		if (!flag || !nix_drop_flag(argv, flag)) {
			free(flag);
			return st;
		}
		strvec_pushf(warnings, "this machine's %s does not know '%s': dropped it",
			     argv->v[0], flag);
		free(flag);
	}
	return 1;
}

int nix_capture(const struct strvec *argv, struct strbuf *out,
		struct strbuf *err)
{
	struct child c = CHILD_INIT;
	struct capture cap = CAPTURE_INIT;
	struct nrr_err ignored;
	strvec_pushvec(&c.args, argv);
	c.in = CHILD_NULL;
	c.out = CHILD_NULL;
	cap.out = out;
	cap.err = err;
	int st = child_capture(&c, &cap, &ignored);
	child_clear(&c);
	return st;
}

void nix_push_command(struct strvec *argv, const char *sub)
{
	strvec_pushl(argv, "nix", "--extra-experimental-features",
		     "nix-command flakes", sub, NULL);
}

/* Runs argv on our terminal, then frees it. */
static int run_interactive(struct strvec *argv, struct nrr_err *e)
{
	int ret = child_run(argv, e);
	strvec_clear(argv);
	return ret;
}

int nix_edit(const char *installable, const struct strvec *flags,
	     struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	nix_push_command(&argv, "edit");
	strvec_pushvec(&argv, flags);
	strvec_pushl(&argv, "--", installable, NULL);
	return run_interactive(&argv, e);
}

int nix_repl(const char *path, const struct strvec *flags, struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT;
	struct nix_version v = { 2, 8, 0, 0 };
	if (nix_local_version(&v))
		v = (struct nix_version){ 2, 8, 0, 0 };
	nix_push_command(&argv, "repl");
	strvec_pushvec(&argv, flags);
	if (v.major > 2 || v.minor >= 10 || v.lix)
		strvec_pushl(&argv, "--impure", "--file", path, NULL);
	else
		strvec_push(&argv, path);
	return run_interactive(&argv, e);
}

static int channel_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int nix_channel_update(const char *channels_dir, int all, int sudo, struct strvec *warnings,
		       struct nrr_err *e)
{
	struct strvec argv = STRVEC_INIT, names = STRVEC_INIT;
	DIR *dir = all ? NULL : opendir(channels_dir);
	struct dirent *de;
	int ret = 0;

	while (dir && (de = readdir(dir))) {
		struct stat st;
		char *marker = xstrfmt("%s/%s/.update-on-nixos-rebuild", channels_dir, de->d_name);
		if (de->d_name[0] != '.' && (!strcmp(de->d_name, "nixos") || !stat(marker, &st)))
			strvec_push(&names, de->d_name);
		free(marker);
	}
	if (dir)
		closedir(dir);
	if (!all && !names.nr) {
		strvec_pushf(warnings, "--upgrade: no channel named nixos or marked "
			     ".update-on-nixos-rebuild in %s: none updated", channels_dir);
		goto out;
	}
	qsort(names.v, names.nr, sizeof(*names.v), channel_cmp);
	if (sudo)
		strvec_pushl(&argv, "sudo", "--", NULL);
	strvec_pushl(&argv, "nix-channel", "--update", NULL);
	strvec_pushvec(&argv, &names);
	ret = run_interactive(&argv, e);
	if (ret && ret != NRR_EINT) {
		strvec_pushf(warnings, "--upgrade: %s; building with the channels as they are", e->msg);
		ret = 0;
	}
out:
	strvec_clear(&argv);
	strvec_clear(&names);
	return ret;
}

int nix_local_config(struct strbuf *out)
{
	/* Nix 2.8: show-config; from 2.20: config show */
	static const char *const cmds[][6] = {
		{ "nix", "--extra-experimental-features", "nix-command", "show-config", "--json", NULL },
		{ "nix", "--extra-experimental-features", "nix-command", "config", "show", "--json" },
	};
	for (size_t i = 0; i < 2; i++) {
		struct strvec argv = STRVEC_INIT;
		for (size_t k = 0; k < 6 && cmds[i][k]; k++)
			strvec_push(&argv, cmds[i][k]);
		strbuf_reset(out);
		int st = nix_capture(&argv, out, NULL);
		strvec_clear(&argv);
		if (st == 0)
			return 0;
	}
	return -1;
}

int nix_local_version(struct nix_version *v)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT;
	strvec_pushl(&argv, "nix", "--version", NULL);
	int ret = nix_capture(&argv, &out, NULL) == 0 ? nix_version_parse(out.buf, v) : -1;
	strvec_clear(&argv);
	strbuf_release(&out);
	return ret;
}

char *nix_find_file(const char *name, const struct strvec *flags)
{
	struct strvec argv = STRVEC_INIT;
	struct strbuf out = STRBUF_INIT;
	strvec_pushl(&argv, "nix-instantiate", "--find-file", name, NULL);
	strvec_pushvec(&argv, flags);
	int st = nix_capture(&argv, &out, NULL);
	strvec_clear(&argv);
	strbuf_rtrim(&out);
	if (st == 0 && out.len)
		return strbuf_detach(&out);
	strbuf_release(&out);
	return NULL;
}

void nix_dry_run_parse(const char *text, struct nix_dry_run *dr)
{
	enum { NONE, BUILD, FETCH } list = NONE;

	memset(dr, 0, sizeof(*dr));
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		char line[512];
		snprintf(line, sizeof(line), "%.*s", (int)(len < 511 ? len : 511), p);
		if (strstr(line, " will be built")) {
			list = BUILD;
		} else if (strstr(line, " will be fetched")) {
			const char *open = strchr(line, '(');
			double mib;
			list = FETCH;
			if (open && sscanf(open, "(%lf MiB download", &mib) == 1 && mib >= 0)
				dr->download_mib = mib;
		} else if (!strncmp(line, "  /", 3) && list != NONE) {
			if (list == BUILD)
				dr->build++;
			else
				dr->fetch++;
		} else {
			list = NONE;
		}
		p += len + (p[len] ? 1 : 0);
	}
}

char *nix_flake_dir_of(const char *flake_nix)
{
	char *real = realpath(flake_nix, NULL), *parent = xstrdup(flake_nix);
	char *slash = real ? strrchr(real, '/') : NULL, *pslash = strrchr(parent, '/');
	char *own_dir = NULL, *dir = NULL;

	if (pslash) {
		*pslash = '\0';
		own_dir = realpath(*parent ? parent : "/", NULL);
	}
	if (slash) {
		*slash = '\0';
		if (!own_dir || strcmp(own_dir, *real ? real : "/"))
			dir = xstrdup(*real ? real : "/");
	}
	free(real);
	free(parent);
	free(own_dir);
	return dir;
}
