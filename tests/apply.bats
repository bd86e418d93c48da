#!/usr/bin/env bats
# apply's deploy goals on a colmena hive: every selected node is built here in one nix call,
# then deployed to deployment.targetUser@targetHost through the fleet (one child, one ssh
# connection per node), with its port, its sshOptions and sudo for a user who is not root.
# The hive is the stand-in nixpkgs's (tests/hive/nixpkgs), its nodes on the test fleet.

# shellcheck disable=SC2016 # Nix code is in single quotes on purpose
bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 t2
	export A=$BATS_FILE_TMPDIR/apply
	# -L: the stand-in's builders are links to tests/flake's
	mkdir -p "$A"
	cp -RL "$BATS_TEST_DIRNAME/hive/nixpkgs" "$A/nixpkgs"
	cat >"$A/hive.nix" <<-'EOF2'
		{
		  meta.nixpkgs = import ./nixpkgs { system = "x86_64-linux"; };
		  defaults = { name, ... }: {
		    networking.hostName = name;
		    environment.etc.motd.text = "node ${name}";
		  };
		  one = { deployment.targetHost = "t1"; deployment.tags = [ "web" ]; };
		  two = {
		    deployment.targetHost = "t2";
		    deployment.tags = [ "web" ];
		    # a word with a space: one ssh -o word (split, "7" would be ssh's host)
		    deployment.sshOptions = [ "-o" "ServerAliveInterval 7" ];
		  };
		  # reached as deploy, sudo with the password (-S)
		  user = {
		    deployment.targetHost = "t2";
		    deployment.targetUser = "deploy";
		    deployment.tags = [ "sudo" ];
		  };
		  # sshd does not listen on port 1: this node cannot be reached
		  down = {
		    deployment.targetHost = "t1";
		    deployment.targetPort = 1;
		    deployment.tags = [ "down" ];
		  };
		  # another system for t1, for push and dry-activate
		  spare = {
		    deployment.targetHost = "t1";
		    deployment.tags = [ "spare" ];
		  };
		  other = {
		    deployment.targetHost = "t1";
		    deployment.tags = [ "odd" ];
		    deployment.privilegeEscalationCommand = [ "doas" ];
		    deployment.targetUser = "deploy";
		  };
		}
	EOF2
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$A"
}

# The system `apply build` gives node $1.
built() {
	fleet_local "$NRR" apply build --on "$1" 2>/dev/null | awk '{ print $2 }'
}

@test "apply switch: both nodes switched to the systems apply build gives, one handshake each" {
	fleet_reset_counts t1 t2
	run -0 nrr apply switch --on one,two
	assert_output --partial "one"
	for n in one:t1 two:t2; do
		sys=$(built "${n%%:*}")
		[ -n "$sys" ] || fail "no system for ${n%%:*}"
		run -0 fleet_exec "${n#*:}" readlink /run/current-system
		assert_output "$sys"
	done
	assert_equal "$(fleet_handshakes t1)" 1
	assert_equal "$(fleet_handshakes t2)" 1
}

@test "apply --on @tag deploys the nodes with that tag only" {
	fleet_reset_counts t1 t2
	run -0 nrr apply test --on @web
	assert_output --partial "one   test"
	assert_output --partial "two   test"
	refute_output --partial "spare"
	run -0 fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --regexp "^test $(built one)/bin/switch-to-configuration "
	assert_equal "$(fleet_handshakes t1)" 1
}

@test "apply: a node that cannot be reached fails alone; the others are switched (exit 12)" {
	run -12 nrr apply boot --on one,down
	assert_output --partial "down  boot     failed"
	assert_output --partial "one   boot     done"
	assert_output --partial "error: 1 of 2 hosts failed, 0 skipped"
	# one goes on although down failed first: colmena has no -k, a node never stops another
	run -0 fleet_exec t1 readlink /nix/var/nix/profiles/system
	run -0 fleet_exec t1 readlink "/nix/var/nix/profiles/$output"
	assert_output "$(built one)"
}

@test "apply: a failing build starts no node (exit 13)" {
	cat >"$BATS_TEST_TMPDIR/hive.nix" <<-EOF2
		{
		  meta.nixpkgs = import $A/nixpkgs { system = "x86_64-linux"; };
		  bad = { pkgs, ... }: {
		    deployment.targetHost = "t1";
		    environment.systemPackages = [ (derivation { name = "broken-1"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "exit 1" ]; }) ];
		  };
		}
	EOF2
	fleet_reset_counts t1
	run -13 nrr apply switch -f "$BATS_TEST_TMPDIR/hive.nix"
	assert_output --partial "error: building the hive's systems failed"
	assert_equal "$(fleet_handshakes t1)" 0
}

@test "apply -S: a targetUser who is not root gets sudo with the password asked once" {
	TYPED=hunter2 run -0 nrr_tty apply switch --on @sudo -S
	assert_output --partial "user  switch   done"
	run -0 fleet_exec t2 readlink /run/current-system
	assert_output "$(built user)"
	fleet_command_log t2 | grep -q "^deploy .*'sudo'" || fail "no sudo as deploy on t2"
	run grep -r hunter2 "$FLEET_DIR/t2/commands.log" "$FLEET_DIR/t2/sshd.log"
	assert_failure 1
}

@test "apply dry-activate changes nothing on the node" {
	before=$(fleet_exec t1 readlink /run/current-system)
	profile=$(fleet_exec t1 readlink /nix/var/nix/profiles/system)
	run -0 nrr apply dry-activate --on spare
	assert_output --partial "spare  dry-activate"
	assert_equal "$(fleet_exec t1 readlink /run/current-system)" "$before"
	assert_equal "$(fleet_exec t1 readlink /nix/var/nix/profiles/system)" "$profile"
}

@test "apply push copies the system to the node and activates nothing" {
	before=$(fleet_exec t1 readlink /run/current-system || true)
	activations=$(fleet_exec t1 sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l')
	sys=$(built spare)
	run -0 nrr apply push --on spare --no-substitute
	assert_output --partial "spare  build    done"
	run -0 fleet_exec t1 nix-store --check-validity "$sys"
	assert_equal "$(fleet_exec t1 readlink /run/current-system || true)" "$before"
	assert_equal "$(fleet_exec t1 sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l')" "$activations"
}

@test "apply: what is not supported yet is refused, naming the node" {
	run -2 nrr apply switch --on other
	assert_line --index 0 "error: node 'other': deployment.privilegeEscalationCommand other than [ \"sudo\" \"-H\" \"--\" ] is not supported yet"
	run -2 nrr apply keys
	assert_line --index 0 "error: apply keys is not supported yet"
	run -2 nrr apply dry-activate --on one --reboot
	assert_line --index 0 "error: apply dry-activate --reboot: only switch and boot reboot"
	run -2 nrr apply switch --on one --force-replace-unknown-profiles
	assert_line --index 0 "error: apply switch --force-replace-unknown-profiles is not supported yet"
	run -2 nrr apply build --on one --json
	assert_line --index 0 "error: apply build: '--json' is for the deploy goals"
}

@test "switch --on @tag of the nixos-rebuild interface points to apply for now" {
	run -2 nrr switch --flake "$A" --on @web
	assert_line --index 0 "error: --on '@web': @tags select the nodes of a colmena hive, not supported here yet"
}
