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
	cd "$BATS_TEST_TMPDIR"
}

# Fails if an ssh process of this fleet's deployer is still there.
no_ssh_left() {
	for pid in $(_fleet_pids "$(_fleet_tag local) "); do
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		case $args in ssh*) fail "left behind: $pid $args" ;; esac
	done
}

# Waits up to 20 s for host $1 to run a process matching $2.
wait_for_proc() {
	for _ in $(seq 1 200); do
		fleet_ps "$1" | grep -q -- "$2" && return 0
		sleep 0.1
	done
	return 1
}

@test "SIGINT during a remote build stops the builder on the build host (exit 130)" {
	printf 'intr-%s\n' "$RANDOM" >"$F/tag"
	before=$(fleet_exec t1 readlink -f /nix/var/nix/profiles/system 2>/dev/null || true)
	fleet_local_bg "$BATS_TEST_TMPDIR/log" "$NRR" switch --flake "$F#slow" --target-host t1 --build-host b1
	wait_for_proc b1 'sleep 30' || { cat "$BATS_TEST_TMPDIR/log"; fail "the build never started on b1"; }
	kill -INT "$FLEET_BG_PID"
	status=0
	wait "$FLEET_BG_PID" || status=$?
	[ "$status" = 130 ] || { cat "$BATS_TEST_TMPDIR/log"; fail "exit status $status, not 130"; }
	# the builder goes within a few seconds, not after its 30 s
	for _ in $(seq 1 50); do
		fleet_ps b1 | grep -q -e 'sleep 30' -e 'nix-store --realise' || break
		sleep 0.1
	done
	run fleet_ps b1
	refute_output --partial 'sleep 30'
	refute_output --partial 'nix-store --realise'
	[ "$(fleet_exec t1 readlink -f /nix/var/nix/profiles/system 2>/dev/null || true)" = "$before" ]
	run cat "$BATS_TEST_TMPDIR/log"
	assert_output --partial "error: interrupted"
	no_ssh_left
}

@test "SIGTERM during a local build: exit 143, no master left, target unchanged" {
	printf 'term-%s\n' "$RANDOM" >"$F/tag"
	fleet_local_bg "$BATS_TEST_TMPDIR/log" "$NRR" switch --flake "$F#slow" --target-host t1
	for _ in $(seq 1 200); do pgrep -f 'sleep 30' >/dev/null && break; sleep 0.1; done
	kill -TERM "$FLEET_BG_PID"
	status=0
	wait "$FLEET_BG_PID" || status=$?
	[ "$status" = 143 ] || { cat "$BATS_TEST_TMPDIR/log"; fail "exit status $status, not 143"; }
	no_ssh_left
}
