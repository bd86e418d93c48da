#!/usr/bin/env bats
# The benchmark harness (bench/run) in its smoke form: one run of each implementation, no added
# delay, the no-op scenario. It must run to the end, print its table and write JSON that parses.
# Timings are never asserted: they are facts about a machine, not pass or fail.

bats_require_minimum_version 1.5.0

setup() {
	load lib/common
	# The harness does not change with the build under test: once is enough.
	[ -z "${NRR_SANITIZED-}" ] || skip "bench harness: checked with the normal build only"
	cd "$BATS_TEST_TMPDIR" || return
}

@test "bench/run --quick prints a table and writes JSON that parses" {
	run --separate-stderr timeout 120 "$BATS_TEST_DIRNAME/../bench/run" --quick --tool "$NRR" \
		--json "$BATS_TEST_TMPDIR/quick.json"
	assert_success
	assert_line --partial "RTT 0 ms"
	assert_line --regexp '^noop +nrr +[0-9]+\.[0-9]+ '
	# the table is saved next to the JSON
	[ -s quick.txt ]
	# and the fleet it ran on is gone
	# shellcheck disable=SC2154 # set by run --separate-stderr
	fleet=$(printf '%s\n' "$stderr" | sed -n 's/^bench: fleet in //p')
	[ -n "$fleet" ] && [ ! -e "$fleet" ]
	run python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["rtt_ms"] == [0] and d["scenarios"] == ["noop"], d
tool = [r for r in d["results"] if r["implementation"] == "nixos-rebuild-remote"]
assert len(tool) == 1 and tool[0]["runs"] == 1 and tool[0]["failed"] == 0, tool
for r in d["results"]:
    assert r["wall_s"]["median"] > 0, r
    assert r["handshakes"]["tgt"] >= 1 and r["remote_commands"]["tgt"] >= 1, r
    assert r["bytes"]["tgt"]["sent"] > 0 and r["bytes"]["tgt"]["received"] > 0, r
print("ok", len(d["results"]))
' quick.json
	assert_success
	assert_output --regexp '^ok [1-3]$'
}

@test "bench/run's hive on two nodes: the tool one handshake and one command a node, colmena's sequence one per step and per key" {
	# hive-noop at RTT 0, one run: apply --no-keys, colmena's sequence without keys (copy,
	# profile, activation: 3 ssh) and with the hive's three keys (6 ssh). Counts, not timings.
	run --separate-stderr timeout 240 "$BATS_TEST_DIRNAME/../bench/run" --runs 1 --rtt 0 \
		--scenarios hive-noop --hive-nodes 2 --tool "$NRR" --json "$BATS_TEST_TMPDIR/hive.json"
	assert_success
	assert_line --regexp '^hive-noop +nrr +[0-9]+\.[0-9]+ '
	assert_line --regexp '^ +col-k +[0-9]+\.[0-9]+ '
	run python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert all(r["failed"] == 0 for r in d["results"]), d["results"]
want = {"nixos-rebuild-remote": (1, 1), "colmena sequence": (3, 3), "colmena sequence with keys": (6, 6)}
impl = {"nrr": "nixos-rebuild-remote", "nrr-k": "nixos-rebuild-remote with keys",
        "colmena": "colmena sequence", "colmena-k": "colmena sequence with keys"}
seen = set()
for n in d["hive_nodes"]:
    i = impl[n["implementation"]]
    seen.add((i, n["node"]))
    if i in want:
        assert (n["handshakes_median"], n["remote_commands_median"]) == want[i], n
    else:  # with keys, once apply has them: one handshake, at most two commands
        assert n["handshakes_median"] == 1 and n["remote_commands_median"] <= 2, n
    assert n["seconds_median"] > 0, n
assert {(i, h) for i in want for h in ("fl01", "fl02")} <= seen, seen
print("ok", len(d["hive_nodes"]))
' "$BATS_TEST_TMPDIR/hive.json"
	assert_success
	assert_output --regexp '^ok (6|8)$'
}

@test "the delay relay refuses addresses outside 127.0.0.0/8" {
	"$BATS_TEST_DIRNAME/../bench/run" --build
	run "$BATS_TEST_DIRNAME/../bench/delay-relay" 0 192.0.2.1 22 "$BATS_TEST_TMPDIR/counts"
	assert_failure 2
	assert_output --partial "only addresses in 127.0.0.0/8"
	run "$BATS_TEST_DIRNAME/../bench/delay-relay" 0 example.org 22 "$BATS_TEST_TMPDIR/counts"
	assert_failure 2
	[ ! -e "$BATS_TEST_TMPDIR/counts" ]
}

@test "the delay relay holds each chunk DELAY ms each way and counts the bytes" {
	"$BATS_TEST_DIRNAME/../bench/run" --build
	relay=$BATS_TEST_DIRNAME/../bench/delay-relay
	# An echo server on a free loopback port, for one connection.
	python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
while True:
    b = c.recv(65536)
    if not b:
        break
    c.sendall(b)
c.close()
' >port 3>&- &
	server=$!
	for _ in $(seq 50); do [ -s port ] && break; sleep 0.1; done
	# "hello" goes out at once and must come back after one round trip, 2 x 100 ms, not sooner.
	start=$EPOCHREALTIME
	{ printf hello; sleep 0.5; } | "$relay" 100 127.0.0.1 "$(cat port)" counts |
		{ IFS= read -r -N 5 echoed; echo "$echoed $EPOCHREALTIME"; cat >/dev/null; } >got
	wait "$server"
	read -r echoed at <got
	[ "$echoed" = hello ]
	# (awk, not bc: bc is not part of a minimal Debian)
	awk -v at="$at" -v start="$start" 'BEGIN { exit !(at - start >= 0.2) }' ||
		fail "the first byte came back after $(awk -v at="$at" -v start="$start" 'BEGIN { print at - start }') s, not 0.2 s or more"
	# one connection: "open", then "sent received"
	[ "$(cat counts)" = "$(printf 'open\n5 5')" ]
}

@test "bench/procwatch ends by itself once the run's job is gone, and writes its line" {
	cc -std=c11 -O2 -Wall -Wextra -Werror -o pw "$BATS_TEST_DIRNAME/../bench/procwatch.c"
	sh -c 'sleep 0.3' &
	job=$!
	./pw out 20 /bin/sleep "$job" &
	pw=$!
	wait "$job"
	# no SIGTERM: it sees the job gone, writes its line and ends
	timeout 5 tail --pid="$pw" -f /dev/null || { kill "$pw"; false; }
	run cat out
	assert_output --regexp '^procs=[0-9]+ peak_procs=[0-9]+ cpu_s=[0-9]+\.[0-9]+ .* looks=[0-9]+ mem_looks=[0-9]+$'
}

@test "bench/fleet in its smallest form: a table with both routes, the runs, and two SVG charts" {
	# Two hosts, one run, no peer: what bench/fleet --quick does at 1, 10 and 50 hosts, in a minute.
	run --separate-stderr timeout 400 "$BATS_TEST_DIRNAME/../bench/fleet" --sizes "1 2" --runs 1 \
		--no-peers --tool "$NRR" --out "$BATS_TEST_TMPDIR/out"
	assert_success
	assert_line --regexp '^relay +1 +1 +[0-9]+\.[0-9]+ '
	assert_line --regexp '^relay +2 +1 +[0-9]+\.[0-9]+ '
	assert_line --regexp '^cache +1 +1 +[0-9]+\.[0-9]+ '
	assert_line --regexp '^cache +2 +1 +[0-9]+\.[0-9]+ '
	refute_output --partial FAILED
	refute_output --partial 'cache route'
	# bytes, not time: the cache route's line carried the two hosts' closures counted once
	# (the shared part once), within 10%, and the targets fetched from the cache host's nginx
	awk -F'\t' 'NR == 1 { match($0, /closure_bytes=[0-9]+/); c = substr($0, RSTART + 14, RLENGTH - 14)
			       match($0, /shared_bytes=[0-9]+/); s = substr($0, RSTART + 13, RLENGTH - 13) }
		$1 == "cache" && $2 == 2 { found = 1; if (!($6 <= 1.1 * (s + 2 * (c - s)) && $17 > 0)) bad = 1 }
		END { exit !(found && !bad && c > 0) }' "$BATS_TEST_TMPDIR/out/fleet-runs.tsv" ||
		fail "cache route's bytes: $(cat "$BATS_TEST_TMPDIR/out/fleet-runs.tsv")"
	# the fleet it ran on is gone
	# shellcheck disable=SC2154 # set by run --separate-stderr
	fleet=$(printf '%s\n' "$stderr" | sed -n 's/^bench: fleet in //p')
	[ -n "$fleet" ] && [ ! -e "$fleet" ]
	cd "$BATS_TEST_TMPDIR"
	# every run a row, with its exit status 0
	[ "$(awk -F'\t' '$1 == "relay" && $4 == 0' out/fleet-runs.tsv | wc -l)" = 2 ]
	[ "$(awk -F'\t' '$1 == "cache" && $4 == 0' out/fleet-runs.tsv | wc -l)" = 2 ]
	# the charts are SVG that parses, the timeline one row (a host name) per host
	run python3 -c '
import sys, xml.etree.ElementTree as ET
for f in sys.argv[1:]:
    assert ET.parse(f).getroot().tag.endswith("svg"), f
t = open(sys.argv[2]).read()
assert ">h001</text>" in t and ">h002</text>" in t
print("ok")' out/fleet-time.svg out/fleet-timeline.svg
	assert_success
	assert_output ok
	# any --json report of a fleet draws the same way: here the cache route's, its push and fetches
	run python3 "$BATS_TEST_DIRNAME/../bench/fleet-svg" --timeline out/fleet-report-2-cache.json
	assert_success
	assert_output --partial ">h002</text>"
	assert_output --partial "<title>h001 push: "
	assert_output --partial "<title>h002 fetch: "
	run python3 "$BATS_TEST_DIRNAME/../bench/fleet-svg" --timeline out/fleet-runs.tsv
	assert_failure
	assert_output --partial "is not a --json report"
}

@test "bench/spawnfloor-run in its smallest form: a row a run, its figures numbers, its fleet gone" {
	run --separate-stderr timeout 120 "$BATS_TEST_DIRNAME/../bench/spawnfloor-run" --sizes 2 --runs 2 \
		--tool "$NRR"
	assert_success
	assert_line --index 0 --regexp '^hosts +run +cpu ms +ms/host +start ms$'
	assert_line --index 1 --regexp '^2 +1 +[0-9]+\.[0-9] +[0-9]+\.[0-9]+ +[0-9]+\.[0-9]+$'
	assert_line --index 2 --regexp '^2 +2 +[0-9]+\.[0-9] +[0-9]+\.[0-9]+ +[0-9]+\.[0-9]+$'
	[ "${#lines[@]}" = 3 ]
	# shellcheck disable=SC2154 # set by run --separate-stderr
	fleet=$(printf '%s\n' "$stderr" | sed -n 's/^bench: fleet in //p')
	[ -n "$fleet" ] && [ ! -e "$fleet" ]
}
