#!/bin/sh
# On a cache host (--cache-host): writes the closures of the paths given
# after URL and KEY (already in this host's store) into the binary cache at
# URL, usually file:///DIR that a web server serves, signed with the secret
# key file KEY (empty: this host's first secret-key-files). With no path,
# only says the key. Prints "key NAME:PUBLIC-KEY" on success.
# Statuses: lib/scripts/pushcache.def (nix copy's message on stderr).
PATH=$PATH:/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin
url=$1 key=$2
shift 2
if [ -z "$key" ]; then
	# show-config (Nix 2.8) is config show from 2.20
	key=$({ nix --extra-experimental-features nix-command show-config 2>/dev/null ||
		nix --extra-experimental-features nix-command config show 2>/dev/null; } |
		sed -n 's/^secret-key-files = *//p' | cut -d' ' -f1)
	if [ -z "$key" ]; then
		echo "no signing key: no --sign-key and no secret-key-files in its nix.conf" >&2
		exit "$ST_NOKEY"
	fi
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
