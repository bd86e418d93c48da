#!/usr/bin/env bats
# The remote scripts (lib/scripts/*.sh) as they are embedded: checked by
# shellcheck with their generated prologue, and held to the one definition
# (lib/scripts/NAME.def) of what each script and its C caller agree on.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
	ROOT=$BATS_TEST_DIRNAME/..
	GEN=$ROOT/lib/gen-scripts.sh
}

@test "every remote script passes shellcheck, prologue included" {
	command -v shellcheck >/dev/null || fail "shellcheck is not installed (make deps)"
	bad=
	for f in "$ROOT"/lib/scripts/*.sh; do
		out=$(sh "$GEN" text "$f" | shellcheck -s sh -f gcc - 2>&1) ||
			bad="$bad${f##*/}: $out"$'\n'
	done
	[ -z "$bad" ] || fail "shellcheck (line numbers count the prologue): $bad"
}

@test "the generator itself passes shellcheck" {
	run -0 shellcheck "$GEN"
}

@test "every remote script is embedded: the Makefile lists them all" {
	for f in "$ROOT"/lib/scripts/*.sh "$ROOT"/lib/scripts/*.def; do
		grep -q "lib/scripts/${f##*/}" "$ROOT/Makefile" ||
			fail "${f##*/} is not in the Makefile's SCRIPTS or SCRIPT_DEFS"
	done
}

@test "no script ends with a bare status number: each is a \$ST_ of its .def" {
	run -1 grep -nE '(exit|return|s=) *[1-9][0-9]*\b' "$ROOT"/lib/scripts/*.sh
}

@test "every status a .def defines is used by its script or by C" {
	for d in "$ROOT"/lib/scripts/*.def; do
		n=${d##*/}; n=${n%.def}; u=$(echo "$n" | tr '[:lower:]' '[:upper:]')
		for s in $(awk '$1 == "status" { print $2 }' "$d"); do
			grep -q "\$ST_$s\b" "$ROOT/lib/scripts/$n.sh" ||
				grep -q "\b${u}_ST_$s\b" "$ROOT"/lib/*.c ||
				fail "$n: status $s is defined but neither side uses it"
		done
	done
}

@test "activation fields: the script reads each value C writes into the variable of its name" {
	fields=$(awk '$1 == "field" { print $2 }' "$ROOT/lib/scripts/activate.def")
	run -0 sh -c "$(sh "$GEN" prologue "$ROOT/lib/scripts/activate.sh")"'
		read_fields || { echo short; exit 1; }
		for v in '"$(echo $fields)"'; do eval "printf \"%s=%s\\n\" \$v \"\$$v\""; done' \
		< <("$TT" activate-fields)
	assert_output "act=switch
top=/nix/store/top
prof=/prof
spec=spec
ib=1
op=set
diff=1
ask=1
nocheck=
dirty=
novalidate=1
subst=1
plan=1
confirm=30
keys=all
serve="
}

@test "activation fields: C writes exactly as many lines as the script reads" {
	n=$(grep -c '^field ' "$ROOT/lib/scripts/activate.def")
	run -0 sh -c '"$1" activate-fields | wc -l' sh "$TT"
	assert_equal "$output" "$n"
}
