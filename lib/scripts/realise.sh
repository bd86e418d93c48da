#!/bin/sh
# Realises $1 (a derivation) with nix-store and prints its output, "--",
# then its closure. Dies with the connection: ssh without a tty does not
# pass signals on, so a watcher ends the build when our end of stdin
# closes (Ctrl-C, a killed run, a dropped link). Non-interactive sh gives
# background jobs /dev/null as stdin, hence the copy on fd 3.
# $2: "dry" for --dry-run. The rest: flags for nix-store. The first line
# of stdin says when to begin.
# The result gets a GC root in a private directory of the build host's
# temp dir, so that it cannot be collected before it is copied; its
# directory comes first ("root DIR"): unroot.sh removes it when the deploy
# ends. A build that fails or is stopped removes it itself.
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
drv=$1 mode=$2; shift 2
# started while the derivations are sent (lib/build.c): "go" once they are
# all here; anything else, or the end of stdin, and nothing is built
IFS= read -r go && [ "$go" = go ] || exit 0
exec 3<&0
if [ "$mode" = dry ]; then
  nix-store --realise --dry-run "$drv" "$@" </dev/null 3<&- & p=$!
else
  rdir=$(mktemp -d "${TMPDIR:-/tmp}/nrr-result.XXXXXX") || exit
  root=$rdir/result
  nix-store --realise "$drv" --add-root "$root" --indirect "$@" </dev/null >/dev/null 3<&- & p=$!
fi
( cat <&3 >/dev/null 2>&1; kill -TERM $p 2>/dev/null ) >/dev/null 2>&1 &
exec 3<&-
wait $p; s=$?
[ "$mode" = dry ] && exit $s
[ $s = 0 ] || { rm -f "$root"; rmdir "$rdir"; exit $s; }
out=$(readlink -f "$root") || exit
echo "root $rdir"; echo "$out"; echo --
exec nix-store --query --requisites "$out"
