#!/usr/bin/env bats
# Fleets: --on deploys many configurations, each to the host of its name,
# in parallel, with a verdict per host.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 t2 t3 b1 demo broken nf:noforward ut:untrusted
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" fleet
	flake_add_big "$F"
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

# A test that failed while a gated build waited (gated_flake) lets it end, and its run with it:
# the next tests need the hosts' locks.
teardown() {
	if [ -n "${GATE-}" ] && [ ! -e "$GATE" ]; then
		touch "$GATE"
		[ -z "${FLEET_BG_PID-}" ] || wait_nrr 60 || true
	fi
}

at_of() { fleet_exec "$1" tail -n 1 /run/nrr-activations | sed -n 's/.* at=//p'; }

@test "all hosts switch, one handshake each, and the JSON report says so" {
	fleet_reset_counts t1 t2 t3 b1 demo
	run --separate-stderr nrr switch --flake "$F" --on 't*,b1,demo' --json
	assert_success
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		r = json.load(open("report.json"))
		assert sorted(h["name"] for h in r) == ["b1", "demo", "t1", "t2", "t3"], r
		assert all(h["result"] == "ok" and h["storePath"].startswith("/nix/store/") for h in r), r
		assert all(h["generation"]["after"] >= 1 for h in r), r
	PY
	for h in t1 t2 t3 b1 demo; do
		[ "$(fleet_handshakes "$h")" = 1 ]
		run last_activation "$h"
		assert_output --partial "config=$h "
	done
}

@test "globs select configurations, NAME=TARGET sends one to another host" {
	retag glob
	run --separate-stderr nrr switch --flake "$F" --on 'demo=t1'
	assert_success
	run last_activation t1
	assert_output --partial "config=demo "
	run --separate-stderr nrr test --flake "$F" --on 't[23]'
	assert_success
	assert_output ""
	run last_activation t3
	assert_output --partial "test "
	run nrr switch --flake "$F" --on 'nothing*'
	assert_failure 2
	assert_output --partial "matches no configuration"
}

@test "--parallel 1 deploys one host after the other, in order" {
	retag serial
	run nrr switch --flake "$F" --on t1,t2,t3 --parallel 1
	assert_success
	a=$(at_of t1) b=$(at_of t2) c=$(at_of t3)
	((a < b && b < c))
	# each host starts after the one before is done
	run grep -E ': (started|done)' <<<"$output"
	assert_output --regexp "t1: started.*"$'\n'".*t1: done"$'\n'".*t2: started.*"$'\n'".*t2: done"$'\n'".*t3: started"
}

@test "--parallel 6 has every host in flight at once" {
	retag wide
	run nrr switch --flake "$F" --on t1,t2,t3,b1,demo --parallel 6
	assert_success
	# every start comes before the first host is done
	first_done=$(grep -n ': done' <<<"$output" | head -n 1 | cut -d: -f1)
	last_start=$(grep -n ': started' <<<"$output" | tail -n 1 | cut -d: -f1)
	((last_start < first_done))
}

@test "a failing activation fails its host; without -k no new host starts (exit 12)" {
	retag failing
	run nrr switch --flake "$F" --on broken,t1,t2 --parallel 1 --json
	assert_failure 12
	assert_output --partial "1 of 3 hosts failed, 2 skipped"
	assert_output --partial "== broken (broken): activation ('switch-to-configuration switch') on 'broken' failed with status 1"
	run --separate-stderr nrr switch --flake "$F" --on broken,t1,t2 --parallel 1 --json -k
	assert_failure 12
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		r = {h["name"]: h for h in json.load(open("report.json"))}
		assert r["broken"]["result"] == "failed" and r["broken"]["error"]["step"] == "activate", r
		assert r["t1"]["result"] == "ok" and r["t2"]["result"] == "ok", r
	PY
}

@test "--debug reaches every host's deploy: the fleet shows each child's command, a failed child its commands" {
	retag debugged
	run nrr switch --flake "$F" --on broken,t1 --debug -k --no-diff
	assert_failure 12
	assert_output --regexp "\\$ '/proc/self/exe' 'switch' '--store-path' '/nix/store/[^']*' '--target-host' 'broken' '--progress-fd' '[0-9]+' '--debug' "
	assert_output --regexp "\\$ '/proc/self/exe' 'switch' .* '--target-host' 't1' .*'--debug' "
	# broken's own --debug lines, in its last lines
	run sed -n '/^== broken/,$p' <<<"$output"
	assert_output --regexp "\\$ 'ssh' .*'broken'"
}

@test "the hosts' closures and sizes come from one dump of this store, a file per host in a directory the run removes" {
	retag dumped
	run nrr switch --flake "$F" --on t1,t2 --debug --diff
	assert_success
	# each child is given its own closure's file (lib/closuredb.h), in one directory
	files=$(grep -o -- "'--closure-db' '[^']*/nrr-closures\.[^']*/[01]'" <<<"$output" | sort -u)
	[ "$(wc -l <<<"$files")" = 2 ] || fail "$output"
	dirs=$(sed "s|^'--closure-db' '||; s|/[01]'\$||" <<<"$files" | sort -u)
	[ "$(wc -l <<<"$dirs")" = 1 ]
	# gone after the run
	[ ! -e "$dirs" ]
	# and each host's diff was made from it
	[ "$(grep -c '^Closure: ' <<<"$output")" = 2 ]
}

@test "an evaluation error: no host starts (exit 13)" {
	fleet_reset_counts t1
	run nrr switch --flake "$F" --on t1,doesnotexist
	assert_failure 13
	assert_output --partial "attribute 'doesnotexist' missing"
	printf 'this is not nix' >>"$F/systems.nix"
	run nrr switch --flake "$F" --on t1,t2
	assert_failure 13
	assert_output --partial "evaluating the fleet's systems failed"
	flake_copy "$F" fleet
	flake_add_big "$F"
	[ "$(fleet_commands t1)" = 0 ]
}

@test "--ask shows every host's diff, then asks once; n leaves every target as it was (exit 11)" {
	retag asked
	local -A before acts
	for h in t1 t2; do
		before[$h]=$(profile_of "$h")
		acts[$h]=$(fleet_exec "$h" sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l')
	done
	TYPED=n run nrr_tty switch --flake "$F" --on t1,t2 --ask
	assert_failure 11
	assert_output --partial $'\nt1:'
	assert_output --partial $'\nt2:'
	[ "$(grep -c 'Activate on' <<<"$output")" = 1 ]
	assert_output --partial "Activate on 2 hosts (t1, t2)? [y/N]"
	assert_output --partial "declined"
	for h in t1 t2; do
		[ "$(profile_of "$h")" = "${before[$h]}" ]
		[ "$(fleet_exec "$h" sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l')" = "${acts[$h]}" ]
	done
}

@test "--ask answered y switches every host; --parallel 1 still asks once" {
	retag asked-yes
	local -A acts
	for h in t1 t2 t3; do
		acts[$h]=$(fleet_exec "$h" sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l')
	done
	TYPED=y run nrr_tty switch --flake "$F" --on t1,t2,t3 --ask --parallel 1
	assert_success
	[ "$(grep -c 'Activate on' <<<"$output")" = 1 ]
	for h in t1 t2 t3; do
		# this run activated each host once
		[ "$(fleet_exec "$h" sh -c 'cat /run/nrr-activations | wc -l')" = $((acts[$h] + 1)) ]
		run last_activation "$h"
		assert_output --partial "config=$h "
	done
}

@test "--ask without a terminal is refused unless --yes, before anything is built" {
	retag asked-no-tty
	fleet_reset_counts t1
	run fleet_local setsid "$NRR" switch --flake "$F" --on t1,t2 --ask </dev/null
	assert_failure 2
	assert_output --partial "--ask needs a terminal"
	[ "$(fleet_commands t1)" = 0 ]
	run fleet_local setsid "$NRR" switch --flake "$F" --on t1,t2 --ask --yes </dev/null
	assert_success
}

@test "--json carries each host's package diff" {
	retag json-diff
	run --separate-stderr nrr switch --flake "$F" --on t1,t2 --json
	assert_success
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		r = {h["name"]: h for h in json.load(open("report.json"))}
		for d in (r["t1"]["diff"], r["t2"]["diff"]):
		    assert set(d) >= {"added", "removed", "changed"}, d
		    assert d["closure"]["newSize"] > 0, d
	PY
	run --separate-stderr nrr switch --flake "$F" --on t1 --json --no-diff
	assert_success
	[[ $output != *'"diff"'* ]]
}

@test "--json: every host's phases with start and end, in order, from evaluate to activate" {
	retag phased
	run --separate-stderr nrr switch --flake "$F" --on t1,t2 --json
	assert_success
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		for h in json.load(open("report.json")):
		    p = h["phases"]
		    names = [x["phase"] for x in p]
		    assert names[:3] == ["evaluate", "build", "connect"], names
		    assert "copy" in names and names[-1] == "activate", names
		    assert p[0]["start"] >= 0, p
		    # the fleet's build overlaps the host's first phases (connect, ready: see the
		    # next test); the host's own phases follow each other
		    assert p[0]["end"] <= p[1]["start"] <= p[1]["end"] <= p[names.index("copy")]["start"], p
		    assert p[0]["end"] <= p[2]["start"], p
		    for a, b in zip(p[2:], p[3:]):
		        assert a["start"] <= a["end"] <= b["start"] <= b["end"], (a, b)
	PY
}

# A copy of the flake in $1 (tagged $2) where the systems of the hosts $3... build until the
# test makes the file $GATE.
gated_flake() {
	local dir=$1 tag=$2 h
	shift 2
	flake_copy "$dir" "$tag"
	GATE=$BATS_TEST_TMPDIR/gate
	for h; do
		sed -i "s|^  $h = mkConfig \"$h\" { };\$|  $h = mkConfig \"$h\" { sleep = \"$GATE\"; };|" "$dir/systems.nix"
		grep -q "^  $h = mkConfig \"$h\" { sleep = \"$GATE\"; };\$" "$dir/systems.nix"
	done
}

# True once every host named holds its deploy lock for the run in the background: connected,
# locked, waiting for the fleet's go. The holder file names that run, written once the lock is
# taken. (Not a probe with flock: that takes the lock for a moment, and a deploy trying it then
# finds the host busy, the holder file still naming the test before's run.)
all_locked() {
	local h
	for h; do
		fleet_exec "$h" grep -qF "(pid $FLEET_BG_PID) since " /run/nixos-rebuild-remote.lock.holder ||
			return 1
	done
}

# True when no host named is locked (a deploy of the test before may take a moment to let
# go of its lock on a busy machine: its session's end reaches the host after the run's).
none_locked() {
	local h
	for h; do
		fleet_exec "$h" flock -n /run/nixos-rebuild-remote.lock true 2>/dev/null ||
			! fleet_exec "$h" test -e /run/nixos-rebuild-remote.lock || return 1
	done
}

@test "the hosts connect and take their locks while the fleet builds, each in a fiber of the fleet's process; nothing reaches them before it ends" {
	gated_flake "$BATS_TEST_TMPDIR/g" overlap t1 t2
	poll_until 30 none_locked t1 t2 || fail "t1 or t2 is still locked"
	before1=$(profile_of t1) before2=$(profile_of t2)
	nrr_bg switch --flake "$BATS_TEST_TMPDIR/g" --on t1,t2
	poll_until 30 all_locked t1 t2 || fail "not locked during the build: $(cat "$BATS_TEST_TMPDIR/log")"
	# connected and locked, their systems still being built: nothing changed there yet
	[ "$(profile_of t1)" = "$before1" ]
	[ "$(profile_of t2)" = "$before2" ]
	run fleet_exec t1 sh -c 'ls /nix/store | grep -c overlap'
	assert_output 0
	# each host's deploy is a fiber of the fleet's process, not a process of ours
	[ -z "$(local_procs --progress-fd)" ] || fail "a host's child: $(local_ps)"
	# and every lock names that process, the same text on each (the fleet makes it once)
	h1=$(fleet_exec t1 cat /run/nixos-rebuild-remote.lock.holder)
	h2=$(fleet_exec t2 cat /run/nixos-rebuild-remote.lock.holder)
	[ "$h1" = "$h2" ] || fail "t1: $h1; t2: $h2"
	[[ $h1 == *"@"*" (pid $FLEET_BG_PID) since "* ]] || fail "$h1 (pid $FLEET_BG_PID)"
	touch "$GATE"
	wait_nrr 60
	assert_success
	for h in t1 t2; do
		run last_activation "$h"
		assert_output --regexp "switch /nix/store/[a-z0-9]{32}-nixos-system-$h-25\.05\.overlap/bin/switch-to-configuration"
	done
}

@test "stopped and continued (Ctrl-Z, fg) again and again as it deploys, the fleet deploys its hosts: its waits resume, as after no interrupt" {
	gated_flake "$BATS_TEST_TMPDIR/g" stopcont t1 t2
	poll_until 30 none_locked t1 t2 || fail "t1 or t2 is still locked"
	nrr_bg switch --flake "$BATS_TEST_TMPDIR/g" --on t1,t2
	poll_until 30 all_locked t1 t2 || fail "not locked during the build: $(cat "$BATS_TEST_TMPDIR/log")"
	# stopped and continued every moment until it ends, the build's wait and the hosts' deploys
	# among them (epoll_wait(2), unlike poll(2), fails with EINTR after a stop: signal(7))
	touch "$GATE"
	for _ in $(seq 100); do
		kill -STOP "$FLEET_BG_PID" 2>/dev/null || break
		sleep 0.05
		kill -CONT "$FLEET_BG_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait_nrr 60
	assert_success
	for h in t1 t2; do
		run last_activation "$h"
		assert_output --regexp "switch /nix/store/[a-z0-9]{32}-nixos-system-$h-25\.05\.stopcont/bin/switch-to-configuration"
	done
}

# Once the hosts named are locked, during the gated build of the run nrr_bg started, kills the
# ssh master of the first (lib/ssh.c's, whose last word is the host), opens the gate, and waits
# for the run's end (wait_nrr).
kill_master_while_building() {
	local master
	poll_until 30 all_locked "$@" ||
		fail "not locked during the build: $(cat "$BATS_TEST_TMPDIR/log"); on $1: $(fleet_ps "$1"); here: $(local_ps)"
	master=$(local_ps | awk -v h="$1" '/ControlMaster=yes/ && $NF == h { print $1 }')
	[ -n "$master" ] || fail "no master for $1: $(local_ps)"
	kill -KILL "$master"
	touch "$GATE"
	wait_nrr 60
}

@test "a target's connection lost while the fleet builds: that host fails, named, unchanged; the others go on" {
	gated_flake "$BATS_TEST_TMPDIR/g" overlap-lost t1 t2
	poll_until 30 none_locked t1 t2 || fail "t1 or t2 is still locked"
	before=$(profile_of t1)
	nrr_bg switch --flake "$BATS_TEST_TMPDIR/g" --on t1,t2 -k
	kill_master_while_building t1 t2
	assert_failure 12
	assert_line --regexp "^error: lost 't1' \(root@[0-9.]+:22\) while waiting for the fleet: its ssh connection ended: ssh was killed on this machine \(Killed\)\$"
	assert_line "hint: nothing was changed there; deploy it again ('t1' did not end it: something on this machine did, a kill or the out-of-memory killer)"
	[ "$(profile_of t1)" = "$before" ]
	run last_activation t2
	assert_output --regexp "switch /nix/store/[a-z0-9]{32}-nixos-system-t2-25\.05\.overlap-lost/"
}

@test "a single deploy whose ssh is killed here during its build: exit 3, said so, the target unchanged" {
	gated_flake "$BATS_TEST_TMPDIR/g" single-lost t1
	poll_until 30 none_locked t1 || fail "t1 is still locked"
	before=$(profile_of t1)
	fleet_reset_counts t1
	nrr_bg switch --flake "$BATS_TEST_TMPDIR/g#t1" --target-host t1
	kill_master_while_building t1
	assert_failure 3
	assert_line --regexp "^error: lost 't1' \(root@[0-9.]+:22\) while building: its ssh connection ended: ssh was killed on this machine \(Killed\)\$"
	assert_line "hint: nothing was changed there; deploy it again ('t1' did not end it: something on this machine did, a kill or the out-of-memory killer)"
	[ "$(profile_of t1)" = "$before" ]
	# no second connection took the lost one's place
	[ "$(fleet_handshakes t1)" = 1 ]
}

@test "a host that cannot be reached is said while the fleet still builds, not after it" {
	gated_flake "$BATS_TEST_TMPDIR/g" overlap-down t1
	poll_until 30 none_locked t1 || fail "t1 is still locked"
	local t1
	t1=$(fleet_addr t1)
	# nothing listens there: refused at once
	nrr_bg switch --flake "$BATS_TEST_TMPDIR/g" --on "t1,t2=root@${t1%.*}.250" -k
	t2_failed() { grep -q " t2: failed: .*cannot reach" "$BATS_TEST_TMPDIR/log"; }
	poll_until 30 t2_failed || fail "t2's failure not said during the build: $(cat "$BATS_TEST_TMPDIR/log")"
	[ ! -e "$GATE" ]
	touch "$GATE"
	wait_nrr 60
	assert_failure 12
	run last_activation t1
	assert_output --regexp "switch /nix/store/[a-z0-9]{32}-nixos-system-t1-25\.05\.overlap-down/"
}

@test "a fleet's child makes each path's NAR from this machine's store itself: the very NAR nix-store --dump writes" {
	retag export
	top=$(fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel")
	mapfile -t closure < <(fleet_local nix-store --query --requisites "$top")
	for p in "${closure[@]}"; do
		fleet_local nix-store --dump "$p" >theirs
		fleet_local "${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}" nar-dump "$p" >ours
		cmp ours theirs || fail "our NAR of $p differs"
	done
	# and deployed with them: t1's nix-store --serve registered each with its hash, and
	# checked it (a path whose NAR differed would have been refused)
	run --separate-stderr nrr switch --flake "$F" --on t1
	assert_success
	[ "$(profile_of t1)" = "$top" ]
	run fleet_exec t1 nix-store --verify-path "$top"
	assert_success
}

@test "a store path that grew behind Nix's back is never sent whole: the host fails naming it, unchanged" {
	retag tampered
	top=$(fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel")
	before=$(state_of t1)
	# root here appends to a file of the new system: its NAR is longer than registered (by 9
	# bytes or more: a file's contents are padded to a multiple of 8 there)
	fleet_local sh -c 'printf 123456789 >>"$1/nixos-version"' sh "$top"
	run nrr switch --flake "$F" --on t1
	assert_failure 12
	assert_line "error: copying to 't1' failed: '$top' does not match the store's registration of it (its NAR's size differs)"
	assert_line --partial "hint: this machine's store changed behind Nix's back"
	[ "$(state_of t1)" = "$before" ]
	run fleet_exec t1 nix-store --check-validity "$top"
	assert_failure
	# the same through nf's nix-store --serve
	before=$(state_of nf)
	deploy_child nf "$top"
	assert_failure 6
	assert_line "error: copying to 'nf' failed: '$top' does not match the store's registration of it (its NAR's size differs)"
	[ "$(state_of nf)" = "$before" ]
	run fleet_exec nf nix-store --check-validity "$top"
	assert_failure
}

@test "a store path changed behind Nix's back at the same size is refused by the target, which checks its hash: the host fails naming it, unchanged" {
	# nf's nix-store --serve, t1's nix-daemon
	for h in nf t1; do
		retag "tampered-same-$h"
		top=$(fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel")
		before=$(state_of $h)
		# one byte of a file of the new system overwritten in place: same size, other hash
		fleet_local sh -c 'printf X | dd of="$1/nixos-version" bs=1 seek=0 conv=notrunc status=none' sh "$top"
		deploy_child $h "$top"
		assert_failure 6
		assert_line --regexp "^error: copying to '$h' failed: .*hash mismatch importing path '$top'"
		assert_line --partial "hint: this machine's store changed behind Nix's back"
		[ "$(state_of $h)" = "$before" ] || fail "$h changed"
		run fleet_exec $h nix-store --check-validity "$top"
		assert_failure
	done
}

# deploy_child HOST TOP: the deploy a fleet runs for HOST (its child's command line, as
# --debug shows it), with TOP's closure dumped as the fleet dumps it, and --debug
deploy_child() {
	mapfile -t closure < <(fleet_local nix-store --query --requisites "$2")
	fleet_local sh -c 'nix-store --dump-db "$@" >dump' sh "${closure[@]}"
	run nrr switch --store-path "$2" --target-host "$1" --closure-db dump --no-diff --debug
}

@test "a fleet's child hands a big file's pages to the target's nix-daemon or nix-store --serve without copying them: every byte arrives, checked there" {
	# big: 32 MiB in one file, past what the pipe or socket to ssh holds many times over;
	# t1 takes it through its nix-daemon (sendfile, in frames), nf through nix-store --serve
	# (splice)
	big=$(fleet_build "$F#nixosConfigurations.big.config.system.build.toplevel")
	for h in t1:nix-daemon nf:nix-store\ --serve; do
		deploy_child "${h%%:*}" "$big"
		assert_success
		assert_output --regexp "copying [0-9]+ of [0-9]+ paths from .localhost. to .${h%%:*}. through its ${h#*:}"
		[ "$(profile_of "${h%%:*}")" = "$big" ]
		# each NAR was hashed there as it came, and none that differed taken; the store
		# there holds them as here
		for p in $(fleet_local nix-store --query --requisites "$big"); do
			assert_equal "$(fleet_exec "${h%%:*}" nix-store -q --hash "$p")" \
				"$(fleet_local nix-store -q --hash "$p")"
		done
		run fleet_exec "${h%%:*}" nix-store --verify-path "$big"
		assert_success
	done
}

@test "a fleet's child imports the closure through the target's own nix-daemon: no nix-store started there, one handshake, one command" {
	retag via-daemon
	top=$(fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel")
	fleet_reset_counts t1
	deploy_child t1 "$top"
	assert_success
	# the master forwards the daemon's socket into our private directory
	assert_output --regexp "'-L' '[^']*/[0-9]+\.nix:/nix/var/nix/daemon-socket/socket'"
	assert_output --regexp "copying [0-9]+ of [0-9]+ paths from 'localhost' to 't1' through its nix-daemon"
	[ "$(profile_of t1)" = "$top" ]
	assert_equal "$(fleet_handshakes t1)" 1
	assert_equal "$(fleet_commands t1)" 1
	# registered there as here: hash, size and references of every path
	for p in "${closure[@]}"; do
		assert_equal "$(fleet_exec t1 nix-store -q --hash --size "$p")" \
			"$(fleet_local nix-store -q --hash --size "$p")"
		assert_equal "$(fleet_exec t1 nix-store -q --references "$p")" \
			"$(fleet_local nix-store -q --references "$p")"
	done
	run fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --regexp "^switch $top/bin/switch-to-configuration "
}

@test "a fleet's run leaves none of its forwarded sockets behind" {
	retag fleet-daemon
	mkdir -m 0700 "$BATS_TEST_TMPDIR/tmp"
	run fleet_local env XDG_RUNTIME_DIR="$BATS_TEST_TMPDIR/tmp" "$NRR" switch --flake "$F" --on t1,t2,t3
	assert_success
	for h in t1 t2 t3; do
		[ "$(profile_of $h)" = "$(fleet_build "$F#nixosConfigurations.$h.config.system.build.toplevel")" ]
	done
	run ls -A "$BATS_TEST_TMPDIR/tmp"
	assert_output ''
}

@test "a host whose sshd forwards no sockets gets the closure through nix-store --serve instead, still one command" {
	retag no-forward
	top=$(fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel")
	fleet_reset_counts nf
	deploy_child nf "$top"
	assert_success
	# and -v says why
	assert_output --regexp "copying [0-9]+ of [0-9]+ paths from 'localhost' to 'nf' through its nix-store --serve: no nix-daemon answered on its socket \(or its sshd forwards none\)"
	refute_output --partial "through its nix-daemon"
	[ "$(profile_of nf)" = "$top" ]
	assert_equal "$(fleet_handshakes nf)" 1
	assert_equal "$(fleet_commands nf)" 1
}

@test "a host whose nix-daemon does not trust root gets it through nix-store --serve: the daemon is asked first, nothing half-sent" {
	retag untrusted
	top=$(fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel")
	run fleet_exec ut grep '^trusted-users' /etc/nix/nix.conf
	assert_output 'trusted-users = deploy fishy'
	fleet_reset_counts ut
	deploy_child ut "$top"
	assert_success
	assert_output --regexp "copying [0-9]+ of [0-9]+ paths from 'localhost' to 'ut' through its nix-store --serve: its nix-daemon does not trust this login"
	refute_output --partial "through its nix-daemon"
	[ "$(profile_of ut)" = "$top" ]
	assert_equal "$(fleet_commands ut)" 1
}

@test "a non-root login never forwards the daemon's socket (the daemon would not trust its import)" {
	retag non-root
	top=$(fleet_build "$F#nixosConfigurations.t2.config.system.build.toplevel")
	mapfile -t closure < <(fleet_local nix-store --query --requisites "$top")
	fleet_local sh -c 'nix-store --dump-db "$@" >dump' sh "${closure[@]}"
	# (sudo wants a password there, which this run has not: it stops at that)
	run nrr switch --store-path "$top" --target-host deploy@t2 --sudo --closure-db dump --no-diff --debug
	assert_output --regexp "\\$ 'ssh' .*'-oControlMaster=yes'.*'deploy@t2'"
	refute_output --partial "daemon-socket"
}

@test "an unreachable host, with --keep-going: the others still switch" {
	retag unreachable
	# t3's sshd goes away for good: the last test of the file
	# by its pid file: pkill would reach the t3 of other fleets on this machine
	kill "$(cat "$FLEET_DIR/t3/sshd.pid")"
	run --separate-stderr nrr switch --flake "$F" --on t1,t2,t3 -k --json
	assert_failure 12
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		r = {h["name"]: h for h in json.load(open("report.json"))}
		assert r["t3"]["result"] == "failed" and r["t3"]["error"]["step"] == "connect", r
		assert "cannot reach 't3'" in r["t3"]["error"]["message"], r
		assert r["t1"]["result"] == "ok" and r["t2"]["result"] == "ok", r
	PY
}
