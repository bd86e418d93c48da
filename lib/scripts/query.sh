#!/bin/sh
# What the host is, then what it lacks of a closure (lib/closure.c).
# $1: 1 to let the host substitute first. The closure arrives on stdin.
# Extra PATH entries: where nix lives on NixOS and in single-user installs,
# in case the login environment did not say.
# $paths, $missing: lists of store paths, split into words on purpose
# shellcheck disable=SC2086
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
paths=$(cat)
echo "hostname=$(uname -n)"
echo "arch=$(uname -m)"
echo "nix=$(nix-store --version 2>/dev/null)"
echo "current=$(readlink /run/current-system 2>/dev/null)"
# the system a deploy would replace (lib/profileguard.c), as colmena asks it
echo "system=$(readlink -e /nix/var/nix/profiles/system 2>/dev/null || readlink -e /run/current-system 2>/dev/null)"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
echo --
[ -n "$paths" ] || exit 0
if [ "$1" = 1 ]; then
  missing=$(nix-store --check-validity --print-invalid $paths) || exit "$ST_QUERY"
  [ -z "$missing" ] || nix-store --realise --keep-going $missing >/dev/null 2>&1
fi
exec nix-store --check-validity --print-invalid $paths
