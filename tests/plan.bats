#!/usr/bin/env bats
# --use-substitutes=auto: the deployer asks the target's own binary caches
# (with the target's keys) what they serve; the target fetches that, the
# rest is pushed.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	cache_servers_init
	fleet_start t1 t2
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" plan
	export C=$BATS_FILE_TMPDIR/cache
	mkdir -p "$C/www"
	fleet_local nix-store --generate-binary-cache-key test-1 "$C/sk" "$C/pk"
	fleet_local nix-store --generate-binary-cache-key other-1 "$C/other-sk" "$C/other-pk"
	export URL
	URL=$(cache_serve_static "$C/www")
}

teardown_file() {
	load lib/common
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	cache_servers_stop
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

# Puts the shared package of configuration $1 into the cache, signed with
# key $2, and points host $3 at the cache with key file $4.
cache_sw() {
	sw=$(fleet_local nix-store -qR "$(toplevel "$1")" | grep nrr-sw)
	fleet_local nix copy --to "file://$C/www?secret-key=$C/$2" "$sw"
	fleet_exec "$3" sh -c "printf 'substituters = %s\ntrusted-public-keys = %s\n' '$URL' '$(cat "$C/$4")' >>/etc/nix/nix.conf"
	echo "$sw"
}

@test "what the target's cache serves is fetched by the target, the rest pushed" {
	retag fetch1
	sw=$(cache_sw t1 sk t1 pk)
	run nrr switch --flake "$F#t1" --target-host t1 --use-substitutes=auto
	assert_success
	assert_output --regexp "plan for 't1': 5 paths: 0 present, 1 from its caches \([0-9.]+ [KM]?i?B\), 4 to push \([0-9.]+ [KM]?i?B\)"
	fleet_exec t1 nix-store --check-validity "$sw"
	# the target fetched it from the cache
	grep -q "GET /nar/" "$CACHE_SERVER_DIR"/static.*
}

@test "a cache whose signatures the target would refuse is not used" {
	retag fetch2
	sw=$(cache_sw t2 other-sk t2 pk)
	run nrr switch --flake "$F#t2" --target-host t2 --use-substitutes=auto
	assert_success
	assert_output --partial "0 from its caches"
	fleet_exec t2 nix-store --check-validity "$sw"
}

@test "nothing served: the target is not asked to try its caches" {
	retag fetch3
	# t1 uses the cache (as after the tests above), which serves nothing of this system
	[ -e "$C/www/nix-cache-info" ] || printf 'StoreDir: /nix/store\nWantMassQuery: 1\n' >"$C/www/nix-cache-info"
	fleet_exec t1 sh -c "grep -q '^substituters = $URL\$' /etc/nix/nix.conf ||
		printf 'substituters = %s\ntrusted-public-keys = %s\n' '$URL' '$(cat "$C/pk")' >>/etc/nix/nix.conf"
	before=$(cat "$CACHE_SERVER_DIR"/static.* | grep -c "GET /nar/" || true)
	logged=$(cat "$CACHE_SERVER_DIR"/static.* | wc -l)
	run nrr switch --flake "$F#t1" --target-host t1 --use-substitutes=auto
	assert_success
	assert_output --partial "0 from its caches"
	# the narinfos were asked for, by us; no NAR was fetched
	[ "$(cat "$CACHE_SERVER_DIR"/static.* | grep -c "GET /nar/" || true)" = "$before" ]
	# and the target asked for none of them itself: a target told to try its caches asks
	# each path it lacks again (its nix has never seen these paths)
	run sh -c 'cat "$1"/static.* | tail -n "+$(($2 + 1))" | grep -o "GET /[a-z0-9]*\.narinfo" |
		sort | uniq -d' _ "$CACHE_SERVER_DIR" "$logged"
	assert_success
	assert_output ''
}

@test "dry-activate shows the plan without acting on the caches; --json carries it" {
	retag dry-plan
	cache_sw t1 sk t1 pk >/dev/null
	nars=$(cat "$CACHE_SERVER_DIR"/static.* | grep -c "GET /nar/" || true)
	run --separate-stderr nrr dry-activate --flake "$F#t1" --target-host t1 --json
	assert_success
	[[ $stderr =~ "plan for 't1': 5 paths: 0 present, 5 to push ("[0-9.]+" "[KM]?i?B"); its caches serve 1 of them" ]]
	[[ $stderr == *"--use-substitutes=auto would fetch those there"* ]]
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		p = json.load(open("report.json"))["plan"]
		assert p["paths"] == 5 and p["present"] == 0, p
		assert p["fromCaches"] == {"paths": 1, "bytes": p["fromCaches"]["bytes"], "used": False}, p
		assert p["fromCaches"]["bytes"] > 0 and p["push"]["paths"] == 5 and p["push"]["bytes"] > 0, p
	PY
	# no NAR fetched from the cache, by anyone (what the target has was pushed)
	[ "$(cat "$CACHE_SERVER_DIR"/static.* | grep -c "GET /nar/" || true)" = "$nars" ]
	# a second time, everything is there
	run --separate-stderr nrr dry-activate --flake "$F#t1" --target-host t1
	assert_success
	[[ $stderr == *"plan for 't1': all 5 paths present, nothing to copy"* ]]
}

@test "dry-build says what it would build, and --json carries it" {
	retag dry-build-plan
	run --separate-stderr nrr dry-build --flake "$F#t1" --json
	assert_success
	[[ $stderr == *"plan: 5 derivations to build here, 0 paths to fetch"* ]]
	echo "$output" >report.json
	python3 -c 'import json; b = json.load(open("report.json"))["plan"]["build"]; assert b["derivations"] == 5 and b["fetch"] == 0, b'
}

@test "dry-build --on: what the fleet's build would do, then each host's plan; nothing moves" {
	retag dry-build-fleet
	before=$(fleet_exec t1 readlink /nix/var/nix/profiles/system || true)
	fleet_reset_counts t1
	run --separate-stderr nrr dry-build --flake "$F" --on t1,t2
	assert_success
	[[ $stderr == *"will be built"* ]]
	[[ $stderr == *"plan for 't1': not known until the system is built here"* ]]
	[[ $stderr == *"plan for 't2': not known until the system is built here"* ]]
	# built here: each host's plan, from its own store (t1 holds the shared package already)
	fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel" >/dev/null
	fleet_build "$F#nixosConfigurations.t2.config.system.build.toplevel" >/dev/null
	fleet_seed t1 "$(fleet_local nix-store -qR "$(toplevel t1)" | grep nrr-sw)"
	run --separate-stderr nrr dry-build --flake "$F" --on t1,t2
	assert_success
	[[ $stderr != *"will be built"* ]]
	[[ $stderr =~ "plan for 't1': 5 paths: 1 present, 4 to push (" ]]
	[[ $stderr =~ "plan for 't2': 5 paths: 0 present, 5 to push (" ]]
	[ "$(fleet_exec t1 readlink /nix/var/nix/profiles/system || true)" = "$before" ]
	run fleet_exec t1 test -e "$(toplevel t1)"
	assert_failure
}

@test "a fleet: the package both hosts share comes from their cache, not pushed twice; the summary says so" {
	retag fleet-cache
	cache_sw t1 sk t1 pk >/dev/null
	cache_sw t2 sk t2 pk >/dev/null
	run --separate-stderr nrr switch --flake "$F" --on t1,t2 --use-substitutes=auto --json
	assert_success
	[[ $stderr == *"from caches"* ]]
	echo "$output" >report.json
	python3 - <<-'PY'
		import json
		r = {h["name"]: h for h in json.load(open("report.json"))}
		for h in r.values():
		    assert h["result"] == "ok" and h["bytesFromCaches"] > 0 and h["bytesCopied"] > 0, h
	PY
}

@test "--use-substitutes takes no other value" {
	run nrr switch --flake "$F#t1" --target-host t1 --use-substitutes=always
	assert_failure 2
}
