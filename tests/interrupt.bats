#!/usr/bin/env bats
# Ctrl-C and SIGTERM: remote work stops too (ssh without a tty does not forward signals),
# masters close, the run exits 128 + the signal's number. What the target ends in:
#
#   signal during     target
#   a remote build    unchanged; the builder on the build host stops
#   a local build     unchanged
#   the copy          unchanged (profile and running system); its import stops, its lock goes
#   the activation    the activation goes on to its end there (the tool hangs up, it does not
#                     stop switch-to-configuration half-way): the new system, profile and
#                     running; then the lock goes

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" intr
	# `big`: t1's system plus a package of 32 MiB, which a slow link copies for seconds
	flake_add_big "$F"
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	nrr() { nrr_within 60 "$@"; }
	cd "$BATS_TEST_TMPDIR" || return
}

teardown() {
	stop_nrr_bg
	# an evaluator a failed test left behind
	local_procs 'path-info' | xargs -r kill -KILL
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

# True once host $1 runs no process whose command line contains $2.
gone_from() {
	! host_runs "$1" "$2"
}

@test "SIGINT during the copy: exit 130, no ssh left, the target's profile and running system unchanged, its lock released" {
	retag copy-int
	nrr switch --flake "$F#t1" --target-host t1
	before=$(state_of t1)
	start_slow_copy t1 switch --flake "$F#big" --target-host t1
	kill -INT "$FLEET_BG_PID"
	wait_nrr
	assert_failure 130
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: interrupted while copying to 't1'$"
	no_ssh_left
	[ "$(state_of t1)" = "$before" ]
	# the import on t1 (its nix-store --serve) ends with the connection, and the deploy lock
	# with it
	poll_until 10 gone_from t1 'nix-store --serve' || fail "the import still runs on t1"
	poll_until 10 unlocked t1 || fail "t1's deploy lock is still held"
	run --separate-stderr nrr switch --flake "$F#big" --target-host t1
	assert_success
	assert_equal "$(state_of t1)" "$output"$'\n'"$output"
}

@test "SIGTERM during the activation: exit 143; the tool hangs up, the activation runs to its end on the target, then the lock is released" {
	retag act-term
	nrr switch --flake "$F#t1" --target-host t1
	new=$(toplevel slowswitch)
	nrr_bg switch --flake "$F#slowswitch" --target-host t1
	# slowswitch's switch-to-configuration sleeps 5 s between two lines on stderr
	wait_for_proc t1 'sleep 5' || fail "the activation never started: $(cat "$BATS_TEST_TMPDIR/log")"
	kill -TERM "$FLEET_BG_PID"
	wait_nrr
	assert_failure 143
	error_line_matches "$BATS_TEST_TMPDIR/log" \
		"^error: interrupted while activating on 't1', where an activation that had begun runs to its end$"
	no_ssh_left
	poll_until 20 gone_from t1 'switch-to-configuration' || fail "the activation still runs on t1"
	# not cut half-way (its stderr, our session, is gone): profile and running system are new
	assert_equal "$(state_of t1)" "$new"$'\n'"$new"
	poll_until 10 unlocked t1 || fail "t1's deploy lock is still held"
	retag act-term-again
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1
	assert_success
	assert_equal "$(state_of t1)" "$output"$'\n'"$output"
}

@test "SIGINT during an evaluation busy in a builtin: the evaluator goes at once, exit 130" {
	printf 'evalintr-%s\n' "$RANDOM" >"$F/tag"
	before=$(state_of t1)
	nrr_bg switch --flake "$F#sloweval" --target-host t1
	# the evaluation (nix path-info --derivation), then a moment to be inside the sort, which
	# takes half a minute and more
	wait_for_local_proc 'path-info' || fail "no evaluation: $(cat "$BATS_TEST_TMPDIR/log")"
	sleep 1
	kill -INT "$FLEET_BG_PID" || fail "the evaluation ended before the interrupt: $(cat "$BATS_TEST_TMPDIR/log")"
	wait_nrr 5
	assert_failure 130
	assert_output --partial "error: interrupted"
	run local_procs 'path-info'
	assert_output ''
	[ "$(state_of t1)" = "$before" ]
	no_ssh_left
}

@test "SIGINT during a remote build: the build host keeps no GC root of it" {
	printf 'gcintr-%s\n' "$RANDOM" >"$F/tag"
	nrr_bg switch --flake "$F#slow" --target-host t1 --build-host b1
	wait_for_proc b1 'sleep 30' || fail "the build never started on b1: $(cat "$BATS_TEST_TMPDIR/log")"
	kill -INT "$FLEET_BG_PID"
	wait_nrr
	assert_failure 130
	for _ in $(seq 1 50); do
		[ -z "$(fleet_exec b1 sh -c 'ls -d /tmp/nrr-result.* 2>/dev/null')" ] && break
		sleep 0.1
	done
	run fleet_exec b1 sh -c 'ls -d /tmp/nrr-result.* 2>/dev/null'
	assert_output ''
}
