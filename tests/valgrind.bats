#!/usr/bin/env bats
# The main flows under valgrind's memcheck: each ends with the tool's own exit status (never
# valgrind's 99) and valgrind reports nothing: no invalid access, no use of uninitialised
# memory, no definite or indirect leak. Fails without valgrind (make deps installs it); skipped
# over the ASan build (NRR_SANITIZED=1), where valgrind does not apply (run-all.sh's sanitizer
# pass leaves this file out).

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run --separate-stderr
bats_require_minimum_version 1.5.0

# Says why this file does not apply here, if it does not.
not_here() {
	if [ "${NRR_SANITIZED-}" = 1 ]; then
		echo "the sanitizer build is checked by ASan, not valgrind"
	else
		return 1
	fi
}

setup_file() {
	! not_here >/dev/null || return 0
	load lib/common
	fleet_start t1 b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" valgrind
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	local why
	! why=$(not_here) || skip "$why"
	load lib/common
	command -v valgrind >/dev/null || fail "valgrind is not installed (make deps)"
	# The tool, as common.bash runs it, but stopped if a run does not end within 30 s.
	nrr() {
		fleet_local timeout -k 5 30 "$NRR" "$@"
	}
	cd "$BATS_TEST_TMPDIR" || return
}

# Runs the tool under memcheck in the deployer, as `run` does (status, output, lines); what
# valgrind says goes to $BATS_TEST_TMPDIR/valgrind.log.
vg() {
	# (a run that does not end within 60 s is stopped: status 124 or 137)
	run --separate-stderr fleet_local timeout -k 5 60 valgrind --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --track-fds=no -q \
		--log-file="$BATS_TEST_TMPDIR/valgrind.log" "$NRR" "$@"
}

# Fails unless the last vg exited with $1 and valgrind reported nothing.
vg_clean() {
	if [ -s "$BATS_TEST_TMPDIR/valgrind.log" ]; then
		fail "valgrind: $(cat "$BATS_TEST_TMPDIR/valgrind.log")"
	fi
	[ "$status" != 124 ] && [ "$status" != 137 ] || fail "the run did not end within 60 s: $stderr"
	[ "$status" = "$1" ] || fail "exit $status, not $1: $stderr"
}

@test "--help" {
	vg --help
	vg_clean 0
	assert_line --index 0 "usage: nixos-rebuild-remote ACTION [OPTIONS]"
}

@test "a usage error" {
	vg switch --target-host t1 --rollback --store-path /nix/store/x
	vg_clean 2
}

@test "switch to a target, fresh, then again as a no-op" {
	retag fresh
	vg switch --flake "$F#t1" --target-host t1
	vg_clean 0
	assert_output "$(toplevel t1)"
	[ "$(profile_of t1)" = "$output" ]
	vg switch --flake "$F#t1" --target-host t1
	vg_clean 0
}

@test "switch with --build-host" {
	retag bh
	vg switch --flake "$F#t1" --target-host t1 --build-host b1
	vg_clean 0
	[ "$(profile_of t1)" = "$output" ]
}

@test "a fleet of two hosts, each deploy in a fiber of the one process" {
	retag fibers
	vg switch --flake "$F" --on t1,b1 --parallel 0
	vg_clean 0
	[ "$(profile_of t1)" = "$(toplevel t1)" ]
	[ "$(profile_of b1)" = "$(toplevel b1)" ]
}

@test "list-generations --json" {
	retag lg
	nrr switch --flake "$F#t1" --target-host t1
	vg list-generations --json --target-host t1
	vg_clean 0
	run jq -r '.[] | select(.current) | .storePath' <<<"$output"
	assert_output "$(profile_of t1)"
}

@test "a failing activation" {
	retag broken
	vg switch --flake "$F#broken" --target-host t1
	vg_clean 8
}

@test "a check that refuses: a missing specialisation" {
	retag nospec
	vg switch --flake "$F#t1" --target-host t1 -c nope
	vg_clean 7
}

@test "a failing build" {
	vg switch --flake "$F#failbuild" --target-host t1
	vg_clean 5
}

@test "an unreachable host" {
	addr=$(fleet_addr t1)
	vg switch --flake "$F#t1" --target-host "root@${addr%.*}.250"
	vg_clean 3
}

@test "a host that ssh -G cannot resolve" {
	NIX_SSHOPTS="-F $BATS_TEST_TMPDIR/no-such-config" vg switch --flake "$F#t1" --target-host t1
	vg_clean 2
}

@test "dry-build" {
	retag dry
	vg dry-build --flake "$F#t1"
	vg_clean 0
}

@test "switch --rollback on a target" {
	retag rb1
	nrr switch --flake "$F#t1" --target-host t1
	first=$(profile_of t1)
	retag rb2
	nrr switch --flake "$F#t1" --target-host t1
	vg switch --rollback --target-host t1
	vg_clean 0
	[ "$(profile_of t1)" = "$first" ]
}

# A hive node's keys as its fleet parent writes them on the child's stdin (lib/deploykeys.h):
# every field its length, a newline, its bytes.
put() { printf '%s\n%s' "${#1}" "$1"; }

@test "a hive node's child with keys on its stdin: switch, then --keys-only, then a keyCommand that fails" {
	retag keys
	sys=$(toplevel t1)
	{
		put "nrr-keys 1"; put t1; put 2
		put a; put /run/keys; put root; put root; put 0600; put pre; put text; put AAA
		put b; put /run/keys; put root; put root; put 0644; put post; put command; put 2
		put printf; put BBB
	} >keys
	child() {
		run --separate-stderr fleet_local sh -c 'exec "$@" <"$0" 3>/dev/null' "$1" timeout -k 5 60 \
			valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--track-fds=no -q --log-file="$BATS_TEST_TMPDIR/valgrind.log" "$NRR" "${@:2}" \
			--target-host t1 --progress-fd 3 --keys-fd 0 --elevate none --no-diff
	}
	child keys switch --store-path "$sys"
	vg_clean 0
	assert_equal "$(fleet_exec t1 cat /run/keys/a /run/keys/b)" AAABBB
	child keys test --keys-only
	vg_clean 0
	[[ $stderr == *"keys on 't1': 0 written, 0 fixed, 0 waiting for their owner, 2 unchanged"* ]]
	{ put "nrr-keys 1"; put t1; put 1; put b; put /run/keys; put root; put root; put 0644; put post
	  put command; put 1; put false; } >badkeys
	child badkeys switch --store-path "$sys"
	vg_clean 1
	[[ $stderr == *"error: keyCommand of key 'b' of 't1' failed (status 1)"* ]]
}

@test "apply build of a hive, evaluated, then from the evaluation cache" {
	cp -RL "$BATS_TEST_DIRNAME/hive" hive
	rm -rf hive/evaluated
	cd hive
	# every node: the info and the systems at once, in shards
	vg apply build -v
	vg_clean 0
	[[ $stderr == *'what = "shard"'* ]] || fail "no shards: $stderr"
	assert_line --regexp '^worker /nix/store/'
	# --on: the info from the cache, the selected systems evaluated, then cached
	vg apply build --on @back -v
	vg_clean 0
	[[ $stderr == *"eval cache: kept the answer for toplevels"* ]] || fail "not kept: $stderr"
	vg apply build --on @back -v
	vg_clean 0
	[[ $stderr == *"eval cache: hit for toplevels"* ]] || fail "no hit: $stderr"
	assert_output --regexp '^worker /nix/store/'
}
