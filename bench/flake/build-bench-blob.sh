# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of one benchmark payload file: $size bytes of "$seed" repeated.
set -eu
yes "$seed" | head -c "$size" > "$out"
