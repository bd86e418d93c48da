# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of a benchmark system toplevel, shaped like the test systems (tests/flake): the files
# tools look for in a real NixOS system (kernel, initrd, init, kernel-params,
# init-interface-version, nixos-version, system, sw, etc), small and fake, and a
# switch-to-configuration that records its calls in /run/nrr-activations and, for switch and
# test, points /run/current-system at this system. Kept apart from the test flake's builder,
# whose attributes change with the tests.
set -eu
mkdir -p "$out/bin" "$out/specialisation"
printf '25.05.%s.%s' "$label" "$tag" > "$out/nixos-version"
printf '%s' "$hostSystem" > "$out/system"
printf 'fake kernel of %s\n' "$label" > "$out/kernel"
printf 'fake initrd of %s\n' "$label" > "$out/initrd"
printf '#!/bin/sh\necho "fake init of %s"\n' "$label" > "$out/init"
chmod +x "$out/init"
printf 'init=%s/init loglevel=4' "$out" > "$out/kernel-params"
printf 'systemd' > "$out/init-interface-version"
ln -s "$sw" "$out/sw"
ln -s "$etc/etc" "$out/etc"
cat > "$out/bin/switch-to-configuration" <<STC
#!/bin/sh
# Fake switch-to-configuration of benchmark system $label: records the call, then does what the
# action says to /run/current-system.
action=\${1-}
self=\$(readlink -f "\$0")
printf '%s %s NIXOS_INSTALL_BOOTLOADER=%s uid=%s config=%s\n' \\
	"\$action" "\$self" "\${NIXOS_INSTALL_BOOTLOADER-}" "\$(id -u)" "$label" >> /run/nrr-activations
case \$action in
switch | test) ln -sfn "\${self%/bin/switch-to-configuration}" /run/current-system ;;
boot | dry-activate) ;;
*) echo "Usage: \$0 [switch|boot|test|dry-activate]" >&2; exit 1 ;;
esac
STC
chmod +x "$out/bin/switch-to-configuration"
