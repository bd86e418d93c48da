#!/usr/bin/env bats
# See before you switch: the package diff of the target's system, --ask,
# and what it costs.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" diff
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

packages() { printf '%s\n' "$*" >"$F/packages"; }

@test "a changed, an added and a removed package: exactly those three lines, with versions and sizes" {
	packages hello-2.12.1 nano-7.2 linux-6.6.1
	nrr switch --flake "$F#pkgs" --target-host t1
	packages hello-2.12.2 ripgrep-14.1.0 linux-6.6.1
	fleet_reset_counts t1
	run nrr switch --flake "$F#pkgs" --target-host t1 --diff
	assert_success
	assert_output --regexp $'Changed:\n  > hello +2\\.12\\.1 -> 2\\.12\\.2 +0 B'
	assert_output --regexp $'Added:\n  \\+ ripgrep +14\\.1\\.0 +\\+7\\.[0-9] KiB'
	assert_output --regexp $'Removed:\n  - nano +7\\.2 +-4\\.[0-9] KiB'
	assert_output --regexp 'Closure: [0-9]+ -> [0-9]+ paths'
	assert_output --partial "This run copied"
	refute_output --partial "linux"
	# the diff and the copy rode on the deploy conversation: no other remote command
	[ "$(fleet_commands t1)" = 1 ]
}

@test "a running system this machine's store lacks: the target makes the diff" {
	packages hello-2.11 zstd-1.5.5 linux-6.6.1
	nrr switch --flake "$F#pkgs" --target-host t1
	running=$(fleet_exec t1 readlink -f /run/current-system)
	# gone from here (its packages too): only the target can list it
	fleet_local nix-store --delete "$running" $(fleet_local nix-store -qR "$running" | grep -- '-zstd-') >/dev/null 2>&1
	run fleet_local nix-store --check-validity "$running"
	assert_failure
	# and never deployed from here: no closure remembered either
	rm -rf "$FLEET_DIR/local/home/.cache/nixos-rebuild-remote/closures"
	packages hello-2.12.1 nano-7.2 linux-6.6.1
	run nrr switch --flake "$F#pkgs" --target-host t1 --diff
	assert_success
	assert_output --regexp $'Changed:\n  > hello +2\\.11 -> 2\\.12\\.1'
	assert_output --regexp $'Removed:\n  - zstd +1\\.5\\.5'
	assert_output --regexp $'Added:\n  \\+ nano +7\\.2'
}

@test "when this store holds the running system, the diff is made here: the target lists no closure" {
	packages hello-2.12.2 nano-7.2 linux-6.6.1
	# asked for its closures, the target would answer a line that is none (exit 14): it is
	# not asked
	printf '%s\n' 's/^diff-old$/diff-old\nnot a store path\t1/' |
		fleet_exec t1 sh -c 'cat >/run/nrr-forge'
	run nrr switch --flake "$F#pkgs" --target-host t1 --diff
	fleet_exec t1 rm -f /run/nrr-forge
	assert_success
	assert_output --regexp $'Changed:\n  > hello +2\\.12\\.1 -> 2\\.12\\.2'
	assert_output --regexp 'Closure: [0-9]+ -> [0-9]+ paths'
}

@test "a system deployed from here is remembered: the next diff asks no store, even after this one collected it" {
	packages hello-2.13 zstd-1.5.6 linux-6.6.1
	nrr switch --flake "$F#pkgs" --target-host t1 --diff
	running=$(fleet_exec t1 readlink -f /run/current-system)
	kept=$FLEET_DIR/local/home/.cache/nixos-rebuild-remote/closures/${running##*/}
	assert [ -f "$kept" ]
	assert_equal "$(stat -c %a "$kept")" 600
	fleet_local nix-store --delete "$running" $(fleet_local nix-store -qR "$running" | grep -- '-zstd-') >/dev/null 2>&1
	run fleet_local nix-store --check-validity "$running"
	assert_failure
	# asked for its closures, the target would answer a line that is none (exit 14)
	printf '%s\n' 's/^diff-old$/diff-old\nnot a store path\t1/' |
		fleet_exec t1 sh -c 'cat >/run/nrr-forge'
	packages hello-2.14 nano-7.2 linux-6.6.1
	run nrr switch --flake "$F#pkgs" --target-host t1 --diff
	fleet_exec t1 rm -f /run/nrr-forge
	assert_success
	assert_output --regexp $'Changed:\n  > hello +2\\.13 -> 2\\.14'
	assert_output --regexp $'Removed:\n  - zstd +1\\.5\\.6'
}

@test "--json reports the deploy with its diff on stdout" {
	packages hello-2.12.3 ripgrep-14.1.0 linux-6.6.1
	run --separate-stderr nrr switch --flake "$F#pkgs" --target-host t1 --json
	assert_success
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		r = json.load(open("report.json"))
		assert r["result"] == "ok" and r["target"] == "t1", r
		assert r["storePath"].startswith("/nix/store/"), r
		assert r["generation"]["after"] == r["generation"]["before"] + 1, r
		assert [c["name"] for c in r["diff"]["changed"]] == ["hello"], r["diff"]
		assert r["diff"]["changed"][0]["newVersions"] == ["2.12.3"], r["diff"]
	PY
}

@test "a no-op deploy with --diff says so and costs one remote command" {
	fleet_reset_counts t1
	run nrr switch --flake "$F#pkgs" --target-host t1 --diff
	assert_success
	assert_output --partial "No package versions changed."
	[ "$(fleet_commands t1)" = 1 ]
}

@test "not on a terminal the diff is not shown unless asked for; --no-diff never" {
	run nrr switch --flake "$F#pkgs" --target-host t1
	assert_success
	refute_output --partial "No package versions changed."
	TYPED= run nrr_tty switch --flake "$F#pkgs" --target-host t1
	assert_output --partial "No package versions changed."
	TYPED= run nrr_tty switch --flake "$F#pkgs" --target-host t1 --no-diff
	refute_output --partial "No package versions changed."
}

@test "--ask, answered n: the target is left exactly as it was (exit 11)" {
	packages hello-2.13 linux-6.6.1
	before=$(profile_of t1)
	acts=$(fleet_exec t1 wc -l /run/nrr-activations)
	cur=$(fleet_exec t1 readlink -f /run/current-system)
	TYPED=n run nrr_tty switch --flake "$F#pkgs" --target-host t1 --ask
	assert_failure 11
	assert_output --partial "Activate on t1? [y/N]"
	assert_output --partial "hello"
	[ "$(profile_of t1)" = "$before" ]
	[ "$(fleet_exec t1 wc -l /run/nrr-activations)" = "$acts" ]
	[ "$(fleet_exec t1 readlink -f /run/current-system)" = "$cur" ]
}

@test "--ask, answered y: it switches" {
	before=$(profile_of t1)
	acts=$(fleet_exec t1 sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l')
	TYPED=y run nrr_tty switch --flake "$F#pkgs" --target-host t1 --ask
	assert_success
	assert_output --partial "Activate on t1? [y/N]"
	# this run activated: one activation more, a new profile
	[ "$(fleet_exec t1 sh -c 'cat /run/nrr-activations | wc -l')" = $((acts + 1)) ]
	[ "$(profile_of t1)" != "$before" ]
	run last_activation t1
	assert_output --partial "switch"
	assert_output --partial "config=pkgs"
}

@test "--ask without a terminal is refused unless --yes" {
	packages hello-2.14 linux-6.6.1
	run fleet_local setsid "$NRR" switch --flake "$F#pkgs" --target-host t1 --ask </dev/null
	assert_failure 2
	assert_output --partial "--ask needs a terminal"
	run fleet_local setsid "$NRR" switch --flake "$F#pkgs" --target-host t1 --ask --yes </dev/null
	assert_success
}
