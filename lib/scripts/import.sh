#!/bin/sh
# Imports what export.sh sent.
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
exec nix-store --import
