# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of the package every fake system links as `sw`.
set -eu
mkdir -p "$out/bin"
printf '#!/bin/sh\necho "hello from nrr-sw %s"\n' "$tag" > "$out/bin/nrr-hello"
chmod +x "$out/bin/nrr-hello"
