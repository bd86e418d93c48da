#!/bin/sh
# Builds the libFuzzer harnesses of tests/fuzz with clang, ASan and UBSan, and runs each for
# SECONDS (default 10) from its seed corpus (corpus/NAME, never written to: new inputs go to a
# temp dir). `make check` runs it briefly, `make fuzz` longer.
#
#   sh tests/fuzz/run.sh [SECONDS] [HARNESS...]    HARNESS: narinfo config base32 parsers
#                                                  (default all)
#
# A crash, leak or sanitizer report fails the run; the input that caused it is kept in
# tests/fuzz/crashes/ (replay: the printed build command, then ./fuzz-NAME FILE).
# Environment: FUZZ_CC (default clang), FUZZ_JOBS (parallel runs per harness, default 1).
set -eu
secs=${1:-10}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/../.."
root=$PWD
harnesses=${*:-narinfo config base32 parsers}
cc=${FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "error: '$cc' not found: the fuzz harnesses need clang with libFuzzer" >&2
	echo "hint: apt-get install clang libclang-rt-14-dev (or: make deps)" >&2
	exit 1
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/nrr-fuzz.XXXXXX")
trap 'rm -rf "$out"' EXIT
# NRR_VERSION's quotes are meant to reach the compiler: the macro is a C string.
# shellcheck disable=SC2089,SC2090
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -std=c11
-D_POSIX_C_SOURCE=200809L -DNRR_VERSION=\"fuzz\" -Wall -Wextra -Werror"
pc=$(pkg-config --cflags --libs libcjson libsodium libcurl)
common="lib/narinfo.c lib/strbuf.c lib/strvec.c lib/error.c"
status=0
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1
for h in $harnesses; do
	case $h in
	config) srcs="$common lib/nixconf.c" ;;
	narinfo | base32) srcs=$common ;;
	parsers) srcs=$(ls lib/*.c) ;;
	*) echo "error: unknown harness '$h' (narinfo, config, base32, parsers)" >&2; exit 2 ;;
	esac
	# shellcheck disable=SC2086,SC2090 # word lists on purpose
	if ! $cc $flags -o "$out/fuzz-$h" "tests/fuzz/fuzz-$h.c" $srcs $pc 2>"$out/build-$h.log"; then
		cat "$out/build-$h.log" >&2
		echo "error: cannot build the $h harness" >&2
		exit 1
	fi
	mkdir -p "$out/corpus-$h" "$out/crash-$h"
	jobs=
	[ "${FUZZ_JOBS:-1}" -gt 1 ] && jobs="-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS"
	# In $out: parallel jobs write their fuzz-N.log to the working directory.
	# shellcheck disable=SC2086
	if (cd "$out" && ./"fuzz-$h" -max_total_time="$secs" -max_len=8192 -timeout=10 \
		-rss_limit_mb=2048 $([ -f "$root/tests/fuzz/$h.dict" ] && echo "-dict=$root/tests/fuzz/$h.dict") $jobs \
		-artifact_prefix="$out/crash-$h/" -print_final_stats=1 \
		"$out/corpus-$h" "$root/tests/fuzz/corpus/$h") >"$out/run-$h.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/run-$h.log" | tail -n 1)
		echo "fuzz $h: ok, ${runs:-?} runs in ${secs}s, $(find "$out/corpus-$h" -type f | wc -l) new inputs"
	else
		status=1
		mkdir -p tests/fuzz/crashes
		cp "$out/crash-$h/"* tests/fuzz/crashes/ 2>/dev/null || true
		cat "$out"/fuzz-*.log 2>/dev/null | tail -n 40 >&2 || true
		tail -n 40 "$out/run-$h.log" >&2
		echo "fuzz $h: FAILED; inputs kept in tests/fuzz/crashes/" >&2
	fi
done
exit $status
