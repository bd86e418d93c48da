#!/bin/sh
# Judges one pass of the suite from what bats left behind, so that a green line means every
# test held ran and held: tests/run-all.sh uses it for each pass, tests/suite.bats tests it.
#
#   sh tests/lib/tally.sh LABEL DIR FILE...
#
# For each bats FILE, DIR holds NAME.tap (bats --tap's output, stderr included) and NAME.rc
# (bats' exit status), NAME being FILE's base name; either may be missing (the sandbox or
# bats never started). The number of tests FILE holds comes from `bats --count FILE`.
#
# Prints one "error: LABEL: FILE: ..." line for each thing that does not hold, one
# "skipped: LABEL: N x REASON" line for each distinct skip reason, and ends with the counts:
#   LABEL: P passed, F failed, S skipped
# A test held but not run counts as failed; so does a failing bats run with no failing test
# line (a failing setup_file, a crashed bats). Exits 1 when any test failed or did not run,
# when bats' status disagrees with its lines, or when the pass ran no test at all; else 0.
set -u
label=$1 dir=$2
shift 2
passed=0 failed=0 skipped=0 bad=0 reasons=
err() {
	echo "error: $label: $*"
	bad=1
}
for f in "$@"; do
	name=$(basename "$f" .bats)
	if ! held=$(bats --count "$f" 2>/dev/null) || [ -z "$held" ]; then
		err "$f: bats cannot read it (bats --count failed)"
		continue
	fi
	tap=$dir/$name.tap
	if [ ! -f "$tap" ] || [ ! -f "$dir/$name.rc" ]; then
		err "$f: never ran ($held tests held): the sandbox or bats did not start"
		failed=$((failed + held))
		continue
	fi
	rc=$(cat "$dir/$name.rc")
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$tap" | head -n 1)
	p=$(grep -cE '^ok [0-9]+ ' "$tap" | tr -d ' ')
	s=$(grep -cE '^ok [0-9]+ .* # [Ss][Kk][Ii][Pp]( |$)' "$tap" | tr -d ' ')
	n=$(grep -cE '^not ok [0-9]+ ' "$tap" | tr -d ' ')
	p=$((p - s))
	ran=$((p + s + n))
	[ -n "$plan" ] || err "$f: bats printed no plan (1..N): it did not start"
	[ -z "$plan" ] || [ "$plan" = "$held" ] || err "$f: bats planned $plan tests, the file holds $held"
	if [ "$ran" -lt "$held" ]; then
		err "$f: $ran of $held tests ran"
		n=$((n + held - ran))
	elif [ "$ran" -gt "$held" ]; then
		err "$f: $ran results for $held tests"
	fi
	if [ "$rc" != 0 ] && [ "$n" = 0 ]; then
		err "$f: bats exited $rc with no failing test"
		n=1
	elif [ "$rc" = 0 ] && [ "$n" != 0 ]; then
		err "$f: bats exited 0 with $n failing tests"
	fi
	# a failing setup_file shows as "not ok 1 setup_file failed": the fleet could not start
	grep -E '^not ok [0-9]+ (setup_file|teardown_file) failed' "$tap" | while read -r line; do
		echo "error: $label: $f: ${line#not ok * }: its tests did not run"
	done
	reasons="$reasons$(sed -n 's/^ok [0-9][0-9]* .* # [Ss][Kk][Ii][Pp] *//p' "$tap" |
		sed 's/^$/(no reason given)/; s/^/\n/')"
	passed=$((passed + p)) failed=$((failed + n)) skipped=$((skipped + s))
done
if [ -n "$reasons" ]; then
	printf '%s\n' "$reasons" | sed '/^$/d' | sort | uniq -c |
		while read -r count reason; do echo "skipped: $label: $count x $reason"; done
fi
[ $((passed + failed + skipped)) -gt 0 ] || err "no test ran"
echo "$label: $passed passed, $failed failed, $skipped skipped"
[ "$bad" = 0 ] && [ "$failed" = 0 ]
