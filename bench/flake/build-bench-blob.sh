# shellcheck shell=sh disable=SC2154 # the variables are the derivation's attributes
# Builder of one benchmark payload file: $size bytes, in pieces of 64 KiB taken from shared
# libraries of this machine (which ones and where depends on "$seed"), so that the payload
# compresses as the programs and libraries of a real system do (gzip -6: about 2.5 to 1).
# Without such libraries: "$seed" repeated (which compresses about 1000 to 1).
set -eu
# bench/fleet --build-secs: a build that takes that long
[ "${sleepSeconds:-0}" = 0 ] || sleep "$sleepSeconds"
piece=65536
libs=$(find /usr/lib /usr/lib64 -maxdepth 2 -type f -name 'lib*.so*' -size +600k 2>/dev/null |
	LC_ALL=C sort)
count=$(printf '%s\n' "$libs" | grep -c . || true)
if [ "$count" -eq 0 ]; then
	yes "$seed" | head -c "$size" > "$out"
	exit 0
fi
h=$(printf '%s' "$seed" | cksum | cut -d' ' -f1)
: > "$out"
k=0
while [ $((k * piece)) -lt "$size" ]; do
	lib=$(printf '%s\n' "$libs" | sed -n "$(((h + k * 7) % count + 1))p")
	blocks=$(($(wc -c < "$lib") / piece))
	dd if="$lib" bs="$piece" skip=$(((h / (k + 1)) % blocks)) count=1 status=none >> "$out"
	k=$((k + 1))
done
truncate -s "$size" "$out"
