# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of a fake `vm` / `vmWithBootLoader`: bin/run-NAME-vm, as nixos-rebuild build-vm expects.
set -eu
mkdir -p "$out/bin"
kind=vm
[ -z "$bootloader" ] || kind="vm with boot loader"
printf '#!/bin/sh\necho "fake %s of %s"\n' "$kind" "$toplevel" > "$out/bin/run-$hostName-vm"
chmod +x "$out/bin/run-$hostName-vm"
ln -s "$toplevel" "$out/system"
