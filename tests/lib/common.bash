# shellcheck shell=bash
# Common setup of the bats files: assertion libraries, the fleet harness, the binary under test.
# Use as `load lib/common` at the top of a bats file in tests/.
load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load
# shellcheck source=SCRIPTDIR/fleet.bash
source "$(dirname "${BASH_SOURCE[0]}")/fleet.bash"

# The binary under test; the Makefile may point it elsewhere (a sanitizer build).
NRR=${NRR:-$BATS_TEST_DIRNAME/../nixos-rebuild-remote}

# Helpers of the deploy tests. $F is the file's copy of the test flake.
# The tool, run in the fleet's deployer namespace.
nrr() { fleet_local "$NRR" "$@"; }
# A new generation of every configuration: a new tag in the flake copy.
retag() { printf '%s\n' "$1" >"$F/tag"; }
# The store path of configuration $1's system, as the deployer builds it.
toplevel() { fleet_build "$F#nixosConfigurations.$1.config.system.build.toplevel"; }
# Where host $1's system profile points (empty if it has none).
profile_of() { fleet_exec "$1" readlink -f /nix/var/nix/profiles/system 2>/dev/null || true; }
# The last switch-to-configuration call recorded on host $1.
last_activation() { fleet_exec "$1" tail -n 1 /run/nrr-activations; }
# The tool at a pseudo-terminal, typing the line $TYPED at it (a password,
# an answer).
nrr_tty() {
	_fleet_local_argv
	printf '%s\n' "${TYPED-}" | script -qec "$(printf '%q ' "${_FLEET_LOCAL[@]}" "$NRR" "$@")" /dev/null
}
