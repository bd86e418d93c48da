#!/bin/sh
# Exports the paths on stdin, for import.sh on another host.
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
# shellcheck disable=SC2046 # the paths on stdin, split on purpose
exec nix-store --export $(cat)
