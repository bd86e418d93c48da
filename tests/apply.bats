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
		    # after the password, on the same stdin of its child and of sudo's session
		    deployment.keys.sudo-key = { text = "SUDO-KEY"; user = "deploy"; };
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
		  # built on t2 itself
		  ontarget = {
		    deployment.targetHost = "t2";
		    deployment.tags = [ "bot" ];
		    deployment.buildOnTarget = true;
		    environment.etc.motd.text = "built on its target";
		  };
		  # colmena's guard: t1's system must be one this machine knows
		  guarded = {
		    deployment.targetHost = "t1";
		    deployment.tags = [ "guarded" ];
		    deployment.replaceUnknownProfiles = false;
		  };
		  other = {
		    deployment.targetHost = "t1";
		    deployment.tags = [ "odd" ];
		    deployment.privilegeEscalationCommand = [ "doas" ];
		    deployment.targetUser = "deploy";
		  };
		  # keys of the three kinds; svc is a user its new system creates (the stand-in's
		  # switch-to-configuration creates users.users, as NixOS's activation does)
		  keyed = {
		    deployment.targetHost = "t1";
		    deployment.tags = [ "keys" ];
		    deployment.keys."text.key" = {
		      text = "TEXT-SECRET-4711"; user = "svc"; group = "svc"; permissions = "0640";
		    };
		    deployment.keys.cmd = {
		      keyCommand = [ "printf" "CMD-SECRET-%s" "0815" ];  # its output is not in the hive
		      destDir = "/run/keys/sub";
		    };
		    deployment.keys.file = {
		      keyFile = ./key.txt; user = "svc"; permissions = "0400";
		      uploadAt = "post-activation";
		    };
		    users.users.svc = { isSystemUser = true; group = "svc"; };
		    users.groups.svc = { };
		  };
		  # sudo with flags of its own, as given
		  flags = {
		    deployment.targetHost = "t2";
		    deployment.tags = [ "flags" ];
		    deployment.privilegeEscalationCommand = [ "sudo" "-u" "root" "--" ];
		    deployment.targetUser = "deploy";
		  };
		}
	EOF2
	printf 'FILE-SECRET-2342' >"$A/key.txt"
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$A"
}

# A test that failed while a gated build waited lets it end, and its run with it: the next
# tests need the nodes' locks.
teardown() {
	if [ -n "${GATE-}" ] && [ ! -e "$GATE" ]; then
		touch "$GATE"
		[ -z "${FLEET_BG_PID-}" ] || wait_nrr 60 || true
	fi
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

@test "apply: the nodes connect while their systems build; a failing build changes none (exit 13)" {
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
	before=$(state_of t1)
	run -13 nrr apply switch -f "$BATS_TEST_TMPDIR/hive.nix"
	assert_line --regexp "^error: building the hive's systems failed: "
	refute_output --partial "not deployed"
	# t1 was reached while the build ran (its one handshake), took its lock, and was let go
	# unchanged when the build failed
	assert_equal "$(fleet_handshakes t1)" 1
	assert_equal "$(state_of t1)" "$before"
	poll_until 10 unlocked t1 || fail "t1's deploy lock is still held"
	no_ssh_left
}

@test "apply: the nodes' systems build in one nix call, together: each waits for the other's build to start" {
	# each system holds a package whose build lasts until the test makes the gate; with
	# max-jobs 2 nix runs both at once, unless it is handed the systems one at a time
	# (nix-store -qR --force-realise realises its arguments in turn)
	GATE=$BATS_TEST_TMPDIR/gate
	cat >"$BATS_TEST_TMPDIR/hive.nix" <<-EOF2
		{
		  meta.nixpkgs = import $A/nixpkgs { system = "x86_64-linux"; };
		  defaults = { name, ... }: {
		    environment.systemPackages = [ (derivation { name = "gated-\${name}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "i=0; while [ ! -e $GATE ] && [ \$i -lt 600 ]; do /bin/sleep 0.1; i=\$((i + 1)); done; echo \${name} > \$out" ]; }) ];
		  };
		  one = { deployment.targetHost = "t1"; };
		  two = { deployment.targetHost = "t2"; };
		}
	EOF2
	nrr_bg apply switch -f "$BATS_TEST_TMPDIR/hive.nix" --on one,two --nix-option max-jobs 2
	both_building() {
		grep -q "building '/nix/store/[a-z0-9]*-gated-one.drv'" "$BATS_TEST_TMPDIR/log" &&
			grep -q "building '/nix/store/[a-z0-9]*-gated-two.drv'" "$BATS_TEST_TMPDIR/log"
	}
	poll_until 30 both_building || fail "not built together: $(cat "$BATS_TEST_TMPDIR/log")"
	touch "$GATE"
	wait_nrr 60
	assert_success
}

@test "apply --json: a node's timeline shows its connect overlapping the fleet's build, then ready until the build ends" {
	# a system that takes a second to build, new in every run
	cat >"$BATS_TEST_TMPDIR/hive.nix" <<-EOF2
		{
		  meta.nixpkgs = import $A/nixpkgs { system = "x86_64-linux"; };
		  slow = { pkgs, ... }: {
		    deployment.targetHost = "t1";
		    environment.systemPackages = [ (derivation { name = "slow-1"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "/bin/sleep 1; echo $BATS_TEST_TMPDIR > \$out" ]; }) ];
		  };
		}
	EOF2
	run -0 --separate-stderr nrr apply switch -f "$BATS_TEST_TMPDIR/hive.nix" --on slow --json
	phases=$(jq -c '.[0].phases | map({ (.phase): [.start, .end] }) | add' <<<"$output")
	# the hive's evaluation from the run's start (0) to the build, which follows it (its
	# length is the machine's: 47 ms on a fast one)
	jq -e '.evaluate[0] == 0 and .evaluate[1] > 0 and .build[0] >= .evaluate[1]' <<<"$phases" ||
		fail "phases: $phases"
	# evaluate and build are the fleet's; the build ended after t1 was connected and locked
	jq -e '.build[1] > .build[0] and .connect[0] < .build[1] and .connect[1] <= .ready[0]' <<<"$phases" ||
		fail "phases: $phases"
	# ready ends with the build (the fleet's go), and only then does the deploy go on
	jq -e '.ready[1] >= .build[1] - 0.05 and .check[0] >= .ready[1] and .activate[1] > 0' <<<"$phases" ||
		fail "phases: $phases"
	jq -e '[.[0].phases[].phase] == ["evaluate", "build", "connect", "ready", "check", "copy", "activate"]' <<<"$output" ||
		fail "phases: $(jq -c '[.[0].phases[].phase]' <<<"$output")"
}

@test "apply -S: a targetUser who is not root gets sudo with the password asked once" {
	TYPED=hunter2 run -0 nrr_tty apply switch --on @sudo -S
	assert_output --partial "user  switch   done"
	run -0 fleet_exec t2 readlink /run/current-system
	assert_output "$(built user)"
	run -0 fleet_exec t2 sh -c 'stat -c "%U:%G %a" /run/keys/sudo-key; cat /run/keys/sudo-key'
	assert_output "deploy:root 600"$'\n'"SUDO-KEY"
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

@test "exec runs the command once on each selected node, its lines under the node's name" {
	fleet_reset_counts t1 t2
	# two has sshOptions: they reach its ssh too
	run -0 nrr exec --on one,two -- sh -c 'echo "hello from $0"; echo "to stderr" >&2' 'x y'
	for n in one two; do
		assert_line "$n | hello from x y"
		assert_line "$n | to stderr"
	done
	assert_equal "$(fleet_commands t1)" 1
	assert_equal "$(fleet_commands t2)" 1
	assert_equal "$(fleet_handshakes t1)" 1
	assert_equal "$(fleet_handshakes t2)" 1
}

@test "exec --on @tag -p 1: a command without -- works too; options after it are its own" {
	run -0 nrr exec --on @web -p 1 echo -n ok
	assert_line "one | ok"
	assert_line "two | ok"
}

@test "exec: a node where the command fails or that cannot be reached is named, the others run (exit 12)" {
	run -12 nrr exec --on one,down -- true
	assert_line --partial "error: exec failed on 1 of 2 hosts: down (cannot reach"
	run -12 nrr exec --on one,two -- sh -c 'test "$(uname -n)" = never'
	assert_line --partial "error: exec failed on 2 of 2 hosts: one (exited with status 1), two (exited with status 1)"
}

@test "exec: a targetUser who is not root runs it under privilegeEscalationCommand, as colmena does" {
	fleet_reset_counts t2
	# no password reaches exec's sudo: deploy's sudo wants one, so the node fails, named
	run -12 nrr exec --on user -- id -u
	assert_line --partial "error: exec failed on 1 of 1 hosts: user (exited with status 1)"
	fleet_command_log t2 | grep -q "^deploy .*'sudo' '-H' '--' 'id' '-u'" ||
		fail "no sudo -H -- id -u as deploy on t2: $(fleet_command_log t2)"
}

@test "exec: no command is a usage error (2); no node matching is a warning only" {
	run -2 nrr exec --on one
	assert_line --index 0 "error: exec: no command given"
	run -2 nrr exec --on one --
	assert_line --index 0 "error: exec: no command given"
	run -0 nrr exec --on nosuchnode -- true
	assert_output --partial "no node of the hive matches --on 'nosuchnode'"
	run -0 nrr exec --help
	assert_output --partial "usage: nixos-rebuild-remote exec"
}

@test "apply: what is not supported yet is refused, naming the node" {
	run -2 nrr apply dry-activate --on one --reboot
	assert_line --index 0 "error: apply dry-activate --reboot: only switch and boot reboot"
	run -2 nrr apply build --on one --json
	assert_line --index 0 "error: apply build: '--json' is for the deploy goals"
}

@test "--on @tag of the nixos-rebuild interface deploys the hive's nodes with that tag, with its options" {
	fleet_reset_counts t1 t2
	run -0 nrr test --flake "$A" --on @web,spare --parallel 1
	assert_output --partial "one    test     done"
	assert_output --partial "two    test     done"
	assert_output --partial "spare  test     done"
	run -0 fleet_exec t2 tail -n 1 /run/nrr-activations
	assert_output --regexp "^test $(built two)/bin/switch-to-configuration "
	assert_equal "$(fleet_handshakes t2)" 1
	run -2 nrr build --flake "$A" --on @web
	assert_line --index 0 "error: --on '@web': a hive's @tags work with switch, boot, test and dry-activate"
	run -2 nrr test --flake "$A#one" --on @web
	assert_line --index 0 "error: --on '@web' selects the hive's nodes: --flake '$A#one' names one"
}

@test "replaceUnknownProfiles = false: a system this machine does not know is kept (the lock's answer); --force-replace-unknown-profiles replaces it" {
	# a system only t1 has: another operator's deploy
	alien=$(fleet_exec t1 sh -c 'echo alien >/tmp/alien && nix-store --add /tmp/alien')
	fleet_exec t1 nix-env -p /nix/var/nix/profiles/system --set "$alien"
	run -1 fleet_local nix-store --check-validity "$alien"
	fleet_reset_counts t1
	run -12 nrr apply switch --on @guarded
	assert_output --partial "'root@t1' runs $alien, which this machine does not know, and replaceUnknownProfiles is false"
	assert_output --partial "guarded  switch   failed"
	assert_equal "$(fleet_exec t1 readlink -e /nix/var/nix/profiles/system)" "$alien"
	# the answer came with the deploy's one command: none more
	assert_equal "$(fleet_commands t1)" 1
	run -0 nrr apply switch --on @guarded --force-replace-unknown-profiles
	assert_output --partial "'root@t1' ran $alien, which this machine does not know; replacing it (--force-replace-unknown-profiles)"
	assert_equal "$(fleet_exec t1 readlink -e /nix/var/nix/profiles/system)" "$(built guarded)"
	# now it is ours: no force needed
	run -0 nrr apply test --on @guarded
	refute_output --partial "does not know"
}

@test "buildOnTarget: the derivation goes to the target and is built there; the system never comes here" {
	sys=$(fleet_local "$NRR" eval -E '{ nodes, ... }: nodes.ontarget.config.system.build.toplevel.outPath' | tr -d '"')
	[[ $sys == /nix/store/*-nixos-system-ontarget-* ]] || fail "no system path: $sys"
	fleet_reset_counts t2
	run -0 nrr apply switch --on @bot
	assert_output --partial "ontarget  switch   done"
	assert_equal "$(fleet_exec t2 readlink /run/current-system)" "$sys"
	assert_equal "$(fleet_handshakes t2)" 1
	# built there, never here, so never copied from here
	run -1 fleet_local nix-store --check-validity "$sys"
	# --no-build-on-target builds it here
	run -0 nrr apply test --on @bot --no-build-on-target
	run -0 fleet_local nix-store --check-validity "$sys"
}

@test "--build-on-target builds any node on its target" {
	fleet_reset_counts t1
	run -0 nrr apply dry-activate --on spare --build-on-target
	assert_output --partial "spare  dry-activate"
	assert_equal "$(fleet_handshakes t1)" 1
}

@test "switch --flake FLAKE#NODE --target-host: a hive node when the flake has no such nixosConfiguration" {
	fl=$BATS_TEST_TMPDIR/fl
	mkdir -p "$fl"
	cp -R "$A/nixpkgs" "$A/hive.nix" "$fl/"
	echo '{ outputs = { self }: { colmena = import ./hive.nix; }; }' >"$fl/flake.nix"
	fleet_reset_counts t1
	run -0 nrr test --flake "$fl#spare" --target-host root@t1
	assert_output --partial "has no nixosConfigurations.spare: building its colmena hive's node 'spare'"
	run -0 fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --regexp "^test $(built spare)/bin/switch-to-configuration "
	assert_equal "$(fleet_handshakes t1)" 1
	# a node's keys go with apply only: said, not done half-way
	run -0 nrr dry-activate --flake "$fl#keyed" --target-host root@t1
	assert_line "warning: node 'keyed' has deployment.keys: they are not uploaded this way ('apply --on keyed' uploads them)"
	# neither a configuration nor a node: nix's own error
	run -4 nrr test --flake "$fl#nosuch" --target-host root@t1
	assert_output --partial "does not provide attribute"
}

@test "privilegeEscalationCommand: sudo with other flags gets them and -S's password; another command runs as given, no password" {
	TYPED=hunter2 run -0 nrr_tty apply switch --on @flags -S
	assert_output --partial "flags  switch   done"
	fleet_command_log t2 | grep -q "^deploy .*'sudo' '-S' '-p' '[^']*' '-u' 'root' '--' '/bin/sh'" ||
		fail "no sudo -u root as deploy on t2: $(fleet_command_log t2 | tail -n 3)"
	run grep -r hunter2 "$FLEET_DIR/t2/commands.log"
	assert_failure 1
	# t1 has no doas: the node fails, named, after running it as given
	run -12 nrr apply test --on @odd
	assert_output --partial "other  test     failed"
	fleet_command_log t1 | grep -q "^deploy .*'doas' '/bin/sh' '-c'" ||
		fail "no doas as deploy on t1: $(fleet_command_log t1 | tail -n 3)"
}

@test "apply -k: a node whose evaluation fails is named and left out, the others are deployed (exit 12); without -k none starts (13)" {
	cat >"$BATS_TEST_TMPDIR/hive.nix" <<-EOF2
		{
		  meta.nixpkgs = import $A/nixpkgs { system = "x86_64-linux"; };
		  fine = { deployment.targetHost = "t1"; environment.etc.motd.text = "fine"; };
		  broken = { deployment.targetHost = "t2"; assertions = [ { assertion = false; message = "no"; } ]; };
		}
	EOF2
	fleet_reset_counts t1 t2
	run -13 nrr apply test -f "$BATS_TEST_TMPDIR/hive.nix"
	assert_line --partial "node 'broken': "
	assert_equal "$(fleet_handshakes t1)" 0
	run -12 nrr apply test -f "$BATS_TEST_TMPDIR/hive.nix" -k
	assert_output --partial "fine  test     done"
	assert_line --partial "node 'broken': "
	assert_line "error: evaluating the hive '$BATS_TEST_TMPDIR/hive.nix' failed for 1 of 2 nodes: 'broken'"
	assert_equal "$(fleet_handshakes t2)" 0
}

# How many activations host $1 has seen.
activations() { fleet_exec "$1" sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l'; }

# "inode mtime user:group mode content" of key $1 on t1.
key_state() {
	fleet_exec t1 sh -c 'stat -c "%i %Y %U:%G %a" "$1" && cat "$1"' - "$1"
}

# No key text in any command line of t1, nor in any file of t1's or this machine's store. The
# hive's own directory is in this machine's store once a test deploys it as a flake (--flake
# "$A": nix copies a flake's source, hive.nix and key.txt with it, as it would colmena's): the
# text and keyFile keys may be in that copy of what the user wrote, nowhere else; the
# keyCommand's output nowhere at all.
no_key_text_anywhere() {
	local t
	for t in TEXT-SECRET-4711 CMD-SECRET-0815 FILE-SECRET-2342; do
		run grep -rlF -- "$t" "$FLEET_DIR/t1/commands.log" "$FLEET_DIR/t1/sshd.log" \
			"$FLEET_DIR/t1/nix" "$FLEET_DIR/local/nix"
		[ "$t" = CMD-SECRET-0815 ] || output=$(grep -v -- '-source/\(hive\.nix\|key\.txt\)$' <<<"$output" || true)
		[ -z "$output" ] || fail "$t is in $output"
	done
}

@test "apply switch: keys of all three kinds written with their content, mode and owner (one the new system creates), in the one remote command" {
	fleet_exec t1 rm -rf /run/keys
	# svc comes with keyed's system
	run -1 fleet_exec t1 id -u svc
	fleet_reset_counts t1
	run -0 nrr apply switch --on keyed
	assert_output --partial "keyed  switch   done"
	run -0 key_state /run/keys/text.key
	assert_output --regexp '^[0-9]+ [0-9]+ svc:svc 640'$'\n''TEXT-SECRET-4711$'
	run -0 key_state /run/keys/sub/cmd
	assert_output --regexp '^[0-9]+ [0-9]+ root:root 600'$'\n''CMD-SECRET-0815$'
	run -0 key_state /run/keys/file
	assert_output --regexp '^[0-9]+ [0-9]+ svc:root 400'$'\n''FILE-SECRET-2342$'
	# the activation with the keys (and the copy of the closure, unless a test before
	# copied it)
	(($(fleet_commands t1) <= 2)) || fail "$(fleet_commands t1) remote commands"
	assert_equal "$(fleet_handshakes t1)" 1
	no_key_text_anywhere
}

@test "apply switch again with the keys unchanged: 1 remote command, no key rewritten (inode and mtime kept)" {
	run -0 nrr apply switch --on keyed
	before=$(for k in text.key sub/cmd file; do key_state "/run/keys/$k"; done)
	fleet_reset_counts t1
	run -0 nrr apply switch --on keyed
	assert_equal "$(fleet_commands t1)" 1
	assert_equal "$(fleet_handshakes t1)" 1
	after=$(for k in text.key sub/cmd file; do key_state "/run/keys/$k"; done)
	assert_equal "$after" "$before"
}

@test "apply keys and upload-keys: only the keys, both stages, one remote command; --no-keys deploys without them" {
	run -0 nrr apply switch --on keyed --no-keys
	fleet_exec t1 sh -c 'printf changed >/run/keys/text.key; rm -f /run/keys/file'
	activations=$(activations t1)
	fleet_reset_counts t1
	run -0 nrr apply keys --on keyed
	assert_output --partial "keyed  keys     done"
	assert_equal "$(fleet_commands t1)" 1
	assert_equal "$(fleet_exec t1 cat /run/keys/text.key)" TEXT-SECRET-4711
	assert_equal "$(fleet_exec t1 cat /run/keys/file)" FILE-SECRET-2342
	assert_equal "$(activations t1)" "$activations"
	fleet_exec t1 rm -f /run/keys/sub/cmd
	run -0 nrr upload-keys --on @keys
	assert_equal "$(fleet_exec t1 cat /run/keys/sub/cmd)" CMD-SECRET-0815
	# --no-keys: the system, not the keys
	fleet_exec t1 rm -rf /run/keys
	run -0 nrr apply switch --on keyed --no-keys
	run -1 fleet_exec t1 test -e /run/keys
	no_key_text_anywhere
}

@test "apply: a keyCommand that fails or a keyFile that cannot be read fails its node before anything is activated there; the others go on (exit 12)" {
	cat >"$BATS_TEST_TMPDIR/hive.nix" <<-EOF2
		{
		  meta.nixpkgs = import $A/nixpkgs { system = "x86_64-linux"; };
		  fine = { deployment.targetHost = "t1"; deployment.keys.k.text = "x"; };
		  badcmd = {
		    deployment.targetHost = "t2";
		    deployment.keys.k.keyCommand = [ "sh" "-c" "echo no vault here >&2; exit 3" ];
		  };
		  badfile = { deployment.targetHost = "t2"; deployment.keys.f.keyFile = "/nonexistent/k"; };
		}
	EOF2
	activations=$(activations t2)
	fleet_reset_counts t2
	run -12 nrr apply test -f "$BATS_TEST_TMPDIR/hive.nix"
	assert_output --partial "fine     test     done"
	assert_output --partial "keyCommand of key 'k' of 'badcmd' failed (status 3): no vault here"
	assert_output --partial "cannot read keyFile '/nonexistent/k' of key 'f' of 'badfile'"
	assert_equal "$(fleet_handshakes t2)" 0
	assert_equal "$(activations t2)" "$activations"
}

@test "apply: a pre-activation key the node cannot write fails it in its one remote command, nothing activated (exit 12)" {
	cat >"$BATS_TEST_TMPDIR/hive.nix" <<-EOF2
		{
		  meta.nixpkgs = import $A/nixpkgs { system = "x86_64-linux"; };
		  baddir = { deployment.targetHost = "t2"; deployment.keys.k = { text = "x"; destDir = "/proc/nope"; }; };
		}
	EOF2
	activations=$(activations t2)
	run -12 nrr apply switch -f "$BATS_TEST_TMPDIR/hive.nix"
	assert_output --partial "baddir  switch   failed"
	assert_output --partial "key 'k' on 'root@t2': cannot create /proc/nope"
	assert_output --partial "nothing was activated"
	assert_equal "$(activations t2)" "$activations"
}
