#!/bin/sh
# Installs the Debian packages that building, `make demo` and `make check`
# need, when they are missing and we are root. Otherwise says what to do.
set -eu
pkgs="build-essential pkg-config libcurl4-openssl-dev libcjson-dev libsodium-dev
nix-bin openssh-server openssh-client bats bats-support bats-assert mandoc zsh
bash-completion fish sudo iproute2 util-linux procps python3 openssl git bsdutils coreutils
nginx jq clang libclang-rt-14-dev"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing="$missing $p"
done
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ]; then
	echo "error: missing Debian packages:$missing" >&2
	echo "hint: run 'make deps' as root, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# the test hosts run their own sshd; the package's own must not hold port 22
if command -v service >/dev/null 2>&1; then service ssh stop >/dev/null 2>&1 || true; fi
