# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of a benchmark system's `sw`: a program, and a link to each payload file, so that
# the system's closure holds them all.
set -eu
mkdir -p "$out/bin" "$out/share/blobs"
printf '#!/bin/sh\necho "hello from bench sw %s"\n' "$tag" > "$out/bin/nrr-hello"
chmod +x "$out/bin/nrr-hello"
i=0
for b in $blobs; do
	ln -s "$b" "$out/share/blobs/$i"
	i=$((i + 1))
done
