/*
 * deploykeys: see deploykeys.h.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deploykeys.h"

static void replace(char **dst, const char *s)
{
	if (s) {
		free(*dst);
		*dst = xstrdup(s);
	}
}

/* One field: its length, a newline, its bytes (any byte may be in them). */
static int put_field(int fd, const char *s, size_t n)
{
	char len[32];
	int l = snprintf(len, sizeof(len), "%zu\n", n);
	return fd_write_all(fd, len, (size_t)l) || fd_write_all(fd, s, n);
}

static int put_str(int fd, const char *s)
{
	return put_field(fd, s ? s : "", s ? strlen(s) : 0);
}

int keys_write_specs(const struct keyset *ks, const char *node, int fd)
{
	char n[32];

	snprintf(n, sizeof(n), "%zu", ks->nr);
	if (put_str(fd, "nrr-keys 1") || put_str(fd, node) || put_str(fd, n))
		return -1;
	for (size_t i = 0; i < ks->nr; i++) {
		const struct key *k = &ks->v[i];
		const char *src = k->text ? "text" : k->file ? "file" : "command";
		if (put_str(fd, k->name) || put_str(fd, k->dest_dir) || put_str(fd, k->user) ||
		    put_str(fd, k->group) || put_str(fd, k->permissions) ||
		    put_str(fd, k->upload_at == KEYS_POST ? "post" : "pre") || put_str(fd, src))
			return -1;
		if (k->text && put_field(fd, k->text, strlen(k->text)))
			return -1;
		if (!k->text && k->file && put_str(fd, k->file))
			return -1;
		if (!k->text && !k->file) {
			snprintf(n, sizeof(n), "%zu", k->command.nr);
			if (put_str(fd, n))
				return -1;
			for (size_t j = 0; j < k->command.nr; j++)
				if (put_str(fd, k->command.v[j]))
					return -1;
		}
	}
	return 0;
}

/* A field's length (at most 16 MiB: no key is bigger). */
static int get_len(int fd, size_t *n)
{
	char c;
	*n = 0;
	for (int i = 0; i < 10; i++) {
		if (fd_read_exact(fd, &c, 1))
			return -1;
		if (c == '\n')
			return i ? 0 : -1;
		if (c < '0' || c > '9')
			return -1;
		*n = *n * 10 + (size_t)(c - '0');
	}
	return -1;
}

/* A field that is not a secret, malloc'ed into *out. */
static int get_str(int fd, char **out)
{
	size_t n;
	*out = NULL;
	if (get_len(fd, &n) || n > (1 << 20))
		return -1;
	*out = xmalloc(n + 1);
	if (fd_read_exact(fd, *out, n)) {
		free(*out);
		*out = NULL;
		return -1;
	}
	(*out)[n] = '\0';
	return 0;
}

static int get_count(int fd, size_t *n)
{
	char *s, *end;
	int bad = get_str(fd, &s);
	if (!bad) {
		unsigned long v = strtoul(s, &end, 10);
		bad = !*s || *end || v > 100000;
		*n = v;
	}
	free(s);
	return bad ? -1 : 0;
}

int keys_read_specs(struct keyset *ks, int fd, char **node, struct nrr_err *e)
{
	char *magic = NULL, *f[7] = { NULL };
	size_t n = 0, i;
	int bad = 0;

	*node = NULL;
	if (get_str(fd, &magic) || strcmp(magic, "nrr-keys 1") || get_str(fd, node) ||
	    get_count(fd, &n))
		bad = 1;
	free(magic);
	for (i = 0; !bad && i < n; i++) {
		struct key *k;
		for (int j = 0; j < 7 && !bad; j++)
			bad = get_str(fd, &f[j]);
		if (bad)
			break;
		k = keyset_add(ks, f[0]);
		replace(&k->dest_dir, f[1]);
		replace(&k->user, f[2]);
		replace(&k->group, f[3]);
		replace(&k->permissions, f[4]);
		k->upload_at = !strcmp(f[5], "post") ? KEYS_POST : KEYS_PRE;
		if (!strcmp(f[6], "text")) {
			size_t len;
			char *t = NULL;
			/* straight into guarded memory */
			bad = get_len(fd, &len) || len > (16 << 20) || sodium_init() < 0 ||
			      !(t = sodium_malloc(len + 1));
			if (!bad) {
				bad = fd_read_exact(fd, t, len);
				t[bad ? 0 : len] = '\0';
				k->text = t;
			}
		} else if (!strcmp(f[6], "file")) {
			bad = get_str(fd, &k->file);
		} else {
			size_t words;
			bad = get_count(fd, &words);
			for (size_t w = 0; !bad && w < words; w++) {
				char *s;
				if (!(bad = get_str(fd, &s)))
					strvec_push(&k->command, s);
				free(s);
			}
		}
		for (int j = 0; j < 7; j++) {
			free(f[j]);
			f[j] = NULL;
		}
		if (!bad && key_check(k, *node, e))
			return e->status;
	}
	for (int j = 0; j < 7; j++)
		free(f[j]);
	if (bad)
		return nrr_fail(e, NRR_EFAIL, "the keys of '%s' did not arrive whole from the fleet",
				*node ? *node : "?");
	return 0;
}


int deploy_keys_receive(struct deploy *d, int fd, struct nrr_err *e)
{
	char *node = NULL;
	int ret = keys_read_specs(&d->keys, fd, &node, e);

	if (!ret)
		ret = keys_load(&d->keys, KEYS_ALL, node, e);
	free(node);
	return ret;
}

int deploy_keys_take(struct deploy *d, struct keyset *ks, const char *node,
		     struct nrr_err *e)
{
	keyset_release(&d->keys);
	d->keys = *ks;
	*ks = (struct keyset)KEYSET_INIT;
	return keys_load(&d->keys, KEYS_ALL, node, e);
}

void deploy_keys_activation(struct deploy *d, struct activation *a, int after_reboot)
{
	if (!d->keys.nr || (a->action && !strcmp(a->action, "dry-activate")))
		return;
	a->keys = &d->keys;
	a->keys_which = after_reboot ? KEYS_PRE : KEYS_ALL;
}

/* What the target did with the keys, on stderr (the fleet shows it). */
static void say(const struct deploy *d, const char *what, const struct keys_result *r)
{
	fprintf(stderr, "keys on '%s'%s: %d written, %d fixed, %d waiting for their owner, %d unchanged\n",
		d->target.name, what, r->written, r->fixed, r->pending, r->unchanged);
}

int deploy_keys_after_reboot(struct deploy *d, struct nrr_err *e)
{
	struct keys_result r;
	int ret;

	if (!d->keys.nr)
		return 0;
	/* the post-activation keys, and the pre-activation ones again: a
	 * boot empties /run/keys (colmena loses them there); those that
	 * survived are unchanged and not rewritten */
	deploy_phase(d, "keys");
	ret = keys_upload(&d->target, &d->elev, &d->keys, KEYS_ALL, 0, &r, e);
	if (!ret)
		say(d, " (after the reboot)", &r);
	return ret;
}

int deploy_keys_only(struct deploy *d, struct nrr_err *e)
{
	struct keys_result r;
	int ret;

	if (!d->target_remote)
		return nrr_fail(e, NRR_EUSAGE, "--keys-only needs a target host");
	if ((ret = deploy_connect(d, 1, 0, e)))
		return ret;
	deploy_phase(d, "keys");
	ret = keys_upload(&d->target, &d->elev, &d->keys, KEYS_ALL, 0, &r, e);
	if (!ret)
		say(d, "", &r);
	return ret;
}
