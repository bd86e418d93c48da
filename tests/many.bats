#!/usr/bin/env bats
# Fleets of hundreds: any number of hosts in flight, with any --parallel. The test fleet's one
# host `many` answers as 200 hosts h001..h200 (fleet_aliases: ssh aliases, each with its own
# /run, so its own deploy lock), and the flake has 200 configurations of one system.
#
# The most expensive file of the suite: every host's deploy is real (an ssh handshake, a
# remote activation), 240 of them. The remote side's processes (sshd, bash, nix-store) take most
# of its time.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start many
	fleet_aliases many h 200
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" many
	# h001..h200: one system (built once), each configuration deployed to the alias of its name
	[ "$(tail -n 1 "$F/systems.nix")" = "}" ]
	sed -i '$d' "$F/systems.nix"
	# shellcheck disable=SC2016 # nix, not shell
	printf '%s\n' '} // (let m = mkConfig "many" { }; in builtins.listToAttrs (map (i: { name = "h${i}"; value = m; })' \
		"[ $(printf '"%03d" ' $(seq 1 200)) ]))" >>"$F/systems.nix"
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR" || return
}

# The number of activations recorded on alias $1 of `many`.
activations_of() {
	fleet_exec many sh -c "cat /run/aliases/$1/nrr-activations 2>/dev/null | wc -l"
}

@test "200 hosts, --parallel 0 --ask: all in flight, waiting at the one question, then all activate" {
	# the question comes once no host can start: all 200 are in flight by then
	TYPED=y run nrr_tty test --flake "$F" --on 'h*' --parallel 0 --ask
	assert_success
	[ "$(grep -c 'Activate on' <<<"$output")" = 1 ]
	assert_output --partial "Activate on 200 hosts (h001, h002, h003, h004, h005, h006, h007, h008, h009, h010 and 190 more)? [y/N]"
	# the summary: every host done
	[ "$(grep -cE '^h[0-9]{3} +test +done ' <<<"$output")" = 200 ]
	for i in 001 064 065 128 200; do
		[ "$(activations_of "h$i")" = 1 ]
	done
}

@test "70 hosts, --parallel 0 --ask --yes: at most 64 in their handshake at once, all deployed" {
	run --separate-stderr fleet_local "$NRR" test --flake "$F" --on 'h0[0-6]?,h070' --parallel 0 \
		--ask --yes --json
	assert_success
	echo "$output" >report.json
	# the connect phases of the --json report, as events: never more than 64 at once
	python3 - <<-'PY'
		import json
		hosts = json.load(open("report.json"))
		assert len(hosts) == 70, len(hosts)
		assert all(h["result"] == "ok" for h in hosts), [h["name"] for h in hosts if h["result"] != "ok"]
		events = []
		for h in hosts:
		    for p in h["phases"]:
		        if p["phase"] == "connect":
		            events += [(p["start"], 1), (p["end"], -1)]
		at_once = most = 0
		for _, d in sorted(events):  # an end before a start at the same moment
		    at_once += d
		    most = max(most, at_once)
		assert 1 < most <= 64, most
	PY
	[ "$(activations_of h070)" = 2 ]  # and once by the test before
}

@test "fewer open files than the run needs (--ask --yes): fewer hosts in flight, a warning, all deployed" {
	run fleet_local prlimit --nofile=40:40 "$NRR" test --flake "$F" --on 'h0[0-3]?,h040' \
		--parallel 0 --ask --yes
	assert_success
	assert_output --regexp "warning: 40 hosts in flight need [0-9]+ open files, and this system allows 40 \(ulimit -n\): at most [0-9]+ were in flight at once"
	cap=$(sed -n 's/.*at most \([0-9]*\) were in flight.*/\1/p' <<<"$output")
	((cap >= 1 && cap < 40))
	# never more in flight than that: a limit, whatever the timing
	max=$(awk '/: started/ { n++; if (n > max) max = n } / h[0-9]+: (done|failed)/ { n-- }
		END { print max }' <<<"$output")
	((max <= cap))
	[ "$(grep -c ': done' <<<"$output")" = 40 ]
	# (h001..h070 were also deployed by the test before)
	[ "$(activations_of h040)" = 3 ]
	[ "$(activations_of h041)" = 2 ]
}

@test "the cache route: every host starts while the push runs, more hosts than handshake at once, checks, then waits for it" {
	# the cache host is `many` (as h200: its store, its key, its nginx); every alias lists it
	fleet_exec many sh -c 'cp /etc/nix/nix.conf /etc/nix/nix.conf.before; mkdir -p /nix/var/www'
	fleet_exec many nix-store --generate-binary-cache-key many-cache-1 /etc/nix/cache-sk /etc/nix/cache-pk
	url=$(fleet_nginx many /nix/var/www)
	pk=$(fleet_exec many cat /etc/nix/cache-pk)
	fleet_exec many sh -c "printf 'substituters = %s\ntrusted-public-keys = %s\n' '$url' '$pk' >>/etc/nix/nix.conf"
	# the push's writing of the cache (its script on the cache host) waits 5 s here: longer than
	# the first hosts take to connect
	mkdir bin
	printf '#!/bin/sh\ncase "$*" in *ST_NOKEY=*) sleep 5 ;; esac\nexec /usr/bin/ssh "$@"\n' >bin/ssh
	chmod +x bin/ssh
	# more hosts than are in their handshake at once (8 a core, at most 64)
	cores=$(getconf _NPROCESSORS_ONLN)
	n=$((8 * cores > 64 ? 72 : 8 * cores + 8))
	hosts=$(seq -f 'h%03g' 1 "$n" | paste -sd, -)
	PATH=$PWD/bin:$PATH run --separate-stderr fleet_local "$NRR" test --flake "$F" --on "$hosts" \
		--parallel 0 --push-to file:///nix/var/www --cache-host h200 --sign-key /etc/nix/cache-sk \
		--cache-url "$url" --json
	fleet_exec many sh -c 'mv /etc/nix/nix.conf.before /etc/nix/nix.conf'
	[ "$status" = 0 ] || fail "status $status: $stderr"
	echo "$output" >report.json
	# every host started connecting during the push, not only the first handshakes' worth
	# (the rest as those got through), and waited for the push ("ready") after its check;
	# then all went on. (Whether the last ones are through their handshake before the push
	# ends is this machine's CPU: the first ones' checks run meanwhile.)
	N=$n python3 - <<-'PY'
		import json, os
		hosts = json.load(open("report.json"))
		assert len(hosts) == int(os.environ["N"]), len(hosts)
		for h in hosts:
		    assert h["result"] == "ok", h
		    p = {x["phase"]: (x["start"], x["end"]) for x in h["phases"]}
		    assert p["push"][1] - p["push"][0] >= 5, p
		    assert "ready" in p, (h["name"], p)
		    assert p["connect"][0] < p["push"][1] and p["ready"][1] >= p["push"][1] - 0.05, (h["name"], p)
	PY
}
