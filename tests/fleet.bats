#!/usr/bin/env bats
# The test harness itself (tests/lib/fleet.bash, tests/flake): fake hosts reached over ssh,
# a deployer, and the machine's own store, /run and ~/.ssh left alone.
# shellcheck disable=SC2016 # remote commands are in single quotes on purpose
bats_require_minimum_version 1.5.0
load lib/common

setup_file() {
	fleet_start t1 t2
	export FLAKE=$BATS_FILE_TMPDIR/flake
	flake_copy "$FLAKE"
	SYSTEM=$(fleet_build "$FLAKE#nixosConfigurations.t1.config.system.build.toplevel")
	export SYSTEM
}

teardown_file() {
	fleet_stop
}

ssh_() {
	# shellcheck disable=SC2086 # NIX_SSHOPTS holds several words
	fleet_local ssh $NIX_SSHOPTS "$@"
}

@test "ssh to a host through NIX_SSHOPTS takes one handshake and logs the command" {
	fleet_reset_counts t1
	run ssh_ t1 'echo "$USER on $(hostname)"'
	assert_success
	assert_output "root on $(hostname)"
	assert_equal "$(fleet_handshakes t1)" 1
	assert_equal "$(fleet_commands t1)" 1
	assert_equal "$(fleet_command_log t1)" 'root echo "$USER on $(hostname)"'
}

@test "a multi-line command is logged on one line" {
	fleet_reset_counts t1
	run ssh_ t1 $'echo a\necho b'
	assert_success
	assert_output $'a\nb'
	assert_equal "$(fleet_command_log t1)" 'root echo a echo b'
}

@test "each host answers on its own address with its own key" {
	assert_not_equal "$(fleet_addr t1)" "$(fleet_addr t2)"
	assert_regex "$(fleet_addr t2)" '^127\.[0-9]+\.[0-9]+\.[0-9]+$'
	fleet_reset_counts t1 t2
	run ssh_ t2 true
	assert_success
	assert_equal "$(fleet_handshakes t2)" 1
	assert_equal "$(fleet_handshakes t1)" 0
}

@test "a command through a ControlMaster adds no handshake" {
	local cp=$BATS_TEST_TMPDIR/cm
	fleet_reset_counts t1
	ssh_ -o ControlMaster=yes -o ControlPath="$cp" -o ControlPersist=60 -fN t1
	run ssh_ -o ControlPath="$cp" t1 echo one
	assert_output one
	run ssh_ -o ControlPath="$cp" t1 echo two
	assert_output two
	ssh_ -o ControlPath="$cp" -O exit t1 2>/dev/null
	assert_equal "$(fleet_handshakes t1)" 1
	assert_equal "$(fleet_commands t1)" 2
}

@test "the fishy user's commands run in fish, its login shell" {
	fleet_reset_counts t1
	run ssh_ fishy@t1 'echo $version; set -q fish_pid; and echo fish'
	assert_success
	assert_line --index 0 --regexp '^[0-9]+\.[0-9]+'
	assert_line --index 1 fish
	assert_equal "$(fleet_command_log t1)" 'fishy echo $version; set -q fish_pid; and echo fish'
}

@test "the deploy user gets root through sudo with its password, and only with it" {
	# sudo's own complaints (a machine whose name does not resolve) are not the answer
	run --separate-stderr ssh_ deploy@t1 "id -un; echo hunter2 | sudo -S -p '' id -u"
	assert_success
	assert_output $'deploy\n0'
	run ssh_ deploy@t1 "echo wrong | sudo -S -p '' id -u"
	assert_failure 1
}

@test "root on a host has its own empty home, not the machine's /root" {
	run ssh_ t1 'echo "$HOME"; ls -A "$HOME"'
	assert_success
	assert_output /run/fleet/t1/root-home
}

@test "the deployer's ssh reads nothing from the machine's ~/.ssh" {
	local before
	before=$(ls -la /root/.ssh 2>&1 || true)
	run fleet_local sh -c 'echo "$HOME"'
	assert_output "$FLEET_DIR/local/home"
	run ssh_ -G t1
	assert_line "hostname $(fleet_addr t1)"
	assert_line "identityfile $FLEET_DIR/id_ed25519"
	assert_equal "$(ls -la /root/.ssh 2>&1 || true)" "$before"
}

@test "nix outside the fleet fails instead of using the machine's store" {
	run -1 nix-store --query --requisites "$SYSTEM"
	assert_output --partial "cannot connect to socket at '$FLEET_DIR/no-nix-outside-the-fleet'"
}

@test "the test flake builds a system in the deployer's store, not the machine's" {
	assert_regex "$SYSTEM" '^/nix/store/[a-z0-9]{32}-nixos-system-t1-25\.05\.base$'
	run fleet_local test -x "$SYSTEM/bin/switch-to-configuration"
	assert_success
	[ ! -e "$SYSTEM" ]
	run fleet_local nix-store --query --requisites "$SYSTEM"
	assert_success
	assert_line --partial -nrr-sw-base
	assert_line --partial -nixos-system-t1-spec1-25.05.base
}

@test "nix-copy-closure from the deployer puts the system in that host's store only" {
	run fleet_local nix-copy-closure --to t1 "$SYSTEM"
	assert_success
	run fleet_exec t1 nix-store --check-validity "$SYSTEM"
	assert_success
	run -1 fleet_exec t2 nix-store --check-validity "$SYSTEM"
	[ ! -e "$SYSTEM" ]
}

@test "nix-copy-closure works for the non-root users, through the host's nix-daemon" {
	local sys
	sys=$(fleet_build "$FLAKE#nixosConfigurations.t2.config.system.build.toplevel")
	run fleet_local nix-copy-closure --to deploy@t2 "$sys"
	assert_success
	run fleet_exec t2 nix-store --check-validity "$sys"
	assert_success
	run ssh_ fishy@t2 "nix-store --check-validity $sys; and echo valid"
	assert_output valid
}

@test "switch-to-configuration on a host records into that host's /run only" {
	fleet_seed t1 "$SYSTEM"
	run fleet_exec t1 "$SYSTEM/bin/switch-to-configuration" test
	assert_success
	run fleet_exec t1 cat /run/nrr-activations
	assert_output --regexp "^test $SYSTEM/bin/switch-to-configuration NIXOS_INSTALL_BOOTLOADER= uid=0 config=t1 at=[0-9]+$"
	run fleet_exec t1 readlink /run/current-system
	assert_output "$SYSTEM"
	run -1 fleet_exec t2 test -e /run/nrr-activations
	run -1 fleet_local test -e /run/nrr-activations
	[ ! -e /run/nrr-activations ]
}

@test "fleet_seed makes a closure valid on a host, and a profile can point at it" {
	fleet_seed t2 "$SYSTEM"
	run fleet_exec t2 nix-env -p /nix/var/nix/profiles/system --set "$SYSTEM"
	assert_success
	run fleet_exec t2 readlink -f /nix/var/nix/profiles/system
	assert_output "$SYSTEM"
	[ ! -e /nix/var/nix/profiles/system ] || [ "$(readlink -f /nix/var/nix/profiles/system)" != "$SYSTEM" ]
}

# Print the deployer's /run/nrr-activations, and empty it for the next test.
local_activations() {
	fleet_local sh -c 'cat /run/nrr-activations && rm /run/nrr-activations'
}

@test "the broken configuration's switch-to-configuration records the call and fails" {
	local broken
	broken=$(fleet_build "$FLAKE#nixosConfigurations.broken.config.system.build.toplevel")
	run -1 fleet_local env NIXOS_INSTALL_BOOTLOADER=1 "$broken/bin/switch-to-configuration" boot
	run local_activations
	assert_output --regexp "^boot $broken/bin/switch-to-configuration NIXOS_INSTALL_BOOTLOADER=1 uid=0 config=broken at=[0-9]+$"
}

@test "a specialisation is a system of its own, and its switch-to-configuration says so" {
	local spec
	spec=$(fleet_local readlink -f "$SYSTEM/specialisation/spec1")
	assert_regex "$spec" '-nixos-system-t1-spec1-25\.05\.base$'
	run fleet_local "$SYSTEM/specialisation/spec1/bin/switch-to-configuration" test
	assert_success
	run local_activations
	assert_output --regexp "^test $spec/bin/switch-to-configuration NIXOS_INSTALL_BOOTLOADER= uid=0 config=t1/spec1 at=[0-9]+$"
}

@test "the nostc configuration has all of a system but switch-to-configuration" {
	local nostc
	nostc=$(fleet_build "$FLAKE#nixosConfigurations.nostc.config.system.build.toplevel")
	run fleet_local ls "$nostc" "$nostc/bin"
	assert_output - <<-EOF
		$nostc:
		bin
		etc
		init
		init-interface-version
		initrd
		kernel
		kernel-params
		nixos-version
		specialisation
		sw
		system

		$nostc/bin:
	EOF
}

@test "the riscv configuration is cross-built: riscv64-linux host, x86_64-linux derivations" {
	local riscv
	run --separate-stderr fleet_local nix eval --raw "$FLAKE#nixosConfigurations.riscv.config.nixpkgs.hostPlatform.system"
	assert_output riscv64-linux
	run --separate-stderr fleet_local nix eval --raw "$FLAKE#nixosConfigurations.riscv.config.system.build.toplevel.system"
	assert_output x86_64-linux
	riscv=$(fleet_build "$FLAKE#nixosConfigurations.riscv.config.system.build.toplevel")
	run fleet_local cat "$riscv/system"
	assert_output riscv64-linux
}

@test "vm, vmWithBootLoader and images.qcow of a configuration build" {
	local vm out
	for vm in vm vmWithBootLoader; do
		out=$(fleet_build "$FLAKE#nixosConfigurations.t1.config.system.build.$vm")
		run fleet_local "$out/bin/run-t1-vm"
		assert_output --partial "of $SYSTEM"
	done
	out=$(fleet_build "$FLAKE#nixosConfigurations.t1.config.system.build.images.qcow")
	run --separate-stderr fleet_local nix eval --raw "$FLAKE#nixosConfigurations.t1.config.system.build.images.qcow.passthru.filePath"
	run fleet_local cat "$out/$output"
	assert_output "fake qcow2 image of $SYSTEM"
}

@test "a new tag gives a new system; default.nix builds the same paths as the flake" {
	local copy=$BATS_TEST_TMPDIR/flake2 sys2 classic
	flake_copy "$copy" v2
	sys2=$(fleet_build "$copy#nixosConfigurations.t1.config.system.build.toplevel")
	assert_regex "$sys2" '-nixos-system-t1-25\.05\.v2$'
	run fleet_local cat "$sys2/nixos-version"
	assert_output 25.05.t1.v2
	classic=$(fleet_local nix-build --no-out-link "$copy/default.nix" -A t1.config.system.build.toplevel)
	assert_equal "$classic" "$sys2"
	classic=$(fleet_local nix-build --no-out-link "$copy/default.nix" --argstr tag base -A t1.config.system.build.toplevel)
	assert_equal "$classic" "$SYSTEM"
}

# True while host $1 runs the builder of the `slow` configuration (or not).
slow_builder_runs() {
	fleet_ps "$1" | grep -q 'sleep 30'
}
slow_builder_gone() {
	! slow_builder_runs "$1"
}

@test "fleet_local_bg runs a command that SIGINT stops; fleet_ps shows the builds of a host" {
	local drv status=0
	drv=$(fleet_local nix eval --raw "$FLAKE#nixosConfigurations.slow.config.system.build.toplevel.drvPath")
	fleet_local nix-copy-closure --to t2 "$drv"
	# shellcheck disable=SC2086 # NIX_SSHOPTS holds several words
	fleet_local_bg "$BATS_TEST_TMPDIR/log" ssh $NIX_SSHOPTS t2 nix-store --realise "$drv"
	_fleet_wait 10 slow_builder_runs t2
	kill -s INT "$FLEET_BG_PID"
	wait "$FLEET_BG_PID" || status=$?
	# ssh catches SIGINT and exits 255 ("Killed by signal 2"), long before the build's 30 s.
	assert_equal "$status" 255
	# ssh does not pass the signal on: the build goes on, as a tool must know.
	slow_builder_runs t2
	run fleet_ps t2
	assert_line --partial "nix-store --realise $drv"
	# This test's own leftovers; fleet_stop would end them too.
	# shellcheck disable=SC2046 # pids
	kill $(fleet_ps t2 | awk '/nix-store --realise|build-system.sh|sleep 30/ { print $1 }')
	_fleet_wait 5 slow_builder_gone t2
}

@test "fleet_stop ends every process of a fleet, frees its addresses and removes its directory" {
	local dir=$BATS_TEST_TMPDIR/f2 tag addr
	(
		FLEET_DIR=$dir
		trap fleet_stop EXIT # whatever fails below
		fleet_start x1
		# Something that outlives its ssh session, in a mount namespace made from the host's
		# (as every nix command run as root makes one).
		ssh_ x1 'setsid unshare --mount sleep 300 >/dev/null 2>&1 </dev/null &'
		fleet_ps x1 >"$BATS_TEST_TMPDIR/ps"
		_fleet_tag >"$BATS_TEST_TMPDIR/tag"
		fleet_addr x1 >"$BATS_TEST_TMPDIR/addr"
		fleet_stop
		fleet_stop # idempotent
	)
	tag=$(cat "$BATS_TEST_TMPDIR/tag")
	addr=$(cat "$BATS_TEST_TMPDIR/addr")
	run cat "$BATS_TEST_TMPDIR/ps"
	assert_line --partial 'sleep 300'
	assert_line --partial nix-daemon
	[ ! -e "$dir" ]
	run _fleet_pids "$tag"
	assert_output ''
	run ss -Hltn "src $addr:${FLEET_PORT:-22}"
	assert_output ''
}

@test "a host started as NAME:riscv64 is a riscv64 board" {
	(
		FLEET_DIR=$BATS_TEST_TMPDIR/f4
		trap fleet_stop EXIT
		fleet_start r1:riscv64
		ssh_ r1 'uname -m; uname -a; cat /proc/sys/kernel/arch 2>/dev/null || uname -m' >"$BATS_TEST_TMPDIR/out"
		# This fleet has a deployer of its own.
		drv=$(fleet_local nix eval --raw "$FLAKE#nixosConfigurations.t1.config.system.build.toplevel.drvPath")
		fleet_local nix-copy-closure --to r1 "$drv" 2>/dev/null
		# Nix there builds riscv64-linux derivations only.
		ssh_ r1 nix-store --realise "$drv" >>"$BATS_TEST_TMPDIR/out" 2>&1 || true
	)
	run cat "$BATS_TEST_TMPDIR/out"
	assert_line --index 0 riscv64
	assert_line --index 1 --regexp ' riscv64 '
	assert_line --index 2 riscv64
	assert_output --partial "a 'x86_64-linux' with features {} is required to build"
	assert_output --partial "but I am a 'riscv64-linux'"
}

@test "fleet_stop cleans up after a fleet_start that failed half-way" {
	local dir=$BATS_TEST_TMPDIR/f3
	(
		FLEET_DIR=$dir
		trap fleet_stop EXIT
		# Not under `run`: the fleet's processes are best the children of the shell that
		# stops them, which then reaps them.
		if fleet_start y1 'bad name' 2>"$BATS_TEST_TMPDIR/err"; then exit 1; fi
		_fleet_tag >"$BATS_TEST_TMPDIR/tag"
	)
	run cat "$BATS_TEST_TMPDIR/err"
	assert_output "fleet: bad host name 'bad name'"
	[ ! -e "$dir" ]
	run _fleet_pids "$(cat "$BATS_TEST_TMPDIR/tag")"
	assert_output ''
}
