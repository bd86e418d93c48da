#!/usr/bin/env bats
# A hostile target or build host: its answers are forged at every step of the conversation
# (the paths it lacks, its generations, the closures for the diff, the facts it tells about
# itself, the result of a build, the confirmation token). Each forgery is refused with a
# protocol error naming the host (exit 14), and nothing of it is used: no path outside the
# closure leaves this machine, no escape sequence reaches the terminal. Also: every file a
# deploy makes on a host is in a directory that only its owner may write.
#
# A host forges when its /run/nrr-forge holds a sed script: its ForceCommand (sshd-logcmd)
# then runs every remote command with its stdout's text lines through `sed -f /run/nrr-forge`
# (tests/lib/forge-filter). Its binary output (an export stream) is forged by programs of its
# own: sshd-logcmd puts /run/nrr-forge-bin first in the PATH of its commands.

# shellcheck disable=SC2154 # stderr is set by run --separate-stderr
bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	# t1 forwards no sockets: its closure goes through the nix-store --serve whose answers
	# the first test forges (a daemon's answers are checked by the same code: lib/serve.c)
	fleet_start t1:noforward b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" forged
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	nrr() { nrr_within 60 "$@"; }
	cd "$BATS_TEST_TMPDIR" || return
}

teardown() {
	fleet_exec t1 rm -rf /run/nrr-forge /run/nrr-forge-bin
	fleet_exec b1 rm -rf /run/nrr-forge /run/nrr-forge-bin
}

# forge HOST SED-SCRIPT: from now on HOST rewrites what its commands print.
forge() {
	printf '%s\n' "$2" | fleet_exec "$1" sh -c 'cat >/run/nrr-forge'
}

# plant HOST: from now on HOST's nix-store --export also exports a path of HOST's own, which
# nobody asked for (as a host that plants the output of a derivation its destination is to
# build later); prints that path.
plant() {
	local real extra
	real=$(fleet_exec "$1" sh -c 'command -v nix-store')
	extra=$(fleet_exec "$1" sh -c "echo planted-$RANDOM >/tmp/planted && nix-store --add /tmp/planted")
	fleet_exec "$1" sh -c "mkdir -p /run/nrr-forge-bin && cat >/run/nrr-forge-bin/nix-store &&
		chmod +x /run/nrr-forge-bin/nix-store" <<-EOF
		#!/bin/sh
		[ "\$1" = --export ] && exec $real "\$@" $extra
		exec $real "\$@"
		EOF
	echo "$extra"
}

# The run failed with a protocol error naming host $1 (exit 14), and printed no escape.
refused_by() {
	[ "$status" = 14 ] || fail "exit $status, not 14: $output"
	assert_line --regexp "^error: protocol error from '$1': "
	refute_output --partial $'\e'
}

@test "a target whose nix-store --serve claims a path outside the closure is refused (exit 14)" {
	retag f-serve
	before=$(profile_of t1)
	# its answer to the query, forged after the line that starts it: the handshake
	# (magic, version 2.5), then one path of 15 bytes (sed's newline is its padding)
	forge t1 's|^serve$|serve\n\xcb\xee\x52\x54\x00\x00\x00\x00\x05\x02\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x0f\x00\x00\x00\x00\x00\x00\x00/nix/store/abcd|'
	run nrr switch --flake "$F#t1" --target-host t1
	refused_by t1
	assert_output --partial "it has '/nix/store/abcd', which is not in the closure we sent"
	assert_equal "$(profile_of t1)" "$before"
}

@test "a target that says something else where its nix-store --serve was to start is refused (exit 14)" {
	# a system to replace: the query then goes with the closure, ahead of the "serve" line
	retag f-ahead-1
	run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	before=$(profile_of t1)
	retag f-ahead-2
	forge t1 's|^serve$|Hello|'
	run nrr switch --flake "$F#t1" --target-host t1
	refused_by t1
	assert_output --partial "it said 'Hello' where its nix-store --serve was to start"
	assert_equal "$(profile_of t1)" "$before"
}

# (the next two: a profile of their own, of which this run knows nothing, so the query is
# not sent ahead and the target's lines are read as what it lacks)
@test "a target that asks for a path outside the closure gets nothing (exit 14)" {
	retag f-missing
	other=$(toplevel t2)
	forge t1 "/^ready /a $other"
	run nrr switch --flake "$F#t1" --target-host t1 -p forged
	refused_by t1
	assert_output --partial "it asks for '$other', which is not in the closure we sent"
	run fleet_exec t1 nix-store --check-validity "$other"
	assert_failure
}

@test "a target that answers options for paths passes none to nix-store (exit 14)" {
	retag f-option
	forge t1 '/^ready /a --option'
	run nrr switch --flake "$F#t1" --target-host t1 -p forged
	refused_by t1
	assert_output --partial "it asks for '--option'"
}

@test "a build host whose nix-store --serve claims a path outside the derivations' closure is refused (exit 14)" {
	retag f-query
	# as the target's above: after the line that starts it, one path of 15 bytes. What it
	# is sent is only what it lacks of the closure we offered: it can ask for nothing else.
	forge b1 's|^serve$|serve\n\xcb\xee\x52\x54\x00\x00\x00\x00\x05\x02\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x0f\x00\x00\x00\x00\x00\x00\x00/nix/store/abcd|'
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1
	refused_by b1
	assert_output --partial "it has '/nix/store/abcd', which is not in the closure we sent"
	# the build's session, started with the copy, ended without building
	top=$(fleet_local nix eval --raw "$F#nixosConfigurations.t1.config.system.build.toplevel.outPath")
	run fleet_exec b1 nix-store --check-validity "$top"
	assert_failure
	run fleet_ps b1
	refute_output --partial 'nix-store --realise'
}

@test "a build host whose export carries a path not asked for is stopped before that path (exit 14)" {
	retag f-export
	before=$(profile_of t1)
	extra=$(plant b1)
	# to the target, inside its nix-store --serve
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1
	refused_by b1
	assert_output --partial "its export stream holds '$extra', which was not asked for"
	run fleet_exec t1 nix-store --check-validity "$extra"
	assert_failure
	assert_equal "$(profile_of t1)" "$before"
	# to this machine (for ./result), into its nix-store --import
	run nrr build --flake "$F#t1" --build-host b1
	refused_by b1
	assert_output --partial "its export stream holds '$extra', which was not asked for"
	run fleet_local nix-store --check-validity "$extra"
	assert_failure
}

@test "a build host that says something else before its nix-store --serve is refused (exit 14)" {
	retag f-serve-b
	forge b1 's|^serve$|Welcome to b1\nserve|'
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1
	refused_by b1
	assert_output --partial "it said 'Welcome to b1' where its nix-store --serve was to start"
}

@test "a forged line slipped before a list of paths is refused, not printed (exit 14)" {
	retag f-probe
	# the store query carries no facts about the host any more (lib/scripts/query.sh); a
	# line slipped in before the "--" of any list is refused wherever it lands
	forge t1 's/^--$/current=\x1b]2;pwned\x07\n--/'
	run nrr switch --flake "$F#t1" --target-host t1 --build-host t1
	# named in the message with its escape shown, never sent to the terminal
	refused_by t1
}

@test "a forged machine name is refused (exit 14)" {
	retag f-ready
	forge t1 's/^ready .*/ready x86\x1b[31m_64/'
	run nrr switch --flake "$F#t1" --target-host t1
	refused_by t1
}

@test "forged generations after activation are refused (exit 14)" {
	retag f-gen
	forge t1 's/^generation .*/generation 1 2;x/'
	run nrr switch --flake "$F#t1" --target-host t1
	refused_by t1
	assert_output --partial "its generations are not numbers"
	# said after "activating": what it did may be done
	assert_line "hint: a broken or hostile host: its answer was not used, but it may have activated the new system (the profile may already point to the new system; '--rollback' goes back)"
}

@test "a forged line in the closures for the diff is refused, not shown (exit 14)" {
	retag f-diff
	# (the diff is made here when this store holds the running system: the
	# target answers diff-local, and may send its own closures all the same)
	forge t1 's/^diff-\(old\|local\)$/diff-old\n\x1b[2J\x1b]2;pwned\x07\t1/'
	run nrr switch --flake "$F#t1" --target-host t1 --diff
	refused_by t1
	assert_output --partial "a line of its closure is not a store path and size"
}

@test "forged generations of list-generations are refused (exit 14)" {
	retag f-list
	nrr switch --flake "$F#t1" --target-host t1
	forge t1 's|\t/nix/store/[^\t]*|\t/etc/shadow|'
	run nrr list-generations --target-host t1
	refused_by t1
	assert_output --partial "is not a store path: '/etc/shadow'"
}

@test "a forged confirmation token is refused (exit 14)" {
	retag f-token
	forge t1 's|^token .*|token /tmp/x;touch y|'
	run nrr switch --flake "$F#t1" --target-host t1 --confirm-timeout 3
	refused_by t1
	assert_output --partial "its confirmation token is not a path"
	assert_line "hint: a broken or hostile host: its answer was not used, but it may have activated the new system (and may go back to the previous one by itself)"
	# the watchdog it armed rolls the system back by itself, as without confirmation
	sleep 4
}

@test "a build host that forges its result is refused (exit 14)" {
	retag f-result
	forge b1 's|^\(/nix/store/[a-z0-9]*-nixos-system-t1-25\.05\.f-result\)$|\1/../../../etc|'
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1
	refused_by b1
	assert_output --partial "its result is not a store path"
}

@test "every file a deploy makes on a host is in a directory only its owner may write" {
	retag f-files
	for h in t1 b1; do fleet_exec "$h" touch /run/nrr-marker; done
	fleet_exec t1 sh -c ': >>/run/nrr-activations && chmod 0666 /run/nrr-activations'
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1 --confirm-timeout 30
	assert_success
	run nrr test --flake "$F#t1" --target-host deploy@t1
	assert_success
	for h in t1 b1; do
		# what appeared since the marker, but for the test system's own record and sudo's
		run fleet_exec "$h" find /tmp /run "/run/fleet/$h/home" "/run/fleet/$h/root-home" \
			-xdev -newer /run/nrr-marker ! -name nrr-activations ! -name nrr-marker \
			! -path '/run/sudo*' ! -name '*.log' ! -path '*/.ssh*' \
			-printf '%p %y %m %u\n'
		while read -r path type mode owner; do
			[ -n "$path" ] || continue
			parent=${path%/*}
			[ -n "$parent" ] || parent=/
			pmode=$(fleet_exec "$h" stat -c %a "$parent")
			powner=$(fleet_exec "$h" stat -c %U "$parent")
			if [ $((8#$pmode & 8#022)) != 0 ]; then
				# only a fresh private directory may be made in a shared one
				[ "$type" = d ] && [ "$mode" = 700 ] ||
					fail "$h: $path ($type $mode $owner) is in $parent ($pmode $powner)"
			fi
		done <<<"$output"
	done
	fleet_ps t1 | awk '$2 == "sleep" && $3 == 30 { print $1 }' | xargs -r kill
}
