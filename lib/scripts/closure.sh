#!/bin/sh
# The closure of $1, one path a line.
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
exec nix-store --query --requisites "$1"
