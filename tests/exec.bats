#!/usr/bin/env bats
# One command on many hosts (lib/exec.c, colmena's `exec`), on real test hosts through
# tests/test-tool remote-exec: each host's lines under its name, the words arriving as they
# were given whatever the login shell, one handshake per host, a bounded number at a time,
# and an exit status that says whether any failed.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start e1 e2 e3
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

@test "lines are shown under their host's name, whole" {
	run -0 "$TT" remote-exec-lines web <<<$'one\ntwo'
	assert_output $'web | one\nweb | two\n[rest:]'
	run -0 "$TT" remote-exec-lines web < <(printf 'one\nunfinished')
	assert_output $'web | one\n[rest:unfinished]'
	run -0 "$TT" remote-exec-lines web final < <(printf 'one\nunfinished')
	assert_output $'web | one\nweb | unfinished\n[rest:]'
}

@test "every host runs the command once, over one connection, its output under its name" {
	fleet_reset_counts e1 e2 e3
	run -0 fleet_local "$TT" remote-exec e1 e2 e3 -- sh -c 'uname -n >/dev/null; echo "hello from $0"; echo "to stderr" >&2' x
	for h in e1 e2 e3; do
		assert_line "$h | hello from x"
		assert_line "$h | to stderr"
		assert_line "$h: 0"
		assert_equal "$(fleet_commands "$h")" 1
		assert_equal "$(fleet_handshakes "$h")" 1
	done
}

@test "each word arrives as it was given, through sh, bash and fish login shells" {
	for h in e1 deploy@e2 fishy@e3; do
		run -0 fleet_local "$TT" remote-exec "$h" -- printf '[%s]\n' 'a b' "it's" '$HOME;x' '\back' '*' ''
		assert_output "$h | [a b]
$h | [it's]
$h | [\$HOME;x]
$h | [\\back]
$h | [*]
$h | []
$h: 0"
	done
}

@test "a host whose command fails: the others' output all the same, and exit status 12 naming it" {
	fleet_exec e2 touch /run/fail-me
	run -12 fleet_local "$TT" remote-exec e1 e2 e3 -- sh -c '[ -e /run/fail-me ] && exit 7; echo done'
	fleet_exec e2 rm /run/fail-me
	assert_line "e1 | done"
	assert_line "e3 | done"
	refute_line "e2 | done"
	assert_line "e2: 7 exited with status 7"
	assert_line "error(12): exec failed on 1 of 3 hosts: e2 (exited with status 7)"
}

@test "a host that cannot be reached is named; the others run" {
	printf 'Include %s\nHost dead\n  HostName 127.0.0.1\n  Port 1\n  User root\n' \
		"$FLEET_DIR/ssh_config" >ssh_config
	NIX_SSHOPTS="-F $BATS_TEST_TMPDIR/ssh_config" run -12 fleet_local "$TT" remote-exec e1 dead -- echo hi
	assert_line "e1 | hi"
	assert_line --partial "error(12): exec failed on 1 of 2 hosts: dead (cannot reach 'dead'"
}

@test "-p bounds how many run at once" {
	# a directory only one command at a time can hold (/run/fleet is shared by the hosts)
	run -0 fleet_local "$TT" remote-exec -p 1 e1 e2 e3 -- sh -c \
		'mkdir /run/fleet/one-at-a-time && sleep 0.2 && rmdir /run/fleet/one-at-a-time && echo ok'
	assert_line "e1 | ok"
	assert_line "e2 | ok"
	assert_line "e3 | ok"
}

@test "no command is a usage error" {
	run -2 fleet_local "$TT" remote-exec e1 --
	assert_line "error(2): exec: no command given"
}
