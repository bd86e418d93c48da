#!/usr/bin/env bats
# colmena's replaceUnknownProfiles = false (lib/profileguard.c), on a real test host through
# tests/test-tool remote-profile-guard: the system the target runs (its profile, or else
# /run/current-system, as the probe reports it) must be known to this machine's store, or the
# deploy is refused (status 7, nothing changed) unless forced.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start g1
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
}

# Adds a file named $2 holding $3 to the store of $1 (a host, or "local"); prints its path.
add_system() {
	if [ "$1" = local ]; then
		mkdir -p "$BATS_TEST_TMPDIR/add" && printf '%s\n' "$3" >"$BATS_TEST_TMPDIR/add/$2"
		fleet_local nix-store --add "$BATS_TEST_TMPDIR/add/$2"
	else
		fleet_exec "$1" sh -c 'mkdir -p /tmp/add && printf "%s\n" "$2" >"/tmp/add/$1" &&
			nix-store --add "/tmp/add/$1"' sh "$2" "$3"
	fi
}

@test "a host with no system yet has nothing to replace" {
	run -0 fleet_local "$TT" remote-profile-guard g1
	assert_output $'system=\nok'
}

@test "a system this machine does not know is kept, unless forced" {
	sys=$(add_system g1 system-of-someone-else "$RANDOM")
	fleet_exec g1 nix-env -p /nix/var/nix/profiles/system --set "$sys"
	run -7 fleet_local "$TT" remote-profile-guard g1
	assert_line "system=$sys"
	assert_line "error(7): 'g1' runs $sys, which this machine does not know, and replaceUnknownProfiles is false"
	assert_line "hint: someone else may have deployed it; nothing was changed; --force-replace-unknown-profiles replaces it"
	run -0 fleet_local "$TT" remote-profile-guard g1 force
	assert_line "warning: 'g1' ran $sys, which this machine does not know; replacing it (--force-replace-unknown-profiles)"
	assert_line ok
}

@test "a system this machine has (as after its own deploy) may be replaced" {
	content=known-$RANDOM
	sys=$(add_system g1 known-system "$content")
	assert_equal "$(add_system local known-system "$content")" "$sys"
	fleet_exec g1 nix-env -p /nix/var/nix/profiles/system --set "$sys"
	run -0 fleet_local "$TT" remote-profile-guard g1
	assert_output "system=$sys
ok"
}

@test "without a profile, /run/current-system is what is asked about" {
	fleet_exec g1 sh -c 'rm -f /nix/var/nix/profiles/system /nix/var/nix/profiles/system-*-link'
	sys=$(add_system g1 booted-system "$RANDOM")
	fleet_exec g1 ln -sfn "$sys" /run/current-system
	run -7 fleet_local "$TT" remote-profile-guard g1
	assert_line "system=$sys"
}
