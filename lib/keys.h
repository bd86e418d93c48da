/*
 * keys: colmena's deployment.keys, read here and written on the target.
 *
 * A key's text comes from the hive (text), a file here (keyFile) or a
 * command run here with stdin /dev/null (keyCommand). It is held in
 * libsodium's guarded memory (sodium_malloc: locked, wiped when freed) and
 * travels only on the stdin of a remote session we already hold: never in
 * a Nix store, a command line, an environment or a log, here or there.
 *
 * The conversation (lib/scripts/keys.sh, statuses in keys.def): we send
 * each key's record (name, directory, user, group, mode, SHA-256 of the
 * content); the target answers which contents differ from what it has; we
 * send only those, length-prefixed; it writes each atomically (a 0600
 * temporary beside the key, chmod, chown, rename) and fixes owner or mode
 * of the others in place. A key that is already right is not touched (its
 * inode and mtime stay). An owner that does not exist yet (pre-activation
 * keys may name users the new system creates) is recorded on the target;
 * keys_fixup, run after switch-to-configuration, gives them the key.
 *
 * A destDir may belong to a user other than root (the key's service), who
 * must not lead root's writes, chmod or chown to another file: the script
 * acts on open files, not on names that user can swap, and enters the
 * directory one name at a time (lib/scripts/keys.sh says how). A key
 * swapped during the upload fails, named; the next upload rewrites it.
 *
 * Hooking it into another conversation (the activation's): put script_keys
 * before that script's text, have the script call `keys_receive || exit
 * $?` where keys go in and `keys_fixup` after activation, and call
 * keys_answer() when its stdout says "keys": keys_receive asks for the
 * records that way, so they never meet another read of the script's
 * stdin. keys_upload() is the same as a session of its own.
 *
 * A hive's keys are parsed here too (keys_from_json: hive.c reads
 * deployment.keys through it, a text key's text coming later by
 * keys_set_text); lib/deploykeys.h says how they reach a deploy.
 */
#ifndef NRR_KEYS_H
#define NRR_KEYS_H

#include <stddef.h>

#include "error.h"
#include "host.h"
#include "session.h"
#include "strbuf.h"
#include "strvec.h"

struct cJSON;

enum key_source { KEY_TEXT, KEY_FILE, KEY_COMMAND };

/* Which keys a step handles (uploadAt), as a mask. */
#define KEYS_PRE 0x1	/* pre-activation (colmena's default) */
#define KEYS_POST 0x2	/* post-activation */
#define KEYS_ALL (KEYS_PRE | KEYS_POST)

struct key {
	char *name, *dest_dir, *user, *group, *permissions;
	char *attr;		/* its attribute in deployment.keys (or NULL) */
	int upload_at;		/* KEYS_PRE or KEYS_POST */
	enum key_source source;
	char *text;		/* KEY_TEXT: in guarded memory (sodium_malloc) */
	int text_later;		/* KEY_TEXT whose text is not read yet (a hive's
				 * "info" leaves it out: keys_set_text) */
	char *file;		/* KEY_FILE */
	struct strvec command;	/* KEY_COMMAND: argv, run here */
	/* keys_load: the content (sodium_malloc'ed) and its SHA-256, hex */
	unsigned char *data;
	size_t len;
	int loaded;
	char hash[65];
};

struct keyset {
	struct key *v;
	size_t nr, alloc;
};

#define KEYSET_INIT { NULL, 0, 0 }

/* What the target did. */
struct keys_result {
	int written;	/* content written */
	int fixed;	/* owner or mode changed in place */
	int pending;	/* owner not there yet: recorded for keys_fixup */
	int unchanged;
};

/*
 * Appends an empty key (defaults: destDir /run/keys, root:root, 0600,
 * pre-activation) and returns it; the caller fills it in.
 */
struct key *keyset_add(struct keyset *ks, const char *name);
/* Frees everything, wiping texts and contents. */
void keyset_release(struct keyset *ks);

/*
 * Reads colmena's deployment.keys (an object: attribute name -> record
 * with name, text | keyFile | keyCommand, destDir, user, group,
 * permissions, uploadAt) into ks, and checks each key (key_check).
 * Returns 0 or NRR_EUSAGE naming the key and node.
 */
int keys_from_json(struct keyset *ks, const struct cJSON *keys,
		   const char *node, struct nrr_err *e);

/*
 * The rules, checked before anything is sent: the name one relative path
 * component, destDir absolute, user and group valid user names, the mode
 * octal, exactly one source; no control characters anywhere. Returns 0 or
 * NRR_EUSAGE ("key 'NAME' of 'NODE': ...").
 */
int key_check(const struct key *k, const char *node, struct nrr_err *e);

/*
 * Reads the contents of the keys of ks that `which` selects, here, into
 * guarded memory, and hashes them. Returns 0, or NRR_EFAIL naming the key
 * and node (a keyFile that cannot be read, a keyCommand that cannot run
 * or exits non-zero, with the last line it wrote on stderr).
 */
int keys_load(struct keyset *ks, int which, const char *node,
	      struct nrr_err *e);

/*
 * Appends to msg what keys_receive reads first: the stage ("pre" when the
 * owners may come with the new system, else "post"), the count and the
 * records of the keys `which` selects. No content: that goes later.
 * (keys_answer sends it.)
 */
void keys_records(const struct keyset *ks, int which, int owners_later,
		  struct strbuf *msg);

/*
 * The keys conversation on s: reads up to the script's "keys" (unless
 * seen_keys_line: the caller read it), sends the records (owners_later as
 * keys_records()), reads the target's needs, sends those contents, reads
 * the results into r. Returns
 * 0, or NRR_EACTIVATE naming the key, node and what failed (the session
 * is left for the caller to finish), or NRR_EFAIL if the script ended
 * (then the caller's session_finish tells why).
 */
int keys_answer(struct session *s, const struct keyset *ks, int which,
		int owners_later, int seen_keys_line, struct keys_result *r,
		struct nrr_err *e);

/*
 * A session of its own on h: the keys `which` selects (loaded), then
 * keys_fixup. owners_later as keys_records(). Returns 0, or an error
 * naming the host (NRR_ECONNECT when ssh failed).
 */
int keys_upload(const struct host *h, const struct elevation *el,
		const struct keyset *ks, int which, int owners_later,
		struct keys_result *r, struct nrr_err *e);

/*
 * Sets k's text (a hive's text key, read by the deploy that uploads it):
 * copied into guarded memory; the caller wipes its own copy. Returns 0,
 * or -1 when locked memory ran out.
 */
int keys_set_text(struct key *k, const char *text, size_t len);

/* How many keys of ks `which` selects. */
int keys_count(const struct keyset *ks, int which);

#endif
