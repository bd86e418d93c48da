#!/usr/bin/env bash
# `make demo`: start a throwaway target host (a real sshd with its own /nix,
# in its own mount namespace), deploy examples/demo to it, show the result,
# and clean up. Nothing outside a temp dir is touched: the deploying side
# runs in a namespace with its own /nix too.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "error: the demo needs root (mount namespaces for the fake host)" >&2; exit 1; }
# shellcheck source=../../tests/lib/fleet.bash
. tests/lib/fleet.bash
FLEET_DIR=$(mktemp -d /tmp/nrr-demo.XXXXXX)
export FLEET_DIR
# fleet.bash is written for bats, not for set -e
trap 'set +e; fleet_stop' EXIT
NRR=${NRR:-$PWD/nixos-rebuild-remote}
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "starting a throwaway NixOS-like target host 'demo'"
fleet_start demo
echo "ssh alias 'demo' -> $(fleet_addr demo) (config: $FLEET_DIR/ssh_config, via NIX_SSHOPTS)"

say "nixos-rebuild-remote switch --flake examples/demo#demo --target-host root@demo"
time fleet_local "$NRR" switch --flake examples/demo#demo --target-host root@demo

say "the same again: nothing to copy, one connection"
fleet_reset_counts demo
time fleet_local "$NRR" switch --flake examples/demo#demo --target-host root@demo
echo "ssh handshakes with the target during that run: $(fleet_handshakes demo)"
echo "remote commands during that run: $(fleet_commands demo)"

say "nixos-rebuild-remote list-generations --target-host root@demo"
fleet_local "$NRR" list-generations --target-host root@demo

say "what ran on the target (/run/nrr-activations)"
fleet_exec demo cat /run/nrr-activations
fleet_exec demo sh -c 'echo "/run/current-system -> $(readlink /run/current-system)"; cat /run/current-system/motd'

say "done: stopping the demo host"
