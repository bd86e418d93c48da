/*
 * hive: see hive.h.
 */
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "evalcache.h"
#include "hive.h"
#include "hiveeval.h"
#include "nix.h"
#include "resources.h"
#include "run.h"

static void hive_release_nodes(struct hive *h);

static int path_is(const char *path, mode_t type)
{
	struct stat st;
	return !stat(path, &st) && (st.st_mode & S_IFMT) == type;
}

/* dir/name if it is a regular file (malloc'ed), else NULL. */
static char *file_in(const char *dir, const char *name)
{
	char *p = xstrfmt("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
	if (path_is(p, S_IFREG))
		return p;
	free(p);
	return NULL;
}

/* The hive of directory dir itself: flake.nix first, then hive.nix. */
static int hive_in_dir(struct hive *h, const char *dir)
{
	char *p = file_in(dir, "flake.nix");
	if (p) {
		free(p);
		h->kind = HIVE_FLAKE;
		h->where = xstrdup(dir);
		return 1;
	}
	p = file_in(dir, "hive.nix");
	if (p) {
		h->kind = HIVE_FILE;
		h->where = p;
		return 1;
	}
	return 0;
}

int hive_find(struct hive *h, const struct hive_opts *o, struct nrr_err *e)
{
	const char *cwd = o->cwd ? o->cwd : ".";
	char *dir;

	free(h->where);
	h->where = NULL;
	if (o->config) {
		const char *c = o->config;
		char *real = realpath(c, NULL);
		if (!real) {
			/* not a path: a flake URI, as colmena takes it */
			if (strchr(c, ':')) {
				h->kind = HIVE_FLAKE;
				h->where = xstrdup(c);
				return 0;
			}
			return nrr_fail(e, NRR_EUSAGE, "no hive at '%s': no such file or directory", c);
		}
		if (path_is(real, S_IFDIR)) {
			int found = hive_in_dir(h, real);
			free(real);
			if (!found)
				return nrr_fail(e, NRR_EUSAGE,
						"no hive in '%s': it has no flake.nix or hive.nix", c);
			return 0;
		}
		const char *base = strrchr(real, '/');
		if (!strcmp(base + 1, "flake.nix")) {
			h->kind = HIVE_FLAKE;
			h->where = xstrndup(real, base == real ? 1 : (size_t)(base - real));
			free(real);
		} else {
			h->kind = HIVE_FILE;
			h->where = real;
		}
		return 0;
	}
	dir = realpath(cwd, NULL);
	if (!dir)
		return nrr_fail(e, NRR_EUSAGE, "cannot look for a hive from '%s'", cwd);
	for (;;) {
		if (hive_in_dir(h, dir))
			break;
		char *slash = strrchr(dir, '/');
		if (!slash || !strcmp(dir, "/")) {
			free(dir);
			nrr_fail(e, NRR_EUSAGE,
				 "no hive found: no flake.nix or hive.nix in '%s' or any directory above it",
				 cwd);
			nrr_hint(e, "run this in the hive's directory, or name the hive with -f/--config PATH|FLAKE-URI");
			return NRR_EUSAGE;
		}
		slash[slash == dir ? 1 : 0] = '\0';
	}
	free(dir);
	return 0;
}

void hive_eval_argv(const struct hive *h, const struct hive_opts *o,
		    const char *what, const char *args, struct strvec *argv)
{
	struct strbuf expr = STRBUF_INIT;

	if (h->kind == HIVE_FILE) {
		strvec_pushl(argv, "nix-instantiate", "--eval", "--strict", "--json", NULL);
		/* reading drvPath must write the derivations, for the build */
		if (!strcmp(what, "toplevels"))
			strvec_push(argv, "--read-write-mode");
		if (o->nix_args)
			strvec_pushvec(argv, o->nix_args);
		strbuf_addf(&expr, "(%s) { raw = import \"", hive_eval_nix);
		nix_string_escape(&expr, h->where);
		strbuf_addstr(&expr, "\"; hermetic = false; ");
	} else {
		strvec_pushl(argv, "nix", "--extra-experimental-features", "nix-command flakes",
			     "eval", "--json", NULL);
		if (o->nix_args)
			strvec_pushvec(argv, o->nix_args);
		if (o->impure)
			strvec_push(argv, "--impure");
		strvec_pushf(argv, "%s#%s", h->where, h->evaluated ? "colmenaHive" : "colmena");
		strvec_push(argv, "--apply");
		strbuf_addf(&expr, "h: (%s) { %s ", hive_eval_nix,
			    h->evaluated ? "evaluated = h;" : "raw = h; hermetic = true;");
	}
	strbuf_addf(&expr, "what = \"%s\"; %s}", what, args ? args : "");
	if (h->kind == HIVE_FILE)
		strvec_push(argv, "--expr");
	strvec_push(argv, expr.buf);
	strbuf_release(&expr);
}

int hive_lacks_colmena_hive(const char *err)
{
	return strstr(err, "does not provide attribute") && strstr(err, "colmenaHive'");
}

/* nix names the attribute it did not find as 'colmena' (among others) */
static int lacks_colmena(const char *err)
{
	return strstr(err, "does not provide attribute") && strstr(err, "colmena'");
}

void hive_probe_first(struct hive *h)
{
	struct strbuf text = STRBUF_INIT;
	char *file;

	h->evaluated = 1;
	if (strchr(h->where, ':'))
		return;		/* a flake URI: its flake.nix is not here to read */
	file = xstrfmt("%s/flake.nix", h->where);
	/* the name may be made in another file: then colmena's order still
	 * finds it, one failed evaluation later */
	if (strbuf_read_file(&text, file) >= 0 && !strstr(text.buf, "colmenaHive"))
		h->evaluated = 0;
	free(file);
	strbuf_release(&text);
}

int hive_probe_next(struct hive *h, const char *err, int *tries)
{
	if (++*tries > 1 || !(h->evaluated ? hive_lacks_colmena_hive(err) : lacks_colmena(err)))
		return 0;
	h->evaluated = !h->evaluated;
	return 1;
}

/*
 * After a failed "info" or "toplevels": asks the evaluator which nodes fail
 * it (tryEval, one more nix run) and writes "node 'a': " or "nodes 'a',
 * 'b': " to who, so that the error names them. Writes nothing if that
 * cannot be told (errors tryEval does not catch).
 */
static void failing_nodes(struct hive *h, const struct hive_opts *o, const char *what,
			  const char *args, struct strbuf *who, struct strvec *warnings)
{
	struct strbuf a = STRBUF_INIT, out = STRBUF_INIT, err = STRBUF_INIT;
	struct strvec argv = STRVEC_INIT;
	struct nrr_err e2 = { 0 };
	cJSON *list, *it;
	int n = 0;

	strbuf_addf(&a, "%spart = \"%s\"; ", args ? args : "",
		    strcmp(what, "info") ? "toplevel" : "deployment");
	hive_eval_argv(h, o, "failing", a.buf, &argv);
	if (!nix_run(&argv, &out, &err, NIX_RUN_QUIET, o->verbose, warnings, &e2)) {
		list = cJSON_Parse(out.buf);
		cJSON_ArrayForEach(it, list)
			if (cJSON_IsString(it))
				strbuf_addf(who, "%s'%s'", n++ ? ", " : "", it->valuestring);
		cJSON_Delete(list);
	}
	if (n) {
		struct strbuf t = STRBUF_INIT;
		strbuf_addf(&t, "node%s %s: ", n > 1 ? "s" : "", who->buf);
		strbuf_reset(who);
		strbuf_addstr(who, t.buf);
		strbuf_release(&t);
	}
	strvec_clear(&argv);
	strbuf_release(&a);
	strbuf_release(&out);
	strbuf_release(&err);
}

/*
 * Runs the evaluator for what (see hive_eval_argv) and leaves its JSON in
 * out. A flake whose output is not known yet is asked for colmenaHive
 * first, then for colmena.
 */
static int hive_eval(struct hive *h, const struct hive_opts *o, const char *what,
		     const char *args, struct strbuf *out, struct strvec *warnings,
		     struct nrr_err *e)
{
	struct strbuf err = STRBUF_INIT;
	char why[512];
	int probing = h->kind == HIVE_FLAKE && h->evaluated < 0;
	int st, tries = 0;

	if (probing)
		hive_probe_first(h);
	for (;;) {
		struct strvec argv = STRVEC_INIT;
		hive_eval_argv(h, o, what, args, &argv);
		st = nix_run(&argv, out, &err, probing && !o->verbose ? NIX_RUN_QUIET : 0,
			     o->verbose, warnings, e);
		strvec_clear(&argv);
		if (st > 0 && probing && hive_probe_next(h, err.buf, &tries))
			continue;
		break;
	}
	if (st > 0) {
		struct strbuf who = STRBUF_INIT;
		nix_error_summary(err.buf, why, sizeof(why));
		if (!strcmp(what, "info") || !strcmp(what, "toplevels"))
			failing_nodes(h, o, what, args, &who, warnings);
		st = nrr_fail(e, NRR_EEVAL, "evaluating the hive '%s' failed: %s%s", h->where,
			      who.buf, why);
		strbuf_release(&who);
		if (hive_lacks_colmena_hive(err.buf) || strstr(err.buf, "'colmena'"))
			nrr_hint(e, "a flake's hive is its `colmena` output (or `colmenaHive`, made by colmena's makeHive)");
	} else if (st < 0) {
		st = e->status;
	}
	strbuf_release(&err);
	return st;
}

/* --- reading the evaluator's answer ------------------------------------------------- */

static const char *json_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *json_strdup(const cJSON *o, const char *k)
{
	const char *s = json_str(o, k);
	return s ? xstrdup(s) : NULL;
}

static int json_bool(const cJSON *o, const char *k, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* The strings of array o.k into sv; -1 if it is not an array of strings. */
static int json_strings(const cJSON *o, const char *k, struct strvec *sv)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k), *it;
	if (!cJSON_IsArray(a))
		return -1;
	cJSON_ArrayForEach(it, a) {
		if (!cJSON_IsString(it))
			return -1;
		strvec_push(sv, it->valuestring);
	}
	return 0;
}

static int parse_node(const char *name, const cJSON *d, struct hive_node *n,
		      struct nrr_err *e)
{
	const cJSON *port, *keys;

	n->name = xstrdup(name);
	if (!cJSON_IsObject(d))
		return nrr_fail(e, NRR_EEVAL, "node '%s': no deployment options", name);
	n->target_host = json_strdup(d, "targetHost");
	n->target_user = json_strdup(d, "targetUser");
	port = cJSON_GetObjectItemCaseSensitive(d, "targetPort");
	if (cJSON_IsNumber(port)) {
		if (port->valuedouble < 1 || port->valuedouble > 65535 ||
		    port->valuedouble != (int)port->valuedouble)
			return nrr_fail(e, NRR_EEVAL, "node '%s': targetPort %g is not a port",
					name, port->valuedouble);
		n->target_port = (int)port->valuedouble;
	}
	n->allow_local = json_bool(d, "allowLocalDeployment", 0);
	n->build_on_target = json_bool(d, "buildOnTarget", 0);
	n->replace_unknown = json_bool(d, "replaceUnknownProfiles", 1);
	if (json_strings(d, "tags", &n->tags) ||
	    json_strings(d, "privilegeEscalationCommand", &n->escalation) ||
	    json_strings(d, "sshOptions", &n->ssh_options))
		return nrr_fail(e, NRR_EEVAL,
				"node '%s': tags, privilegeEscalationCommand and sshOptions must be lists of strings",
				name);
	/* one parser of keys: keys.c's, whose rules the deploy checks again */
	keys = cJSON_GetObjectItemCaseSensitive(d, "keys");
	if (keys_from_json(&n->keys, keys, name, e))
		return e->status = NRR_EEVAL;
	return 0;
}

int hive_parse_info(struct hive *h, const char *json, struct nrr_err *e)
{
	cJSON *root = cJSON_Parse(json), *names, *meta, *dep, *it;
	int st = 0;

	names = cJSON_GetObjectItemCaseSensitive(root, "nodes");
	meta = cJSON_GetObjectItemCaseSensitive(root, "meta");
	dep = cJSON_GetObjectItemCaseSensitive(root, "deployment");
	if (!cJSON_IsArray(names) || !cJSON_IsObject(meta) || !cJSON_IsObject(dep)) {
		cJSON_Delete(root);
		return nrr_fail(e, NRR_EEVAL, "the hive evaluator gave no nodes, meta and deployment");
	}
	h->name = json_strdup(meta, "name");
	h->description = json_strdup(meta, "description");
	h->machines_file = json_strdup(meta, "machinesFile");
	h->allow_apply_all = json_bool(meta, "allowApplyAll", 1);
	h->nodes = xcalloc((size_t)cJSON_GetArraySize(names) + 1, sizeof(*h->nodes));
	cJSON_ArrayForEach(it, names) {
		struct hive_node *n = &h->nodes[h->nnodes++];
		strvec_init(&n->tags);
		strvec_init(&n->escalation);
		strvec_init(&n->ssh_options);
		if (!cJSON_IsString(it)) {
			st = nrr_fail(e, NRR_EEVAL, "the hive evaluator gave a node name that is not a string");
			break;
		}
		st = parse_node(it->valuestring,
				cJSON_GetObjectItemCaseSensitive(dep, it->valuestring), n, e);
		if (st)
			break;
	}
	cJSON_Delete(root);
	return st;
}

/* The cached "info" of h parsed into it; 0, or -1 (h as it was) if there
 * is none or it does not parse. */
static int load_cached_info(struct hive *h)
{
	int evaluated = -1, ret = -1;
	char *json = evalcache_get(h->cache, "info", NULL, &evaluated);
	struct nrr_err ignored = { 0 };

	if (json) {
		int before = h->evaluated;
		h->evaluated = evaluated;
		ret = hive_parse_info(h, json, &ignored) ? -1 : 0;
		if (ret) {
			hive_release_nodes(h);
			h->evaluated = before;
		}
	}
	free(json);
	return ret;
}

int hive_load(struct hive *h, const struct hive_opts *o, struct strvec *warnings,
	      struct nrr_err *e)
{
	struct strbuf out = STRBUF_INIT;
	int st = hive_find(h, o, e);

	if (!st && o->eval_cache && !h->cache) {
		h->cache = xcalloc(1, sizeof(*h->cache));
		evalcache_open(h->cache, h, o, warnings);
	}
	if (!st && h->cache && !load_cached_info(h))
		return 0;
	/* every node's system wanted: evaluated with the info, into the cache */
	if (!st && h->cache && h->cache->dir && o->prefetch &&
	    !hive_prefetch_all(h, o, o->prefetch, warnings) && !load_cached_info(h))
		return 0;
	if (!st)
		st = hive_eval(h, o, "info", NULL, &out, warnings, e);
	if (!st)
		st = hive_parse_info(h, out.buf, e);
	if (!st && h->cache)
		evalcache_put(h->cache, "info", NULL, h->evaluated, out.buf);
	strbuf_release(&out);
	return st;
}

/* --- selection ---------------------------------------------------------------------- */

static int rule_matches(const struct hive_node *n, const char *rule)
{
	if (rule[0] == '@') {
		for (size_t i = 0; i < n->tags.nr; i++)
			if (!fnmatch(rule + 1, n->tags.v[i], 0))
				return 1;
		return 0;
	}
	return !fnmatch(rule, n->name, 0);
}

int hive_select(const struct hive *h, const char *rules, size_t **sel, size_t *n,
		struct nrr_err *e)
{
	struct strvec rv = STRVEC_INIT;

	*n = 0;
	*sel = xcalloc(h->nnodes + 1, sizeof(**sel));
	if (rules) {
		const char *p = rules;
		for (;;) {
			size_t len = strcspn(p, ",");
			const char *s = p, *end = p + len;
			while (s < end && (*s == ' ' || *s == '\t'))
				s++;
			while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			if (end == s || (end - s == 1 && *s == '@')) {
				strvec_clear(&rv);
				free(*sel);
				*sel = NULL;
				return nrr_fail(e, NRR_EUSAGE, "--on '%s': an empty rule", rules);
			}
			strvec_pushf(&rv, "%.*s", (int)(end - s), s);
			if (!p[len])
				break;
			p += len + 1;
		}
	}
	for (size_t i = 0; i < h->nnodes; i++) {
		int take = !rules;
		for (size_t r = 0; r < rv.nr && !take; r++)
			take = rule_matches(&h->nodes[i], rv.v[r]);
		if (take)
			(*sel)[(*n)++] = i;
	}
	strvec_clear(&rv);
	return 0;
}

int hive_check_apply_all(const struct hive *h, const char *rules, struct nrr_err *e)
{
	if (rules || h->allow_apply_all)
		return 0;
	nrr_fail(e, NRR_EUSAGE, "the hive '%s' sets meta.allowApplyAll = false: no node filter given",
		 h->name ? h->name : "hive");
	nrr_hint(e, "name the nodes with --on NAME,@TAG");
	return NRR_EUSAGE;
}

const struct hive_node *hive_node(const struct hive *h, const char *name)
{
	for (size_t i = 0; i < h->nnodes; i++)
		if (!strcmp(h->nodes[i].name, name))
			return &h->nodes[i];
	return NULL;
}

/* Appends `names = ...; ` to args, the node names of the JSON array
 * names (deleted here) as JSON in a Nix string: any name is safe there. */
static void names_arg(struct strbuf *args, cJSON *names)
{
	char *js = cJSON_PrintUnformatted(names);
	cJSON_Delete(names);
	strbuf_addstr(args, "names = builtins.fromJSON \"");
	nix_string_escape(args, js);
	strbuf_addstr(args, "\"; ");
	free(js);
}

/* --- systems and introspection --------------------------------------------------------- */

int hive_toplevels(struct hive *h, const struct hive_opts *o,
		   const size_t *sel, size_t n, char **drv, char **out,
		   struct strvec *warnings, struct nrr_err *e)
{
	struct strbuf args = STRBUF_INIT, res = STRBUF_INIT;
	cJSON *names = cJSON_CreateArray(), *root;
	int st;

	for (size_t i = 0; i < n; i++) {
		drv[i] = out[i] = NULL;
		cJSON_AddItemToArray(names, cJSON_CreateString(h->nodes[sel[i]].name));
	}
	names_arg(&args, names);
	st = hive_eval(h, o, "toplevels", args.buf, &res, warnings, e);
	strbuf_release(&args);
	if (st) {
		strbuf_release(&res);
		return st;
	}
	root = cJSON_Parse(res.buf);
	for (size_t i = 0; i < n && !st; i++) {
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, h->nodes[sel[i]].name);
		drv[i] = json_strdup(t, "drv");
		out[i] = json_strdup(t, "out");
		if (!drv[i] || !out[i])
			st = nrr_fail(e, NRR_EEVAL, "node '%s': the hive evaluator gave no system",
				      h->nodes[sel[i]].name);
	}
	cJSON_Delete(root);
	strbuf_release(&res);
	return st;
}

int hive_key_texts(struct hive *h, const struct hive_opts *o, const size_t *sel,
		   size_t n, struct strvec *warnings, struct nrr_err *e)
{
	struct strbuf args = STRBUF_INIT, res;
	cJSON *names = cJSON_CreateArray(), *root;
	int st = 0, any = 0;

	/* the texts come in it: no copy left in memory given back */
	strbuf_init_secret(&res);

	for (size_t i = 0; i < n; i++) {
		const struct keyset *ks = &h->nodes[sel[i]].keys;
		int later = 0;
		for (size_t k = 0; k < ks->nr; k++)
			later |= ks->v[k].text_later;
		if (later) {
			cJSON_AddItemToArray(names, cJSON_CreateString(h->nodes[sel[i]].name));
			any = 1;
		}
	}
	if (!any) {
		cJSON_Delete(names);
		return 0;
	}
	names_arg(&args, names);
	secrets_held();
	st = hive_eval(h, o, "keytexts", args.buf, &res, warnings, e);
	strbuf_release(&args);
	root = st ? NULL : cJSON_Parse(res.buf);
	strbuf_release_secret(&res);
	for (size_t i = 0; i < n && !st; i++) {
		struct hive_node *node = &h->nodes[sel[i]];
		const cJSON *texts = cJSON_GetObjectItemCaseSensitive(root, node->name);
		/* by attribute name: a key's name may differ from it */
		const cJSON *t;
		for (size_t k = 0; k < node->keys.nr && !st; k++) {
			struct key *key = &node->keys.v[k];
			if (!key->text_later)
				continue;
			t = cJSON_GetObjectItemCaseSensitive(texts, key->attr);
			if (!cJSON_IsString(t))
				st = nrr_fail(e, NRR_EEVAL, "node '%s': key '%s': the hive evaluator gave "
					      "no text", node->name, key->name);
			else if (keys_set_text(key, t->valuestring, strlen(t->valuestring)))
				st = nrr_fail(e, NRR_EFAIL, "out of locked memory for key '%s'",
					      key->name);
		}
	}
	/* cJSON's copies of the texts, wiped before they are freed */
	if (root) {
		cJSON *node, *t;
		cJSON_ArrayForEach(node, root)
			cJSON_ArrayForEach(t, node)
				if (cJSON_IsString(t))
					sodium_memzero(t->valuestring, strlen(t->valuestring));
	}
	cJSON_Delete(root);
	return st;
}

int hive_introspect(struct hive *h, const struct hive_opts *o,
		    const char *expr, struct strbuf *json,
		    struct strvec *warnings, struct nrr_err *e)
{
	struct strbuf args = STRBUF_INIT;
	int st;

	/* the user's Nix code, parenthesized: colmena's eval -E does the same */
	strbuf_addf(&args, "expr = (%s\n); ", expr);
	st = hive_eval(h, o, "introspect", args.buf, json, warnings, e);
	strbuf_release(&args);
	return st;
}

/* Frees h's meta and nodes (what hive_parse_info filled). */
static void hive_release_nodes(struct hive *h)
{
	for (size_t i = 0; i < h->nnodes; i++) {
		struct hive_node *n = &h->nodes[i];
		free(n->name);
		free(n->target_host);
		free(n->target_user);
		strvec_clear(&n->tags);
		strvec_clear(&n->escalation);
		strvec_clear(&n->ssh_options);
		keyset_release(&n->keys);
	}
	free(h->nodes);
	free(h->name);
	free(h->description);
	free(h->machines_file);
	h->nodes = NULL;
	h->nnodes = 0;
	h->name = h->description = h->machines_file = NULL;
	h->allow_apply_all = 1;
}

void hive_release(struct hive *h)
{
	hive_release_nodes(h);
	if (h->cache) {
		evalcache_release(h->cache);
		free(h->cache);
	}
	free(h->where);
	*h = (struct hive)HIVE_INIT;
}
