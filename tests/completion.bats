#!/usr/bin/env bats
# Shell completion in real shells: an interactive bash with bash-completion
# and an interactive zsh with compinit, each on a pseudo-terminal driven by
# zsh's zpty. A line is typed, completion is asked for at its end, and the
# candidates the shell would offer come back one per line.
#
# bash: readline's insert-completions (M-*) puts every candidate on the line,
# which is then run as the arguments of a function that prints them.
# zsh: compadd is wrapped (as in Valodim's zsh-capture-completion) to print
# each match with the prefixes and suffixes that would be inserted with it.
#
# Everything lives in per-test temp dirs: HOME, ZDOTDIR, XDG dirs, the ssh
# config (given with NIX_SSHOPTS="-F ..."), the test flake and nix's cache.

bats_require_minimum_version 1.5.0

setup_file() {
	command -v zsh >/dev/null && zsh -fc 'zmodload zsh/zpty' 2>/dev/null ||
		{ echo "zsh with the zsh/zpty module is needed to drive the shells (make deps)" >&2; return 1; }
	# The driver: drive.zsh SHELL LINE [SETUP] prints SHELL's candidates at
	# the end of LINE; SETUP is a line run in the shell first.
	cat >"$BATS_FILE_TMPDIR/drive.zsh" <<'EOF'
zmodload zsh/zpty || exit 2
shell=$1 line=$2
print -r -- "$3" >$T/extra.$shell
case $shell in
  (bash) zpty sh bash --rcfile $T/bashrc --noprofile -i ;;
  (zsh) zpty sh zsh -d -i ;;
  (*) exit 2 ;;
esac
out=
zpty -r sh out '*@@READY*' || exit 3
if [[ $shell == bash ]]; then
  # insert every candidate, then run the line as arguments of __nrr_show
  zpty -w -n sh "$line"$'\e*\C-a__nrr_show \n'
else
  zpty -w -n sh "$line"$'\t'
fi
out=
zpty -r sh out '*@@E*' || exit 4
zpty -d sh
out=${${out//$'\r'/}#*$'\n'@@S$'\n'}
out=${out%%@@E*}
lines=( ${(f)out} )
if [[ $shell == bash ]]; then
  # drop the words typed before the one being completed
  words=( ${(z)line} )
  n=$(( $#words - 1 ))
  [[ $line == *' ' ]] && n=$#words
  lines=( ${lines[n+1,-1]} )
fi
print -rl -- $lines
EOF
}

setup() {
	load lib/assert
	NRR=${NRR:-$BATS_TEST_DIRNAME/../nixos-rebuild-remote}
	NRR=$(cd "$(dirname "$NRR")" && pwd)/$(basename "$NRR")
	[ -x "$NRR" ] || fail "no binary at $NRR (make nixos-rebuild-remote)"
	COMPDIR=$(cd "$BATS_TEST_DIRNAME/../completions" && pwd)
	export T=$BATS_TEST_TMPDIR
	mkdir -p "$T/bin" "$T/home" "$T/cache" "$T/zdot" "$T/zfunc" \
		"$T/bash-completion/completions" "$T/ssh" "$T/work"
	# the binary under its own name, first in PATH
	ln -s "$NRR" "$T/bin/nixos-rebuild-remote"
	export PATH="$T/bin:$PATH"
	export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_DATA_HOME=$T/home/.local/share
	export XDG_CONFIG_HOME=$T/home/.config ZDOTDIR=$T/zdot
	export NIX_CONFIG="experimental-features = nix-command flakes"
	# both scripts as they are installed: loaded on first use
	export BASH_COMPLETION_USER_DIR=$T/bash-completion
	ln -s "$COMPDIR/nixos-rebuild-remote.bash" "$T/bash-completion/completions/nixos-rebuild-remote"
	ln -s "$COMPDIR/_nixos-rebuild-remote" "$T/zfunc/_nixos-rebuild-remote"

	cat >"$T/ssh/config" <<-EOF
		Host alpha-web beta-db
		    HostName 192.0.2.1
		Host *.internal gamma? !delta
		    User nobody
		Include $T/ssh/more.conf
	EOF
	cat >"$T/ssh/more.conf" <<-EOF
		Host included-host
		    HostName 192.0.2.2
	EOF
	export NIX_SSHOPTS="-F $T/ssh/config"

	cat >"$T/bashrc" <<-'EOF'
		PS1= PS2=
		source /usr/share/bash-completion/bash_completion
		bind 'set bell-style none'
		bind 'set editing-mode emacs'
		__nrr_show() { printf '@@%s\n' S; printf '%s\n' "$@"; printf '@@%s\n' E; }
		source "$T/extra.bash"
		printf '@@%s\n' READY
	EOF
	cat >"$ZDOTDIR/.zshrc" <<-'EOF'
		PS1= PROMPT= RPROMPT= PS2=
		unsetopt zle_bracketed_paste 2>/dev/null
		fpath=($T/zfunc $fpath)
		autoload -Uz compinit
		compinit -u -d $ZDOTDIR/.zcompdump
		zstyle ':completion:*' list-grouped false
		zstyle ':completion:*' insert-tab false
		zmodload zsh/zutil
		compadd() {
		  # calls that only ask which words match go through untouched
		  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
		    builtin compadd "$@"
		    return
		  fi
		  local -a __hits
		  local -A __apre __hpre __hsuf __asuf
		  builtin compadd -A __hits "$@"
		  zparseopts -E P:=__apre p:=__hpre S:=__asuf s:=__hsuf
		  local __h
		  for __h in $__hits; do
		    print -r -- "$IPREFIX${__apre[-P]}${__hpre[-p]}$__h${__hsuf[-s]}"
		  done
		  builtin compadd "$@"
		}
		_nrr_pre() { print -r -- $'\n@@S' }
		_nrr_post() { print -r -- $'\n@@E' }
		compprefuncs=(_nrr_pre)
		comppostfuncs=(_nrr_post)
		bindkey -e
		bindkey '^I' complete-word
		source $T/extra.zsh
		print -r -- '@@'READY
	EOF
	cd "$T/work"
}

# complete_in SHELL LINE [SETUP]: the candidates SHELL offers at the end of LINE
complete_in() {
	# a driver that fails (no prompt, no end marker, a hang) fails the run, not just prints ''
	(
		set -o pipefail
		timeout 20 zsh -f "$BATS_FILE_TMPDIR/drive.zsh" "$@" | sed '/^$/d' | sort -u
	)
}

# a tiny flake with two configurations, in DIR
make_flake() {
	command -v nix >/dev/null || fail "nix is not installed (make deps)"
	mkdir -p "$1"
	cat >"$1/flake.nix" <<-'EOF'
		{ outputs = { self }: { nixosConfigurations = { alpha = {}; beta = {}; }; }; }
	EOF
	nix eval --json "path:$1#nixosConfigurations" --apply builtins.attrNames >/dev/null 2>&1 ||
		fail "nix cannot evaluate a flake here (no store or daemon access?)"
}

@test "bash: an empty word after the command offers every action of the binary and colmena's commands" {
	run complete_in bash 'nixos-rebuild-remote '
	assert_success
	assert_output "$({ nixos-rebuild-remote --complete actions; nixos-rebuild-remote --complete colmena; } | sort -u)"
}

@test "zsh: an empty word after the command offers every action of the binary and colmena's commands" {
	run complete_in zsh 'nixos-rebuild-remote '
	assert_success
	assert_output "$({ nixos-rebuild-remote --complete actions; nixos-rebuild-remote --complete colmena; } | sort -u)"
}

@test "bash: --target-h completes to --target-host" {
	run complete_in bash 'nixos-rebuild-remote switch --target-h'
	assert_output '--target-host'
}

@test "zsh: --target-h completes to --target-host" {
	run complete_in zsh 'nixos-rebuild-remote switch --target-h'
	assert_output '--target-host'
}

@test "bash: a dash offers every option spelling of the binary" {
	run complete_in bash 'nixos-rebuild-remote -'
	assert_output "$(nixos-rebuild-remote --complete options | sort -u)"
}

@test "zsh: a dash offers every option spelling of the binary" {
	run complete_in zsh 'nixos-rebuild-remote -'
	assert_output "$(nixos-rebuild-remote --complete options | sort -u)"
}

@test "bash: options and actions are read from the binary named by the command word" {
	mkdir "$T/other"
	printf '#!/bin/sh\ncase "$2" in options) echo --from-other-binary;; options-table) printf -- "--from-other-binary\\t-\\t0\\t\\n";; actions) echo other-action;; esac\n' \
		>"$T/other/nixos-rebuild-remote"
	chmod +x "$T/other/nixos-rebuild-remote"
	run complete_in bash "$T/other/nixos-rebuild-remote --from"
	assert_output '--from-other-binary'
	run complete_in bash "$T/other/nixos-rebuild-remote oth"
	assert_output 'other-action'
}

@test "zsh: options and actions are read from the binary named by the command word" {
	mkdir "$T/other"
	printf '#!/bin/sh\ncase "$2" in options) echo --from-other-binary;; options-table) printf -- "--from-other-binary\\t-\\t0\\t\\n";; actions) echo other-action;; esac\n' \
		>"$T/other/nixos-rebuild-remote"
	chmod +x "$T/other/nixos-rebuild-remote"
	run complete_in zsh "$T/other/nixos-rebuild-remote --from"
	assert_output '--from-other-binary'
	run complete_in zsh "$T/other/nixos-rebuild-remote oth"
	assert_output 'other-action'
}

check_hosts() {
	run complete_in "$1" 'nixos-rebuild-remote switch --target-host '
	assert_line 'alpha-web'
	assert_line 'beta-db'
	assert_line 'included-host'
	refute_line --partial 'internal'
	refute_line --partial 'gamma'
	refute_line --partial 'delta'
}

@test "bash: --target-host offers the Host aliases of NIX_SSHOPTS' -F file and its Include, no patterns" {
	check_hosts bash
}

@test "zsh: --target-host offers the Host aliases of NIX_SSHOPTS' -F file and its Include, no patterns" {
	check_hosts zsh
}

check_user_prefix() {
	run complete_in "$1" 'nixos-rebuild-remote switch --target-host root@'
	assert_line 'root@alpha-web'
	assert_line 'root@beta-db'
	assert_line 'root@included-host'
	run complete_in "$1" 'nixos-rebuild-remote switch --build-host deploy@inc'
	assert_output 'deploy@included-host'
}

@test "bash: USER@ stays in front of the completed host" {
	check_user_prefix bash
}

@test "zsh: USER@ stays in front of the completed host" {
	check_user_prefix zsh
}

check_flake() {
	make_flake "$T/flake"
	run complete_in "$1" "nixos-rebuild-remote switch --flake $T/flake#"
	assert_output "$T/flake#alpha"$'\n'"$T/flake#beta"
	run complete_in "$1" "nixos-rebuild-remote switch -F $T/flake#b"
	assert_output "$T/flake#beta"
	run complete_in "$1" "nixos-rebuild-remote switch --flake=$T/flake#a"
	assert_output "--flake=$T/flake#alpha"
	cd "$T/flake"
	run complete_in "$1" "nixos-rebuild-remote switch --flake .#"
	assert_output $'.#alpha\n.#beta'
}

@test "bash: after FLAKE# the configurations of the flake are offered" {
	check_flake bash
}

@test "zsh: after FLAKE# the configurations of the flake are offered" {
	check_flake zsh
}

check_nargs() {
	# the binary as the scripts call it, each call's status logged: its crash must not pass
	# for "no candidates"
	rm "$T/bin/nixos-rebuild-remote"
	printf '#!/bin/sh\n"%s" "$@"; st=$?\necho "$st $*" >>"%s/calls"\nexit $st\n' "$NRR" "$T" \
		>"$T/bin/nixos-rebuild-remote"
	chmod +x "$T/bin/nixos-rebuild-remote"
	# a value is never mistaken for the action, and vice versa
	run complete_in "$1" 'nixos-rebuild-remote --max-jobs '
	assert_success
	assert_output ''
	run cat "$T/calls"
	assert_line --regexp '^0 --complete '
	refute_line --regexp '^[1-9]'
	run complete_in "$1" 'nixos-rebuild-remote -j 4 sw'
	assert_output 'switch'
	run complete_in "$1" 'nixos-rebuild-remote --option a b sw'
	assert_output 'switch'
	run complete_in "$1" 'nixos-rebuild-remote --elevate '
	assert_output $'none\nrun0\nsudo'
	# --flake's value is optional: an action right after it is the action
	run complete_in "$1" 'nixos-rebuild-remote --flake sw'
	assert_line 'switch'
}

@test "bash: option values are counted as the parser counts them" {
	check_nargs bash
}

@test "zsh: option values are counted as the parser counts them" {
	check_nargs zsh
}

check_files() {
	touch configuration.nix
	mkdir confdir
	run complete_in "$1" 'nixos-rebuild-remote build --file conf'
	assert_line 'configuration.nix'
	assert_line --regexp '^confdir/?$'
}

@test "bash: --file completes file names" {
	check_files bash
}

@test "zsh: --file completes file names" {
	check_files zsh
}

@test "bash: nixos-rebuild aliased to nixos-rebuild-remote completes the same" {
	run complete_in bash 'nixos-rebuild sw' \
		'alias nixos-rebuild=nixos-rebuild-remote; _completion_loader nixos-rebuild-remote'
	assert_output 'switch'
	run complete_in bash 'nixos-rebuild switch --target-h' \
		'alias nixos-rebuild=nixos-rebuild-remote; _completion_loader nixos-rebuild-remote'
	assert_output '--target-host'
}

@test "zsh: nixos-rebuild aliased to nixos-rebuild-remote completes the same" {
	run complete_in zsh 'nixos-rebuild sw' 'alias nixos-rebuild=nixos-rebuild-remote'
	assert_output 'switch'
	run complete_in zsh 'nixos-rebuild switch --target-h' 'alias nixos-rebuild=nixos-rebuild-remote'
	assert_output '--target-host'
}

@test "bash: sudo nixos-rebuild-remote completes as without sudo" {
	run complete_in bash 'sudo nixos-rebuild-remote sw'
	assert_output 'switch'
	run complete_in bash 'sudo nixos-rebuild-remote switch --target-host alp'
	assert_output 'alpha-web'
}

@test "zsh: sudo nixos-rebuild-remote completes as without sudo" {
	run complete_in zsh 'sudo nixos-rebuild-remote sw'
	assert_output 'switch'
	run complete_in zsh 'sudo nixos-rebuild-remote switch --target-host alp'
	assert_output 'alpha-web'
}

# a hive in the working directory: nodes web1 and db1, tags web, db and all
make_hive() {
	cp -RL "$BATS_TEST_DIRNAME/hive/nixpkgs" "$T/work/nixpkgs"
	cat >"$T/work/hive.nix" <<-'EOF'
		{
		  meta.nixpkgs = import ./nixpkgs { system = "x86_64-linux"; };
		  web1 = { deployment.tags = [ "web" "all" ]; };
		  db1 = { deployment.tags = [ "db" "all" ]; };
		}
	EOF
}

check_colmena() {
	make_hive
	run complete_in "$1" 'nixos-rebuild-remote apply '
	assert_success
	assert_output "$(nixos-rebuild-remote --complete goals | sort -u)"
	run complete_in "$1" 'nixos-rebuild-remote apply switch --on '
	assert_success
	assert_output $'@all\n@db\n@web\ndb1\nweb1'
	run complete_in "$1" 'nixos-rebuild-remote apply --on web1,@w'
	assert_success
	assert_output 'web1,@web'
	run complete_in "$1" 'nixos-rebuild-remote apply-local --node '
	assert_success
	assert_output $'db1\nweb1'
	run complete_in "$1" 'nixos-rebuild-remote exec --on @db --par'
	assert_success
	assert_output '--parallel'
	# colmena's upload-keys: apply keys under its own name
	run complete_in "$1" 'nixos-rebuild-remote upload-k'
	assert_success
	assert_output 'upload-keys'
	run complete_in "$1" 'nixos-rebuild-remote upload-keys --on @d'
	assert_success
	assert_output '@db'
	run complete_in "$1" 'nixos-rebuild-remote upload-keys --no-k'
	assert_success
	assert_output '--no-keys'
}

@test "bash: apply's goals, and the hive's node names and @tags after --on" {
	check_colmena bash
}

@test "zsh: apply's goals, and the hive's node names and @tags after --on" {
	check_colmena zsh
}
