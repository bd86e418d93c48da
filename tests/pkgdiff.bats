#!/usr/bin/env bats
# lib/pkgdiff.c through tests/test-tool: how store path names split into
# package and version, how versions compare, and what the diff of two
# closures shows (text and JSON) before a deploy switches.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
	D=$BATS_TEST_TMPDIR
}

# A store path for NAME, with a hash derived from NAME and an optional
# salt (a rebuild of the same name and version gets a new hash).
sp() {
	printf '/nix/store/%s-%s' "$(printf '%s %s' "$1" "${2:-}" | sha256sum | cut -c1-32)" "$1"
}

# Writes "PATH<TAB>SIZE" lines to FILE from NAME SIZE [SALT] arguments
# given as "NAME:SIZE[:SALT]" words.
closure() {
	local file=$1 w name size salt
	shift
	: >"$file"
	for w in "$@"; do
		IFS=: read -r name size salt <<<"$w"
		printf '%s\t%s\n' "$(sp "$name" "$salt")" "$size" >>"$file"
	done
}

# ---- splitting names ----

@test "split: the version starts at the first dash followed by a digit" {
	run "$TT" diff-split "$(sp foo-bar-1.2.3-man)" "$(sp linux-6.6.1)" \
		"$(sp python3.12-requests-2.31.0)" "$(sp glibc-2.38-44)" "$(sp hello-2.12.1)"
	assert_success
	assert_output $'foo-bar\t1.2.3-man\nlinux\t6.6.1\npython3.12-requests\t2.31.0\nglibc\t2.38-44\nhello\t2.12.1'
}

@test "split: output suffixes stay in the version, as nvd keeps them" {
	run "$TT" diff-split "$(sp xz-5.4.4-bin)" "$(sp xz-5.4.4)" "$(sp curl-8.4.0-dev)"
	assert_output $'xz\t5.4.4-bin\nxz\t5.4.4\ncurl\t8.4.0-dev'
}

@test "split: a name with no dash before a digit has the empty version" {
	run "$TT" diff-split "$(sp source)" "$(sp etc)" "$(sp system-path)" "$(sp unit-nix-daemon.service)"
	assert_output $'source\t\netc\t\nsystem-path\t\nunit-nix-daemon.service\t'
}

@test "split: a NixOS system is named by host, its version is release, date and revision" {
	run "$TT" diff-split "$(sp nixos-system-host-24.05.20240101.abcdef)"
	assert_output $'nixos-system-host\t24.05.20240101.abcdef'
}

@test "split: .drv is dropped; a name without a hash is split as it is" {
	run "$TT" diff-split "$(sp hello-2.12.1.drv)" hello-2.12.1 /nix/store/short-1.0
	assert_output $'hello\t2.12.1\nhello\t2.12.1\nshort\t1.0'
}

@test "split: a leading dash never starts a version (the name is never empty)" {
	run "$TT" diff-split -1.0 "$(sp 2fast-1.0)"
	assert_output $'-1.0\t\n2fast\t1.0'
}

# ---- comparing versions ----

# Each argument is "A OP B"; fails on the first wrong one.
compare_all() {
	local c a op b got
	for c in "$@"; do
		read -r a op b <<<"$c"
		got=$("$TT" diff-compare "$a" "$b")
		[ "$got" = "$op" ] || fail "compare $a $b: got '$got', want '$op'"
	done
}

@test "compare: numeric components compare by value" {
	compare_all "1.2 < 1.10" "2.38-44 < 2.38-45" "01 = 1" "2023.01.01 = 2023.1.1" \
		"6.6.1 > 6.1.99" "r123 > r99" "1.0 = 1.0"
}

@test "compare: pre sorts before everything, and a missing component before a number" {
	compare_all "1.0pre1 < 1.0" "1.0.pre < 1.0" "pre < pre1" "1.0 < 1.0.0" "1..2 = 1.2"
}

@test "compare: letters sort before numbers and byte-wise among themselves (as Nix)" {
	compare_all "2.3a < 2.3.1" "1.0 < 1.0a" "1.0alpha < 1.0beta" "1.1.1w > 1.1.1v" \
		"1.0-rc1 > 1.0" "unstable-2023-01-01 < 2022"
}

@test "compare: long numbers compare by value (as nvd; Nix gives up past int)" {
	compare_all "99999999999 < 100000000000" "20240101 < 20240102"
}

@test "compare: versions sort in that order" {
	run "$TT" diff-sort 1.10 2.3.1 1.2 1.0a 1.0pre 2.3a 1.0
	assert_output $'1.0pre\n1.0\n1.0a\n1.2\n1.10\n2.3a\n2.3.1'
}

@test "compare: agrees with Nix's builtins.compareVersions (in a private /nix)" {
	command -v nix-instantiate >/dev/null || fail "no nix-instantiate (make deps)"
	unshare -m true 2>/dev/null || fail "cannot make a mount namespace (the suite runs as root)"
	mkdir -p "$D/nix" "$D/etc-nix"
	printf 'sandbox = false\nsubstituters =\nbuild-users-group =\n' >"$D/etc-nix/nix.conf"
	local pairs=(1.2:1.10 1.0pre1:1.0 2.3a:2.3.1 1.0:1.0a 1.0:1.0.0 01:1 1.0-rc1:1.0
		2.38-44:2.38-45 pre:pre1 1.0_beta:1.0 1.0+git:1.0 1.2.3-man:1.2.3
		5.4.4-bin:5.4.6-bin 1.0alpha:1.0beta 1..2:1.2 r123:r99 1.0--:1.0
		unstable-2023-01-01:2022 3.0.12:1.1.1w 24.05.20240101.abcdef:24.05.20231231.fedcba)
	local expr='[' p a b want=
	for p in "${pairs[@]}"; do
		a=${p%%:*} b=${p#*:}
		expr+=" (builtins.compareVersions \"$a\" \"$b\")"
		case $("$TT" diff-compare "$a" "$b") in "<") want+="-1 " ;; "=") want+="0 " ;; ">") want+="1 " ;; esac
	done
	expr+=' ]'
	# nix's warnings (stderr) are kept apart from the value compared
	# shellcheck disable=SC2016 # expanded by the inner sh
	run --separate-stderr unshare -m --propagation private sh -c \
		'mount --bind "$1/nix" /nix && mount --bind "$1/etc-nix" /etc/nix &&
		 nix-instantiate --eval --strict --expr "$2"' sh "$D" "$expr"
	assert_success
	assert_output "[ ${want}]"
}

# ---- the diff ----

@test "diff: a deploy that changes, adds and removes one package shows those three lines" {
	closure "$D/old" hello-2.12.1:100000 nano-7.2:2200000 glibc-2.38-44:30000000 etc:4096 source:50
	closure "$D/new" hello-2.12.2:104096 ripgrep-14.1.0:3500000 glibc-2.38-44:30000000 etc:4100:2 source:50
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_success
	assert_output - <<-'EOF'
	Changed:
	  > hello    2.12.1 -> 2.12.2  +4.0 KiB
	Added:
	  + ripgrep  14.1.0            +3.3 MiB
	Removed:
	  - nano     7.2               -2.1 MiB
	Closure: 5 -> 5 paths (+3, -3), 30.8 MiB -> 32.1 MiB (+1.2 MiB)
	EOF
}

@test "diff: the closure delta is the sum of the NAR sizes, to the byte in JSON" {
	closure "$D/old" a-1:1000 b-1:2000 c-1:3000
	closure "$D/new" a-1:1000 b-2:2500 d-1:4000
	run "$TT" diff-json "$D/old" "$D/new"
	assert_success
	echo "$output" | jq -e '.closure == {oldPaths: 3, newPaths: 3, pathsAdded: 2,
		pathsRemoved: 2, oldSize: 6000, newSize: 7500, sizeDelta: 1500}'
	echo "$output" | jq -e '.changed == [{name: "b", kind: "upgrade", oldVersions: ["1"],
		newVersions: ["2"], oldSize: 2000, newSize: 2500, sizeDelta: 500}]'
	echo "$output" | jq -e '[.added[].name, .removed[].name] == ["d", "c"]'
	echo "$output" | jq -e '.removed[0] | .kind == "removed" and .newVersions == [] and .sizeDelta == -3000'
}

@test "diff: several versions of one name form one set; one of them changing is one line" {
	closure "$D/old" openssl-3.0.12:6000000 openssl-1.1.1w:5000000
	closure "$D/new" openssl-3.0.13:6000100 openssl-1.1.1w:5000000
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_line --index 0 "Changed:"
	assert_line --index 1 "  > openssl  1.1.1w, 3.0.12 -> 1.1.1w, 3.0.13  +100 B"
	assert_equal "${#lines[@]}" 3
}

@test "diff: output paths of one package move together under its name" {
	closure "$D/old" xz-5.4.4:300000 xz-5.4.4-bin:200000
	closure "$D/new" xz-5.4.6:300000 xz-5.4.6-bin:200000
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_line --index 1 "  > xz  5.4.4, 5.4.4-bin -> 5.4.6, 5.4.6-bin  0 B"
}

@test "diff: a version only gained is a change without direction (~)" {
	closure "$D/old" openssl-3.0.12:6000000
	closure "$D/new" openssl-3.0.12:6000000 openssl-1.1.1w:5000000
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_line --index 1 "  ~ openssl  3.0.12 -> 1.1.1w, 3.0.12  +4.8 MiB"
}

@test "diff: a lower version is a downgrade (<)" {
	closure "$D/old" linux-6.6.1:1000 firefox-121.0:2000
	closure "$D/new" linux-6.1.70:1000 firefox-121.0.1:2000
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_output - <<-'EOF'
	Changed:
	  > firefox  121.0 -> 121.0.1  0 B
	  < linux    6.6.1 -> 6.1.70   0 B
	Closure: 2 -> 2 paths (+2, -2), 2.9 KiB -> 2.9 KiB (0 B)
	EOF
}

@test "diff: a rebuild at the same version is no package change, only closure figures" {
	closure "$D/old" hello-2.12.1:100000 etc:4096 source:50
	closure "$D/new" hello-2.12.1:100100:rebuilt etc:4096:2 source:50
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_output - <<-'EOF'
	No package versions changed.
	Closure: 3 -> 3 paths (+2, -2), 101.7 KiB -> 101.8 KiB (+100 B)
	EOF
}

@test "diff: an unversioned name appearing is added with version (none)" {
	closure "$D/old" hello-2.12.1:1
	closure "$D/new" hello-2.12.1:1 system-path:2048
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_line --index 1 "  + system-path  (none)  +2.0 KiB"
}

@test "diff: sections are sorted by name and columns align across them" {
	closure "$D/old" zlib-1.3:1 bash-5.2:1 coreutils-9.3:1 zstd-1.5.5:1 attr-2.5.1:1
	closure "$D/new" zlib-1.3.1:1 bash-5.2p26:1 coreutils-9.4:1 acl-2.3.1:1 zz-top-1.0:1
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_output - <<-'EOF'
	Changed:
	  > bash       5.2 -> 5.2p26   0 B
	  > coreutils  9.3 -> 9.4      0 B
	  > zlib       1.3 -> 1.3.1    0 B
	Added:
	  + acl        2.3.1          +1 B
	  + zz-top     1.0            +1 B
	Removed:
	  - attr       2.5.1          -1 B
	  - zstd       1.5.5          -1 B
	Closure: 5 -> 5 paths (+5, -5), 5 B -> 5 B (0 B)
	EOF
}

@test "diff: without sizes the size columns are left out" {
	printf '%s\n' "$(sp hello-2.12.1)" >"$D/old"
	printf '%s\n' "$(sp hello-2.12.2)" >"$D/new"
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_output $'Changed:\n  > hello  2.12.1 -> 2.12.2\nClosure: 1 -> 1 paths (+1, -1)'
}

@test "diff: identical closures have no changes" {
	closure "$D/old" hello-2.12.1:10 source:5
	run "$TT" diff-closures "$D/old" "$D/old"
	assert_output $'No package versions changed.\nClosure: 2 -> 2 paths (+0, -0), 15 B -> 15 B (0 B)'
}

@test "diff: a path listed twice counts once" {
	closure "$D/old" hello-2.12.1:10 hello-2.12.1:10
	closure "$D/new" hello-2.12.1:10
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_output $'No package versions changed.\nClosure: 1 -> 1 paths (+0, -0), 10 B -> 10 B (0 B)'
}

@test "diff: colour wraps mark and name only, and alignment holds" {
	closure "$D/old" hello-2.12.1:10 nano-7.2:10
	closure "$D/new" hello-2.12.2:10 nano-7.2:10
	run "$TT" diff-closures --color "$D/old" "$D/new"
	assert_line --index 1 $'  \e[36m> hello\e[m  2.12.1 -> 2.12.2  0 B'
	run "$TT" diff-closures "$D/old" "$D/new"
	refute_output --partial $'\e['
}

@test "diff: a long version list does not widen every other line" {
	closure "$D/old" a-1:1 many-1.0:1 many-1.1:1 many-1.2:1 many-1.3:1 many-1.4:1 many-1.5:1 \
		many-1.6:1 many-1.7:1 many-1.8:1
	closure "$D/new" a-2:1 many-2.0:1
	run "$TT" diff-closures "$D/old" "$D/new"
	assert_line --index 1 "  > a     1 -> 2   0 B"
	assert_line --index 2 "  > many  1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8 -> 2.0  -8 B"
}

# ---- reading listings ----

@test "parse: tab, blanks, bare paths, CRLF and blank lines" {
	printf '/nix/store/a-x-1\t10\n\n/nix/store/b-y-2   20  \r\n/nix/store/c-z\n  \n/nix/store/d-w 0' >"$D/in"
	run "$TT" diff-parse "$D/in"
	assert_success
	assert_output $'/nix/store/a-x-1\t10\n/nix/store/b-y-2\t20\n/nix/store/c-z\t0\n/nix/store/d-w\t0'
}

@test "parse: a bad size is refused, naming its line" {
	printf '/nix/store/a-x-1\t10\n\n/nix/store/b-y-2\t2O\n' >"$D/in"
	run -1 "$TT" diff-parse "$D/in"
	assert_line "error: bad closure line 3: size '2O' is not a byte count"
}

@test "parse: a line that is not a store path is refused" {
	printf '12345\n' >"$D/in"
	run -1 "$TT" diff-parse "$D/in"
	assert_output "error: bad closure line 1: not a store path"
}

@test "parse: control characters are refused, and never echoed (the listing is remote)" {
	printf '/nix/store/a-x-1\t10\n/nix/store/b-\033[2Jy-2\t20\n' >"$D/in"
	run -1 "$TT" diff-parse "$D/in"
	assert_line "error: bad closure line 2: not a store path"
	printf '/nix/store/a-x-1\t1\033[2J\n' >"$D/in"
	run -1 "$TT" diff-parse "$D/in"
	assert_output "error: bad closure line 1: size '1?[2J' is not a byte count"
}

@test "parse: a size past 64 bits is refused" {
	printf '/nix/store/a-x-1\t18446744073709551616\n' >"$D/in"
	run -1 "$TT" diff-parse "$D/in"
	assert_output --partial "is not a byte count"
}

@test "parse: paths and sizes from two parallel listings (nix-store -qR, -q --size)" {
	printf '/nix/store/a-x-1\n/nix/store/b-y-2\n' >"$D/paths"
	printf '10\n20\n' >"$D/sizes"
	run "$TT" diff-parse-lists "$D/paths" "$D/sizes"
	assert_output $'/nix/store/a-x-1\t10\n/nix/store/b-y-2\t20'
}

@test "parse: parallel listings of different lengths are refused" {
	printf '/nix/store/a-x-1\n/nix/store/b-y-2\n' >"$D/paths"
	printf '10\n' >"$D/sizes"
	run -1 "$TT" diff-parse-lists "$D/paths" "$D/sizes"
	assert_output "error: closure listing has 2 paths but 1 sizes"
}
