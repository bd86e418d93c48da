#!/usr/bin/env bats
# The cache route (--push-to): the closure goes once to a binary cache and
# every target fetches it from there. Its LAN shape: a cache host that we
# stream the closure to over our ssh master, which writes a signed cache
# (nix copy --to file://DIR) that a real nginx on it serves; targets whose
# nix.conf points at it. A target that would not fetch from it is named
# before it is activated; dry-build and dry-activate show each host's plan.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	cache_servers_init
	fleet_start cache t1 t2
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" pushto
	# the cache host: its key (its nix.conf names it: the default for
	# --sign-key), its cache directory, nginx serving it
	fleet_exec cache nix-store --generate-binary-cache-key lan-cache-1 /etc/nix/cache-sk /etc/nix/cache-pk
	fleet_exec cache sh -c 'echo "secret-key-files = /etc/nix/cache-sk" >>/etc/nix/nix.conf; mkdir -p /nix/var/www'
	export CACHE_PK URL
	CACHE_PK=$(fleet_exec cache cat /etc/nix/cache-pk)
	URL=$(fleet_nginx cache /nix/var/www)
	# the targets read their cache settings from an include each test writes
	for h in t1 t2; do
		fleet_exec "$h" sh -c 'echo "!include /etc/nix/cache.conf" >>/etc/nix/nix.conf'
	done
	# a key of the deployer's own, for --push-to from here
	export C=$BATS_FILE_TMPDIR/c
	mkdir -p "$C/www"
	fleet_local nix-store --generate-binary-cache-key here-1 "$C/sk" "$C/pk"
}

teardown_file() {
	load lib/common
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	cache_servers_stop
	fleet_stop
}

setup() {
	load lib/common
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	cd "$BATS_TEST_TMPDIR"
}

# Host $1 substitutes from URL $2 and trusts key $3.
point() {
	fleet_exec "$1" sh -c "printf 'substituters = %s\ntrusted-public-keys = %s\n' '$2' '$3' >/etc/nix/cache.conf"
}

# NAR downloads nginx served so far.
nar_gets() { grep -c 'GET /nar/' "$FLEET_DIR/cache/nginx/access.log" || true; }
# Streams host $1 imported (what we relayed to it): import.sh's, and on the
# cache host the stream its writing of the cache took first (--import).
imports() { fleet_command_log "$1" | grep -c -e 'exec nix-store --import' -e "'sh' '[^']*' '[^']*' '--import'" || true; }

# The cache host has taken a connection (of this test's run: counts reset).
cache_connected() { [ "$(fleet_handshakes cache)" != 0 ]; }
host_connected() { [ "$(fleet_handshakes "$1")" != 0 ]; }
# How many switch-to-configuration runs host $1 has recorded.
activation_count() { fleet_exec "$1" sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l'; }

# Starts (nrr_bg) a switch of slowish (a 4 s build) to t1 through the cache host, retagged $1,
# and waits until the cache host has a connection of this run's.
slow_push_started() {
	retag "$1"
	point t1 "$URL" "$CACHE_PK"
	fleet_reset_counts cache t1
	nrr_bg switch --flake "$F" --on slowish=t1 "${LAN[@]}" --cache-url "$URL"
	poll_until 20 cache_connected || fail "no connection to the cache host: $(cat "$BATS_TEST_TMPDIR/log")"
}

# The cache route's options, the LAN cache host's way.
LAN=(--push-to file:///nix/var/www --cache-host cache)

@test "a fleet through the cache host: the closure crosses our link once, the targets fetch it from nginx" {
	retag lan1
	point t1 "$URL" "$CACHE_PK"
	point t2 "$URL" "$CACHE_PK"
	fleet_reset_counts cache t1 t2
	nars=$(nar_gets)
	run --separate-stderr nrr switch --flake "$F" --on t1,t2 "${LAN[@]}" --cache-url "$URL" --json
	assert_success
	# the cache host got the closures once, in one stream; the targets none
	[ "$(imports cache)" = 1 ]
	[ "$(imports t1)" = 0 ]
	[ "$(imports t2)" = 0 ]
	[[ $stderr =~ "push for the cache 'file:///nix/var/www' on 'cache': "[0-9]+" paths ("[0-9.]+" "[KM]?i?B") pushed once" ]]
	[[ $stderr == *"plan for 't1': 5 paths: 0 present, 5 from its caches ("*"), 0 to push (0 B)"* ]]
	[[ $stderr == *"plan for 't2': 5 paths: 0 present, 5 from its caches ("*"), 0 to push (0 B)"* ]]
	echo "$output" >report.json
	# the push is every host's phase after the build; the hosts connected and locked
	# during the build, and waited for it ("ready"); once it ended they asked their
	# targets what they lack ("check") while the push went on, then waited ("ready")
	# until it ended to fetch
	python3 - <<-'PY'
		import json
		for h in json.load(open("report.json")):
		    assert h["result"] == "ok", h
		    assert h["bytesCopied"] == 0 and h["bytesFromCaches"] > 0, h
		    # (a name seen twice: its last)
		    p = {x["phase"]: (x["start"], x["end"]) for x in h["phases"]}
		    names = [x["phase"] for x in h["phases"]]
		    assert names[:3] == ["evaluate", "build", "push"], names
		    assert p["push"][0] == p["build"][1] and p["push"][1] > p["push"][0], p
		    assert p["connect"][0] < p["build"][1], p
		    assert names[3:8] == ["connect", "ready", "check", "ready", "fetch"], names
		    assert p["check"][0] >= p["build"][1], p
		    assert p["ready"][1] >= p["push"][1] - 0.05 and p["fetch"][0] >= p["ready"][1], p
	PY
	# the cache host: the query of what it lacks, then one session that took
	# the stream and wrote the cache
	[ "$(fleet_commands cache)" = 2 ]
	# each target fetched each of its 5 paths from nginx, once
	[ "$(($(nar_gets) - nars))" = 10 ]
	[ "$(profile_of t1)" = "$(toplevel t1)" ]
	[ "$(profile_of t2)" = "$(toplevel t2)" ]
	# the cache is signed with the cache host's key
	run fleet_exec cache sh -c 'cat /nix/var/www/*.narinfo'
	assert_output --partial "Sig: lan-cache-1:"
	# in zstd: the URL names no compression (xz costs the cache host and
	# every target several times the CPU)
	assert_output --partial "Compression: zstd"
	refute_output --partial "Compression: xz"
}

@test "the cache host's and the targets' handshakes are made while the fleet builds, not after it" {
	slow_push_started early
	poll_until 20 host_connected t1 || fail "t1 not connected during the build: $(cat "$BATS_TEST_TMPDIR/log")"
	# still building: nothing was pushed, nothing asked of the target but its lock
	! grep -q "pushed once" "$BATS_TEST_TMPDIR/log" || fail "the build is over already: $(cat "$BATS_TEST_TMPDIR/log")"
	cache_during=$(fleet_handshakes cache) t1_during=$(fleet_handshakes t1)
	wait_nrr
	assert_success
	[ "$cache_during" = 1 ]
	[ "$t1_during" = 1 ]
	# that one connection was the push's
	[ "$(fleet_handshakes cache)" = 1 ]
	[ "$(fleet_commands cache)" = 2 ]
	[ "$(fleet_handshakes t1)" = 1 ]
	[ "$(profile_of t1)" = "$(toplevel slowish)" ]
}

@test "the cache host's connection lost while the fleet builds: the push connects again, once" {
	slow_push_started early-lost
	# the cache host's master (the target's has its own, lib/ssh.c's "-- HOST")
	master=$(local_ps | awk '/ControlMaster=yes/ && $NF == "cache" { print $1 }')
	[ -n "$master" ] || fail "no master: $(local_ps)"
	kill -KILL $master
	wait_nrr
	assert_success
	[ "$(fleet_handshakes cache)" = 2 ]
	[ "$(fleet_commands cache)" = 2 ]
	[ "$(profile_of t1)" = "$(toplevel slowish)" ]
}

@test "Ctrl-C while the fleet builds, the cache host connected already: exit 130, nothing of ours left" {
	before=$(profile_of t1) acts=$(activation_count t1)
	slow_push_started early-int
	kill -INT "$FLEET_BG_PID"
	wait_nrr
	assert_failure 130
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: interrupted: building the fleet's systems failed"
	no_ssh_left
	! local_runs "$NRR" || fail "a process of ours is left: $(local_ps)"
	[ "$(fleet_commands cache)" = 0 ]
	# t1 may have been connected and locked: nothing was changed there
	[ "$(profile_of t1)" = "$before" ]
	[ "$(activation_count t1)" = "$acts" ]
}

@test "a fleet whose build fails never pushes: the cache host's early connection is closed, nothing of ours left" {
	retag early-fail
	point t1 "$URL" "$CACHE_PK"
	fleet_reset_counts cache t1
	before=$(profile_of t1) acts=$(activation_count t1)
	run nrr switch --flake "$F" --on failbuild=t1 "${LAN[@]}" --cache-url "$URL"
	assert_failure 13
	[ "$(fleet_commands cache)" = 0 ]
	# connected and locked during the build, t1 was released unchanged
	[ "$(profile_of t1)" = "$before" ]
	[ "$(activation_count t1)" = "$acts" ]
	no_ssh_left
	! local_runs "$NRR" || fail "a process of ours is left: $(local_ps)"
}

@test "a hive's nodes by @tag go through the cache host too: built, pushed once, fetched from nginx" {
	H=$BATS_TEST_TMPDIR/hive
	mkdir -p "$H"
	# -L: the stand-in's builders are links to tests/flake's
	cp -RL "$BATS_TEST_DIRNAME/hive/nixpkgs" "$H/nixpkgs"
	cat >"$H/hive.nix" <<-'EOF2'
		{
		  meta.nixpkgs = import ./nixpkgs { system = "x86_64-linux"; };
		  defaults = { name, ... }: { networking.hostName = name; };
		  one = { deployment.targetHost = "t1"; deployment.tags = [ "web" ]; };
		  two = { deployment.targetHost = "t2"; deployment.tags = [ "web" ]; };
		}
	EOF2
	point t1 "$URL" "$CACHE_PK"
	point t2 "$URL" "$CACHE_PK"
	fleet_reset_counts cache t1 t2
	nars=$(nar_gets)
	run --separate-stderr nrr switch --flake "$H" --on @web "${LAN[@]}" --cache-url "$URL" --json
	assert_success
	[[ $stderr =~ "push for the cache 'file:///nix/var/www' on 'cache': "[0-9]+" paths" ]]
	# the cache host got them in one stream; the targets fetched theirs from nginx
	[ "$(imports cache)" = 1 ]
	[ "$(imports t1)" = 0 ]
	[ "$(imports t2)" = 0 ]
	[ "$(($(nar_gets) - nars))" -gt 0 ]
	[ "$(fleet_handshakes cache)" = 1 ]
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		for h in json.load(open("report.json")):
		    assert h["result"] == "ok", h
		    assert h["bytesCopied"] == 0 and h["bytesFromCaches"] > 0, h
		    names = [x["phase"] for x in h["phases"]]
		    assert names[:3] == ["evaluate", "build", "push"], names
	PY
	[ "$(profile_of t1)" = "$(fleet_local "$NRR" apply build -f "$H" --on one 2>/dev/null | awk '{ print $2 }')" ]
}

@test "a fleet through the cache host lists its closures here once: the push's list is the hosts' too" {
	retag lan-once
	point t1 "$URL" "$CACHE_PK"
	point t2 "$URL" "$CACHE_PK"
	# every nix-store this machine runs, logged
	mkdir bin
	printf '#!/bin/sh\necho "$*" >>%s/nix-store.log\nexec /usr/bin/nix-store "$@"\n' "$PWD" >bin/nix-store
	chmod +x bin/nix-store
	PATH=$PWD/bin:$PATH run --separate-stderr nrr switch --flake "$F" --on t1,t2 "${LAN[@]}" --cache-url "$URL"
	assert_success
	[ "$(profile_of t1)" = "$(toplevel t1)" ]
	[ "$(profile_of t2)" = "$(toplevel t2)" ]
	run grep -c -- '--query --requisites' nix-store.log
	assert_output 1
	run grep -c -- '--dump-db' nix-store.log
	assert_output 1
}

@test "a fleet's push that fails: no host goes on, each is left as it was and unlocked" {
	retag lan-fail
	before1=$(state_of t1)
	before2=$(state_of t2)
	# the cache host's cache directory cannot be written
	fleet_exec cache sh -c 'mv /nix/var/www /nix/var/www.away && : >/nix/var/www'
	run --separate-stderr nrr switch --flake "$F" --on t1,t2 "${LAN[@]}" --cache-url "$URL"
	fleet_exec cache sh -c 'rm -f /nix/var/www && mv /nix/var/www.away /nix/var/www'
	assert_failure 6
	# the push's error is the run's; the hosts, connected and locked meanwhile, say nothing
	[[ $stderr == *"error: writing the cache 'file:///nix/var/www' on 'cache' failed: '/nix/var/www' is not a directory"* ]] ||
		fail "$stderr"
	[[ $stderr != *"t1: failed"* && $stderr != *"== t1"* ]] || fail "$stderr"
	[ "$(state_of t1)" = "$before1" ]
	[ "$(state_of t2)" = "$before2" ]
	poll_until 10 unlocked t1 || fail "t1's deploy lock is still held"
	poll_until 10 unlocked t2 || fail "t2's deploy lock is still held"
	no_ssh_left
}

@test "Ctrl-C during a fleet's push: exit 130, no host activated or left locked, nothing of ours left" {
	retag lan-int
	point t1 "$URL" "$CACHE_PK"
	point t2 "$URL" "$CACHE_PK"
	before1=$(state_of t1)
	before2=$(state_of t2)
	# the push's writing of the cache (its script on the cache host) hangs here
	mkdir bin
	printf '#!/bin/sh\ncase "$*" in *ST_NOKEY=*) exec sleep 30 ;; esac\nexec /usr/bin/ssh "$@"\n' >bin/ssh
	chmod +x bin/ssh
	PATH=$PWD/bin:$PATH nrr_bg switch --flake "$F" --on t1,t2 "${LAN[@]}" --cache-url "$URL"
	wait_for_local_proc 'sleep 30' || fail "the push never got there: $(cat "$BATS_TEST_TMPDIR/log")"
	kill -INT "$FLEET_BG_PID"
	wait_nrr
	assert_failure 130
	error_line_matches "$BATS_TEST_TMPDIR/log" "^error: interrupted while pushing to the cache 'file:///nix/var/www'$"
	no_ssh_left
	! local_runs 'sleep 30' || fail "the push's command is still running"
	! local_runs "$NRR" || fail "a process of ours is left: $(local_ps)"
	[ "$(state_of t1)" = "$before1" ]
	[ "$(state_of t2)" = "$before2" ]
	poll_until 10 unlocked t1 || fail "t1's deploy lock is still held"
	poll_until 10 unlocked t2 || fail "t2's deploy lock is still held"
}

@test "a stream the cache host cannot import is named as the copy to it; no host goes on" {
	retag lan-imp
	point t1 "$URL" "$CACHE_PK"
	before=$(state_of t1)
	real=$(fleet_exec cache sh -c 'command -v nix-store')
	fleet_exec cache sh -c "mkdir -p /run/nrr-forge-bin && cat >/run/nrr-forge-bin/nix-store &&
		chmod +x /run/nrr-forge-bin/nix-store" <<-EOF
		#!/bin/sh
		if [ "\$1" = --import ]; then cat >/dev/null; echo "error: no room for the stream" >&2; exit 1; fi
		exec $real "\$@"
		EOF
	run --separate-stderr nrr switch --flake "$F" --on t1 "${LAN[@]}" --cache-url "$URL"
	fleet_exec cache rm -rf /run/nrr-forge-bin
	assert_failure 6
	[[ $stderr == *"error: copying to 'cache' failed: no room for the stream"* ]] || fail "$stderr"
	[ "$(state_of t1)" = "$before" ]
	poll_until 10 unlocked t1 || fail "t1's deploy lock is still held"
	! fleet_exec cache sh -c "grep -l nrr-sw-lan-imp /nix/var/www/*.narinfo" || fail "the cache was written"
}

@test "a cache host whose push says no key is named with what it said" {
	retag lan-nokey
	point t1 "$URL" "$CACHE_PK"
	before=$(state_of t1)
	# it imports and writes, but its "key" line is lost: what its nix copy said names it
	printf '/^key /d\n' | fleet_exec cache sh -c 'cat >/run/nrr-forge'
	run --separate-stderr nrr switch --flake "$F" --on t1 "${LAN[@]}" --cache-url "$URL"
	fleet_exec cache rm -f /run/nrr-forge
	assert_failure 6
	[[ $stderr == *"error: writing the cache 'file:///nix/var/www' on 'cache' failed: copying path '"*"' to 'file:///nix/var/www"* ]] ||
		fail "$stderr"
	[ "$(state_of t1)" = "$before" ]
}

@test "what the cache host has already is not sent again" {
	retag lan1
	fleet_reset_counts cache
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 "${LAN[@]}" --cache-url "$URL"
	assert_success
	[[ $stderr == *"on 'cache': 0 paths (0 B) pushed once"* ]]
	[ "$(imports cache)" = 0 ]
}

@test "a --push-to URL that names its compression is written with it" {
	retag lan5
	point t1 "$URL" "$CACHE_PK"
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 \
		--push-to 'file:///nix/var/www?compression=xz' --cache-host cache --cache-url "$URL"
	assert_success
	[ "$(profile_of t1)" = "$(toplevel t1)" ]
	top=$(basename "$(toplevel t1)")
	run fleet_exec cache cat "/nix/var/www/${top%%-*}.narinfo"
	assert_output --partial "Compression: xz"
}

@test "a target that does not trust the key is named before anything is activated" {
	retag lan2
	point t1 "$URL" "$CACHE_PK"
	point t2 "$URL" "$(cat "$C/pk")"
	before=$(profile_of t2)
	run --separate-stderr nrr switch --flake "$F#t2" --target-host t2 "${LAN[@]}" --cache-url "$URL"
	assert_failure 7
	[[ $stderr == *"error: 't2' would not fetch from the cache: it does not trust the key '$CACHE_PK'"* ]]
	[[ $stderr == *"trusted-public-keys"*"nothing was changed"* ]]
	[ "$(profile_of t2)" = "$before" ]
	[ "$(imports t2)" = 0 ]
	# in a fleet every host is checked before any is activated: t2 is
	# named, and t1, ready, is not activated either
	t1_before=$(profile_of t1)
	run --separate-stderr nrr switch --flake "$F" --on t1,t2 "${LAN[@]}" --cache-url "$URL"
	assert_failure 12
	[[ $stderr == *"== t2 (t2): 't2' would not fetch from the cache: it does not trust the key"* ]]
	[[ $stderr == *"not activating the hosts that are ready (1): another failed (-k/--keep-going activates them)"* ]]
	[ "$(profile_of t1)" = "$t1_before" ]
	[ "$(profile_of t2)" = "$before" ]
	# -k: the others are activated
	run --separate-stderr nrr switch --flake "$F" --on t1,t2 "${LAN[@]}" --cache-url "$URL" -k
	assert_failure 12
	[ "$(profile_of t1)" = "$(toplevel t1)" ]
	[ "$(profile_of t2)" = "$before" ]
}

@test "a target whose substituters lack the cache is named" {
	retag lan3
	point t2 "http://127.0.0.1:9" "$CACHE_PK"
	run --separate-stderr nrr switch --flake "$F#t2" --target-host t2 "${LAN[@]}" --cache-url "$URL/"
	assert_failure 7
	[[ $stderr == *"error: 't2' would not fetch from the cache: '$URL' is not among its substituters"* ]]
}

@test "a target whose nix.conf leaves nix-command off still says its settings and fetches from the cache" {
	retag lan4
	point t1 "$URL" "$CACHE_PK"
	fleet_exec t1 sed -i 's/^experimental-features = .*/experimental-features = flakes/' /etc/nix/nix.conf
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 "${LAN[@]}" --cache-url "$URL"
	fleet_exec t1 sed -i 's/^experimental-features = .*/experimental-features = nix-command flakes/' /etc/nix/nix.conf
	assert_success
	[[ $stderr == *"plan for 't1': 5 paths: 0 present, 5 from its caches ("*"), 0 to push (0 B)"* ]]
	[ "$(profile_of t1)" = "$(toplevel t1)" ]
	[ "$(imports t1)" = 0 ]
}

@test "--push-to from here: nix copy signs with --sign-key; the targets fetch over HTTP" {
	retag here1
	url=$(cache_serve_nginx "$C/www")
	point t1 "$url" "$(cat "$C/pk")"
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 \
		--push-to "file://$C/www" --sign-key "$C/sk" --cache-url "$url"
	assert_success
	[[ $stderr == *"push for the cache 'file://$C/www': 5 paths ("*") pushed once"* ]]
	[[ $stderr == *"plan for 't1': 5 paths: 0 present, 5 from its caches ("*"), 0 to push (0 B)"* ]]
	[ "$(profile_of t1)" = "$(toplevel t1)" ]
	grep -q "Sig: here-1:" "$C"/www/*.narinfo
	grep -q "Compression: zstd" "$C"/www/*.narinfo
}

@test "dry-build --target-host: each route's plan for the target; nothing moves" {
	retag plan1
	point t1 "$URL" "$CACHE_PK"
	fleet_local "$NRR" build --flake "$F#t1" >/dev/null 2>&1
	fleet_reset_counts cache t1
	run --separate-stderr nrr dry-build --flake "$F#t1" --target-host t1
	assert_success
	[[ $stderr =~ "plan for 't1': 5 paths: 0 present, 5 to push ("[0-9.]+" "[KM]?i?B")" ]]
	run --separate-stderr nrr dry-build --flake "$F#t1" --target-host t1 "${LAN[@]}" --cache-url "$URL" --json
	assert_success
	[[ $stderr =~ "plan for the cache 'file:///nix/var/www' on 'cache': 5 paths ("[0-9.]+" "[KM]?i?B") to push once" ]]
	[[ $stderr =~ "plan for 't1': 5 paths: 0 present, 5 from its caches ("[0-9.]+" "[KM]?i?B"), 0 to push (0 B)" ]]
	echo "$output" >report.json
	python3 -c 'import json; p = json.load(open("report.json"))["plan"]; assert p["paths"] == 5 and p["push"]["paths"] == 0, p'
	# nothing was sent anywhere, nothing written to the cache
	[ "$(imports cache)" = 0 ]
	[ "$(imports t1)" = 0 ]
	top=$(toplevel t1)
	hash=${top#/nix/store/}
	run fleet_exec cache test -e "/nix/var/www/${hash%%-*}.narinfo"
	assert_failure 1
	run fleet_exec t1 nix-store --check-validity "$top"
	assert_failure 1
}

@test "dry-build --target-host of a system not built yet says its plan is not known" {
	retag plan2
	run --separate-stderr nrr dry-build --flake "$F#t1" --target-host t1
	assert_success
	[[ $stderr == *"plan for 't1': not known until the system is built here"* ]]
}

@test "dry-activate with --on: every host's plan line, together" {
	retag plan3
	point t1 "$URL" "$CACHE_PK"
	point t2 "$URL" "$CACHE_PK"
	run --separate-stderr nrr dry-activate --flake "$F" --on t1,t2 "${LAN[@]}" --cache-url "$URL"
	assert_success
	[[ $stderr == *"plan for 't1': 5 paths: 0 present, 5 from its caches ("*"), 0 to push (0 B)"* ]]
	[[ $stderr == *"plan for 't2': 5 paths: 0 present, 5 from its caches ("*"), 0 to push (0 B)"* ]]
}

@test "the cache route's options: what goes with what" {
	run nrr switch --flake "$F#t1" --target-host t1 --push-to file:///x --cache-host cache
	assert_failure 2
	assert_output --partial "--cache-host needs --cache-url"
	run nrr switch --flake "$F#t1" --target-host t1 --sign-key /k
	assert_failure 2
	assert_output --partial "--sign-key and --cache-host go with --push-to"
	run nrr build --flake "$F#t1" --push-to file:///x
	assert_failure 2
	run nrr switch --flake "$F#t1" --push-to file:///x
	assert_failure 2
	assert_output --partial "need --target-host or --on"
	run nrr switch --flake "$F#t1" --target-host t1 --push-to /x
	assert_failure 2
	assert_output --partial "expected a store URL"
	run nrr switch --flake "$F#t1" --target-host t1 --build-host t2 --push-to file:///x
	assert_failure 2
	assert_output --partial "--push-to with --build-host needs --cache-url"
}

@test "--build-host: the build host writes the cache from its own store; the target fetches it from nginx; one handshake each" {
	retag bh1
	point t1 "$URL" "$CACHE_PK"
	fleet_reset_counts cache t1
	nars=$(nar_gets)
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --build-host cache \
		--push-to file:///nix/var/www --cache-url "$URL"
	assert_success
	want=$(toplevel t1)
	assert_output "$want"
	[[ $stderr == *"written: the cache 'file:///nix/var/www' on 'cache' from its own store"* ]]
	# the system went from the build host to nginx to t1, never through here
	[ "$(imports t1)" = 0 ]
	[ "$(($(nar_gets) - nars))" -ge 1 ]
	[ "$(profile_of t1)" = "$want" ]
	[ "$(fleet_handshakes cache)" = 1 ]
	[ "$(fleet_handshakes t1)" = 1 ]
	run fleet_exec cache sh -c "cat /nix/var/www/${want:11:32}.narinfo"
	assert_output --partial "Sig: lan-cache-1:"
}

@test "--build-host with --cache-host: the system goes from the build host to the cache host over our masters, once" {
	retag bh2
	point t1 "$URL" "$CACHE_PK"
	fleet_reset_counts cache t1 t2
	run --separate-stderr nrr switch --flake "$F#t1" --target-host t1 --build-host t2 "${LAN[@]}" \
		--cache-url "$URL"
	assert_success
	want=$(toplevel t1)
	[[ $stderr =~ "push for the cache 'file:///nix/var/www' on 'cache': "[1-9][0-9]*" paths" ]]
	[ "$(imports cache)" = 1 ]
	[ "$(imports t1)" = 0 ]
	[ "$(profile_of t1)" = "$want" ]
	for h in cache t1 t2; do
		[ "$(fleet_handshakes "$h")" = 1 ] || fail "$h: $(fleet_handshakes "$h") handshakes"
	done
}
