#!/bin/sh
# The deploy conversation on the target (lib/activate.c; the fields and
# statuses: activate.def). $1: who we are, for a second deploy's error
# message. We answer "ready MACHINE [SYSTEM] [RUNNING]" (uname -m, the
# system a deploy replaces, the running one) once the lock is ours; then
# read the fields, one a line, then the closure, one path a line, ended by
# ".". We answer the paths the target lacks ended by "." (then wait for
# "go" while they are sent, or "fetch" with paths its caches serve),
# "activating" right before the profile or the running system may change,
# and "status N" after activation; then we hold the lock until the deployer
# hangs up. With keys (lib/scripts/keys.sh, put before this script):
# pre-activation keys are received after the checks and the question,
# before anything else changes; after activation, keys_fixup gives the
# owners the new system created their keys, and post-activation keys are
# received if it succeeded.
# $paths, $missing, $fetch: lists of store paths, split into words on purpose
# and never globbed ('?' is a store path's character: as root, a glob could
# name other files)
# shellcheck disable=SC2086
set -f
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
# root's lock lives where only root writes: a user cannot hold it. A user's
# lives in a directory of its own (its runtime dir, or ~/.cache), never in a
# world-writable one, where another user could take it or plant a link for
# the holder file to follow.
lock=/run/nixos-rebuild-remote.lock
if [ ! -w /run ]; then
  ldir=${XDG_RUNTIME_DIR-}
  if [ -z "$ldir" ] || [ ! -d "$ldir" ] || [ -L "$ldir" ] ||
     [ "$(stat -c %u "$ldir" 2>/dev/null)" != "$(id -u)" ]; then
    ldir=$HOME/.cache
    (umask 077; mkdir -p "$ldir") 2>/dev/null
  fi
  lock=$ldir/nixos-rebuild-remote.lock
fi
if command -v flock >/dev/null 2>&1; then
  # 0600: flock needs only an open file, so a lock anyone may read is a
  # lock anyone may hold
  [ -e "$lock" ] || (umask 077; : >>"$lock") 2>/dev/null
  [ ! -O "$lock" ] || chmod 600 "$lock" 2>/dev/null
  if exec 9<"$lock"; then
    flock -n 9 || { echo "busy $(cat "$lock.holder" 2>/dev/null)"; exit "$ST_BUSY"; }
    (umask 022; printf '%s\n' "$1" >"$lock.holder") 2>/dev/null
  fi 2>/dev/null
fi
# and the system a deploy replaces (profile.sh's answer: replaceUnknownProfiles),
# and the running one (the deployer's store may hold its closure: then it
# makes the diff itself, and this host starts no nix for it)
# (each answer asked once and kept: every program a small board starts costs
# it milliseconds)
# canon PATH: $canon, readlink -e PATH, or "". A system is a directory:
# the shell's own cd -P resolves it without a process (then back to /,
# where the rest of the script is at home); anything else, which another
# operator may have set, is asked of readlink.
canon() {
  canon=
  if cd -P "$1" 2>/dev/null; then
    canon=$PWD; cd /
  elif [ -e "$1" ]; then
    canon=$(readlink -e "$1" 2>/dev/null)
  fi
}
# kernel.arch (newer kernels have it) is uname -m without a process
{ IFS= read -r machine </proc/sys/kernel/arch; } 2>/dev/null ||
  machine=$(uname -m 2>/dev/null)
# MIPS: uname says mips or mips64 for either byte order, which Nix's names say
# (mipsel, mips64el). The kernel tells it (Linux 6.2 on), else the 6th byte of
# the ELF header of the machine's own shell.
case $machine in
mips*el) ;;
mips*)
  { IFS= read -r order </sys/kernel/cpu_byteorder; } 2>/dev/null ||
    case $(od -An -tx1 -j5 -N1 /bin/sh 2>/dev/null) in *01*) order=little ;; *) order= ;; esac
  [ "$order" != little ] || machine=${machine}el ;;
esac
canon /run/current-system; running=$canon
canon /nix/var/nix/profiles/system; profsys=$canon
echo "ready $machine ${profsys:-$running} $running"
read_fields || exit 0
# gen_of LINK: $gen, the generation number of a link of $prof's
# (system-42-link: 42; not another profile's system-x-42-link), or ""
# (without sed: no process)
gen_of() {
  gen=
  _g=${1##*/}
  _g=${_g#"${prof##*/}"-}
  [ "${_g%-link}" != "$_g" ] || return 0
  _g=${_g%-link}
  case $_g in '' | *[!0-9]*) ;; *) gen=$_g ;; esac
}
paths=
while IFS= read -r p && [ "$p" != . ]; do paths="$paths $p"; done
missing=
# the closure of the system the profile holds already is valid (the profile
# is a GC root, and a valid path's references are valid): a redeploy asks
# nix nothing
if [ "$prof" = /nix/var/nix/profiles/system ]; then
  proftop=$profsys
else
  proftop=$(readlink -f "$prof" 2>/dev/null)
fi
[ -n "$top" ] && [ "$proftop" = "$top" ] && paths=
served=
if [ -n "$paths" ] && [ -n "$serve" ]; then
  # nix-store's own protocol (lib/serve.h): the deployer asks which paths
  # are here (the caches tried first with subst) and sends what is not, all
  # to one nix, then ends it with a command no nix knows (its complaint
  # about that is not shown). Ended otherwise, it failed (a full disk, an
  # untrusted user): the rest of the stream is left unread, and the
  # deployer, cut off, says why. Only "go" with the token goes on.
  # A token "daemon-...": the deployer talks to this host's nix-daemon
  # itself (lib/daemon.h), and no nix-store is started here.
  echo serve
  case $serve in
  daemon-*) ;;
  *)
    { err=$(nix-store --serve --write 2>&1 >&3 3>&-); } 3>&1
    case $err in
    *'unknown serve command'*)
      case $err in *'
'*) printf '%s\n' "$err" | grep -v 'unknown serve command' >&2 ;;
      esac ;;
    *) printf '%s\n' "$err" >&2; exit "$ST_COPY" ;;
    esac ;;
  esac
  echo served
  IFS= read -r go && [ "$go" = "go $serve" ] || exit 0
  paths='' served=yes
fi
if [ -n "$paths" ]; then
  # with subst, the caches are tried for the whole closure first: when they
  # serve all it lacks (or it lacks nothing) that one nix is the only one,
  # as each nix this host starts costs it tens of ms. Never a derivation:
  # realising one would build it here.
  fetched=
  if [ "$subst" = 1 ]; then
    outs='' drv=''
    for p in $paths; do
      case $p in *.drv) drv=yes ;; *) outs="$outs $p" ;; esac
    done
    [ -z "$outs" ] || ! nix-store --realise --keep-going $outs >/dev/null 2>&1 ||
      [ -n "$drv" ] || fetched=yes
  fi
  if [ -z "$fetched" ]; then
    missing=$(nix-store --check-validity --print-invalid $paths) || exit "$ST_QUERY"
  fi
fi
# with plan, what the target trusts: the deployer asks its caches
# (only the settings it reads, a line "nixconf NAME = VALUE" each: not the
# 40 kB of every setting with its description that --json prints; and
# nix-command enabled here, which a host's nix.conf need not do)
if [ "$plan" = 1 ] && [ -n "$missing" ]; then
  { nix --extra-experimental-features nix-command show-config 2>/dev/null ||
    nix --extra-experimental-features nix-command config show 2>/dev/null; } |
    sed -n -e 's/^substituters = /nixconf &/p' -e 's/^trusted-substituters = /nixconf &/p' \
      -e 's/^trusted-public-keys = /nixconf &/p' -e 's/^require-sigs = /nixconf &/p' \
      -e 's/^store = /nixconf &/p' -e 's/^system = /nixconf &/p' \
      -e 's/^extra-platforms = /nixconf &/p' -e 's/^builders = /nixconf &/p'
fi
while [ -z "$served" ]; do
  [ -z "$missing" ] || printf '%s\n' "$missing"
  echo .
  [ -n "$missing" ] || break
  IFS= read -r go || exit 0
  [ "$go" = fetch ] || break
# the paths its caches serve: fetched before the rest is sent, which
# may refer to them
  fetch=
  while IFS= read -r p && [ "$p" != . ]; do fetch="$fetch $p"; done
  nix-store --realise $fetch >&2 || echo "could not substitute all of it" >&2
  missing=$(nix-store --check-validity --print-invalid $paths) || exit "$ST_QUERY"
done
# "go" comes once the deployer's import of what was missing has succeeded
# (nix-store --import fails unless every path is registered): no second
# query. Nothing is activated from a path that is not there: the checks
# below and nix-env --set would stop.
if [ -n "$missing" ]; then
  [ "$go" = go ] || exit 0
fi
# rollback: the generation nix-env --rollback goes to (the newest before
# the current one) is the system checked below; the profile is switched to
# it with the others' profile, after the checks and the question
if [ "$op" = rollback ]; then
  gen_of "$(readlink "$prof" 2>/dev/null)"
  cur_gen=$gen prev_gen=
  set +f
  for l in "$prof"-*-link; do
    gen_of "$l"
    if [ -n "$gen" ] && [ -n "$cur_gen" ] && [ "$gen" -lt "$cur_gen" ] &&
       { [ -z "$prev_gen" ] || [ "$gen" -gt "$prev_gen" ]; }; then
      prev_gen=$gen
    fi
  done
  set -f
  [ -n "$prev_gen" ] ||
    { echo "no generation of $prof older than the current (${cur_gen:-none}) exists" >&2; exit "$ST_PROFILE"; }
  top=$(readlink -f "$prof-$prev_gen-link")
fi
stc=$top/bin/switch-to-configuration
if [ -z "$nocheck" ] && [ ! -f "$top/nixos-version" ]; then
  echo "$top does not look like a NixOS system (no nixos-version)" >&2; exit "$ST_NOT_NIXOS"
fi
if [ -n "$spec" ]; then
  stc=$top/specialisation/$spec/bin/switch-to-configuration
  [ -d "$top/specialisation/$spec" ] || {
    echo "specialisation '$spec' does not exist in $top" >&2
    # shellcheck disable=SC2012 # names of a store path's entries
    echo "available: $(ls "$top/specialisation" 2>/dev/null | tr '\n' ' ')" >&2; exit "$ST_NO_SPEC"; }
fi
if [ -n "$act" ] && [ ! -x "$stc" ]; then
  echo "$stc is missing" >&2; exit "$ST_NO_STC"
fi
if [ -z "$novalidate" ]; then
  if [ "$act" = boot ] || [ "$op" = set ]; then
    # init always; a container's system (boot.isContainer) has no kernel
    # and no initrd, and one may boot without an initrd
    # (boot.initrd.enable): an initrd without its kernel is what is broken
    need=init; [ ! -e "$top/initrd" ] || need="kernel init"
    for f in $need; do
      [ -e "$top/$f" ] || { echo "$top/$f is missing: the system would not boot" >&2; exit "$ST_MISSING"; }
    done
  fi
  if [ -r "$top/system" ]; then
    # (written without a newline: read says "end of file", sys is set)
    IFS= read -r sys <"$top/system" || :
    m=$machine
    # uname's names where Nix's differ (lib/platform.c has the same)
    case $m in
    arm64) m=aarch64 ;; armv8l) m=armv7l ;; amd64) m=x86_64 ;;
    ppc64le) m=powerpc64le ;; ppc64) m=powerpc64 ;; ppc) m=powerpc ;;
    esac
    case $sys in
    "$m"-*) ;;
    i686-*) [ "$m" = x86_64 ] || { echo "$sys $m" >&2; exit "$ST_ARCH"; } ;;
    # a 32-bit MIPS system on its 64-bit kernel, as i686 on x86_64
    mipsel-* | mips-*) c=${sys%%-*}; [ "$m" = "mips64${c#mips}" ] ||
      { echo "$sys $m" >&2; exit "$ST_ARCH"; } ;;
    # 32-bit ARM: an armv7l CPU runs armv6l and armv5tel code too; an aarch64
    # one only if it runs 32-bit code at all (many do not), which the system
    # it runs now shows when that is a 32-bit ARM one
    armv6l-* | armv5tel-* | armv7l-*)
      r=; [ -z "$running" ] || { IFS= read -r r <"$running/system"; } 2>/dev/null || :
      case $m:$r in
      armv7l:*) ;;
      aarch64:armv7l-* | aarch64:armv6l-* | aarch64:armv5tel-*) ;;
      *) echo "$sys $m" >&2; exit "$ST_ARCH" ;;
      esac ;;
    *) echo "$sys $m" >&2; exit "$ST_ARCH" ;;
    esac
  fi
fi
# the diff's two closures with their sizes (2: the deployer makes it from
# its own store), then maybe a question
if [ "$diff" = 2 ]; then
  echo diff-local
elif [ "$diff" = 1 ]; then
  cur=/run/current-system; [ "$act" != boot ] || cur=$prof
  # both closures, and their sizes in one query (each nix the target
  # starts costs it tens of ms); the same system again is listed once
  old=$(readlink -f "$cur" 2>/dev/null)
  co=; [ ! -e "$old" ] || co=$(nix-store -qR "$old") || co=
  cn=$co
  if [ "$old" != "$top" ]; then
    cn=; [ ! -e "$top" ] || cn=$(nix-store -qR "$top") || cn=
  fi
  both=$co; [ "$old" = "$top" ] || both="$co $cn"
  sizes=
  if [ -n "$(printf '%s' $both)" ]; then
    sizes=$(nix-store -q --size $both) || { sizes=''; co=''; cn=''; }
  fi
  set -- $sizes
  echo diff-old
  for p in $co; do printf '%s\t%s\n' "$p" "$1"; shift; done
  [ "$old" != "$top" ] || set -- $sizes
  echo diff-new
  for p in $cn; do printf '%s\t%s\n' "$p" "$1"; shift; done
  echo diff-end
fi
if [ "$ask" = 1 ]; then
  # shellcheck disable=SC2015 # no answer, or another: declined
  IFS= read -r answer && [ "$answer" = activate ] || { echo "status declined"; exit 0; }
fi
case $keys in pre | all) keys_receive || exit $? ;; esac
gen_of "$(readlink "$prof" 2>/dev/null)"
old_gen=$gen
old_sys=$running
# kept as text: the watchdog, another process, runs it too. True only if
# the profile and the running system went back (a failed undo is said so:
# the target is then neither system for sure)
# shellcheck disable=SC2016,SC2089
undo_script='u=0
  [ "$op" = keep ] || [ -z "$old_gen" ] ||
    nix-env -p "$prof" --switch-generation "$old_gen" >&2 || u=1
  if [ -n "$old_sys" ] && [ -x "$old_sys/bin/switch-to-configuration" ]; then
    if [ "$op" = keep ]; then a=test; else a=switch; fi
    env -i PATH="$PATH" "$old_sys/bin/switch-to-configuration" "$a" >&2 || u=1
  else
    echo "no previous system to go back to" >&2; u=1
  fi
  [ "$u" = 0 ]'
# from here on the profile and the running system may change: a deployer
# that loses us after this line says so, not that it could not reach us.
# (Said before the watchdog is armed: from then on until the activation's
# relay nothing is written to a deployer that may be gone, which would end
# this shell with the watchdog armed.)
echo activating
if [ -n "$confirm" ]; then
  # The token is the login user's, so that an unprivileged confirmation can
  # remove it, in a fresh directory only that user may write: no other user
  # of this machine can bring it back once it is gone (and roll back a good
  # system). The watchdog outlives this session, and counts the token only
  # in that directory, owned by that user.
  uid=${SUDO_UID:-$(id -u)}
  tdir=$(mktemp -d "${TMPDIR:-/tmp}/nrr-confirm.XXXXXX") || exit "$ST_TOKEN"
  token=$tdir/token
  { : >"$token" && chown "$uid" "$tdir" "$token" && chmod 0700 "$tdir"; } ||
    { rm -rf "$tdir"; exit "$ST_TOKEN"; }
  echo "token $token"
  # shellcheck disable=SC2090
  export prof op old_gen old_sys token tdir uid confirm undo_script PATH
  # shellcheck disable=SC2016
  setsid sh -c 'sleep "$confirm"
    if [ -f "$token" ] && [ ! -L "$tdir" ] && [ ! -L "$token" ] &&
       [ "$(stat -c %u "$tdir")" = "$uid" ] && [ "$(stat -c %u "$token")" = "$uid" ]; then
      rm -f "$token"; rmdir "$tdir"; eval "$undo_script"
    else
      rmdir "$tdir"
    fi' </dev/null >/dev/null 2>&1 9<&- &
fi
# disarm: the watchdog then finds no token and changes nothing, as after a
# confirmation. Every way out between arming it and activation takes it:
# armed, it would later run the old system's switch-to-configuration over
# whatever was deployed since.
disarm() { [ -z "$confirm" ] || { rm -f "$token"; rmdir "$tdir"; } 2>/dev/null; }
# set_profile: what `nix-env -p "$prof" --set "$top"` does (nix's
# createGeneration and switchLink), without starting a nix, which costs a
# small board tens of milliseconds or more: the newest generation again if
# it holds $top, else a new one after it, then the profile's link replaced
# by a rename. A link made while nix's garbage collector runs could come
# too late for it (nix-env tells it through its socket), so it is made
# only under a shared lock on nix's gc.lock, which a collection holds
# exclusively while it runs and waits for before it starts; under it $top
# is checked to be still there. Returns false (nothing switched yet) when
# that cannot be done so: a collection running, no flock, a profile outside
# nix's profiles directory (its root would be elsewhere), a failed step;
# then nix-env does it (and adds a redundant gcroots/auto link to it).
new_gen=
set_profile() {
  case $prof in /nix/var/nix/profiles/*) ;; *) false; return ;; esac
  # (nix makes gcroots/profiles a root of its profiles; -ef: every sh a
  # NixOS may have knows it)
  # shellcheck disable=SC3013
  [ -d "${prof%/*}" ] && [ /nix/var/nix/gcroots/profiles -ef /nix/var/nix/profiles ] &&
    command -v flock >/dev/null 2>&1 || return
  _gcl=/nix/var/nix/gc.lock
  [ -e "$_gcl" ] || (umask 077; : >>"$_gcl") 2>/dev/null
  # (command: a failed redirection of exec would end the shell)
  [ -r "$_gcl" ] || return
  command exec 7<"$_gcl" || return
  if ! flock -s -n 7 || [ ! -e "$top" ]; then exec 7<&-; false; return; fi
  _n=$newest
  if [ -z "$_n" ] || { [ "$old_gen" = "$_n" ] && [ "$proftop" != "$top" ]; } ||
     { [ "$old_gen" != "$_n" ] && [ "$(readlink "$prof-$_n-link")" != "$top" ]; }; then
    _n=$((${newest:-0} + 1))
    ln -s "$top" "$prof-$_n-link" || { exec 7<&-; false; return; }
  fi
  _tmp=${prof%/*}/.$$_${prof##*/}
  [ ! -L "$_tmp" ] || rm -f "$_tmp"
  if ! ln -s "${prof##*/}-$_n-link" "$_tmp" || ! mv -fT "$_tmp" "$prof"; then
    rm -f "$_tmp"; exec 7<&-; false; return
  fi
  exec 7<&-
  new_gen=$_n
}
if [ "$op" = set ]; then
  # nix-env --set makes no generation when the newest one holds this system
  # and switches the profile to it: nothing to do when the profile is there
  # already (a redeploy spares nix-env's start)
  newest=
  set +f
  for l in "$prof"-*-link; do
    gen_of "$l"
    [ -z "$gen" ] || { [ -n "$newest" ] && [ "$gen" -le "$newest" ]; } || newest=$gen
  done
  set -f
  if [ -z "$newest" ] || [ "$old_gen" != "$newest" ] || [ "$proftop" != "$top" ]; then
    set_profile ||
      { mkdir -p "${prof%/*}" && nix-env -p "$prof" --set "$top" >&2; } ||
      { disarm; exit "$ST_PROFILE"; }
  fi
elif [ "$op" = rollback ]; then
  nix-env -p "$prof" --switch-generation "$prev_gen" >&2 || { disarm; exit "$ST_PROFILE"; }
fi
[ -n "$act" ] || { echo "status 0"; exec cat >/dev/null; }
run_stc() {
  if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 &&
     [ -z "$dirty" ]; then
    env -i PATH="$PATH" LOCALE_ARCHIVE="${LOCALE_ARCHIVE-}" \
      NIXOS_NO_CHECK="${NIXOS_NO_CHECK-}" NIXOS_INSTALL_BOOTLOADER="$ib" \
      systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER -E NIXOS_NO_CHECK \
      --collect --no-ask-password --pipe --quiet --service-type=exec \
      --unit=nixos-rebuild-switch-to-configuration --wait "$stc" "$act"
  else
    env -i PATH="$PATH" LOCALE_ARCHIVE="${LOCALE_ARCHIVE-}" \
      NIXOS_NO_CHECK="${NIXOS_NO_CHECK-}" NIXOS_INSTALL_BOOTLOADER="$ib" \
      "$stc" "$act"
  fi
}
# its output is the user's to read, on stderr: stdout is ours. It
# goes through a relay that keeps reading when our stderr is gone
# (Ctrl-C, a dropped link): an activation, once begun, runs to its
# end instead of dying of SIGPIPE half-way; the lock is held till then
s=$( { { run_stc 9<&- 3>&- 2>&1; echo $? >&3; } |
  { trap '' PIPE; cat >&2 || exec cat >/dev/null; }; } 3>&1 )
if [ "$s" != 0 ] && [ -n "$confirm" ]; then
  rm -f "$token"; rmdir "$tdir"
  if eval "$undo_script"; then s=$ST_ROLLED_BACK; else s=$ST_UNDO_FAILED; fi
fi
if [ -n "$keys" ]; then
  keys_fixup
  # a key that fails is reported by keys_receive; the status stays the
  # activation's
  case $keys in post | all) [ "$s" != 0 ] || keys_receive || : ;; esac
fi
# (known when set_profile made it: no readlink)
if [ -z "$new_gen" ]; then
  gen_of "$(readlink "$prof" 2>/dev/null)"
  new_gen=$gen
fi
echo "generation ${old_gen:--} ${new_gen:--}"
echo "status $s"
# keep the lock until the deployer hangs up (after its confirmation; a
# builtin loop: it sends nothing more, and a cat would be a process)
while IFS= read -r _; do :; done
