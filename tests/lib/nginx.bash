# shellcheck shell=bash
# The nginx configuration of a test binary cache, for tests/lib/cache-server.bash (nginx on
# 127.0.0.1) and tests/lib/fleet.bash (nginx in a fleet host's namespace): one place for what
# nix needs of a cache's web server.
#
#   nginx_cache_conf DIR LISTEN ROOT [SERVER_EXTRA]
# prints a configuration that serves ROOT on LISTEN (nginx's listen argument) in the
# foreground as root, with its pid, logs and temp files in DIR (as nginx will see it), nix's
# content types, keepalive for nix's many requests, and SERVER_EXTRA inside the server block.
nginx_cache_conf() {
	local dir=$1 listen=$2 root=$3 extra=${4-}
	cat <<-EOF
		# test binary cache (tests/lib/nginx.bash)
		daemon off;
		master_process off;
		user root;
		pid $dir/nginx.pid;
		error_log $dir/error.log;
		events { worker_connections 1024; }
		http {
		    access_log $dir/access.log;
		    client_body_temp_path $dir/tmp/body;
		    proxy_temp_path $dir/tmp/proxy;
		    fastcgi_temp_path $dir/tmp/fastcgi;
		    uwsgi_temp_path $dir/tmp/uwsgi;
		    scgi_temp_path $dir/tmp/scgi;
		    types { text/x-nix-narinfo narinfo; text/x-nix-cache-info nix-cache-info; }
		    default_type application/octet-stream;
		    keepalive_requests 1000000;
		    http2_max_requests 1000000;
		    http2_max_concurrent_streams 128;
		    server {
		        listen $listen;
		        $extra
		        root $root;
		    }
		}
	EOF
}
