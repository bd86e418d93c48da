#!/usr/bin/env bats
# A fleet's children (--on), without hosts: the command line each is given (what the option
# table marks OF_FLEET, then what the fleet decides for all), the report lines each writes and
# the fleet reads (lib/fleetproto.c), and an interrupt that reaches every one of them; the
# cache route's push, which runs beside them in a copy of the fleet (lib/async.h, lib/fleetpush.h).

bats_require_minimum_version 1.5.0

setup() {
	load lib/common
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
}

@test "every option that shapes a host's deploy reaches its child, as it was given" {
	run "$TT" fleet-child-argv switch --on t1 --json --parallel 3 -k --flake . \
		--debug -vv --quiet --profile-name p -c spec1 --install-bootloader --install-grub \
		--magic-rollback --confirm-timeout 9 --no-validate --use-substitutes=auto -s \
		--substitute-on-destination -j 4 --cores 2 --log-format bar -K --fallback --repair \
		--option a b
	assert_success
	expected=(/proc/self/exe switch --store-path /nix/store/x --target-host t1 --progress-fd 3
		--debug --verbose --verbose --quiet --profile-name p --specialisation spec1
		--install-bootloader --install-grub --magic-rollback --confirm-timeout 9 --no-validate
		--use-substitutes=auto --use-substitutes --substitute-on-destination --max-jobs 4
		--cores 2 --log-format bar --keep-failed --fallback --repair --option a b
		--elevate none --diff)
	assert_output "$(printf '%s\n' "${expected[@]}")"
}

@test "what the fleet decides stays the fleet's: password, elevation, diff, --ask, --yes" {
	run "$TT" fleet-child-argv test --on t1 -S --ask --no-diff
	assert_success
	assert_output "$(printf '%s\n' /proc/self/exe test --store-path /nix/store/x --target-host t1 \
		--progress-fd 3 --elevate sudo --diff --ask)"
	run "$TT" fleet-child-argv test --on t1 --ask --yes --no-diff --target-user deploy
	assert_success
	assert_output "$(printf '%s\n' /proc/self/exe test --store-path /nix/store/x --target-host t1 \
		--progress-fd 3 --elevate none --diff)"
}

@test "report lines: each kind parsed (a phase with its time, or none), a result read and written back the same, others ignored" {
	run "$TT" fleet-proto <<-'EOF'
		phase connect
		phase check 12345.678901
		phase copy soon
		phasex nothing
		say  two spaces
		diff {"added":[]}
		diff {
		ask
		result {"status":12,"step":"activate","message":"it \"failed\"","storePath":"/nix/store/x","genBefore":3,"genAfter":0,"bytes":123,"fetchBytes":5}
		result {"status":0,"genBefore":1,"genAfter":2,"bytes":0}
		hello
	EOF
	assert_success
	assert_output - <<-'EOF'
		phase [connect] at 0.000
		phase [check] at 12345.679
		phase [copy] at 0.000
		other
		say [ two spaces]
		diff json
		diff bad
		ask
		result status=12 step=activate message=[it "failed"] gen=3..0 bytes=123 fetched=1:5 path=/nix/store/x
		result {"status":12,"step":"activate","message":"it \"failed\"","storePath":"/nix/store/x","genBefore":3,"genAfter":0,"bytes":123,"fetchBytes":5}
		result status=0 step= message=[] gen=1..2 bytes=0 fetched=0:0 path=
		result {"status":0,"genBefore":1,"genAfter":2,"bytes":0}
		other
	EOF
}

@test "an interrupt stops every child, however many run (300)" {
	run "$TT" fleet-interrupt 300
	assert_success
	assert_output $'tracked 300\nstopped 300 of 300\ntracked 0'
}

@test "a child gets our caught signals and SIGPIPE back as defaults; what our parent ignored stays ignored" {
	run -0 "$TT" fleet-child-signals
	ours=$(sed -n 's/^ours SigIgn:[[:space:]]*//p' <<<"$output")
	ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' <<<"$output")
	cgt=$(sed -n 's/^SigCgt:[[:space:]]*//p' <<<"$output")
	[ -n "$ours" ] && [ -n "$ign" ] && [ -n "$cgt" ]
	# what we were started with ignored, and SIGQUIT (3), ignored before our start here;
	# not SIGHUP (1), SIGINT (2), SIGPIPE (13), SIGTERM (15): ours, back to their defaults
	[ "$((0x$ign))" = "$(((0x$ours | 0x4) & ~0x5003))" ] ||
		fail "child's SigIgn $ign, ours $ours"
	# nothing caught
	[ "$((0x$cgt))" = 0 ] || fail "child's SigCgt $cgt"
}

@test "fibers: each runs until it would wait, on a stdin and a stderr of its own, which the commands it starts inherit; ours stay ours" {
	run --separate-stderr "$TT" fleet-fibers 3
	assert_success
	# (where lib/fiber.c switches with swapcontext, not on x86-64, the sanitizer build's ASan
	# says once, at the first switch, on that fiber's stderr, that it follows swapcontext only
	# with the annotations lib/fiber.c gives it: not ours to check)
	output=$(grep -v "^==[0-9]*==WARNING: ASan doesn't fully support makecontext/swapcontext" <<<"$output")
	# every fiber waited for its line before any got one: none blocked the others
	[ "$(sed -n 1,3p <<<"$output" | sort)" = $'0 waits\n1 waits\n2 waits' ]
	# and what no epoll watches (its stdout, /dev/null; its stderr, a memfd) was ready at once
	[ "$(sed -n 4,6p <<<"$output" | sort)" = $'0 got line 0, 2 ready\n1 got line 1, 2 ready\n2 got line 2, 2 ready' ]
	[ "$(sed -n 7,9p <<<"$output" | sort)" = $'0 ends\n1 ends\n2 ends' ]
	# each one's status is its own, its stderr holds its own lines and its sh's only
	for i in 0 1 2; do
		assert_line "fiber $i returned $i; its stderr:"
		[ "$(grep -A2 "^fiber $i returned" <<<"$output" | tail -n 2)" = \
			"fiber $i: its own stderr"$'\n'"sh of $i, on the stderr it inherited" ]
	done
	[ "$stderr" = "outside: our stderr" ]
}

@test "a copy of us (async): our children and fds are not its, it says what it does through its socket, its status is proc's" {
	run "$TT" fleet-async
	assert_success
	# the copy forgot our child (an interrupt there reaches only its own) and closed our pipe;
	# stdout stays; we still track our child, not the copy, once waited for
	assert_output $'children 0, our pipe closed, stdout open\nstatus 7, ours 1'
}

@test "the push's lines: warnings, the key, a failure with its hint; a line is taken when whole" {
	run "$TT" fleet-push-lines < <(printf '%s\n' 'x the cache is slow' 'k lan-cache-1:AbC+/=' \
		"e 6"$'\t'"writing the cache 'file:///c' on 'c' failed: no space"$'\t'"free some" 'other' &&
		printf 'x cut sh')
	assert_success
	assert_output "key lan-cache-1:AbC+/=
warning the cache is slow
status 6
message writing the cache 'file:///c' on 'c' failed: no space
hint free some
left 8"
	# no key ("-"), no hint, a status that is not one
	run "$TT" fleet-push-lines < <(printf '%s\n' 'k -' "e x"$'\t'"it stopped")
	assert_output $'key (none)\nstatus 1\nmessage it stopped\nhint \nleft 0'
}
