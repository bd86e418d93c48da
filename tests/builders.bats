#!/usr/bin/env bats
# Nix's own distributed builds stay the engine for fleets: the systems of every host of a
# fleet are built in one nix call, so that --builders and --max-jobs spread them over build
# machines (two test hosts here, reached through nix's ssh:// builders with the fleet's ssh
# config).

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
	retag spread
	local tag=spread
	run --separate-stderr nrr switch --flake "$F" --on 't1,t2,t3' --max-jobs 0 \
		--builders 'ssh://b1 x86_64-linux - 1 1; ssh://b2 x86_64-linux - 1 1' --json -v
	[ "$status" = 0 ] || fail "exit $status: $stderr"
	# one nix call built them all (-v shows each command the tool runs)
	n=$(grep -c "^\$ 'nix-store' '--realise' " <<<"$stderr")
	[ "$n" = 1 ] || fail "$n nix-store --realise calls: $stderr"
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
