#!/usr/bin/env bats
# How we reach and act on a target: sudo with a password typed once, a
# login shell that is not POSIX, keys held by ssh-agent, long TMPDIRs, and
# the user's own ssh multiplexing, which we use and leave alone.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 t2
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" access
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

@test "--sudo -S: the password is asked once, locally, and sudo runs activation as root" {
	retag sudo1
	fleet_reset_counts t1
	TYPED=hunter2 run nrr_tty switch --flake "$F#t1" --target-host deploy@t1 --sudo -S
	assert_success
	[ "$(grep -c 'password for' <<<"$output")" = 1 ]
	run fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --partial "uid=0"
	[ "$(fleet_handshakes t1)" = 1 ]
	# one elevated command per deploy
	[ "$(fleet_command_log t1 | grep -c "'sudo'")" = 1 ]
	# the password never reaches a command line
	run grep -r hunter2 "$FLEET_DIR/t1/commands.log" "$FLEET_DIR/t1/sshd.log"
	assert_failure 1
}

@test "boot with --ask-sudo-password: asked once for the whole deploy" {
	retag sudo2
	TYPED=hunter2 run nrr_tty boot --flake "$F#t1" --target-host deploy@t1 --ask-sudo-password
	assert_success
	[ "$(grep -c 'password for' <<<"$output")" = 1 ]
	run fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --partial "boot "
}

@test "a wrong sudo password changes nothing and says so (exit 7)" {
	retag sudo3
	before=$(profile_of t1)
	TYPED=wrong run nrr_tty switch --flake "$F#t1" --target-host deploy@t1 -S
	assert_failure 7
	assert_output --partial "error: sudo on 'deploy@t1' refused: sudo: 1 incorrect password attempt"
	[ "$(profile_of t1)" = "$before" ]
}

@test "--sudo without a password, where sudo wants one: the hint names -S" {
	retag sudo4
	run nrr switch --flake "$F#t1" --target-host deploy@t1 --sudo
	assert_failure 7
	assert_output --partial "hint: sudo wants a password: add --ask-elevate-password (-S)"
}

@test "--ask-elevate-password without a terminal and nothing on stdin is an error, not a hang" {
	run bash -c "setsid $(printf '%q ' "$NRR") switch --flake x --target-host t1 -S </dev/null"
	assert_failure 2
	assert_output --partial "error: --ask-elevate-password: no terminal to ask on, and no password on standard input"
}

@test "--ask-sudo-password without a terminal reads the password from stdin, as nixos-rebuild does" {
	retag sudostdin
	_fleet_local_argv
	run bash -c 'printf "hunter2\n" | setsid "$@"' _ "${_FLEET_LOCAL[@]}" "$NRR" boot --flake "$F#t1" \
		--target-host deploy@t1 --ask-sudo-password
	assert_success
	assert_output --partial "warning: no terminal to ask on: reading the sudo password from standard input"
	run fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --partial "boot "
}

@test "once it holds a password, the tool leaves no core file" {
	mkfifo pw
	setsid "$NRR" switch --flake x --target-host t1 -S <pw 2>/dev/null &
	pid=$!
	exec 5>pw	# open, nothing written: the tool waits at its read
	for _ in $(seq 1 50); do
		grep -q '^Max core file size  *0  *0 ' "/proc/$pid/limits" 2>/dev/null && break
		sleep 0.1
	done
	run grep '^Max core file size' "/proc/$pid/limits"
	exec 5>&-
	wait "$pid" || true
	assert_output --regexp '^Max core file size +0 +0 '
}

@test "a target whose login shell is fish: every remote step still works" {
	retag fish
	run fleet_exec t1 grep '^fishy:' /etc/passwd
	assert_output --partial /usr/bin/fish
	run --separate-stderr nrr build --flake "$F#t1" --target-host fishy@t1
	assert_success
	fleet_exec t1 nix-store --check-validity "$output"
	run nrr list-generations --target-host fishy@t1
	assert_success
}

@test "a key held only by ssh-agent works: SSH_AUTH_SOCK reaches ssh" {
	retag agent
	eval "$(ssh-agent -s -a "$BATS_TEST_TMPDIR/agent.sock")" >/dev/null
	ssh-add -q "$FLEET_DIR/id_ed25519"
	grep -v -e IdentityFile -e IdentitiesOnly "$FLEET_DIR/ssh_config" >cfg
	NIX_SSHOPTS="-F $PWD/cfg" run fleet_local env SSH_AUTH_SOCK="$SSH_AUTH_SOCK" "$NRR" switch --flake "$F#t1" --target-host t1
	kill "$SSH_AGENT_PID"
	assert_success
}

@test "a runtime directory and a TMPDIR of 120 characters do not break the control socket" {
	retag longtmp
	long=$BATS_TEST_TMPDIR/$(printf 'x%.0s' $(seq 1 120))
	mkdir -m 0700 -p "$long/run" "$long/tmp"
	run --separate-stderr fleet_local env XDG_RUNTIME_DIR="$long/run" TMPDIR="$long/tmp" \
		"$NRR" switch --flake "$F#t1" --target-host t1 --debug
	assert_success
	[ "${#long}" -ge 120 ]
	# too long for a socket's path, both: the sockets go to /tmp
	[[ $stderr == *"-oControlPath=/tmp/nrr."* ]] || fail "$stderr"
}

@test "NIX_SSHOPTS is split like a shell: a config path with spaces" {
	mkdir -p "my dir"
	cp "$FLEET_DIR/ssh_config" "my dir/cfg"
	NIX_SSHOPTS="-F '$PWD/my dir/cfg'" run nrr list-generations --target-host t1
	assert_success
}

@test "the user's own running ControlMaster is used (0 handshakes) and left open" {
	retag usermux
	cp "$FLEET_DIR/ssh_config" cfg
	printf 'Host *\n  ControlMaster auto\n  ControlPath %s/cm-%%C\n  ControlPersist 60\n' "$PWD" >>cfg
	fleet_local ssh -F "$PWD/cfg" -fN t1
	fleet_reset_counts t1
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	[ "$(fleet_handshakes t1)" = 0 ]
	fleet_local ssh -F "$PWD/cfg" -O check t1
	fleet_local ssh -F "$PWD/cfg" -O exit t1 2>/dev/null
}

@test "a user config that asks for a persistent master: the next run needs no handshake" {
	retag usermux2
	cp "$FLEET_DIR/ssh_config" cfg
	printf 'Host *\n  ControlMaster auto\n  ControlPath %s/cm-%%C\n  ControlPersist 60\n' "$PWD" >>cfg
	fleet_reset_counts t2
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t2" --target-host t2
	assert_success
	[ "$(fleet_handshakes t2)" = 1 ]
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t2" --target-host t2
	assert_success
	[ "$(fleet_handshakes t2)" = 1 ]
	fleet_local ssh -F "$PWD/cfg" -O exit t2 2>/dev/null
}

@test "NIXOS_REBUILD_SSH_DEFAULT_OPTS set: our master options give way to it" {
	retag defopts
	fleet_reset_counts t1
	NIXOS_REBUILD_SSH_DEFAULT_OPTS="" run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	# no multiplexing of ours: one connection per remote command
	[ "$(fleet_handshakes t1)" = "$(fleet_commands t1)" ]
}

@test "our master compresses a far host's link, not a near one's; NIX_SSHOPTS has the last word" {
	# far.example.org goes nowhere (ProxyCommand false): only the master's command line counts
	cat "$FLEET_DIR/ssh_config" - >cfg <<-EOF
		Host far.example.org
		  ProxyCommand /bin/false
	EOF
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host far.example.org -v
	assert_failure 3
	assert_line --regexp "^\\$ 'ssh'.*'-oCompression=yes'.*'-oControlMaster=yes'"
	# ssh keeps the first value it gets, and NIX_SSHOPTS comes first
	NIX_SSHOPTS="-F $PWD/cfg -o Compression=no" run nrr switch --flake "$F#t1" --target-host far.example.org -v
	assert_line --regexp "^\\$ 'ssh'.*'-o' 'Compression=no'.*'-oCompression=yes'.*'-oControlMaster=yes'"
	run nrr switch --flake "$F#t1" --target-host t1 -v
	assert_success
	refute_output --partial "Compression=yes"
}

@test "our master's time limits: ours unless the user's ssh config sets its own" {
	# BatchMode yes makes ssh keep alive every 300 s by itself: without it, nothing is set
	sed '/BatchMode/d' "$FLEET_DIR/ssh_config" >plain
	NIX_SSHOPTS="-F $PWD/plain" run nrr switch --flake "$F#t1" --target-host t1 -v
	assert_success
	assert_line --regexp "^\\$ 'ssh'.*'-oConnectTimeout=30' '-oServerAliveInterval=15' '-oServerAliveCountMax=4'.*'-oControlMaster=yes'"
	cat "$FLEET_DIR/ssh_config" - >cfg <<-EOF
		Host *
		  ConnectTimeout 7
		  ServerAliveInterval 3
	EOF
	NIX_SSHOPTS="-F $PWD/cfg" run nrr switch --flake "$F#t1" --target-host t1 -v
	assert_success
	refute_output --partial "ConnectTimeout=30"
	refute_output --partial "ServerAliveInterval=15"
}

# Lets deploy on host $1 use sudo without a password (NOPASSWD), as some hosts of a fleet do;
# `sudo_asks_again $1` takes it back. The hosts read /etc/sudoers from $FLEET_DIR/NAME/etc.
sudo_asks_not() {
	echo 'deploy ALL=(ALL) NOPASSWD: ALL' >>"$FLEET_DIR/$1/etc/sudoers"
}
sudo_asks_again() {
	grep -v NOPASSWD "$FLEET_DIR/$1/etc/sudoers" >"$BATS_TEST_TMPDIR/sudoers"
	cat "$BATS_TEST_TMPDIR/sudoers" >"$FLEET_DIR/$1/etc/sudoers"
}

@test "-S where sudo does not ask: the password is not sent, the deploy goes as usual" {
	retag nopasswd1
	sudo_asks_not t2
	TYPED=hunter2 run nrr_tty switch --flake "$F#t2" --target-host deploy@t2 -S
	sudo_asks_again t2
	assert_success
	run fleet_exec t2 tail -n 1 /run/nrr-activations
	assert_output --partial "switch "
	assert_output --partial "uid=0"
}

@test "-S with --on: one host's sudo asks, the other's does not; both are deployed" {
	retag nopasswd2
	sudo_asks_not t2
	TYPED=hunter2 run nrr_tty switch --flake "$F" --on t1,t2 --target-user deploy -S
	sudo_asks_again t2
	assert_success
	for h in t1 t2; do
		run fleet_exec "$h" tail -n 1 /run/nrr-activations
		assert_output --partial "switch "
		assert_output --partial "uid=0"
	done
}

@test "-S with --elevate run0: no password is sent (run0 never reads one)" {
	retag run0pw
	# t1 plays a systemd host: its systemd-run records what the unit's stdin carries, then
	# runs the command as it is (root already)
	cat >"$FLEET_DIR/t1/sbin/systemd-run" <<-'EOF'
		#!/bin/sh
		while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
		shift
		tee -a /run/run0-stdin | "$@"
	EOF
	chmod 0755 "$FLEET_DIR/t1/sbin/systemd-run"
	TYPED=hunter2 run nrr_tty switch --flake "$F#t1" --target-host t1 --elevate run0 -S
	rm "$FLEET_DIR/t1/sbin/systemd-run"
	assert_success
	run -0 fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --partial "switch "
	# the conversation went through run0, without the password
	run -0 fleet_exec t1 test -s /run/run0-stdin
	run -1 fleet_exec t1 grep -c hunter2 /run/run0-stdin
	fleet_exec t1 rm /run/run0-stdin
}

@test "Ctrl-C at the password prompt ends the run at once (exit 130); nothing reaches the host" {
	retag ctrlc
	fleet_reset_counts t1
	before=$(profile_of t1)
	mkfifo typed
	_fleet_local_argv --default-signal=INT
	script -qec "$(printf '%q ' "${_FLEET_LOCAL[@]}" "$NRR" switch --flake "$F#t1" \
		--target-host deploy@t1 -S)" /dev/null <typed >log 2>&1 &
	pid=$!
	exec 4>typed
	poll_until 20 grep -q 'password for' log || fail "no prompt: $(cat log)"
	printf 'hun\003' >&4
	st=0
	wait "$pid" || st=$?
	exec 4>&-
	output=$(cat log)
	[ "$st" = 130 ] || fail "exit $st, not 130: $output"
	assert_output --partial "error: interrupted at the password prompt"
	[ "$(fleet_handshakes t1)" = 0 ]
	[ "$(profile_of t1)" = "$before" ]
}
