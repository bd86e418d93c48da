#!/usr/bin/env bats
# colmena's deployment.keys (lib/keys.c, lib/scripts/keys.sh), on real test hosts through
# tests/test-tool: the text read here (text, keyFile, keyCommand), sent on a session's stdin,
# written atomically with its mode and owner; an unchanged key not rewritten; an owner that
# the new system creates given the key afterwards; the text in no command line, process
# list or store, here or there.
#
# A destDir may belong to a user who is not root (the key's service): what that user plants in
# it or on the way to it (symbolic links at the keys' names or in place of a directory, a swap in
# the middle of the upload) leads root's writes, chmod and chown to no other file. Without root,
# the record of a pending key stays in a directory of the user's alone.

bats_require_minimum_version 1.5.0

setup_file() {
	load lib/common
	fleet_start t1
}

teardown_file() {
	load lib/common
	fleet_stop
}

setup() {
	load lib/common
	cd "$BATS_TEST_TMPDIR"
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
}

teardown() {
	stop_nrr_bg
}

# A key record as colmena's deploymentConfig has it: NAME SOURCE VALUE [FIELD VALUE]...
# (SOURCE text, keyFile or keyCommand; keyCommand's VALUE is a JSON list).
key() {
	local name=$1 src=$2 val=$3 k v
	shift 3
	case $src in
	keyCommand) printf '"%s":{"name":"%s","keyCommand":%s' "$name" "$name" "$val" ;;
	*) printf '"%s":{"name":"%s","%s":"%s"' "$name" "$name" "$src" "$val" ;;
	esac
	while [ $# -gt 0 ]; do
		k=$1 v=$2
		shift 2
		printf ',"%s":"%s"' "$k" "$v"
	done
	printf '}'
}

# The keys given as arguments, as one JSON object.
keys() {
	local IFS=,
	printf '{%s}\n' "$*"
}

# Uploads the keys of JSON file $2 to t1 (stage $1: pre, post or all).
upload() {
	fleet_local "$TT" keys-upload t1 "$1" <"$2"
}

# "inode mtime user:group mode" of $1 on t1.
meta() {
	fleet_exec t1 stat -c '%i %Y %U:%G %a' "$1"
}

# Runs CMD on t1 as the user of uid $1 (deploy 1500, fishy 1501): what a hostile owner of a
# destDir can do.
as_uid() {
	local uid=$1
	shift
	fleet_exec t1 setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
}

# "type user:group mode" of $1 on t1, the file itself (a symbolic link is not followed).
kind() {
	fleet_exec t1 stat -c '%F %U:%G %a' "$1"
}

# Makes directory $1 on t1, owned by deploy, and the file $2 of root's (0600, "root-text")
# that deploy would like to own.
hostile_dir() {
	fleet_exec t1 sh -c 'mkdir -p "$1" && chown deploy:deploy "$1" &&
		printf root-text >"$2" && chmod 0600 "$2"' sh "$1" "$2"
}

# Fails unless root's file $1 on t1 is as hostile_dir made it.
untouched() {
	assert_equal "$(kind "$1")" "regular file root:root 600"
	assert_equal "$(fleet_exec t1 cat "$1")" root-text
}

@test "the rules are checked here, before anything is sent" {
	run -2 "$TT" keys-check <<<"$(keys "$(key ../x text s)")"
	assert_output "error(2): key '../x' of 'node': its name must be one relative path component"
	run -2 "$TT" keys-check <<<"$(keys "$(key a text s destDir run/keys)")"
	assert_output "error(2): key 'a' of 'node': destDir must be an absolute path"
	run -2 "$TT" keys-check <<<"$(keys "$(key a text s user 'x y')")"
	assert_output "error(2): key 'a' of 'node': user is not a valid user name"
	run -2 "$TT" keys-check <<<"$(keys "$(key a text s group 'a;b')")"
	assert_output "error(2): key 'a' of 'node': group is not a valid group name"
	run -2 "$TT" keys-check <<<"$(keys "$(key a text s permissions 0999)")"
	assert_output "error(2): key 'a' of 'node': permissions must be an octal mode such as 0600"
	run -2 "$TT" keys-check <<<'{"a":{"name":"a","text":"s","keyFile":"/f"}}'
	assert_output "error(2): key 'a' of 'node': it needs exactly one of text, keyFile and keyCommand"
	run -2 "$TT" keys-check <<<"$(keys "$(key a text s uploadAt later)")"
	assert_output "error(2): key 'a' of 'node': uploadAt must be pre-activation or post-activation"
	run -0 "$TT" keys-check <<<"$(keys "$(key a text s)" "$(key b text s destDir /var/k user deploy \
		group deploy permissions 0640 uploadAt post-activation)")"
	assert_output $'a /run/keys root:root 0600 pre\nb /var/k deploy:deploy 0640 post'
}

@test "a key text read from nix leaves no copy in the memory we give back, however its buffer grows" {
	# the same read into a plain buffer leaves copies: the count sees them
	run -0 "$TT" keys-no-copy 'S3CRET-key-text-41'
	assert_line --regexp '^plain: [1-9][0-9]*$'
	assert_line 'secret: 0'
}

@test "keys of every kind arrive with their content, mode and owner, and their text is nowhere else" {
	secret1=text-$RANDOM$RANDOM secret2=file-$RANDOM$RANDOM secret3=cmd-$RANDOM$RANDOM
	printf '%s\n' "$secret2" >"$BATS_TEST_TMPDIR/file-key"
	keys "$(key one text "$secret1")" \
		"$(key two keyFile "$BATS_TEST_TMPDIR/file-key" user deploy group deploy permissions 0640)" \
		"$(key three keyCommand "[\"sh\",\"-c\",\"printf %s $secret3\"]" destDir /run/secrets/k \
			permissions 0400)" >k.json
	fleet_reset_counts t1
	# what runs there and here while the keys travel
	(while :; do fleet_ps t1; ps -eo args; sleep 0.02; done) >ps.log 2>&1 &
	sampler=$!
	run -0 upload pre k.json
	kill "$sampler"
	wait "$sampler" || true
	assert_output "written=3 fixed=0 pending=0 unchanged=0"
	assert_equal "$(fleet_exec t1 cat /run/keys/one)" "$secret1"
	assert_equal "$(fleet_exec t1 cat /run/keys/two)" "$secret2"
	assert_equal "$(fleet_exec t1 cat /run/secrets/k/three)" "$secret3"
	assert_equal "$(meta /run/keys/one | cut -d' ' -f3-)" "root:root 600"
	assert_equal "$(meta /run/keys/two | cut -d' ' -f3-)" "deploy:deploy 640"
	assert_equal "$(meta /run/secrets/k/three | cut -d' ' -f3-)" "root:root 400"
	# no temporary left beside them
	assert_equal "$(fleet_exec t1 ls -A /run/keys)" $'one\ntwo'
	# one remote command for all of them, and no text in it
	assert_equal "$(fleet_commands t1)" 1
	assert_equal "$(fleet_handshakes t1)" 1
	grep -q 'sshd' ps.log # the sampler saw the host's processes
	for s in "$secret1" "$secret2" "$secret3"; do
		run -1 grep -F -- "$s" "$FLEET_DIR/t1/commands.log" "$FLEET_DIR/t1/sshd.log" ps.log
		# the stores and nix's state, and everything else of both sides (keys went to
		# the host's /run)
		run -1 grep -rlF -D skip -- "$s" "$FLEET_DIR/t1" "$FLEET_DIR/local"
	done
}

@test "an unchanged key is not rewritten; a changed mode is fixed in place" {
	keys "$(key same text unchanged-text)" "$(key moded text moded-text permissions 0600)" >k.json
	run -0 upload pre k.json
	assert_output "written=2 fixed=0 pending=0 unchanged=0"
	before_same=$(meta /run/keys/same)
	before_moded=$(meta /run/keys/moded)
	sleep 1.1 # mtimes have one-second resolution in stat's %Y
	run -0 upload pre k.json
	assert_output "written=0 fixed=0 pending=0 unchanged=2"
	assert_equal "$(meta /run/keys/same)" "$before_same"
	keys "$(key same text unchanged-text)" "$(key moded text moded-text permissions 0644)" >k.json
	run -0 upload pre k.json
	assert_output "written=0 fixed=1 pending=0 unchanged=1"
	assert_equal "$(meta /run/keys/same)" "$before_same"
	# the same file (inode and mtime), with its new mode
	assert_equal "$(meta /run/keys/moded | cut -d' ' -f1-3)" "$(cut -d' ' -f1-3 <<<"$before_moded")"
	assert_equal "$(meta /run/keys/moded | cut -d' ' -f4)" 644
	# a changed text is written anew (a new file renamed over the old)
	keys "$(key same text changed-text)" >k.json
	run -0 upload pre k.json
	assert_output "written=1 fixed=0 pending=0 unchanged=0"
	assert_equal "$(fleet_exec t1 cat /run/keys/same)" changed-text
}

@test "a pre-activation key for a user the new system creates is owned by it once it exists" {
	keys "$(key later text later-text user alice group alice permissions 0400)" >k.json
	run -0 upload pre k.json
	assert_output "written=0 fixed=0 pending=1 unchanged=0"
	assert_equal "$(fleet_exec t1 cat /run/keys/later)" later-text
	assert_equal "$(meta /run/keys/later | cut -d' ' -f3-)" "root:root 400"
	# the activation creates alice (appended in place: the host sees the file through a bind
	# mount), then keys_fixup runs, as after switch-to-configuration
	echo 'alice:x:1600:1600::/nonexistent:/usr/sbin/nologin' >>"$FLEET_DIR/t1/etc/passwd"
	echo 'alice:x:1600:' >>"$FLEET_DIR/t1/etc/group"
	run -0 fleet_local "$TT" keys-upload t1 pre <<<'{}'
	assert_output "written=0 fixed=0 pending=0 unchanged=0"
	assert_equal "$(meta /run/keys/later | cut -d' ' -f3-)" "alice:alice 400"
	run ! fleet_exec t1 test -e /run/nixos-rebuild-remote-keys.pending
}

@test "a post-activation key whose owner does not exist fails, naming the key and the host" {
	keys "$(key nobody-key text x user nosuchuser group nosuchuser uploadAt post-activation)" >k.json
	run -8 upload post k.json
	assert_output "error(8): key 'nobody-key' on 't1': owner nosuchuser:nosuchuser does not exist"
	run ! fleet_exec t1 test -e /run/keys/nobody-key
}

@test "a keyCommand that fails stops everything before any remote command" {
	keys "$(key bad keyCommand '["sh","-c","echo no vault here >&2; exit 3"]')" >k.json
	fleet_reset_counts t1
	run -1 upload pre k.json
	assert_output "error(1): keyCommand of key 'bad' of 't1' failed (status 3): no vault here"
	assert_equal "$(fleet_commands t1)" 0
	# and it reads nothing from our stdin
	keys "$(key stdin keyCommand '["sh","-c","cat; echo done"]')" >k.json
	run -0 upload pre k.json
	assert_equal "$(fleet_exec t1 cat /run/keys/stdin)" done
}

@test "a keyFile that cannot be read is named" {
	keys "$(key gone keyFile /nonexistent/key)" >k.json
	run -1 upload pre k.json
	assert_output "error(1): cannot read keyFile '/nonexistent/key' of key 'gone' of 't1': No such file or directory"
}

@test "a binary key (NUL bytes, no final newline, 100 KiB) arrives byte for byte" {
	head -c 102400 /dev/urandom >bin.key
	printf '\0\0end' >>bin.key
	keys "$(key bin keyFile "$BATS_TEST_TMPDIR/bin.key")" "$(key after text after-text)" >k.json
	run -0 upload pre k.json
	assert_output "written=2 fixed=0 pending=0 unchanged=0"
	assert_equal "$(fleet_exec t1 sha256sum /run/keys/bin | cut -d' ' -f1)" "$(sha256sum bin.key | cut -d' ' -f1)"
	# the stream stayed in step: the key after it is whole
	assert_equal "$(fleet_exec t1 cat /run/keys/after)" after-text
}

@test "through sudo, for a target user that is not root (the password first on the same stdin)" {
	keys "$(key via-sudo text sudo-text user deploy group deploy)" >k.json
	# sudo's own complaints (a machine name that does not resolve) are not the answer
	run -0 --separate-stderr fleet_local "$TT" keys-upload deploy@t1 pre sudo hunter2 <k.json
	assert_output "written=1 fixed=0 pending=0 unchanged=0"
	assert_equal "$(fleet_exec t1 cat /run/keys/via-sudo)" sudo-text
	assert_equal "$(meta /run/keys/via-sudo | cut -d' ' -f3-)" "deploy:deploy 600"
	run -8 fleet_local "$TT" keys-upload deploy@t1 pre sudo wrong <k.json
	assert_output --partial "error(8): the keys step on 'deploy@t1' stopped with status 1: sudo: "
}

@test "inside another conversation: the keys step between two of its reads of stdin" {
	keys "$(key in-conv text conv-text)" >k.json
	run -0 fleet_local "$TT" keys-in-conversation t1 <k.json
	assert_output $'before: one\nwritten=1\nafter: two\nstatus 0'
	assert_equal "$(fleet_exec t1 cat /run/keys/in-conv)" conv-text
}

@test "a keyCommand that cannot be run is named" {
	keys "$(key nocmd keyCommand '["/nonexistent/vault","read"]')" >k.json
	run -1 upload pre k.json
	assert_output --partial "error(1): cannot run keyCommand of key 'nocmd' of 't1': "
	assert_output --partial "/nonexistent/vault"
}

@test "symbolic links that a destDir's owner planted at the keys' names are replaced, not followed" {
	hostile_dir /run/svc-a /run/victim-a
	fleet_exec t1 mkdir /run/victim-a.d
	as_uid 1500 ln -s /run/victim-a /run/svc-a/to-file
	as_uid 1500 ln -s /run/victim-a.d /run/svc-a/to-dir
	keys "$(key to-file text file-text destDir /run/svc-a user deploy group deploy permissions 0640)" \
		"$(key to-dir text dir-text destDir /run/svc-a user deploy group deploy permissions 0640)" >k.json
	run -0 upload pre k.json
	assert_output "written=2 fixed=0 pending=0 unchanged=0"
	untouched /run/victim-a
	assert_equal "$(fleet_exec t1 ls -A /run/victim-a.d)" ""
	assert_equal "$(kind /run/svc-a/to-file)" "regular file deploy:deploy 640"
	assert_equal "$(kind /run/svc-a/to-dir)" "regular file deploy:deploy 640"
	assert_equal "$(fleet_exec t1 cat /run/svc-a/to-file)" file-text
	assert_equal "$(fleet_exec t1 cat /run/svc-a/to-dir)" dir-text
}

@test "a key swapped for a symbolic link in the middle of the upload: nothing changes through it" {
	hostile_dir /run/svc-b /run/victim-b
	keys "$(key swapped text swapped-text destDir /run/svc-b user deploy group deploy permissions 0640)" >k.json
	run -0 upload pre k.json
	assert_output "written=1 fixed=0 pending=0 unchanged=0"
	# a big key first, over a link of 1 MB/s: while it travels, the key after it, already
	# found right, is swapped by the directory's owner for a link to root's file
	head -c 3000000 /dev/urandom >big.key
	keys "$(key big keyFile "$PWD/big.key" destDir /run/svc-b)" \
		"$(key swapped text swapped-text destDir /run/svc-b user deploy group deploy permissions 0640)" >k.json
	NIX_SSHOPTS="$NIX_SSHOPTS $(slow_link_opt 1000000)" fleet_local_bg "$BATS_TEST_TMPDIR/log" \
		sh -c '"$1" keys-upload t1 pre <"$2"' sh "$TT" "$PWD/k.json"
	# shellcheck disable=SC2016 # for that sh
	poll_until 20 fleet_exec t1 sh -c 'ls -A /run/svc-b | grep -q "^\.big\."' ||
		fail "the big key never started: $(cat "$BATS_TEST_TMPDIR/log")"
	as_uid 1500 ln -sfn /run/victim-b /run/svc-b/swapped
	wait_nrr 60
	untouched /run/victim-b
	assert_equal "$status" 8
	assert_output "error(8): key 'swapped' on 't1': /run/svc-b/swapped changed during the upload"
	# the next upload puts the key back
	run -0 upload pre k.json
	assert_output "written=1 fixed=0 pending=0 unchanged=1"
	assert_equal "$(kind /run/svc-b/swapped)" "regular file deploy:deploy 640"
	assert_equal "$(fleet_exec t1 cat /run/svc-b/swapped)" swapped-text
}

@test "a destDir that the owner of its parent turned into a symbolic link is refused" {
	hostile_dir /run/svc-c /run/victim-c
	fleet_exec t1 mkdir /run/victim-c.d
	as_uid 1500 ln -s /run/victim-c.d /run/svc-c/keys
	keys "$(key c text c-text destDir /run/svc-c/keys user deploy group deploy)" >k.json
	run -8 upload pre k.json
	assert_output "error(8): key 'c' on 't1': cannot reach /run/svc-c/keys: keys is a symbolic link in a directory that a user other than root can change"
	assert_equal "$(fleet_exec t1 ls -A /run/victim-c.d)" ""
	# a real directory there is used, and what is missing below it made
	as_uid 1500 rm /run/svc-c/keys
	as_uid 1500 mkdir /run/svc-c/keys
	keys "$(key c text c-text destDir /run/svc-c/keys/sub user deploy group deploy)" >k.json
	run -0 upload pre k.json
	assert_output "written=1 fixed=0 pending=0 unchanged=0"
	assert_equal "$(kind /run/svc-c/keys/sub)" "directory root:root 755"
	assert_equal "$(kind /run/svc-c/keys/sub/c)" "regular file deploy:deploy 600"
}

@test "a destDir reached through symbolic links that only root can change works as before" {
	fleet_exec t1 sh -c 'mkdir -p /run/real-keys/deeper && ln -s real-keys /run/rel-link &&
		ln -s /run/rel-link/deeper /run/abs-link'
	keys "$(key via-rel text rel-text destDir /run/rel-link)" \
		"$(key via-abs text abs-text destDir /run/abs-link/ user deploy group deploy)" >k.json
	run -0 upload pre k.json
	assert_output "written=2 fixed=0 pending=0 unchanged=0"
	assert_equal "$(fleet_exec t1 cat /run/real-keys/via-rel)" rel-text
	assert_equal "$(kind /run/real-keys/deeper/via-abs)" "regular file deploy:deploy 600"
	run -0 upload pre k.json
	assert_output "written=0 fixed=0 pending=0 unchanged=2"
}

@test "a pending key swapped for a symbolic link before its owner exists: the owner gets nothing through it" {
	hostile_dir /run/svc-d /run/victim-d
	keys "$(key later-d text d-text destDir /run/svc-d user carol group carol permissions 0400)" >k.json
	run -0 upload pre k.json
	assert_output "written=0 fixed=0 pending=1 unchanged=0"
	as_uid 1500 ln -sfn /run/victim-d /run/svc-d/later-d
	# carol arrives (see the test of alice), then keys_fixup runs
	echo 'carol:x:1601:1601::/nonexistent:/usr/sbin/nologin' >>"$FLEET_DIR/t1/etc/passwd"
	echo 'carol:x:1601:' >>"$FLEET_DIR/t1/etc/group"
	run -0 fleet_local "$TT" keys-upload t1 pre <<<'{}'
	untouched /run/victim-d
	# what is there is not the key written: its record is dropped
	run ! fleet_exec t1 test -e /run/nixos-rebuild-remote-keys.pending
}

@test "without root, a pending key's record stays in a directory of the user's own" {
	# fishy plants the record's name of old in the shared /tmp, pointing at a file of deploy's
	fleet_exec t1 sh -c 'printf notes >/run/fleet/t1/home/deploy/notes && chown deploy /run/fleet/t1/home/deploy/notes'
	as_uid 1501 ln -s /run/fleet/t1/home/deploy/notes /tmp/nixos-rebuild-remote-keys-1500.pending
	keys "$(key later-e text e-text destDir /tmp/deploy-keys user dave group dave)" >k.json
	run -0 fleet_local "$TT" keys-upload deploy@t1 pre <k.json
	assert_output "written=0 fixed=0 pending=1 unchanged=0"
	assert_equal "$(fleet_exec t1 cat /run/fleet/t1/home/deploy/notes)" notes
	assert_equal "$(kind /tmp/nixos-rebuild-remote-1500)" "directory deploy:deploy 700"
	assert_equal "$(fleet_exec t1 cat /tmp/nixos-rebuild-remote-1500/keys.pending)" \
		"dave:dave /tmp/deploy-keys/later-e"
	# a directory of that name that another user made is not used
	fleet_exec t1 rm -r /tmp/nixos-rebuild-remote-1500
	as_uid 1501 mkdir -m 0777 /tmp/nixos-rebuild-remote-1500
	run -8 fleet_local "$TT" keys-upload deploy@t1 pre <k.json
	assert_output "error(8): key 'later-e' on 'deploy@t1': cannot keep its record for its owner: /tmp/nixos-rebuild-remote-1500 is not a directory of deploy's alone"
	assert_equal "$(fleet_exec t1 ls -A /tmp/nixos-rebuild-remote-1500)" ""
}
