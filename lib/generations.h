/*
 * generations: a system profile's history, here or on a target.
 *
 * Read from the profile's generation links in one command, with what each
 * generation is (NixOS version, kernel, configuration revision,
 * specialisations).
 */
#ifndef NRR_GENERATIONS_H
#define NRR_GENERATIONS_H

#include "host.h"

struct generation {
	int id;
	char date[32];
	int current;
	char *path;		/* store path the link points to, or NULL */
	char *nixos_version, *kernel, *revision, *specialisations;
};

/* Parses the listing script's output (pure; for unit tests), sorted by id.
 * *out is a malloc'ed array; free with generations_free(). */
int generations_parse(const char *text, struct generation **out, int *n);
void generations_free(struct generation *g, int n);

/* The generation --rollback of test/build picks: the newest one older
 * than the current one (what nix-env --rollback picks). -1 if none. */
int generations_previous(const struct generation *g, int n);

/* Reads h's generations of profile with their details. */
int generations_read(const struct host *h, const struct elevation *el,
		     const char *profile, struct generation **out, int *n,
		     struct nrr_err *e);

/* Prints the table nixos-rebuild prints, or with json a JSON array. */
void generations_print(const struct generation *g, int n, int json);

#endif
