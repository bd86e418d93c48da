#!/usr/bin/env bats
# The suite itself: a pass of `make check` holds only when every test the bats files hold
# ran and held (tests/lib/tally.sh, used by tests/run-all.sh). Tried on tiny bats files.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
	LIB=$BATS_TEST_DIRNAME/lib
	cd "$BATS_TEST_TMPDIR" || return
	mkdir t res
	printf '%s\n' '@test "one" { true; }' \
		'@test "two" { skip "no frobnicator here"; }' '@test "three" { true; }' >t/good.bats
	printf '%s\n' 'setup_file() { false; }' '@test "one" { true; }' '@test "two" { true; }' \
		>t/nofleet.bats
	printf '%s\n' '@test "one" { true; }' '@test "two" { false; }' >t/fails.bats
	printf '%s\n' '# no test at all' >t/empty.bats
}

# bats run from a test must not see this bats' environment (nor its libexec first in PATH)
clean() { env -i PATH="$(tr : '\n' <<<"$PATH" | grep -v /bats-core | paste -sd:)" HOME="$HOME" "$@"; }

# bats-each.sh then tally.sh on FILES, as run-all.sh does for one pass
pass() {
	clean sh "$LIB/bats-each.sh" res 1 "$@" >/dev/null
	run sh "$LIB/tally.sh" pass res "$@"
}

@test "a pass where every test ran and held: counts, skips apart with their reason" {
	pass t/good.bats
	assert_success
	assert_output - <<-'EOF'
		skipped: pass: 1 x no frobnicator here
		pass: 2 passed, 0 failed, 1 skipped
	EOF
}

@test "a failing test fails the pass" {
	pass t/good.bats t/fails.bats
	assert_failure 1
	assert_line --index -1 'pass: 3 passed, 1 failed, 1 skipped'
}

@test "a failing setup_file (a fleet that could not start) fails loudly, its tests count as failed" {
	pass t/good.bats t/nofleet.bats
	assert_failure 1
	assert_line 'error: pass: t/nofleet.bats: 1 of 2 tests ran'
	assert_line 'error: pass: t/nofleet.bats: setup_file failed: its tests did not run'
	assert_line --index -1 'pass: 2 passed, 2 failed, 1 skipped'
}

@test "a pass that ran zero tests fails" {
	pass t/empty.bats
	assert_failure 1
	assert_line 'error: pass: no test ran'
	assert_line --index -1 'pass: 0 passed, 0 failed, 0 skipped'
}

@test "fewer tests ran than the file holds: the missing ones count as failed" {
	printf '%s\n' '1..3' 'ok 1 one' 'ok 2 two # skip no frobnicator here' >res/good.tap
	echo 0 >res/good.rc
	run sh "$LIB/tally.sh" pass res t/good.bats
	assert_failure 1
	assert_line 'error: pass: t/good.bats: 2 of 3 tests ran'
	assert_line --index -1 'pass: 1 passed, 1 failed, 1 skipped'
}

@test "bats failing with no failing test line, or with a plan that is not the file's, fails" {
	printf '%s\n' '1..3' 'ok 1 one' 'ok 2 two' 'ok 3 three' >res/good.tap
	echo 1 >res/good.rc
	run sh "$LIB/tally.sh" pass res t/good.bats
	assert_failure 1
	assert_line 'error: pass: t/good.bats: bats exited 1 with no failing test'
	printf '%s\n' '1..2' 'ok 1 one' 'ok 2 two' >res/good.tap
	echo 0 >res/good.rc
	run sh "$LIB/tally.sh" pass res t/good.bats
	assert_failure 1
	assert_line 'error: pass: t/good.bats: bats planned 2 tests, the file holds 3'
}

@test "bats that never started (no output, no plan) fails the pass" {
	run sh "$LIB/tally.sh" pass res t/good.bats
	assert_failure 1
	assert_line 'error: pass: t/good.bats: never ran (3 tests held): the sandbox or bats did not start'
	assert_line --index -1 'pass: 0 passed, 3 failed, 0 skipped'
	: >res/good.tap
	echo 1 >res/good.rc
	run sh "$LIB/tally.sh" pass res t/good.bats
	assert_failure 1
	assert_line 'error: pass: t/good.bats: bats printed no plan (1..N): it did not start'
}

@test "run-all.sh: a file runs against the sanitizer build; the last line gives the counts" {
	run clean sh "$BATS_TEST_DIRNAME/run-all.sh" "$PWD/t/good.bats"
	assert_success
	refute_line --partial 'normal build'
	assert_line 'skipped: sanitizer build: 1 x no frobnicator here'
	assert_line --regexp '^time: sanitizer build: [0-9]+ s with 2 jobs; slowest: good [0-9]+ s$'
	assert_line --index -1 '2 passed, 0 failed, 1 skipped'
}

@test "run-all.sh: NRR_CHECK_FULL=1 runs every file in both passes" {
	run clean env NRR_CHECK_FULL=1 sh "$BATS_TEST_DIRNAME/run-all.sh" "$PWD/t/good.bats"
	assert_success
	assert_line 'skipped: normal build: 1 x no frobnicator here'
	assert_line 'skipped: sanitizer build: 1 x no frobnicator here'
	assert_line --index -1 '4 passed, 0 failed, 2 skipped'
}

@test "run-all.sh: a sandbox that cannot start fails loudly, the counts still given" {
	mkdir bin
	printf '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n' >bin/unshare
	chmod +x bin/unshare
	PATH=$PWD/bin:$PATH run clean sh "$BATS_TEST_DIRNAME/run-all.sh" "$PWD/t/good.bats"
	assert_failure 1
	assert_line --partial 'error: cannot start the test sandbox'
	assert_line "error: sanitizer build: $PWD/t/good.bats: never ran (3 tests held): the sandbox or bats did not start"
	assert_line --index -1 '0 passed, 3 failed, 0 skipped'
}

@test "run-all.sh stopped (TERM) while a file's fleet runs: it stops that fleet itself, leaving no process" {
	# a fleet, then a test that waits; no teardown_file stops it, as when bats is cut short
	printf '%s\n' 'setup_file() {' "load $BATS_TEST_DIRNAME/lib/common" 'fleet_start h1' \
		"cat \"\$FLEET_DIR/id\" >$PWD/fleet-id" '}' \
		"@test \"waits\" { touch $PWD/started; sleep 300; }" >t/hangs.bats
	# (env itself in the background, not clean's subshell: $! is then run-all.sh's pid; fd 3
	# closed, or bats would wait for it)
	env -i PATH="$(tr : '\n' <<<"$PATH" | grep -v /bats-core | paste -sd:)" HOME="$HOME" \
		sh "$BATS_TEST_DIRNAME/run-all.sh" "$PWD/t/hangs.bats" >out 2>&1 3>&- &
	pid=$!
	for _ in $(seq 600); do [ -e started ] && break; sleep 0.1; done
	[ -e started ] || { kill "$pid"; cat out; false; }
	tag="fleet-$(cat fleet-id)-"
	[[ $tag == fleet-run* ]]
	grep -lsF -- " tmpfs $tag" /proc/[0-9]*/mountinfo | grep -q .
	kill -s TERM "$pid"
	st=0
	wait "$pid" || st=$?
	[ "$st" = 143 ]
	run cat out
	assert_line 'error: the suite was stopped (TERM); its fleets are stopped'
	run bash -c "grep -lsF -- ' tmpfs $tag' /proc/[0-9]*/mountinfo"
	assert_output ''
	run pgrep -f "$PWD/t/hangs.bats"
	assert_failure 1
}
