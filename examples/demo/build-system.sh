# A system toplevel with the files nixos-rebuild expects of a real one.
set -eu
mkdir -p "$out/bin"
printf '25.05.demo' > "$out/nixos-version"
printf 'x86_64-linux' > "$out/system"
printf '%s' "$message" > "$out/motd"
for f in kernel initrd init kernel-params init-interface-version; do : > "$out/$f"; done
ln -s "$sw" "$out/sw"
cat > "$out/bin/switch-to-configuration" <<'STC'
#!/bin/sh
# Records the call where the demo can show it, as activation would log it.
self=$(readlink -f "$0")
echo "$(date '+%H:%M:%S') switch-to-configuration $1 of ${self%/bin/*}" >> /run/nrr-activations
case $1 in switch|test) ln -sfn "${self%/bin/*}" /run/current-system ;; esac
STC
chmod +x "$out/bin/switch-to-configuration"
