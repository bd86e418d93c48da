#include "keys.h"
#include "fiber.h"
#include "resources.h"
#include "scripts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* KEYS_ST_* come from lib/scripts/keys.def. */

struct key *keyset_add(struct keyset *ks, const char *name)
{
	struct key *k;

	if (ks->nr == ks->alloc) {
		ks->alloc = ks->alloc ? 2 * ks->alloc : 4;
		ks->v = xrealloc(ks->v, ks->alloc * sizeof(*ks->v));
	}
	k = &ks->v[ks->nr++];
	memset(k, 0, sizeof(*k));
	strvec_init(&k->command);
	k->name = xstrdup(name);
	k->dest_dir = xstrdup("/run/keys");
	k->user = xstrdup("root");
	k->group = xstrdup("root");
	k->permissions = xstrdup("0600");
	k->upload_at = KEYS_PRE;
	return k;
}

/* A text key's text, copied into guarded memory (sodium_malloc: locked,
 * wiped when freed), replacing the one k had. */
static int set_text(struct key *k, const char *s, size_t n)
{
	char *t;

	if (sodium_init() < 0 || !(t = sodium_malloc(n + 1)))
		return -1;
	memcpy(t, s, n);
	t[n] = '\0';
	if (k->text)
		sodium_free(k->text);
	k->text = t;
	k->text_later = 0;
	return 0;
}

void keyset_release(struct keyset *ks)
{
	for (size_t i = 0; i < ks->nr; i++) {
		struct key *k = &ks->v[i];
		free(k->name);
		free(k->attr);
		free(k->dest_dir);
		free(k->user);
		free(k->group);
		free(k->permissions);
		if (k->text)
			sodium_free(k->text);	/* wipes it */
		free(k->file);
		strvec_clear(&k->command);
		if (k->data)
			sodium_free(k->data);
	}
	free(ks->v);
	memset(ks, 0, sizeof(*ks));
}

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* A user or group name as useradd takes it (a superset of colmena's
 * ^[a-z][-a-z0-9]*$): what no shell or chown reads as anything else. */
static int valid_user(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 32 || !((*s >= 'a' && *s <= 'z') || *s == '_'))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-' || (c == '$' && i == n - 1)))
			return 0;
	}
	return 1;
}

static int valid_mode(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > 4)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '7')
			return 0;
	return 1;
}

int key_check(const struct key *k, const char *node, struct nrr_err *e)
{
	const char *why = NULL;
	int sources = (k->text || k->text_later) + !!k->file + !!k->command.nr;

	if (!k->name || !*k->name || strchr(k->name, '/') || !strcmp(k->name, ".") ||
	    !strcmp(k->name, "..") || has_control(k->name))
		why = "its name must be one relative path component";
	else if (!k->dest_dir || k->dest_dir[0] != '/' || has_control(k->dest_dir))
		why = "destDir must be an absolute path";
	else if (!k->user || !valid_user(k->user))
		why = "user is not a valid user name";
	else if (!k->group || !valid_user(k->group))
		why = "group is not a valid group name";
	else if (!k->permissions || !valid_mode(k->permissions))
		why = "permissions must be an octal mode such as 0600";
	else if (sources != 1)
		why = "it needs exactly one of text, keyFile and keyCommand";
	if (!why)
		return 0;
	/* the name is shown only when it is safe to show */
	if (k->name && !has_control(k->name))
		return nrr_fail(e, NRR_EUSAGE, "key '%s' of '%s': %s", k->name, node, why);
	return nrr_fail(e, NRR_EUSAGE, "a key of '%s': %s", node, why);
}

/* The string member name of o, or NULL; -1 if it is there but not one. */
static int json_str(const cJSON *o, const char *name, const char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return -1;
	*out = v->valuestring;
	return 0;
}

static void replace(char **dst, const char *s)
{
	if (s) {
		free(*dst);
		*dst = xstrdup(s);
	}
}

int keys_from_json(struct keyset *ks, const cJSON *keys, const char *node,
		   struct nrr_err *e)
{
	const cJSON *r;

	if (!keys || cJSON_IsNull(keys))
		return 0;
	if (!cJSON_IsObject(keys))
		return nrr_fail(e, NRR_EUSAGE, "deployment.keys of '%s' is not an attribute set", node);
	cJSON_ArrayForEach(r, keys) {
		const char *name, *text, *file, *dir, *user, *group, *perm, *at;
		const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(r, "keyCommand");
		const cJSON *src = cJSON_GetObjectItemCaseSensitive(r, "sources");
		const char *attr = r->string ? r->string : "?";

		if (!cJSON_IsObject(r) || json_str(r, "name", &name) || json_str(r, "text", &text) ||
		    json_str(r, "keyFile", &file) || json_str(r, "destDir", &dir) ||
		    json_str(r, "user", &user) || json_str(r, "group", &group) ||
		    json_str(r, "permissions", &perm) || json_str(r, "uploadAt", &at) ||
		    (cmd && !cJSON_IsNull(cmd) && !cJSON_IsArray(cmd)))
			return nrr_fail(e, NRR_EUSAGE, "key '%s' of '%s': a field has the wrong type",
					has_control(attr) ? "?" : attr, node);
		struct key *k = keyset_add(ks, name ? name : attr);
		k->attr = xstrdup(attr);
		replace(&k->dest_dir, dir);
		replace(&k->user, user);
		replace(&k->group, group);
		replace(&k->permissions, perm);
		if (text) {
			/* the text lives in guarded memory only: cJSON's copy is
			 * wiped at once */
			size_t n = strlen(text);
			int bad = set_text(k, text, n);
			sodium_memzero((char *)text, n);
			if (bad)
				return nrr_fail(e, NRR_EFAIL, "out of locked memory for key '%s'",
						k->name);
		} else if (cJSON_IsArray(src)) {
			/* hive.c's "info": the text is left out, read later
			 * (keys_set_text) by the deploy that uploads it */
			const cJSON *w;
			cJSON_ArrayForEach(w, src)
				if (cJSON_IsString(w) && !strcmp(w->valuestring, "text"))
					k->text_later = 1;
		}
		if (file)
			k->file = xstrdup(file);
		if (cJSON_IsArray(cmd)) {
			const cJSON *w;
			cJSON_ArrayForEach(w, cmd) {
				if (!cJSON_IsString(w))
					return nrr_fail(e, NRR_EUSAGE, "key '%s' of '%s': keyCommand "
							"must be a list of strings", attr, node);
				strvec_push(&k->command, w->valuestring);
			}
			if (!k->command.nr)
				return nrr_fail(e, NRR_EUSAGE, "key '%s' of '%s': keyCommand is empty",
						attr, node);
		}
		if (at && !strcmp(at, "post-activation"))
			k->upload_at = KEYS_POST;
		else if (at && strcmp(at, "pre-activation"))
			return nrr_fail(e, NRR_EUSAGE, "key '%s' of '%s': uploadAt must be "
					"pre-activation or post-activation", attr, node);
		if (key_check(k, node, e))
			return e->status;
	}
	return 0;
}

/* A growing buffer in guarded memory: a bigger one replaces it (the old
 * one wiped by sodium_free), so no copy of a secret is left behind. */
static int secret_reserve(struct key *k, size_t *cap, size_t more)
{
	size_t want = k->len + more;
	unsigned char *n;

	if (k->data && want <= *cap)
		return 0;
	size_t c = *cap ? *cap : 4096;
	while (c < want)
		c *= 2;
	n = sodium_malloc(c);
	if (!n)
		return -1;
	if (k->data) {
		memcpy(n, k->data, k->len);
		sodium_free(k->data);
	}
	k->data = n;
	*cap = c;
	return 0;
}

static int read_fd_secret(int fd, struct key *k, size_t *cap)
{
	for (;;) {
		if (secret_reserve(k, cap, 4096))
			return -1;
		ssize_t n = read(fd, k->data + k->len, *cap - k->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		k->len += (size_t)n;
	}
}

static int load_file(struct key *k, size_t *cap, const char *node, struct nrr_err *e)
{
	int fd = open(k->file, O_RDONLY | O_CLOEXEC);
	int ret = fd < 0 ? -1 : read_fd_secret(fd, k, cap);
	int err = errno;

	if (fd >= 0)
		close(fd);
	if (ret)
		return nrr_fail(e, NRR_EFAIL, "cannot read keyFile '%s' of key '%s' of '%s': %s",
				k->file, k->name, node, strerror(err));
	return 0;
}

/* keyCommand: its stdout (the key) read straight into guarded memory, its
 * stderr kept for the message. */
static int load_command(struct key *k, size_t *cap, const char *node, struct nrr_err *e)
{
	struct child c = CHILD_INIT;
	struct strbuf err = STRBUF_INIT;
	int st, failed = 0;

	strvec_pushvec(&c.args, &k->command);
	c.in = CHILD_NULL;
	c.out = c.err = CHILD_PIPE;
	if (child_start(&c, e)) {
		char why[sizeof(e->msg)];
		child_clear(&c);
		snprintf(why, sizeof(why), "%s", e->msg);
		return nrr_fail(e, NRR_EFAIL, "cannot run keyCommand of key '%s' of '%s': %s",
				k->name, node, why);
	}
	/* not run.c's pump: the key goes straight into sodium memory, never
	 * through a strbuf that would leave copies of it behind */
	while (c.out_fd >= 0 || c.err_fd >= 0) {
		struct pollfd p[2];
		int n = 0, io = -1, ie = -1;
		if (c.out_fd >= 0) {
			p[n] = (struct pollfd){ c.out_fd, POLLIN, 0 };
			io = n++;
		}
		if (c.err_fd >= 0) {
			p[n] = (struct pollfd){ c.err_fd, POLLIN, 0 };
			ie = n++;
		}
		if (fiber_poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (io >= 0 && p[io].revents) {
			ssize_t r = -1;
			if (!secret_reserve(k, cap, 4096))
				r = read(c.out_fd, k->data + k->len, *cap - k->len);
			if (r > 0) {
				k->len += (size_t)r;
			} else if (!(r < 0 && errno == EINTR)) {
				failed |= r < 0;
				close(c.out_fd);
				c.out_fd = -1;
			}
		}
		if (ie >= 0 && p[ie].revents)
			fd_drain(&c.err_fd, &err, -1);
	}
	st = child_wait(&c);
	child_clear(&c);
	if (st || failed) {
		size_t n;
		const char *l = last_line(err.buf, &n);
		nrr_fail(e, NRR_EFAIL, "keyCommand of key '%s' of '%s' failed (status %d)%s%.*s",
			 k->name, node, st, n ? ": " : "", (int)n, l);
		strbuf_release(&err);
		return e->status;
	}
	strbuf_release(&err);
	return 0;
}

int keys_load(struct keyset *ks, int which, const char *node, struct nrr_err *e)
{
	if (sodium_init() < 0)
		return nrr_fail(e, NRR_EFAIL, "cannot initialise libsodium");
	if (ks->nr)
		secrets_held();
	for (size_t i = 0; i < ks->nr; i++) {
		struct key *k = &ks->v[i];
		size_t cap = 0;
		unsigned char h[crypto_hash_sha256_BYTES];

		if (!(k->upload_at & which) || k->loaded)
			continue;
		if (key_check(k, node, e))
			return e->status;
		if (k->data)
			sodium_free(k->data);
		k->data = NULL;
		k->len = 0;
		if (k->text_later) {
			return nrr_fail(e, NRR_EFAIL, "the text of key '%s' of '%s' was not read",
					k->name, node);
		} else if (k->text) {
			size_t n = strlen(k->text);
			if (secret_reserve(k, &cap, n ? n : 1))
				return nrr_fail(e, NRR_EFAIL, "out of locked memory for key '%s'", k->name);
			memcpy(k->data, k->text, n);
			k->len = n;
		} else if (k->file) {
			if (load_file(k, &cap, node, e))
				return e->status;
		} else if (load_command(k, &cap, node, e)) {
			return e->status;
		}
		if (!k->data && secret_reserve(k, &cap, 1))
			return nrr_fail(e, NRR_EFAIL, "out of locked memory for key '%s'", k->name);
		crypto_hash_sha256(h, k->data, k->len);
		sodium_bin2hex(k->hash, sizeof(k->hash), h, sizeof(h));
		k->loaded = 1;
	}
	return 0;
}

void keys_records(const struct keyset *ks, int which, int owners_later,
		  struct strbuf *msg)
{
	size_t n = 0;

	for (size_t i = 0; i < ks->nr; i++)
		n += !!(ks->v[i].upload_at & which);
	strbuf_addf(msg, "%s\n%zu\n", owners_later ? "pre" : "post", n);
	for (size_t i = 0; i < ks->nr; i++) {
		const struct key *k = &ks->v[i];
		if (k->upload_at & which)
			strbuf_addf(msg, "%s\n%s\n%s\n%s\n%s\n%s\n", k->name, k->dest_dir,
				    k->user, k->group, k->permissions, k->hash);
	}
}

/* The i-th key that `which` selects, or NULL. */
static const struct key *nth_key(const struct keyset *ks, int which, long i)
{
	for (size_t j = 0; j < ks->nr && i >= 0; j++)
		if ((ks->v[j].upload_at & which) && i-- == 0)
			return &ks->v[j];
	return NULL;
}

static int target_failed(const struct session *s, const struct keyset *ks,
			 int which, const char *rest, struct nrr_err *e)
{
	char *end;
	long i = strtol(rest, &end, 10);
	const struct key *k = nth_key(ks, which, i);
	const char *what = *end == ' ' ? end + 1 : "failed";

	return nrr_fail(e, NRR_EACTIVATE, "key '%s' on '%s': %s",
			k ? k->name : "?", s->host ? s->host->name : "?", what);
}

int keys_answer(struct session *s, const struct keyset *ks, int which,
		int owners_later, int seen_keys_line, struct keys_result *r,
		struct nrr_err *e)
{
	struct strbuf line = STRBUF_INIT, msg = STRBUF_INIT;
	int ret = 0;
	const char *hn = s->host ? s->host->name : "?";

	memset(r, 0, sizeof(*r));
	while (!seen_keys_line) {
		if (session_line(s, &line))
			goto gone;
		seen_keys_line = !strcmp(line.buf, "keys");
	}
	/* the records; then which contents the target wants, and those */
	keys_records(ks, which, owners_later, &msg);
	if (session_send(s, msg.buf, msg.len))
		goto gone;
	for (;;) {
		if (session_line(s, &line))
			goto gone;
		if (!strcmp(line.buf, "."))
			break;
		if (!strncmp(line.buf, "failed ", 7)) {
			ret = target_failed(s, ks, which, line.buf + 7, e);
			goto out;
		}
		if (strncmp(line.buf, "need ", 5))
			continue;
		const struct key *k = nth_key(ks, which, strtol(line.buf + 5, NULL, 10));
		if (!k || !k->loaded) {
			ret = nrr_fail(e, NRR_EFAIL, "'%s' asked for a key we did not offer", hn);
			goto out;
		}
		char len[32];
		int n = snprintf(len, sizeof(len), "%zu\n", k->len);
		if (session_send(s, len, (size_t)n) ||
		    session_send(s, (const char *)k->data, k->len))
			goto gone;
	}
	for (;;) {
		if (session_line(s, &line))
			goto gone;
		if (!strcmp(line.buf, "keys-end"))
			break;
		if (!strncmp(line.buf, "wrote ", 6))
			r->written++;
		else if (!strncmp(line.buf, "fixed ", 6))
			r->fixed++;
		else if (!strncmp(line.buf, "pending ", 8))
			r->pending++;
		else if (!strncmp(line.buf, "failed ", 7)) {
			ret = target_failed(s, ks, which, line.buf + 7, e);
			goto out;
		}
	}
	for (size_t i = 0; i < ks->nr; i++)
		r->unchanged += !!(ks->v[i].upload_at & which);
	r->unchanged -= r->written + r->fixed + r->pending;
	goto out;
gone:
	ret = nrr_fail(e, NRR_EFAIL, "the keys step on '%s' ended early", hn);
out:
	strbuf_release(&line);
	strbuf_release(&msg);
	return ret;
}

int keys_upload(const struct host *h, const struct elevation *el,
		const struct keyset *ks, int which, int owners_later,
		struct keys_result *r, struct nrr_err *e)
{
	struct session s;
	struct strbuf script = STRBUF_INIT;
	const char *args[] = { NULL };
	int ret, st;

	/* the functions, then the call: what the activation would do */
	strbuf_addf(&script, "%s\nkeys_receive || exit $?\nkeys_fixup\n", script_keys);
	if (session_start(&s, h, el, script.buf, args, 2, e)) {
		strbuf_release(&script);
		return e->status;
	}
	ret = keys_answer(&s, ks, which, owners_later, 0, r, e);
	st = session_finish(&s);
	if (st == 255 && h->ssh) {
		ssh_connect_error(h->ssh, s.err.buf, e);
		nrr_prefix(e, "keys");
		ret = e->status;
	} else if ((!ret && st) || ret == NRR_EFAIL) {
		/* the script said nothing more: its status and stderr say why */
		size_t n;
		const char *l = last_line(s.err.buf, &n);
		ret = nrr_fail(e, NRR_EACTIVATE, "the keys step on '%s' stopped with status %d%s%.*s",
			       h->name, st, n ? ": " : "", (int)n, l);
	}
	session_release(&s);
	strbuf_release(&script);
	return ret;
}

int keys_set_text(struct key *k, const char *text, size_t len)
{
	return set_text(k, text, len);
}

int keys_count(const struct keyset *ks, int which)
{
	int n = 0;
	for (size_t i = 0; i < ks->nr; i++)
		n += !!(ks->v[i].upload_at & which);
	return n;
}
