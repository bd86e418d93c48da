#!/usr/bin/env bats
# Packaging: make install/uninstall with DESTDIR, and the Nix flake.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start pk
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
}

@test "make install puts the binary, man page and completions under DESTDIR, uninstall removes them" {
	cd "$BATS_TEST_DIRNAME/.."
	d=$BATS_TEST_TMPDIR/root
	run make install DESTDIR="$d" PREFIX=/usr
	assert_success
	[ -x "$d/usr/bin/nixos-rebuild-remote" ]
	[ -f "$d/usr/share/man/man8/nixos-rebuild-remote.8" ]
	[ -f "$d/usr/share/bash-completion/completions/nixos-rebuild-remote" ]
	[ -f "$d/usr/share/zsh/site-functions/_nixos-rebuild-remote" ]
	run make uninstall DESTDIR="$d" PREFIX=/usr
	assert_success
	[ -z "$(find "$d" -type f)" ]
}

@test "flake.nix parses" {
	run nix-instantiate --parse "$BATS_TEST_DIRNAME/../flake.nix"
	assert_success
}

@test "nix flake show lists the package and the dev shell (offline, stand-in nixpkgs)" {
	# outside the git tree, as nix would see only committed files inside it
	src=$BATS_TEST_TMPDIR/src
	mkdir -p "$src"
	cp "$BATS_TEST_DIRNAME/../flake.nix" "$src/"
	run fleet_local nix flake show --no-write-lock-file \
		--override-input nixpkgs "path:$BATS_TEST_DIRNAME/fake-nixpkgs" "path:$src"
	assert_success
	output=$(sed 's/\x1b\[[0-9;]*m//g' <<<"$output")
	assert_output --partial "packages"
	assert_output --partial "devShells"
	assert_output --partial "default: package 'nixos-rebuild-remote-0.1.0'"
}
