#!/usr/bin/env bats
# One deploy at a time per target: a second run fails at once, naming the
# first; the lock goes with the first run, however it ends.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" lock
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
	FLEET_BG_PID=
}

teardown() {
	# a deploy a failed test left in the background must not hold the lock
	[ -z "$FLEET_BG_PID" ] || { kill -KILL "$FLEET_BG_PID" 2>/dev/null; wait "$FLEET_BG_PID" 2>/dev/null; } || true
}

# Starts a deploy of the slow configuration in the background and waits
# until its build runs (so it holds t1's lock).
start_slow_deploy() {
	retag "slow-$RANDOM"
	fleet_local_bg "$BATS_TEST_TMPDIR/first.log" "$NRR" switch --flake "$F#slow" --target-host t1 --build-host b1
	for _ in $(seq 1 200); do
		fleet_ps b1 | grep -q 'sleep 30' && return 0
		sleep 0.1
	done
	cat "$BATS_TEST_TMPDIR/first.log"
	return 1
}

@test "a second deploy to a busy target fails at once naming the holder (exit 10), changing nothing" {
	start_slow_deploy
	before=$(profile_of t1)
	run nrr switch --flake "$F#t1" --target-host t1
	assert_failure 10
	assert_output --regexp "error: 't1' is being deployed to by .*@.* \(pid [0-9]+\) since [0-9-]+ [0-9:]+"
	[ "$(profile_of t1)" = "$before" ]
	kill -INT "$FLEET_BG_PID"
	wait "$FLEET_BG_PID" || true
}

@test "a deploy with --build-host to a busy target builds meanwhile, then fails naming the holder; the target gets nothing" {
	start_slow_deploy
	before=$(profile_of t1)
	retag "second-$RANDOM"
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --build-host b1
	assert_failure 10
	[[ $stderr =~ "error: 't1' is being deployed to by ".*@.*" (pid "[0-9]+") since " ]]
	[ "$(profile_of t1)" = "$before" ]
	# the lock was asked for with the build: the build ran (the answer read after it)
	top=$(fleet_local nix eval --raw "$F#nixosConfigurations.t1.config.system.build.toplevel.outPath")
	fleet_exec b1 nix-store --check-validity "$top"
	run fleet_exec t1 nix-store --check-validity "$top"
	assert_failure
	kill -INT "$FLEET_BG_PID"
	wait "$FLEET_BG_PID" || true
}

@test "the lock goes with a killed run: the next deploy proceeds" {
	start_slow_deploy
	kill -KILL "$FLEET_BG_PID"
	wait "$FLEET_BG_PID" || true
	retag after-kill
	for _ in $(seq 1 50); do
		run nrr switch --flake "$F#t1" --target-host t1
		[ "$status" != 10 ] && break
		sleep 0.2
	done
	assert_success
}

@test "deploys one after the other both succeed" {
	retag one
	run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	retag two
	run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	# and at once, five times: the run hangs up without waiting for the
	# script's end, which still comes before the next run's handshake
	for i in 1 2 3 4 5; do
		run nrr switch --flake "$F#t1" --target-host t1
		assert_success
	done
	# the script ended: nothing of the conversation holds the lock
	gone_from t1 'ST_BUSY'
}
