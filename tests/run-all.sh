#!/bin/sh
# shellcheck disable=SC2317 # (stop_all and its helpers run from the traps)
# Runs the whole suite in two passes. Every tests/*.bats file runs in the
# sanitizer pass, against the ASan+UBSan build (NRR and TEST_TOOL point the
# tests at it; a sanitizer report is fatal, so it fails its test): the same
# code as the shipped build, with every memory error and undefined behaviour
# caught. The files that are about the shipped build itself, or gain nothing
# from the sanitizers (bench, valgrind, which runs the shipped build under
# valgrind, the suite's own rules, the 200-host many.bats whose minutes go to
# the fake hosts' sshd and nix), run in the normal pass only; that pass also
# runs the unit tests, the demo and packaging against the optimized build
# that `make install` installs (valgrind.bats and many.bats deploy with it). Running every file
# in both passes took over 30 minutes on a 2-core machine for the same
# findings; NRR_CHECK_FULL=1 still does that.
#
# A pass holds only when every test each file holds ran (bats --count),
# bats' plan and exit status agree with its test lines, and nothing
# failed: tests/lib/tally.sh judges each pass. A skip is counted apart and
# its reason shown. Ends with one summary line: "N passed, N failed, N
# skipped"; exits 1 unless both passes held.
#
#   sh tests/run-all.sh [FILE.bats...]    (default: every tests/*.bats)
# NRR_CHECK_JOBS (default 2): bats files run at once (each file's fleet has addresses
# and namespaces of its own).
set -u
cd "$(dirname "$0")/.." || exit 1
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99
jobs=${NRR_CHECK_JOBS:-2}
passed=0 failed=0 skipped=0 status=0
# Everything runs in a mount namespace whose /nix and /etc/nix are empty
# temp dirs: whatever a test evaluates outside the fleet's own namespaces
# (completion asks nix for flake outputs) lands there, not in this
# machine's store. No nixbld group is needed: nothing builds as its users.
sandbox=$(mktemp -d "${TMPDIR:-/tmp}/nrr-check.XXXXXX")
# Every fleet of this run carries this in its tag (tests/lib/fleet.bash), so that the run
# finds what its files left running, however it ends: killed or interrupted, it stops them
# itself (their teardown_file may not have run); at a normal end, a fleet still running is a
# test that broke the suite's rule, and fails the run. Not hex: no other fleet's tag begins so.
FLEET_ID_PREFIX=run$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
export FLEET_ID_PREFIX
running=''
# The pids of PID's descendants.
descendants() {
	for c in $(ps -o pid= --ppid "$1"); do
		echo "$c"
		descendants "$c"
	done
}
# The pids of the processes in this run's fleets' namespaces (as fleet_stop finds its own).
fleet_leftovers() {
	grep -lsF -- " tmpfs fleet-$FLEET_ID_PREFIX" /proc/[0-9]*/mountinfo | cut -d/ -f3
}
# Those of the pids $* that are still alive (a zombie is not).
alive() {
	for p in "$@"; do
		case $(ps -o stat= -p "$p" 2>/dev/null) in '' | Z*) ;; *) echo "$p" ;; esac
	done
}
# TERM to the pass still running and to the fleets; KILL to what is left after 2 s.
# Returns once they are gone (or after 5 s): bats takes a moment to go, and
# whoever ran us may look for it at once.
stop_all() {
	pids=''
	[ -z "$running" ] || pids="$running $(descendants "$running")"
	# shellcheck disable=SC2086 # pids
	[ -z "$pids" ] || kill -s TERM $pids 2>/dev/null
	running=''
	for round in $(seq 1 50); do
		left=$(fleet_leftovers)
		# shellcheck disable=SC2086 # pids
		pids=$(alive $pids)
		[ -n "$left$pids" ] || return 0
		# shellcheck disable=SC2086 # pids
		if [ "$round" = 1 ]; then
			[ -z "$left" ] || kill -s TERM $left 2>/dev/null
		elif [ "$round" -ge 20 ]; then
			kill -s KILL $left $pids 2>/dev/null
		fi
		sleep 0.1
	done
}
on_exit() {
	st=$?
	if [ -n "$running" ]; then
		stop_all
	elif [ -n "$(fleet_leftovers)" ]; then
		echo "error: processes of the tests' fleets were left running (stopped now): $(fleet_leftovers | paste -sd' ' -)" >&2
		stop_all
		st=1
	fi
	chmod -R u+w "$sandbox" 2>/dev/null
	rm -rf "$sandbox"
	exit "$st"
}
trap on_exit EXIT
trap 'echo "error: the suite was interrupted; its fleets are stopped" >&2; exit 130' INT
trap 'echo "error: the suite was stopped (TERM); its fleets are stopped" >&2; exit 143' TERM
mkdir -p "$sandbox/nix" "$sandbox/etc-nix"
printf 'sandbox = false\nsubstituters =\nbuild-users-group =\n' >"$sandbox/etc-nix/nix.conf"
isolated() {
	# shellcheck disable=SC2016 # expanded by the inner sh
	unshare -m --propagation private sh -c \
		'mount --bind "$1/nix" /nix && mount --bind "$1/etc-nix" /etc/nix && shift && exec "$@"' \
		sh "$sandbox" "$@"
}
if ! why=$(isolated true 2>&1); then
	echo "error: cannot start the test sandbox (a mount namespace with /nix and /etc/nix of its own): $why" >&2
	echo "hint: run as root, with the empty directories /nix and /etc/nix (make deps)" >&2
fi
# the longest files first, so that parallel jobs end together
[ $# -gt 0 ] || set -- tests/*.bats
files=$(printf '%s\n' "$@" | awk '
	/cache|deploy|fleet|hostile|completion|faults|pkgdiff|valgrind/ { print 0, $0; next }
	{ print 1, $0 }' | sort -s -k1,1n | cut -d' ' -f2)
pass() {
	label=$1; shift
	dir=$sandbox/results-$(echo "$label" | tr ' ' -)
	t0=$(date +%s)
	# in the background: a signal to this shell is taken at once (wait ends), not after
	# shellcheck disable=SC2086 # one word per file
	isolated "$@" sh tests/lib/bats-each.sh "$dir" "$jobs" $files &
	running=$!
	wait "$running"
	running=''
	# where the time went: the pass, and its five slowest files
	echo "time: $label: $(($(date +%s) - t0)) s with $jobs jobs; slowest: $(
		for t in "$dir"/*.secs; do [ -f "$t" ] && echo "$(cat "$t") $(basename "$t" .secs)"; done |
			sort -rn | head -n 5 | awk '{ printf "%s%s %s s", sep, $2, $1; sep = ", " }')"
	# shellcheck disable=SC2086
	sh tests/lib/tally.sh "$label" "$dir" $files >"$dir.tally" || status=1
	cat "$dir.tally"
	counts=$(tail -n 1 "$dir.tally")
	# shellcheck disable=SC2046 # three numbers
	set -- $(echo "$counts" | sed 's/.*: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/')
	passed=$((passed + $1)) failed=$((failed + $2)) skipped=$((skipped + $3))
}
all=$files
normal_only='/(bench|valgrind|suite|many)\.bats$'
normal_also='/(unit|demo|packaging)\.bats$'
if [ "${NRR_CHECK_FULL:-0}" = 1 ]; then
	files=$all
else
	files=$(printf '%s\n' "$all" | grep -E "$normal_only|$normal_also")
fi
[ -z "$files" ] || pass "normal build" env
files=$(printf '%s\n' "$all" | grep -Ev "$normal_only")
[ -z "$files" ] || pass "sanitizer build" env NRR="$PWD/build-san/nixos-rebuild-remote" \
	TEST_TOOL="$PWD/build-san/tests/test-tool" NRR_SANITIZED=1
[ "$status" = 0 ] || echo "error: the suite does not hold (see the error lines above)" >&2
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
