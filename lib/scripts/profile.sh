#!/bin/sh
# The system a deploy would replace (lib/profileguard.c, colmena's
# replaceUnknownProfiles question): the system profile, or else
# /run/current-system, fully resolved; nothing if the host has neither.
readlink -e /nix/var/nix/profiles/system 2>/dev/null ||
  readlink -e /run/current-system 2>/dev/null || true
