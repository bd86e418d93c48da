#!/usr/bin/env bats
# The layer map at the top of README.md's Tests section is the rule for
# lib/: a module includes headers of its own layer and the layers below.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
	ROOT=$BATS_TEST_DIRNAME/..
}

# "module layer" lines, from the README's table between the markers.
layer_map() {
	sed -n '/^<!-- layers -->$/,/^<!-- \/layers -->$/p' "$ROOT/README.md" |
		awk -F'|' '$2 ~ /^ *[0-9]+ *$/ { n = split($4, m, " "); for (i = 1; i <= n; i++) print m[i], $2 + 0 }'
}

@test "the README has a layer map" {
	run layer_map
	assert_success
	assert_line 'strbuf 0'
	assert_line 'deploy 5'
}

@test "every module of lib/ has a place in the layer map" {
	local map missing= f m
	map=$(layer_map)
	for f in "$ROOT"/lib/*.c "$ROOT"/lib/*.h; do
		m=$(basename "${f%.*}")
		grep -q "^$m " <<<"$map" || missing+=" $m"
	done
	[ -z "$missing" ] || fail "not in the README's layer map:$(tr ' ' '\n' <<<"$missing" | sort -u | tr '\n' ' ')"
}

@test "no module of lib/ includes a header of a layer above its own" {
	local map bad= f m inc lm li
	map=$(layer_map)
	for f in "$ROOT"/lib/*.c "$ROOT"/lib/*.h; do
		m=$(basename "${f%.*}")
		lm=$(awk -v m="$m" '$1 == m { print $2 }' <<<"$map")
		[ -n "$lm" ] || continue
		while read -r inc; do
			li=$(awk -v m="${inc%.h}" '$1 == m { print $2 }' <<<"$map")
			if [ -z "$li" ]; then
				bad+=" $(basename "$f")->$inc(no layer)"
			elif ((li > lm)); then
				bad+=" $(basename "$f")(layer $lm)->$inc(layer $li)"
			fi
		done < <(sed -n 's/^#include "\([a-z_]*\.h\)".*/\1/p' "$f")
	done
	[ -z "$bad" ] || fail "includes that break the layer map:$bad"
}
