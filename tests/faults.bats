#!/usr/bin/env bats
# Faults injected into real deploys, each with the outcome it must have: the exit status the
# manual gives, one `error:` line naming the host and the step, and, when the fault comes before
# activation, a target whose profile and running system are what they were.
#
#   fault                                  exit  target
#   connection dropped during the copy     6     unchanged; the next deploy works
#   target disk full during the copy       6     unchanged; works once there is room
#   build host gone during the build       3     unchanged; the build is gone too
#   target unreachable from the start      3     unchanged; nothing built
#   target refuses our key                 3     unchanged
#   SIGHUP during the build                129   unchanged; no ssh left, target unlocked
#
# and, without a fault, every run ends: the ssh master it started goes when told to.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 b1 full
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" faults
	# `big`: t1's system plus a package of 32 MiB that does not compress (tests/lib/build-big.sh)
	cp "$BATS_TEST_DIRNAME/lib/build-big.sh" "$F/build-big.sh"
	[ "$(tail -n 1 "$F/systems.nix")" = "}" ] || { echo "systems.nix does not end in '}'" >&2; return 1; }
	sed -i '$i\  big = mkConfig "big" { packages = [ (drv "big-1.0" ./build-big.sh { }) ]; };' \
		"$F/systems.nix"
	# `full`: a host whose store is a 16 MiB file system (it starts empty: nothing is lost)
	fleet_exec full sh -c 'mkdir -p /nix/store &&
		mount -t tmpfs -o size=16m,mode=1775 nrr-full-store /nix/store'
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	# The tool, as common.bash runs it, but a run that does not end within 30 s is stopped: its
	# test fails instead of the suite hanging.
	nrr() {
		local st=0
		fleet_local timeout -k 5 30 "$NRR" "$@" || st=$?
		[ "$st" != 124 ] && [ "$st" != 137 ] || echo "faults.bats: the run did not end within 30 s" >&2
		return "$st"
	}
	cd "$BATS_TEST_TMPDIR" || return
}

# What host $1 runs now: its system profile and its /run/current-system.
state_of() {
	fleet_exec "$1" sh -c 'readlink -f /nix/var/nix/profiles/system; readlink -f /run/current-system' \
		2>/dev/null || true
}

# Waits up to 20 s for host $1 to run a process whose command line contains $2.
wait_for_proc() {
	for _ in $(seq 1 200); do
		fleet_ps "$1" | grep -qF -- "$2" && return 0
		sleep 0.1
	done
	return 1
}

# The pids of the processes of the deployer whose command line contains $1.
local_procs() {
	local pid args
	for pid in $(_fleet_pids "$(_fleet_tag local) "); do
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		case $args in *"$1"*) echo "$pid" ;; esac
	done
}

# Fails if an ssh process of the deployer is left (a master, a session).
no_ssh_left() {
	local pid args
	for pid in $(_fleet_pids "$(_fleet_tag local) "); do
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		case $args in ssh* | *slow-link*) fail "left behind: $pid $args" ;; esac
	done
}

# Fails unless the log $1 ends with the tool's error line, which matches the regexp $2.
error_line_matches() {
	local last
	last=$(grep -av '^hint: ' "$1" | tail -n 1)
	[[ $last =~ $2 ]] || fail "the last line is not /$2/: $(cat "$1")"
}

# Runs the tool in the background (output to $BATS_TEST_TMPDIR/log; see fleet_local_bg).
nrr_bg() {
	fleet_local_bg "$BATS_TEST_TMPDIR/log" "$NRR" "$@"
}

# Waits up to 30 s for the tool started by nrr_bg to end, and sets status; kills it and fails if
# it does not end.
wait_nrr() {
	local stat
	for _ in $(seq 1 300); do
		stat=$(ps -o stat= -p "$FLEET_BG_PID") && [[ $stat != Z* ]] || break
		sleep 0.1
	done
	if stat=$(ps -o stat= -p "$FLEET_BG_PID") && [[ $stat != Z* ]]; then
		kill -KILL "$FLEET_BG_PID"
		{ wait "$FLEET_BG_PID"; } 2>/dev/null || true
		fail "the run did not end within 30 s: $(cat "$BATS_TEST_TMPDIR/log")"
	fi
	status=0
	wait "$FLEET_BG_PID" || status=$?
}

@test "a connection that drops in the middle of the copy: exit 6, target unchanged, the next deploy works" {
	retag drop
	nrr switch --flake "$F#t1" --target-host t1
	before=$(state_of t1)
	# a link of 8 MB/s: the 32 MiB take 4 s
	NIX_SSHOPTS="$NIX_SSHOPTS -o 'ProxyCommand=perl $BATS_TEST_DIRNAME/lib/slow-link %h %p 8000000'" \
		nrr_bg switch --flake "$F#big" --target-host t1
	wait_for_proc t1 'nix-store --import' || fail "the copy never started: $(cat "$BATS_TEST_TMPDIR/log")"
	sleep 1
	fleet_ps t1 | grep -qF 'nix-store --import' || fail "the copy ended before the fault"
	# t1's sshd drops the connection: its session processes die, the listener stays
	fleet_ps t1 | awk '$2 == "sshd:" && $3 !~ /^\// { print $1 }' | xargs -r kill -KILL
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
	assert_failure
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
	for _ in $(seq 1 200); do
		[ -z "$(local_procs 'sleep 30')" ] || break
		sleep 0.1
	done
	[ -n "$(local_procs 'sleep 30')" ] || fail "the build never started: $(cat "$BATS_TEST_TMPDIR/log")"
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
	fleet_exec t1 flock -n /tmp/nixos-rebuild-remote.lock true
}

@test "every run ends: the ssh master goes at exit, however busy it is (40 no-op deploys)" {
	retag ends
	nrr switch --flake "$F#t1" --target-host t1
	# A master is told to go right after its last session closed, while it still handles that.
	# A signal that lands between its check for one and its wait for the next event is only
	# seen at the next event: with an idle connection, never.
	for i in $(seq 1 40); do
		nrr_bg switch --flake "$F#t1" --target-host t1
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
