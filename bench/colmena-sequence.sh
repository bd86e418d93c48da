#!/usr/bin/env bash
# The command sequence colmena (0.5.0-pre, commit 5bf4ce6) runs for `colmena apply [GOAL]` on a
# flake hive, transcribed from its source and replayed with plain ssh: the benchmark's stand-in
# for colmena, which is not on this machine. bench/run's hive scenarios run it beside the tool.
#
#   bench/colmena-sequence.sh switch|boot|test FLAKE_DIR KEYS TIMES NODE...
#
# KEYS: 1 uploads the nodes' keys (bench/hive/hive.nix's three per node, known here as the
# hive says them), 0 is `colmena apply --no-keys`. TIMES: a file that gets "NODE SECONDS" per
# node (that node's build, push, keys and activation, from its start). NIX_SSHOPTS must hold
# "-F CONFIG": colmena passes $SSH_CONFIG_FILE as -F, the benchmark's ssh config here.
#
# What colmena does, and where (paths in its repository):
# - Evaluation and the processes before it, for a flake hive (`colmena apply` without --on;
#   colmena's default chunked evaluator, src/nix/deployment/options.rs:38-44), in this order:
#   finding the hive (src/cli.rs:225-263, Flake::from_dir, src/nix/flake.rs:38-53):
#     `nix-instantiate --version` and `nix-instantiate --eval -E builtins.getFlake` (its flakes
#     check, src/nix/info.rs:68-100), then `nix flake metadata --json DIR`
#     (src/nix/flake.rs:88-106);
#   its assets, made for flakes even with the direct flake evaluation (src/nix/hive/mod.rs:
#     172-173, src/nix/hive/assets.rs:37-61): a temporary flake whose input `hive` is the
#     hive's locked URL, `nix flake lock path:TMP` (src/nix/flake.rs:110-124), the flakes
#     check again and `nix flake metadata --json path:TMP` (Flake::from_uri, flake.rs:56-65);
#   then four evaluations, each its own `nix eval --extra-experimental-features 'flakes
#     nix-command' URI#colmenaHive --json --apply 'SNIPPET EXPR' --pure-eval`, URI being the
#     metadata's resolvedUrl, so that every one fetches the flake and evaluates its outputs
#     again (src/nix/hive/mod.rs:544-566, flags mod.rs:229-236, src/nix/mod.rs:228-258):
#     hive.metaConfig, because apply without --on checks allowApplyAll
#       (src/command/apply.rs:156-164, mod.rs:197-206);
#     attrNames hive.nodes (select_nodes, mod.rs:258-260, 346-351);
#     hive.deploymentConfigSelected [NODES] (mod.rs:284-289, 386-410);
#     hive.evalSelectedDrvPaths [CHUNK] per chunk (src/nix/deployment/mod.rs:197-225,
#       355-427, mod.rs:417-440): chunks of (MemAvailable MiB - 1024) / 512 nodes, at least 1
#       (src/nix/deployment/limits.rs:102-122), evaluated one at a time (its evaluation
#       semaphore of 1, limits.rs:23-29); a chunk's nodes are deployed as soon as it is
#       evaluated, while the next chunk evaluates.
#   There is no colmena evaluator here, and the bench hive has the raw `colmena` output, not
#   a `colmenaHive`: each evaluation runs as one `nix eval FLAKE#colmena --apply` with the
#   tool's own evaluator (lib/hive/eval.nix, which evaluates colmena's modules in colmena's
#   order and gives the very systems the tool deploys) in place of makeHive's, asking the
#   same question: `info`'s meta, `info`'s node names, `info`'s deployment options of the
#   selected nodes, and `toplevels` of the chunk. The one difference: colmena's attrNames
#   hive.nodes also imports meta.nixpkgs (its lib.assertMsg), ours does not.
# - Per node, all at once (apply's --parallel defaults to 10, src/command/apply.rs:31), in the
#   order of src/nix/deployment/mod.rs:492-707:
#   build: `nix-store --no-gc-warning --realise DRV` (src/nix/host/local.rs:47-53);
#   push: a flake hive uses `nix copy` (src/nix/hive/mod.rs:303-305): `nix
#     --extra-experimental-features nix-command copy --no-check-sigs
#     --substitute-on-destination --builders-use-substitutes --to ssh-ng://USER@HOST?compress=true
#     PATH` with NIX_SSHOPTS set to its ssh options (src/nix/host/ssh.rs:261-343, defaults of
#     src/nix/host/mod.rs:39-46);
#   pre-activation keys: one ssh per key, `sh -c SCRIPT` with the key on stdin, the script
#     making the directory, a temp file, chown when the user and group exist (always for
#     post-activation keys), chmod, the key into the temp file, mv over the destination
#     (src/nix/host/ssh.rs:373-395, key_uploader.rs, key_uploader.template.sh);
#   profile (switch, boot): `nix-env --profile /nix/var/nix/profiles/system --set PATH`, then
#   activation: `PATH/bin/switch-to-configuration GOAL`, each its own ssh
#     (src/nix/host/ssh.rs:93-108, src/nix/profile.rs:29-41);
#   post-activation keys: as above, one ssh per key.
# - Every remote step is a new `ssh USER@HOST -o StrictHostKeyChecking=accept-new -o
#   BatchMode=yes -T [sshOptions] [-p PORT] [-F CONFIG] -- [escalation] CMD...`
#   (src/nix/host/ssh.rs:226-245, 345-371): no ControlMaster anywhere in colmena's source, so a
#   handshake per step unless the user's own ssh config multiplexes. targetUser is root here
#   (colmena's default), so no escalation command.
set -eo pipefail
goal=$1 flake=$2 keys=$3 times=$4
shift 4
config=
# -F CONFIG out of NIX_SSHOPTS (colmena's $SSH_CONFIG_FILE)
read -r -a given <<<"${NIX_SSHOPTS-}"
for ((i = 0; i < ${#given[@]}; i++)); do [ "${given[i]}" != -F ] || config=${given[i + 1]}; done
[ -n "$config" ] || { echo "colmena-sequence: NIX_SSHOPTS has no -F CONFIG" >&2; exit 2; }
nodes=("$@")
sshopts=(-o StrictHostKeyChecking=accept-new -o BatchMode=yes -T -F "$config")

# One word for the remote shell (colmena's shell-escape of the key script).
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# --- evaluation, as colmena does it (see the header) ---
nixfl=(--extra-experimental-features 'nix-command flakes')
flakes_check() {
	nix-instantiate --version >/dev/null
	nix-instantiate --eval -E builtins.getFlake >/dev/null 2>&1 || true
}
flakes_check
meta=$(nix "${nixfl[@]}" flake metadata --json "$flake")
uri=$(jq -r .resolvedUrl <<<"$meta")
assets=$(mktemp -d "${TMPDIR:-/tmp}/colmena-assets-XXXXXX")
trap 'rm -rf "$assets"' EXIT
# colmena's assets flake: its input is the hive (its outputs are only read by the legacy
# evaluation, so they are left out here)
printf '{
  inputs.hive.url = "%s";
  outputs = { self, hive }: { };
}
' "$(jq -r .url <<<"$meta")" >"$assets/flake.nix"
nix "${nixfl[@]}" flake lock "path:$assets" 2>/dev/null || true
flakes_check
nix "${nixfl[@]}" flake metadata --json "path:$assets" >/dev/null
evaluator=$(<"$(dirname "${BASH_SOURCE[0]}")/../lib/hive/eval.nix")
# hive_eval QUESTION: one `nix eval` of the hive (colmena's DirectFlakeEval), JSON on stdout
hive_eval() {
	nix --extra-experimental-features 'flakes nix-command' eval "$uri#colmena" --json \
		--apply "h: let hive = ($evaluator) { raw = h; hermetic = true; what = \"info\"; }; in $1" --pure-eval
}
names=$(printf '"%s" ' "${nodes[@]}")
hive_eval 'hive.meta' >/dev/null
hive_eval 'hive.nodes' >/dev/null
hive_eval "builtins.intersectAttrs (builtins.listToAttrs (map (n: { name = n; value = 1; }) [ $names ])) hive.deployment" >/dev/null
# chunks of colmena's heuristic size
avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
((avail < 1024)) || avail=$((avail - 1024))
chunk=$((avail / 512))
((chunk > 0)) || chunk=1
# eval_chunk NODE...: "NODE DRV" lines of the chunk's systems
eval_chunk() {
	local ns
	ns=$(printf '"%s" ' "$@")
	nix --extra-experimental-features 'flakes nix-command' eval "$uri#colmena" --json \
		--apply "h: ($evaluator) { raw = h; hermetic = true; what = \"toplevels\"; names = [ $ns ]; }" --pure-eval |
		jq -r 'to_entries[] | .key + " " + .value.drv'
}

# upload_key NODE NAME DESTDIR USER GROUP MODE REQUIRE_OWNERSHIP, the key on stdin
upload_key() {
	local dest=$3/$2 script
	# colmena's script starts with `set -euo pipefail`, for NixOS's sh (bash); the test hosts'
	# sh is dash, which has no pipefail, and the script has no pipeline.
	script="set -eu
d=$(q "$dest")
t=\"\$d.tmp\"
mkdir -p \"\$(dirname \"\$d\")\"
touch \"\$t\"
if [ -n $(q "$7") ] || getent passwd $(q "$4") >/dev/null && getent group $(q "$5") >/dev/null; then
	chown $(q "$4:$5") \"\$t\"
else
	echo 'no user $4 or group $5 yet: not chowned' >&2
fi
chmod $(q "$6") \"\$t\"
cat >\"\$t\"
mv \"\$t\" \"\$d\""
	ssh "root@$1" "${sshopts[@]}" -- sh -c "$(q "$script")"
}

# The three keys of node $1 (bench/hive/hive.nix), read here as colmena reads them: text from
# the evaluation, keyFile from this machine, keyCommand run here with no stdin.
pre_keys() {
	printf 'token of %s' "$1" | upload_key "$1" api-token /run/keys root root 0600 ''
	upload_key "$1" tls.key /run/keys root root 0640 '' <"$flake/secret.txt"
}
post_keys() {
	sh -c "echo password of $1" </dev/null | upload_key "$1" db-password /run/keys root root 0600 1
}

deploy_node() {
	local n=$1 drv=$2 start=$EPOCHREALTIME path
	path=$(nix-store --no-gc-warning --realise "$drv")
	NIX_SSHOPTS="${sshopts[*]}" nix --extra-experimental-features nix-command copy --no-check-sigs \
		--substitute-on-destination --builders-use-substitutes \
		--to "ssh-ng://root@$n?compress=true" "$path"
	[ "$keys" != 1 ] || pre_keys "$n"
	case $goal in switch | boot)
		ssh "root@$n" "${sshopts[@]}" -- nix-env --profile /nix/var/nix/profiles/system --set "$path" ;;
	esac
	ssh "root@$n" "${sshopts[@]}" -- "$path/bin/switch-to-configuration" "$goal"
	[ "$keys" != 1 ] || post_keys "$n"
	awk -v n="$n" -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%s %.3f\n", n, e - s }' >>"$times"
}

pids=()
for ((c = 0; c < ${#nodes[@]}; c += chunk)); do
	eval_chunk "${nodes[@]:c:chunk}" >"$times.drvs"
	while read -r n drv; do
		deploy_node "$n" "$drv" &
		pids+=($!)
	done <"$times.drvs"
done
[ "${#pids[@]}" = "${#nodes[@]}" ] || { echo "colmena-sequence: evaluation gave ${#pids[@]} of ${#nodes[@]} nodes" >&2; exit 1; }
st=0
for p in "${pids[@]}"; do wait "$p" || st=1; done
exit "$st"
