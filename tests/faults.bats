#!/usr/bin/env bats
# Faults injected into real deploys, each with the outcome it must have: the exit status the
# manual gives, one `error:` line naming the host and the step, and, when the fault comes before
# activation, a target whose profile and running system are what they were.
#
#   fault                                  exit  target
#   connection dropped during the copy     6     unchanged; the next deploy works
#   target hangs during the copy           6     unchanged, unlocked when it wakes; the next
#     (ServerAliveInterval 1, CountMax 2)         deploy works; the run ends in seconds
#   target's sshd hangs before the run     3     unchanged; the run ends in seconds
#     (ConnectTimeout 2)
#   target disk full during the copy       6     unchanged; works once there is room
#   build host gone during the build       3     unchanged; the build is gone too
#   target unreachable from the start      3     unchanged; nothing built
#   target refuses our key                 3     unchanged
#   connection dropped during activation   8     the activation runs to its end; the hint
#                                                 says the profile may be the new system's
#   SIGHUP during the build                129   unchanged; no ssh left, target unlocked
#
# and, without a fault, every run ends: the ssh master it started goes when told to.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 b1 full mute
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" faults
	# `big`: t1's system plus a package of 32 MiB
	flake_add_big "$F"
	# `full`: a host whose store is a 16 MiB file system (it starts empty: nothing is lost)
	fleet_exec full sh -c 'mkdir -p /nix/store &&
		mount -t tmpfs -o size=16m,mode=1775 nrr-full-store /nix/store'
	# its nix-daemon sees the mounts of when it started (a namespace of its own, as on a
	# machine, where the store is mounted first): started again, it writes there too
	fleet_daemon_restart full
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	nrr() { nrr_within 30 "$@"; }
	cd "$BATS_TEST_TMPDIR" || return
}

teardown() {
	stop_nrr_bg
	# a host a test froze goes on, so that fleet_stop can stop it
	[ ! -s "$BATS_TEST_TMPDIR/frozen" ] || xargs -r kill -CONT <"$BATS_TEST_TMPDIR/frozen" || true
}

# Stops (SIGSTOP) the processes $@, to be resumed by teardown: a host that hangs, whose TCP
# connections stay open but silent.
freeze() {
	printf '%s\n' "$@" >>"$BATS_TEST_TMPDIR/frozen"
	kill -STOP "$@"
}

# Deploys "$@" with the user's keepalives (keepalive_config), slowly, and once the copy to t1
# runs, freezes host $1's sshd sessions: the connection stays open, and silent. The tool's own
# keepalive would wait a minute; the user's must end the run within seconds, with exit 6, the
# keepalive hint naming $1, and no ssh left.
hangs_mid_copy() {
	local host=$1
	shift
	keepalive_config alive_config
	NIX_SSHOPTS="-F $PWD/alive_config" start_slow_copy t1 "$@"
	SECONDS=0
	local pids
	pids=$(sshd_sessions "$host")
	[ -n "$pids" ] || fail "$host has no ssh session left to freeze: the run was over"
	# shellcheck disable=SC2086 # pids
	freeze $pids
	# frozen, its processes stay as they were: it was still in the copy (serving, exporting)
	host_runs "$host" 'nix-store --' || fail "$host was done with the copy before it was frozen"
	wait_nrr 60
	((SECONDS < 30)) || fail "it took $SECONDS s: the user's ServerAliveInterval was not used"
	assert_failure 6
	assert_line "hint: '$host' stopped answering; is it up, and its network? (ServerAliveInterval and ServerAliveCountMax in your ssh config set how long to wait)"
	no_ssh_left
}

# Writes to $1 the fleet's ssh config, with ssh keepalives every second, given up after two
# unanswered: a dead connection is found within seconds.
keepalive_config() {
	cp "$FLEET_DIR/ssh_config" "$1"
	printf 'Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n' >>"$1"
}

@test "a connection that drops in the middle of the copy: exit 6, target unchanged, the next deploy works" {
	retag drop
	nrr switch --flake "$F#t1" --target-host t1
	before=$(state_of t1)
	start_slow_copy t1 switch --flake "$F#big" --target-host t1
	# t1's sshd drops the connection: its session processes die, the listener stays
	sshd_sessions t1 | xargs -r kill -KILL
	wait_nrr
	[ "$status" = 6 ] || fail "exit $status, not 6: $(cat "$BATS_TEST_TMPDIR/log")"
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: copying to 't1' failed: "
	[ "$(state_of t1)" = "$before" ]
	no_ssh_left
	# what was half imported is no obstacle
	run --separate-stderr nrr switch --flake "$F#big" --target-host t1
	assert_success
	[ "$(profile_of t1)" = "$output" ]
}

@test "a target that stops answering in the middle of the copy: the user's ServerAliveInterval ends the run in seconds, exit 6 naming the step, target unchanged" {
	retag frozen
	nrr switch --flake "$F#t1" --target-host t1
	before=$(state_of t1)
	# t1 hangs: its sshd sessions stop; the connection stays open, and silent
	hangs_mid_copy t1 switch --flake "$F#big" --target-host t1
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: copying to 't1' failed: Timeout, server [0-9.]+ not responding\.$"
	# t1 wakes up: its half of the deploy finds the connection gone, and nothing was changed
	xargs kill -CONT <"$BATS_TEST_TMPDIR/frozen"
	[ "$(state_of t1)" = "$before" ]
	poll_until 20 unlocked t1 || fail "t1's deploy lock is still held"
	run --separate-stderr nrr switch --flake "$F#big" --target-host t1
	assert_success
	[ "$(profile_of t1)" = "$output" ]
}

@test "a target that accepts the connection but never answers: the user's ConnectTimeout ends the run in seconds, exit 3 with a hint" {
	retag mute
	before=$(state_of mute)
	# mute's sshd stops: the kernel still completes the TCP handshake, no ssh banner comes
	freeze "$(sshd_listener mute)"
	cp "$FLEET_DIR/ssh_config" connect_config
	printf 'Host *\n  ConnectTimeout 2\n' >>connect_config
	SECONDS=0
	NIX_SSHOPTS="-F $PWD/connect_config" nrr_bg switch --flake "$F#t1" --target-host mute
	# the tool's own ConnectTimeout is 30 s
	wait_nrr 60
	((SECONDS < 20)) || fail "it took $SECONDS s: the user's ConnectTimeout was not used"
	assert_failure 3
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: cannot reach 'mute' \\(root@[0-9.]+:22\\): Connection to [0-9.]+ port 22 timed out$"
	assert_line --regexp "^hint: is '[0-9.]+' up, with sshd listening on port 22\\? \\(ConnectTimeout in your ssh config sets how long to wait\\)$"
	no_ssh_left
	xargs kill -CONT <"$BATS_TEST_TMPDIR/frozen"
	[ "$(state_of mute)" = "$before" ]
}

@test "a connection that drops during activation: exit 8, not 'cannot reach'; the activation runs to its end" {
	retag drop-act
	nrr switch --flake "$F#t1" --target-host t1
	# slowswitch's switch-to-configuration takes 5 s
	nrr_bg switch --flake "$F#slowswitch" --target-host t1
	wait_for_proc t1 'sleep 5' || fail "the activation never started: $(cat "$BATS_TEST_TMPDIR/log")"
	sshd_sessions t1 | xargs -r kill -KILL
	wait_nrr
	[ "$status" = 8 ] || fail "exit $status, not 8: $(cat "$BATS_TEST_TMPDIR/log")"
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: lost the connection to 't1' while activating"
	assert_line "hint: the profile may already point to the new system; '--rollback' goes back"
	no_ssh_left
	new=$(toplevel slowswitch)
	[ "$(profile_of t1)" = "$new" ]
	poll_until 20 unlocked t1 || fail "t1's deploy lock is still held"
	run last_activation t1
	assert_output --partial "config=slowswitch "
}

@test "a target whose disk fills up during the copy: exit 6 with a hint, target unchanged" {
	retag full
	before=$(state_of full)
	run nrr switch --flake "$F#big" --target-host full
	assert_failure 6
	assert_line --regexp "^error: copying to 'full' failed: .*No space left on device"
	assert_line "hint: 'full' is out of disk space: collect garbage there (nix-collect-garbage -d) and try again"
	[ "$(state_of full)" = "$before" ]
	big=$(toplevel big)
	run fleet_exec full nix-store --check-validity "$big"
	assert_failure 1
	# with room again, the same deploy goes through
	fleet_exec full mount -o remount,size=256m /nix/store
	run --separate-stderr nrr switch --flake "$F#big" --target-host full
	assert_success
	[ "$(profile_of full)" = "$big" ]
}

@test "the target unreachable from the start: exit 3 before anything is built" {
	addr=$(fleet_addr t1)
	gone=${addr%.*}.250
	printf 'unreachable-%s\n' "$$" >"$F/tag"
	SECONDS=0
	# slow takes 30 s to build: the tool must not build it first
	run nrr switch --flake "$F#slow" --target-host "root@$gone"
	assert_failure 3
	((SECONDS < 20)) || fail "it took $SECONDS s: it built before connecting"
	assert_line "error: cannot reach 'root@$gone' (root@$gone:22): ssh: connect to host $gone port 22: Connection refused"
	assert_line "hint: is '$gone' up, with sshd listening on port 22?"
	refute_output --partial "building '"
	no_ssh_left
}

@test "a target whose sshd refuses our key: exit 3 with a hint, nothing changed" {
	retag refused
	before=$(state_of t1)
	ssh-keygen -q -t ed25519 -N '' -C other -f other_key
	sed "s|IdentityFile .*|IdentityFile $PWD/other_key|" "$FLEET_DIR/ssh_config" >cfg
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host t1
	assert_failure 3
	assert_line --regexp "^error: cannot reach 't1' \\(root@[0-9.]+:22\\): root@[0-9.]+: Permission denied \\(publickey\\)\\.$"
	assert_line "hint: ssh refused the login as 'root'; check the user and key (ssh -v t1 true)"
	[ "$(state_of t1)" = "$before" ]
	no_ssh_left
}

@test "SIGHUP during the build: exit 129, no ssh left, the target unchanged and unlocked" {
	printf 'hup-%s\n' "$$" >"$F/tag"
	before=$(state_of t1)
	nrr_bg switch --flake "$F#slow" --target-host t1
	wait_for_local_proc 'sleep 30' || fail "the build never started: $(cat "$BATS_TEST_TMPDIR/log")"
	kill -HUP "$FLEET_BG_PID"
	wait_nrr
	[ "$status" = 129 ] || fail "exit $status, not 129: $(cat "$BATS_TEST_TMPDIR/log")"
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: interrupted"
	no_ssh_left
	for _ in $(seq 1 50); do
		[ -z "$(local_procs 'sleep 30')" ] && break
		sleep 0.1
	done
	[ -z "$(local_procs 'sleep 30')" ] || fail "the build still runs"
	[ "$(state_of t1)" = "$before" ]
	# the target's end of the deploy conversation is gone with its lock
	run fleet_ps t1
	refute_output --partial 'sshd: root@notty'
	unlocked t1
}

@test "every run ends: the ssh master goes at exit, however busy it is (40 no-op deploys)" {
	retag ends
	nrr switch --flake "$F#t1" --target-host t1
	want=$(toplevel t1)
	# A master is told to go right after its last session closed, while it still handles that.
	# A signal that lands between its check for one and its wait for the next event is only
	# seen at the next event: with an idle connection, never.
	# (the system built once: each run costs a deploy, not an evaluation)
	for i in $(seq 1 40); do
		nrr_bg switch --store-path "$want" --target-host t1
		for _ in $(seq 1 100); do
			stat=$(ps -o stat= -p "$FLEET_BG_PID") && [[ $stat != Z* ]] || break
			sleep 0.1
		done
		if stat=$(ps -o stat= -p "$FLEET_BG_PID") && [[ $stat != Z* ]]; then
			# what it waits for: the system call (61: wait4) and its children
			call=$(cut -d' ' -f1 "/proc/$FLEET_BG_PID/syscall" 2>/dev/null)
			kids=$(ps -o args= --ppid "$FLEET_BG_PID")
			kill -KILL "$FLEET_BG_PID"
			{ wait "$FLEET_BG_PID"; } 2>/dev/null || true
			fail "run $i did not end within 10 s; in system call $call (61: wait4), children: ${kids:-none}"
		fi
		wait_nrr
		[ "$status" = 0 ] || fail "run $i: exit $status: $(cat "$BATS_TEST_TMPDIR/log")"
	done
	no_ssh_left
}

# Last: b1's sshd does not come back.
@test "a build host that stops answering while it sends the system: exit 6 naming it, with the keepalive hint, target unchanged" {
	retag frozen-b1
	before=$(state_of t1)
	# b1 sends faster than the link to t1 takes: the buffers between (ssh's windows, the sockets')
	# hold megabytes, and at 8 MB/s b1 could be done before it is frozen. At 2 MB/s it sends
	# for seconds after the copy has begun.
	SLOW_RATE=2000000 hangs_mid_copy b1 switch --flake "$F#big" --target-host t1 --build-host b1
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: exporting from 'b1' failed: Timeout, server [0-9.]+ not responding\.$"
	xargs kill -CONT <"$BATS_TEST_TMPDIR/frozen"
	[ "$(state_of t1)" = "$before" ]
	poll_until 20 unlocked t1 || fail "t1's deploy lock is still held"
}

@test "a build host that disappears during the build: exit 3 naming it, the build gone, target unchanged" {
	printf 'gone-%s\n' "$$" >"$F/tag"
	before=$(state_of t1)
	nrr_bg switch --flake "$F#slow" --target-host t1 --build-host b1
	wait_for_proc b1 'sleep 30' || fail "the build never started on b1: $(cat "$BATS_TEST_TMPDIR/log")"
	# b1 goes away: its sshd, listener and sessions, is killed
	fleet_ps b1 | awk '$2 == "sshd:" { print $1 }' | xargs -r kill -KILL
	wait_nrr
	[ "$status" = 3 ] || fail "exit $status, not 3: $(cat "$BATS_TEST_TMPDIR/log")"
	[ "$(state_of t1)" = "$before" ]
	no_ssh_left
	# the builder on b1 died with its connection
	for _ in $(seq 1 50); do
		fleet_ps b1 | grep -q 'sleep 30' || break
		sleep 0.1
	done
	run fleet_ps b1
	refute_output --partial 'sleep 30'
	# the error says that the connection to b1 was lost while building, not what the remote
	# build printed last
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: .*'b1'.*(connection|[Cc]onnection)"
	run grep -a '^error: ' "$BATS_TEST_TMPDIR/log"
	refute_output --regexp "building '/nix/store/[^']*\\.drv'\\.\\.\\.$"
}
