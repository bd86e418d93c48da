#!/bin/sh
# Makes this machine ready for building, `make demo` and `make check`: installs the Debian
# packages they need and makes the two empty mount points the test hosts' namespaces mount
# their own stores on (/nix, /etc/nix; Debian's nix-bin makes neither). As root it does what
# is missing and says what it did; otherwise it says exactly what is missing and fails.
set -eu
pkgs="build-essential pkg-config libcurl4-openssl-dev libcjson-dev libsodium-dev
nix-bin openssh-server openssh-client bats bats-support bats-assert mandoc zsh
bash-completion fish sudo iproute2 util-linux procps python3 openssl git bsdutils coreutils
nginx jq clang libclang-rt-14-dev valgrind shellcheck"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing="$missing $p"
done
mounts=
for m in /nix /etc/nix; do
	[ -d "$m" ] || mounts="$mounts $m"
done
[ -n "$missing$mounts" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	[ -z "$missing" ] || echo "error: missing Debian packages:$missing" >&2
	[ -z "$mounts" ] || echo "error: missing mount points (empty directories):$mounts" >&2
	echo "hint: run 'make deps' as root, or: sudo apt-get install$missing; sudo mkdir -p$mounts" >&2
	exit 1
fi
if [ -n "$missing" ]; then
	echo "deps: installing Debian packages:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	# the test hosts run their own sshd; the package's own must not hold port 22
	if command -v service >/dev/null 2>&1; then service ssh stop >/dev/null 2>&1 || true; fi
fi
if [ -n "$mounts" ]; then
	# Only mount points: every test host and the demo bind-mount a store of their own there,
	# in a private mount namespace; nothing is ever written to these directories themselves.
	# shellcheck disable=SC2086
	mkdir -p $mounts
	echo "deps: made empty mount points:$mounts (the test hosts mount their own stores there)" >&2
fi
