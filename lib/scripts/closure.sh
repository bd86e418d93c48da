#!/bin/sh
# The closure of the paths given (their union, dependencies first), one path a line.
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
exec nix-store --query --requisites "$@"
