#!/bin/sh
# $1 user@host, $2 port; paths on stdin. Runs on the build host: copies
# them to the target itself (--copy-direct).
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
paths=$(cat)
# One path a line, each one word: split on newlines only, never globbed.
set -f
IFS='
'
# shellcheck disable=SC2086 # a list of store paths, split on purpose
nix-store --export $paths | ssh -T -p "$2" -- "$1" 'nix-store --import' >/dev/null
