#!/usr/bin/env bats
# `make demo` works: what a new user runs first.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
}

@test "the demo deploys to a throwaway host, shows the result and cleans up" {
	cd "$BATS_TEST_DIRNAME/.."
	run bash examples/demo/run.sh 3>&-
	assert_success
	assert_output --partial "ssh handshakes with the target during that run: 1"
	assert_output --partial "Welcome to the nixos-rebuild-remote demo system."
	# its throwaway host's directory is gone
	dir=$(sed -n 's|.*(config: \(/tmp/nrr-demo\.[^/]*\)/ssh_config.*|\1|p' <<<"$output")
	[ -n "$dir" ]
	[ ! -e "$dir" ]
}
