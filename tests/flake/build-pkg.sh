# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of a fake package of the `pkgs` configuration: a file whose size grows with the
# length of the package's name, so that sizes differ between versions.
set -eu
mkdir -p "$out/bin"
i=0
while [ $i -lt ${#name} ]; do
	printf '%0512d\n' 0 >> "$out/bin/data"
	i=$((i + 1))
done
