#!/bin/sh
# The store's registration of the paths on stdin (one a line), in that order:
# each path, its NAR hash and size, its deriver, its references (what
# nix-store --load-db reads). Never without paths: that dumps the whole store.
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
exec xargs -r nix-store --dump-db
