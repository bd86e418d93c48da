#!/usr/bin/env bats
# --reboot on a deploy (switch and boot, with a target host or --on): after activation the
# target is rebooted, waited for with a time limit (--reboot-timeout) and proven to have come
# back (a new boot id) running the new system. A host that never comes back is exit 15 within
# the limit, not a hang. Hosts reboot as tests/lib/fleet-reboot says: NAME:reboot comes back,
# NAME:noreturn does not (d2 and d3 stay down once rebooted).

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start d1:reboot d2:noreturn d3:noreturn
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" magic
	export A=$BATS_FILE_TMPDIR/hive
	mkdir -p "$A"
	cp -RL "$BATS_TEST_DIRNAME/hive/nixpkgs" "$A/nixpkgs"
	cat >"$A/hive.nix" <<-'EOF2'
		{
		  meta.nixpkgs = import ./nixpkgs { system = "x86_64-linux"; };
		  defaults = { name, ... }: { networking.hostName = name; };
		  back = {
		    deployment.targetHost = "d1";
		    # uploaded once the host is back; the pre-activation one again (a boot empties
		    # /run/keys)
		    deployment.keys.late = { text = "LATE-KEY"; uploadAt = "post-activation"; };
		    deployment.keys.early.text = "EARLY-KEY";
		  };
		  gone = { deployment.targetHost = "d2"; };
		}
	EOF2
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

boot_id() { fleet_exec "$1" cat /proc/sys/kernel/random/boot_id; }

@test "--reboot is only for switch and boot, and --reboot-timeout only with it" {
	run -2 nrr test --flake "$F#t1" --target-host d1 --reboot
	assert_output --partial "error: --reboot is only for"
	run -2 nrr switch --flake "$F#t1" --target-host d1 --reboot-timeout 5
	assert_output --partial "error: --reboot-timeout goes with --reboot"
	run -2 nrr switch --flake "$F#t1" --target-host d1 --reboot --reboot-timeout soon
	assert_output --partial "error: argument --reboot-timeout: expected seconds (1-86400), got 'soon'"
	run -2 nrr switch --flake "$F#t1" --reboot
	assert_output --partial "error: --reboot needs --target-host"
}

@test "switch --reboot: a new boot id, and the new system running after it" {
	before=$(boot_id d1)
	run -0 --separate-stderr nrr switch --flake "$F#t1" --target-host d1 --reboot --reboot-timeout 60
	new=${lines[-1]}
	assert_not_equal "$(boot_id d1)" "$before"
	assert_equal "$(fleet_exec d1 readlink -f /run/current-system)" "$new"
	[[ $stderr == *"rebooted: 'd1' is back (boot id $(boot_id d1)) running $new"* ]]
}

@test "apply test --reboot is refused: only switch and boot reboot" {
	cd "$A"
	run -2 nrr apply test --on back --reboot
	assert_output --partial "error: apply test --reboot: only switch and boot reboot"
}

@test "apply boot --reboot: the node that comes back runs its new system; the one that does not fails alone (exit 12)" {
	cd "$A"
	before=$(boot_id d1)
	run -12 fleet_local timeout -k 5 300 "$NRR" apply boot --on back,gone --reboot --reboot-timeout 5
	assert_output --partial "back  boot     done"
	assert_output --partial "gone  boot     failed"
	assert_output --partial "gone  boot     failed"
	assert_line "error: 'root@d2' did not come back within 5 s after the reboot"
	assert_output --partial "error: 1 of 2 hosts failed, 0 skipped"
	assert_not_equal "$(boot_id d1)" "$before"
	sys=$(fleet_local "$NRR" apply build --on back 2>/dev/null | awk '{ print $2 }')
	assert_equal "$(fleet_exec d1 readlink -f /run/current-system)" "$sys"
	# its keys went in after the reboot
	assert_equal "$(fleet_exec d1 cat /run/keys/early /run/keys/late)" EARLY-KEYLATE-KEY
}

@test "a host that never comes back: exit 15 naming it, within the time limit" {
	run -15 fleet_local timeout -k 5 120 "$NRR" switch --flake "$F#t1" --target-host d3 --reboot --reboot-timeout 5
	assert_line "error: 'd3' did not come back within 5 s after the reboot"
}
