/*
 * test-tool diff-*: lib/pkgdiff.c for the bats suite (tests/pkgdiff.bats)
 * and bench/diff-bench. Closure files hold "PATH<TAB>SIZE" lines.
 *
 *   diff-split PATH...             name<TAB>version per path
 *   diff-compare V1 V2             "<", "=" or ">"
 *   diff-sort V...                 the versions in ascending order
 *   diff-parse FILE                the parsed "PATH<TAB>SIZE" lines
 *   diff-parse-lists PATHS SIZES   the same from two parallel listings
 *   diff-closures [--color] OLD NEW   the text diff
 *   diff-json OLD NEW              the JSON report, formatted
 *   diff-time OLD NEW [RUNS]       in-process timing of read + parse +
 *                                  compute + text + JSON, in ms
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/pkgdiff.h"
#include "../lib/diffshow.h"

int test_tool_diff(int argc, const char **argv);

/* The contents of path in sb; prints why not and returns -1. */
static int read_file(const char *path, struct strbuf *sb)
{
	FILE *f = fopen(path, "r");
	char buf[65536];
	size_t n;
	if (!f) {
		fprintf(stderr, "error: cannot open '%s': %s\n", path,
			strerror(errno));
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(sb, buf, n);
	fclose(f);
	return 0;
}

static int load_closure(const char *path, struct pkgdiff_closure *c)
{
	struct strbuf sb = STRBUF_INIT;
	struct nrr_err e = { 0 };
	int r = read_file(path, &sb);
	if (!r && pkgdiff_closure_parse(c, sb.buf, &e)) {
		fprintf(stderr, "error: %s: %s\n", path, e.msg);
		r = -1;
	}
	strbuf_release(&sb);
	return r;
}

static void print_closure(const struct pkgdiff_closure *c)
{
	for (size_t i = 0; i < c->nr; i++)
		printf("%s\t%llu\n", c->items[i].path,
		       (unsigned long long)c->items[i].nar_size);
}

static int cmp_for_sort(const void *a, const void *b)
{
	return pkgdiff_compare_versions(*(const char *const *)a,
					*(const char *const *)b);
}

static int cmd_parse_lists(const char *paths, const char *sizes)
{
	struct strbuf p = STRBUF_INIT, s = STRBUF_INIT;
	struct pkgdiff_closure c = PKGDIFF_CLOSURE_INIT;
	struct nrr_err e = { 0 };
	int r = 1;
	if (read_file(paths, &p) || read_file(sizes, &s))
		goto out;
	if (pkgdiff_closure_parse_lists(&c, p.buf, s.buf, &e)) {
		printf("error: %s\n", e.msg);
		goto out;
	}
	print_closure(&c);
	r = 0;
out:
	pkgdiff_closure_release(&c);
	strbuf_release(&p);
	strbuf_release(&s);
	return r;
}

/* Loads both closures and computes their diff; 0 or 1 (printed). */
static int load_diff(const char *o, const char *n, struct pkgdiff *d)
{
	struct pkgdiff_closure oc = PKGDIFF_CLOSURE_INIT, nc = PKGDIFF_CLOSURE_INIT;
	int r = 1;
	if (!load_closure(o, &oc) && !load_closure(n, &nc)) {
		pkgdiff_compute(d, &oc, &nc);
		r = 0;
	}
	pkgdiff_closure_release(&oc);
	pkgdiff_closure_release(&nc);
	return r;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/*
 * What a deploy would do, runs times: read both files, parse, compute,
 * format the text and the JSON. Prints "runs=N min=.. median=.. max=.."
 * in ms and the diff's counts, so a bench can check it diffed something.
 */
static int cmd_time(const char *o, const char *n, int runs)
{
	double *t = xcalloc((size_t)runs, sizeof(*t));
	struct pkgdiff d = PKGDIFF_INIT;
	for (int i = 0; i < runs; i++) {
		double start = now_ms();
		struct strbuf text = STRBUF_INIT;
		pkgdiff_release(&d);
		if (load_diff(o, n, &d)) {
			free(t);
			return 1;
		}
		diffshow_format(&text, &d, 0);
		cJSON *j = diffshow_json(&d);
		char *js = cJSON_PrintUnformatted(j);
		t[i] = now_ms() - start;
		free(js);
		cJSON_Delete(j);
		strbuf_release(&text);
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	double median = runs % 2 ? t[runs / 2]
				 : (t[runs / 2 - 1] + t[runs / 2]) / 2;
	printf("runs=%d min=%.2f median=%.2f max=%.2f paths=%zu/%zu "
	       "changed=%zu added=%zu removed=%zu\n",
	       runs, t[0], median, t[runs - 1], d.old_paths, d.new_paths,
	       d.changed_nr, d.added_nr, d.removed_nr);
	pkgdiff_release(&d);
	free(t);
	return 0;
}

static int usage(const char *cmd)
{
	fprintf(stderr, "test-tool: bad arguments for '%s'\n", cmd);
	return 2;
}

int test_tool_diff(int argc, const char **argv)
{
	const char *cmd = argv[0];

	if (!strcmp(cmd, "diff-split")) {
		for (int i = 1; i < argc; i++) {
			const char *name, *ver;
			size_t nl, vl;
			pkgdiff_split_name(argv[i], &name, &nl, &ver, &vl);
			printf("%.*s\t%.*s\n", (int)nl, name, (int)vl, ver);
		}
		return 0;
	}
	if (!strcmp(cmd, "diff-compare")) {
		if (argc != 3)
			return usage(cmd);
		int r = pkgdiff_compare_versions(argv[1], argv[2]);
		puts(r < 0 ? "<" : r > 0 ? ">" : "=");
		return 0;
	}
	if (!strcmp(cmd, "diff-sort")) {
		qsort(argv + 1, (size_t)argc - 1, sizeof(*argv), cmp_for_sort);
		for (int i = 1; i < argc; i++)
			puts(argv[i]);
		return 0;
	}
	if (!strcmp(cmd, "diff-parse")) {
		struct pkgdiff_closure c = PKGDIFF_CLOSURE_INIT;
		struct strbuf sb = STRBUF_INIT;
		struct nrr_err e = { 0 };
		int r = 0;
		if (argc != 2)
			return usage(cmd);
		if (read_file(argv[1], &sb)) {
			r = 1;
		} else if (pkgdiff_closure_parse(&c, sb.buf, &e)) {
			print_closure(&c);
			printf("error: %s\n", e.msg);
			r = 1;
		} else {
			print_closure(&c);
		}
		strbuf_release(&sb);
		pkgdiff_closure_release(&c);
		return r;
	}
	if (!strcmp(cmd, "diff-parse-lists")) {
		if (argc != 3)
			return usage(cmd);
		return cmd_parse_lists(argv[1], argv[2]);
	}
	if (!strcmp(cmd, "diff-closures") || !strcmp(cmd, "diff-json")) {
		struct pkgdiff d = PKGDIFF_INIT;
		unsigned flags = 0;
		int i = 1;
		if (i < argc && !strcmp(argv[i], "--color"))
			flags |= DIFFSHOW_COLOR, i++;
		if (argc - i != 2)
			return usage(cmd);
		if (load_diff(argv[i], argv[i + 1], &d))
			return 1;
		if (!strcmp(cmd, "diff-json")) {
			cJSON *j = diffshow_json(&d);
			char *s = cJSON_Print(j);
			puts(s);
			free(s);
			cJSON_Delete(j);
		} else {
			struct strbuf sb = STRBUF_INIT;
			diffshow_format(&sb, &d, flags);
			fputs(sb.buf, stdout);
			strbuf_release(&sb);
		}
		pkgdiff_release(&d);
		return 0;
	}
	if (!strcmp(cmd, "diff-time")) {
		int runs = argc > 3 ? atoi(argv[3]) : 11;
		if (argc < 3 || runs < 1)
			return usage(cmd);
		return cmd_time(argv[1], argv[2], runs);
	}
	fprintf(stderr, "test-tool: unknown command '%s'\n", cmd);
	return 2;
}
