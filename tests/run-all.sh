#!/bin/sh
# Runs the whole suite: every tests/*.bats against the normal build, then
# the same files against the ASan+UBSan build (NRR and TEST_TOOL point the
# tests at it; bench, valgrind, suite and many.bats only once). Sanitizer reports
# are fatal, so a report fails its test.
#
# A pass holds only when every test each file holds ran (bats --count),
# bats' plan and exit status agree with its test lines, and nothing
# failed: tests/lib/tally.sh judges each pass. A skip is counted apart and
# its reason shown. Ends with one summary line: "N passed, N failed, N
# skipped"; exits 1 unless both passes held.
#
#   sh tests/run-all.sh [FILE.bats...]    (default: every tests/*.bats)
# NRR_CHECK_JOBS (default 2): bats files run at once (each file's fleet has addresses
# and namespaces of its own; most of a file's time is ssh round trips and sleeps).
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
sandbox=$(mktemp -d /tmp/nrr-check.XXXXXX)
trap 'chmod -R u+w "$sandbox" 2>/dev/null; rm -rf "$sandbox"' EXIT
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
	# shellcheck disable=SC2086 # one word per file
	isolated "$@" sh tests/lib/bats-each.sh "$dir" "$jobs" $files
	# shellcheck disable=SC2086
	sh tests/lib/tally.sh "$label" "$dir" $files >"$dir.tally" || status=1
	cat "$dir.tally"
	counts=$(tail -n 1 "$dir.tally")
	# shellcheck disable=SC2046 # three numbers
	set -- $(echo "$counts" | sed 's/.*: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/')
	passed=$((passed + $1)) failed=$((failed + $2)) skipped=$((skipped + $3))
}
pass "normal build" env
# the bench harness, valgrind and the suite's own rules do not change with the build: the
# sanitizer pass leaves them out (valgrind does not apply to an ASan build); so does the
# 200-host fleet of many.bats, whose minutes go to the fake hosts' sshd and nix, not to our
# code (fleet-child.bats runs 300 sanitized children, and on.bats the fleet, in that pass)
files=$(printf '%s\n' "$files" | grep -Ev '/(bench|valgrind|suite|many)\.bats$')
pass "sanitizer build" env NRR="$PWD/build-san/nixos-rebuild-remote" \
	TEST_TOOL="$PWD/build-san/tests/test-tool" NRR_SANITIZED=1
[ "$status" = 0 ] || echo "error: the suite does not hold (see the error lines above)" >&2
echo "$passed passed, $failed failed, $skipped skipped"
exit "$status"
