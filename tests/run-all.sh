#!/bin/sh
# Runs the whole suite: every tests/*.bats against the normal build, then
# the same files against the ASan+UBSan build (NRR and TEST_TOOL point the
# tests at it). Sanitizer reports are fatal, so a report fails its test.
# Ends with one summary line: "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99
passed=0 failed=0
# Everything runs in a mount namespace whose /nix and /etc/nix are empty
# temp dirs: whatever a test evaluates outside the fleet's own namespaces
# (completion asks nix for flake outputs) lands there, not in this
# machine's store.
sandbox=$(mktemp -d /tmp/nrr-check.XXXXXX)
trap 'chmod -R u+w "$sandbox" 2>/dev/null; rm -rf "$sandbox"' EXIT
mkdir -p "$sandbox/nix" "$sandbox/etc-nix"
printf 'sandbox = false\nsubstituters =\n' >"$sandbox/etc-nix/nix.conf"
isolated() {
	unshare -m --propagation private sh -c \
		'mount --bind "$1/nix" /nix && mount --bind "$1/etc-nix" /etc/nix && shift && exec "$@"' \
		sh "$sandbox" "$@"
}
run() {
	label=$1; shift
	out=$(mktemp)
	isolated bats --tap "$@" tests/*.bats >"$out" 2>&1
	cat "$out"
	p=$(grep -c '^ok ' "$out")
	f=$(grep -c '^not ok ' "$out")
	passed=$((passed + p)); failed=$((failed + f))
	echo "# $label: $p passed, $f failed"
	rm -f "$out"
}
run "normal build"
NRR=$PWD/build-san/nixos-rebuild-remote TEST_TOOL=$PWD/build-san/tests/test-tool \
	NRR_SANITIZED=1 run "sanitizer build"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
