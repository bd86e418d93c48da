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
#
# A destDir may belong to a user who is not root (the key's service), and
# so may a directory on the way to it: that user can rename, remove or
# replace anything in it at any moment, with a symbolic link to a file of
# root's say, and chmod, chown and > follow symbolic links. So nothing
# here acts on a name that user controls:
# - keys_cd enters the directory one name at a time, from a current
#   directory that no later change to the path can move, and follows a
#   symbolic link only where only root (or we) can change it;
# - a key is written to a new file made with O_EXCL (set -C: never through
#   a symbolic link) under a name nobody can guess, then used only through
#   the open file (chmod and chown of /proc/self/fd/N act on it, not on a
#   name), and renamed over the key's name (rename(2) replaces whatever is
#   there without following it);
# - a key already there is changed (mode, owner) only through an open file
#   found to be its name's own regular file, with no other link to it.
keys_uid=$(id -u)

keys_hash() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum <"$1" | cut -d' ' -f1
  else
    nix-hash --type sha256 --flat "$1"
  fi
}

keys_owner_exists() {
  id -u "$1" >/dev/null 2>&1 &&
    { getent group "$2" >/dev/null 2>&1 || grep -q "^$2:" /etc/group; }
}

keys_bad() { case $1 in '' | . | .. | */*) true ;; *) false ;; esac; }

# Sets keys_pending, the file that records keys whose owner does not exist
# yet, for keys_fixup: in /run for root; else in a directory of the user's
# alone (made if $1 is given), not at a name of /tmp's that another user
# could take first. Fails, with kwhy, if that directory is someone else's.
keys_pending_at() {
  if [ "$keys_uid" = 0 ] && [ -w /run ]; then
    keys_pending=/run/nixos-rebuild-remote-keys.pending
    return 0
  fi
  kpd=${TMPDIR:-/tmp}/nixos-rebuild-remote-$keys_uid
  if [ -n "${1-}" ] && [ ! -e "$kpd" ] && [ ! -L "$kpd" ]; then
    (umask 077; mkdir -- "$kpd") 2>/dev/null
  fi
  kwhy="$kpd is not a directory of $(id -un)'s alone"
  # (stat does not follow a symbolic link)
  [ "$(stat -c '%F %u %a' -- "$kpd" 2>/dev/null)" = "directory $keys_uid 700" ] || return
  keys_pending=$kpd/keys.pending
}

# True if $1 (absolute, plain: no ., .. or //) and every directory above
# it are directories (not links) owned by root or us, not group- or
# world-writable.
keys_trusted_path() {
  case $1 in /*) ;; *) false; return ;; esac
  case $1/ in *//* | */./* | */../*) false; return ;; esac
  kp=${1#/} kpre=
  set -- /
  while [ -n "$kp" ]; do
    kc=${kp%%/*} kp=${kp#"$kc"} kp=${kp#/}
    kpre=$kpre/$kc
    set -- "$@" "$kpre"
  done
  # (the raw mode, in hex: %F's words may be translated)
  kstats=$(stat -c '%u %f' -- "$@" 2>/dev/null) || return
  while read -r ku kraw; do
    { [ "$ku" = 0 ] || [ "$ku" = "$keys_uid" ]; } &&
      [ $((0x$kraw & 0xf000)) -eq $((0x4000)) ] && [ $((0x$kraw & 022)) -eq 0 ] || return
  done <<KEYS_STAT
$kstats
KEYS_STAT
}

# Makes directory $1 (absolute) the current one, making what is missing
# (0755) if $2 is given; fails with kwhy. A name is followed as a symbolic
# link (its target walked the same way) only in a directory that only root
# or we can change: owned by one of us, not group- or world-writable. In
# any other, the name must be a directory, and the one entered must have
# the one left as its parent: a swap between the check and cd shows there.
keys_cd() {
  kpath=$1 kmake=${2-} klinks=0 kwhy="cannot reach $1" kdtrusted=
  # the usual case (/run/keys): every directory on the way, and the last,
  # is one only root or we can change, with no link in it: nobody else can
  # move anything there, and one stat for them all is enough
  if keys_trusted_path "$1" && cd -P -- "$1" 2>/dev/null; then
    kdtrusted=1
    return 0
  fi
  cd / || return
  while :; do
    case $kpath in
    '') return 0 ;;
    /*) kpath=${kpath#/}; continue ;;
    esac
    kc=${kpath%%/*}
    kpath=${kpath#"$kc"}
    case $kc in
    .) continue ;;
    ..) cd -P .. || return; continue ;;
    esac
    # "owner mode device:inode" of where we are
    khere=$(stat -c '%u %a %d:%i' .) || return
    kdowner=${khere%% *} khere=${khere#* }
    kperm=${khere%% *} khere=${khere#* }
    ktrust=
    if { [ "$kdowner" = 0 ] || [ "$kdowner" = "$keys_uid" ]; } && [ $((0$kperm & 022)) -eq 0 ]; then
      ktrust=1
    fi
    if [ -L "$kc" ]; then
      if [ -z "$ktrust" ]; then
        kwhy="cannot reach $1: $kc is a symbolic link in a directory that a user other than root can change"
        false
        return
      fi
      klinks=$((klinks + 1))
      if [ "$klinks" -gt 40 ]; then
        kwhy="cannot reach $1: too many symbolic links"
        false
        return
      fi
      kt=$(readlink -- "$kc") || return
      case $kt in /*) cd / || return ;; esac
      kpath=$kt$kpath
      continue
    fi
    if [ -n "$kmake" ] && [ ! -e "$kc" ] && ! (umask 022; mkdir -- "$kc") && [ ! -d "$kc" ]; then
      kwhy="cannot create $1"
      false
      return
    fi
    # ./: not looked up in CDPATH
    cd -P -- "./$kc" 2>/dev/null || return
    if [ -z "$ktrust" ] && [ "$(stat -c %d:%i ..)" != "$khere" ]; then
      kwhy="cannot reach $1: $kc changed while it was entered"
      false
      return
    fi
  done
}

# True if open file descriptor $1 is a regular file with no other link
# than name $2 (not followed) of the current directory.
keys_lone() {
  [ -f "/proc/self/fd/$1" ] || return
  # where only root or we can change anything, nobody else put it there
  [ -z "$kdtrusted" ] || return 0
  [ "$(stat -L -c '%h %d:%i' "/proc/self/fd/$1")" = "1 $(stat -c %d:%i -- "./$2")" ]
}

# Opens the file named $1 of the current directory on fd 5 if it is a
# regular file of that name alone. ([ -f ] first: opening a FIFO would
# wait for a writer.)
keys_open() {
  [ -f "./$1" ] && [ ! -L "./$1" ] && { command exec 5<"./$1"; } 2>/dev/null &&
    keys_lone 5 "$1"
}

# Answers "failed" for key $ki, saying why ($*), and fails.
keys_fail() {
  echo "failed $ki $*"
  false
}

# The key of the record in the k* variables, whose content comes next on
# stdin: written to a new file renamed over its name. Answers "failed"
# with why, and fails; prints nothing else. A subshell: it changes
# directory, umask and set -C.
keys_write() (
  keys_cd "$kdir" make || { keys_fail "$kwhy"; exit; }
  # the name must be unguessable: set -C opens an existing name that is
  # not a regular file (a planted link to a device) without O_EXCL
  # (where nobody else can plant a name, ours is enough)
  if [ -n "$kdtrusted" ]; then
    ksuf=nrr$$
  else
    ksuf=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    case $ksuf in ????????????????) ;; *) keys_fail "cannot make a random name"; exit ;; esac
  fi
  ktmp=.$kname.$ksuf
  umask 077
  set -C
  kopen=
  keys_put "$ktmp" 4>"./$ktmp" && exit
  [ -n "$kopen" ] || keys_fail "cannot create a file in $kdir"
  rm -f -- "./$ktmp"
  false
)

# keys_write's work once the new file, named $1, is open on fd 4.
keys_put() {
  kopen=1
  if ! keys_lone 4 "$1" || [ -s /proc/self/fd/4 ]; then
    keys_fail "cannot create a file in $kdir"
    return
  fi
  head -c "$klen" >&4
  if [ "$(stat -L -c %s /proc/self/fd/4)" != "$klen" ] ||
     [ "$(keys_hash /proc/self/fd/4)" != "$khash" ]; then
    keys_fail "content cut short"
    return
  fi
  if ! chmod "$kmode" /proc/self/fd/4 ||
     { [ -n "$kown" ] && ! chown "$kuser:$kgroup" /proc/self/fd/4; } ||
     ! mv -fT -- "./$1" "./$kname"; then
    keys_fail "cannot write $kf"
    return
  fi
  # what was renamed is the file written, unless its name was swapped
  [ -n "$kdtrusted" ] ||
    [ "$(stat -c %d:%i -- "./$kname")" = "$(stat -L -c %d:%i /proc/self/fd/4)" ] ||
    keys_fail "$kf changed during the upload"
}

# The key of the record in the k* variables, whose content is right: its
# mode and owner made right (an owner not there yet: ours till then).
# Prints "fixed" if it changed them, nothing if they were right; answers
# "failed" with why, and fails, if the name is no longer the file found
# right.
keys_fix() (
  keys_cd "$kdir" || { keys_fail "$kwhy"; exit; }
  keys_open "$kname" || { keys_fail "$kf changed during the upload"; exit; }
  [ "$(stat -L -c '%U:%G %a' /proc/self/fd/5)" != "$kwant" ] || exit 0
  kto=$kuser:$kgroup
  [ -n "$kown" ] || kto=$keys_uid:$(id -g)
  if ! chmod "$kmode" /proc/self/fd/5 || ! chown "$kto" /proc/self/fd/5; then
    keys_fail "cannot change the owner or mode of $kf"
    exit
  fi
  echo fixed
)

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
  # what is written is reached through /proc/self/fd (see above)
  if [ "$kn" -gt 0 ] && [ ! -d /proc/self/fd ]; then
    echo "failed 0 /proc is not mounted"; return "$ST_KEYS_WRITE"
  fi
  # the records go to fd 7 of the loops over them: stdin carries the contents
  kneed=
  while IFS='	' read -r ki kname kdir kuser kgroup kmode khash <&7; do
    [ -n "$ki" ] || continue
    # wanted unless its name is a regular file of its own with this content
    if ! (keys_cd "$kdir" && keys_open "$kname" &&
          [ "$(keys_hash /proc/self/fd/5)" = "$khash" ]) 2>/dev/null; then
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
    if [ -z "$kown" ] && ! keys_pending_at make; then
      echo "failed $ki cannot keep its record for its owner: $kwhy"; kst=$ST_KEYS_WRITE; break
    fi
    case " $kneed " in
    *" $ki "*)
      IFS= read -r klen || { echo "failed $ki no content"; kst=$ST_KEYS_WRITE; break; }
      case $klen in '' | *[!0-9]*) echo "failed $ki bad length"; kst=$ST_KEYS_BAD; break ;; esac
      keys_write || { kst=$ST_KEYS_WRITE; break; }
      kdid=wrote ;;
    *)
      kdid=$(keys_fix) || { echo "$kdid"; kst=$ST_KEYS_WRITE; break; }
      [ -n "$kdid" ] || continue ;;
    esac
    if [ -n "$kown" ]; then echo "$kdid $ki"; continue; fi
    # an owner the new system creates: keys_fixup gives it the key
    (umask 077; printf '%s:%s %s\n' "$kuser" "$kgroup" "$kf" >>"$keys_pending")
    echo "pending $ki"
  done 7<<KEYS_EOF
$krec
KEYS_EOF
  echo keys-end
  return "$kst"
}

# Gives owner $1 the key at path $2 if that is still the file written: a
# regular file of its name alone, ours (the writer of its directory could
# have put any other there). Prints "keep" if chown fails: the record
# stays.
keys_give() (
  kdir=${2%/*}
  keys_cd "${kdir:-/}" 2>/dev/null && keys_open "${2##*/}" &&
    [ "$(stat -L -c %u /proc/self/fd/5)" = "$keys_uid" ] || exit 0
  chown "$1" /proc/self/fd/5 || echo keep
)

# After activation: the keys whose owners did not exist get them, if they
# do now; the others stay recorded (a later run tries again).
keys_fixup() {
  keys_pending_at 2>/dev/null && [ -f "$keys_pending" ] || return 0
  kleft=
  while IFS=' ' read -r kowner kf; do
    [ -n "$kf" ] || continue
    if keys_owner_exists "${kowner%%:*}" "${kowner#*:}" &&
       [ "$(keys_give "$kowner" "$kf")" != keep ]; then
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
