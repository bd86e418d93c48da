/*
 * action: every action of the command line, one row each.
 *
 * NRR_ACTIONS is the single source of truth for actions, as option_table[]
 * is for options: the parser finds actions in it (lib/options.c) and checks
 * the options each action takes against its needs, --help prints its help
 * lines, `--complete actions` lists it for the completion scripts (which the
 * suite checks against the man page), and main dispatches through it.
 *
 * A row is A(FN, NAME, NEEDS, ATTR, HELP):
 *   FN     main's dispatch function for it is action_FN (nixos-rebuild-remote.c);
 *          lib/ never sees it, so the rows are a macro that lib/action.c
 *          expands without FN and main expands with it
 *   NAME   the word on the command line
 *   NEEDS  AN_* bits: what it does and which options apply to it
 *   ATTR   the attribute of the configuration it builds (NULL: the system,
 *          config.system.build.toplevel)
 *   HELP   its line in --help (NULL: not listed, e.g. an alias)
 * A new action costs one row here and its function in main.
 */
#ifndef NRR_ACTION_H
#define NRR_ACTION_H

#include <stdio.h>

#include "strbuf.h"

enum action_needs {
	AN_BUILDS = 1 << 0,	/* builds the configuration (--build-host applies) */
	AN_HOSTS = 1 << 1,	/* --target-host/--build-host apply */
	AN_ACTIVATES = 1 << 2,	/* activates on the target (--store-path applies) */
	AN_SETS_PROFILE = 1 << 3, /* sets the system profile (the boot default) */
	AN_ROLLBACK = 1 << 4,	/* --rollback applies */
	AN_SPECIALISATION = 1 << 5, /* --specialisation applies */
	AN_MAGIC_ROLLBACK = 1 << 6, /* --magic-rollback applies */
	AN_FLEET = 1 << 7,	/* --on applies */
	AN_FILE_ATTR = 1 << 8,	/* --file/--attr apply */
	AN_DRY = 1 << 9,	/* only shows what a build would do */
	AN_PLAN = 1 << 10,	/* activation only reports what it would do */
	AN_RESULT = 1 << 11,	/* built here, it leaves ./result */
	AN_VM = 1 << 12,	/* its result is a VM to start */
	AN_IMAGE_VARIANT = 1 << 13, /* needs --image-variant (ATTR.VARIANT) */
	AN_NO_DIFF = 1 << 14,	/* --diff has no effect */
	AN_PASSWORD = 1 << 15,	/* may need root on the target: -S asks */
	AN_REPORT = 1 << 16,	/* --json: a report of the deploy */
	AN_ALIAS = 1 << 17,	/* an alias of the row before it */
};

/* What every action that builds and activates a system needs. */
#define AN_DEPLOY (AN_BUILDS | AN_HOSTS | AN_ACTIVATES | AN_FILE_ATTR | \
		   AN_FLEET | AN_PASSWORD | AN_REPORT)
#define AN_BUILD_HERE (AN_BUILDS | AN_FILE_ATTR | AN_RESULT | AN_PASSWORD)

#define NRR_ACTIONS(A) \
	A(deploy, "switch", AN_DEPLOY | AN_SETS_PROFILE | AN_ROLLBACK | \
	  AN_SPECIALISATION | AN_MAGIC_ROLLBACK, NULL, \
	  "build, make it the boot default and activate it") \
	A(deploy, "boot", AN_DEPLOY | AN_SETS_PROFILE | AN_ROLLBACK, NULL, \
	  "build and make it the boot default") \
	A(deploy, "test", AN_DEPLOY | AN_ROLLBACK | AN_SPECIALISATION | \
	  AN_MAGIC_ROLLBACK, NULL, "build and activate it, not the boot default") \
	A(deploy, "build", AN_BUILD_HERE | AN_HOSTS | AN_ROLLBACK | AN_FLEET, \
	  NULL, "build (and copy to --target-host); ./result locally") \
	A(deploy, "dry-build", AN_BUILDS | AN_HOSTS | AN_FILE_ATTR | AN_DRY | \
	  AN_NO_DIFF | AN_REPORT | AN_FLEET, NULL, \
	  "show what would be built (dry-run is an alias)") \
	A(deploy, "dry-run", AN_ALIAS, NULL, NULL) \
	A(deploy, "dry-activate", AN_DEPLOY | AN_SPECIALISATION | AN_PLAN, NULL, \
	  "build and show what activation would change") \
	A(edit, "edit", AN_NO_DIFF, NULL, "open the configuration in $EDITOR") \
	A(repl, "repl", AN_FILE_ATTR | AN_NO_DIFF, NULL, \
	  "open nix repl on the configuration") \
	A(deploy, "build-vm", AN_BUILD_HERE | AN_HOSTS | AN_VM, \
	  "config.system.build.vm", "build a QEMU VM running the configuration") \
	A(deploy, "build-vm-with-bootloader", AN_BUILD_HERE | AN_HOSTS | AN_VM, \
	  "config.system.build.vmWithBootLoader", \
	  "the same, booting through the boot loader") \
	A(deploy, "build-image", AN_BUILD_HERE | AN_IMAGE_VARIANT, \
	  "config.system.build.images", "build a disk image (--image-variant)") \
	A(list_generations, "list-generations", AN_HOSTS | AN_FILE_ATTR | \
	  AN_NO_DIFF | AN_PASSWORD, NULL, \
	  "list the system profile's generations")

struct action {
	const char *name;
	unsigned needs;		/* enum action_needs */
	const char *attr;
	const char *help;
};

/* The rows of NRR_ACTIONS, in order, ended by a row whose name is NULL. */
extern const struct action action_table[];

/*
 * The row of name, an alias resolved to the row it stands for; NULL if
 * there is none. Points into action_table[]: nothing to free.
 */
const struct action *action_find(const char *name);

/*
 * Appends the names of the actions that have all the needs bits, as
 * "a, b and c" (quoted 'a', 'b' and 'c' if quote is set), to sb.
 */
void action_list(struct strbuf *sb, unsigned needs, int quote);

/* Writes the "Actions:" part of --help to fp. */
void action_print_help(FILE *fp);

#endif
