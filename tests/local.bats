#!/usr/bin/env bats
# Actions on this machine: the VM and image builds, repl and edit, and
# switching the machine the tool runs on. "This machine" is a fake host:
# the tool runs inside t1's namespace, so the real system is never touched.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" local
	# where t1 sees it: its /tmp is its own, /run/fleet is shared
	export HF=/run/fleet/hostflake
	flake_copy "$FLEET_DIR/hostflake" onhost
	# the binary too: the checkout may sit where the host cannot see it
	# (a host has its own /tmp)
	cp "$NRR" "$FLEET_DIR/nrr"
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

# The tool run as root on t1 itself, with the fleet's nix settings.
on_t1() { fleet_exec t1 env NIX_CONFIG="$NIX_CONFIG" ASAN_OPTIONS="${ASAN_OPTIONS-}" UBSAN_OPTIONS="${UBSAN_OPTIONS-}" /run/fleet/nrr "$@"; }

@test "build-vm makes ./result with the VM's run script, and prints the script on stdout as nixos-rebuild does" {
	run --separate-stderr nrr build-vm --flake "$F#t1"
	assert_success
	assert_output "$(fleet_local readlink -f result)/bin/run-t1-vm"
	[[ $stderr == *"Done. The virtual machine can be started by running"* ]] || fail "stderr: $stderr"
	# ./result points into the deployer's own store
	fleet_local test -x result/bin/run-t1-vm
}

@test "build-vm-with-bootloader builds the boot loader variant" {
	run nrr build-vm-with-bootloader --flake "$F#t1"
	assert_success
	run fleet_local ./result/bin/run-t1-vm
	assert_output --partial "vm with boot loader"
}

@test "build-image builds the named variant, and prints the image file (its passthru.filePath) on stdout as nixos-rebuild does" {
	run --separate-stderr nrr build-image --flake "$F#t1" --image-variant qcow
	assert_success
	fleet_local test -e result/nixos.qcow2
	assert_output "$(fleet_local readlink -f result)/nixos.qcow2"
	[[ $stderr == *"Done. The disk image can be found in"* ]] || fail "stderr: $stderr"
	# classic mode finds it the same way
	run --separate-stderr nrr build-image --file "$F/default.nix" --attr t1 --image-variant qcow --no-link
	assert_success
	assert_output --regexp '^/nix/store/[^/]+/nixos.qcow2$'
}

@test "repl opens nix repl with the configuration in scope" {
	_fleet_local_argv
	# the value only an evaluated configuration gives: not in what was typed, nor in any name
	# nix's own messages could quote
	run bash -c 'printf "%s\n" "config.networking.hostName + \"-in-scope\""| "$@"' _ \
		"${_FLEET_LOCAL[@]}" "$NRR" repl --flake "$F#t1"
	assert_success
	assert_output --partial '"t1-in-scope"'
}

@test "repl (classic): a file that is an attribute set is taken as it is, a function is called" {
	_fleet_local_argv
	printf '{ cfg = (let f = import %s/default.nix; in if builtins.isFunction f then f { } else f).t1; }\n' \
		"$F" >set.nix
	for file in set.nix "$F/default.nix"; do
		attr=cfg
		[ "$file" = set.nix ] || attr=t1
		run bash -c 'printf "%s\n" "config.networking.hostName + \"-classic\"" | "$@"' _ \
			"${_FLEET_LOCAL[@]}" "$NRR" repl --file "$file" --attr "$attr"
		assert_success
		assert_output --partial '"t1-classic"'
	done
}

@test "edit (classic) opens nixos-config in \$EDITOR" {
	mkdir -p some/where && touch some/where/configuration.nix
	EDITOR=echo run nrr edit -I "nixos-config=$PWD/some/where/configuration.nix"
	assert_success
	assert_output "$PWD/some/where/configuration.nix"
}

@test "edit (classic) takes \$NIXOS_CONFIG first, a directory's default.nix, and fails on a file that is not there" {
	mkdir -p mine/dir && touch mine/configuration.nix mine/dir/default.nix
	NIXOS_CONFIG=$PWD/mine/configuration.nix EDITOR=echo run nrr edit -I "nixos-config=$PWD/other.nix"
	assert_success
	assert_output "$PWD/mine/configuration.nix"
	NIXOS_CONFIG=$PWD/mine/dir EDITOR=echo run nrr edit
	assert_success
	assert_output "$PWD/mine/dir/default.nix"
	NIXOS_CONFIG=$PWD/mine/absent.nix EDITOR=echo run nrr edit
	assert_failure 1
	assert_output --partial "error: cannot find the NixOS configuration file '$PWD/mine/absent.nix'"
}

@test "--upgrade updates root's channels as nixos-rebuild does: nixos and the marked ones (all with --upgrade-all); a failure is a warning" {
	local ch=/nix/var/nix/profiles/per-user/root/channels
	fleet_exec t1 sh -c "mkdir -p $ch/nixos $ch/other $ch/marked && touch $ch/marked/.update-on-nixos-rebuild"
	mkdir -p "$FLEET_DIR/fakebin"
	# seen from t1, $FLEET_DIR is /run/fleet
	printf '#!/bin/sh\necho "$*" >>/run/fleet/channel.log\n[ ! -e /run/fleet/channel.fail ]\n' \
		>"$FLEET_DIR/fakebin/nix-channel"
	chmod +x "$FLEET_DIR/fakebin/nix-channel"
	rm -f "$FLEET_DIR/channel.log" "$FLEET_DIR/channel.fail"
	up() {
		fleet_exec t1 sh -c 'PATH=/run/fleet/fakebin:$PATH exec "$@"' _ env NIX_CONFIG="$NIX_CONFIG" \
			ASAN_OPTIONS="${ASAN_OPTIONS-}" UBSAN_OPTIONS="${UBSAN_OPTIONS-}" /run/fleet/nrr \
			build --file "$HF/default.nix" --attr t1 --no-link "$@"
	}
	run up --upgrade
	assert_success
	run up --upgrade-all
	assert_success
	touch "$FLEET_DIR/channel.fail"
	run up --upgrade
	assert_success
	assert_output --partial "warning: --upgrade: "
	run cat "$FLEET_DIR/channel.log"
	assert_output $'--update marked nixos\n--update\n--update marked nixos'
	fleet_exec t1 rm -rf /nix/var/nix/profiles/per-user/root/channels
}

@test "switch here (no --target-host): profile, activation, no ssh at all" {
	fleet_reset_counts t1
	run --separate-stderr on_t1 switch --flake "$HF#t1"
	assert_success
	[ "$(fleet_exec t1 readlink -f /nix/var/nix/profiles/system)" = "$output" ]
	run fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --partial "switch "
	[ "$(fleet_handshakes t1)" = 0 ]
}

@test "list-generations here, as a table and JSON" {
	printf 'onhost2\n' >"$FLEET_DIR/hostflake/tag"
	on_t1 boot --flake "$HF#t1"
	run on_t1 list-generations
	assert_success
	assert_output --partial "2 current"
	run on_t1 list-generations --json
	assert_success
	echo "$output" | python3 -c 'import json,sys; g=json.load(sys.stdin); assert [x["generation"] for x in g] == [2, 1], g'
}

@test "switch --rollback here goes back one generation" {
	run on_t1 switch --rollback
	assert_success
	run on_t1 list-generations --json
	echo "$output" | python3 -c 'import json,sys; g=json.load(sys.stdin); assert [x["generation"] for x in g if x["current"]] == [1], g'
}

@test "without #NAME the configuration is the target's hostname" {
	# t1 gets a hostname of its own for this test: fleet hosts share this machine's
	cp /usr/bin/uname "$FLEET_DIR/t1/uname.real"
	printf '#!/bin/sh\n[ "$*" = -n ] && exec echo t1-own-name\nexec /run/fleet/t1/uname.real "$@"\n' \
		>"$FLEET_DIR/t1/uname-n"
	chmod 0755 "$FLEET_DIR/t1/uname-n"
	fleet_exec t1 mount --bind /run/fleet/t1/uname-n /usr/bin/uname
	[ "$(fleet_exec t1 uname -n)" = t1-own-name ]
	[ "$(uname -n)" != t1-own-name ]
	run nrr build --flake "$F" --target-host t1
	fleet_exec t1 umount /usr/bin/uname
	assert_failure 4
	assert_output --partial 'nixosConfigurations."t1-own-name"'
}

# A hive where t1 sees it, for apply-local: a node named as this machine, one that allows no
# local deployment.
hive_for_t1() {
	local d=$FLEET_DIR/lhive
	[ -e "$d/hive.nix" ] && return
	mkdir -p "$d"
	cp -RL "$BATS_TEST_DIRNAME/hive/nixpkgs" "$d/nixpkgs"
	cat >"$d/hive.nix" <<-EOF2
		{
		  meta.nixpkgs = import ./nixpkgs { system = "x86_64-linux"; };
		  here = {
		    deployment.allowLocalDeployment = true;
		    deployment.targetHost = null;
		    deployment.keys.local = { keyCommand = [ "printf" "LOCAL-KEY" ]; permissions = "0440"; };
		    deployment.keys.late = { text = "LATE-LOCAL"; uploadAt = "post-activation"; destDir = "/run/keys/late"; };
		  };
		  "$(hostname)" = { deployment.allowLocalDeployment = true; };
		  nolocal = { };
		}
	EOF2
}

@test "apply-local deploys this machine's node here, named by --node or by the hostname" {
	hive_for_t1
	sys=$(on_t1 apply build --on here -f /run/fleet/lhive/hive.nix 2>/dev/null | awk '{ print $2 }')
	[ -n "$sys" ] || fail "no system for here"
	fleet_exec t1 rm -rf /run/keys
	run -0 on_t1 apply-local test --node here -f /run/fleet/lhive/hive.nix --no-keys
	run -1 fleet_exec t1 test -e /run/keys
	run -0 on_t1 apply-local test --node here -f /run/fleet/lhive/hive.nix
	run -0 fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --regexp "^test $sys/bin/switch-to-configuration "
	# its keys, through the same conversation run here
	run -0 fleet_exec t1 sh -c 'stat -c "%U:%G %a" /run/keys/local; cat /run/keys/local /run/keys/late/late'
	assert_output "root:root 440"$'\n'"LOCAL-KEYLATE-LOCAL"
	mine=$(on_t1 apply build --on "$(hostname)" -f /run/fleet/lhive/hive.nix 2>/dev/null | awk '{ print $2 }')
	run -0 on_t1 apply-local -f /run/fleet/lhive/hive.nix
	assert_equal "$(fleet_exec t1 readlink /run/current-system)" "$mine"
}

@test "apply-local refuses a node without allowLocalDeployment, or none of that name (exit 2)" {
	hive_for_t1
	run -2 on_t1 apply-local test --node nolocal -f /run/fleet/lhive/hive.nix
	assert_line --index 0 "error: node 'nolocal' does not allow local deployment"
	run -2 on_t1 apply-local test --node nosuch -f /run/fleet/lhive/hive.nix
	assert_line --index 0 "error: apply-local: the hive has no node 'nosuch'"
	run -2 on_t1 apply-local push --node here -f /run/fleet/lhive/hive.nix
	assert_line --index 0 "error: apply-local: unknown goal 'push' (switch, boot, test, dry-activate)"
}
