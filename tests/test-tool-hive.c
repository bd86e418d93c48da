/*
 * test-tool hive-*: lib/hive.c for the bats suite (tests/hive.bats).
 *
 *   hive-info < JSON               the evaluator's "info" answer, read and checked
 *   hive-select RULES|- < JSON     the nodes --on RULES selects ("-": no --on)
 *   hive-find [-f CONFIG] [DIR]    where the hive is found from DIR
 *   hive-load [-f CONFIG]          the hive found from ".", evaluated by nix
 *   hive-toplevels [-f C] RULES    NAME DRV OUT of the selected nodes' systems
 *   hive-argv [-f C] OUTPUT WHAT   the nix command asking WHAT, NUL-separated
 *                                  (OUTPUT: colmena or colmenaHive, for flakes)
 *   hive-cache-fingerprint < JSON  1 if nix flake metadata's `locked` gives the
 *                                  evaluation cache a fingerprint, else 0
 *
 * The last two run nix (inside a test fleet's deployer): they drive the
 * module's evaluation before commands use it. Errors print "error: MSG"
 * (and "hint: HINT") on stdout and exit with the error's status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/evalcache.h"
#include "../lib/hive.h"

int test_tool_hive(int argc, const char **argv);

char *test_tool_read_stdin(void);	/* test-tool.c */

static const char *or_none(const char *s)
{
	return s ? s : "(null)";
}

static void print_list(const char *name, const struct strvec *v)
{
	printf(" %s=[", name);
	for (size_t i = 0; i < v->nr; i++)
		printf("%s%s", i ? " " : "", v->v[i]);
	printf("]");
}

static void print_hive(const struct hive *h)
{
	printf("hive name=%s description=%s machinesFile=%s allowApplyAll=%d\n",
	       or_none(h->name), or_none(h->description), or_none(h->machines_file),
	       h->allow_apply_all);
	for (size_t i = 0; i < h->nnodes; i++) {
		const struct hive_node *n = &h->nodes[i];
		printf("node %s host=%s port=%d user=%s", n->name, or_none(n->target_host),
		       n->target_port, or_none(n->target_user));
		print_list("tags", &n->tags);
		printf(" local=%d buildOnTarget=%d replaceUnknown=%d", n->allow_local,
		       n->build_on_target, n->replace_unknown);
		print_list("escalation", &n->escalation);
		print_list("ssh", &n->ssh_options);
		printf("\n");
		for (size_t k = 0; k < n->keys.nr; k++) {
			const struct key *key = &n->keys.v[k];
			printf("key %s/%s name=%s path=%s/%s destDir=%s owner=%s:%s mode=%s at=%s source=",
			       n->name, key->attr, key->name, key->dest_dir, key->name, key->dest_dir,
			       key->user, key->group, key->permissions,
			       key->upload_at == KEYS_POST ? "post" : "pre");
			if (key->text || key->text_later)
				printf("text");
			else if (key->file)
				printf("file:%s", key->file);
			else
				print_list("command", &key->command);
			printf("\n");
		}
	}
}

static int fail(const struct nrr_err *e)
{
	printf("error: %s\n", e->msg);
	if (e->hint[0])
		printf("hint: %s\n", e->hint);
	return e->status;
}

/* -f CONFIG in argv[1..2]: shifts it out. */
static const char *take_config(int *argc, const char ***argv)
{
	if (*argc >= 3 && !strcmp((*argv)[1], "-f")) {
		const char *c = (*argv)[2];
		*argc -= 2;
		*argv += 2;
		return c;
	}
	return NULL;
}

int test_tool_hive(int argc, const char **argv)
{
	const char *cmd = argv[0];
	struct hive h = HIVE_INIT;
	struct nrr_err e = { 0 };
	struct hive_opts o = { 0 };
	struct strvec warnings = STRVEC_INIT;
	int st = 0;

	o.config = take_config(&argc, &argv);
	if (!strcmp(cmd, "hive-cache-fingerprint")) {
		char *json = test_tool_read_stdin();
		printf("%d\n", evalcache_locked_has_fingerprint(json));
		free(json);
	} else if (!strcmp(cmd, "hive-info") || !strcmp(cmd, "hive-select")) {
		char *json = test_tool_read_stdin();
		st = hive_parse_info(&h, json, &e);
		free(json);
		if (!st && !strcmp(cmd, "hive-info"))
			print_hive(&h);
		if (!st && !strcmp(cmd, "hive-select") && argc == 2) {
			const char *rules = strcmp(argv[1], "-") ? argv[1] : NULL;
			size_t *sel = NULL, n = 0;
			st = hive_check_apply_all(&h, rules, &e);
			if (!st)
				st = hive_select(&h, rules, &sel, &n, &e);
			for (size_t i = 0; !st && i < n; i++)
				printf("%s\n", h.nodes[sel[i]].name);
			free(sel);
		}
	} else if (!strcmp(cmd, "hive-find")) {
		o.cwd = argc >= 2 ? argv[1] : NULL;
		st = hive_find(&h, &o, &e);
		if (!st)
			printf("%s %s\n", h.kind == HIVE_FLAKE ? "flake" : "file", h.where);
	} else if (!strcmp(cmd, "hive-load")) {
		st = hive_load(&h, &o, &warnings, &e);
		if (!st)
			print_hive(&h);
	} else if (!strcmp(cmd, "hive-toplevels") && argc == 2) {
		size_t *sel = NULL, n = 0;
		st = hive_load(&h, &o, &warnings, &e);
		if (!st)
			st = hive_select(&h, argv[1], &sel, &n, &e);
		if (!st) {
			char **drv = xcalloc(n + 1, sizeof(*drv)), **out = xcalloc(n + 1, sizeof(*out));
			st = hive_toplevels(&h, &o, sel, n, drv, out, &warnings, &e);
			for (size_t i = 0; i < n; i++) {
				if (!st)
					printf("%s %s %s\n", h.nodes[sel[i]].name, drv[i], out[i]);
				free(drv[i]);
				free(out[i]);
			}
			free(drv);
			free(out);
		}
		free(sel);
	} else if (!strcmp(cmd, "hive-argv") && argc == 3) {
		struct strvec av = STRVEC_INIT;
		st = hive_find(&h, &o, &e);
		h.evaluated = !strcmp(argv[1], "colmenaHive");
		if (!st) {
			hive_eval_argv(&h, &o, argv[2], NULL, &av);
			for (size_t i = 0; i < av.nr; i++)
				fwrite(av.v[i], 1, strlen(av.v[i]) + 1, stdout);
		}
		strvec_clear(&av);
	} else {
		fprintf(stderr, "test-tool: unknown command '%s'\n", cmd);
		return 2;
	}
	if (st)
		fail(&e);
	hive_release(&h);
	strvec_clear(&warnings);
	return st;
}
