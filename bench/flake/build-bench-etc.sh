# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of a benchmark system's /etc: a second dependency, which itself refers to `sw`.
set -eu
mkdir -p "$out/etc"
printf '%s\n' "$label" > "$out/etc/hostname"
ln -s "$sw" "$out/etc/sw"
