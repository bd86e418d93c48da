#!/usr/bin/env bats
# Pure functions of lib/, through tests/test-tool: quoting, splitting,
# option parsing, and the parsers of ssh, nix and remote output.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
}

@test "quoting: plain words are single-quoted" {
	run "$TT" sq-quote a 'b c' ''
	assert_output "'a' 'b c' ''"
}

@test "quoting: quotes and backslashes stand outside the quotes (fish-safe)" {
	run "$TT" sq-quote "it's" 'a\b'
	assert_output "'it'\\''s' 'a'\\\\'b'"
}

@test "quoting: sh, bash, dash and fish all read every hostile word back unchanged" {
	for w in "it's" 'a\b' '$(touch /tmp/x)' '`id`' 'a;b' '$HOME' '"dq"' ' lead' 'new
line' '\\' "'" '%self' '*' '~root' '{a,b}'; do
		q=$("$TT" sq-quote "$w")
		for sh in sh bash dash fish; do
			command -v $sh >/dev/null || continue
			if [ $sh = fish ]; then got=$(fish -c "printf '%s' $q"); else got=$($sh -c "printf '%s' $q"); fi
			[ "$got" = "$w" ] || fail "$sh read [$q] as [$got], not [$w]"
		done
	done
}

@test "a message quoting a host's words is one line, its control bytes shown as \\xNN, tabs and other UTF-8 kept" {
	run "$TT" one-line $'a\nb\rc\td \e]0;owned\a \e[2J \x7f \xc2\x9b31m \u2018q\u2019 caf\u00e9'
	assert_success
	assert_output "from 'h': a b c"$'\t'"d \\x1b]0;owned\\x07 \\x1b[2J \\x7f \\xc2\\x9b31m $(printf '\u2018q\u2019 caf\u00e9')"
}

@test "a remote's stderr kept for messages: past its limit, only the last lines of its second half" {
	run -0 "$TT" keep-tail 20 $'short\n'
	assert_output $'[short\n]'
	run -0 "$TT" keep-tail 30 $'line one\nline two\nline three\nend\n'
	assert_output $'[line three\nend\n]'
	run -0 "$TT" keep-tail 20 $'line one\nline two\nline three\nend\n'
	assert_output $'[end\n]'
	run -0 "$TT" keep-tail 8 'no newline at all here'
	assert_output '[here]'
}

@test "a linked /etc/nixos/flake.nix names the flake it links into, as nixos-rebuild follows it" {
	cd "$BATS_TEST_TMPDIR"
	mkdir -p cfg/sub etc own linkdir-target
	touch cfg/sub/flake.nix own/flake.nix linkdir-target/flake.nix
	ln -s ../cfg/sub/flake.nix etc/flake.nix
	ln -s linkdir-target linkdir
	run -0 "$TT" flake-dir-of etc/flake.nix
	assert_output "[$PWD/cfg/sub]"
	# in its own directory, or its directory a link: the flake named as it is
	run -0 "$TT" flake-dir-of own/flake.nix
	assert_output "[]"
	run -0 "$TT" flake-dir-of linkdir/flake.nix
	assert_output "[]"
	run -0 "$TT" flake-dir-of nowhere/flake.nix
	assert_output "[]"
}

@test "splitting NIX_SSHOPTS honours quotes like a shell" {
	run "$TT" split "-F '/tmp/my dir/cfg' -o \"ProxyCommand=nc %h %p\" -i a\\ b"
	assert_output $'[-F]\n[/tmp/my dir/cfg]\n[-o]\n[ProxyCommand=nc %h %p]\n[-i]\n[a b]'
}

@test "splitting refuses an unterminated quote" {
	run "$TT" split "-o 'oops"
	assert_failure 1
	assert_output "error: unterminated quote"
}

@test "options: bundled short flags, glued values and nargs 2" {
	run "$TT" parse switch -vv -j4 -sL --option a b --target-host h
	assert_success
	assert_line 'verbose=2'
	assert_line 'substitutes=1'
	assert_line 'target_host=h'
	assert_line 'nix_common=[-v] [-v] [--max-jobs] [4] [--option] [a] [b]'
	assert_line 'nix_build=[--print-build-logs]'
}

@test "options: a bare --flake means '.', and an action after it stays the action" {
	run "$TT" parse --flake switch
	assert_line 'flake=.'
	assert_line 'action=switch'
	run "$TT" parse switch -F /etc/x#h
	assert_line 'flake=/etc/x#h'
	run "$TT" parse switch --flake=/a
	assert_line 'flake=/a'
}

@test "options: dry-run is dry-build" {
	run "$TT" parse dry-run
	assert_line 'action=dry-build'
}

@test "options: unknown options and missing values are usage errors (2)" {
	run -2 "$TT" parse switch --bogus
	assert_output --partial "unrecognized option '--bogus'"
	run -2 "$TT" parse switch --target-host
	assert_output --partial "expected 1 argument"
	run -2 "$TT" parse switch --option onlyone
	assert_output --partial "expected 2 arguments"
	run -2 "$TT" parse frobnicate
	assert_output --partial "invalid choice 'frobnicate'"
}

@test "options: conflicts are refused as ng refuses them" {
	run -2 "$TT" parse switch --store-path /nix/store/x --rollback
	run -2 "$TT" parse build --store-path /nix/store/x
	run -2 "$TT" parse switch --flake . --file f
	run -2 "$TT" parse edit --file f
	run -2 "$TT" parse repl --target-host h
	run -2 "$TT" parse boot --specialisation s
	run -2 "$TT" parse dry-build --rollback
	run -2 "$TT" parse build-image
	run -2 "$TT" parse switch --elevate doas
	run -2 "$TT" parse switch --copy-direct --target-host t
}

@test "options: --rollback with --ask or --magic-rollback is refused, not silently dropped" {
	run -2 "$TT" parse switch --rollback --ask --target-host h
	assert_output --partial "--rollback cannot be used with --ask"
	run -2 "$TT" parse switch --rollback --magic-rollback --target-host h
	assert_output --partial "--rollback cannot be used with --magic-rollback"
	run -0 "$TT" parse switch --rollback --target-host h
}

@test "options: we do more than ng: list-generations on a target, rollback of test/build" {
	run "$TT" parse list-generations --target-host h
	assert_success
	run "$TT" parse test --rollback --target-host h
	assert_success
}

@test "options: every flag passed on to nix takes as many values as nix.c knows it takes" {
	run "$TT" nix-flag-nargs
	assert_success
	assert_line '--option 2 2'
	assert_line '--max-jobs 1 1'
	run awk '$2 != $3' <<<"$output"
	assert_output ''
}

@test "actions: what an action takes is said from the action table" {
	run -2 "$TT" parse list-generations --on a
	assert_output "error(2): --on is for switch, boot, test, build, dry-build and dry-activate"
	run -2 "$TT" parse build --store-path /nix/store/x
	assert_output "error(2): --store-path is only supported with switch, boot, test and dry-activate"
	run -2 "$TT" parse boot --specialisation s
	assert_output "error(2): '--specialisation' can only be used with 'switch', 'test' and 'dry-activate'"
	run -2 "$TT" parse boot --magic-rollback --target-host h
	assert_output "error(2): --magic-rollback is only for 'switch' and 'test'"
	run -2 "$TT" parse list-generations --build-host h
	assert_output "error(2): --build-host is not supported with 'list-generations'"
	run "$TT" parse build --specialisation s
	assert_line "warning: --specialisation has no effect with 'build'"
}

@test "actions: --help and --complete actions list every row of the table" {
	run "${NRR:-$BATS_TEST_DIRNAME/../nixos-rebuild-remote}" --complete actions
	assert_success
	assert_output "$(printf '%s\n' switch boot test build dry-build dry-run dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations)"
	run "${NRR:-$BATS_TEST_DIRNAME/../nixos-rebuild-remote}" --help
	for a in switch boot test build dry-build dry-activate edit repl build-vm build-vm-with-bootloader build-image list-generations; do
		assert_line --regexp "^  $a +[a-z(]"
	done
}

@test "options: deprecated spellings warn and keep their meaning" {
	run "$TT" parse switch --use-remote-sudo --install-grub --fast --no-ssh-tty --no-build-nix
	assert_line 'elevate=1'
	assert_line 'install_bootloader=1'
	assert_line --partial "warning: '--use-remote-sudo' is deprecated"
	assert_line --partial "warning: '--install-grub' is deprecated"
	assert_line --partial "warning: '--fast' is deprecated"
	assert_line --partial "warning: '--no-ssh-tty' is deprecated and has no effect"
}

@test "options: -S alone implies sudo with a warning; --ask-sudo-password is the alias" {
	run "$TT" parse switch -S
	assert_line 'elevate=1'
	assert_line 'ask_password=1'
	assert_line --partial 'implies --elevate=sudo'
	run "$TT" parse switch --ask-sudo-password
	assert_line 'elevate=1'
	assert_line 'ask_password=1'
	run "$TT" parse switch --elevate run0
	assert_line 'elevate=2'
}

@test "options: -Q/--no-link reaches nix-build as --no-build-output" {
	run "$TT" parse build --no-link
	assert_line 'no_build_output=1'
	assert_line 'nix_classic=[--no-build-output]'
}

@test "ssh -G output: user, hostname, port and the user's ControlPath" {
	run "$TT" ssh-config <<<$'host web1\nuser root\nhostname 10.0.0.5\nport 2222\ncontrolpath /home/u/.ssh/cm-abc\n'
	assert_output "ok=1 user=root hostname=10.0.0.5 port=2222 controlpath=/home/u/.ssh/cm-abc"
	run "$TT" ssh-config <<<$'user root\nhostname h\nport 22\ncontrolpath none\n'
	assert_output "ok=1 user=root hostname=h port=22 controlpath="
}

@test "host names that ssh would take as options, or a shell as code, are refused" {
	run "$TT" ssh-check-name root@web1
	assert_success
	for bad in -oProxyCommand=x 'a b' 'a;b' '$(id)' 'a`b`' "a'b"; do
		run "$TT" ssh-check-name "$bad"
		assert_failure 1
		assert_output --regexp "^refused: refusing host name '.*': it (begins with '-'|contains (a space|'.'))$"
	done
}

@test "ssh config hosts for completion: aliases, not patterns, and Includes" {
	run "$TT" ssh-hosts <<<$'Host web1 web2\n  HostName x\nHost *.corp !bad\nInclude conf.d/*\nhost db'
	assert_line 'hosts=[web1] [web2] [db]'
	assert_line 'includes=[conf.d/*]'
}

@test "nix versions: Nix and Lix" {
	run "$TT" nix-version "nix-store (Nix) 2.8.0"
	assert_output "ok=1 2.8.0 lix=0"
	run "$TT" nix-version "nix (Lix, like Nix) 2.91.1"
	assert_output "ok=1 2.91.1 lix=1"
}

@test "nix errors: the summary line, build vs evaluation, unknown flags" {
	run "$TT" nix-error <<<$'warning: x\nerror: builder for \'/nix/store/a.drv\' failed with exit code 1'
	assert_line "builder for '/nix/store/a.drv' failed with exit code 1"
	assert_line 'build=1'
	run "$TT" nix-error <<<$'error: undefined variable \'foo\''
	assert_line 'build=0'
	run "$TT" nix-error <<<$'error: unrecognised flag \'--repair\''
	assert_line 'unknown=--repair'
}

@test "flake references: REF#NAME and the toplevel attribute" {
	run "$TT" flake-split '.#web1'
	assert_output 'ref=. name=web1 attr=.#nixosConfigurations."web1".config.system.build.toplevel'
	run "$TT" flake-split '/etc/nixos'
	assert_output 'ref=/etc/nixos name= attr=/etc/nixos#nixosConfigurations."".config.system.build.toplevel'
}

@test "nix build --json: the out path" {
	run "$TT" build-json <<<'[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/b-sys"}}]'
	assert_output /nix/store/b-sys
}

@test "generations: the rollback of test picks the newest older than current" {
	run env TZ=UTC "$TT" generations <<<$'3\t1767434400\t0\t/nix/store/c\n1\t1767261600\t0\t/nix/store/a\n2\t1767348000\t1\t/nix/store/b\tv\tk\tr\tspec1 '
	assert_line --index 0 '1 2026-01-01 10:00:00'
	assert_line '2 2026-01-02 10:00:00 current'
	assert_line 'previous=1'
}

@test "store query output: the missing paths after the '--' line" {
	run "$TT" query-missing <<<$'hostname=t1\narch=x86_64--\nnix=nix-store (Nix) 2.8.0\n--\n/nix/store/a\n\n/nix/store/b'
	assert_output 'missing=[/nix/store/a] [/nix/store/b]'
	run "$TT" query-missing <<<$'hostname=t1\n--'
	assert_output 'missing='
}

@test "NAR: our archive of a file tree is nix-store --dump's, byte for byte" {
	# what a NAR holds: files (executable or not, empty, one across our 64 KiB pieces),
	# symlinks, directories with entries sorted bytewise (B before a, '-' before '.')
	d=$BATS_TEST_TMPDIR/tree
	mkdir -p "$d/sub/deeper" "$d/empty-dir"
	printf 'hello' >"$d/a"
	chmod +x "$d/a"
	: >"$d/empty"
	printf '12345678' >"$d/eight"
	head -c 70000 /dev/zero | tr '\0' x >"$d/sub/big"
	ln -s ../a "$d/sub/link"
	ln -s /nowhere "$d/dangling"
	: >"$d/B"
	: >"$d/a-b"
	: >"$d/a.b"
	: >"$d/sp ace"
	: >"$d/$(printf '\303\251')"
	"$TT" nar-dump "$d" >"$BATS_TEST_TMPDIR/ours"
	nix-store --dump "$d" >"$BATS_TEST_TMPDIR/theirs"
	cmp "$BATS_TEST_TMPDIR/ours" "$BATS_TEST_TMPDIR/theirs"
	# a single file, and a symlink, are NARs of their own
	"$TT" nar-dump "$d/sub/big" | cmp - <(nix-store --dump "$d/sub/big")
	"$TT" nar-dump "$d/sub/link" | cmp - <(nix-store --dump "$d/sub/link")
}

@test "NAR: one whose size is not the registered one is held back: never more than that size is sent" {
	d=$BATS_TEST_TMPDIR/tree
	mkdir -p "$d"
	head -c 200000 /dev/zero | tr '\0' x >"$d/big"
	size=$(nix-store --dump "$d" | wc -c)
	run -0 "$TT" nar-sized "$d" "$size"
	assert_output "sent $size, ok"
	# registered shorter: stopped before the piece that passes it
	run -0 "$TT" nar-sized "$d" $((size - 8))
	assert_output --regexp "^sent [0-9]+, mismatch: '$d' does not match the store's registration of it \(its NAR's size differs\)$"
	sent=${output#sent }
	sent=${sent%%,*}
	((sent > 0 && sent <= size - 8)) || fail "sent $sent of a NAR registered at $((size - 8))"
	# registered at half: stopped in the middle, not only at the end
	run -0 "$TT" nar-sized "$d" $((size / 2))
	assert_output --partial ", mismatch: "
	sent=${output#sent }
	sent=${sent%%,*}
	((sent <= size / 2)) || fail "sent $sent of a NAR registered at $((size / 2))"
	# registered longer: the last piece is held back, the receiver still waits
	run -0 "$TT" nar-sized "$d" $((size + 8))
	sent=${output#sent }
	sent=${sent%%,*}
	assert_output --partial ", mismatch: "
	((sent < size)) || fail "sent $sent, all of it"
	# a NAR of one piece: nothing of it
	printf 'hello' >"$d/small"
	run -0 "$TT" nar-sized "$d/small" 8
	assert_output --regexp "^sent 0, mismatch: "
}

@test "NAR: a big file's contents go spliced from the file into the pipe: the same bytes; past a registered size, none of it" {
	d=$BATS_TEST_TMPDIR/tree
	mkdir -p "$d/sub"
	printf 'small' >"$d/a"
	# more than a pipe holds: the splice goes on as the reader makes room
	head -c 300000 /dev/urandom >"$d/sub/big"
	# the least that goes spliced
	head -c 65536 /dev/zero >"$d/sub/exact"
	nix-store --dump "$d" >"$BATS_TEST_TMPDIR/theirs"
	size=$(wc -c <"$BATS_TEST_TMPDIR/theirs")
	"$TT" nar-splice "$d" "$size" 2>"$BATS_TEST_TMPDIR/said" | cmp - "$BATS_TEST_TMPDIR/theirs"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/said")" "sent $size (365536 spliced), ok"
	# registered at half: the big file that would pass it is not sent at all
	"$TT" nar-splice "$d" $((size / 2)) 2>"$BATS_TEST_TMPDIR/said" | wc -c >"$BATS_TEST_TMPDIR/count"
	run cat "$BATS_TEST_TMPDIR/said"
	assert_output --regexp "^sent [0-9]+ \(0 spliced\), mismatch: '$d' does not match the store's registration of it"
	sent=$(cat "$BATS_TEST_TMPDIR/count")
	((sent < 1000)) || fail "sent $sent bytes of a NAR registered at $((size / 2)), the big file's first"
}

@test "NAR: what is not a file, a directory or a symlink is refused, named" {
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	run "$TT" nar-dump "$BATS_TEST_TMPDIR"
	assert_failure 1
	assert_output "nar-dump: '$BATS_TEST_TMPDIR/fifo' is not a file, a directory or a symlink"
}

# A store of the test's own (a chroot store: its paths are /nix/store/..., its files under
# $STORE), with four paths: ref, which refers to dep, a file f and a tree a. Sets STORE,
# ASKED (ref's closure and f, what the tests ask for) and EXTRA (a).
export_store() {
	export NIX_CONFIG='build-users-group =
experimental-features = nix-command'
	STORE=$BATS_TEST_TMPDIR/store
	mkdir -p "$BATS_TEST_TMPDIR/a/sub"
	echo hi >"$BATS_TEST_TMPDIR/f"
	head -c 70000 /dev/zero >"$BATS_TEST_TMPDIR/a/sub/big"
	chmod +x "$BATS_TEST_TMPDIR/a/sub/big"
	ln -s sub/big "$BATS_TEST_TMPDIR/a/link"
	local f ref
	f=$(nix-store --store "$STORE" --add "$BATS_TEST_TMPDIR/f")
	EXTRA=$(nix-store --store "$STORE" --add "$BATS_TEST_TMPDIR/a")
	ref=$(nix-instantiate --store "$STORE" --read-write-mode --eval \
		-E 'builtins.toFile "ref" "${builtins.toFile "dep" "d"}"')
	ref=${ref//\"/}
	mapfile -t ASKED < <(nix-store --store "$STORE" -qR "$ref")
	((${#ASKED[@]} == 2)) || fail "ref's closure: ${ASKED[*]}"
	ASKED+=("$f")
}

# The number N of "forward N of M".
forwarded() {
	local n=${output#forward }
	echo "${n%% *}"
}

@test "export check: a whole nix-store --export of the paths asked for passes, in any chunks" {
	export_store
	nix-store --store "$STORE" --export "${ASKED[@]}" "$EXTRA" >"$BATS_TEST_TMPDIR/stream"
	size=$(wc -c <"$BATS_TEST_TMPDIR/stream")
	for chunk in 0 1 3 8 4096; do
		run -0 "$TT" export-check "$chunk" "${ASKED[@]}" "$EXTRA" <"$BATS_TEST_TMPDIR/stream"
		assert_output $'forward '"$size of $size"$'\nok: 4 entries'
	done
	# what was asked but not sent is not the checker's to judge (the destination's next
	# query is): a stream of fewer paths passes, and so does none
	nix-store --store "$STORE" --export "${ASKED[0]}" >"$BATS_TEST_TMPDIR/one"
	run -0 "$TT" export-check 0 "${ASKED[@]}" <"$BATS_TEST_TMPDIR/one"
	assert_line 'ok: 1 entries'
	run -0 "$TT" export-check 0 "${ASKED[@]}" < <(printf '\0\0\0\0\0\0\0\0')
	assert_line 'ok: 0 entries'
}

@test "export check: a path not asked for is refused, named, before its entry is complete" {
	export_store
	# the stranger last (nix-store --export sorts its paths: the streams are joined instead,
	# the first without its end marker): the asked-for entries before it pass
	nix-store --store "$STORE" --export "${ASKED[@]}" >"$BATS_TEST_TMPDIR/asked"
	{ head -c -8 "$BATS_TEST_TMPDIR/asked"; nix-store --store "$STORE" --export "$EXTRA"; } \
		>"$BATS_TEST_TMPDIR/stream"
	size=$(wc -c <"$BATS_TEST_TMPDIR/stream")
	before=$(($(wc -c <"$BATS_TEST_TMPDIR/asked") - 8))
	for chunk in 0 1 5 4096; do
		run -0 "$TT" export-check "$chunk" "${ASKED[@]}" <"$BATS_TEST_TMPDIR/stream"
		assert_line "refused: its export stream holds '$EXTRA', which was not asked for"
		n=$(forwarded)
		# all the asked-for entries, not the stranger's (it ends 8 bytes before the end)
		((n >= before && n < size - 8)) || fail "forwards $n of $size (the stranger's entry: $before to $((size - 8)))"
	done
	# an importer given what would be forwarded registers the asked-for paths, not the stranger
	run ! nix-store --store "$BATS_TEST_TMPDIR/to" --import < <(head -c "$n" "$BATS_TEST_TMPDIR/stream")
	run -0 nix-store --store "$BATS_TEST_TMPDIR/to" --check-validity "${ASKED[@]}"
	run ! nix-store --store "$BATS_TEST_TMPDIR/to" --check-validity "$EXTRA"
	# the stranger first: nothing of its entry is complete, nothing after it goes
	nix-store --store "$STORE" --export "$EXTRA" >"$BATS_TEST_TMPDIR/alone"
	run -0 "$TT" export-check 7 "${ASKED[@]}" < <(head -c -8 "$BATS_TEST_TMPDIR/alone"; cat "$BATS_TEST_TMPDIR/asked")
	assert_line "refused: its export stream holds '$EXTRA', which was not asked for"
	(($(forwarded) < $(wc -c <"$BATS_TEST_TMPDIR/alone") - 8)) || fail "$output"
}

@test "export check: a cut NAR, garbage, a path twice and bytes after the end are refused" {
	export_store
	nix-store --store "$STORE" --export "${ASKED[@]}" >"$BATS_TEST_TMPDIR/stream"
	size=$(wc -c <"$BATS_TEST_TMPDIR/stream")
	# cut in the middle of a NAR: all of it may go (the importer sees it cut), but not whole
	run -0 "$TT" export-check 0 "${ASKED[@]}" < <(head -c $((size / 2)) "$BATS_TEST_TMPDIR/stream")
	assert_line "forward $((size / 2)) of $((size / 2))"
	assert_line --regexp '^refused: its export stream ends before its end marker \(after [0-2] entries\)$'
	# a word of a NAR changed: refused where it is, nothing after it forwarded
	LC_ALL=C sed 's/directory/directorz/; s/regular/rugular/' "$BATS_TEST_TMPDIR/stream" >"$BATS_TEST_TMPDIR/bad"
	run -0 "$TT" export-check 1 "${ASKED[@]}" <"$BATS_TEST_TMPDIR/bad"
	assert_line --regexp '^refused: its export stream is malformed at byte [0-9]+ \(entry 1\): an unknown node type$'
	(($(forwarded) < size / 2)) || fail "$output"
	# garbage: its first number is no entry's start
	run -0 "$TT" export-check 0 "${ASKED[@]}" < <(printf 'hello, world\n')
	assert_output $'forward 7 of 13\nrefused: its export stream is malformed at byte 7 (entry 1): expected the start of an entry or the end'
	# a file's contents (dep's "d") padded with other than zeros
	run -0 "$TT" export-check 0 "${ASKED[@]}" < <(perl -0777 -pe 's/(\x01\0{7}d)\0/$1\x01/' "$BATS_TEST_TMPDIR/stream")
	assert_line --regexp '^refused: its export stream is malformed at byte [0-9]+ \(entry [1-3]\): padding that is not zeros$'
	# a path twice: the second is refused
	run -0 "$TT" export-check 3 "${ASKED[@]}" \
		< <(head -c -8 "$BATS_TEST_TMPDIR/stream"; nix-store --store "$STORE" --export "${ASKED[2]}")
	assert_line "refused: its export stream holds '${ASKED[2]}' twice"
	(($(forwarded) >= size - 8)) || fail "$output"
	# a reference that is not a store path ('e' is not a nix-base32 digit): ref's, to dep
	dep=${ASKED[0]#/nix/store/}
	run -0 "$TT" export-check 0 "${ASKED[1]}" \
		< <(nix-store --store "$STORE" --export "${ASKED[1]}" | perl -pe "s|${dep:0:4}|eeee|g")
	assert_line "refused: its export stream gives '${ASKED[1]}' a reference that is not a store path: '/nix/store/eeee${dep:4}'"
	# bytes after the end marker: all but those
	run -0 "$TT" export-check 0 "${ASKED[@]}" < <(cat "$BATS_TEST_TMPDIR/stream"; printf 'x')
	assert_output $'forward '"$size of $((size + 1))"$'\nrefused: its export stream goes on after its end marker (byte '"$size"')'
}

@test "closure dumps: one system's closure from a fleet's, dependencies first, with sizes" {
	# what nix-store --dump-db prints for a union in dependency order: path, NAR hash,
	# NAR size, deriver, references (count, then each); two systems share glibc
	s=/nix/store
	dump="$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc
1c37d01af40be2e80
100

0
$s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bash
2c37d01af40be2e80
200
$s/dddddddddddddddddddddddddddddddd-bash.drv
2
$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc
$s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bash
$s/cccccccccccccccccccccccccccccccc-zsh
3c37d01af40be2e80
300

1
$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc
$s/11111111111111111111111111111111-system-one
4c37d01af40be2e80
10

1
$s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bash
$s/22222222222222222222222222222222-system-two
5c37d01af40be2e80
20

1
$s/cccccccccccccccccccccccccccccccc-zsh"
	run "$TT" closuredb "$s/11111111111111111111111111111111-system-one" <<<"$dump"
	assert_output "$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc 100
$s/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bash 200
$s/11111111111111111111111111111111-system-one 10"
	run "$TT" closuredb "$s/22222222222222222222222222222222-system-two" <<<"$dump"
	assert_output "$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc 100
$s/cccccccccccccccccccccccccccccccc-zsh 300
$s/22222222222222222222222222222222-system-two 20"
	run "$TT" closuredb "$s/33333333333333333333333333333333-system-three" <<<"$dump"
	assert_output "not in it"
	# a reference outside the dump, a size that is not a number, a cut record
	run "$TT" closuredb "$s/11111111111111111111111111111111-system-one" \
		<<<"$(sed "18s|-glibc\$|-gone|" <<<"$dump")"
	assert_output "not a dump"
	run "$TT" closuredb "$s/11111111111111111111111111111111-system-one" <<<"${dump/200/2x0}"
	assert_output "not a dump"
	run "$TT" closuredb "$s/11111111111111111111111111111111-system-one" <<<"$(head -n 11 <<<"$dump")"
	assert_output "not a dump"

	# a fleet's dump split per host (lib/closuredb.h): each file holds its own system's
	# records alone, as the dump wrote them, in its order; a system not in it gets none
	d=$BATS_TEST_TMPDIR/split
	mkdir -m 700 "$d"
	run -0 "$TT" closuredb-split "$d" "$s/22222222222222222222222222222222-system-two" \
		"$s/33333333333333333333333333333333-system-three" \
		"$s/11111111111111111111111111111111-system-one" <<<"$dump"
	assert_equal "$(ls "$d")" $'0\n2'
	assert_equal "$(cat "$d/2")" "$(sed -n '1,12p;19,24p' <<<"$dump")"
	assert_equal "$(cat "$d/0")" "$(sed -n '1,5p;13,18p;25,30p' <<<"$dump")"
	run "$TT" closuredb "$s/22222222222222222222222222222222-system-two" <"$d/0"
	assert_output "$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc 100
$s/cccccccccccccccccccccccccccccccc-zsh 300
$s/22222222222222222222222222222222-system-two 20"
}

@test "nix-store --serve: our handshake and query, word by word" {
	# magic, version 2.5, QueryValidPaths, lock, no substitution, 2 paths; each path its
	# length and its bytes, zeros up to a multiple of 8
	run "$TT" serve-query /nix/store/a-x /nix/store/bb-yyyyy
	assert_output "eb9d0c3900000000
0502000000000000
0100000000000000
0100000000000000
0000000000000000
0200000000000000
0e00000000000000
2f6e69782f73746f
72652f612d780000
1300000000000000
2f6e69782f73746f
72652f62622d7979
7979790000000000"
}

@test "nix-daemon: greeting, trust, query and one framed import a path, against a scripted daemon of each kind" {
	d=$BATS_TEST_TMPDIR/daemon
	mkdir -p "$d"
	echo first >"$d/a"
	echo second >"$d/b"
	# Nix 2.8 (1.34): it does not say whether it trusts us; the repair of nothing says it
	run -0 "$TT" daemon-chat nix28 "$d"
	assert_line "hello: ok, protocol 1.34, Nix 2.8.0, trusted 1"
	assert_line "daemon: greeting and probe"
	assert_line "daemon: query of 2 paths, substitute 1"
	assert_line "valid: a"
	# every path its own operation, its NAR framed to the announced size, b after a
	assert_line --index 5 "daemon: added a: 0 references, a NAR of 120 bytes"
	assert_line --index 6 "daemon: added b: 1 references, a NAR of 120 bytes"
	assert_line "add: ok"
	assert_line "daemon exit 0"
	# 1.35 says it in the greeting: trusted, or not (then nothing is asked or sent)
	run -0 "$TT" daemon-chat trusting "$d"
	assert_line "hello: ok, protocol 1.35, Nix 2.8.0, trusted 1"
	assert_line "add: ok"
	run -0 "$TT" daemon-chat distrusting "$d"
	assert_line "hello: refused: its nix-daemon does not trust this login"
	assert_line "daemon: the client hung up"
	run -0 "$TT" daemon-chat untrusted-probe "$d"
	assert_line "hello: refused: its nix-daemon does not trust this login"
	assert_line "daemon: the client hung up"
	# before 1.32: nix-store --serve instead
	run -0 "$TT" daemon-chat old "$d"
	assert_line "hello: refused: its nix-daemon speaks protocol 1.31, before 1.32"
	# its error: the first line, without its colours
	run -0 "$TT" daemon-chat failing "$d"
	assert_line "add: failed: its nix-daemon says: hash mismatch importing path"
	assert_line "daemon exit 0"
	# a daemon that talks while it should read is not listened to past 16 MiB: b is
	# big enough to still be on its way when it stops reading
	head -c $((8 << 20)) /dev/zero >"$d/b"
	run -0 "$TT" daemon-chat flooding "$d"
	assert_line "add: failed: its nix-daemon sent more than 16 MiB unasked"
	assert_line "daemon: flooded"
}

@test "closure cache: a deployed system's closure is kept, read back, and refused when tampered with" {
	s=/nix/store
	sys=$s/11111111111111111111111111111111-system-one
	export XDG_CACHE_HOME=$BATS_TEST_TMPDIR/cache
	run "$TT" closurecache get "$sys"
	assert_output "not cached"
	"$TT" closurecache put "$sys" <<<"$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc 100
$sys 10"
	run "$TT" closurecache get "$sys"
	assert_output "$s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc 100
$sys 10"
	f=$XDG_CACHE_HOME/nixos-rebuild-remote/closures/${sys##*/}
	[ "$(stat -c %a "$f")" = 600 ]
	[ "$(stat -c %a "${f%/*}")" = 700 ]
	cp "$f" "$BATS_TEST_TMPDIR/good"
	# a closure without its system, another system's header, a size that is not a
	# number, a path outside the store: each is "not cached"
	sed -i '$d' "$f"
	run "$TT" closurecache get "$sys"
	assert_output "not cached"
	sed "1s|system-one|system-two|" "$BATS_TEST_TMPDIR/good" >"$f"
	run "$TT" closurecache get "$sys"
	assert_output "not cached"
	sed "2s|100|1x0|" "$BATS_TEST_TMPDIR/good" >"$f"
	run "$TT" closurecache get "$sys"
	assert_output "not cached"
	sed "2s|^$s|/tmp|" "$BATS_TEST_TMPDIR/good" >"$f"
	run "$TT" closurecache get "$sys"
	assert_output "not cached"
	# a name that is not a store path is never a file name
	run "$TT" closurecache get "../../etc/passwd"
	assert_output "not cached"
}

@test "closure cache: the newest 256 entries stay; the least recently used go once there are more than 320, at one put in eight" {
	s=/nix/store
	export XDG_CACHE_HOME=$BATS_TEST_TMPDIR/cache
	sys=$s/11111111111111111111111111111111-system-one
	"$TT" closurecache put "$sys" <<<"$sys 10"
	dir=$XDG_CACHE_HOME/nixos-rebuild-remote/closures
	# 318 older entries, entry-1 the oldest; the system's own is read (touched) later
	for i in $(seq 318); do
		touch -d "@$((1000000 + i))" "$dir/entry-$i"
	done
	"$TT" closurecache get "$sys" >/dev/null
	# 320 entries after this put: none goes
	"$TT" closurecache put "$s/22222222222222222222222222222222-system-two" <<<"$s/22222222222222222222222222222222-system-two 1"
	[ "$(ls "$dir" | wc -l)" = 320 ]
	# 321, by a system whose hash begins with z: one put in eight looks (hashes 0-3), not this
	"$TT" closurecache put "$s/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-system-z" <<<"$s/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-system-z 1"
	[ "$(ls "$dir" | wc -l)" = 321 ]
	# 322, by one that looks: back to the newest 256, the systems among them
	"$TT" closurecache put "$s/33333333333333333333333333333333-system-three" <<<"$s/33333333333333333333333333333333-system-three 1"
	[ "$(ls "$dir" | wc -l)" = 256 ]
	[ ! -e "$dir/entry-66" ]
	[ -e "$dir/entry-67" ]
	run "$TT" closurecache get "$sys"
	assert_output "$sys 10"
	[ -e "$dir/22222222222222222222222222222222-system-two" ]
}

@test "platforms: uname -m names (MIPS with its byte order), a derivation's system, builders for a system" {
	run "$TT" platform-of-machine x86_64
	assert_output x86_64-linux
	run "$TT" platform-of-machine arm64
	assert_output aarch64-linux
	run "$TT" platform-of-machine ppc64le
	assert_output powerpc64le-linux
	# uname's mips and mips64 are either byte order; Nix's names tell
	run "$TT" platform-of-machine mips64 little
	assert_output mips64el-linux
	run "$TT" platform-of-machine mips64 big
	assert_output mips64-linux
	run "$TT" platform-of-machine mips little
	assert_output mipsel-linux
	run "$TT" platform-of-machine mips64el little
	assert_output mips64el-linux
	run "$TT" platform-of-machine x86_64 little
	assert_output x86_64-linux
	# a target's word comes ordered already (the deploy's script asks its kernel)
	run "$TT" platform-of-machine mips64el
	assert_output mips64el-linux
	run "$TT" drv-system < <(tail -c +2 "$BATS_TEST_DIRNAME/fuzz/corpus/parsers/drv")
	assert_output riscv64-linux
	# a ] or ) inside a string does not end a list early
	run "$TT" drv-system <<<'Derive([("out","/nix/store/a-x])","","")],[],["/nix/store/b-\"(["],"aarch64-linux","/bin/sh",[],[])'
	assert_output aarch64-linux
	run "$TT" drv-system <<<'Derive([("out"'
	assert_failure 1
	assert_output "no system: not a derivation"
	run "$TT" drv-system <<<'not a derivation'
	assert_failure 1
	assert_output "no system: not a derivation"
	run "$TT" builders-have 'ssh://a x86_64-linux,riscv64-linux - 4; ssh://b aarch64-linux' riscv64-linux
	assert_output yes
	run "$TT" builders-have $'ssh://a x86_64-linux\nssh://b aarch64-linux' riscv64-linux
	assert_output no
	# a machine without systems builds for the local system only
	run "$TT" builders-have 'ssh://riscv64-linux' riscv64-linux
	assert_output no
}

@test "nix --dry-run's lists: derivations to build, paths to fetch and their download" {
	# as Nix 2.8 prints them
	run "$TT" dry-run <<-'EOF'
		these 2 derivations will be built:
		  /nix/store/2qqa0fmx7iywhfv3ngailsp2n3fvax2s-nrr-sw-scratch.drv
		  /nix/store/x2yrh8n89kwb8smrzpzcg09rdh817jw5-nixos-system-t1-25.05.scratch.drv
		these 3 paths will be fetched (0.02 MiB download, 0.10 MiB unpacked):
		  /nix/store/a-x
		  /nix/store/b-y
		  /nix/store/c-z
		building '/nix/store/y.drv'
		  /nix/store/not-in-a-list
	EOF
	assert_output "build=2 fetch=3 download=0.02"
	run "$TT" dry-run <<<'this derivation will be built:
  /nix/store/x.drv'
	assert_output "build=1 fetch=0 download=0.00"
}

@test "--push-to: a binary cache that names no compression is written with zstd; any other URL as given" {
	run "$TT" push-url file:///nix/var/www 'file:///c?priority=10' 's3://b?region=x&compression=xz' \
		'https://c.lan?ls-compression=br' 'file:///c?compression=none' ssh://cache ssh-ng://root@cache \
		'ssh://cache?compress=true' daemon
	assert_output "file:///nix/var/www?compression=zstd
file:///c?priority=10&compression=zstd
s3://b?region=x&compression=xz
https://c.lan?ls-compression=br&compression=zstd
file:///c?compression=none
ssh://cache
ssh-ng://root@cache
ssh://cache?compress=true
daemon"
}

@test "compression: which hosts are near (no compression) and which far" {
	run "$TT" ssh-near localhost 127.0.3.4 10.1.2.3 172.16.0.1 172.32.0.1 192.168.1.9 169.254.1.1 \
		::1 fe80::1 fd00::5 2001:db8::1 8.8.8.8 pi board.local nas.lan x.home.arpa \
		example.org host.example.com ""
	assert_output "localhost near
127.0.3.4 near
10.1.2.3 near
172.16.0.1 near
172.32.0.1 far
192.168.1.9 near
169.254.1.1 near
::1 near
fe80::1 near
fd00::5 near
2001:db8::1 far
8.8.8.8 far
pi near
board.local near
nas.lan near
x.home.arpa near
example.org far
host.example.com far
 far"
}

@test "a run's private directories go to the user's own runtime directory, else TMPDIR, else /tmp" {
	run_dir=$BATS_TEST_TMPDIR/run tmp=$BATS_TEST_TMPDIR/tmp
	mkdir -m 0700 "$run_dir" "$tmp"
	# the runtime directory: ours and closed to others (the XDG spec's promise)
	run -0 env XDG_RUNTIME_DIR="$run_dir" TMPDIR="$tmp" "$TT" rundir nrr 60
	assert_output --regexp "^$run_dir/nrr\.[A-Za-z0-9]{6}\$"
	[ "$(stat -c %a "$output")" = 700 ]
	# open to others, a link, not absolute, or too long for a socket: TMPDIR
	chmod 0755 "$run_dir"
	run -0 env XDG_RUNTIME_DIR="$run_dir" TMPDIR="$tmp" "$TT" rundir nrr 60
	assert_output --regexp "^$tmp/nrr\.[A-Za-z0-9]{6}\$"
	chmod 0700 "$run_dir"
	ln -s "$run_dir" "$BATS_TEST_TMPDIR/link"
	run -0 env XDG_RUNTIME_DIR="$BATS_TEST_TMPDIR/link" TMPDIR="$tmp" "$TT" rundir nrr 60
	assert_output --regexp "^$tmp/"
	run -0 env XDG_RUNTIME_DIR=run TMPDIR="$tmp" "$TT" rundir nrr 60
	assert_output --regexp "^$tmp/"
	run -0 env XDG_RUNTIME_DIR="$run_dir" TMPDIR="$tmp" "$TT" rundir nrr 3
	assert_output --regexp "^/tmp/nrr\.[A-Za-z0-9]{6}\$"
	rmdir "$output"
	# no limit: wherever the runtime directory is
	run -0 env XDG_RUNTIME_DIR="$run_dir" TMPDIR="$tmp" "$TT" rundir nrr-closures 0
	assert_output --regexp "^$run_dir/nrr-closures\."
	# TMPDIR where it cannot be made: /tmp
	run -0 env -u XDG_RUNTIME_DIR TMPDIR="$BATS_TEST_TMPDIR/none" "$TT" rundir nrr 60
	assert_output --regexp "^/tmp/nrr\."
	rmdir "$output"
}

@test "a stream read by one that empties its buffer after each piece comes in pieces of up to 128 KiB, not of the buffer's first size" {
	head -c 1048576 /dev/zero >"$BATS_TEST_TMPDIR/stream"
	run -0 "$TT" drain-pieces <"$BATS_TEST_TMPDIR/stream"
	[[ $output =~ ^reads=([0-9]+)\ most=([0-9]+)$ ]] || fail "$output"
	# 2 KiB, 8 KiB, 32 KiB, then 128 KiB a read: 11 reads, where 2 KiB a read took 513
	((BASH_REMATCH[2] >= 65536 && BASH_REMATCH[1] <= 16)) || fail "$output"
}

@test "a started command that the kernel refuses to exec is named with the reason, not a later exit status" {
	printf '\177ELF, but not one' >"$BATS_TEST_TMPDIR/not-a-program"
	chmod +x "$BATS_TEST_TMPDIR/not-a-program"
	run -0 "$TT" spawn "$BATS_TEST_TMPDIR/not-a-program"
	assert_output "start: cannot run '$BATS_TEST_TMPDIR/not-a-program': Exec format error"
	run -0 "$TT" spawn /bin/sh -c 'exit 3'
	assert_output "status 3"
}

@test "a started command gets /dev/null for what it reads and writes nothing of ours, and no other fd" {
	run -0 --separate-stderr "$TT" spawn /bin/sh -c \
		'fds=$(ls /proc/$$/fd); to=$(readlink /proc/$$/fd/0 /proc/$$/fd/1); echo $fds - $to >&2'
	assert_output "status 0"
	# the shell's own: 0-2, and the pipe of the $(...) being read (3)
	assert_equal "$stderr" "0 1 2 3 - /dev/null /dev/null"
}

@test "a fiber's wait outlives a stop and a continue of its process (Ctrl-Z, fg): no interrupt" {
	"$TT" fiber-stopped >"$BATS_TEST_TMPDIR/out" &
	local pid=$!
	for _ in $(seq 100); do
		grep -q ready "$BATS_TEST_TMPDIR/out" && break
		sleep 0.1
	done
	sleep 0.3
	kill -STOP "$pid"
	sleep 0.1
	kill -CONT "$pid"
	wait "$pid"
	run cat "$BATS_TEST_TMPDIR/out"
	# (epoll_wait(2) fails with EINTR after a stop and SIGCONT, poll(2) resumes: signal(7))
	assert_output $'ready\nfiber: read its line'
}

@test "a command started after an interrupt (to clean up) runs to its end: only one started as the signal came is stopped" {
	run -0 "$TT" spawn-interrupted /bin/sh -c 'sleep 0.3; exit 3'
	assert_output "interrupted 2, status 3"
}
