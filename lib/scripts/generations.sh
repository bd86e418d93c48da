#!/bin/sh
# $1: the profile. One line per generation link: id, the link's mtime
# (seconds), 1 if it is the current one, the store path, nixos-version,
# kernel version, configuration revision and specialisations, separated
# by tabs. The links are read directly, as nixos-rebuild does: nix-env
# --list-generations would take the profile's lock, which only root may.
[ -e "$1" ] || [ -L "$1" ] || { echo "error: no profile $1" >&2; exit "$ST_NO_PROFILE"; }
cur=$(readlink "$1"); cur=${cur##*/}
for l in "$1"-*-link; do
  [ -L "$l" ] || continue
  id=${l#"$1"-}; id=${id%-link}
  c=0; [ "${l##*/}" = "$cur" ] && c=1
  m=$(stat -c %Y "$l" 2>/dev/null)
  t=$(readlink -f "$l")
  v=$(cat "$t/nixos-version" 2>/dev/null)
  # shellcheck disable=SC2012 # names inside a store path
  k=$(ls "$t/kernel-modules/lib/modules" 2>/dev/null | head -n 1)
  r=$("$t/sw/bin/nixos-version" --configuration-revision 2>/dev/null)
  # shellcheck disable=SC2012
  s=$(ls "$t/specialisation" 2>/dev/null | tr '\n' ' ')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$m" "$c" "$t" "$v" "$k" "$r" "$s"
done
