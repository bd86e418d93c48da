#!/bin/sh
# On a cache host (--cache-host): writes the closures of the paths given
# after URL and KEY into the binary cache at URL, usually file:///DIR that a
# web server serves, signed with the secret key file KEY (empty: this host's
# first secret-key-files). With --import before the paths, it first
# imports what export.sh sends on stdin (what this host lacked of them):
# the stream and the writing in one session, the key looked up meanwhile.
# Else they are in this host's store already. With no path, only says the
# key. Prints "key NAME:PUBLIC-KEY" on success.
# Statuses: lib/scripts/pushcache.def (nix's message on stderr).
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
url=$1 key=$2
shift 2
import=
if [ "${1-}" = --import ]; then
	import=1
	shift
fi
# This host's first secret-key-files, on stdout
configured_key() {
	# show-config (Nix 2.8) is config show from 2.20
	{ nix --extra-experimental-features nix-command show-config 2>/dev/null ||
		nix --extra-experimental-features nix-command config show 2>/dev/null; } |
		sed -n 's/^secret-key-files = *//p' | cut -d' ' -f1
}
if [ -n "$import" ]; then
	found=
	if [ -z "$key" ]; then
		found=$(mktemp) || exit "$ST_IMPORT"
		configured_key </dev/null >"$found" &
	fi
	if ! nix-store --import >/dev/null; then
		[ -z "$found" ] || { wait; rm -f "$found"; }
		exit "$ST_IMPORT"
	fi
	if [ -n "$found" ]; then
		wait
		key=$(cat "$found")
		rm -f "$found"
	fi
elif [ -z "$key" ]; then
	key=$(configured_key)
fi
if [ -z "$key" ]; then
	echo "no signing key: no --sign-key and no secret-key-files in its nix.conf" >&2
	exit "$ST_NOKEY"
fi
if [ ! -r "$key" ]; then
	echo "cannot read the signing key '$key'" >&2
	exit "$ST_NOKEY"
fi
# a secret key is NAME:base64(64 bytes), the public key its last 32 bytes
name=$(cut -d: -f1 <"$key")
pub=$(cut -d: -f2 <"$key" | base64 -d | tail -c 32 | base64 | tr -d '\n')
if [ -z "$name" ] || [ -z "$pub" ]; then
	echo "the signing key '$key' is not NAME:KEY" >&2
	exit "$ST_NOKEY"
fi
if [ $# -gt 0 ]; then
	case $url in *\?*) sep='&' ;; *) sep='?' ;; esac
	nix --extra-experimental-features nix-command copy --to "$url${sep}secret-key=$key" "$@" >&2 ||
		exit "$ST_COPY"
fi
echo "key $name:$pub"
