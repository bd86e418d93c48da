# shellcheck shell=bash
# Common setup of the bats files: assertion libraries, the fleet harness, the binary under test.
# Use as `load lib/common` at the top of a bats file in tests/.
# shellcheck source=SCRIPTDIR/assert.bash
source "${BASH_SOURCE[0]%/*}/assert.bash"
# shellcheck source=SCRIPTDIR/fleet.bash
source "${BASH_SOURCE[0]%/*}/fleet.bash"

# The binary under test; the Makefile may point it elsewhere (a sanitizer build).
NRR=${NRR:-$BATS_TEST_DIRNAME/../nixos-rebuild-remote}

# Helpers of the deploy tests. $F is the file's copy of the test flake.
# The tool, run in the fleet's deployer namespace. With --json, the report
# it prints is checked against its schema in doc/ (report_check).
nrr() {
	case " $* " in
	*" --json "*) ;;
	*) fleet_local "$NRR" "$@"; return ;;
	esac
	local st=0 report
	report=$(mktemp "${BATS_TEST_TMPDIR:-/tmp}/report.XXXXXX")
	fleet_local "$NRR" "$@" >"$report" || st=$?
	cat "$report"
	report_check "$report" "$@" || st=98
	rm -f "$report"
	return "$st"
}

# Checks the --json output in file $1 of a run with the words $2...
# against the schema of its kind of report (doc/*.schema.json); says
# what does not match on stderr and fails. Output that is not a report
# (a store path) is left alone.
report_check() {
	local file=$1 schema=report
	shift
	[[ $(head -c 1 "$file") == [\{\[] ]] || return 0
	case " $* " in
	*" list-generations "*) schema=generations ;;
	*" --on "*) schema=fleet-report ;;
	esac
	python3 "$BATS_TEST_DIRNAME/lib/jsonschema.py" \
		"$BATS_TEST_DIRNAME/../doc/$schema.schema.json" "$file" >&2 ||
		{ echo "the --json report does not match doc/$schema.schema.json" >&2; return 1; }
}

# A new generation of every configuration: a new tag in the flake copy.
retag() { printf '%s\n' "$1" >"$F/tag"; }

# gone_from HOST TEXT: waits up to 5 s until no process of HOST has TEXT in its command line
# (a session's end reaches the host a moment after the run's own); fails, showing them, if
# some still have it.
gone_from() {
	local _
	for _ in $(seq 50); do
		fleet_ps "$1" | grep -qF -- "$2" || return 0
		sleep 0.1
	done
	fleet_ps "$1" | grep -F -- "$2" >&2
	return 1
}
# The store path of configuration $1's system, as the deployer builds it.
toplevel() { fleet_build "$F#nixosConfigurations.$1.config.system.build.toplevel"; }
# Where host $1's system profile points (empty if it has none).
profile_of() { fleet_exec "$1" readlink -f /nix/var/nix/profiles/system 2>/dev/null || true; }
# The last switch-to-configuration call recorded on host $1.
last_activation() { fleet_exec "$1" tail -n 1 /run/nrr-activations; }

# Helpers of the fault, interrupt and hostile-input tests.

# The tool, as nrr runs it, but stopped if it does not end within $1 seconds: its test then
# fails with a message instead of the suite hanging.
nrr_within() {
	local limit=$1 st=0
	shift
	fleet_local timeout -k 5 "$limit" "$NRR" "$@" || st=$?
	[ "$st" != 124 ] && [ "$st" != 137 ] ||
		echo "${BATS_TEST_FILENAME##*/}: the run did not end within $limit s" >&2
	return "$st"
}

# The tool in the background, output to $BATS_TEST_TMPDIR/log (see fleet_local_bg: sets
# FLEET_BG_PID). wait_nrr collects it.
nrr_bg() {
	fleet_local_bg "$BATS_TEST_TMPDIR/log" "$NRR" "$@"
}

# Waits up to $1 seconds (default 30) for the run started by nrr_bg to end, then sets status,
# output and lines as `run` does (output: its log). Kills it and fails if it does not end.
wait_nrr() {
	local limit=${1:-30} stat
	for _ in $(seq 1 $((limit * 10))); do
		stat=$(ps -o stat= -p "$FLEET_BG_PID") && [[ $stat != Z* ]] || break
		sleep 0.1
	done
	if stat=$(ps -o stat= -p "$FLEET_BG_PID") && [[ $stat != Z* ]]; then
		kill -KILL "$FLEET_BG_PID"
		{ wait "$FLEET_BG_PID"; } 2>/dev/null || true
		fail "the run did not end within $limit s: $(cat "$BATS_TEST_TMPDIR/log")"
	fi
	status=0
	wait "$FLEET_BG_PID" || status=$?
	output=$(cat "$BATS_TEST_TMPDIR/log")
	# shellcheck disable=SC2034 # for bats-assert
	IFS=$'\n' read -d '' -r -a lines <<<"$output" || true
}

# For teardown: kills a run of nrr_bg (or fleet_local_bg) that a failed test left behind, if it
# is still a child of this shell (a pid already waited for may belong to anyone by now).
stop_nrr_bg() {
	[ -n "${FLEET_BG_PID-}" ] || return 0
	[ "$(ps -o ppid= -p "$FLEET_BG_PID" | tr -d ' ')" = "$BASHPID" ] &&
		kill -KILL "$FLEET_BG_PID" 2>/dev/null || true
	{ wait "$FLEET_BG_PID"; } 2>/dev/null || true
	FLEET_BG_PID=
}

# What host $1 runs now: its system profile and its /run/current-system, a line each.
state_of() {
	fleet_exec "$1" sh -c 'readlink -f /nix/var/nix/profiles/system; readlink -f /run/current-system' \
		2>/dev/null || true
}

# Runs CMD until it succeeds, for up to $1 seconds; fails if it never did (fleet.bash's poll).
poll_until() {
	_fleet_wait "$@"
}

# True if host $1 runs a process whose command line contains $2.
host_runs() {
	fleet_ps "$1" | grep -qF -- "$2"
}

# True if the deployer runs a process whose command line contains $1.
local_runs() {
	[ -n "$(local_procs "$1")" ]
}

# Waits up to 20 s for host $1 to run a process whose command line contains $2.
wait_for_proc() {
	poll_until 20 host_runs "$1" "$2"
}

# Waits up to 20 s for the deployer to run a process whose command line contains $1.
wait_for_local_proc() {
	poll_until 20 local_runs "$1"
}

# Prints "PID COMMAND LINE" of every process of the deployer.
local_ps() {
	local pid args
	for pid in $(_fleet_pids "$(_fleet_tag local) "); do
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		printf '%s %s\n' "$pid" "$args"
	done
}

# The pids of the processes of the deployer whose command line contains $1.
local_procs() {
	local_ps | while read -r pid args; do
		case $args in *"$1"*) echo "$pid" ;; esac
	done
}

# Fails if an ssh process of the deployer is left (a master, a session, a slow-link relay).
no_ssh_left() {
	local left
	left=$(local_ps | awk '$2 ~ /^ssh/ || /slow-link/')
	[ -z "$left" ] || fail "left behind: $left"
}

# Fails unless the log $1 ends with the tool's error line (hint lines aside), which matches the
# regexp $2.
error_line_matches() {
	local last
	last=$(grep -av '^hint: ' "$1" | tail -n 1)
	[[ $last =~ $2 ]] || fail "the last line is not /$2/: $(cat "$1")"
}

# Adds the configuration `big` to the flake copy $1: t1's system plus a package of 32 MiB that
# does not compress (tests/lib/build-big.sh), for a copy that a slow link makes last seconds.
flake_add_big() {
	cp "$BATS_TEST_DIRNAME/lib/build-big.sh" "$1/build-big.sh"
	[ "$(tail -n 1 "$1/systems.nix")" = "}" ] || { echo "systems.nix does not end in '}'" >&2; return 1; }
	sed -i '$i\  big = mkConfig "big" { packages = [ (drv "big-1.0" ./build-big.sh { }) ]; };' \
		"$1/systems.nix"
}

# An ssh option for NIX_SSHOPTS: the connection goes through a relay that sends at most $1
# bytes a second towards the host (tests/lib/slow-link).
slow_link_opt() {
	printf '%s' "-o 'ProxyCommand=perl $BATS_TEST_DIRNAME/lib/slow-link %h %p $1'"
}

# Runs `nrr_bg ARGS...` over a link of $SLOW_RATE bytes a second (8 MB/s unless set: the 32 MiB
# of `big` take 4 s) and returns once host $1 has been importing for a second: a copy in the
# middle, for a fault.
start_slow_copy() {
	local host=$1
	shift
	NIX_SSHOPTS="$NIX_SSHOPTS $(slow_link_opt "${SLOW_RATE:-8000000}")" nrr_bg "$@"
	# the import: inside the deploy's conversation (nix-store --serve) when the closure comes
	# from here or a build host
	wait_for_proc "$host" 'nix-store --serve' || fail "the copy never started: $(cat "$BATS_TEST_TMPDIR/log")"
	sleep 1
	host_runs "$host" 'nix-store --serve' || fail "the copy ended too soon: $(cat "$BATS_TEST_TMPDIR/log")"
}

# The pids of host $1's sshd session processes (each connection's), not its listener's.
sshd_sessions() {
	fleet_ps "$1" | awk '$2 == "sshd:" && $3 !~ /^\// { print $1 }'
}

# The pid of host $1's sshd listener.
sshd_listener() {
	fleet_ps "$1" | awk '$2 == "sshd:" && $3 ~ /^\// { print $1 }'
}

# True if nobody holds root's deploy lock on host $1 (lib/activate.c: /run/nixos-rebuild-remote.lock).
unlocked() {
	fleet_exec "$1" test -e /run/nixos-rebuild-remote.lock &&
		fleet_exec "$1" flock -n /run/nixos-rebuild-remote.lock true
}

# The tool at a pseudo-terminal, typing the line $TYPED at it (a password,
# an answer).
nrr_tty() {
	_fleet_local_argv
	printf '%s\n' "${TYPED-}" | script -qec "$(printf '%q ' "${_FLEET_LOCAL[@]}" "$NRR" "$@")" /dev/null
}
