#!/bin/sh
# Runs each bats FILE on its own, JOBS files at a time, leaving DIR/NAME.tap (bats --tap's
# output, stderr included) and DIR/NAME.rc (bats' exit status) for tests/lib/tally.sh to
# judge, DIR/NAME.secs (its wall time, for finding where the suite's time goes), and
# printing each file's output whole when it ends. NAME is FILE's base name
# without .bats. Files start in the order given (put the longest first).
#
#   sh tests/lib/bats-each.sh DIR JOBS FILE...
set -u
dir=$1 jobs=$2
shift 2
mkdir -p "$dir"
if [ "$jobs" -gt 1 ] && [ $# -gt 1 ]; then
	printf '%s\n' "$@" | xargs -d '\n' -P "$jobs" -n 1 sh "$0" "$dir" 1
	exit 0
fi
for f in "$@"; do
	name=$(basename "$f" .bats)
	start=$(date +%s)
	bats --tap "$f" >"$dir/$name.tap" 2>&1
	echo $? >"$dir/$name.rc"
	echo $(($(date +%s) - start)) >"$dir/$name.secs"
	# one file's lines together, whatever else ends at the same time
	{
		echo "# $f (bats exit status $(cat "$dir/$name.rc"), $(cat "$dir/$name.secs") s)"
		cat "$dir/$name.tap"
	} | flock "$dir" cat
done
