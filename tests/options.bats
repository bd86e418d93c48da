#!/usr/bin/env bats
# Parity with nixos-rebuild-ng's command line: every option it has is
# accepted (here with dry-build, which changes nothing), and the flags that
# nixos-rebuild passes through reach the nix calls ng gives them to.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1 b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" opts
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
}

# The option list of nixos-rebuild-ng (tab separated: long, short, nargs).
ng_options() {
	cat "$BATS_TEST_DIRNAME/ng-options.txt"
}

# The words to test option $1 with, in a dry-build of t1.
words_for() {
	case $1 in
	--max-jobs | --cores) echo "$1 1" ;;
	--log-format) echo "$1 raw" ;;
	--option) echo "$1 cores 1" ;;
	--builders) echo "$1 ''" ;;
	--include) echo "$1 nixpkgs=/nonexistent" ;;
	--update-input) echo "$1 nothing" ;;
	--override-input) echo "$1 nothing $F" ;;
	--file) echo "--file $F/default.nix --attr t1" ;;
	--attr) echo "--file $F/default.nix --attr t1" ;;
	--flake) echo "--flake $F#t1" ;;
	--no-flake) echo "--no-flake --file $F/default.nix --attr t1" ;;
	--profile-name) echo "$1 other" ;;
	--specialisation) echo "$1 spec1" ;;
	--elevate) echo "$1 sudo" ;;
	--build-host | --target-host) echo "$1 t1" ;;
	--image-variant) echo "$1 qcow" ;;
	--store-path | --rollback | --help | --commit-lock-file) ;;
	*) echo "$1" ;;
	esac
}

@test "every nixos-rebuild-ng option is accepted with dry-build" {
	local failed=()
	while IFS=$'\t' read -r long short nargs; do
		words=$(words_for "$long")
		[ -n "$words" ] || continue
		case " $words " in *" --flake "* | *" --file "*) ;; *) words="$words --flake $F#t1" ;; esac
		eval "set -- $words"
		if ! out=$(fleet_local "$NRR" dry-build "$@" 2>&1); then
			failed+=("$long: $(tail -n 2 <<<"$out")")
		fi
	done < <(ng_options)
	((${#failed[@]} == 0)) || fail "$(printf '%s\n' "${failed[@]}")"
}

@test "every short option of ng is accepted too" {
	run nrr dry-build -F "$F#t1" -v -j 1 -k -K -L -Q -s -p other -c spec1
	assert_success
	run nrr dry-build --flake "$F#t1" -I nixpkgs=/nonexistent
	assert_success
}

@test "the options ng refuses with dry-build are refused (exit 2), as ng does" {
	run nrr dry-build --flake "$F#t1" --store-path /nix/store/x
	assert_failure 2
	run nrr dry-build --flake "$F#t1" --rollback
	assert_failure 2
}

@test "a flag this Nix does not know is dropped with a warning naming it" {
	run nrr dry-build --flake "$F#t1" --repair
	assert_success
	assert_output --partial "warning: this machine's nix does not know '--repair': dropped it"
}

@test "pass-through flags reach local builds; -I and --builders never reach the remote nix-store" {
	printf 'pass-%s\n' "$RANDOM" >"$F/tag"
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1 -v \
		--option cores 1 -j 1 -I nixpkgs=/nonexistent --builders '' --show-trace
	assert_success
	# local evaluation: everything
	assert_output --regexp "'nix' .*'path-info' '--derivation' .*'--option' 'cores' '1' '--max-jobs' '1' '--include' 'nixpkgs=/nonexistent' '--builders' '' '--show-trace'"
	# the remote realise gets the common flags only
	run fleet_command_log b1
	assert_output --regexp "'--option' 'cores' '1' '--max-jobs' '1'"
	refute_output --partial "nixpkgs=/nonexistent"
	refute_output --partial "--show-trace"
}

@test "lock-file and flake evaluation flags stay local" {
	printf 'lock-%s\n' "$RANDOM" >"$F/tag"
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1 -v --refresh --no-write-lock-file --impure
	assert_success
	assert_output --regexp "'path-info' .*'--refresh' '--no-write-lock-file' '--impure'"
	run fleet_command_log b1
	refute_output --partial -- "--refresh"
	refute_output --partial -- "--impure"
}

@test "-s asks the target to use its own substituters first" {
	printf 'subst-%s\n' "$RANDOM" >"$F/tag"
	# t1's own cache (a file cache it reads through /run/fleet) holds the system's package,
	# signed with a key t1 trusts; a path t1 fetched from there keeps that signature, one we
	# pushed has none
	sw=$(fleet_local nix-store -qR "$(toplevel t1)" | grep nrr-sw)
	fleet_local nix-store --generate-binary-cache-key subst-1 "$PWD/sk" "$PWD/pk"
	fleet_local nix copy --to "file://$FLEET_DIR/subst-cache?secret-key=$PWD/sk" "$sw"
	fleet_exec t1 cp /etc/nix/nix.conf /etc/nix/nix.conf.before-s
	fleet_exec t1 sh -c "printf 'substituters = file:///run/fleet/subst-cache\ntrusted-public-keys = %s\n' \
		'$(cat pk)' >>/etc/nix/nix.conf"
	# (its nix-daemon, which the copy goes to, reads nix.conf when it starts)
	fleet_daemon_restart t1
	run nrr switch --flake "$F#t1" --target-host t1 -s
	fleet_exec t1 mv /etc/nix/nix.conf.before-s /etc/nix/nix.conf
	fleet_daemon_restart t1
	assert_success
	run fleet_exec t1 nix path-info --sigs "$sw"
	assert_output --regexp "^$sw	.*subst-1:"
}

@test "--diff shows what changes on the target before activating" {
	printf 'diff1\n' >"$F/tag"
	nrr switch --flake "$F#t1" --target-host t1
	printf 'diff2\n' >"$F/tag"
	run nrr switch --flake "$F#t1" --target-host t1 --diff
	assert_success
	assert_output --regexp "nixos-system-t1 +25\.05\.diff1 -> 25\.05\.diff2"
}

@test "--help, --version and no action" {
	run "$NRR" --help
	assert_success
	assert_output --partial "usage: nixos-rebuild-remote"
	run "$NRR" --version
	assert_success
	assert_output --regexp '^nixos-rebuild-remote [0-9]'
	run "$NRR"
	assert_success
	assert_output --partial "usage: nixos-rebuild-remote"
}

@test "the deprecated spellings warn as ng's do" {
	run nrr dry-build --flake "$F#t1" --fast --no-build-nix --install-grub --use-remote-sudo --no-ssh-tty
	assert_success
	assert_output --partial "warning: '--fast' is deprecated, use '--no-reexec' instead"
	assert_output --partial "warning: '--use-remote-sudo' is deprecated, use '--sudo' instead"
}

@test "NIX_SUDOOPTS words go after sudo" {
	NIX_SUDOOPTS="--preserve-env=FOO -H" run nrr switch --flake "$F#t1" --target-host t1 --sudo -v
	run fleet_command_log t1
	assert_output --partial "'sudo' '--preserve-env=FOO' '-H' '--' '/bin/sh'"
}
