#!/usr/bin/env bats
# Colmena hives: found as colmena finds them, evaluated by our own evaluator (lib/hive/eval.nix,
# carried in the binary) as colmena evaluates them, their deployment options read and checked,
# and their nodes selected by --on rules. The test hive (tests/hive) is shaped like a guide's;
# its nixpkgs is a stand-in (tests/hive/nixpkgs) with a module system of its own.

# shellcheck disable=SC2016 # Nix code and remote commands are in single quotes on purpose
bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1
	export H=$BATS_FILE_TMPDIR/hive
	# -L: the stand-in's builders are links to tests/flake's
	cp -RL "$BATS_TEST_DIRNAME/hive" "$H"
	rm -rf "$H/evaluated"
	export EV=$BATS_FILE_TMPDIR/evaluated
	cp -RL "$BATS_TEST_DIRNAME/hive/evaluated" "$EV"
	cp -RL "$BATS_TEST_DIRNAME/hive/nixpkgs" "$EV/nixpkgs"
	# the same hive without its flake.nix: hive.nix, with <nixpkgs>
	export P=$BATS_FILE_TMPDIR/plain
	cp -R "$H" "$P"
	rm "$P/flake.nix"
	export NIX_PATH=nixpkgs=$P/nixpkgs
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
	cd "$BATS_TEST_TMPDIR"
}

tt() { fleet_local "$TT" "$@"; }

# A hive.nix of one node `a` whose module is $1, with the stand-in as meta.nixpkgs.
bad_hive() {
	cat >"$BATS_TEST_TMPDIR/hive.nix" <<-EOF
		{
		  meta.nixpkgs = import $P/nixpkgs { system = "x86_64-linux"; };
		  a = $1;
		}
	EOF
}

# The evaluator's answer to a question, as nix gives it for the command hive.c builds.
raw_answer() {
	"$TT" hive-argv "$@" >argv
	fleet_local xargs -0 -a argv sh -c '"$0" "$@" 2>/dev/null'
}

# info JSON of a hive of one node with deployment options $1, for the pure tests.
info_json() {
	printf '{"nodes":["n"],"meta":{"name":"h","description":"d","machinesFile":null,"allowApplyAll":%s},"deployment":{"n":%s}}' \
		"${2:-true}" "$1"
}
# A key with attributes $1 (JSON members) on top of valid ones.
key_json() {
	python3 -c 'import json,sys
k = {"name": "k", "destDir": "/run/keys", "path": "/run/keys/k", "user": "root", "group": "root",
     "permissions": "0600", "uploadAt": "pre-activation", "keyFile": None, "keyCommand": None,
     "sources": ["text"]}
k.update(json.loads("{" + sys.argv[1] + "}"))
print(json.dumps({"targetHost": "n", "targetPort": None, "targetUser": "root", "tags": [],
                  "keys": {"k": k}, "privilegeEscalationCommand": [], "sshOptions": []}))' "$1"
}

SAMPLE='{"nodes":["a.b","web1","web2","db"],"meta":{"name":"h","description":"d","machinesFile":null,"allowApplyAll":true},
"deployment":{"a.b":{"tags":[],"privilegeEscalationCommand":[],"sshOptions":[],"keys":{}},
"web1":{"tags":["web","eu-west"],"privilegeEscalationCommand":[],"sshOptions":[],"keys":{}},
"web2":{"tags":["web","us-east"],"privilegeEscalationCommand":[],"sshOptions":[],"keys":{}},
"db":{"tags":["db","eu-west"],"privilegeEscalationCommand":[],"sshOptions":[],"keys":{}}}}'

# --- finding the hive (file system only) ------------------------------------------------------

@test "find: flake.nix is preferred to hive.nix in the same directory" {
	run -0 "$TT" hive-find "$H"
	assert_output "flake $H"
}

@test "find: the search goes up from the working directory to the first hive" {
	run -0 "$TT" hive-find "$P/nixpkgs/nixos/lib"
	assert_output "file $P/hive.nix"
}

@test "find: -f names a hive file, a flake.nix, a directory, or a flake URI" {
	run -0 "$TT" hive-find -f "$H/hive.nix" /
	assert_output "file $H/hive.nix"
	run -0 "$TT" hive-find -f "$H/flake.nix" /
	assert_output "flake $H"
	run -0 "$TT" hive-find -f "$P" /
	assert_output "file $P/hive.nix"
	run -0 "$TT" hive-find -f git+https://example.invalid/hive /
	assert_output "flake git+https://example.invalid/hive"
}

@test "find: no hive is a usage error (2) with a hint; so is a -f that names nothing" {
	mkdir empty
	run -2 "$TT" hive-find "$BATS_TEST_TMPDIR/empty"
	assert_line --index 0 "error: no hive found: no flake.nix or hive.nix in '$BATS_TEST_TMPDIR/empty' or any directory above it"
	assert_line --index 1 --partial "hint: run this in the hive's directory, or name the hive with -f/--config"
	run -2 "$TT" hive-find -f nothing-here /
	assert_output "error: no hive at 'nothing-here': no such file or directory"
	run -2 "$TT" hive-find -f "$BATS_TEST_TMPDIR/empty" /
	assert_output "error: no hive in '$BATS_TEST_TMPDIR/empty': it has no flake.nix or hive.nix"
}

# --- reading deployment options (pure) -------------------------------------------------------

@test "info: every deployment option and a key's metadata are read" {
	info_json '{"targetHost":"10.0.0.5","targetPort":2222,"targetUser":"deploy","tags":["a","b"],
		"allowLocalDeployment":true,"buildOnTarget":true,"replaceUnknownProfiles":false,
		"privilegeEscalationCommand":["doas","--"],"sshOptions":["-o","X=1"],
		"keys":{"k":{"name":"k.pem","destDir":"/etc/k","path":"/etc/k/k.pem","user":"nginx","group":"www-data",
		"permissions":"0640","uploadAt":"post-activation","keyFile":null,"keyCommand":["pass","show","k"],
		"sources":["keyCommand"]}}}' >info.json
	run -0 "$TT" hive-info <info.json
	assert_output - <<-'EOF'
		hive name=h description=d machinesFile=(null) allowApplyAll=1
		node n host=10.0.0.5 port=2222 user=deploy tags=[a b] local=1 buildOnTarget=1 replaceUnknown=0 escalation=[doas --] ssh=[-o X=1]
		key n/k name=k.pem path=/etc/k/k.pem destDir=/etc/k owner=nginx:www-data mode=0640 at=post source= command=[pass show k]
	EOF
}

@test "info: null targetHost, targetPort and targetUser stay unset; defaults of absent booleans" {
	info_json '{"targetHost":null,"targetPort":null,"targetUser":null,"tags":[],"keys":{},
		"privilegeEscalationCommand":[],"sshOptions":[]}' >info.json
	run -0 "$TT" hive-info <info.json
	assert_line --index 1 "node n host=(null) port=0 user=(null) tags=[] local=0 buildOnTarget=0 replaceUnknown=1 escalation=[] ssh=[]"
}

@test "info: a key name must be one relative path component" {
	for name in '"a/b"' '".."' '"."' '""'; do
		key_json "\"name\": $name" >dep.json
		info_json "$(cat dep.json)" >info.json
		run -4 "$TT" hive-info <info.json
		assert_output --partial "error: key "
		assert_output --partial " of 'n': its name must be one relative path component"
	done
}

@test "info: a key's destDir must be absolute" {
	info_json "$(key_json '"destDir": "run/keys"')" >info.json
	run -4 "$TT" hive-info <info.json
	assert_output "error: key 'k' of 'n': destDir must be an absolute path"
}

@test "info: a key's user and group must be valid user names" {
	for bad in '"user": "Root"' '"user": "1x"' '"group": ""' '"user": "a b"'; do
		info_json "$(key_json "$bad")" >info.json
		run -4 "$TT" hive-info <info.json
		assert_output --partial "is not a valid"
	done
	info_json "$(key_json '"user": "svc-2", "group": "w"')" >info.json
	run -0 "$TT" hive-info <info.json
}

@test "info: a key sets exactly one of text, keyFile and keyCommand" {
	info_json "$(key_json '"sources": []')" >info.json
	run -4 "$TT" hive-info <info.json
	assert_output "error: key 'k' of 'n': it needs exactly one of text, keyFile and keyCommand"
	info_json "$(key_json '"sources": ["text", "keyFile"], "keyFile": "/k"')" >info.json
	run -4 "$TT" hive-info <info.json
	assert_output --partial "it needs exactly one of text, keyFile and keyCommand"
	# a colmenaHive's deploymentConfig: text, keyFile and keyCommand as they are
	info_json "$(key_json '"text": "s", "keyCommand": ["true"]')" >dep.json
	sed 's/"sources": \["text"\], *//; s/, *"sources": \["text"\]//' dep.json >info.json
	run -4 "$TT" hive-info <info.json
	assert_output --partial "it needs exactly one of text, keyFile and keyCommand"
}

@test "info: a targetPort that is not a port is refused" {
	info_json '{"targetPort":70000,"tags":[],"keys":{},"privilegeEscalationCommand":[],"sshOptions":[]}' >info.json
	run -4 "$TT" hive-info <info.json
	assert_output "error: node 'n': targetPort 70000 is not a port"
}

# --- selecting nodes (pure) ------------------------------------------------------------------

@test "select: names, globs and @tags, comma-separated and OR'd, in the hive's order" {
	printf '%s' "$SAMPLE" >info.json
	run -0 "$TT" hive-select 'web*' <info.json
	assert_output $'web1\nweb2'
	run -0 "$TT" hive-select '@eu-*' <info.json
	assert_output $'web1\ndb'
	run -0 "$TT" hive-select ' db , a.b,@us-east' <info.json
	assert_output $'a.b\nweb2\ndb'
	run -0 "$TT" hive-select 'a?b,w[e]b[!1]' <info.json
	assert_output $'a.b\nweb2'
}

@test "select: no --on selects every node; rules that match nothing select none" {
	printf '%s' "$SAMPLE" >info.json
	run -0 "$TT" hive-select - <info.json
	assert_output $'a.b\nweb1\nweb2\ndb'
	run -0 "$TT" hive-select 'nothing,@none' <info.json
	assert_output ''
}

@test "select: an empty rule is a usage error" {
	printf '%s' "$SAMPLE" >info.json
	run -2 "$TT" hive-select 'web1,,db' <info.json
	assert_output "error: --on 'web1,,db': an empty rule"
	run -2 "$TT" hive-select '@' <info.json
}

@test "select: allowApplyAll = false refuses a run without --on" {
	info_json '{"tags":[],"keys":{},"privilegeEscalationCommand":[],"sshOptions":[]}' false >info.json
	run -2 "$TT" hive-select - <info.json
	assert_line --index 0 "error: the hive 'h' sets meta.allowApplyAll = false: no node filter given"
	assert_line --index 1 "hint: name the nodes with --on NAME,@TAG"
	run -0 "$TT" hive-select n <info.json
	assert_output n
}

# --- the stand-in nixpkgs ---------------------------------------------------------------------

@test "stand-in: its module system behaves as nixpkgs' for what hives use" {
	echo '{ l = [ 7 ]; }' >f.nix
	cat >t.nix <<-EOF
		let
		  lib = import $P/nixpkgs/lib;
		  ev = ms: (lib.evalModules { modules = ms; }).config;
		  fails = v: !(builtins.tryEval (builtins.deepSeq v v)).success;
		  decl = { lib, ... }: with lib; {
		    options = {
		      s = mkOption { type = types.str; default = "d"; };
		      l = mkOption { type = types.listOf types.int; default = [ ]; };
		      t = mkOption { type = types.lines; default = ""; };
		      p = mkOption { type = types.nullOr types.path; default = null; };
		      i = mkOption { type = types.ints.unsigned; default = 0; };
		      b = mkOption { type = types.bool; default = false; };
		      a = mkOption {
		        default = { };
		        type = types.attrsOf (types.submodule ({ name, ... }: {
		          options.n = mkOption { type = types.str; default = name; };
		          options.e = mkOption { type = types.enum [ "x" "y" ]; default = "x"; };
		        }));
		      };
		    };
		  };
		in {
		  force = (ev [ decl { s = lib.mkForce "f"; } { s = "plain"; } { s = lib.mkDefault "def"; } ]).s;
		  plain = (ev [ decl { s = "plain"; } { s = lib.mkDefault "def"; } ]).s;
		  mkDefault = (ev [ decl { s = lib.mkOptionDefault "od"; } { s = lib.mkDefault "def"; } ]).s;
		  default = (ev [ decl ]).s;
		  order = (ev [ decl { l = lib.mkAfter [ 3 ]; } { l = [ 2 ]; } { l = lib.mkBefore [ 1 ]; } ]).l;
		  lines = (ev [ decl { t = "a"; } { t = "b"; } ]).t;
		  sub = (ev [ decl { a.k1 = { }; } { a.k1.e = "y"; a.k2 = { }; } ]).a;
		  mkIf = (ev [ decl { l = lib.mkIf false [ 9 ]; } { l = lib.mkMerge [ [ 1 ] (lib.mkIf true [ 2 ]) ]; } ]).l;
		  imports = (ev [ decl { imports = [ ./f.nix ./f.nix ]; } { imports = [ ./f.nix ]; } ]).l;
		  path = toString (ev [ decl { p = /etc/hosts; } ]).p;
		  unchecked = (ev [ decl { nope = 1; _module.check = false; } ]).s;
		  unknown = fails (ev [ decl { nope = 1; } ]).s;
		  badEnum = fails (ev [ decl { a.k.e = "z"; } ]).a;
		  badStr = fails (ev [ decl { s = 1; } ]).s;
		  badUnsigned = fails (ev [ decl { i = -1; } ]).i;
		  badPath = fails (ev [ decl { p = "relative"; } ]).p;
		  conflict = fails (ev [ decl { s = "a"; } { s = "b"; } ]).s;
		  optionsArg = (ev [ decl { s = "x"; } ({ options, ... }: { b = options.s.isDefined; }) ]).b;
		  specialArgs = (lib.evalModules { modules = [ decl ({ foo, ... }: { s = foo; }) ]; specialArgs.foo = "sa"; }).config.s;
		  moduleArgs = (ev [ decl { _module.args.bar = "ma"; } ({ bar, ... }: { s = bar; }) ]).s;
		  configArg = (ev [ decl { i = 2; } ({ config, ... }: { l = [ config.i ]; }) ]).l;
		}
	EOF
	run -0 --separate-stderr fleet_local nix-instantiate --eval --strict --json t.nix
	assert_output '{"badEnum":true,"badPath":true,"badStr":true,"badUnsigned":true,"configArg":[2],"conflict":true,"default":"d","force":"f","imports":[7],"lines":"a\nb","mkDefault":"def","mkIf":[1,2],"moduleArgs":"ma","optionsArg":true,"order":[1,2,3],"path":"/etc/hosts","plain":"plain","specialArgs":"sa","sub":{"k1":{"e":"y","n":"k1"},"k2":{"e":"x","n":"k2"}},"unchecked":"d","unknown":true}'
}

@test "stand-in: eval-config.nix gives config, options and pkgs; the toplevel is a fake NixOS system" {
	cat >t.nix <<-EOF
		let
		  r = import $P/nixpkgs/nixos/lib/eval-config.nix {
		    system = "x86_64-linux";
		    modules = [ ({ pkgs, ... }: { networking.hostName = "sa"; environment.systemPackages = [ pkgs.hello ]; }) ];
		  };
		in { inherit (r.pkgs) system; host = r.config.networking.hostName; opt = r.options.networking.hostName.isDefined;
		     top = r.config.system.build.toplevel.drvPath; }
	EOF
	run -0 --separate-stderr fleet_local nix-instantiate --read-write-mode --eval --strict --json t.nix
	drv=$(printf '%s' "$output" | python3 -c 'import json,sys; d = json.load(sys.stdin); assert d["system"] == "x86_64-linux" and d["host"] == "sa" and d["opt"], d; print(d["top"])')
	run -0 --separate-stderr fleet_local nix-store --realise "$drv"
	run -0 fleet_local test -x "$output/bin/switch-to-configuration"
}

# --- evaluating hives ------------------------------------------------------------------------

# The hive as test-tool hive-load prints it, with $1 for where keyFile points.
expected_info() {
	cat <<-EOF
		hive name=testhive description=The nixos-rebuild-remote test hive machinesFile=(null) allowApplyAll=1
		node db host=t2 port=22 user=deploy tags=[all db] local=0 buildOnTarget=1 replaceUnknown=1 escalation=[sudo -S --] ssh=[-o ServerAliveInterval=5]
		key db/db-password name=db-password path=/run/keys/db-password destDir=/run/keys owner=root:root mode=0600 at=pre source= command=[sh -c echo generated]
		node local.example host=(null) port=0 user=root tags=[all] local=1 buildOnTarget=0 replaceUnknown=0 escalation=[sudo -H --] ssh=[]
		node web host=t1 port=0 user=root tags=[all web edge] local=0 buildOnTarget=0 replaceUnknown=1 escalation=[sudo -H --] ssh=[]
		key web/from-file name=from-file path=/etc/secrets/from-file destDir=/etc/secrets owner=root:root mode=0600 at=post source=file:$1/secret.txt
		key web/web.key name=web.key path=/run/keys/web.key destDir=/run/keys owner=nginx:nginx mode=0640 at=pre source=text
		node worker host=worker port=0 user=root tags=[all back] local=0 buildOnTarget=0 replaceUnknown=1 escalation=[sudo -H --] ssh=[]
	EOF
}

@test "eval: a flake's raw colmena output gives its nodes, meta and deployment options" {
	cd "$H/nixpkgs"
	run -0 tt hive-load
	# in a flake, a keyFile path is in the flake's store copy (as with colmena)
	output=$(printf '%s\n' "$output" | sed 's|file:/nix/store/[a-z0-9]*-source/|file:STORE/|')
	assert_output "$(expected_info STORE)"
}

@test "eval: a hive.nix without meta.nixpkgs uses <nixpkgs>" {
	cd "$P"
	run -0 tt hive-load
	assert_output "$(expected_info "$P")"
	run -4 fleet_local env -u NIX_PATH "$TT" hive-load
	assert_output --partial "error: evaluating the hive '$P/hive.nix' failed"
	assert_output --partial "nixpkgs"
}

@test "eval: a key's text never leaves the evaluator; its sources do" {
	cd "$H"
	run -0 raw_answer colmena info
	refute_output --partial "a secret text"
	assert_output --partial '"sources":["text"]'
	cd "$P"
	run -0 raw_answer file info
	refute_output --partial "a secret text"
}

@test "eval: a flake's colmenaHive output is used as it is, key text left out" {
	cd "$EV"
	run -0 tt hive-load
	assert_output - <<-'EOF'
		hive name=evaluated description=made by hand machinesFile=(null) allowApplyAll=0
		node alpha host=t1 port=0 user=root tags=[front] local=0 buildOnTarget=0 replaceUnknown=1 escalation=[sudo -H --] ssh=[]
		key alpha/token name=token path=/run/keys/token destDir=/run/keys owner=root:root mode=0600 at=pre source=text
		node beta host=t2 port=0 user=root tags=[back] local=0 buildOnTarget=0 replaceUnknown=1 escalation=[sudo -H --] ssh=[]
	EOF
	run -0 raw_answer colmenaHive info
	refute_output --partial "evaluated secret"
	run -0 tt hive-toplevels 'alpha'
	assert_output --regexp '^alpha /nix/store/[a-z0-9]{32}-nixos-system-alpha-25.05.standin.drv /nix/store/[a-z0-9]{32}-nixos-system-alpha-25.05.standin$'
}

# The outputs `nix eval` was asked for, one a line, from -v's trace of a run.
outputs_asked() { grep -o "^\$ 'nix' .* 'eval' '--json' '[^']*#[A-Za-z]*'" | sed "s/.*#//; s/'\$//"; }

@test "eval: a flake that never names colmenaHive is asked for colmena first; one that makes it elsewhere is still found" {
	export XDG_CACHE_HOME=$BATS_TEST_TMPDIR/cache
	nodes='{ nodes, ... }: builtins.attrNames nodes'
	# the guides' shape: no failed evaluation of a colmenaHive before every run
	cd "$H"
	run -0 fleet_local "$NRR" eval -v -E "$nodes"
	assert_line '["db","local.example","web","worker"]'
	run -0 outputs_asked <<<"$output"
	assert_output colmena
	# flake.nix names it: colmena's order, colmenaHive first
	cd "$EV"
	run -0 fleet_local "$NRR" eval -v -E "$nodes"
	assert_line '["alpha","beta"]'
	run -0 outputs_asked <<<"$output"
	assert_output colmenaHive
	# its name made where flake.nix does not say it: colmena first, then colmenaHive
	cp -R "$EV" "$BATS_TEST_TMPDIR/elsewhere"
	cd "$BATS_TEST_TMPDIR/elsewhere"
	sed -i 's/colmenaHive = {/${"colmena" + "Hive"} = {/; /^#/d' flake.nix
	run -1 grep colmenaHive flake.nix
	run -0 fleet_local "$NRR" eval -v -E "$nodes"
	assert_line '["alpha","beta"]'
	run -0 outputs_asked <<<"$output"
	assert_output $'colmena\ncolmenaHive'
}

@test "eval: modules get name, nodes, specialArgs and nodeSpecialArgs; priorities and imports work" {
	cd "$H"
	run -0 tt hive-toplevels 'web,db'
	web_drv=$(printf '%s\n' "$output" | awk '$1 == "web" { print $2 }')
	db_drv=$(printf '%s\n' "$output" | awk '$1 == "db" { print $2 }')
	run -0 fleet_local nix show-derivation "$web_drv"
	# `nodes` (db's host name, from its nodeSpecialArgs), specialArgs, the meta overlay
	assert_output --partial 'from the meta overlay: lab, db is db-primary'
	# imported configuration.nix (plain) beats defaults' mkDefault
	assert_output --partial '\"timeZone\":\"Europe/Berlin\"'
	assert_output --partial 'inotify-tools'
	run -0 fleet_local nix show-derivation "$db_drv"
	# mkForce beats defaults' mkDefault
	assert_output --partial '\"timeZone\":\"Europe/Paris\"'
}

@test "eval: a node's system is the one its modules give built directly in colmena's order" {
	cd "$H"
	run -0 tt hive-toplevels 'worker,local.example'
	for n in worker local.example; do
		ours=$(printf '%s\n' "$output" | awk -v n="$n" '$1 == n { print $3 }')
		direct=$(fleet_local nix-build --no-out-link "$H/direct.nix" --argstr node "$n")
		[ -n "$ours" ] && [ "$ours" = "$direct" ] || fail "$n: ours '$ours', direct '$direct'"
	done
}

@test "eval: the same systems as colmena's own evaluator (with NRR_COLMENA_SRC)" {
	[ -n "${NRR_COLMENA_SRC-}" ] || skip "NRR_COLMENA_SRC (colmena's src/nix/hive) not set"
	cd "$P"
	run -0 tt hive-toplevels '*'
	ours=$(printf '%s\n' "$output" | awk '{ print $1 "=" $3 }' | sort)
	theirs=$(fleet_local nix-instantiate --eval --strict --json --expr \
		"builtins.mapAttrs (n: t: t.outPath) (import $NRR_COLMENA_SRC/eval.nix { rawHive = import $P/hive.nix; }).toplevel" |
		python3 -c 'import json,sys; [print(k + "=" + v) for k, v in sorted(json.load(sys.stdin).items())]')
	assert_equal "$ours" "$theirs"
}

@test "eval: a hive's system is one the deploy path accepts" {
	cd "$H"
	run -0 tt hive-toplevels web
	read -r _ drv out <<<"$output"
	run -0 fleet_local nix-store --realise "$drv"
	run -0 fleet_local "$NRR" switch --store-path "$out" --target-host t1
	run -0 fleet_exec t1 tail -n 1 /run/nrr-activations
	assert_output --regexp "^switch $out/bin/switch-to-configuration .* config=web "
}

@test "eval: an unknown deployment option is an evaluation error naming it" {
	bad_hive '{ deployment.targetHots = "x"; }'
	run -4 tt hive-load -f hive.nix
	assert_output --partial "error: evaluating the hive '$BATS_TEST_TMPDIR/hive.nix' failed: node 'a': The option \`deployment.targetHots' does not exist."
}

@test "eval: the nodes whose evaluation fails are named, the others not" {
	cat >hive.nix <<-EOF
		{
		  meta.nixpkgs = import $P/nixpkgs { system = "x86_64-linux"; };
		  good = { };
		  bad1 = { deployment.tags = "not a list"; };
		  bad2 = { deployment.tags = [ 1 ]; };
		}
	EOF
	run -4 tt hive-load -f hive.nix
	assert_output --partial "failed: nodes 'bad1', 'bad2': A definition for option \`deployment.tags"
	# a system that fails its assertions, under its name
	cat >hive.nix <<-EOF
		{
		  meta.nixpkgs = import $P/nixpkgs { system = "x86_64-linux"; };
		  good = { };
		  bad = { assertions = [ { assertion = false; message = "no way"; } ]; };
		}
	EOF
	run -4 nrr apply build -f "$BATS_TEST_TMPDIR/hive.nix"
	assert_line --partial "node 'bad': "
	assert_output --partial "failed for 1 of 2 nodes: 'bad'"
	run -0 --separate-stderr nrr apply build -f "$BATS_TEST_TMPDIR/hive.nix" --on good
	assert_output --regexp '^good /nix/store/'
}

@test "eval: nodes are evaluated in bounded parallel; with -k a node's failure leaves the others going" {
	cat >hive.nix <<-EOF
		{
		  meta.nixpkgs = import $P/nixpkgs { system = "x86_64-linux"; };
		  good1 = { };
		  bad = { assertions = [ { assertion = false; message = "no way"; } ]; };
		  good2 = { };
		  good3 = { };
		}
	EOF
	# without -k nothing is built, and the failure is the bad node's alone
	run -4 --separate-stderr nrr apply build -f "$BATS_TEST_TMPDIR/hive.nix" --eval-node-limit 2
	assert_output ""
	[[ $stderr == *"node 'bad': "* ]] || fail "bad's failure not under its name: $stderr"
	[[ $stderr == *"failed for 1 of 4 nodes: 'bad'"* ]] || fail "no summary: $stderr"
	[[ $stderr != *"node 'good"* ]] || fail "a good node named: $stderr"
	# -k: the others are built all the same, the status still says one failed
	run -4 --separate-stderr nrr apply build -f "$BATS_TEST_TMPDIR/hive.nix" -k
	assert_line --regexp '^good1 /nix/store/'
	assert_line --regexp '^good2 /nix/store/'
	assert_line --regexp '^good3 /nix/store/'
	refute_line --partial "bad "
	# one node per nix process at most: one process per node (-v shows them)
	run -0 --separate-stderr nrr apply build -f "$BATS_TEST_TMPDIR/hive.nix" --on 'good*' --eval-node-limit 1 -v
	assert_equal "$(grep -c 'what = "toplevels"' <<<"$stderr")" 3
	run -2 nrr apply build -f "$BATS_TEST_TMPDIR/hive.nix" --eval-node-limit 0
	assert_line --index 0 "error: --eval-node-limit '0': not a positive number or auto"
}

@test "eval: an option's type is checked (a relative destDir, a string port)" {
	bad_hive '{ deployment.keys.k = { text = "x"; destDir = "run/keys"; }; }'
	run -4 tt hive-load -f hive.nix
	assert_output --partial "node 'a': A definition for option \`deployment.keys.k.destDir' is not of type \`path'"
	bad_hive '{ deployment.targetPort = "22"; }'
	run -4 tt hive-load -f hive.nix
	assert_output --partial "node 'a': A definition for option \`deployment.targetPort' is not of type"
}

@test "eval: keys with two sources, a bad name or a bad user are refused" {
	bad_hive '{ deployment.keys.k = { text = "x"; keyCommand = [ "true" ]; }; }'
	run -4 tt hive-load -f hive.nix
	assert_output "error: key 'k' of 'a': it needs exactly one of text, keyFile and keyCommand"
	bad_hive '{ deployment.keys.k = { name = "sub/k"; text = "x"; }; }'
	run -4 tt hive-load -f hive.nix
	assert_output "error: key 'sub/k' of 'a': its name must be one relative path component"
	bad_hive '{ deployment.keys.k = { user = "Admin"; text = "x"; }; }'
	run -4 tt hive-load -f hive.nix
	assert_output "error: key 'k' of 'a': user is not a valid user name"
	# and such a node is refused before it is built
	bad_hive '{ deployment.keys.k = { }; }'
	run -4 tt hive-toplevels -f hive.nix a
	assert_output --partial "key 'k' of 'a': it needs exactly one of text, keyFile and keyCommand"
}

@test "eval: meta and network together, an unknown meta option, an evaluated hive as colmena" {
	cat >hive.nix <<-EOF
		{ meta = { nixpkgs = import $P/nixpkgs { }; }; network = { }; a = { }; }
	EOF
	run -4 tt hive-load -f hive.nix
	assert_output --partial 'both `meta` and `network`'
	cat >hive.nix <<-EOF
		{ meta = { nixpkgs = import $P/nixpkgs { }; colour = "blue"; }; a = { }; }
	EOF
	run -4 tt hive-load -f hive.nix
	assert_output --partial 'colour'
	cat >hive.nix <<-EOF
		{ __schema = "v0.5"; meta.nixpkgs = import $P/nixpkgs { }; }
	EOF
	run -4 tt hive-load -f hive.nix
	assert_output --partial 'colmenaHive'
}

@test "eval: a hive may be a function or a __functor set; network is meta's other name" {
	cat >hive.nix <<-EOF
		{ }: { network.nixpkgs = import $P/nixpkgs { }; network.name = "fn"; a = { }; }
	EOF
	run -0 tt hive-load -f hive.nix
	assert_line --index 0 --partial 'hive name=fn '
	assert_line --index 1 --partial 'node a host=a '
	cat >hive.nix <<-EOF
		{ __functor = self: { }: { meta.nixpkgs = import $P/nixpkgs { }; b = [ { } { deployment.tags = [ "x" ]; } ]; }; }
	EOF
	run -0 tt hive-load -f hive.nix
	assert_line --index 1 --partial 'node b host=b port=0 user=root tags=[x]'
}

@test "eval: a flake's meta.nixpkgs must be a package set, not a path" {
	mkdir fl
	cp -R "$P/nixpkgs" fl/nixpkgs
	cat >fl/flake.nix <<-'EOF'
		{ outputs = { self }: { colmena = { meta.nixpkgs = ./nixpkgs; a = { }; }; }; }
	EOF
	cd fl
	run -4 tt hive-load
	assert_output --partial 'meta.nixpkgs is a path or a flake input'
}

# --- colmena's commands: eval and build -------------------------------------------------------


@test "eval -E calls the expression with { lib, pkgs, nodes } and prints JSON" {
	cd "$H"
	run -0 --separate-stderr nrr eval -E '{ nodes, lib, pkgs, ... }: { names = builtins.attrNames nodes; host = nodes.db.config.networking.hostName; motd = pkgs.motd; v = lib.versionAtLeast lib.version "22.11pre"; }'
	assert_output '{"host":"db-primary","motd":"from the meta overlay","names":["db","local.example","web","worker"],"v":true}'
}

@test "colmena's commands exit 128 + the signal: SIGTERM during eval's evaluation is 143" {
	cd "$H"
	# a regular expression that backtracks for a minute (tests/flake/systems.nix, sloweval)
	nrr_bg eval -E '{ nodes, ... }: builtins.match "(a*)*b" "aaaaaaaaaaaaaaaaaaa"'
	wait_for_local_proc 'nix' || fail "no evaluation: $(cat "$BATS_TEST_TMPDIR/log")"
	sleep 1
	kill -TERM "$FLEET_BG_PID"
	wait_nrr 10
	assert_failure 143
	assert_output --partial "error: interrupted"
}

@test "eval FILE and introspect, on a hive.nix named with -f" {
	echo '{ nodes, ... }: nodes.worker.config.deployment.tags' >tags.nix
	run -0 --separate-stderr nrr eval -f "$P/hive.nix" tags.nix
	assert_output '["all","back"]'
	run -0 --separate-stderr nrr introspect --config "$P/hive.nix" --expr '{ nodes, ... }: nodes.web.config.time.timeZone'
	assert_output '"Europe/Berlin"'
}

@test "eval: no expression is a usage error; a failing one an evaluation error (4)" {
	cd "$H"
	run -2 nrr eval
	assert_line --index 0 "error: eval: no expression"
	run -4 nrr eval -E '{ nodes, ... }: nodes.nope'
	assert_output --partial "error: evaluating the hive '$H' failed"
	assert_output --partial "nope"
	run -2 nrr eval -E x --on web
	assert_output --partial "error: eval: unknown option '--on'"
}

@test "apply build --on @TAG builds the selected nodes here and prints NAME PATH" {
	cd "$H"
	run -0 --separate-stderr nrr apply build --on @back -p 3
	assert_output --regexp '^worker /nix/store/[a-z0-9]{32}-nixos-system-worker-25.05.standin$'
	run -0 fleet_local test -x "${output#worker }/bin/switch-to-configuration"
}

@test "apply build --keep-result keeps each system as .gcroots/node-NAME beside the hive" {
	cd "$P"
	run -0 --separate-stderr nrr apply build --on web --keep-result
	out=${output#web }
	run -0 readlink "$P/.gcroots/node-web"
	assert_output "$out"
	# an indirect root of the deployer's nix: the system survives garbage collection
	run -0 fleet_local sh -c 'for l in /nix/var/nix/gcroots/auto/*; do readlink "$l"; done'
	assert_line "$P/.gcroots/node-web"
}

@test "build: a node built on its target is evaluated only, unless --no-build-on-target" {
	cd "$H"
	run -0 --separate-stderr nrr apply build --on db
	assert_output ''
	assert_equal "$stderr" "db: built on its target when deployed (--no-build-on-target builds it here): evaluated only"
	run -0 --separate-stderr nrr apply build --on db --no-build-on-target
	assert_output --regexp '^db /nix/store/'
}

@test "build: allowApplyAll = false needs --on; a failing build is exit 5" {
	cd "$EV"
	run -2 nrr apply build
	assert_line --index 0 "error: the hive 'evaluated' sets meta.allowApplyAll = false: no node filter given"
	run -0 --separate-stderr nrr apply build --on beta
	assert_output --regexp '^beta /nix/store/'
	bad_hive '{ pkgs, ... }: { environment.systemPackages = [ (derivation { name = "broken-1"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo it broke >&2; exit 1" ]; }) ]; }'
	run -5 nrr apply build -f "$BATS_TEST_TMPDIR/hive.nix"
	assert_output --partial "error: building the hive's systems failed"
}

@test "apply: keys without keys is refused; unknown goals and options too; upload-keys is apply keys" {
	cd "$H"
	run -2 nrr apply keys --on web --no-keys
	assert_line --index 0 "error: apply keys --no-keys: there is nothing else to do"
	run -0 nrr upload-keys --help
	assert_line --index 0 "usage: nixos-rebuild-remote upload-keys [OPTIONS]   (or: apply keys)"
	run -2 nrr upload-keys switch
	assert_line --index 0 "error: apply: unexpected argument 'switch'"
	run -2 nrr apply launch
	assert_output --partial "error: apply: unknown goal 'launch'"
	run -0 nrr apply build --help
	assert_output --partial "-p, --parallel N"
	assert_output --partial "(-p is
--parallel here, not --profile-name)"
	# `build` stays nixos-rebuild's action
	run -0 nrr build --help
	assert_line --index 0 "usage: nixos-rebuild-remote ACTION [OPTIONS]"
}

# --- the evaluation cache (lib/evalcache.h) ---------------------------------------------------

# How many hive evaluations (nix eval of the flake) the -v trace in $stderr shows.
evaluations() { grep -c "^\$ 'nix' .* 'eval' " <<<"$stderr" || true; }
# The tool with a cache of the test's own ($XDG_CACHE_HOME, which fleet_local would unset).
nrrc() { fleet_local env XDG_CACHE_HOME="$XDG_CACHE_HOME" "$NRR" "$@"; }

@test "eval cache: a fingerprint is a git tree's revision, any other flake's narHash" {
	for locked in '{"type":"path","path":"/h","narHash":"sha256-x","lastModified":1}' \
		'{"type":"git","url":"file:///h","rev":"abc","narHash":"sha256-x"}' \
		'{"type":"github","owner":"o","repo":"r","rev":"abc","narHash":"sha256-x"}' \
		'{"type":"tarball","url":"https://example.invalid/h.tar.gz","narHash":"sha256-x"}'; do
		run -0 "$TT" hive-cache-fingerprint <<<"$locked"
		assert_output 1
	done
	# a dirty git tree (no rev, even with a narHash), a path without a narHash, no type
	for locked in '{"type":"git","url":"file:///h","narHash":"sha256-x"}' '{"type":"path","path":"/h"}' '{}'; do
		run -0 "$TT" hive-cache-fingerprint <<<"$locked"
		assert_output 0
	done
}

@test "eval cache: an unchanged flake is not evaluated again; a changed one is" {
	export XDG_CACHE_HOME=$BATS_TEST_TMPDIR/xdg
	cp -R "$H" c
	cd c
	run -0 --separate-stderr nrrc apply build --on @back -v
	first=$output
	assert_output --regexp '^worker /nix/store/'
	[ "$(evaluations)" -ge 2 ] || fail "not evaluated: $stderr"
	[[ $stderr == *"eval cache: kept the answer for toplevels"* ]] || fail "not kept: $stderr"
	# the same again: nothing evaluated, the same system
	run -0 --separate-stderr nrrc apply build --on @back -v
	assert_output "$first"
	assert_equal "$(evaluations)" 0
	[[ $stderr == *"eval cache: hit for info"* && $stderr == *"eval cache: hit for toplevels"* ]] ||
		fail "no hits: $stderr"
	# its entries are the user's alone, and no key's text is in them
	run -0 find "$XDG_CACHE_HOME/nixos-rebuild-remote/eval" -type f ! -perm 600
	assert_output ''
	run -1 grep -r "a secret text" "$XDG_CACHE_HOME/nixos-rebuild-remote"
	# another selection is another question
	run -0 --separate-stderr nrrc apply build --on web,worker -v
	[ "$(evaluations)" -ge 1 ] || fail "not evaluated: $stderr"
	# a change anywhere in the flake: evaluated again
	echo '# changed' >>configuration.nix
	run -0 --separate-stderr nrrc apply build --on @back -v
	[ "$(evaluations)" -ge 2 ] || fail "not evaluated after a change: $stderr"
}

@test "eval cache: a derivation gone from the store is evaluated again; --no-eval-cache, --impure, eval-cache false, hive.nix and a dirty git tree bypass it" {
	export XDG_CACHE_HOME=$BATS_TEST_TMPDIR/xdg
	cp -R "$H" g
	cd g
	run -0 --separate-stderr nrrc apply build --on @back
	first=$output
	# the cached system's derivation no longer valid: evaluated, never trusted
	sed -i 's#/nix/store/[a-z0-9]\{32\}-nixos-system-worker#/nix/store/00000000000000000000000000000000-nixos-system-worker#g' \
		"$XDG_CACHE_HOME"/nixos-rebuild-remote/eval/*
	run -0 --separate-stderr nrrc apply build --on @back -v
	assert_output "$first"
	[[ $stderr == *"no longer in the store: evaluating"* ]] || fail "$stderr"
	[ "$(evaluations)" -ge 1 ] || fail "not evaluated: $stderr"
	# bypassed
	run -0 --separate-stderr nrrc apply build --on @back -v --no-eval-cache
	[ "$(evaluations)" -ge 2 ] || fail "--no-eval-cache: not evaluated: $stderr"
	[[ $stderr != *"eval cache:"* ]] || fail "--no-eval-cache: $stderr"
	run -0 --separate-stderr nrrc apply build --on @back -v --impure
	[[ $stderr == *"eval cache: off: --impure"* ]] || fail "$stderr"
	run -0 --separate-stderr nrrc apply build --on @back -v --nix-option eval-cache false
	[[ $stderr == *"eval cache: off: nix's eval-cache is false"* ]] || fail "$stderr"
	run -0 --separate-stderr nrrc apply build --on @back -v -f hive.nix
	[[ $stderr == *"eval cache: off: the hive is not a flake"* ]] || fail "$stderr"
	# a git tree: committed, its revision is the fingerprint; with a change, none
	{ git init -q && git add -A && git -c user.name=t -c user.email=t@localhost commit -qm hive; } >/dev/null
	run -0 --separate-stderr nrrc apply build --on @back -v
	run -0 --separate-stderr nrrc apply build --on @back -v
	assert_equal "$(evaluations)" 0
	echo '# uncommitted' >>configuration.nix
	run -0 --separate-stderr nrrc apply build --on @back -v
	[[ $stderr == *"eval cache: off: the flake has no fingerprint"* ]] || fail "$stderr"
	[ "$(evaluations)" -ge 2 ] || fail "dirty tree not evaluated: $stderr"
}

@test "eval cache: apply without --on evaluates each node once, its deployment options and system together" {
	export XDG_CACHE_HOME=$BATS_TEST_TMPDIR/xdg
	cp -R "$H" a
	cd a
	run -0 --separate-stderr nrrc apply build -v
	all=$output
	[[ $stderr == *'what = "shard"'* ]] || fail "no shard: $stderr"
	[[ $stderr != *'what = "info"'* && $stderr != *'what = "toplevels"'* ]] || fail "evaluated twice: $stderr"
	run -0 --separate-stderr nrrc apply build --no-eval-cache
	assert_output "$all"
	# more nodes than --eval-node-limit allows at once: the usual questions
	XDG_CACHE_HOME=$BATS_TEST_TMPDIR/xdg2
	run -0 --separate-stderr nrrc apply build -v --eval-node-limit 1
	assert_output "$all"
	[[ $stderr == *'what = "info"'* && $stderr == *'what = "toplevels"'* ]] || fail "$stderr"
}
