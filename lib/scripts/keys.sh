#!/bin/sh
# Keys on the target (lib/keys.c). Only function definitions: the text is
# run on its own (lib/keys.c appends the call) or put before another
# conversation's script (the activation's), which calls keys_receive where
# keys go in, on the same stdin, and keys_fixup after activation.
#
# keys_receive says "keys" (so that the deployer sends the records when
# the script is ready for them, wherever a conversation calls it), then
# reads: a line "pre" (a missing owner is recorded for keys_fixup, as the
# new system may create it) or "post" (a missing owner fails); a line with
# the number of records; each record as six lines: name, directory, user,
# group, mode, sha256 of the content (hex). It answers "need I" for each
# key whose content differs, and "."; then
# reads, for each needed key in order, a line with the length and that many
# bytes; then answers per key "wrote I", "fixed I" (owner or mode), "pending
# I" (owner not there yet) or "failed I WHAT" (and returns), and "keys-end".
# The contents go to head, never to a command line, a variable or a file
# other than the temporary beside the key.
keys_pending=/run/nixos-rebuild-remote-keys.pending
[ -w /run ] || keys_pending=${TMPDIR:-/tmp}/nixos-rebuild-remote-keys-$(id -u).pending

keys_hash() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum <"$1" | cut -d' ' -f1
  else
    nix-hash --type sha256 --flat "$1"
  fi
}

# "user:group mode" of a file, as stat says it (numbers for unknown ids)
keys_meta() { stat -c '%U:%G %a' "$1" 2>/dev/null; }

keys_owner_exists() {
  id -u "$1" >/dev/null 2>&1 &&
    { getent group "$2" >/dev/null 2>&1 || grep -q "^$2:" /etc/group; }
}

keys_bad() { case $1 in '' | . | .. | */*) true ;; *) false ;; esac; }

keys_receive() {
  echo keys
  IFS= read -r kstage && IFS= read -r kn || return "$ST_KEYS_BAD"
  case $kn in '' | *[!0-9]*) return "$ST_KEYS_BAD" ;; esac
  krec='' ki=0
  # the records, kept as lines "I<TAB>..." in $krec; the shell reads one
  # byte at a time from a pipe, so the contents after them stay unread
  while [ "$ki" -lt "$kn" ]; do
    IFS= read -r kname && IFS= read -r kdir && IFS= read -r kuser &&
      IFS= read -r kgroup && IFS= read -r kmode && IFS= read -r khash ||
      return "$ST_KEYS_BAD"
    if keys_bad "$kname"; then echo "failed $ki bad name"; return "$ST_KEYS_BAD"; fi
    case $kdir in /*) ;; *) echo "failed $ki bad directory"; return "$ST_KEYS_BAD" ;; esac
    case $kmode in *[!0-7]* | '') echo "failed $ki bad mode"; return "$ST_KEYS_BAD" ;; esac
    if [ -z "$kuser" ] || [ -z "$kgroup" ] || [ -z "$khash" ]; then
      echo "failed $ki bad record"; return "$ST_KEYS_BAD"
    fi
    krec="$krec$ki	$kname	$kdir	$kuser	$kgroup	$kmode	$khash
"
    ki=$((ki + 1))
  done
  # the records go to fd 7 of the loops over them: stdin carries the contents
  kneed=
  while IFS='	' read -r ki kname kdir kuser kgroup kmode khash <&7; do
    [ -n "$ki" ] || continue
    kf=$kdir/$kname
    if [ ! -f "$kf" ] || [ -L "$kf" ] || [ "$(keys_hash "$kf")" != "$khash" ]; then
      echo "need $ki"; kneed="$kneed $ki"
    fi
  done 7<<KEYS_EOF
$krec
KEYS_EOF
  echo .
  kst=0
  while IFS='	' read -r ki kname kdir kuser kgroup kmode khash <&7; do
    [ -n "$ki" ] || continue
    kf=$kdir/$kname
    kwant="$kuser:$kgroup $(printf '%o' "$((0$kmode))")"
    kown=1
    keys_owner_exists "$kuser" "$kgroup" || kown=
    if [ -z "$kown" ] && [ "$kstage" != pre ]; then
      echo "failed $ki owner $kuser:$kgroup does not exist"; kst=$ST_KEYS_WRITE; break
    fi
    case " $kneed " in
    *" $ki "*)
      IFS= read -r klen || { echo "failed $ki no content"; kst=$ST_KEYS_WRITE; break; }
      case $klen in '' | *[!0-9]*) echo "failed $ki bad length"; kst=$ST_KEYS_BAD; break ;; esac
      [ -d "$kdir" ] || (umask 022; mkdir -p "$kdir") ||
        { echo "failed $ki cannot create $kdir"; kst=$ST_KEYS_WRITE; break; }
      # mktemp makes it 0600 whatever the umask; 077 for anything else
      ktmp=$(umask 077; mktemp "$kdir/.$kname.XXXXXX") ||
        { echo "failed $ki cannot create a file in $kdir"; kst=$ST_KEYS_WRITE; break; }
      head -c "$klen" >"$ktmp"
      if [ "$(wc -c <"$ktmp")" -ne "$klen" ] || [ "$(keys_hash "$ktmp")" != "$khash" ]; then
        rm -f "$ktmp"; echo "failed $ki content cut short"; kst=$ST_KEYS_WRITE; break
      fi
      if ! chmod "$kmode" "$ktmp" ||
         { [ -n "$kown" ] && ! chown "$kuser:$kgroup" "$ktmp"; } ||
         ! mv -f "$ktmp" "$kf"; then
        rm -f "$ktmp"; echo "failed $ki cannot write $kf"; kst=$ST_KEYS_WRITE; break
      fi
      if [ -n "$kown" ]; then echo "wrote $ki"; else echo "pending $ki"; fi ;;
    *)
      [ "$(keys_meta "$kf")" != "$kwant" ] || continue
      if ! chmod "$kmode" "$kf" || { [ -n "$kown" ] && ! chown "$kuser:$kgroup" "$kf"; }; then
        echo "failed $ki cannot change the owner or mode of $kf"; kst=$ST_KEYS_WRITE; break
      fi
      if [ -n "$kown" ]; then echo "fixed $ki"; else echo "pending $ki"; fi ;;
    esac
    # an owner the new system creates: keys_fixup gives it the key
    [ -n "$kown" ] || (umask 077; printf '%s:%s %s\n' "$kuser" "$kgroup" "$kf" >>"$keys_pending")
  done 7<<KEYS_EOF
$krec
KEYS_EOF
  echo keys-end
  return "$kst"
}

# After activation: the keys whose owners did not exist get them, if they
# do now; the others stay recorded (a later run tries again).
keys_fixup() {
  [ -f "$keys_pending" ] || return 0
  kleft=
  while IFS=' ' read -r kowner kf; do
    if [ -z "$kf" ] || [ ! -f "$kf" ]; then continue; fi
    if keys_owner_exists "${kowner%%:*}" "${kowner#*:}" && chown "$kowner" "$kf"; then
      continue
    fi
    kleft="$kleft$kowner $kf
"
  done <"$keys_pending"
  if [ -n "$kleft" ]; then
    (umask 077; printf '%s' "$kleft" >"$keys_pending.new") && mv -f "$keys_pending.new" "$keys_pending"
  else
    rm -f "$keys_pending"
  fi
}
