#!/usr/bin/env bats
# How a fleet (--on) gets its systems (lib/fleetbuild.c). Nix's own distributed builds stay
# the engine: the systems of every host are built in one nix call, so that --builders and
# --max-jobs spread them over build machines (two test hosts here, reached through nix's
# ssh:// builders with the fleet's ssh config). Evaluation runs in --eval-jobs nix processes
# at once; with -k a host whose evaluation fails is named and the others go on.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 t2 t3 b1 b2
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" builders
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || return
}

# The store paths of host $1 whose names contain the tag $2.
built_on() { fleet_exec "$1" find /nix/store -maxdepth 1 -name "*$2*" ! -name '*.drv' -printf '%f\n'; }

@test "a fleet's systems build in one nix call, spread over two build machines; every host switched" {
	local tag=spread G=$BATS_TEST_TMPDIR/g
	# each system takes 2 s to build, so that the three are under way at once: one build
	# machine (a slot each) cannot take them all
	flake_copy "$G" "$tag"
	sed -i 's/^  \(t[123]\) = mkConfig "\(t[123]\)" { };$/  \1 = mkConfig "\2" { sleep = 2; };/' "$G/systems.nix"
	[ "$(grep -c 'sleep = 2; }' "$G/systems.nix")" = 3 ]
	run --separate-stderr nrr switch --flake "$G" --on 't1,t2,t3' --max-jobs 0 \
		--builders 'ssh://b1 x86_64-linux - 1 1; ssh://b2 x86_64-linux - 1 1' --json -v
	[ "$status" = 0 ] || fail "exit $status: $stderr"
	# one nix call built them all (-v shows each command the tool runs), and listed their
	# closure: nix-store -qR --force-realise
	n=$(grep -c -e "^\$ 'nix-store' '--realise' " -e "^\$ 'nix-store' '--query' '--requisites' '--force-realise' " <<<"$stderr")
	[ "$n" = 1 ] || fail "$n nix-store calls that build: $stderr"
	# built there, not here (--max-jobs 0 leaves no local build slot), on both: a builder
	# receives paths only as the inputs of a build it does, so any path there is a build's
	b1=$(built_on b1 "$tag") b2=$(built_on b2 "$tag")
	[ -n "$b1" ] || fail "b1 built nothing; b2 built: $b2"
	[ -n "$b2" ] || fail "b2 built nothing; b1 built: $b1"
	# every host switched to its own system
	for h in t1 t2 t3; do
		run last_activation "$h"
		assert_output --regexp "switch /nix/store/[a-z0-9]{32}-nixos-system-$h-25\.05\.$tag/bin/switch-to-configuration"
	done
}

# A copy of the flake where t2's configuration cannot be evaluated.
broken_t2() {
	flake_copy "$1" "$2"
	sed -i 's/^  t2 = mkConfig "t2" { };$/  t2 = throw "t2 does not evaluate";/' "$1/systems.nix"
	grep -q 't2 does not evaluate' "$1/systems.nix"
}

@test "-k: a host whose evaluation fails is named, the others switch (exit 12), however evaluated" {
	for jobs in 1 3; do
		broken_t2 "$BATS_TEST_TMPDIR/g$jobs" "evalk$jobs"
		run --separate-stderr nrr switch --flake "$BATS_TEST_TMPDIR/g$jobs" --on t1,t2,t3 -k \
			--eval-jobs "$jobs"
		[ "$status" = 12 ] || fail "--eval-jobs $jobs: exit $status: $stderr"
		grep -qx "error: t2: evaluating its system failed: t2 does not evaluate" <<<"$stderr" ||
			fail "--eval-jobs $jobs: t2 not named: $stderr"
		for h in t1 t3; do
			run last_activation "$h"
			assert_output --regexp "switch /nix/store/[a-z0-9]{32}-nixos-system-$h-25\.05\.evalk$jobs/"
		done
		run last_activation t2
		refute_output --partial "evalk$jobs"
	done
}

@test "without -k an evaluation failure starts no host (exit 13), with a hint" {
	broken_t2 "$BATS_TEST_TMPDIR/g" evalnok
	fleet_reset_counts t1 t3
	for jobs in 1 3; do
		run --separate-stderr nrr switch --flake "$BATS_TEST_TMPDIR/g" --on t1,t2,t3 --eval-jobs "$jobs"
		[ "$status" = 13 ] || fail "--eval-jobs $jobs: exit $status: $stderr"
		grep -q "^error: evaluating the fleet's systems failed: .*t2 does not evaluate" <<<"$stderr" ||
			fail "--eval-jobs $jobs: $stderr"
		grep -qx "hint: with -k (--keep-going) the other hosts go on" <<<"$stderr" || fail "$stderr"
	done
	[ "$(fleet_commands t1)" = 0 ] && [ "$(fleet_commands t3)" = 0 ]
	# what every host shares does not evaluate: -k would not help, and the hint says so
	flake_copy "$BATS_TEST_TMPDIR/s" evalshared
	sed -i 's|^  sw = drv |  sw = throw "the package set does not evaluate"; unused = drv |' \
		"$BATS_TEST_TMPDIR/s/systems.nix"
	run --separate-stderr nrr switch --flake "$BATS_TEST_TMPDIR/s" --on t1,t2,t3 --eval-jobs 3
	[ "$status" = 13 ] || fail "exit $status: $stderr"
	grep -q "^error: evaluating the fleet's systems failed: .*the package set does not evaluate" \
		<<<"$stderr" || fail "$stderr"
	grep -qx "hint: every group of hosts (3) failed to evaluate: the error is in what they share, which -k (--keep-going) does not pass" \
		<<<"$stderr" || fail "$stderr"
}

@test "--eval-jobs N: N nix processes evaluate the fleet; a small fleet takes one" {
	retag evaljobs
	run --separate-stderr nrr switch --flake "$F" --on t1,t2,t3 --eval-jobs 2 -v
	[ "$status" = 0 ] || fail "exit $status: $stderr"
	[ "$(grep -c "^\$ 'nix' .* 'eval' " <<<"$stderr")" = 2 ] || fail "$stderr"
	retag evaljobs2
	run --separate-stderr nrr switch --flake "$F" --on t1,t2,t3 -v
	[ "$status" = 0 ] || fail "exit $status: $stderr"
	[ "$(grep -c "^\$ 'nix' .* 'eval' " <<<"$stderr")" = 1 ] || fail "$stderr"
	run nrr switch --flake "$F" --target-host t1 --eval-jobs 2
	assert_failure 2
	assert_line --index 0 "error: --target-user, --parallel and --eval-jobs go with --on"
}

@test "a store never opened here gets one evaluator: two would race to make its gcroots" {
	# as on a fresh machine without a daemon: the first nix to open the store makes
	# gcroots and its profiles link, and two at once failed ("... File exists")
	fleet_local sh -c 'cd /nix/var/nix && rm -rf gcroots.away && { [ ! -e gcroots ] || mv gcroots gcroots.away; }'
	retag fresh-store
	run --separate-stderr nrr switch --flake "$F" --on t1,t2,t3 --eval-jobs 2 -v
	fleet_local sh -c 'cd /nix/var/nix && [ ! -e gcroots.away ] || { rm -rf gcroots && mv gcroots.away gcroots; }'
	[ "$status" = 0 ] || fail "exit $status: $stderr"
	[ "$(grep -c "^\$ 'nix' .* 'eval' " <<<"$stderr")" = 1 ] || fail "$stderr"
}
