#!/usr/bin/env bats
# --magic-rollback: a deploy that cuts the deployer off is undone by the
# target itself; a good one is confirmed over a new connection and kept.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 t2
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" magic
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

current_of() { fleet_exec "$1" readlink -f /run/current-system 2>/dev/null || true; }

# Waits until the watchdog on host $1 (lib/activate.c: sh -c 'sleep "$confirm"; ...', then
# the undo unless confirmed) has run to its end; 60 s at most, a hang guard, whatever the
# machine's load.
watchdog_done() {
	for _ in $(seq 1 600); do
		fleet_ps "$1" | grep -q ' sh -c sleep "$confirm"' || return 0
		sleep 0.1
	done
	fail "the watchdog on $1 is still waiting: $(fleet_ps "$1")"
}

@test "a good system is confirmed over a new connection and kept" {
	# a generation before: something a wrong undo would go back to
	retag good0
	nrr switch --flake "$F#t1" --target-host t1
	retag good
	fleet_reset_counts t1
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --magic-rollback --confirm-timeout 8
	assert_success
	new=$output
	[ "$(profile_of t1)" = "$new" ]
	# one handshake for the deploy, one to prove the host still answers
	[ "$(fleet_handshakes t1)" = 2 ]
	watchdog_done t1
	[ "$(profile_of t1)" = "$new" ]
	[ "$(current_of t1)" = "$new" ]
}

@test "a system that cuts ssh off is rolled back by the target itself (exit 9)" {
	retag before
	nrr switch --flake "$F#t2" --target-host t2
	old_profile=$(profile_of t2)
	old_system=$(current_of t2)
	run nrr switch --flake "$F#cutoff" --target-host t2 --confirm-timeout 4
	assert_failure 9
	assert_output --partial "error: 't2' did not answer a new connection within 4 s"
	refute_output --partial "Done."
	# the target went back by itself, profile and running system
	for _ in $(seq 1 300); do [ "$(current_of t2)" = "$old_system" ] && break; sleep 0.2; done
	[ "$(current_of t2)" = "$old_system" ]
	[ "$(profile_of t2)" = "$old_profile" ]
	run fleet_exec t2 test -e /run/nrr-deny
	assert_failure 1
}

@test "a failing activation is rolled back at once (exit 9); --json says rolled-back" {
	retag before2
	nrr switch --flake "$F#t1" --target-host t1
	old_profile=$(profile_of t1)
	old_system=$(current_of t1)
	run nrr switch --flake "$F#broken" --target-host t1 --magic-rollback --json
	assert_failure 9
	assert_output --partial "it was rolled back to the previous system"
	# the same word as in a fleet's report
	assert_output --partial '"result":	"rolled-back"'
	[ "$(current_of t1)" = "$old_system" ]
	[ "$(profile_of t1)" = "$old_profile" ]
}

@test "test --magic-rollback restores the running system, never touches the profile" {
	retag before3
	nrr switch --flake "$F#t2" --target-host t2
	old_profile=$(profile_of t2)
	old_system=$(current_of t2)
	run nrr test --flake "$F#cutoff" --target-host t2 --confirm-timeout 3
	assert_failure 9
	for _ in $(seq 1 300); do [ "$(current_of t2)" = "$old_system" ] && break; sleep 0.2; done
	[ "$(current_of t2)" = "$old_system" ]
	[ "$(profile_of t2)" = "$old_profile" ]
}

@test "--magic-rollback is refused where it cannot prove anything" {
	run nrr boot --flake "$F#t1" --target-host t1 --magic-rollback
	assert_failure 2
	run nrr switch --flake "$F#t1" --magic-rollback
	assert_failure 2
	run nrr switch --flake "$F#t1" --target-host t1 --confirm-timeout soon
	assert_failure 2
}

@test "with --on each host confirms on its own; the summary says which rolled back" {
	retag fleet-magic
	nrr switch --flake "$F#t2" --target-host t2
	old_system=$(current_of t2)
	run nrr switch --flake "$F" --on t1,cutoff=t2 --confirm-timeout 3 -k --json
	assert_failure 12
	assert_output --regexp "cutoff +switch +rolled back"
	assert_output --partial '"result":	"rolled-back"'
	for _ in $(seq 1 300); do [ "$(current_of t2)" = "$old_system" ] && break; sleep 0.2; done
	[ "$(current_of t2)" = "$old_system" ]
	run last_activation t1
	assert_output --partial "config=t1 "
}

@test "no other user of the target can bring the token back to roll a confirmed system back" {
	retag tokenback
	fleet_reset_counts t1
	# long enough for the steps below to come before the watchdog's deadline
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --confirm-timeout 10
	assert_success
	new=$output
	# the token's name is no secret: the confirmation's command line says it
	token=$(fleet_command_log t1 | grep -o "/tmp/nrr-confirm[^' ]*" | head -n 1)
	[ -n "$token" ] || fail "no token in: $(fleet_command_log t1)"
	# another user of t1 (uid 1501) makes it again, after the confirmation removed it
	fleet_exec t1 setpriv --reuid=1501 --regid=1501 --clear-groups \
		sh -c 'touch "$1" || mkdir -p "${1%/*}" && touch "$1"' sh "$token" 2>/dev/null || true
	run fleet_exec t1 test -e "$token"
	assert_failure
	watchdog_done t1
	[ "$(profile_of t1)" = "$new" ]
	[ "$(current_of t1)" = "$new" ]
}

@test "the token lives in a directory of the login user that no one else may write" {
	retag tokendir
	run nrr switch --flake "$F#t1" --target-host t1 --confirm-timeout 30
	assert_success
	# confirmed: the token is gone, its directory stays until the watchdog ends
	run fleet_exec t1 sh -c 'for d in /tmp/nrr-confirm.*; do stat -c "%a %U %F" "$d"; done'
	assert_output "700 root directory"
	fleet_ps t1 | awk '$2 == "sleep" && $3 == 30 { print $1 }' | xargs -r kill
}

@test "--magic-rollback with --elevate run0 is refused (exit 2): its watchdog would not outlive run0's unit" {
	run nrr switch --flake "$F#t1" --target-host t1 --elevate run0 --magic-rollback
	assert_failure 2
	assert_output --partial "error: --magic-rollback cannot go with --elevate run0"
	run nrr test --flake "$F#t1" --target-host t1 --elevate=run0 --confirm-timeout 5
	assert_failure 2
}

# The tool at a terminal (as nrr_tty), answering its question "y" $1 seconds after it was
# asked: a user who reads the diff first.
answer_late() {
	local delay=$1 log=$BATS_TEST_TMPDIR/tty.log st=0
	shift
	_fleet_local_argv
	: >"$log"
	{ poll_until 60 grep -q 'Activate on' "$log" && sleep "$delay"; echo y; } |
		script -qefc "$(printf '%q ' "${_FLEET_LOCAL[@]}" "$NRR" "$@")" /dev/null >"$log" || st=$?
	cat "$log"
	return "$st"
}

@test "with --ask the timeout starts once the target arms its watchdog, not while the user reads the diff" {
	retag slow-reader0
	nrr switch --flake "$F#t1" --target-host t1
	retag slow-reader
	run answer_late 5 switch --flake "$F#t1" --target-host t1 --ask --confirm-timeout 3
	assert_success
	assert_output --partial "Activate on t1? [y/N]"
	assert_output --partial "confirmed: 't1' answers over a new connection"
	new=$(toplevel t1)
	# the watchdog's deadline passes: the confirmed system stays
	sleep 4
	[ "$(profile_of t1)" = "$new" ]
	[ "$(current_of t1)" = "$new" ]
}

@test "a fleet with --ask: each host's timeout starts once it arms its watchdog, not while the user reads the diffs" {
	retag fleet-reader0
	nrr switch --flake "$F" --on t1,t2
	retag fleet-reader
	run answer_late 5 switch --flake "$F" --on t1,t2 --ask --confirm-timeout 3
	assert_success
	assert_output --partial "Activate on 2 hosts (t1, t2)? [y/N]"
	sleep 4
	for h in t1 t2; do
		new=$(toplevel "$h")
		[ "$(profile_of "$h")" = "$new" ] || fail "$h went back"
		[ "$(current_of "$h")" = "$new" ] || fail "$h went back"
	done
}

@test "a profile that cannot be set disarms the watchdog: a deploy right after it is not undone" {
	retag unset0
	nrr switch --flake "$F#t1" --target-host t1
	# the profile's directory is a file: neither set_profile nor nix-env can make the profile
	fleet_exec t1 sh -c 'rm -rf /nix/var/nix/profiles/system-profiles && : >/nix/var/nix/profiles/system-profiles'
	retag unset1
	run nrr switch --flake "$F#t1" --target-host t1 -p other --confirm-timeout 4
	fleet_exec t1 rm -f /nix/var/nix/profiles/system-profiles
	assert_failure 8
	assert_output --partial "error: setting the profile '/nix/var/nix/profiles/system-profiles/other' on 't1' failed"
	# another deploy within the timeout
	retag unset2
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1
	assert_success
	new=$output
	# past the first deploy's deadline: its watchdog did not go back to the system before it
	sleep 5
	[ "$(current_of t1)" = "$new" ]
	[ "$(profile_of t1)" = "$new" ]
	run fleet_ps t1
	refute_output --partial 'sleep "$confirm"'
}

@test "a token that cannot be made is said so, and nothing is changed (exit 8)" {
	retag notoken0
	nrr switch --flake "$F#t1" --target-host t1
	before=$(state_of t1)
	acts=$(fleet_exec t1 sh -c 'wc -l </run/nrr-activations')
	# the target's temp dir is read-only
	fleet_exec t1 mount -t tmpfs -o ro nrr-ro-tmp /tmp
	retag notoken1
	run nrr switch --flake "$F#t1" --target-host t1 --confirm-timeout 3
	fleet_exec t1 umount /tmp
	assert_failure 8
	assert_line --regexp "^error: cannot arm the --magic-rollback watchdog on 't1': .*Read-only file system"
	assert_line "hint: the profile and the running system were not changed"
	[ "$(state_of t1)" = "$before" ]
	[ "$(fleet_exec t1 sh -c 'wc -l </run/nrr-activations')" = "$acts" ]
}

@test "an undo that fails is said so, never called a rollback (exit 8)" {
	retag undo0
	nrr switch --flake "$F#t1" --target-host t1
	# the system t1 runs is one whose switch-to-configuration fails: going back to it fails
	old=$(toplevel broken)
	fleet_seed t1 "$old"
	fleet_exec t1 ln -sfn "$old" /run/current-system
	retag undo1
	run nrr switch --flake "$F#broken" --target-host t1 --magic-rollback --json
	fleet_exec t1 ln -sfn "$(profile_of t1)" /run/current-system
	assert_failure 8
	assert_output --partial "error: activation ('switch-to-configuration switch') on 't1' failed, and going back to the previous system failed too"
	refute_output --partial "rolled back"
	assert_output --partial '"result":	"failed"'
}
