# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of a fake disk image (config.system.build.images.qcow).
set -eu
mkdir -p "$out/nix-support"
printf 'fake qcow2 image of %s\n' "$toplevel" > "$out/nixos.qcow2"
printf 'file qcow2 %s/nixos.qcow2\n' "$out" > "$out/nix-support/hydra-build-products"
