#!/usr/bin/env bats
# Hostile input, end to end: flake references, configuration names, host names, profile names,
# specialisation names and NIX_SSHOPTS made of spaces, quotes, `;`, `&&`, `$(...)`, backticks,
# newlines, globs, leading dashes, thousands of characters and bytes that are not UTF-8. Each is
# refused with a one-line `error:` (exit 2, or the status the manual gives for the step that
# refuses it), or reaches its destination byte for byte. None ever runs a command: each word
# that could tries to leave a canary file (see no_canary), in the syntax of sh, bash, zsh or
# fish, here or on a host, and no canary may appear.

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run --separate-stderr
bats_require_minimum_version 1.5.0

# What injected commands try to run. Relative paths land in the working directory: this test's
# directory here, the login user's home (in $FLEET_DIR) on a host. /run/fleet is $FLEET_DIR,
# which every namespace sees. Profile names cannot hold a `/`: they get the relative one.
CAN_ABS='touch /run/fleet/canary/nrr-canary /tmp/nrr-canary'
CAN_REL='touch nrr-canary'

setup_file() {
	load lib/common
	fleet_start t1 t2 t3 b1
	export F=$BATS_FILE_TMPDIR/flake
	flake_copy "$F" hostile
	mkdir -m 1777 "$FLEET_DIR/canary"
	# Names that are not fleet hosts resolve to an address of the fleet's network where nothing
	# listens, not through DNS.
	local t1
	t1=$(fleet_addr t1)
	cp "$FLEET_DIR/ssh_config" "$BATS_FILE_TMPDIR/ssh_config"
	printf 'Host *\n  HostName %s.250\n' "${t1%.*}" >>"$BATS_FILE_TMPDIR/ssh_config"
	export NIX_SSHOPTS="-F $BATS_FILE_TMPDIR/ssh_config"
	# A flake reference that is not a path would make nix fetch the global registry.
	printf '{"flakes":[],"version":2}\n' >"$BATS_FILE_TMPDIR/registry.json"
	export NIX_CONFIG="$NIX_CONFIG
flake-registry = $BATS_FILE_TMPDIR/registry.json"
	# On t2 the fish user may make system profiles and run the (fake) activation.
	fleet_exec t2 sh -c 'mkdir -p /nix/var/nix/profiles/system-profiles &&
		chown fishy /nix/var/nix/profiles/system-profiles &&
		: >/run/nrr-activations && chmod 0666 /run/nrr-activations'
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	nrr() { nrr_within 30 "$@"; }
	cd "$BATS_TEST_TMPDIR" || return
}

teardown() {
	user_masters_stop
}

# The loops over hostile words run the tool once per word against the same host: through the
# user's own persistent ControlMaster (which the tool uses as it is, tests/access.bats), so that
# a word costs a session, not a handshake. The words still reach the remote login shell the
# same way: every session goes through it.
user_masters() {
	cp "$BATS_FILE_TMPDIR/ssh_config" "$BATS_TEST_TMPDIR/cfg"
	printf 'Host *\n  ControlMaster auto\n  ControlPath %s/cm-%%C\n  ControlPersist 60\n' \
		"$BATS_TEST_TMPDIR" >>"$BATS_TEST_TMPDIR/cfg"
	export NIX_SSHOPTS="-F $BATS_TEST_TMPDIR/cfg"
	MASTERS=("$@")
}

user_masters_stop() {
	local m
	for m in ${MASTERS[@]+"${MASTERS[@]}"}; do
		fleet_local ssh -F "$BATS_TEST_TMPDIR/cfg" -O exit "$m" 2>/dev/null || true
	done
	MASTERS=()
}

# Fails if an injected command ran anywhere: a file named nrr-canary* here, in a host user's
# home, in /run/fleet/canary, or in a host's own /tmp.
no_canary() {
	local hits h
	hits=$(find "$FLEET_DIR" "$BATS_TEST_TMPDIR" -name 'nrr-canary*' 2>/dev/null)
	for h in t1 t2 t3 b1; do
		hits+=$(fleet_exec "$h" find /tmp -maxdepth 1 -name 'nrr-canary*')
	done
	[ -z "$hits" ] || fail "an injected command ran: $hits"
}

# Sets WORDS to the hostile words, each of which tries to run the command $1 in some shell, or
# would come out changed from careless quoting.
hostile_words() {
	local c=$1
	WORDS=(
		'sp ace' "q'uote" 'dq"uote' 'back\slash\' 'tab	tab'
		"semi;$c" "ops&&$c||$c|$c&$c" 'redir>nrr-canary<x'
		"sub\$($c)" "tick\`$c\`" "fish($c)" 'brace;{touch,nrr-canary}' "=($c)" "<($c)"
		"sq'; $c; '" "dq\"; $c; \"" "esc\\'; $c; #"
		'glob*?[ab]' '~root{a,b}' '#hash' '$HOME${HOME}$fish_pid' '%s%n%x^caret'
		'-lead' '--help'
		$'\xff\xfe\x80'
		"$(printf 'L%.0s' {1..200})"
	)
}

# The tool's own error line: the last line that starts with "error: ", with nothing after it
# but a "hint: " line.
tool_error() {
	local n=${#lines[@]} last
	last=${lines[n - 1]-}
	case $last in hint:*) last=${lines[n - 2]-} ;; esac
	case $last in
	"error: "*) printf '%s\n' "$last" ;;
	*) echo "no one-line error at the end of: $output" >&2; return 1 ;;
	esac
}

# The number of switch-to-configuration calls host $1 has recorded.
activations() {
	fleet_exec "$1" sh -c 'cat /run/nrr-activations 2>/dev/null | wc -l'
}

# True if $1 is one of the following arguments.
one_of() {
	local x=$1
	shift
	for w; do [ "$x" = "$w" ] && return 0; done
	return 1
}

# --- profile names ---

@test "hostile profile names become exactly that profile on the target (root, bash)" {
	retag prof
	want=$(toplevel t1)
	hostile_words "$CAN_REL"
	user_masters t1
	expect=()
	for name in "${WORDS[@]}"; do
		# the system built once (toplevel): each name costs a deploy, not an evaluation
		run nrr boot --store-path "$want" --target-host t1 -p "$name"
		[ "$status" = 0 ] || fail "-p '$name': exit $status: $output"
		got=$(fleet_exec t1 readlink -e "/nix/var/nix/profiles/system-profiles/$name") ||
			fail "-p '$name' did not make that profile"
		[ "$got" = "$want" ] || fail "-p '$name' points to '$got', not '$want'"
		expect+=("$name" "$name-1-link")
	done
	# and nothing else: no name was split, cut short or re-encoded on the way
	got=$(fleet_exec t1 find /nix/var/nix/profiles/system-profiles -mindepth 1 -maxdepth 1 \
		-printf '%f\n' | LC_ALL=C sort)
	assert_equal "$got" "$(printf '%s\n' "${expect[@]}" | LC_ALL=C sort)"
	run last_activation t1
	assert_output --partial "boot $want/bin/switch-to-configuration"
	no_canary
}

@test "hostile profile names become exactly that profile with fish as the login shell" {
	retag fishprof
	want=$(toplevel t2)
	hostile_words "$CAN_REL"
	user_masters fishy@t2
	for name in "${WORDS[@]}"; do
		run nrr boot --store-path "$want" --target-host fishy@t2 -p "$name"
		[ "$status" = 0 ] || fail "fishy, -p '$name': exit $status: $output"
		got=$(fleet_exec t2 readlink -e "/nix/var/nix/profiles/system-profiles/$name") ||
			fail "fishy, -p '$name' did not make that profile"
		[ "$got" = "$want" ] || fail "fishy, -p '$name' points to '$got', not '$want'"
	done
	run last_activation t2
	assert_output --partial "boot $want/bin/switch-to-configuration"
	assert_output --partial "uid=1501"
	no_canary
}

@test "list-generations reads hostile profile names literally, with bash and with fish" {
	retag lg
	want=$(toplevel t3)
	fleet_seed t3 "$want"
	hostile_words "$CAN_REL"
	# the links nix-env --set makes: NAME -> NAME-1-link -> the system
	printf '%s\0' "${WORDS[@]}" | fleet_exec t3 sh -c '
		mkdir -p /nix/var/nix/profiles/system-profiles && cd /nix/var/nix/profiles/system-profiles &&
		xargs -0 sh -c "for n; do ln -s -- \"\$0\" \"./\$n-1-link\" && ln -s -- \"\$n-1-link\" \"./\$n\"; done" "$1"
	' sh "$want"
	user_masters root@t3 fishy@t3
	for user in root fishy; do
		for name in "${WORDS[@]}"; do
			# The fleet's sshd runs its ForceCommand through the login shell, which hands the
			# command on in SSH_ORIGINAL_COMMAND: fish, in the C locale the hosts have,
			# re-encodes bytes that are not UTF-8 in the environment it passes on. sshd alone
			# gives fish the command as an argument, which fish keeps as it is.
			[ "$user" = fishy ] && [ "$name" = $'\xff\xfe\x80' ] && continue
			run --separate-stderr nrr list-generations --json --target-host "$user@t3" -p "$name"
			[ "$status" = 0 ] || fail "$user, -p '$name': exit $status: $stderr"
			got=$(printf '%s' "$output" | jq -r '.[] | "\(.generation) \(.current) \(.storePath)"')
			[ "$got" = "1 true $want" ] || fail "$user, -p '$name': listed '$got'"
		done
	done
	# a hostile profile that does not exist is reported, not run
	run nrr list-generations --target-host t3 -p "nope\$($CAN_REL)"
	assert_failure 1
	run tool_error
	assert_output "error: cannot list the generations of '/nix/var/nix/profiles/system-profiles/nope\$($CAN_REL)' on 't3': no profile /nix/var/nix/profiles/system-profiles/nope\$($CAN_REL)"
	no_canary
}

@test "a profile name too long for the file system fails on one line and changes nothing" {
	retag longprof
	before=$(profile_of t1) acts=$(activations t1)
	long=$(printf 'p%.0s' {1..10000})
	run nrr switch --flake "$F#t1" --target-host t1 -p "$long"
	one_of "$status" 2 8 || fail "exit $status: $output"
	run tool_error
	assert_output --regexp "^error: .*'[^']*pppppppp"
	[ "$(profile_of t1)" = "$before" ]
	[ "$(activations t1)" = "$acts" ]
}

@test "a newline in a profile name is refused or kept in the name: it cannot pass for other settings" {
	retag nlprof
	want=$(toplevel t1)
	nrr switch --flake "$F#t1" --target-host t1
	before=$(profile_of t1) acts=$(activations t1)
	name=$'work\nspec1'
	run nrr switch --flake "$F#t1" --target-host t1 -p "$name"
	if [ "$status" = 0 ]; then
		got=$(fleet_exec t1 readlink -e "/nix/var/nix/profiles/system-profiles/$name") ||
			fail "exit 0, but no profile named 'work<newline>spec1'; activated: $(last_activation t1)"
		[ "$got" = "$want" ]
		run last_activation t1
		assert_output --regexp "^switch $want/bin/switch-to-configuration .*config=t1( |$)"
	else
		[ "$status" = 2 ] || fail "exit $status, neither 0 nor 2: $output"
		tool_error >/dev/null
		[ "$(profile_of t1)" = "$before" ]
		[ "$(activations t1)" = "$acts" ]
	fi
}

# --- specialisation names ---

@test "hostile specialisation names are looked up literally (exit 7), or refused as paths (exit 2); nothing changed" {
	retag spec
	nrr switch --flake "$F#t1" --target-host t1
	before=$(profile_of t1) acts=$(activations t1) want=$(toplevel t1)
	hostile_words "$CAN_ABS"
	user_masters t1
	for name in "${WORDS[@]}"; do
		# the system built once: each name costs a deploy, not an evaluation
		run nrr switch --store-path "$want" --target-host t1 -c "$name"
		err=$(tool_error)
		if [[ $name == */* ]]; then
			# a name with a slash would be a path into the system
			[ "$status" = 2 ] || fail "-c '$name': exit $status: $output"
			[ "$err" = "error: --specialisation '$name': must be a name, not a path" ] ||
				fail "-c '$name': $err"
			continue
		fi
		[ "$status" = 7 ] || fail "-c '$name': exit $status: $output"
		[ "$err" = "error: 't1': specialisation '$name' does not exist" ] || fail "-c '$name': $err"
	done
	# 10,000 characters: the same, the message cut short
	run nrr switch --flake "$F#t1" --target-host t1 -c "$(printf 's%.0s' {1..10000})"
	assert_failure 7
	run tool_error
	assert_output --regexp "^error: 't1': specialisation 'sssss"
	[ "$(profile_of t1)" = "$before" ]
	[ "$(activations t1)" = "$acts" ]
	no_canary
}

@test "a path is not a specialisation name: '..' and its kind change nothing" {
	retag specpath
	nrr switch --flake "$F#t1" --target-host t1
	before=$(profile_of t1) acts=$(activations t1)
	for name in .. . spec1/.. ../specialisation/spec1 ../../ /; do
		run nrr test --flake "$F#t1" --target-host t1 -c "$name"
		one_of "$status" 2 7 || fail "-c '$name': exit $status: $output"
		tool_error >/dev/null
		[ "$(activations t1)" = "$acts" ] || fail "-c '$name' activated: $(last_activation t1)"
	done
	[ "$(profile_of t1)" = "$before" ]
}

@test "a newline in a specialisation name cannot pass for other settings" {
	retag nlspec
	nrr switch --flake "$F#t1" --target-host t1
	acts=$(activations t1)
	# the line after the specialisation's is NIXOS_INSTALL_BOOTLOADER's
	run nrr test --flake "$F#t1" --target-host t1 -c $'spec1\n1'
	one_of "$status" 2 7 || fail "exit $status: $output; activated: $(last_activation t1)"
	tool_error >/dev/null
	[ "$(activations t1)" = "$acts" ]
}

# --- configuration names and flake references ---

@test "hostile configuration names are refused (exit 2) or not found (exit 4), never run" {
	hostile_words "$CAN_ABS"
	WORDS+=($'nl\nx' "ctl$(printf '\001')x" "$(printf 'c%.0s' {1..10000})" 'a#b')
	for name in "${WORDS[@]}"; do
		run nrr build --no-link --flake "$F#$name"
		case $status in
		2) err=$(tool_error) && [[ $err == "error: refusing configuration name "* ]] ||
			fail "'$name': exit 2: $output" ;;
		4) err=$(tool_error) && [[ $err == "error: evaluating '$F#nixosConfigurations."* ]] ||
			fail "'$name': exit 4: $output" ;;
		*) fail "'$name': exit $status: $output" ;;
		esac
	done
	no_canary
}

@test "configurations with hostile names that exist are built, names byte for byte" {
	G=$BATS_TEST_TMPDIR/named
	flake_copy "$G" named
	names=("q'uote" 'sp ace' "semi;$CAN_ABS" "and&&$CAN_REL" 'glob*?' '-lead' '--help'
		'~tilde' 'a.b' 'x.config' "$(printf 'L%.0s' {1..200})")
	# every name above is a copy of t1
	printf '%s\n' "${names[@]}" | jq -R . | jq -s . >"$G/names.json"
	cat >"$G/flake.nix" <<-'EOF'
		{
		  outputs = { self }:
		    let systems = import ./systems.nix { };
		    in {
		      nixosConfigurations = systems // builtins.listToAttrs (map
		        (name: { inherit name; value = systems.t1; })
		        (builtins.fromJSON (builtins.readFile ./names.json)));
		    };
		}
	EOF
	want=$(fleet_build "$G#nixosConfigurations.t1.config.system.build.toplevel")
	for name in "${names[@]}"; do
		run --separate-stderr nrr build --no-link --flake "$G#$name"
		[ "$status" = 0 ] || fail "'$name': exit $status: $stderr"
		[ "$output" = "$want" ] || fail "'$name' built '$output'"
	done
	no_canary
}

@test "flake directories with hostile names are built, or refused by nix (exit 4), never run" {
	want=$(fleet_build "$F#nixosConfigurations.t1.config.system.build.toplevel")
	tag=$(cat "$F/tag")
	hostile_words "$CAN_REL"
	WORDS+=($'nl\nx')
	built=()
	for name in "${WORDS[@]}"; do
		flake_copy "$BATS_TEST_TMPDIR/$name" "$tag"
		# a bare directory name, as a user types it, and an absolute path
		for ref in "$name" "$BATS_TEST_TMPDIR/$name"; do
			run --separate-stderr nrr build --no-link --flake="$ref#t1"
			case $status in
			0) [ "$output" = "$want" ] || fail "'$ref' built '$output'"
				built+=("$ref") ;;
			# nix: not a valid URL, or no such file (a `?` starts a query)
			4) lines=("${stderr_lines[@]}") && tool_error >/dev/null ||
				fail "'$ref': exit 4: $stderr" ;;
			# a `#` ends the flake reference: what follows is no configuration name;
			# --flake=VALUE with a newline is refused as a whole
			2) lines=("${stderr_lines[@]}") && err=$(tool_error) &&
				[[ $err == "error: refusing configuration name "* ||
					$err == "error: option with a newline: refused" ]] ||
				fail "'$ref': exit 2: $stderr" ;;
			*) fail "'$ref': exit $status: $stderr" ;;
			esac
		done
	done
	# 10,000 characters are too long a path
	run nrr build --no-link --flake "$BATS_TEST_TMPDIR/$(printf 'd%.0s' {1..10000})#t1"
	assert_failure 4
	tool_error >/dev/null
	# nix takes these for paths (not those with spaces, `;`, `$`, `{`...: no valid URLs)
	for name in "q'uote" 'dq"uote' -lead --help "$(printf 'L%.0s' {1..200})"; do
		one_of "$name" "${built[@]}" && one_of "$BATS_TEST_TMPDIR/$name" "${built[@]}" ||
			fail "'$name' was not built; built: ${built[*]}"
	done
	no_canary
}

# --- host names ---

@test "hostile host names are refused (exit 2) or unreachable (exit 3), and reach no host" {
	hostile_words "$CAN_ABS"
	WORDS+=("root@t1;$CAN_ABS" "\$($CAN_ABS)@t1" "t1 -oProxyCommand=$CAN_ABS"
		"-oProxyCommand=$CAN_ABS" "--target-host=t1" $'t1\nx' "$(printf 'h%.0s' {1..10000})"
		't*' 't?' '[t]1' 'root@t1@x' '' '@t1' 'root@' "t1:22" "t1%n")
	want=$(toplevel t1)
	for h in t1 t2 t3 b1; do fleet_reset_counts "$h"; done
	for name in "${WORDS[@]}"; do
		run nrr switch --store-path "$want" --target-host "$name"
		one_of "$status" 2 3 || fail "--target-host '$name': exit $status: $output"
		tool_error >/dev/null
		run nrr build --no-link --flake "$F#t1" --build-host "$name"
		one_of "$status" 2 3 || fail "--build-host '$name': exit $status: $output"
		tool_error >/dev/null
	done
	for h in t1 t2 t3 b1; do
		[ "$(fleet_handshakes "$h")" = 0 ] || fail "a hostile host name logged in to $h"
	done
	# some of them, word for word
	run nrr switch --flake "$F#t1" --target-host "t1;$CAN_ABS"
	assert_failure 2
	assert_line "error: refusing host name 't1;$CAN_ABS': it contains ';'"
	run nrr switch --flake "$F#t1" --target-host "-oProxyCommand=$CAN_ABS"
	assert_failure 2
	assert_line "error: refusing host name '-oProxyCommand=$CAN_ABS': it begins with '-'"
	run nrr switch --flake "$F#t1" --target-host 't*'
	assert_failure 3
	assert_line --regexp "^error: cannot reach 't\\*' \\(root@[0-9.]+:22\\): .*Connection refused"
	no_canary
}

# --- NIX_SSHOPTS ---

@test "hostile NIX_SSHOPTS are split like a shell's words, never run by one" {
	C=$BATS_FILE_TMPDIR/ssh_config
	# allowed statuses, then NIX_SSHOPTS
	cases=(
		2 "-F $C; $CAN_ABS"
		2 "-F $C \$($CAN_ABS)"
		2 "-F $C \`$CAN_ABS\`"
		2 "-F $C && $CAN_ABS"
		2 "-F $C | $CAN_ABS"
		2 "-F $C (touch nrr-canary)"
		2 "-F '$C"
		2 "-F \"$C"
		2 "-F $C \\"
		2 "-F $C -o 'User=\$($CAN_ABS)'"
		"2 3" "-F $C -l 'x;$CAN_ABS'"
		"2 3" "-F $C -l '\$($CAN_ABS)'"
		"0 2 3" "-F $C -o 'SendEnv=\$($CAN_ABS)'"
		"2 3" "-F $C -l $(printf 'u%.0s' {1..10000})"
		"2 3" "-F $C -l "$'\xff\xfe'
		0 "-F $C"$'\n'"-o BatchMode=yes"
		0 "  -F	$C  "
		0 "-F $C -o 'LocalCommand=$CAN_ABS'"
	)
	for ((i = 0; i < ${#cases[@]}; i += 2)); do
		# shellcheck disable=SC2086 # the allowed statuses are words
		NIX_SSHOPTS=${cases[i + 1]} run nrr switch --flake "$F#t1" --target-host t1
		one_of "$status" ${cases[i]} || fail "NIX_SSHOPTS='${cases[i + 1]}': exit $status: $output"
		[ "$status" = 0 ] || tool_error >/dev/null
	done
	NIX_SSHOPTS="-F '$C" run nrr switch --flake "$F#t1" --target-host t1
	assert_line "error: cannot split NIX_SSHOPTS: unterminated quote"
	NIX_SSHOPTS="-F $C \\" run nrr switch --flake "$F#t1" --target-host t1
	assert_line "error: cannot split NIX_SSHOPTS: trailing backslash"
	no_canary
}

@test "quoted NIX_SSHOPTS reach ssh byte for byte: a config path with spaces, quotes and \$(...)" {
	d="$BATS_TEST_TMPDIR/d i r'q\"x;y\$($CAN_REL)\`$CAN_REL\`"
	mkdir -p "$d"
	cp "$BATS_FILE_TMPDIR/ssh_config" "$d/ssh config"
	retag sshopts
	fleet_reset_counts t1
	# single quotes: ' ends them, \' is a quote
	sq=$(printf '%s' "$d/ssh config" | sed "s/'/'\\\\''/g")
	NIX_SSHOPTS="-F '$sq'" run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	# double quotes: \" and \\ and \$ and \` are escapes
	dq=$(printf '%s' "$d/ssh config" | sed 's/[\\"$`]/\\&/g')
	NIX_SSHOPTS="-F \"$dq\"" run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	# backslashes outside quotes
	bs=$(printf '%s' "$d/ssh config" | sed 's/[^a-zA-Z0-9/]/\\&/g')
	NIX_SSHOPTS="-F $bs" run nrr switch --flake "$F#t1" --target-host t1
	assert_success
	[ "$(fleet_handshakes t1)" = 3 ]
	no_canary
}

# --- other input ---

@test "a hostile user name in the deploy lock is shown as it is, never run (bash and fish)" {
	# the lock's holder names the deploying user as the password database does: root, here,
	# gets a hostile name in the deployer's copy of it (bind-mounted: rewrite it in place)
	# (nix makes a directory of that name: no `/` in it)
	evil="x\$($CAN_REL)\`$CAN_REL\`;$CAN_REL'\"($CAN_REL)|$CAN_REL"
	cp "$FLEET_DIR/local/etc/passwd" "$BATS_TEST_TMPDIR/passwd.orig"
	EVIL=$evil awk -F: -v OFS=: '$3 == 0 { $1 = ENVIRON["EVIL"] } 1' \
		"$BATS_TEST_TMPDIR/passwd.orig" >"$BATS_TEST_TMPDIR/passwd"
	cat "$BATS_TEST_TMPDIR/passwd" >"$FLEET_DIR/local/etc/passwd"
	for target in t1 fishy@t2; do
		printf 'hostile-user-%s-%s\n' "$$" "${target%@*}" >"$F/tag"
		nrr_bg test --flake "$F#slow" --target-host "$target"
		# root's lock is in /run; a user's in its runtime dir or ~/.cache (lib/scripts/activate.sh)
		# shellcheck disable=SC2016 # for that sh
		poll_until 60 fleet_exec "${target#*@}" sh -c 'grep -qsF "$1" /run/nixos-rebuild-remote.lock.holder \
			/run/fleet/*/home/*/.cache/nixos-rebuild-remote.lock.holder' sh "$evil@" ||
			fail "$target: the first run never held the lock: $(cat "$BATS_TEST_TMPDIR/log")"
		run nrr test --flake "$F#slow" --target-host "$target"
		kill -INT "$FLEET_BG_PID"
		[ "$status" = 10 ] || fail "$target: exit $status: $output"
		err=$(tool_error)
		[[ $err == "error: '$target' is being deployed to by $evil@"* ]] || fail "$target: $err"
		# the first run, interrupted, ends
		wait_nrr
	done
	no_canary
}

teardown() {
	stop_nrr_bg
	# the deployer's password database, if a test changed it
	[ ! -f "$BATS_TEST_TMPDIR/passwd.orig" ] ||
		cat "$BATS_TEST_TMPDIR/passwd.orig" >"$FLEET_DIR/local/etc/passwd"
}

@test "hostile nix options and store paths are passed as arguments, never run" {
	retag opts
	run nrr switch --store-path "/nix/store/x;$CAN_ABS" --target-host t1
	assert_failure 6
	assert_line --partial "error: cannot list the closure of '/nix/store/x;$CAN_ABS' on 'localhost': "
	run nrr switch --flake "$F#t1" --target-host t1 --max-jobs "1;$CAN_ABS"
	assert_failure 4
	tool_error >/dev/null
	run nrr build-image --flake "$F#t1" --image-variant "qcow;$CAN_ABS"
	assert_failure 2
	assert_line "error: --image-variant 'qcow;$CAN_ABS': must be a name, not a path"
	# to a build host: nix there gets them as they are
	run nrr switch --flake "$F#t1" --target-host t1 --build-host b1 \
		--option system-features "x;$CAN_ABS \$($CAN_ABS) ($CAN_ABS) \`$CAN_ABS\`" \
		-I "nixpkgs=\$($CAN_ABS)"
	assert_success
	no_canary
}

# --- hostile users on the hosts ---

@test "a user of the target cannot hold back root's deploys by taking the deploy lock" {
	retag lockdos
	nrr switch --flake "$F#t1" --target-host t1
	# deploy (uid 1500, no sudo here) tries to take root's lock where root's deploy takes it
	# (lib/activate.c: /run/nixos-rebuild-remote.lock, made by the deploy above) and, if it
	# can, keeps it; its attempt's outcome lands in its own /tmp/lockdos (no job of ours: no
	# message from bash when it is killed)
	fleet_exec t1 test -e /run/nixos-rebuild-remote.lock
	(fleet_exec t1 setpriv --reuid=1500 --regid=1500 --clear-groups sh -c \
		'if [ -r /run/nixos-rebuild-remote.lock ] && exec 9</run/nixos-rebuild-remote.lock &&
			flock -n 9; then
			echo held >/tmp/lockdos; exec sleep 29
		 fi; echo refused >/tmp/lockdos' \
		3>&- &) 2>/dev/null
	# the attempt ended (lock held or refused) before root's deploy starts
	for _ in $(seq 1 100); do
		fleet_exec t1 test -s /tmp/lockdos && break
		sleep 0.1
	done
	run fleet_exec t1 cat /tmp/lockdos
	assert_output --regexp '^(held|refused)$'
	if [ "$output" = held ]; then fleet_ps t1 | grep -q ' sleep 29$'; fi
	retag lockdos2
	run nrr switch --flake "$F#t1" --target-host t1
	fleet_ps t1 | awk '$2 == "sleep" && $3 == 29 { print $1 }' | xargs -r kill
	assert_success
}

@test "a user of the build host cannot make root's builds fail through its /tmp; the GC root goes with the deploy" {
	retag gcroot
	# what a user (uid 1500) can put where the build host keeps the result's GC root: a
	# directory of the name realise.sh gives, with a result link to somewhere else
	fleet_exec b1 setpriv --reuid=1500 --regid=1500 --clear-groups \
		sh -c 'mkdir /tmp/nrr-result.decoy && ln -s / /tmp/nrr-result.decoy/result'
	run nrr switch --flake "$F#t2" --target-host t2 --build-host b1
	assert_success
	# the deploy's own root is gone, the user's directory untouched
	run fleet_exec b1 sh -c 'ls -d /tmp/nrr-result.*'
	assert_output /tmp/nrr-result.decoy
	fleet_exec b1 rm -r /tmp/nrr-result.decoy
}

@test "the build host keeps no GC root after a deploy, a failed one, or a dry run" {
	retag gcroot2
	run nrr switch --flake "$F#t2" --target-host t2 --build-host b1
	assert_success
	run nrr switch --flake "$F#failbuild" --target-host t2 --build-host b1
	assert_failure 5
	run nrr build --no-link --flake "$F#t2" --build-host b1
	assert_success
	run fleet_exec b1 sh -c 'ls -d /tmp/nrr-result.* 2>/dev/null'
	assert_output ''
}

@test "a user of the target cannot hold back a user's deploys: the non-root lock is in that user's own directory" {
	retag lockdos3
	fleet_exec t1 sh -c ': >>/run/nrr-activations && chmod 0666 /run/nrr-activations'
	# fishy (uid 1501) takes deploy's (uid 1500) lock where /tmp would have it, and plants a
	# link where its holder file would go
	(fleet_exec t1 setpriv --reuid=1501 --regid=1501 --clear-groups sh -c \
		'l=/tmp/nixos-rebuild-remote-1500.lock; : >$l; ln -s /run/fleet/t1/home/fishy/x $l.holder
		 exec 9<$l && flock 9 && exec sleep 28' 3>&- &) 2>/dev/null
	for _ in $(seq 1 50); do
		fleet_ps t1 | grep -q ' sleep 28$' && break
		sleep 0.1
	done
	run nrr test --flake "$F#t1" --target-host deploy@t1
	fleet_ps t1 | awk '$2 == "sleep" && $3 == 28 { print $1 }' | xargs -r kill
	fleet_exec t1 rm -f /tmp/nixos-rebuild-remote-1500.lock /tmp/nixos-rebuild-remote-1500.lock.holder
	assert_success
	run fleet_exec t1 test -e "$FLEET_DIR/t1/home/fishy/x"
	assert_failure
}

@test "fleet names a glob matches are checked as typed ones: a '\"' or '\${' in one is refused (exit 2)" {
	d=$BATS_TEST_TMPDIR/evilnames
	mkdir "$d"
	cat >"$d/flake.nix" <<-'NIX'
		{ outputs = { self }: { nixosConfigurations = {
		    ta = { };
		    "t\${builtins.abort \"injected\"}\"" = { };
		  }; }; }
	NIX
	run nrr switch --flake "$d" --on 't*'
	assert_failure 2
	assert_output --partial "error: refusing configuration name 't\${builtins.abort"
	refute_output --partial "evaluation aborted"
}

@test "host names with braces are refused (exit 2): brace expansion could reach a ProxyCommand" {
	for name in 't{1,2}' 'root@t1{a}' 't}'; do
		run nrr switch --flake "$F#t1" --target-host "$name"
		[ "$status" = 2 ] || fail "'$name': exit $status: $output"
		assert_output --partial "error: refusing host name '$name': it contains '"
	done
	run nrr switch --flake "$F#t1" --target-host t1 --build-host 'b{1}'
	assert_failure 2
}

@test "a store path with glob characters is never globbed on the target" {
	retag globby
	p=$(toplevel globby)
	pkg=$(fleet_local nix-store -qR "$p" | grep -F 'glob?char')
	# where the path would be, a look-alike that '?' matches (root made it: a store is root's)
	decoy=${pkg/glob\?char/globXchar}
	fleet_exec t1 mkdir -p "$decoy"
	run nrr switch --flake "$F#globby" --target-host t1
	fleet_exec t1 rm -rf "$decoy"
	assert_success
	run fleet_exec t1 nix-store --check-validity "$pkg"
	assert_success
}

@test "two users may build the same system on one build host" {
	retag twousers
	run nrr build --no-link --flake "$F#t2" --build-host root@b1
	assert_success
	first=${lines[${#lines[@]} - 1]}
	run nrr build --no-link --flake "$F#t2" --build-host deploy@b1
	assert_success
	assert_line "$first"
}
