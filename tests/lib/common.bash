# shellcheck shell=bash
# Common setup of the bats files: assertion libraries, the fleet harness, the binary under test.
# Use as `load lib/common` at the top of a bats file in tests/.
load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load
# shellcheck source=SCRIPTDIR/fleet.bash
source "$(dirname "${BASH_SOURCE[0]}")/fleet.bash"

# The binary under test; the Makefile may point it elsewhere (a sanitizer build).
NRR=${NRR:-$BATS_TEST_DIRNAME/../nixos-rebuild-remote}
