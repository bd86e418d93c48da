#!/usr/bin/env bats
# --reboot (lib/reboot.c), on real test hosts through tests/test-tool remote-reboot: the host
# is rebooted in one remote command, waited for with a time limit over new connections, and
# proven to have come back (a new boot id) on the expected system; a host that never comes
# back is a named failure (status 15) within the limit, not a hang. The fleet's hosts reboot
# as fleet-reboot says: NAME:reboot comes back, NAME:noreturn does not, others refuse.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start r1:reboot r2:noreturn r3
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

# Gives host $1 a system profile pointing to a new store path (named $2); prints the path.
set_profile() {
	local sys
	sys=$(fleet_exec "$1" sh -c 'mkdir -p /tmp/add && echo "$RANDOM$$" >"/tmp/add/$1" &&
		nix-store --add "/tmp/add/$1"' sh "$2") || return 1
	fleet_exec "$1" nix-env -p /nix/var/nix/profiles/system --set "$sys" >/dev/null 2>&1 || return 1
	echo "$sys"
}

boot_id() { fleet_exec "$1" cat /proc/sys/kernel/random/boot_id; }

@test "a host that comes back: a new boot id, the new system, and its master again" {
	sys=$(set_profile r1 new-system)
	before=$(boot_id r1)
	fleet_reset_counts r1
	run -0 fleet_local timeout -k 5 60 "$TT" remote-reboot r1 30 "$sys"
	after=$(boot_id r1)
	assert_not_equal "$after" "$before"
	assert_line "back: new boot id $after, system $sys"
	assert_line "master ok"
	assert_equal "$(fleet_exec r1 readlink /run/current-system)" "$sys"
	# the reboot itself was the first remote command
	assert_equal "$(head -n 1 "$FLEET_DIR/r1/commands.log" | grep -c 'reboot')" 1
}

@test "a host that comes back on another system than the new one: status 8, naming both" {
	sys=$(set_profile r1 booted-instead)
	run -8 fleet_local timeout -k 5 60 "$TT" remote-reboot r1 30 /nix/store/00000000000000000000000000000000-expected
	assert_line "error(8): 'r1' came back running $sys, not the new system /nix/store/00000000000000000000000000000000-expected"
}

@test "a host that cannot reboot is not waited for" {
	before=$(boot_id r3)
	run -1 fleet_local timeout -k 5 60 "$TT" remote-reboot r3 30
	assert_line "error(1): the reboot of 'r3' failed: reboot: test host 'r3' cannot reboot (start it as NAME:reboot); not rebooted"
	assert_equal "$(boot_id r3)" "$before"
}

@test "a host that never comes back: status 15 within the limit, not a hang" {
	# (this test leaves r2 down: last in the file)
	run -15 fleet_local timeout -k 5 30 "$TT" remote-reboot r2 3
	assert_line "error(15): 'r2' did not come back within 3 s after the reboot"
	assert_line --partial "hint: the last attempt: ssh: connect to host $(fleet_addr r2) port 22: Connection refused;"
}
