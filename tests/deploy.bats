#!/usr/bin/env bats
# Deploying to fake NixOS hosts over real ssh: every action, here and on a
# target, with and without a build host, and the exact number of ssh
# handshakes and remote commands each run costs.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 t2 b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" base
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

@test "switch --target-host: builds here, copies, sets the profile, activates; one handshake" {
	retag sw1
	fleet_reset_counts t1
	run --separate-stderr nrr switch --flake "$F#t1" --target-host root@t1
	assert_success
	want=$(toplevel t1)
	assert_output "$want"
	[ "$(profile_of t1)" = "$want" ]
	run last_activation t1
	assert_output --partial "switch $want/bin/switch-to-configuration NIXOS_INSTALL_BOOTLOADER=0 uid=0"
	[ "$(fleet_handshakes t1)" = 1 ]
	# the deploy conversation alone: lock, check, the copy (through the target's own
	# nix-store --serve), activation
	[ "$(fleet_commands t1)" = 1 ]
}

@test "a no-op redeploy costs one handshake and one remote command" {
	retag sw1
	nrr switch --flake "$F#t1" --target-host t1
	fleet_reset_counts t1
	run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	[ "$(fleet_handshakes t1)" = 1 ]
	[ "$(fleet_commands t1)" = 1 ]
}

@test "only what the target lacks is copied" {
	retag partial
	want=$(toplevel t2)
	# give t2 the shared package already
	sw=$(fleet_local nix-store -qR "$want" | grep nrr-sw)
	fleet_seed t2 "$sw"
	run nrr switch --flake "$F#t2" --target-host t2 -v
	assert_success
	assert_output --partial "copying 4 of 5 paths"
}

@test "boot sets the profile and runs switch-to-configuration boot" {
	retag boot1
	run nrr boot --flake "$F#t1" --target-host t1
	assert_success
	want=$(toplevel t1)
	[ "$(profile_of t1)" = "$want" ]
	run last_activation t1
	assert_output --partial "boot $want/bin/switch-to-configuration"
}

@test "test activates without touching the profile" {
	retag sw1
	nrr switch --flake "$F#t1" --target-host t1
	before=$(profile_of t1)
	retag test1
	run nrr test --flake "$F#t1" --target-host t1
	assert_success
	[ "$(profile_of t1)" = "$before" ]
	run last_activation t1
	assert_output --partial "test $(toplevel t1)/bin/switch-to-configuration"
}

@test "dry-activate runs switch-to-configuration dry-activate only" {
	retag dry1
	before=$(profile_of t1)
	run nrr dry-activate --flake "$F#t1" --target-host t1
	assert_success
	[ "$(profile_of t1)" = "$before" ]
	run last_activation t1
	assert_output --partial "dry-activate $(toplevel t1)/bin/"
}

@test "build --target-host copies the closure and activates nothing; built here, ./result links it, as nixos-rebuild does" {
	retag build1
	before=$(fleet_exec t1 wc -l /run/nrr-activations)
	run --separate-stderr nrr build --flake "$F#t1" --target-host t1
	assert_success
	want=$(toplevel t1)
	fleet_exec t1 nix-store --check-validity "$want"
	[ "$(fleet_exec t1 wc -l /run/nrr-activations)" = "$before" ]
	[ "$(readlink result)" = "$want" ]
}

@test "build without a target makes ./result, as nixos-rebuild does" {
	retag build2
	run --separate-stderr nrr build --flake "$F#t1"
	assert_success
	[ "$(readlink result)" = "$(toplevel t1)" ]
}

@test "build --no-link makes no ./result" {
	run nrr build --flake "$F#t1" --no-link
	assert_success
	[ ! -e result ]
}

@test "dry-build builds nothing and does not connect to the target" {
	retag drybuild
	fleet_reset_counts t1
	run nrr dry-build --flake "$F#t1" --target-host t1
	assert_success
	assert_output --partial "will be built"
	[ "$(fleet_handshakes t1)" = 0 ]
	out=$(fleet_local nix eval --raw "$F#nixosConfigurations.t1.config.system.build.toplevel.outPath")
	[[ $out == /nix/store/*-nixos-system-* ]]
	run fleet_local nix-store --check-validity --print-invalid "$out"
	assert_success
	assert_output "$out"
}

@test "--build-host: evaluated here, built there, relayed to the target; one handshake each" {
	retag bh1
	fleet_reset_counts t1 b1
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --build-host b1
	assert_success
	path=$output
	[ "$(profile_of t1)" = "$path" ]
	fleet_exec b1 nix-store --check-validity "$path"
	# never pulled through this machine
	run fleet_local nix-store --check-validity "$path"
	assert_failure 1
	[ "$(fleet_handshakes t1)" = 1 ]
	[ "$(fleet_handshakes b1)" = 1 ]
	# the derivations went to b1 in one session (its nix-store --serve: asked, then sent)
	run fleet_command_log b1
	[ "$(grep -c 'nix-store --serve --write' <<<"$output")" = 1 ]
	refute_output --partial 'nix-store --import'
	refute_output --partial 'nix-store --check-validity'
}

@test "--build-host, the target has it all: the exporter started with the target's check ends with the run" {
	# the same system as the test before: nothing is missing on t1
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --build-host b1
	assert_success
	[ "$(profile_of t1)" = "$output" ]
	# its ssh session is gone: nothing of it stays on the build host
	gone_from b1 'nix-store --export'
	run fleet_ps b1
	refute_output --partial 'cat'
}

@test "--build-host that is the target under another name: one connection, no copy" {
	retag bh2
	fleet_reset_counts t2
	addr=$(fleet_addr t2)
	run --separate-stderr nrr switch --flake "$F#t2" --target-host t2 --build-host "root@$addr"
	assert_success
	[ "$(profile_of t2)" = "$output" ]
	[ "$(fleet_handshakes t2)" = 1 ]
	# query, derivation import, realise, activation: no export, no second import
	run fleet_command_log t2
	refute_output --partial 'nix-store --export'
}

@test "--build-host localhost builds here" {
	retag bh3
	fleet_reset_counts b1
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --build-host localhost
	assert_success
	fleet_local nix-store --check-validity "$output"
}

@test "--build-host with this machine as target brings the result home for ./result" {
	retag bh4
	run --separate-stderr nrr build --flake "$F#t1" --build-host b1
	assert_success
	[ "$(readlink result)" = "$output" ]
	fleet_local nix-store --check-validity "$output"
}

@test "--build-host as an unprivileged user, no terminal: the result comes home" {
	retag bh5
	run --separate-stderr fleet_local setsid "$NRR" build --flake "$F#t1" --build-host deploy@b1 </dev/null
	assert_success
	fleet_local nix-store --check-validity "$output"
	run fleet_command_log b1
	refute_output --partial "'sudo'"
}

@test "--copy-direct: the build host copies to the target itself" {
	retag direct
	# b1's root reaches t1 with the fleet's key and known hosts
	fleet_exec b1 sh -c 'mkdir -p ~/.ssh && cp /run/fleet/id_ed25519 ~/.ssh/id_ed25519 && cp /run/fleet/known_hosts ~/.ssh/known_hosts'
	fleet_reset_counts t1 b1
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --build-host b1 --copy-direct
	assert_success
	[ "$(profile_of t1)" = "$output" ]
	run fleet_local nix-store --check-validity "$output"
	assert_failure 1
	# who copied: b1 exported into its own ssh to t1, which imported in that session; the
	# deployer relayed nothing (no export from b1 or import into t1 of its own)
	run fleet_command_log b1
	assert_line --regexp "^root .*nix-store --export .* \| ssh -T -p .*'nix-store --import'"
	refute_line --regexp "exec nix-store --export"
	run fleet_command_log t1
	assert_line "root nix-store --import"
	refute_line --regexp "exec nix-store --import"
}

@test "switch --rollback on a target goes back to the previous generation" {
	retag rb1
	nrr switch --flake "$F#t1" --target-host t1
	first=$(toplevel t1)
	retag rb2
	nrr switch --flake "$F#t1" --target-host t1
	run nrr switch --rollback --target-host t1
	assert_success
	[ "$(profile_of t1)" = "$first" ]
	run last_activation t1
	assert_output --partial "switch $first/bin/switch-to-configuration"
}

# The generation link the profile of $1 points to, and the system a generation link holds.
gen_link() { fleet_exec "$1" readlink /nix/var/nix/profiles/system; }
gen_system() { fleet_exec "$1" readlink "/nix/var/nix/profiles/system-$2-link"; }
# gcroots/auto links to generation $2 of $1 (nix-env's addPermRoot makes one)
auto_roots() { fleet_exec "$1" find /nix/var/nix/gcroots/auto -lname "/nix/var/nix/profiles/system-$2-link" | wc -l; }

@test "the profile's generations are nix-env's, made without it: after the newest, or the newest again; nix-env while a collection runs" {
	retag gen-a
	nrr switch --flake "$F#t2" --target-host t2
	a=$(toplevel t2)
	retag gen-b
	nrr switch --flake "$F#t2" --target-host t2
	b=$(toplevel t2)
	run -0 gen_link t2
	[[ $output =~ ^system-([0-9]+)-link$ ]] || fail "the profile points to '$output'"
	g=${BASH_REMATCH[1]}
	[ "$(gen_system t2 "$g")" = "$b" ]
	[ "$(gen_system t2 $((g - 1)))" = "$a" ]
	# made here, not by a nix-env (which adds a gcroots/auto link)
	[ "$(auto_roots t2 "$g")" = 0 ]
	# rolled back to a, then b again: the newest generation holds b, so it is taken again
	nrr switch --rollback --target-host t2
	[ "$(gen_link t2)" = "system-$((g - 1))-link" ]
	retag gen-b
	nrr switch --flake "$F#t2" --target-host t2
	[ "$(gen_link t2)" = "system-$g-link" ]
	run -1 fleet_exec t2 test -L "/nix/var/nix/profiles/system-$((g + 1))-link"
	# a again: a new generation after the newest (another profile's system-old-99-link
	# is not one of system's)
	fleet_exec t2 ln -s "$a" /nix/var/nix/profiles/system-old-99-link
	retag gen-a
	nrr switch --flake "$F#t2" --target-host t2
	fleet_exec t2 rm /nix/var/nix/profiles/system-old-99-link
	[ "$(gen_link t2)" = "system-$((g + 1))-link" ]
	[ "$(gen_system t2 $((g + 1)))" = "$a" ]
	# while a garbage collection holds nix's lock, nix-env (which tells the collector of its
	# root) sets the profile
	fleet_exec t2 flock -x /nix/var/nix/gc.lock sleep 60 3>&- &
	holder=$!
	for _ in $(seq 1 100); do
		fleet_exec t2 flock -s -n /nix/var/nix/gc.lock true || break
		sleep 0.1
	done
	retag gen-c
	run nrr switch --flake "$F#t2" --target-host t2
	kill "$holder" 2>/dev/null || true
	fleet_exec t2 pkill -f 'flock -x /nix/var/nix/gc.lock' || true
	wait "$holder" 2>/dev/null || true
	assert_success
	[ "$(gen_link t2)" = "system-$((g + 2))-link" ]
	[ "$(gen_system t2 $((g + 2)))" = "$(toplevel t2)" ]
	[ "$(auto_roots t2 $((g + 2)))" = 1 ]
}

@test "test --rollback activates the previous generation and keeps the profile" {
	retag rb3
	nrr switch --flake "$F#t1" --target-host t1
	prev=$(toplevel t1)
	retag rb4
	nrr switch --flake "$F#t1" --target-host t1
	cur=$(profile_of t1)
	run nrr test --rollback --target-host t1
	assert_success
	[ "$(profile_of t1)" = "$cur" ]
	run last_activation t1
	assert_output --partial "test $prev/bin/switch-to-configuration"
}

@test "switch --rollback checks the previous generation before it rolls back: refused, the profile stays (exit 7)" {
	retag rbcheck
	nostc=$(toplevel nostc)
	fleet_seed t1 "$nostc"
	# a generation without switch-to-configuration, then a good one after it
	fleet_exec t1 mkdir -p /nix/var/nix/profiles/system-profiles
	fleet_exec t1 nix-env -p /nix/var/nix/profiles/system-profiles/rbcheck --set "$nostc" >/dev/null
	nrr switch --flake "$F#t1" --target-host t1 -p rbcheck
	good=$(toplevel t1)
	run nrr switch --rollback --target-host t1 -p rbcheck
	assert_failure 7
	assert_output --partial "$nostc/bin/switch-to-configuration is missing"
	[ "$(fleet_exec t1 readlink -f /nix/var/nix/profiles/system-profiles/rbcheck)" = "$good" ]
}

@test "build --rollback names the previous generation" {
	run --separate-stderr nrr build --rollback --target-host t1
	assert_success
	assert_output --regexp '^/nix/var/nix/profiles/system-[0-9]+-link$'
}

@test "--specialisation activates the specialisation" {
	retag spec
	run nrr switch --flake "$F#t1" --target-host t1 -c spec1
	assert_success
	run last_activation t1
	assert_output --partial "switch"
	assert_output --partial "config=t1/spec1"
}

@test "a missing specialisation is refused before anything changes (exit 7)" {
	retag spec2
	before=$(profile_of t1)
	run nrr switch --flake "$F#t1" --target-host t1 --specialisation nope
	assert_failure 7
	assert_output --partial "error: 't1': specialisation 'nope' does not exist"
	[ "$(profile_of t1)" = "$before" ]
}

@test "--profile-name uses system-profiles/NAME" {
	retag prof
	run nrr boot --flake "$F#t1" --target-host t1 -p work
	assert_success
	[ "$(fleet_exec t1 readlink -f /nix/var/nix/profiles/system-profiles/work)" = "$(toplevel t1)" ]
}

@test "--install-bootloader sets NIXOS_INSTALL_BOOTLOADER=1" {
	run nrr boot --flake "$F#t1" --target-host t1 --install-bootloader
	assert_success
	run last_activation t1
	assert_output --partial "NIXOS_INSTALL_BOOTLOADER=1"
}

@test "list-generations on a target, as a table and as JSON" {
	run nrr list-generations --target-host t1
	assert_success
	assert_line --index 0 --partial "Generation"
	assert_output --partial "current"
	run nrr list-generations --target-host t1 --json
	assert_success
	# what is not known (a fake system has no kernel modules) is "Unknown", as nixos-rebuild-ng says
	echo "$output" | python3 -c 'import json,sys; g=json.load(sys.stdin); assert any(x["current"] for x in g); assert "spec1" in g[0]["specialisations"]; assert g[0]["kernelVersion"] == "Unknown", g[0]'
}

@test "classic mode: --file and --attr through nix-build" {
	retag classic
	run --separate-stderr nrr switch --file "$F/default.nix" --attr t2 --target-host t2
	assert_success
	[ "$(profile_of t2)" = "$output" ]
}

@test "classic mode: --attr without --file is an attribute of ./default.nix, as nixos-rebuild has it" {
	retag classic
	want=$(nrr build --file "$F/default.nix" --attr t2 --no-link 2>/dev/null)
	cd "$F"
	run --separate-stderr nrr build --attr t2 --no-link
	assert_success
	assert_output "$want"
}

@test "--store-path activates a given closure without building" {
	retag storepath
	path=$(toplevel t2)
	run --separate-stderr nrr test --store-path "$path" --target-host t2
	assert_success
	run last_activation t2
	assert_output --partial "test $path/bin/"
}

@test "a failing activation is an error naming the host and step (exit 8)" {
	run nrr switch --flake "$F#broken" --target-host t2
	assert_failure 8
	assert_output --partial "error: activation ('switch-to-configuration switch') on 't2' failed with status 1"
	assert_line "hint: the profile may already point to the new system; '--rollback' goes back"
}

@test "the hint after a failed activation says what the action did to the profile" {
	run nrr test --flake "$F#broken" --target-host t2
	assert_failure 8
	assert_line "hint: the profile was not changed: its system comes back at the next boot"
	run nrr dry-activate --flake "$F#broken" --target-host t2
	assert_failure 8
	assert_line "hint: the profile was not changed: its system comes back at the next boot"
	# a generation whose activation fails, and a good one after it
	retag hint-rb
	nrr switch --flake "$F#broken" --target-host t2 || true
	broken=$(toplevel broken)
	nrr switch --flake "$F#t2" --target-host t2
	run nrr switch --rollback --target-host t2
	assert_failure 8
	assert_line "hint: the profile may already point to the generation it rolled back to"
	[ "$(profile_of t2)" = "$broken" ]
	nrr switch --flake "$F#t2" --target-host t2
}

@test "a closure without switch-to-configuration is refused; profile unchanged (exit 7)" {
	before=$(profile_of t2)
	run nrr switch --flake "$F#nostc" --target-host t2
	assert_failure 7
	assert_output --partial "switch-to-configuration is missing"
	[ "$(profile_of t2)" = "$before" ]
}

@test "a container's system (no kernel, no initrd) is switched to, as nixos-rebuild does; one whose initrd lacks its kernel is refused" {
	retag container
	run --separate-stderr nrr switch --flake "$F#container" --target-host t2
	assert_success
	[ "$(profile_of t2)" = "$output" ]
	# the same checks, asked of a system with an initrd and no kernel: a broken one
	before=$(profile_of t2)
	run fleet_local sh -c "d=\$(mktemp -d)/broken && cp -a $(toplevel container) \$d && chmod u+w \$d &&
		echo 'an initrd' >\$d/initrd && nix-store --add \$d"
	assert_success
	run nrr switch --store-path "$output" --target-host t2
	assert_failure 7
	assert_output --partial "/kernel is missing: the system would not boot"
	[ "$(profile_of t2)" = "$before" ]
}

@test "a failing evaluation is exit 4 and leaves the target untouched" {
	before=$(profile_of t1)
	fleet_reset_counts t1
	run nrr switch --flake "$F#doesnotexist" --target-host t1
	assert_failure 4
	[ "$(profile_of t1)" = "$before" ]
	# evaluated while connecting: it failed before any remote command
	[ "$(fleet_commands t1)" = 0 ]
	assert_output --partial "error: evaluating '$F#nixosConfigurations.\"doesnotexist\"."
}

@test "dry-build --target-host of an unreachable host: its plan is not known, the dry run succeeds (nixos-rebuild's never connects)" {
	printf 'Host gone\n  HostName 127.0.0.1\n  Port 9\n  ConnectTimeout 3\n' >cfg
	cat "$FLEET_DIR/ssh_config" >>cfg
	run nrr build --flake "$F#t1" --no-link
	assert_success
	NIX_SSHOPTS="-F $PWD/cfg" run --separate-stderr nrr dry-build --flake "$F#t1" --target-host gone
	assert_success
	[[ $stderr == *"plan for 'gone': not known: cannot reach 'gone' (root@127.0.0.1:9): "* ]] || fail "$stderr"
}

@test "an unreachable host is exit 3 with a hint" {
	printf 'Host gone\n  HostName 127.0.0.1\n  Port 9\n  ConnectTimeout 3\n' >cfg
	cat "$FLEET_DIR/ssh_config" >>cfg
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host gone
	assert_failure 3
	assert_output --partial "error: cannot reach 'gone' (root@127.0.0.1:9): "
	assert_output --partial "hint: is '127.0.0.1' up, with sshd listening on port 9?"
}

@test "an unknown host key is refused, never accepted silently (exit 3)" {
	sed "s|UserKnownHostsFile .*|UserKnownHostsFile $PWD/empty_known_hosts|" "$FLEET_DIR/ssh_config" >cfg
	: >empty_known_hosts
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host t1
	assert_failure 3
	assert_output --partial "hint: the host key of 't1' is unknown or has changed"
	[ ! -s empty_known_hosts ]
}

@test "hostile names are refused or passed through, never run by a shell" {
	run nrr switch --flake "$F#t1" --target-host '-oProxyCommand=touch /tmp/pwned'
	assert_failure 2
	assert_output --partial "begins with '-'"
	run nrr switch --flake "$F#t1" --target-host 'a$(touch /tmp/pwned)'
	assert_failure 2
	assert_output "error: refusing host name 'a\$(touch /tmp/pwned)': it contains '\$'"
	run nrr switch --flake "$F#a\"b" --target-host t1
	assert_failure 2
	assert_output "error: refusing configuration name 'a\"b': it contains '\"'"
	run nrr switch --flake "$F#\$(touch /tmp/pwned);x" --target-host t1
	assert_failure 2
	assert_output "error: refusing configuration name '\$(touch /tmp/pwned);x': it contains '\$'"
	run nrr switch --flake "$F#t1" --target-host t1 --specialisation "x'; touch /tmp/pwned; '"
	assert_failure 2
	assert_line --index 0 "error: --specialisation 'x'; touch /tmp/pwned; '': must be a name, not a path"
	[ ! -e /tmp/pwned ]
	run fleet_exec t1 test -e /tmp/pwned
	assert_failure 1
}

@test "usage errors exit 2 with one error line" {
	run nrr switch --frobnicate
	assert_failure 2
	assert_line --index 0 "error: unrecognized option '--frobnicate'"
}

@test "no masters, ssh processes or control directories are left behind" {
	mkdir -m 0700 run tmp
	run --separate-stderr fleet_local env XDG_RUNTIME_DIR="$PWD/run" TMPDIR="$PWD/tmp" \
		"$NRR" switch --flake "$F#t1" --target-host t1 --build-host b1 --debug
	assert_success
	# the control sockets were in the user's runtime directory (lib/rundir.h)
	[[ $stderr == *"-oControlPath=$PWD/run/nrr."* ]] || fail "$stderr"
	run ls -A run tmp
	assert_output "run:

tmp:"
	# only this fleet's deployer: other runs may share the machine
	for pid in $(_fleet_pids "$(_fleet_tag local) "); do
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		case $args in ssh*) fail "left behind: $pid $args" ;; esac
	done
}
