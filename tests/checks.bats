#!/usr/bin/env bats
# What is refused before anything changes on the target: a system for
# another architecture, a system that would not boot, a refused key.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 board:riscv64 power:ppc64le mipsle:mips64el mipsbe:mips64 arm:armv7l pi:aarch64
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" checks
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

# HOST takes CONFIG: the switch succeeds and HOST's profile is that system.
takes() {
	run --separate-stderr nrr switch --flake "$F#$2" --target-host "$1"
	assert_success
	[ "$(profile_of "$1")" = "$output" ]
}

# HOST refuses CONFIG with exit 7 and MESSAGE; HOST's profile stays.
refuses() {
	local before
	before=$(profile_of "$1")
	run nrr switch --flake "$F#$2" --target-host "$1"
	assert_failure 7
	assert_output --partial "$3"
	[ "$(profile_of "$1")" = "$before" ]
}

@test "an x86_64 system is never activated on a riscv64 board (exit 7, nothing changed)" {
	before=$(profile_of board)
	run nrr switch --flake "$F#t1" --target-host board
	assert_failure 7
	assert_output --partial "error: 'board' is a riscv64 machine; the new system is built for x86_64-linux"
	[ "$(profile_of board)" = "$before" ]
	run fleet_exec board test -e /run/nrr-activations
	assert_failure 1
}

@test "a ppc64le machine (uname's name) takes a powerpc64le-linux system (Nix's), and refuses an x86_64 one" {
	takes power ppc
	refuses power t1 "error: 'power' is a powerpc64le machine; the new system is built for x86_64-linux"
}

@test "a little-endian MIPS board (uname says mips64) takes a mips64el-linux system, and refuses a big-endian one" {
	takes mipsle mipsel
	refuses mipsle mipsbe "error: 'mipsle' is a mips64el machine; the new system is built for mips64-linux"
	# a 32-bit little-endian system runs on it too
	takes mipsle mips32el
}

@test "a MIPS board whose kernel does not say its byte order (before Linux 6.2) is told by its shell's ELF header" {
	[ -e /sys/kernel/cpu_byteorder ] || skip "this kernel has no /sys/kernel/cpu_byteorder to hide"
	# an empty file where the kernel's word was: the board's od reads its /bin/sh (little-endian)
	fleet_exec mipsle mount --bind /dev/null /sys/kernel/cpu_byteorder
	run nrr switch --flake "$F#mipsbe" --target-host mipsle
	fleet_exec mipsle umount /sys/kernel/cpu_byteorder
	assert_failure 7
	assert_output --partial "error: 'mipsle' is a mips64el machine; the new system is built for mips64-linux"
}

@test "a big-endian MIPS board (uname says mips64 too) takes a mips64-linux system, and refuses a little-endian one" {
	# its byte order is its kernel's word (Linux 6.2 on), which the fake board fakes
	[ -e /sys/kernel/cpu_byteorder ] || skip "this kernel has no /sys/kernel/cpu_byteorder to fake a big-endian board with"
	takes mipsbe mipsbe
	refuses mipsbe mipsel "error: 'mipsbe' is a mips64 machine; the new system is built for mips64el-linux"
}

@test "an armv7l board takes armv7l-linux and armv6l-linux systems, and refuses an aarch64 one" {
	takes arm armv7
	takes arm armv6
	refuses arm arm64 "error: 'arm' is an armv7l machine; the new system is built for aarch64-linux"
}

@test "an aarch64 board takes a 32-bit ARM system only once it runs one: its CPU runs 32-bit code" {
	takes pi arm64
	# not every aarch64 CPU runs 32-bit code, and nothing shows this one does
	refuses pi armv7 "error: 'pi' is an aarch64 machine; the new system is built for armv7l-linux"
	assert_output --partial "hint: nothing was changed; an aarch64 machine runs a 32-bit ARM system only if its CPU runs 32-bit code"
	# the user knows it does
	run nrr switch --flake "$F#armv7" --target-host pi --no-validate
	assert_success
	# now it runs one: the next 32-bit system needs no --no-validate, and 64-bit is still fine
	takes pi armv6
	takes pi arm64
}

@test "a system cross-built for the board's architecture is accepted" {
	takes board riscv
}

@test "a native riscv64 configuration is refused before anything is built: nothing here builds for riscv64 (exit 7)" {
	drv=$(fleet_local nix path-info --derivation "$F#nixosConfigurations.riscvnative.config.system.build.toplevel")
	before=$(profile_of board)
	run nrr switch --flake "$F#riscvnative" --target-host board
	assert_failure 7
	assert_output --partial "error: cannot build 'riscvnative' for 'board' (riscv64-linux): its derivations are for riscv64-linux, which this machine (x86_64-linux) cannot build"
	assert_output --partial "hint: build on a riscv64-linux machine (--build-host"
	refute_output --partial "building"
	# not one of its derivations was built: every output is still invalid
	outs=$(fleet_local nix-store --query --outputs "$drv")
	[[ $outs == /nix/store/* ]]
	# shellcheck disable=SC2086 # one word per path
	run fleet_local nix-store --check-validity --print-invalid $outs
	assert_success
	assert_output "$outs"
	[ "$(profile_of board)" = "$before" ]
}

@test "the same configuration deploys when the board builds it itself (--build-host board)" {
	run --separate-stderr nrr switch --flake "$F#riscvnative" --target-host board --build-host board
	assert_success
	[ "$(profile_of board)" = "$output" ]
	[ "$(fleet_exec board cat "$output/system")" = riscv64-linux ]
}

@test "a builder for riscv64-linux makes it buildable: the check lets the build start" {
	run nrr switch --flake "$F#riscvnative" --target-host board --builders 'ssh://nowhere.invalid riscv64-linux'
	# nix then tries that builder (which does not exist): the failure is the build's, not ours
	assert_failure 5
	refute_output --partial "cannot build '"
}

@test "--no-validate skips the architecture check" {
	run nrr test --flake "$F#t1" --target-host board --no-validate
	assert_success
}

@test "a key the target refuses is exit 3 with a hint" {
	ssh-keygen -q -t ed25519 -N '' -f other_key
	sed "s|IdentityFile .*|IdentityFile $PWD/other_key|" "$FLEET_DIR/ssh_config" >cfg
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host t1
	assert_failure 3
	assert_output --partial "Permission denied"
	assert_output --partial "hint: ssh refused the login as 'root'"
}

@test "a changed host key is refused (exit 3), never accepted" {
	key=$(ssh-keygen -q -t ed25519 -N '' -f hk && cut -d' ' -f1-2 hk.pub)
	printf '%s %s\n' "$(fleet_addr t1)" "$key" >kh
	sed "s|UserKnownHostsFile .*|UserKnownHostsFile $PWD/kh|" "$FLEET_DIR/ssh_config" >cfg
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host t1
	assert_failure 3
	assert_output --partial "hint: the host key of 't1' is unknown or has changed"
}

@test "a copy that fails names the host and the step (exit 6)" {
	run nrr switch --store-path /nix/store/00000000000000000000000000000000-missing --target-host t1
	assert_failure 6
	assert_output --partial "error: cannot list the closure of '/nix/store/00000000000000000000000000000000-missing' on 'localhost'"
}

@test "a failing build is exit 5, naming what failed; here and on a build host" {
	before=$(profile_of t1)
	run nrr switch --flake "$F#failbuild" --target-host t1
	assert_failure 5
	assert_output --partial "fake build failure of failbuild"
	assert_output --regexp "error: building '.*failbuild.*' failed: builder for '/nix/store/.*-nixos-system-failbuild-25.05.checks.drv' failed with exit code 1"
	run nrr switch --flake "$F#failbuild" --target-host t1 --build-host board --no-validate
	assert_failure 5
	assert_output --partial "on 'board' failed"
	[ "$(profile_of t1)" = "$before" ]
}
