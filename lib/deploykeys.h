/*
 * deploykeys: a hive node's deployment.keys in a deploy (lib/keys.h says
 * how a key is read and written; this says when, and how it gets there).
 *
 * Who reads what: the fleet's parent (lib/colmena.c) has the hive: each
 * node's keys, a text key's text read by one evaluation for all nodes
 * and held in guarded memory. It hands them to the node's child on the
 * child's stdin, after the sudo password line if any (--keys-fd 0), never
 * in argv or the environment: a pipe is the only way in that nothing else
 * on either machine can read, and stdin needs no new fd in the child. The
 * child reads them before anything else (deploy_keys_receive) and reads
 * the contents of keyFile and keyCommand keys itself, once, before it
 * contacts its host: a keyCommand runs in parallel with the other nodes',
 * bounded by --parallel, and a failing one is that node's failure alone,
 * reported under its name by the fleet's rules (the others go on, exit 12),
 * before anything is activated there. The child re-evaluates nothing.
 *
 * When: in the activation's one remote command (lib/activate.h): the
 * pre-activation keys after its checks and before the profile is set,
 * the post-activation keys after a successful switch-to-configuration;
 * with --reboot, the post-activation keys after the host came back, in a
 * command of their own over the reconnected master, with the
 * pre-activation ones again (a boot empties /run/keys; a key still there
 * and right is not rewritten). apply keys
 * (upload-keys, --keys-only) uploads both stages in one command, every
 * owner required, as colmena's upload-keys does.
 *
 * Exit statuses (the child's, the fleet's summary names the node): 1
 * (NRR_EFAIL) a keyFile that cannot be read or a keyCommand that fails;
 * 2 (NRR_EUSAGE) a key that breaks the rules; 8 (NRR_EACTIVATE) a key the
 * target could not write (its owner missing after activation, a
 * directory it cannot create).
 */
#ifndef NRR_DEPLOYKEYS_H
#define NRR_DEPLOYKEYS_H

#include "deploy.h"
#include "error.h"
#include "keys.h"

/*
 * A fleet's child gets its node's keys this way (lib/fleet.c): not their
 * contents, which it reads itself (keys_load: keyFile, keyCommand), but
 * what to read and where to write it, and a text key's text, on a pipe
 * (never argv or the environment). Every field is its length in decimal,
 * a newline and its bytes: "nrr-keys 1", the node's name, the count; per
 * key: name, destDir, user, group, permissions, "pre" | "post", "text" |
 * "file" | "command", then the text | the file | the count of words and
 * the words. keys_write_specs returns 0 or -1 (the pipe is gone);
 * keys_read_specs reads them into ks (a text straight into guarded
 * memory), the node's name into *node (malloc'ed, the caller frees it),
 * and checks each key (key_check). Returns 0, NRR_EUSAGE (a key breaks
 * the rules) or NRR_EFAIL (cut short).
 */
int keys_write_specs(const struct keyset *ks, const char *node, int fd);
int keys_read_specs(struct keyset *ks, int fd, char **node, struct nrr_err *e);


/* The child: reads the keys from fd into d->keys and loads their
 * contents (keys_load). Returns 0 or the error naming node and key. */
int deploy_keys_receive(struct deploy *d, int fd, struct nrr_err *e);

/* apply-local: ks (a hive node's, texts read) becomes d's, and their
 * contents are loaded here. Returns 0 or the error naming node and key. */
int deploy_keys_take(struct deploy *d, struct keyset *ks, const char *node,
		     struct nrr_err *e);

/* The keys that an activation of d carries (none when d has none, or
 * for an action that does not activate: dry-activate). after_reboot: the
 * post-activation keys wait for deploy_keys_after_reboot. */
void deploy_keys_activation(struct deploy *d, struct activation *a,
			    int after_reboot);

/* After --reboot: the post-activation keys and the pre-activation ones
 * again, in a command of their own, every owner required. Returns 0 or
 * an error naming the host. */
int deploy_keys_after_reboot(struct deploy *d, struct nrr_err *e);

/* apply keys (--keys-only): connects to the target and uploads both
 * stages in one command, every owner required. Returns 0 or an error. */
int deploy_keys_only(struct deploy *d, struct nrr_err *e);

#endif
