# shellcheck shell=sh disable=SC2154 # $out is the derivation's
# Builder of the package of the `big` configuration that tests/faults.bats adds to its own copy of
# the test flake: 32 MiB that do not compress, so that copying the system takes a while (over a
# slow link) and does not fit a small disk.
set -eu
mkdir -p "$out"
head -c 33554432 /dev/urandom >"$out/big"
