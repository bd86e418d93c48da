# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of a fake NixOS system toplevel. It holds the files that tools look for in a real
# one (kernel, initrd, init, kernel-params, init-interface-version, nixos-version, system, sw,
# specialisation/), small and fake, and a switch-to-configuration that records its calls.
set -eu
if [ -n "${failBuild-}" ]; then
	echo "fake build failure of $label: the compiler said no" >&2
	exit 1
fi
case $sleepSeconds in
0) ;;
/*)
	# A gate: the build lasts until the test makes this file (at most 60 s). Builds
	# here are not sandboxed: the builder sees the test's directory.
	i=0
	while [ ! -e "$sleepSeconds" ] && [ "$i" -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	;;
*)
	# A slow build, for tests that interrupt one; `sleep` is the builder's child.
	sleep "$sleepSeconds"
	;;
esac
mkdir -p "$out/bin" "$out/specialisation"
printf '25.05.%s.%s' "$label" "$tag" > "$out/nixos-version"
printf '%s' "$hostSystem" > "$out/system"
# a container (boot.isContainer) has neither: it boots through its host's
if [ -z "${container-}" ]; then
	printf 'fake kernel of %s\n' "$label" > "$out/kernel"
	printf 'fake initrd of %s\n' "$label" > "$out/initrd"
fi
printf '#!/bin/sh\necho "fake init of %s"\n' "$label" > "$out/init"
chmod +x "$out/init"
printf 'init=%s/init loglevel=4' "$out" > "$out/kernel-params"
printf 'systemd' > "$out/init-interface-version"
ln -s "$sw" "$out/sw"
if [ -n "${extraPackages-}" ]; then
	mkdir -p "$out/packages"
	for p in $extraPackages; do ln -s "$p" "$out/packages/"; done
fi
ln -s "$etc/etc" "$out/etc"
# the stand-in nixpkgs's users.users (tests/hive/nixpkgs), for switch-to-configuration to create
if [ -n "${createUsers-}" ]; then
	printf '%s\n' $createUsers > "$out/users"
fi
if [ -n "$hasStc" ]; then
	sed -e "s|@label@|$label|g" -e "s|@exitStatus@|$exitStatus|g" -e "s|@cutoff@|$cutoff|g" \
		-e "s|@activationSleep@|$activationSleep|g" \
		"$stcTemplate" > "$out/bin/switch-to-configuration"
	chmod +x "$out/bin/switch-to-configuration"
fi
for spec in $specialisations; do
	ln -s "${spec#*=}" "$out/specialisation/${spec%%=*}"
done
