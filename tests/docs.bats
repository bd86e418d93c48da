#!/usr/bin/env bats
# The option table (lib/options.c, seen through the hidden --complete mode)
# is the one source of truth: --help, the man page and the shell completions
# must know every option in it and nothing else, and it must accept every
# option nixos-rebuild-ng accepts, spelled the same.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
	NRR=${NRR:-$BATS_TEST_DIRNAME/../nixos-rebuild-remote}
	[ -x "$NRR" ] || fail "no binary at $NRR (make nixos-rebuild-remote)"
	MAN=$BATS_TEST_DIRNAME/../man/nixos-rebuild-remote.8
	COMPDIR=$BATS_TEST_DIRNAME/../completions
	ERROR_H=$BATS_TEST_DIRNAME/../lib/error.h
	NG_OPTIONS=$BATS_TEST_DIRNAME/ng-options.txt
	# long <TAB> short letter or "-" <TAB> nargs (-1: optional value)
	TABLE=$("$NRR" --complete options-table | cut -f1-3)
}

# The lines of the man page's section $1 (.Sh $1 up to the next .Sh).
man_section() {
	awk -v s="$1" '/^\.Sh /{ on = ($0 == ".Sh " s); next } on' "$MAN"
}

# One line per long option on an .It line of OPTIONS:
# subsection | --long | the line's short options | the word after the long one
man_options() {
	man_section OPTIONS | awk '
		/^\.Ss /{ ss = substr($0, 5); next }
		/^\.It /{
			n = split($0, w, " "); shorts = ""; k = 0
			for (i = 2; i < n; i++)
				if (w[i] == "Fl" && w[i + 1] ~ /^[A-Za-z]$/)
					shorts = shorts " -" w[i + 1]
			for (i = 2; i < n; i++)
				if (w[i] == "Fl" && w[i + 1] ~ /^-[a-z0-9-]+$/)
					printf "%s|-%s|%s|%s\n", ss, w[i + 1], substr(shorts, 2), (i + 2 <= n ? w[i + 2] : "")
		}'
}

# "Section <TAB> --long" for every option --help shows, by section.
help_sections() {
	"$NRR" --help | awk '
		/^[A-Z][^:]*:$/{ sec = substr($0, 1, length($0) - 1); next }
		/^$/{ next }
		sec != "" && sec != "Actions" && /^  -/ {
			for (i = 1; i <= NF; i++) {
				w = $i; sub(/,$/, "", w)
				if (w ~ /^--/) { print sec "\t" w; break }
			}
		}'
}

@test "every option of the table is in --help" {
	local help long missing=
	help=$("$NRR" --help)
	while IFS=$'\t' read -r long _ _; do
		grep -qE -- "(^|[ ,])$long( |$)" <<<"$help" || missing+=" $long"
	done <<<"$TABLE"
	[ -z "$missing" ] || fail "not in --help:$missing"
}

@test "--complete options lists exactly the spellings of --complete options-table" {
	run "$NRR" --complete options
	assert_success
	local want
	want=$(awk -F'\t' '{ print $1; if ($2 != "-") print "-" $2 }' <<<"$TABLE" | sort -u)
	assert_equal "$(sort -u <<<"$output")" "$want"
}

@test "the man page documents every option of the table, with its short form" {
	local docs long short nargs missing= got
	docs=$(man_options)
	while IFS=$'\t' read -r long short nargs; do
		got=$(awk -F'|' -v l="$long" '$2 == l { print " " $3 " " }' <<<"$docs")
		if [ -z "$got" ]; then
			missing+=" $long"
		elif [ "$short" != - ] && [[ $got != *" -$short "* ]]; then
			missing+=" -$short($long)"
		fi
	done <<<"$TABLE"
	[ -z "$missing" ] || fail "not documented in OPTIONS of the man page:$missing"
}

@test "the man page's short options stand next to their own long options" {
	local ss long shorts next want bad=
	while IFS='|' read -r ss long shorts next; do
		want=$(awk -F'\t' -v l="$long" '$1 == l && $2 != "-" { print "-" $2 }' <<<"$TABLE")
		[ -z "$want" ] && continue
		[[ " $shorts " == *" $want "* ]] || bad+=" $long($want)"
	done < <(man_options)
	# and no short option on a line belongs to none of its long options
	while IFS='|' read -r ss long shorts next; do
		for s in $shorts; do
			awk -F'\t' -v s="${s#-}" '$2 == s' <<<"$TABLE" | grep -q . || bad+=" $s"
		done
	done < <(man_options)
	[ -z "$bad" ] || fail "short forms wrong in the man page:$bad"
}

@test "the man page documents no option the table lacks (hidden ones included)" {
	local long extra=
	while read -r long; do
		awk -F'\t' -v l="$long" '$1 == l' <<<"$TABLE" | grep -q . || extra+=" $long"
	done < <(grep -oE 'Fl -[a-z0-9-]+' "$MAN" | sed 's/^Fl /-/' | sort -u)
	[ -z "$extra" ] || fail "in the man page but not in the table:$extra"
}

@test "the man page groups options exactly by the table's sections" {
	# "<" lines: in --help only, ">" lines: in the man page only
	run diff <(help_sections | sort) <(man_options | cut -d'|' -f1,2 | tr '|' '\t' | sort)
	assert_success
	# and the subsections are the sections, in --help's order
	run diff <("$NRR" --help | sed -n 's/^\([A-Z][^:]*\):$/\1/p' | grep -vx Actions) \
		<(man_section OPTIONS | sed -n 's/^\.Ss //p')
	assert_success
}

@test "the man page shows which options take a value" {
	local ss long shorts next nargs bad=
	while IFS='|' read -r ss long shorts next; do
		nargs=$(awk -F'\t' -v l="$long" '$1 == l { print $3 }' <<<"$TABLE")
		case $nargs in
		0) [[ $next == "" || $next == , ]] || bad+=" $long(takes no value)" ;;
		-1) [[ $next == Op || $next == Oo ]] || bad+=" $long(optional value)" ;;
		*) [[ $next == Ar || $next == Oo ]] || bad+=" $long(takes $nargs)" ;;
		esac
	done < <(man_options)
	[ -z "$bad" ] || fail "value shown wrong in the man page:$bad"
}

@test "both completion scripts read options, actions, hosts and flakes from the binary" {
	local f
	for f in "$COMPDIR/nixos-rebuild-remote.bash" "$COMPDIR/_nixos-rebuild-remote"; do
		for what in 'options' 'options-table' 'actions' 'hosts' 'flake:'; do
			grep -qE -- "--complete \"?$what" "$f" ||
				fail "$(basename "$f") does not call --complete $what"
		done
	done
}

@test "every option of nixos-rebuild-ng is in the table with the same short form and nargs" {
	local long short nargs ours bad=
	while IFS=$'\t' read -r long short nargs; do
		[[ $long == --* ]] || continue
		[ "$short" = - ] || short=${short#-}
		[ "$nargs" = '?' ] && nargs=-1
		ours=$(awk -F'\t' -v l="$long" '$1 == l { print $2 "\t" $3 }' <<<"$TABLE")
		if [ -z "$ours" ]; then
			bad+=" $long(missing)"
		elif [ "$ours" != "$short	$nargs" ]; then
			bad+=" $long(ng: $short $nargs, ours: ${ours/	/ })"
		fi
	done <"$NG_OPTIONS"
	[ -z "$bad" ] || fail "differs from nixos-rebuild-ng:$bad"
}

@test "every action is described in the man page" {
	local a missing= desc
	desc=$(man_section DESCRIPTION)
	while read -r a; do
		grep -qx "\.It Cm $a" <<<"$desc" || missing+=" $a"
	done < <("$NRR" --complete actions)
	[ -z "$missing" ] || fail "actions not in DESCRIPTION:$missing"
}

@test "the man page describes no action that the action table lacks" {
	local a extra= actions
	actions=$("$NRR" --complete actions)
	while read -r a; do
		grep -qx -- "$a" <<<"$actions" || extra+=" $a"
	done < <(man_section DESCRIPTION | sed -n 's/^\.It Cm \([a-z-]*\)$/\1/p')
	[ -z "$extra" ] || fail "actions in DESCRIPTION that the binary does not know:$extra"
}

@test "mandoc -T lint -W warning finds nothing" {
	command -v mandoc >/dev/null || fail "mandoc is not installed (make deps)"
	run mandoc -T lint -W warning "$MAN"
	assert_success
	assert_output ''
}

@test "every exit status of lib/error.h is in EXIT STATUS" {
	local statuses s missing= section
	section=$(man_section 'EXIT STATUS')
	statuses=$(sed -n '/^enum nrr_status/,/^};/p' "$ERROR_H" | grep -oE '= *[0-9]+' | tr -dc '0-9\n')
	[ -n "$statuses" ] || fail "no statuses found in $ERROR_H"
	# the status of a run stopped by SIGTERM, named in the same enum's comments
	statuses+=$'\n'$(grep -oE 'SIGTERM gives [0-9]+' "$ERROR_H" | grep -oE '[0-9]+$')
	for s in $statuses; do
		grep -qx "\.It $s" <<<"$section" || missing+=" $s"
	done
	[ -z "$missing" ] || fail "exit statuses not in EXIT STATUS:$missing"
}
