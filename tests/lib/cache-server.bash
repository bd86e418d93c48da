# shellcheck shell=bash
# Test binary caches on 127.0.0.1, and a private Nix store to fill them, for bats files and
# bench/cache-bench.
#
#   setup_file()    { cache_servers_init; }
#   teardown_file() { cache_servers_stop; }
#   @test ... { url=$(cache_serve_static "$dir"); ... }
#
# Servers (each prints its URL, http://127.0.0.1:PORT, once it accepts connections):
#   cache_serve_static DIR        `python3 -m http.server` (HTTP/1.0: a connection a request)
#   cache_serve_faulty DIR        an HTTP/1.1 keep-alive server over DIR that misbehaves on
#                                 demand: DIR/.status/FILE holding "CODE [N]" answers CODE for
#                                 FILE (the first N times only, when N is given); a file
#                                 DIR/.stall/FILE makes it never answer for FILE. Every request
#                                 path is appended to DIR/.requests.
#   cache_serve_nginx DIR [MODE]  nginx, HTTP/1.1 keep-alive over plain http; MODE h2c:
#                                 HTTP/2 without TLS (prior knowledge only); MODE tls:
#                                 https://, HTTP/2 or 1.1 by ALPN, with the certificate of
#                                 cache_tls_cert
#   cache_tls_cert                print the path of a self-signed certificate for 127.0.0.1
#                                 (made once), the CA file clients must trust
#   cache_serve_mute              accepts connections and never reads or answers
#   cache_closed_url              a URL where nothing listens (connection refused)
#   cache_servers_stop            stops every server started since cache_servers_init
#
# A private store, so that nothing reaches this machine's /nix or /etc/nix:
#   cache_nix_init DIR            make DIR/nix, DIR/etc-nix (an offline nix.conf: no
#                                 substituters, no sandbox, flakes on) and DIR/home
#   cache_nix DIR CMD...          run CMD in a mount namespace where DIR/nix is /nix and
#                                 DIR/etc-nix is /etc/nix, with HOME (and nix's narinfo disk
#                                 cache) in DIR/home
#
# Servers run in the background cut off from bats (fd 3 closed, stdin /dev/null); their pids
# and start times are kept in $CACHE_SERVER_DIR/pids, and only those processes are killed.

# shellcheck source=SCRIPTDIR/nginx.bash
source "${BASH_SOURCE[0]%/*}/nginx.bash"

cache_servers_init() {
	if [ -z "${CACHE_SERVER_DIR-}" ]; then
		CACHE_SERVER_DIR=$(mktemp -d "${BATS_FILE_TMPDIR:-/tmp}/cache-servers.XXXXXX") || return 1
	fi
	export CACHE_SERVER_DIR
	: >"$CACHE_SERVER_DIR/pids"
}

_cache_err() {
	printf 'cache-server: %s\n' "$*" >&2
	return 1
}

# Wait up to 10 s until LOG holds a line matching the sed script SED's output; print it.
_cache_wait_log() {
	local log=$1 sed=$2 got i
	for ((i = 0; i < 200; i++)); do
		got=$(sed -n "$sed" "$log" 2>/dev/null | head -n 1)
		[ -n "$got" ] && { echo "$got"; return 0; }
		sleep 0.05
	done
	return 1
}

# Wait until something accepts connections on 127.0.0.1:PORT.
_cache_wait_port() {
	local i
	for ((i = 0; i < 200; i++)); do
		(exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# Start CMD in the background, output to LOG; record its pid.
_cache_spawn() {
	local log=$1
	shift
	"$@" </dev/null >"$log" 2>&1 3>&- &
	_CACHE_PID=$!
	echo "$_CACHE_PID $(_cache_starttime "$_CACHE_PID")" >>"$CACHE_SERVER_DIR/pids"
}

cache_serve_static() {
	local log port
	log=$(mktemp "$CACHE_SERVER_DIR/static.XXXXXX")
	_cache_spawn "$log" python3 -u -m http.server --bind 127.0.0.1 --directory "$1" 0
	port=$(_cache_wait_log "$log" 's/^Serving HTTP on .* port \([0-9]*\).*/\1/p') ||
		{ _cache_err "http.server did not start: $(cat "$log")"; return 1; }
	echo "http://127.0.0.1:$port"
}

_CACHE_FAULTY_PY='
import http.server, os, sys, time
root = sys.argv[1]
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def __init__(self, *args, **kw):
        super().__init__(*args, directory=root, **kw)
    def log_message(self, *args):
        pass
    def do_GET(self):
        name = self.path.lstrip("/")
        with open(os.path.join(root, ".requests"), "a") as f:
            f.write(self.path + "\n")
        if os.path.exists(os.path.join(root, ".stall", name)):
            time.sleep(60)
            return
        ctl = os.path.join(root, ".status", name)
        if os.path.exists(ctl):
            words = open(ctl).read().split()
            left = int(words[1]) if len(words) > 1 else 1
            if left > 0:
                if len(words) > 1:
                    open(ctl, "w").write("%s %d\n" % (words[0], left - 1))
                body = b"injected failure\n"
                self.send_response(int(words[0]))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        super().do_GET()
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("port", server.server_address[1], flush=True)
server.serve_forever()
'

cache_serve_faulty() {
	local log port
	log=$(mktemp "$CACHE_SERVER_DIR/faulty.XXXXXX")
	mkdir -p "$1/.status" "$1/.stall"
	_cache_spawn "$log" python3 -u -c "$_CACHE_FAULTY_PY" "$1"
	port=$(_cache_wait_log "$log" 's/^port \([0-9]*\)$/\1/p') ||
		{ _cache_err "faulty server did not start: $(cat "$log")"; return 1; }
	echo "http://127.0.0.1:$port"
}

cache_serve_mute() {
	local log port
	log=$(mktemp "$CACHE_SERVER_DIR/mute.XXXXXX")
	_cache_spawn "$log" python3 -u -c '
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print("port", s.getsockname()[1], flush=True)
time.sleep(600)'
	port=$(_cache_wait_log "$log" 's/^port \([0-9]*\)$/\1/p') ||
		{ _cache_err "mute server did not start: $(cat "$log")"; return 1; }
	echo "http://127.0.0.1:$port"
}

# A port that was free a moment ago: nothing listens there.
cache_closed_url() {
	echo "http://127.0.0.1:$(python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')"
}

cache_tls_cert() {
	local d=$CACHE_SERVER_DIR
	if [ ! -s "$d/cert.pem" ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
			-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
			-keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1 ||
			{ _cache_err "openssl cannot make a certificate"; return 1; }
	fi
	echo "$d/cert.pem"
}

cache_serve_nginx() {
	local root=$1 mode=${2-} d port try listen scheme=http tls=
	command -v nginx >/dev/null || { _cache_err "nginx is not installed"; return 1; }
	d=$(mktemp -d "$CACHE_SERVER_DIR/nginx.XXXXXX")
	mkdir -p "$d/tmp"
	case $mode in
	'') listen= ;;
	h2c) listen=' http2' ;;
	tls)
		listen=' ssl http2' scheme=https
		cache_tls_cert >/dev/null || return 1
		tls="ssl_certificate $CACHE_SERVER_DIR/cert.pem; ssl_certificate_key $CACHE_SERVER_DIR/key.pem;"
		;;
	tls-redirect=*)
		# https:// that sends every request on to another URL (a 302), for the redirect rules
		listen=' ssl' scheme=https
		cache_tls_cert >/dev/null || return 1
		tls="ssl_certificate $CACHE_SERVER_DIR/cert.pem; ssl_certificate_key $CACHE_SERVER_DIR/key.pem; location / { return 302 ${mode#tls-redirect=}\$request_uri; }"
		;;
	*) _cache_err "cache_serve_nginx: unknown mode '$mode'"; return 1 ;;
	esac
	# Another process may take the port between the look and nginx's bind: try again.
	for ((try = 0; try < 5; try++)); do
		port=$(cache_closed_url) && port=${port##*:}
		nginx_cache_conf "$d" "127.0.0.1:$port$listen" "$root" "$tls" >"$d/nginx.conf"
		_cache_spawn "$d/out.log" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf"
		if _cache_wait_port "$port" && kill -0 "$_CACHE_PID" 2>/dev/null; then
			echo "$scheme://127.0.0.1:$port"
			return 0
		fi
		grep -q 'Address already in use' "$d/error.log" "$d/out.log" 2>/dev/null || break
	done
	_cache_err "nginx did not start: $(tail -n 5 "$d/error.log" "$d/out.log")"
}

# Print the start time of process PID (field 22 of /proc/PID/stat, counted after the command
# name), or nothing if it is gone or a zombie: with the pid it names a process for good.
_cache_starttime() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	rest=${stat##*) }
	# shellcheck disable=SC2086 # split the fields on purpose
	set -- $rest
	[ "$1" = Z ] || printf '%s\n' "${20}"
}

cache_servers_stop() {
	local pid start i
	[ -n "${CACHE_SERVER_DIR-}" ] && [ -f "$CACHE_SERVER_DIR/pids" ] || return 0
	while read -r pid start; do
		# only the process we started, not another that got its pid since
		if [ -z "$start" ] || [ "$(_cache_starttime "$pid")" != "$start" ]; then
			continue
		fi
		kill "$pid" 2>/dev/null || continue
		# Reap our own children; wait up to 5 s for others (started in a subshell).
		wait "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			[ "$(_cache_starttime "$pid")" = "$start" ] || continue 2
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null || true
	done <"$CACHE_SERVER_DIR/pids"
	: >"$CACHE_SERVER_DIR/pids"
	return 0
}

cache_nix_init() {
	mkdir -p "$1/nix" "$1/etc-nix" "$1/home" || return 1
	printf '%s\n' 'sandbox = false' 'substituters =' 'build-users-group =' \
		'experimental-features = nix-command flakes' >"$1/etc-nix/nix.conf"
}

cache_nix() {
	local dir=$1
	shift
	if [ ! -d "$dir/nix" ] || [ ! -d "$dir/etc-nix" ]; then
		_cache_err "no private store in '$dir'"
		return 1
	fi
	# The mounts must succeed, or CMD would run against the machine's store: sh -e. The
	# private nix.conf rules: no NIX_CONFIG, no NIX_REMOTE from outside.
	# shellcheck disable=SC2016 # expanded by that sh
	env -u NIX_CONFIG -u NIX_REMOTE HOME="$dir/home" XDG_CACHE_HOME="$dir/home/.cache" \
		unshare -m --propagation private sh -ec \
		'mount --bind "$1/nix" /nix; mount --bind "$1/etc-nix" /etc/nix; shift; exec "$@"' \
		sh "$dir" "$@"
}
