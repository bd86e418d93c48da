#!/bin/sh
# What a host lacks of a closure (lib/closure.c): "--", then the paths.
# $1: 1 to let the host substitute first. The closure arrives on stdin.
# Extra PATH entries: where nix lives on NixOS and in single-user installs,
# in case the login environment did not say.
# $paths, $missing: lists of store paths, split into words on purpose, never
# globbed
# shellcheck disable=SC2086
set -f
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
paths=$(cat)
echo --
[ -n "$paths" ] || exit 0
if [ "$1" = 1 ]; then
  missing=$(nix-store --check-validity --print-invalid $paths) || exit "$ST_QUERY"
  [ -z "$missing" ] || nix-store --realise --keep-going $missing >/dev/null 2>&1
fi
exec nix-store --check-validity --print-invalid $paths
