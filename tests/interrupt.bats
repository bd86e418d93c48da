#!/usr/bin/env bats
# Ctrl-C and SIGTERM: remote work stops too (ssh without a tty does not
# forward signals), masters close, the target is left as it was.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" intr
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || return
}

teardown() {
	stop_nrr_bg
}

@test "SIGINT during a remote build stops the builder on the build host (exit 130)" {
	printf 'intr-%s\n' "$RANDOM" >"$F/tag"
	before=$(state_of t1)
	nrr_bg switch --flake "$F#slow" --target-host t1 --build-host b1
	wait_for_proc b1 'sleep 30' || fail "the build never started on b1: $(cat "$BATS_TEST_TMPDIR/log")"
	kill -INT "$FLEET_BG_PID"
	wait_nrr
	assert_failure 130
	assert_output --partial "error: interrupted"
	# the builder goes within a few seconds, not after its 30 s
	for _ in $(seq 1 50); do
		fleet_ps b1 | grep -q -e 'sleep 30' -e 'nix-store --realise' || break
		sleep 0.1
	done
	run fleet_ps b1
	refute_output --partial 'sleep 30'
	refute_output --partial 'nix-store --realise'
	[ "$(state_of t1)" = "$before" ]
	no_ssh_left
}

@test "SIGTERM during a local build: exit 143, no master left, target unchanged" {
	printf 'term-%s\n' "$RANDOM" >"$F/tag"
	before=$(state_of t1)
	nrr_bg switch --flake "$F#slow" --target-host t1
	wait_for_local_proc 'sleep 30' || fail "the build never started: $(cat "$BATS_TEST_TMPDIR/log")"
	kill -TERM "$FLEET_BG_PID"
	wait_nrr
	assert_failure 143
	no_ssh_left
	[ "$(state_of t1)" = "$before" ]
}
