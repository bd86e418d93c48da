#!/bin/sh
# Exports the paths on stdin, for import.sh on another host.
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
# One path a line, each one word: split on newlines only, never globbed.
set -f
IFS='
'
# shellcheck disable=SC2046 # split on purpose
exec nix-store --export $(cat)
