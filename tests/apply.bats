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
	run nrr apply switch --on one,two
	echo "$output" >&3
	assert_success
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
