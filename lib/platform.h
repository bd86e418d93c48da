/*
 * platform: Nix system names ("x86_64-linux") of machines, derivations and
 * remote builders, so that a deploy can tell before it builds anything
 * whether some machine can build the system (see build_preflight()).
 *
 * Pure functions on text; nothing here runs a command.
 */
#ifndef NRR_PLATFORM_H
#define NRR_PLATFORM_H

#include <stddef.h>

/* The Nix system of a Linux machine whose `uname -m` says machine
 * ("x86_64" -> "x86_64-linux", "arm64" -> "aarch64-linux"), into out. */
void platform_of_machine(const char *machine, char *out, size_t size);

/* The same for a machine whose byte order is known, as this one's is:
 * uname's mips and mips64 name both orders, where Nix's names tell them
 * apart (mipsel, mips64el when little). */
void platform_of_machine_order(const char *machine, int little, char *out, size_t size);

/*
 * The system field of a derivation file's text (the ATerm
 * `Derive([outputs],[inputDrvs],[inputSrcs],"system",...)`), into out.
 * Returns 0, or -1 when text is no derivation or the field does not fit.
 */
int platform_drv_system(const char *text, size_t len, char *out, size_t size);

/*
 * 1 if the builders setting (machine lines separated by ';' or newlines:
 * "URI SYSTEMS ...", SYSTEMS comma-separated) has a machine for system.
 * A line without SYSTEMS builds for the local system only: it does not
 * count. An "@FILE" reference is the caller's to read.
 */
int platform_builders_have(const char *builders, const char *system);

#endif
