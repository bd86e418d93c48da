# bash completion for nixos-rebuild-remote(8)                -*- shell-script -*-
#
# Everything that can go stale comes from the binary itself:
#   nixos-rebuild-remote --complete options        option spellings
#   nixos-rebuild-remote --complete options-table  which options take values
#   nixos-rebuild-remote --complete actions        actions
#   nixos-rebuild-remote --complete hosts          Host aliases of the ssh config
#   nixos-rebuild-remote --complete flake:REF      names of REF#nixosConfigurations
#   nixos-rebuild-remote --complete colmena        colmena's commands (apply, exec, ...)
#   nixos-rebuild-remote --complete goals          apply's goals
#   nixos-rebuild-remote --complete hive-nodes     node names and @tags of the hive here
#   nixos-rebuild-remote --complete colmena-options:CMD   the options of CMD
# The binary asked is the command word being completed (a path, or a name
# found in PATH), else nixos-rebuild-remote from PATH.
# Needs bash-completion 2 (for _init_completion and _filedir).
#
# `sudo nixos-rebuild-remote ...` works through bash-completion's sudo
# completion, which hands the words after sudo to this function.
#
# Using it for `nixos-rebuild`:
# bash finds a completion by the command word as typed and does not expand
# aliases (unless `shopt -s progcomp_alias` is on), and bash-completion loads
# this file only the first time `nixos-rebuild-remote` itself is completed.
# So, when this file is loaded, it also registers itself for `nixos-rebuild`
# if that name runs this program: an alias whose first word is
# nixos-rebuild-remote, or a nixos-rebuild in PATH that is a symlink to it.
# It then replaces any completion nixos-rebuild had, since the alias or the
# link decides which program runs.
# Otherwise nixos-rebuild is left alone: it may be the real nixos-rebuild.
# To be sure an alias completes from the first TAB on, load this file right
# after the alias in ~/.bashrc:
#     alias nixos-rebuild=nixos-rebuild-remote
#     _completion_loader nixos-rebuild-remote
# or register it by hand:  complete -F _nixos_rebuild_remote nixos-rebuild

# SC2207: the words split here are option, action and choice names.
# SC2088: "~/" is matched literally, to be replaced with $HOME.
# shellcheck disable=SC2207,SC2088

# Prints the binaries to ask for $1, the command word, best first.
_nixos_rebuild_remote_bin()
{
    local w=$1 first
    # an alias: its first word (bash did not expand it for us)
    if [[ $w != */* && -n ${BASH_ALIASES[$w]+set} ]]; then
        read -r first _ <<<"${BASH_ALIASES[$w]}"
        [[ -n $first ]] && w=$first
    fi
    [[ $w == "~/"* ]] && w=$HOME/${w#"~/"}
    if [[ $w == */* ]]; then
        [[ -x $w && ! -d $w ]] && printf '%s\n' "$w"
    else
        type -P -- "$w"
    fi
    type -P nixos-rebuild-remote
}

_nixos_rebuild_remote()
{
    local cur prev words cword split
    _init_completion -s -n : || return

    local bin table='' b
    while IFS= read -r b; do
        [[ -n $b ]] || continue
        table=$("$b" --complete options-table 2>/dev/null </dev/null) &&
            [[ -n $table ]] && bin=$b && break
    done < <(_nixos_rebuild_remote_bin "${words[0]}")
    [[ -n ${bin-} ]] || return 0

    # colmena's commands have options and words of their own
    local colmena
    colmena=$("$bin" --complete colmena 2>/dev/null </dev/null)
    if ((cword > 1)) && [[ " ${colmena//$'\n'/ } " == *" ${words[1]} "* ]]; then
        _nixos_rebuild_remote_colmena "$bin" "${words[1]}"
        return 0
    fi

    # nargs of every spelling: 0 none, N values, -1 one optional value
    local -A nargs=()
    local long short n
    while IFS=$'\t' read -r long short n _; do
        [[ $long == --?* ]] || continue
        nargs[$long]=$n
        [[ $short != - ]] && nargs[-$short]=$n
    done <<<"$table"
    local actions
    actions=$("$bin" --complete actions 2>/dev/null </dev/null)
    actions=" ${actions//$'\n'/ } "

    # Walk the words before the cursor as the parser does.
    # owner: the option whose value is being typed; argi: which value (0, 1);
    # pending: values still owed to owner; optional: owner's value may be left out.
    local i k w c owner='' argi=0 pending=0 optional=0 action=''
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if ((pending > 0)); then
            if ((optional)) &&
                [[ $w == -* || ( -z $action && $actions == *" $w "* ) ]]; then
                pending=0
            else
                ((pending--, argi++))
                continue
            fi
        fi
        optional=0 argi=0
        case $w in
            --) ;;
            --?*=*)
                n=${nargs[${w%%=*}]:-0}
                ((n > 1)) && owner=${w%%=*} pending=$((n - 1)) argi=1
                ;;
            --?*)
                n=${nargs[$w]:-0}
                owner=$w
                if ((n < 0)); then
                    pending=1 optional=1
                else
                    pending=$n
                fi
                ;;
            -?*)
                # bundled short options: -vj4, -vj 4, -sF
                for ((k = 1; k < ${#w}; k++)); do
                    c=-${w:k:1}
                    n=${nargs[$c]:-0}
                    ((n == 0)) && continue
                    owner=$c
                    if ((k + 1 < ${#w})); then
                        ((n > 1)) && pending=$((n - 1)) argi=1
                    elif ((n < 0)); then
                        pending=1 optional=1
                    else
                        pending=$n
                    fi
                    break
                done
                ;;
            *)
                [[ -z $action ]] && action=$w
                ;;
        esac
    done

    # --long=VALUE at the cursor: _init_completion split it into prev and cur
    if [[ $split == true ]]; then
        owner=$prev argi=0 pending=1 optional=0
        n=${nargs[$prev]:-0}
        ((n == 0)) && return 0
    fi

    # -xVALUE at the cursor: complete VALUE after the glued option letters
    if [[ $cur == -[!-]?* ]]; then
        for ((k = 1; k < ${#cur} - 1; k++)); do
            c=-${cur:k:1}
            n=${nargs[$c]:-0}
            ((n == 0)) && continue
            local word=$cur pre=${cur:0:k+1}
            cur=${cur:k+1}
            _nixos_rebuild_remote_value "$bin" "$c" 0
            compopt +o filenames 2>/dev/null
            COMPREPLY=("${COMPREPLY[@]/#/"$pre"}")
            __ltrim_colon_completions "$word"
            return 0
        done
    fi

    if ((pending > 0)) && { ! ((optional)) || [[ $cur != -* ]]; }; then
        _nixos_rebuild_remote_value "$bin" "$owner" "$argi"
        if ((optional)) && [[ -z $action ]]; then
            COMPREPLY+=($(compgen -W "$actions" -- "$cur"))
        fi
        __ltrim_colon_completions "$cur"
        return 0
    fi

    if [[ $cur == -* || -n $action ]]; then
        COMPREPLY=($(compgen -W "$("$bin" --complete options 2>/dev/null </dev/null)" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$actions $colmena" -- "$cur"))
    fi
}

# Completes the words of colmena command $2 (apply, apply-local, exec, ...).
_nixos_rebuild_remote_colmena()
{
    local bin=$1 cmd=$2 i goal=''
    case $prev in
        --on)
            # comma-separated rules: node names and @tags of the hive here
            local pre='' part=$cur
            if [[ $cur == *,* ]]; then
                pre=${cur%,*}, part=${cur##*,}
            fi
            _nixos_rebuild_remote_match "$pre" "$part" < <(
                "$bin" --complete hive-nodes 2>/dev/null </dev/null)
            return 0
            ;;
        --node)
            _nixos_rebuild_remote_match "" "$cur" < <(
                "$bin" --complete hive-nodes 2>/dev/null </dev/null | command grep -v '^@')
            return 0
            ;;
        -f | --config)
            _filedir
            return 0
            ;;
        -p | --parallel | --eval-node-limit | --evaluator | --nix-option | -E | --expr | \
            --confirm-timeout)
            return 0
            ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$("$bin" --complete "colmena-options:$cmd" 2>/dev/null </dev/null)" -- "$cur"))
        return 0
    fi
    [[ $cmd == apply || $cmd == apply-local ]] || return 0
    for ((i = 2; i < cword; i++)); do
        [[ ${words[i]} != -* && ${words[i - 1]} != --on && ${words[i - 1]} != --node &&
            ${words[i - 1]} != -f && ${words[i - 1]} != --config ]] && goal=${words[i]}
    done
    [[ -n $goal ]] && return 0
    if [[ $cmd == apply ]]; then
        COMPREPLY=($(compgen -W "$("$bin" --complete goals 2>/dev/null </dev/null)" -- "$cur"))
    else
        COMPREPLY=($(compgen -W 'switch boot test dry-activate' -- "$cur"))
    fi
}

# Adds to COMPREPLY each line of stdin that starts with $2, with $1 before it.
# The lines are data (host and attribute names from files and flakes the
# user may not control): they are never expanded, as compgen -W would, and
# unusual characters are quoted.
_nixos_rebuild_remote_match()
{
    local pre=$1 part=$2 line
    while IFS= read -r line; do
        [[ -n $line && $line == "$part"* ]] || continue
        [[ $line == *[!A-Za-z0-9._+:@%/=,-]* ]] && printf -v line '%q' "$line"
        COMPREPLY+=("$pre$line")
    done
}

# Completes value number $3 (from 0) of option $2 into COMPREPLY.
_nixos_rebuild_remote_value()
{
    local bin=$1 opt=$2 argi=$3 d
    case $opt in
        --target-host | --build-host)
            # [USER@]HOST: the user part is kept as typed
            local user='' h=$cur
            if [[ $cur == *@* ]]; then
                user=${cur%%@*}@ h=${cur#*@}
            fi
            _nixos_rebuild_remote_match "$user" "$h" < <(
                "$bin" --complete hosts 2>/dev/null </dev/null
                [[ $opt == --build-host ]] && echo localhost)
            ;;
        --flake | -F)
            # FLAKE#NAME: the names come from evaluating FLAKE
            if [[ $cur == *#* ]]; then
                local ref=${cur%%#*} name=${cur#*#} r
                r=$ref
                [[ $r == "~/"* ]] && r=$HOME/${r#"~/"}
                _nixos_rebuild_remote_match "$ref#" "$name" < <(
                    "$bin" --complete "flake:$r" 2>/dev/null </dev/null)
            else
                _filedir -d
            fi
            ;;
        --file | -f | --store-path | --include | -I)
            _filedir
            ;;
        --override-input)
            ((argi == 1)) && _filedir -d
            ;;
        --elevate)
            COMPREPLY=($(compgen -W 'none sudo run0' -- "$cur"))
            ;;
        --log-format)
            COMPREPLY=($(compgen -W 'raw internal-json bar bar-with-logs multiline multiline-with-logs' -- "$cur"))
            ;;
        --profile-name | -p)
            # profiles of this machine (a target's may differ)
            d=/nix/var/nix/profiles/system-profiles
            [[ -d $d ]] && _nixos_rebuild_remote_match "" "$cur" < <(
                command ls -- "$d" 2>/dev/null | command grep -v -- '-link$')
            ;;
        --specialisation | -c)
            # specialisations of the running system here
            d=/run/current-system/specialisation
            [[ -d $d ]] && _nixos_rebuild_remote_match "" "$cur" < <(
                command ls -- "$d" 2>/dev/null)
            ;;
    esac
    return 0
}

complete -F _nixos_rebuild_remote nixos-rebuild-remote
# When bash-completion loads this file for a command typed as a path
# (./nixos-rebuild-remote, ~/src/nrr/nixos-rebuild-remote), bash looks that
# path up again right after, not its basename: register the path too.
[[ ${COMP_WORDS[0]-} == */nixos-rebuild-remote ]] &&
    complete -F _nixos_rebuild_remote -- "${COMP_WORDS[0]}"

# Also for `nixos-rebuild` when that name runs this program (see the top).
_nixos_rebuild_remote_register_alias()
{
    local first p
    if [[ -n ${BASH_ALIASES[nixos-rebuild]+set} ]]; then
        read -r first _ <<<"${BASH_ALIASES[nixos-rebuild]}"
        [[ ${first##*/} == nixos-rebuild-remote ]] &&
            complete -F _nixos_rebuild_remote nixos-rebuild
    elif p=$(type -P nixos-rebuild) && [[ -L $p ]] &&
        p=$(readlink -f -- "$p") && [[ ${p##*/} == nixos-rebuild-remote ]]; then
        complete -F _nixos_rebuild_remote nixos-rebuild
    fi
    return 0
}
_nixos_rebuild_remote_register_alias
unset -f _nixos_rebuild_remote_register_alias

# ex: filetype=sh
