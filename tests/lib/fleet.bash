# shellcheck shell=bash
# A fleet of fake NixOS hosts reached over ssh, and a deployer to drive them, for bats tests.
#
# Every host and the deployer live in a mount namespace of their own, with their own /nix,
# /etc/nix and /run bind-mounted from $FLEET_DIR, so that nothing a test does reaches the
# machine's store, profiles, nix.conf, ~/.ssh or /run. Each host runs a nix-daemon (for its
# non-root users, as on NixOS) and an sshd on its own loopback address, port 22 (FLEET_PORT),
# whose ForceCommand logs every remote command. Nothing listens outside 127.0.0.0/8.
#
#   setup_file()    { fleet_start t1 t2; }     # once per file: about 0.3 s a host
#   teardown_file() { fleet_stop; }
#   @test ... { fleet_local "$NRR" switch --flake "$FLAKE#t1" --target-host t1; }
#
# Settings, from the environment:
#   FLEET_DIR   where the fleet lives (default "$BATS_FILE_TMPDIR/fleet", else mktemp -d)
#   FLEET_NET   its addresses' prefix, "127.0.N." (default: N random in 20..219, so that bats
#               files running at once rarely meet; taken addresses are skipped anyway)
#   FLEET_PORT  the hosts' ssh port (default 22)
#   FLEET_DEFAULT_KEX  1: ssh's own key exchange (the suite's is curve25519, a cheap one)
#
# Functions (each returns non-zero with a message on stderr when it fails):
#   fleet_start NAME[:VARIANT]...  start hosts (and the deployer); exports FLEET_DIR,
#                                  NIX_SSHOPTS, NIX_CONFIG, and NIX_REMOTE (a guard that makes
#                                  nix fail outside the fleet). NAME:riscv64 makes a board whose
#                                  uname -m says riscv64 and whose nix builds riscv64-linux
#                                  (NAME:ppc64le the same for powerpc64le-linux; NAME:mips64el
#                                  and NAME:mips64 boards whose uname says mips64 for both,
#                                  their kernel's byte order little or big; NAME:aarch64 and
#                                  NAME:armv7l ARM boards).
#                                  NAME:reboot a host whose `reboot` restarts it with a new boot
#                                  id, NAME:noreturn one that goes down for good (fleet-reboot);
#                                  every other host's `reboot` refuses. NAME:noforward a host
#                                  whose sshd forwards no unix sockets (its nix-daemon's),
#                                  NAME:untrusted one whose nix-daemon does not trust root.
#   fleet_stop                     kill all the fleet's processes, remove FLEET_DIR (idempotent)
#   fleet_local CMD...             run CMD in the deployer (keeps cwd and environment, but HOME)
#   fleet_local_bg LOG CMD...      the same in the background, output to LOG, SIGINT not
#                                  ignored; sets FLEET_BG_PID (CMD's own pid: kill it, wait it)
#   fleet_exec NAME CMD...         run CMD as root on host NAME (clean environment, cwd /)
#   fleet_daemon_restart NAME      restart NAME's nix-daemon (after a change to its nix.conf)
#   fleet_addr NAME                print NAME's address
#   fleet_handshakes NAME          print the number of ssh logins NAME accepted so far
#   fleet_commands NAME            print the number of remote commands NAME ran so far
#   fleet_command_log NAME         print those commands, "USER COMMAND" a line
#   fleet_reset_counts NAME...     forget handshakes and commands so far
#   fleet_ps NAME                  print "PID COMMAND LINE" of every process running on NAME
#   fleet_seed NAME PATH...        copy PATHs with their closure from the deployer's store to NAME
#   fleet_build INSTALLABLE...     build in the deployer, print the out paths, one a line
#   flake_copy DIR [TAG]           copy the test flake (tests/flake) to DIR, with TAG as its tag
#   fleet_nginx NAME ROOT          start nginx on host NAME (in its namespace, so ROOT is NAME's
#                                  path) serving ROOT on NAME's address, port 80, as a binary
#                                  cache; print its URL. Logs: $FLEET_DIR/NAME/nginx/access.log
#
# Layout of $FLEET_DIR, which every namespace also sees as /run/fleet:
#   id_ed25519 authorized_keys known_hosts ssh_config   the client side, for NIX_SSHOPTS
#   bin/           sshd-logcmd (the hosts' ForceCommand), forge-filter and fleet-holder
#   procs          "PID STARTTIME" of every process fleet_start started, for fleet_stop
#   id             random; the /run of NAME is a tmpfs named fleet-ID-NAME (see fleet-holder)
#   local/         the deployer: nix/ etc-nix/ etc/passwd home/
#   NAME/          a host: nix/ etc-nix/ etc/ root-home/ home/{deploy,fishy}/ var-log/ addr
#                  sshd_config ssh_host_ed25519_key sshd.log commands.log holder.pid
#                  boot_id reboot-mode sbin/reboot reboot.log (see fleet-reboot)
#
# Hosts also get a private /tmp (a deployer's temp path means nothing there, as on another
# machine) and /var/log. The deployer keeps the machine's /tmp, where the tests' files are, but
# has a private /run (with /run/user/0 as XDG_RUNTIME_DIR). Every other path is the machine's.
#
# The fleet's processes are children of the shell that ran fleet_start: call it and fleet_stop
# from the same shell (setup_file and teardown_file are), not under `run`, or the processes
# fleet_stop kills linger as zombies until init reaps them.
#
# Users on every host: root (login by key, its own empty home, so the machine's /root/.bashrc is
# not read), deploy (uid 1500, bash, sudo with password hunter2) and fishy (uid 1501, fish as
# login shell, no sudo). All three may log in with the fleet's key and are trusted nix users.

# shellcheck source=SCRIPTDIR/nginx.bash
source "${BASH_SOURCE[0]%/*}/nginx.bash"

# (no command substitution: every test sources this file)
_FLEET_LIB=${BASH_SOURCE[0]%/*}
[[ $_FLEET_LIB == /* ]] || _FLEET_LIB=$PWD/$_FLEET_LIB

# Nix settings for the deployer's and every host's nix.conf, and for NIX_CONFIG: offline
# (without `substituters =` every build first tries cache.nixos.org for seconds), no sandbox
# (unavailable here), flakes on. No build users: every store (each fleet's deployer and hosts,
# and other fleets running at the same time) would pick from the same nixbld1..N, and Nix kills
# all processes of a build user before it builds as that user: builds killed by another's.
_FLEET_NIX_CONF='sandbox = false
substituters =
build-users-group =
experimental-features = nix-command flakes'

_FLEET_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

_fleet_err() {
	printf 'fleet: %s\n' "$*" >&2
	return 1
}

# Print the mount tag of NAME's namespaces (see fleet-holder), or with no NAME the prefix of
# every tag of this fleet.
_fleet_tag() {
	printf 'fleet-%s-%s' "$(cat "$FLEET_DIR/id" 2>/dev/null)" "${1-}"
}

# Print the pids of the processes that see a mount tagged TAG (all the fleet's with TAG a
# prefix): the processes in a namespace of the fleet, and in namespaces made from those.
_fleet_pids() {
	# mountinfo: "... - tmpfs fleet-ID-NAME rw,...". Zombies have no mountinfo left.
	grep -lsF -- " tmpfs $1" /proc/[0-9]*/mountinfo | cut -d/ -f3
}

# Print the start time of process PID (field 22 of /proc/PID/stat, after the command name,
# which may hold spaces), followed by its state; nothing if it is gone. With the pid, the
# start time names a process for good: pids are reused, (pid, start time) pairs are not.
_fleet_proc_stat() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	rest=${stat##*) }
	# shellcheck disable=SC2086 # split the fields on purpose
	set -- $rest
	printf '%s %s\n' "${20}" "$1"
}

# Poll CMD every 50 ms for up to SECONDS; fail if it never succeeded.
_fleet_wait() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# Start CMD in the background, cut off from bats (stdin /dev/null, output appended to LOG,
# fd 3 closed: bats waits for whoever holds it), and record it for fleet_stop. Sets _FLEET_PID.
_fleet_spawn() {
	local log=$1
	shift
	"$@" </dev/null >>"$log" 2>&1 3>&- &
	_FLEET_PID=$!
	disown "$_FLEET_PID" 2>/dev/null || true
	printf '%s %s\n' "$_FLEET_PID" "$(_fleet_proc_stat "$_FLEET_PID" | cut -d' ' -f1)" \
		>>"$FLEET_DIR/procs"
}

# Set _FLEET_NS to the path of the mount namespace of NAME (a host, or `local`), after checking
# that its holder still has NAME's mounts: nsenter into a reused pid's namespace could be
# nsenter into the machine's own. Builtins only, no subshell: every fleet_exec and fleet_local
# comes through here, and on a 2-core machine a fork of the tests' big shell costs milliseconds.
_fleet_ns() {
	local d=${FLEET_DIR-}/$1 pid='' id='' mounts=()
	if [ -z "${FLEET_DIR-}" ] || [ ! -f "$d/ready" ]; then
		_fleet_err "no host '$1' in this fleet"
		return 1
	fi
	# (read fails at a file's end without a newline, having read it)
	read -r pid <"$d/holder.pid" || :
	read -r id <"$FLEET_DIR/id" || :
	if [ -z "$pid" ] || [ -z "$id" ] || ! mapfile -t mounts 2>/dev/null <"/proc/$pid/mountinfo" ||
		[[ " ${mounts[*]} " != *" tmpfs fleet-$id-$1 "* ]]; then
		_fleet_err "the namespace of '$1' is gone"
		return 1
	fi
	_FLEET_NS=/proc/$pid/ns/mnt
}

# Run CMD in NAME's namespace, in the background (see _fleet_spawn), with a clean
# environment as a service there would have.
_fleet_ns_spawn() {
	local name=$1 log=$2 ns
	shift 2
	_fleet_ns "$name" || return 1
	ns=$_FLEET_NS
	_fleet_spawn "$log" nsenter --mount="$ns" -- env -i PATH="$_FLEET_PATH" \
		HOME="/run/fleet/$name/root-home" "$@"
}

# Start the holder of NAME's namespace (see fleet-holder) and wait until its mounts are made.
_fleet_holder_start() {
	local name=$1 role=$2 d=$FLEET_DIR/$1
	_fleet_spawn "$d/holder.log" unshare --mount --propagation private \
		/bin/sh "$FLEET_DIR/bin/fleet-holder" "$FLEET_DIR" "$name" "$role" \
		"$(readlink /proc/self/ns/mnt)" "$(_fleet_tag "$name")"
	echo "$_FLEET_PID" >"$d/holder.pid"
	if ! _fleet_wait 10 test -e "$d/ready"; then
		_fleet_err "namespace of '$name' not ready: $(tail -n 5 "$d/holder.log")"
		return 1
	fi
}

# Write the user database of host dir D: the machine's, with root's home moved to an empty
# directory of the host, plus `deploy` and `fishy`. Hosts see these files over /etc.
_fleet_users() {
	local d=$1 in=/run/fleet/$2 hash
	hash=$(openssl passwd -6 hunter2) || return 1
	mkdir -p "$d/etc" "$d/root-home" "$d/home/deploy" "$d/home/fishy" "$d/var-log"
	chmod 0700 "$d/root-home"
	chown 1500:1500 "$d/home/deploy"
	chown 1501:1501 "$d/home/fishy"
	awk -F: -v OFS=: -v home="$in/root-home" \
		'$1 == "root" { $6 = home } $1 != "deploy" && $1 != "fishy" && $3 != 1500 && $3 != 1501' \
		/etc/passwd >"$d/etc/passwd"
	printf '%s\n' "deploy:x:1500:1500:deploy:$in/home/deploy:/bin/bash" \
		"fishy:x:1501:1501:fishy:$in/home/fishy:/usr/bin/fish" >>"$d/etc/passwd"
	awk -F: '$1 != "deploy" && $1 != "fishy" && $3 != 1500 && $3 != 1501' /etc/group >"$d/etc/group"
	printf '%s\n' deploy:x:1500: fishy:x:1501: >>"$d/etc/group"
	# Debian's sshd without PAM refuses accounts whose hash starts with "!": fishy gets "*".
	awk -F: '$1 != "deploy" && $1 != "fishy"' /etc/shadow >"$d/etc/shadow"
	printf '%s\n' "deploy:$hash:19000:0:99999:7:::" "fishy:*:19000:0:99999:7:::" >>"$d/etc/shadow"
	chown root:shadow "$d/etc/shadow"
	chmod 0640 "$d/etc/shadow"
	# Our own sudoers, not the machine's (whose @includedir may say anything). deploy must type
	# its password, as with `--ask-sudo-password`; sudo keeps its state under the host's /run
	# and writes no syslog or mail.
	cat >"$d/etc/sudoers" <<-EOF
		Defaults env_reset, use_pty, secure_path="$_FLEET_PATH"
		Defaults !syslog, !mail_badpass, lecture=never, lecture_status_dir=/run/sudo/lectured
		root ALL=(ALL:ALL) ALL
		deploy ALL=(ALL) ALL
	EOF
	chmod 0440 "$d/etc/sudoers"
	# sudo looks up the machine's name (the hosts share its uts namespace) and complains on
	# stderr where it does not resolve, as in a container made by debootstrap: it resolves here
	printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost\n' "$(hostname)" >"$d/etc/hosts"
	# pam_unix waits 2 s after a wrong password; tests that type one need not.
	sed 's/pam_unix\.so/& nodelay/' /etc/pam.d/common-auth >"$d/etc/common-auth"
}

# Start host NAME's nix-daemon in its namespace and wait for its socket.
_fleet_daemon_start() {
	local name=$1 d=$FLEET_DIR/$1
	rm -f "$d/nix/var/nix/daemon-socket/socket"
	_fleet_ns_spawn "$name" "$d/nix-daemon.log" nix-daemon || return 1
	echo "$_FLEET_PID" >"$d/nix-daemon.pid"
	if ! _fleet_wait 10 test -S "$d/nix/var/nix/daemon-socket/socket"; then
		_fleet_err "nix-daemon of '$name' did not start: $(tail -n 5 "$d/nix-daemon.log")"
		return 1
	fi
}

# fleet_daemon_restart NAME: host NAME's nix-daemon again, which reads its nix.conf anew (it
# reads it when it starts, as on a machine, where a changed nix.conf restarts the service).
fleet_daemon_restart() {
	local name=$1 d=$FLEET_DIR/$1 pid
	pid=$(cat "$d/nix-daemon.pid") || return 1
	kill "$pid" 2>/dev/null
	_fleet_wait 10 _fleet_gone "$pid" || { _fleet_err "nix-daemon of '$name' did not stop"; return 1; }
	_fleet_daemon_start "$name"
}

# Start host NAME (already in $FLEET_DIR/NAME): namespace, nix-daemon, then sshd on the next
# free address of $FLEET_NET.
_fleet_host_start() {
	local name=$1 arch=$2 d=$FLEET_DIR/$1 in=/run/fleet/$1 addr
	mkdir -p "$d/nix" "$d/etc-nix"
	chmod 0755 "$d" "$d/nix" "$d/etc-nix"
	printf '%s\ntrusted-users = root deploy fishy\n' "$_FLEET_NIX_CONF" >"$d/etc-nix/nix.conf"
	# (root's own nix-store opens the store itself: only the daemon asks)
	[ "$arch" != untrusted ] || sed -i 's/^trusted-users = root /trusted-users = /' "$d/etc-nix/nix.conf"
	local nixsys= cpu=$arch order=
	case $arch in
	riscv64) nixsys=riscv64-linux ;;
	ppc64le) nixsys=powerpc64le-linux ;;
	mips64el) nixsys=mips64el-linux cpu=mips64 order=little ;;
	mips64) nixsys=mips64-linux order=big ;;
	aarch64) nixsys=aarch64-linux ;;
	armv7l) nixsys=armv7l-linux ;;
	esac
	if [ -n "$nixsys" ]; then
		# A board of another cpu: its nix builds that cpu's derivations (with /bin/sh as
		# builder they run natively) and refuses x86_64-linux ones, and uname (and
		# kernel.arch) say its cpu, in uname's words (ppc64le, where Nix says powerpc64le).
		echo "system = $nixsys" >>"$d/etc-nix/nix.conf"
		cp /usr/bin/uname "$d/uname.real"
		printf '#!/bin/sh\n%s/uname.real "$@" | sed s/x86_64/%s/g\n' "$in" "$cpu" >"$d/uname"
		chmod 0755 "$d/uname"
		# and so does the kernel's own arch, which the deploy reads first
		echo "$cpu" >"$d/arch"
		# and its byte order (Linux 6.2 on), where uname's mips64 says none
		[ -z "$order" ] || echo "$order" >"$d/byteorder"
	fi
	_fleet_users "$d" "$name" || return 1
	# Its own boot id and `reboot` (fleet-holder mounts them; see fleet-reboot).
	cat /proc/sys/kernel/random/uuid >"$d/boot_id"
	chmod 0644 "$d/boot_id"
	echo "${arch:-none}" >"$d/reboot-mode"
	mkdir -p "$d/sbin"
	printf '#!/bin/sh\nexec /bin/sh /run/fleet/bin/fleet-reboot %s "$@"\n' "$in" >"$d/sbin/reboot"
	chmod 0755 "$d/sbin" "$d/sbin/reboot"
	ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$d/ssh_host_ed25519_key" || return 1
	: >"$d/sshd.log"
	: >"$d/commands.log"
	chmod 0666 "$d/commands.log"

	_fleet_holder_start "$name" host || return 1
	# The daemon comes first: without it, deploy and fishy could not reach the store.
	_fleet_daemon_start "$name" || return 1

	# Take the next address whose port is free. Another fleet (another bats file) may grab
	# one between the check and sshd's bind: then sshd fails to bind, and we move on.
	while :; do
		((_FLEET_NEXT <= 254)) || { _fleet_err "no free address left in ${FLEET_NET}0/24"; return 1; }
		addr=$FLEET_NET$_FLEET_NEXT
		_FLEET_NEXT=$((_FLEET_NEXT + 1))
		[ -z "$(ss -Hltn "src $addr:$FLEET_PORT")" ] || continue
		cat >"$d/sshd_config" <<-EOF
			# sshd of fake host $name (tests/lib/fleet.bash)
			ListenAddress $addr:$FLEET_PORT
			HostKey $in/ssh_host_ed25519_key
			PidFile $in/sshd.pid
			AuthorizedKeysFile /run/fleet/authorized_keys
			ForceCommand /run/fleet/bin/sshd-logcmd $in/commands.log
			# One "Accepted publickey" line per handshake: fleet_handshakes counts them.
			LogLevel VERBOSE
			UsePAM no
			StrictModes no
			PermitRootLogin prohibit-password
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			PrintMotd no
			PrintLastLog no
			Subsystem sftp /usr/lib/openssh/sftp-server
		EOF
		[ "$arch" != noforward ] || echo 'AllowStreamLocalForwarding no' >>"$d/sshd_config"
		: >"$d/sshd.log"
		_fleet_ns_spawn "$name" "$d/sshd.out" /usr/sbin/sshd -D -f "$in/sshd_config" \
			-E "$in/sshd.log" || return 1
		_fleet_wait 10 _fleet_sshd_settled "$_FLEET_PID" "$d/sshd.log" "$addr" || true
		if grep -q "Server listening on $addr port $FLEET_PORT" "$d/sshd.log"; then
			echo "$addr" >"$d/addr"
			return 0
		fi
		grep -q 'Address already in use' "$d/sshd.log" && continue
		_fleet_err "sshd of '$name' did not start: $(tail -n 5 "$d/sshd.log" "$d/sshd.out")"
		return 1
	done
}

# True once the sshd with pid PID, logging to LOG, listens on ADDR or has given up.
_fleet_sshd_settled() {
	grep -q "Server listening on $3 port $FLEET_PORT" "$2" ||
		[ -z "$(_fleet_proc_stat "$1")" ] || [ "$(_fleet_proc_stat "$1" | cut -d' ' -f2)" = Z ]
}

fleet_start() {
	local spec name arch known
	[ $# -gt 0 ] || { _fleet_err "fleet_start: no host names"; return 1; }
	if [ -z "${FLEET_DIR-}" ]; then
		if [ -n "${BATS_FILE_TMPDIR-}" ]; then
			FLEET_DIR=$BATS_FILE_TMPDIR/fleet
		else
			FLEET_DIR=$(mktemp -d /tmp/fleet.XXXXXX) || return 1
		fi
	fi
	export FLEET_DIR
	[ ! -e "$FLEET_DIR/procs" ] || { _fleet_err "a fleet already runs in $FLEET_DIR"; return 1; }
	: "${FLEET_NET:=127.0.$((RANDOM % 200 + 20)).}"
	[[ $FLEET_NET =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.$ ]] ||
		{ _fleet_err "FLEET_NET must look like 127.0.N. (not '$FLEET_NET')"; return 1; }
	# Port 22, as the tool meets it in the field. A machine whose own sshd listens on
	# 0.0.0.0:22 leaves no loopback address free for it: say so rather than try them all.
	: "${FLEET_PORT:=22}"
	if [ -n "$(ss -Hltn "src 0.0.0.0:$FLEET_PORT")" ]; then
		_fleet_err "something listens on 0.0.0.0:$FLEET_PORT; stop it, or set FLEET_PORT"
		return 1
	fi
	_FLEET_NEXT=11
	mkdir -p "$FLEET_DIR/bin" "$FLEET_DIR/local/nix" "$FLEET_DIR/local/etc-nix" \
		"$FLEET_DIR/local/etc" "$FLEET_DIR/local/home"
	chmod 0755 "$FLEET_DIR" "$FLEET_DIR/bin"
	: >"$FLEET_DIR/procs"
	# FLEET_ID_PREFIX (tests/run-all.sh's, one word of [a-z0-9]): every fleet of one run
	# carries it in its tag, so that the run can stop them all however it ends
	[[ ${FLEET_ID_PREFIX-} =~ ^[a-z0-9]*$ ]] ||
		{ _fleet_err "FLEET_ID_PREFIX must be letters and digits (not '$FLEET_ID_PREFIX')"; return 1; }
	{ printf '%s' "${FLEET_ID_PREFIX-}"; od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; } >"$FLEET_DIR/id"
	install -m 0755 "$_FLEET_LIB/sshd-logcmd" "$_FLEET_LIB/fleet-holder" "$_FLEET_LIB/fleet-reboot" \
		"$_FLEET_LIB/forge-filter" "$FLEET_DIR/bin/"

	# The client side: one key for every user of every host, and an ssh config that reads
	# nothing from ~/.ssh.
	ssh-keygen -q -t ed25519 -N '' -C fleet -f "$FLEET_DIR/id_ed25519" || return 1
	install -m 0644 "$FLEET_DIR/id_ed25519.pub" "$FLEET_DIR/authorized_keys"
	: >"$FLEET_DIR/known_hosts"

	# The deployer: its own store and nix.conf, and a root whose home is its own.
	printf '%s\n' "$_FLEET_NIX_CONF" >"$FLEET_DIR/local/etc-nix/nix.conf"
	awk -F: -v OFS=: -v home="$FLEET_DIR/local/home" '$1 == "root" { $6 = home } 1' \
		/etc/passwd >"$FLEET_DIR/local/etc/passwd"
	chmod 0700 "$FLEET_DIR/local/home"
	_fleet_holder_start local local || return 1

	for spec; do
		name=${spec%%:*} arch=
		[ "$name" = "$spec" ] || arch=${spec#*:}
		case $name in
		local | bin | '' | *[!a-z0-9-]*) _fleet_err "bad host name '$name'"; return 1 ;;
		esac
		case $arch in '' | riscv64 | ppc64le | mips64el | mips64 | aarch64 | armv7l | reboot | noreturn | noforward | untrusted) ;; *) _fleet_err "unknown variant '$arch'"; return 1 ;; esac
		[ ! -e "$FLEET_DIR/$name" ] || { _fleet_err "host '$name' given twice"; return 1; }
		mkdir "$FLEET_DIR/$name"
		_fleet_host_start "$name" "$arch" || return 1
		# known_hosts names a host "ADDR" on port 22, "[ADDR]:PORT" on any other.
		known=$(fleet_addr "$name")
		[ "$FLEET_PORT" = 22 ] || known="[$known]:$FLEET_PORT"
		printf '%s %s\n' "$known" "$(cut -d' ' -f1-2 "$FLEET_DIR/$name/ssh_host_ed25519_key.pub")" \
			>>"$FLEET_DIR/known_hosts"
		printf 'Host %s\n  HostName %s\n  Port %s\n  User root\n' "$name" "$(fleet_addr "$name")" \
			"$FLEET_PORT" >>"$FLEET_DIR/ssh_config"
	done
	# curve25519 alone: OpenSSH 9.2's default key exchange (sntrup761x25519) costs the client
	# 60 ms of CPU a handshake, minutes of a suite that waits for its 2 cores. What a handshake
	# costs users is bench/'s to measure, with their default (FLEET_DEFAULT_KEX=1).
	[ "${FLEET_DEFAULT_KEX-}" = 1 ] ||
		printf 'Host *\n  KexAlgorithms curve25519-sha256\n' >>"$FLEET_DIR/ssh_config"
	cat >>"$FLEET_DIR/ssh_config" <<-EOF
		Host *
		  IdentityFile $FLEET_DIR/id_ed25519
		  IdentitiesOnly yes
		  UserKnownHostsFile $FLEET_DIR/known_hosts
		  GlobalKnownHostsFile /dev/null
		  StrictHostKeyChecking yes
		  UpdateHostKeys no
		  BatchMode yes
	EOF
	export NIX_SSHOPTS="-F $FLEET_DIR/ssh_config"
	export NIX_CONFIG=$_FLEET_NIX_CONF
	# A guard: a test that runs nix outside fleet_local or fleet_exec would use the machine's
	# store. With this, its nix fails with "cannot connect to socket at '.../no-nix-outside-
	# the-fleet'" instead. fleet_local and fleet_exec drop it.
	export NIX_REMOTE="unix://$FLEET_DIR/no-nix-outside-the-fleet"
}

fleet_stop() {
	local pid start stat round victims
	# procs marks a directory fleet_start has taken: never remove anything else.
	[ -n "${FLEET_DIR-}" ] && [ -f "$FLEET_DIR/procs" ] || return 0
	# Kill what we started (it may not have reached its namespace, if start failed) and
	# whatever else runs in our namespaces: sshd's sessions, builds, ssh masters of the tool,
	# orphans among them. TERM first; KILL what is left after 2 s.
	for round in $(seq 1 100); do
		victims=()
		if [ -f "$FLEET_DIR/procs" ]; then
			while read -r pid start; do
				stat=$(_fleet_proc_stat "$pid")
				[ -n "$start" ] && [ "${stat% *}" = "$start" ] && [ "${stat#* }" != Z ] &&
					victims+=("$pid")
			done <"$FLEET_DIR/procs"
		fi
		# An empty id would match every fleet's processes.
		# shellcheck disable=SC2207 # pids hold no spaces
		[ ! -s "$FLEET_DIR/id" ] || victims+=($(_fleet_pids "$(_fleet_tag)"))
		((${#victims[@]})) || break
		if ((round == 1)); then
			kill -s TERM "${victims[@]}" 2>/dev/null || true
		elif ((round >= 40)); then
			kill -s KILL "${victims[@]}" 2>/dev/null || true
		fi
		sleep 0.05
	done
	((${#victims[@]} == 0)) || _fleet_err "processes survived fleet_stop: ${victims[*]}"
	# Store paths are read-only.
	chmod -R u+w "$FLEET_DIR" 2>/dev/null
	rm -rf "$FLEET_DIR"
	[ ! -e "$FLEET_DIR" ] || _fleet_err "cannot remove $FLEET_DIR"
}

# Set _FLEET_LOCAL to the command line that runs a command (appended to it) in the deployer;
# ENV_OPTION... go to its `env`. nsenter starts commands at the namespace's root directory:
# go back to where we are. HOME is the deployer's own (nix caches, ~/.ssh), NIX_REMOTE
# unset (see fleet_start); everything else is kept. Every step execs the next, so the command keeps the pid that nsenter got.
_fleet_local_argv() {
	local ns
	_fleet_ns local || return 1
	ns=$_FLEET_NS
	# shellcheck disable=SC2016 # for that sh
	_FLEET_LOCAL=(nsenter --mount="$ns" -- /bin/sh -c 'cd -- "$1" && shift && exec "$@"'
		fleet_local "$PWD" env "$@" -u NIX_REMOTE -u SSH_AUTH_SOCK -u XDG_CONFIG_HOME -u XDG_CACHE_HOME
		-u XDG_DATA_HOME -u XDG_STATE_HOME HOME="$FLEET_DIR/local/home"
		XDG_RUNTIME_DIR=/run/user/0)
}

fleet_local() {
	_fleet_local_argv || return 1
	# fd 3 closed: ssh masters the command leaves behind must not hold bats.
	"${_FLEET_LOCAL[@]}" "$@" 3>&-
}

fleet_local_bg() {
	local log=$1
	shift
	# A background command of a non-interactive shell starts with SIGINT ignored, which a
	# test that interrupts it does not want.
	_fleet_local_argv --default-signal=INT || return 1
	"${_FLEET_LOCAL[@]}" "$@" </dev/null >"$log" 2>&1 3>&- &
	# shellcheck disable=SC2034 # for the caller
	FLEET_BG_PID=$!
}

fleet_exec() {
	local name=$1 ns
	shift
	_fleet_ns "$name" || return 1
	ns=$_FLEET_NS
	# nsenter starts the command in the namespace's root directory.
	nsenter --mount="$ns" -- env -i PATH="$_FLEET_PATH" \
		HOME="/run/fleet/$name/root-home" USER=root LOGNAME=root SHELL=/bin/bash "$@" 3>&-
}

fleet_addr() {
	cat "${FLEET_DIR-}/$1/addr" 2>/dev/null || _fleet_err "no host '$1' in this fleet"
}

fleet_handshakes() {
	[ -f "${FLEET_DIR-}/$1/sshd.log" ] || { _fleet_err "no host '$1' in this fleet"; return 1; }
	grep -c 'Accepted publickey' "$FLEET_DIR/$1/sshd.log" || true
}

fleet_commands() {
	[ -f "${FLEET_DIR-}/$1/commands.log" ] || { _fleet_err "no host '$1' in this fleet"; return 1; }
	wc -l <"$FLEET_DIR/$1/commands.log" | tr -d ' '
}

fleet_command_log() {
	cat "${FLEET_DIR-}/$1/commands.log" || _fleet_err "no host '$1' in this fleet"
}

fleet_reset_counts() {
	local name
	for name; do
		[ -f "${FLEET_DIR-}/$name/sshd.log" ] || { _fleet_err "no host '$name' in this fleet"; return 1; }
		# Both files are opened in append mode, so truncating them under sshd is safe.
		: >"$FLEET_DIR/$name/sshd.log"
		: >"$FLEET_DIR/$name/commands.log"
	done
}

fleet_ps() {
	local pids
	[ -f "${FLEET_DIR-}/$1/ready" ] || { _fleet_err "no host '$1' in this fleet"; return 1; }
	pids=$(_fleet_pids "$(_fleet_tag "$1") " | paste -sd, -)
	[ -z "$pids" ] || ps -o pid=,args= -p "$pids" || true
}

fleet_seed() {
	local name=$1 closure
	local - # pipefail for this function only
	set -o pipefail
	shift
	closure=$(fleet_local nix-store --query --requisites "$@") || return 1
	# --requisites lists dependencies first, the order --import needs.
	# shellcheck disable=SC2086 # store paths hold no spaces
	fleet_local nix-store --export $closure | fleet_exec "$name" nix-store --import >/dev/null
}

fleet_build() {
	local json
	json=$(fleet_local nix build --no-link --json "$@") || return 1
	# [{"drvPath":"...","outputs":{"out":"/nix/store/..."}}]; Nix 2.8 has no --print-out-paths.
	printf '%s\n' "$json" | grep -o '"out":"[^"]*"' | cut -d'"' -f4
}

flake_copy() {
	local dir=$1
	mkdir -p "$dir"
	# Inside a git work tree nix would see only git-added files of the copy.
	if git -C "$dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		_fleet_err "flake_copy: $dir is inside a git work tree"
		return 1
	fi
	cp -R "$_FLEET_LIB/../flake/." "$dir/"
	chmod -R u+w "$dir"
	[ $# -lt 2 ] || printf '%s\n' "$2" >"$dir/tag"
}

# fleet_aliases NAME PREFIX COUNT: host NAME also answers as COUNT hosts PREFIX001, PREFIX002...
# (ssh aliases of its address): each a host of its own to the tool, with its own /run (deploy
# lock, current system, activations: see sshd-alias), sharing NAME's sshd, nix-daemon and store.
# Hundreds of hosts for the price of one. NAME's sshd restarts, taking that many connections at
# once (MaxStartups); fleet_exec NAME sees an alias's /run as /run/aliases/ALIAS.
fleet_aliases() {
	local name=$1 prefix=$2 count=$3 d=$FLEET_DIR/$1 in=/run/fleet/$1 i alias old
	[ -f "$d/ready" ] || { _fleet_err "no host '$name' in this fleet"; return 1; }
	install -m 0755 "$_FLEET_LIB/sshd-alias" "$FLEET_DIR/bin/"
	old=$(cat "$d/sshd.pid") || return 1
	kill "$old"
	_fleet_wait 10 _fleet_gone "$old" || { _fleet_err "sshd of '$name' did not stop"; return 1; }
	# sshd keeps the first value of a keyword: these go first.
	{
		printf '%s\n' "ForceCommand /run/fleet/bin/sshd-alias $in/commands.log" \
			'AcceptEnv NRR_ALIAS' 'MaxStartups 2000' 'PerSourceMaxStartups none'
		grep -v '^ForceCommand' "$d/sshd_config"
	} >"$d/sshd_config.new" && mv "$d/sshd_config.new" "$d/sshd_config"
	: >"$d/sshd.log"
	_fleet_ns_spawn "$name" "$d/sshd.out" /usr/sbin/sshd -D -f "$in/sshd_config" \
		-E "$in/sshd.log" || return 1
	_fleet_wait 10 _fleet_sshd_settled "$_FLEET_PID" "$d/sshd.log" "$(fleet_addr "$name")" || true
	grep -q "Server listening on" "$d/sshd.log" ||
		{ _fleet_err "sshd of '$name' did not restart: $(tail -n 5 "$d/sshd.log")"; return 1; }
	for ((i = 1; i <= count; i++)); do
		printf -v alias '%s%03d' "$prefix" "$i"
		printf 'Host %s\n  HostName %s\n  Port %s\n  User root\n  SetEnv NRR_ALIAS=%s\n' \
			"$alias" "$(fleet_addr "$name")" "$FLEET_PORT" "$alias"
	done >>"$FLEET_DIR/ssh_config"
}

# True once process PID is gone (or a zombie).
_fleet_gone() {
	local st
	st=$(_fleet_proc_stat "$1")
	[ -z "$st" ] || [ "${st#* }" = Z ]
}

fleet_nginx() {
	local name=$1 root=$2 d=$FLEET_DIR/$1/nginx in=/run/fleet/$1/nginx addr
	command -v nginx >/dev/null || { _fleet_err "nginx is not installed"; return 1; }
	addr=$(fleet_addr "$name") || return 1
	mkdir -p "$d/tmp"
	# paths as NAME's namespace sees them (the fleet's directory is /run/fleet there)
	nginx_cache_conf "$in" "$addr:80" "$root" >"$d/nginx.conf"
	_fleet_ns_spawn "$name" "$d/out.log" nginx -e "$in/error.log" -p "$in" -c "$in/nginx.conf" ||
		return 1
	_fleet_wait 10 eval "(exec 9<>/dev/tcp/$addr/80) 2>/dev/null" ||
		{ _fleet_err "nginx on '$name' did not start: $(tail -n 5 "$d/error.log" "$d/out.log")"; return 1; }
	echo "http://$addr"
}
