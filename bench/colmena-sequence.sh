#!/usr/bin/env bash
# The command sequence colmena (0.5.0-pre, commit 5bf4ce6) runs for `colmena apply [GOAL]` on a
# flake hive, transcribed from its source and replayed with plain ssh: the benchmark's stand-in
# for colmena, which is not on this machine. bench/run's hive scenarios run it beside the tool.
#
#   bench/colmena-sequence.sh switch|boot|test FLAKE_DIR TOOL KEYS TIMES NODE...
#
# KEYS: 1 uploads the nodes' keys (bench/hive/hive.nix's three per node, known here as the
# hive says them), 0 is `colmena apply --no-keys`. TIMES: a file that gets "NODE SECONDS" per
# node (that node's build, push, keys and activation, from its start). NIX_SSHOPTS must hold
# "-F CONFIG": colmena passes $SSH_CONFIG_FILE as -F, the benchmark's ssh config here.
#
# What colmena does, and where (paths in its repository):
# - Evaluation: `nix eval FLAKE#colmenaHive --json --apply 'hive: hive.evalSelectedDrvPaths
#   [...]'` (src/nix/hive/mod.rs:552-564), after its node names and deploymentConfigSelected
#   (more evaluations, left out here). There is no colmena evaluator here: one evaluation of
#   the ten systems' drvPaths through the tool's own (`TOOL eval -E`), which evaluates the same
#   modules, and gives the very systems the tool deploys.
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
goal=$1 flake=$2 tool=$3 keys=$4 times=$5
shift 5
config=
# -F CONFIG out of NIX_SSHOPTS (colmena's $SSH_CONFIG_FILE)
read -r -a given <<<"${NIX_SSHOPTS-}"
for ((i = 0; i < ${#given[@]}; i++)); do [ "${given[i]}" != -F ] || config=${given[i + 1]}; done
[ -n "$config" ] || { echo "colmena-sequence: NIX_SSHOPTS has no -F CONFIG" >&2; exit 2; }
nodes=("$@")
sshopts=(-o StrictHostKeyChecking=accept-new -o BatchMode=yes -T -F "$config")

# One word for the remote shell (colmena's shell-escape of the key script).
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# The drvPaths of the selected nodes: one evaluation, "NODE DRV" lines.
names=$(printf '"%s" ' "${nodes[@]}")
# shellcheck disable=SC2016 # Nix code
"$tool" eval -f "$flake" -E "{ nodes, ... }: map (n: n + \" \" + nodes.\${n}.config.system.build.toplevel.drvPath) [ $names ]" |
	jq -r '.[]' >"$times.drvs"

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
while read -r n drv; do
	deploy_node "$n" "$drv" &
	pids+=($!)
done <"$times.drvs"
[ "${#pids[@]}" = "${#nodes[@]}" ] || { echo "colmena-sequence: evaluation gave ${#pids[@]} of ${#nodes[@]} nodes" >&2; exit 1; }
st=0
for p in "${pids[@]}"; do wait "$p" || st=1; done
exit "$st"
