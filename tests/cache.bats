#!/usr/bin/env bats
# Binary caches: nix-base32, hashes, narinfo, fingerprints and signatures checked against
# what Nix itself writes and prints; Nix settings; and querying real caches (made by
# `nix copy`, served by python's http.server and nginx over HTTP/1.x and HTTP/2) that
# misbehave on demand. Nix runs only in a private mount namespace (its own /nix and
# /etc/nix); servers listen on 127.0.0.1 only.

bats_require_minimum_version 1.5.0

setup_file() {
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	cache_servers_init
	export NIXD=$BATS_FILE_TMPDIR/store KEYS=$BATS_FILE_TMPDIR/keys
	export CACHE=$BATS_FILE_TMPDIR/cache UNSIGNED=$BATS_FILE_TMPDIR/unsigned
	cache_nix_init "$NIXD"
	mkdir -p "$KEYS"
	# a: no references; b: a and itself; c: b (so a through b)
	cat >"$BATS_FILE_TMPDIR/paths.nix" <<-'EOF'
		let
		  mk = name: script: derivation {
		    inherit name;
		    system = builtins.currentSystem;
		    builder = "/bin/sh";
		    args = [ "-c" script ];
		  };
		  a = mk "cache-test-a" "echo a > $out";
		  b = mk "cache-test-b" "echo ${a} > $out; echo $out >> $out";
		  c = mk "cache-test-c" "echo ${b} > $out";
		in { inherit a b c; }
	EOF
	cache_nix "$NIXD" sh -ec '
		d=$1
		nix-build --no-out-link "$d/paths.nix" -A a -A b -A c >"$d/paths"
		nix-store --generate-binary-cache-key test-1 "$d/keys/sk" "$d/keys/pk"
		nix-store --generate-binary-cache-key test-1 "$d/keys/sk-other" "$d/keys/pk-other"
		nix-store --generate-binary-cache-key other-1 "$d/keys/sk-named" "$d/keys/pk-named"
		nix copy --to "file://$d/cache?secret-key=$d/keys/sk" $(cat "$d/paths")
		nix copy --to "file://$d/unsigned" $(cat "$d/paths")
		nix path-info --json --sigs --store "file://$d/cache" $(cat "$d/paths") >"$d/path-info.json"
	' sh "$BATS_FILE_TMPDIR" >"$BATS_FILE_TMPDIR/setup.log" 2>&1 ||
		{ cat "$BATS_FILE_TMPDIR/setup.log" >&2; return 1; }
}

teardown_file() {
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	cache_servers_stop
}

setup() {
	load lib/assert
	source "$BATS_TEST_DIRNAME/lib/cache-server.bash"
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
	{ read -r A; read -r B; read -r C; } <"$BATS_FILE_TMPDIR/paths"
	PK=$(cat "$KEYS/pk")
	# A quick query: short timeouts, short backoff.
	Q=("$TT" cache-query --tries 3 --backoff 20 --timeout 2000 --connect-timeout 1000)
	cd "$BATS_TEST_TMPDIR" || return
}

teardown() {
	cache_servers_stop
}

nixq() { cache_nix "$NIXD" "$@"; }
hashpart() { basename "$1" | cut -c1-32; }
narinfo_of() { cat "$CACHE/$(hashpart "$1").narinfo"; }
info() { jq -r --arg p "$1" ".[] | select(.path == \$p) | $2" "$BATS_FILE_TMPDIR/path-info.json"; }

# A copy of the cache whose narinfo of PATH went through sed EXPR.
cache_with() {
	local dir=$1 path=$2 expr=$3
	cp -r "$CACHE" "$dir"
	sed -i "$expr" "$dir/$(hashpart "$path").narinfo"
}

# ---- nix-base32 and hashes -------------------------------------------------------------

@test "nix-base32: bytes encode as nix-hash --to-base32 prints them" {
	local hexes=() h i=0
	for input in "" a "hello world" "$(head -c 300 /dev/urandom | base64)"; do
		hexes+=("$(printf %s "$input" | sha256sum | cut -d' ' -f1)")
	done
	mapfile -t wants < <(nixq nix-hash --type sha256 --to-base32 "${hexes[@]}")
	[ "${#wants[@]}" = 4 ]
	for h in "${hexes[@]}"; do
		run "$TT" cache-base32 "$h"
		assert_output "${wants[$i]}"
		i=$((i + 1))
	done
	# the value of Nix's manual
	assert_equal "${wants[0]}" 0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73
}

@test "nix-base32: md5, sha1 and sha512 lengths encode as nix hash to-base32 prints them" {
	for t in md5 sha1 sha512; do
		hex=$(printf 'cache %s' "$t" | "${t}sum" | cut -d' ' -f1)
		want=$(nixq nix hash to-base32 --type "$t" "$hex")
		run "$TT" cache-base32 "$hex"
		assert_output "$want"
		run "$TT" cache-base32-decode "$want"
		assert_output "$hex"
	done
}

@test "nix-base32: what nix prints decodes to the bytes nix hash to-base16 prints" {
	b32=$(narinfo_of "$B" | sed -n 's/^NarHash: sha256://p')
	want=$(nixq nix hash to-base16 --type sha256 "$b32")
	run "$TT" cache-base32-decode "$b32"
	assert_success
	assert_output "$want"
}

@test "nix-base32: decoding refuses letters e o u t, wrong lengths, and numbers too large" {
	good=0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73
	for bad in "${good%3}e" "${good%3}o" "${good%3}u" "${good%3}t" "${good%3}" "${good}00" \
		"2${good#0}" "z${good#0}" "${good%3}-"; do
		run "$TT" cache-base32-decode "$bad"
		assert_failure 1
		assert_output --partial "is not nix-base32"
	done
	# the largest 256-bit number is fine
	run "$TT" cache-base32-decode "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
	assert_output ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
}

@test "hashes: a NarHash in base16, nix-base32, base64 or SRI reads as nix converts it" {
	sri=$(info "$B" .narHash)
	want=sha256:$(nixq nix hash to-base32 "$sri")
	hex=$(nixq nix hash to-base16 "$sri")
	b64=${sri#sha256-}
	for form in "$sri" "sha256:$hex" "sha256:${hex^^}" "$want" "sha256:$b64"; do
		run "$TT" cache-hash "$form"
		assert_success
		assert_line --index 0 "$want"
		assert_line --index 1 "sha256:$hex"
	done
}

@test "hashes: unknown types, bad digits and wrong lengths are refused" {
	for bad in "sha256" "sha257:abc" "sha256:xyz" "sha256:${PK#*:}=" "sha256-!!!!" \
		"sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c7e" "md5:00"; do
		run "$TT" cache-hash "$bad"
		assert_failure 1
		assert_output --regexp "error: hash '.*' (does not say its type|has an unknown type|is not valid)"
	done
}

# ---- narinfo -----------------------------------------------------------------------------

@test "narinfo: what nix copy wrote parses to what nix path-info says" {
	for p in "$A" "$B" "$C"; do
		run "$TT" cache-parse < <(narinfo_of "$p")
		assert_success
		assert_line "StorePath: $p"
		assert_line "NarHash: sha256:$(nixq nix hash to-base32 "$(info "$p" .narHash)")"
		assert_line "NarSize: $(info "$p" .narSize)"
		assert_line "FileSize: $(info "$p" .downloadSize)"
		assert_line "URL: $(info "$p" .url)"
		assert_line "Compression: xz"
		assert_line "Deriver: $(basename "$(info "$p" .deriver)")"
		refs=$(info "$p" '.references | map(ltrimstr("/nix/store/")) | join(" ")')
		assert_line "References:${refs:+ $refs}"
		assert_line "Sig: $(info "$p" '.signatures[0]')"
	done
}

@test "narinfo: defaults and leniency: bzip2, System ignored, unknown-deriver, CRLF, blank lines" {
	run "$TT" cache-parse < <(narinfo_of "$A" | grep -v -e '^Compression' -e '^Deriver' |
		sed 's/$/\r/'; printf 'System: x86_64-linux\n\nDeriver: unknown-deriver\nFuture: 1\n')
	assert_success
	assert_line "Compression: bzip2"
	assert_line "Deriver: (none)"
	assert_line "StorePath: $A"
}

@test "narinfo: each malformed field is refused with its line and name" {
	check() {
		run "$TT" cache-parse < <(narinfo_of "$B" | sed "$1")
		assert_failure 1
		assert_output --partial "$2"
	}
	check '/^StorePath/d' "narinfo has no StorePath"
	check '/^URL/d' "narinfo has no URL"
	check '/^NarHash/d' "narinfo has no NarHash"
	check '/^NarSize/d' "narinfo has no NarSize"
	check 's/^NarSize: .*/NarSize: 0/' "line 7: NarSize is 0"
	check 's/^NarSize: .*/NarSize: 18446744073709551616/' "NarSize '18446744073709551616' is not a number"
	check 's/^NarSize: .*/NarSize: -1/' "is not a number"
	check 's/^FileSize: .*/FileSize: 12a/' "line 5: FileSize '12a' is not a number"
	check 's/^NarHash: .*/NarHash: md5:00000000000000000000000000000000/' "is not SHA-256"
	check 's/^NarHash: sha256:./NarHash: sha256:e/' "line 6: NarHash: hash 'sha256:e"
	check 's/^FileHash: .*/FileHash: sha256:nope/' "line 4: FileHash: hash 'sha256:nope'"
	check 's/^URL: .*/&\nURL: again/' "line 3: URL given twice"
	check 's/^References: .*/References: not\/a-path/' "reference 'not/a-path' is not a store path name"
	check 's/^StorePath: .*/StorePath: \/gnu\/store\/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x/' "is not a path in /nix/store"
	check 's/^Deriver: .*/Deriver: ../' "Deriver '..' is not a store path name"
	check 's/^Sig: .*/Sig: nocolon/' "Sig 'nocolon' is not 'keyname:signature'"
	check '1i no colon here' "line 1: 'no colon here' is not 'Key: value'"
	check 's/^URL: nar/URL: \x00nar/' "NUL byte"
}

@test "narinfo: bytes from the server reach messages only as printable text" {
	run "$TT" cache-parse < <(narinfo_of "$B" | sed 's/^StorePath: .*/StorePath: \x1b[31mred/')
	assert_failure 1
	assert_output --partial "StorePath '?[31mred' is not a path"
}

@test "narinfo: store path names follow Nix's rules" {
	h=$(hashpart "$A")
	for name in "a" "a-1.0" "+._?=-" ".a" "..a"; do
		run "$TT" cache-parse < <(narinfo_of "$A" | sed "s|^StorePath: .*|StorePath: /nix/store/$h-$name|")
		assert_success
	done
	for name in "" "." ".." ".-a" "..-a" "a b" "a/b" "$(printf 'x%.0s' {1..212})"; do
		run "$TT" cache-parse < <(narinfo_of "$A" | sed "s|^StorePath: .*|StorePath: /nix/store/$h-$name|")
		assert_failure 1
		# (a long name is shortened in the message)
		assert_output --regexp "^error: line 1: StorePath '.*' is not a path in /nix/store\$"
		assert_output --partial "StorePath '/nix/store/$h-${name:0:16}"
	done
}

@test "fingerprint: equals the one assembled from nix path-info's output" {
	for p in "$A" "$B" "$C"; do
		hash=$(nixq nix hash to-base32 "$(info "$p" .narHash)")
		refs=$(info "$p" '.references | sort | join(",")')
		run "$TT" cache-fingerprint < <(narinfo_of "$p")
		assert_output "1;$p;sha256:$hash;$(info "$p" .narSize);$refs"
	done
	# no references: the fingerprint ends in a bare ';'
	run "$TT" cache-fingerprint < <(narinfo_of "$A")
	assert_output --regexp ';[0-9]+;$'
}

@test "fingerprint: references are sorted and said once, whatever the narinfo's order" {
	want=$("$TT" cache-fingerprint < <(narinfo_of "$B"))
	refs=$(narinfo_of "$B" | sed -n 's/^References: //p')
	rev=$(printf '%s\n' $refs | sort -r | tr '\n' ' ')
	run "$TT" cache-fingerprint < <(narinfo_of "$B" | sed "s|^References: .*|References:  $rev $refs|")
	assert_output "$want"
}

@test "fingerprint: the signature nix made verifies over it with openssl too" {
	command -v openssl >/dev/null || fail "no openssl (make deps)"
	"$TT" cache-fingerprint < <(narinfo_of "$B") | tr -d '\n' >fp
	info "$B" '.signatures[0]' | cut -d: -f2- | base64 -d >sig
	# Ed25519 SubjectPublicKeyInfo: a fixed DER prefix, then the 32 raw bytes
	{ printf '\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00'; cut -d: -f2- "$KEYS/pk" | base64 -d; } >pk.der
	run openssl pkeyutl -verify -pubin -inkey pk.der -keyform DER -rawin -in fp -sigfile sig
	assert_output --partial "Signature Verified Successfully"
}

# ---- signatures --------------------------------------------------------------------------

@test "signatures: what nix signed verifies with nix's key" {
	for p in "$A" "$B" "$C"; do
		run "$TT" cache-verify "$PK" < <(narinfo_of "$p")
		assert_success
		assert_output "verified: test-1"
	done
}

@test "signatures: the example of PROTOCOLS.md verifies with cache.nixos.org's key" {
	run "$TT" cache-verify cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= <<-'EOF'
		StorePath: /nix/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
		URL: nar/0000000000000000000000000000000000000000000000000000.nar.xz
		Compression: xz
		NarHash: sha256:1mi14cqk363wv368ffiiy01knardmnlyphi6h9xv6dkjz44hk30i
		NarSize: 205968
		References: 9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31 w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
		Sig: cache.nixos.org-1:uP5KU8MCmyRnKGlN5oEv6xWJBI5EO/Pf5aFztZuLSz8BpCcZ1fdBnJkVXhBAlxkdm/CemsgQskhwvyd2yghTAg==
	EOF
	assert_success
	assert_output "verified: cache.nixos.org-1"
}

@test "signatures: a key of another name leaves the path untrusted" {
	run "$TT" cache-verify "$(cat "$KEYS/pk-named")" < <(narinfo_of "$B")
	assert_failure 1
	assert_output "untrusted: signed by 'test-1', not a trusted key"
}

@test "signatures: another key of the same name is a bad signature" {
	run "$TT" cache-verify "$(cat "$KEYS/pk-other")" < <(narinfo_of "$B")
	assert_failure 1
	assert_output --partial "bad signature: signature by 'test-1' does not match"
}

@test "signatures: of two trusted keys of one name the first counts, as in Nix" {
	run "$TT" cache-verify "$(cat "$KEYS/pk-other")" "$PK" < <(narinfo_of "$B")
	assert_output --partial "bad signature: signature by 'test-1' does not match"
	run "$TT" cache-verify "$PK" "$(cat "$KEYS/pk-other")" < <(narinfo_of "$B")
	assert_output "verified: test-1"
}

@test "signatures: a changed NarHash, NarSize, References or StorePath breaks the signature" {
	other=$(narinfo_of "$A" | sed -n 's/^NarHash: //p')
	for expr in "s|^NarHash: .*|NarHash: $other|" 's/^NarSize: \(.*\)/NarSize: 1\1/' \
		"s| $(basename "$A")||" "s|^References: |References: $(basename "$C") |" \
		"s|^StorePath: .*|StorePath: $C|"; do
		run "$TT" cache-verify "$PK" < <(narinfo_of "$B" | sed "$expr")
		assert_failure 1
		assert_output --partial "bad signature"
	done
	# fields outside the fingerprint may change
	run "$TT" cache-verify "$PK" < <(narinfo_of "$B" | sed 's/^FileSize: .*/FileSize: 1/')
	assert_success
}

@test "signatures: nix store verify agrees on a good and a tampered narinfo" {
	cache_with tampered "$B" 's/^NarSize: \(.*\)/NarSize: 1\1/'
	run nixq nix store verify --no-contents --store "file://$CACHE" --trusted-public-keys "$PK" "$B"
	assert_success
	run nixq nix store verify --no-contents --store "file://$PWD/tampered" --trusted-public-keys "$PK" "$B"
	assert_failure 2
	assert_output --partial "is untrusted"
	run "$TT" cache-verify "$PK" <"tampered/$(hashpart "$B").narinfo"
	assert_output --partial "bad signature"
}

@test "signatures: a narinfo nix copied without a key is unsigned" {
	run "$TT" cache-verify "$PK" <"$UNSIGNED/$(hashpart "$B").narinfo"
	assert_failure 1
	assert_output "unsigned: no signature"
}

@test "signatures: one good signature suffices; malformed ones of trusted names are bad" {
	good=$(narinfo_of "$B" | grep '^Sig:')
	run "$TT" cache-verify "$PK" "$(cat "$KEYS/pk-named")" < <(narinfo_of "$B" | grep -v '^Sig:'
		echo "Sig: other-1:AAAA"; echo "Sig: stranger:xyz"; echo "$good")
	assert_success
	assert_output "verified: test-1"
	run "$TT" cache-verify "$PK" < <(narinfo_of "$B" | sed 's/^Sig: test-1:./Sig: test-1:!/')
	assert_output "bad signature: malformed signature by 'test-1'"
	run "$TT" cache-verify "$PK" < <(narinfo_of "$B" | sed 's/^Sig: test-1:.*/Sig: test-1:AAAA/')
	assert_output --partial "malformed signature"
}

@test "signatures: re-signing a tampered narinfo with the right key verifies again" {
	run "$TT" cache-verify "$PK" < <(narinfo_of "$B" | grep -v '^Sig:' |
		sed 's/^NarSize: .*/NarSize: 5/' | "$TT" cache-sign "$(cat "$KEYS/sk")")
	assert_output "verified: test-1"
}

@test "keys: malformed public keys are refused" {
	for k in "nokey" ":AAAA" "test-1:AAAA" "test-1:${PK#*:}x" "test-1:$(head -c 64 /dev/zero | base64 -w0)"; do
		run "$TT" cache-verify "$k" < <(narinfo_of "$B")
		assert_failure 1
		assert_output --partial "public key"
	done
}

# ---- nix-cache-info and settings ---------------------------------------------------------

@test "nix-cache-info: what nix copy wrote, and every field" {
	run "$TT" cache-info <"$CACHE/nix-cache-info"
	assert_output $'StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 0 (default)'
	run "$TT" cache-info <<<$'StoreDir: /nix/store\nWantMassQuery: 1\njunk\nPriority: 40\nOther: x'
	assert_output $'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40'
	run "$TT" cache-info <<<'Priority: high'
	assert_failure 1
	assert_output --partial "Priority 'high' is not a number"
}

# Print nix's own view of nix.conf text CONF (and files beside it) as JSON.
nix_show_config() {
	local d=$BATS_TEST_TMPDIR/conf-store
	mkdir -p "$d/nix" "$d/home"
	cache_nix "$d" nix show-config --json
}

@test "show-config: what nix show-config --json prints, read back" {
	mkdir -p conf-store/etc-nix
	cat >conf-store/etc-nix/nix.conf <<-EOF
		substituters = http://127.0.0.1:1 file:///srv/cache?priority=10
		extra-substituters = https://extra.example
		trusted-substituters = https://trusted.example
		trusted-public-keys = $PK
		extra-trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=
		require-sigs = false
		experimental-features = nix-command
		system = aarch64-linux
		extra-platforms = riscv64-linux
		builders = ssh://b1 riscv64-linux - 4 ; ssh://b2 x86_64-linux
	EOF
	nix_show_config >config.json
	run "$TT" cache-showconfig <config.json
	assert_success
	assert_line "system = aarch64-linux"
	assert_line --regexp "^extra-platforms = (.* )?riscv64-linux( |$)"
	assert_line "builders = ssh://b1 riscv64-linux - 4 ; ssh://b2 x86_64-linux"
	assert_line "substituters = http://127.0.0.1:1 file:///srv/cache?priority=10 https://extra.example"
	assert_line "trusted-substituters = https://trusted.example"
	assert_line "trusted-public-keys = $PK cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
	assert_line "require-sigs = false"
	assert_line "store = auto"
	assert_line "store-dir = /nix/store"
}

@test "show-config: lists as strings, newer settings, a store-dir; bad JSON is refused" {
	run "$TT" cache-showconfig <<<'{"substituters":{"value":" a  b "},"store":{"value":"daemon"},"store-dir":{"value":"/gnu/store"},"new-thing":{"value":{"x":1}}}'
	assert_line "substituters = a b"
	assert_line "trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
	assert_line "store = daemon"
	assert_line "store-dir = /gnu/store"
	for bad in '' '[]' '{"substituters":1}' '{"substituters":{"value":[1]}}' \
		'{"require-sigs":{"value":"yes"}}' '{"store":{"value":[]}}' '{"a":'; do
		run "$TT" cache-showconfig <<<"$bad"
		assert_failure 1
		assert_output --partial "error:"
	done
}

@test "nix.conf: read as nix reads it: extra-, aliases, comments, include and !include" {
	mkdir -p conf-store/etc-nix/sub
	cat >conf-store/etc-nix/nix.conf <<-EOF
		# comment
		binary-caches = http://old.example   # the old name
		substituters = http://a.example http://b.example
		include sub/more.conf
		!include missing.conf
		extra-binary-cache-public-keys = $PK
		trusted-binary-caches = http://t.example
		require-sigs = true
		experimental-features = nix-command
	EOF
	printf 'extra-substituters = http://c.example\nrequire-sigs = false\n' >conf-store/etc-nix/sub/more.conf
	nix_show_config >config.json
	# nix adds its own defaults for system, extra-platforms and builders; this file sets none
	"$TT" cache-showconfig <config.json | grep -Ev '^(includes|system|extra-platforms|builders) ' >nix-view
	run "$TT" cache-conf "$PWD/conf-store/etc-nix/nix.conf"
	assert_success
	assert_line "includes = $PWD/conf-store/etc-nix/sub/more.conf !$PWD/conf-store/etc-nix/missing.conf"
	grep -Ev '^(includes|system|extra-platforms|builders) ' <<<"$output" >our-view
	run diff nix-view our-view
	assert_success
	run cat our-view
	assert_line "substituters = http://a.example http://b.example http://c.example"
	assert_line "require-sigs = true"
	run "$TT" cache-conf <<<$'system = riscv64-linux\nextra-platforms = a b\nextra-platforms = c\nplatforms = d\nbuilders = @/etc/nix/machines'
	assert_line "system = riscv64-linux"
	assert_line "extra-platforms = a b c"
	assert_line "builders = @/etc/nix/machines"
}

@test "nix.conf: bad lines are refused with file and line; include loops stop" {
	run "$TT" cache-conf <<<$'substituters = a\nsubstituters: b'
	assert_failure 1
	assert_output "error: nix.conf:2: 'substituters:' is not 'name = value'"
	run "$TT" cache-conf <<<'require-sigs = maybe'
	assert_output "error: nix.conf:1: require-sigs must be true or false"
	run "$TT" cache-conf <<<'include a b'
	assert_output "error: nix.conf:1: include takes one path"
	echo "include $PWD/loop.conf" >loop.conf
	run "$TT" cache-conf "$PWD/loop.conf"
	assert_failure 1
	assert_output --partial "includes nested more than 10 deep"
	run "$TT" cache-conf "$PWD/none.conf"
	assert_output --partial "cannot read"
}

# ---- querying caches ---------------------------------------------------------------------

@test "query: nix's cache over HTTP/1.0 (http.server): all three verify, others are absent" {
	url=$(cache_serve_static "$CACHE")
	missing=/nix/store/00000000000000000000000000000000-missing
	run "${Q[@]}" --cache "$url" --key "$PK" --stats "$A" "$B" "$missing" "$C"
	assert_success
	assert_line --index 0 "$A present $url verified test-1 nar=$(info "$A" .narSize) file=$(info "$A" .downloadSize)"
	assert_line --index 1 --regexp "^$B present $url verified test-1 nar="
	assert_line --index 2 "$missing absent"
	assert_line --index 3 --regexp "^$C present $url verified test-1 nar="
	assert_line --index 4 --regexp "^cache $url up priority=0 mass-query=0 http=1 requests=5 "
}

@test "query: a file:// cache is read directly" {
	run "${Q[@]}" --cache "file://$CACHE" --key "$PK" "$B" /nix/store/00000000000000000000000000000000-x
	assert_success
	assert_line --index 0 --regexp "^$B present file://$CACHE verified test-1"
	assert_line --index 1 "/nix/store/00000000000000000000000000000000-x absent"
}

@test "query: without the cache's key a path is untrusted; with another key of its name, bad" {
	url=$(cache_serve_static "$CACHE")
	run "${Q[@]}" --cache "$url" "$B"
	assert_output "$B present $url untrusted: signed by 'test-1', not a trusted key"
	run "${Q[@]}" --cache "$url" --key "$(cat "$KEYS/pk-other")" "$B"
	assert_output --partial "$B present $url bad signature: signature by 'test-1' does not match"
}

@test "query: a tampered narinfo is a bad signature; a later cache's good one wins" {
	cache_with tampered "$B" "s|^References: .*|References: $(basename "$C")|"
	bad=$(cache_serve_static tampered)
	good=$(cache_serve_static "$CACHE")
	run "${Q[@]}" --cache "$bad" --key "$PK" "$B"
	assert_output --partial "$B present $bad bad signature"
	# the tampered cache is asked first (priority 0 before 50)
	run "${Q[@]}" --cache "$good?priority=50" --cache "$bad" --key "$PK" "$B" "$A"
	assert_line --index 0 --regexp "^$B present $good verified test-1"
	assert_line --index 1 --regexp "^$A present $bad verified test-1"
}

@test "query: unsigned narinfos are present but unsigned; without require-sigs they serve" {
	url=$(cache_serve_static "$UNSIGNED")
	run "${Q[@]}" --cache "$url" --key "$PK" "$A"
	assert_output "$A present $url unsigned: no signature"
	run "${Q[@]}" --cache "$url" --cache "file://$CACHE" --key "$PK" "$A"
	assert_output --regexp "^$A present file://$CACHE verified"
	run "${Q[@]}" --no-require-sigs --cache "$url" --cache "file://$CACHE" --key "$PK" "$A"
	assert_output "$A present $url unsigned: no signature"
}

@test "query: a narinfo for another path, or malformed, is an error, not an answer" {
	cp -r "$CACHE" wrong
	cp "wrong/$(hashpart "$A").narinfo" "wrong/$(hashpart "$B").narinfo"
	echo "URL: x" >"wrong/$(hashpart "$C").narinfo"
	url=$(cache_serve_static wrong)
	run "${Q[@]}" --cache "$url" --key "$PK" "$B" "$C"
	assert_success
	assert_line --index 0 "$B unknown: cache '$url' answered for '$B' with '$A'"
	assert_line --index 1 "$C unknown: cache '$url' sent a bad narinfo for '$C': narinfo has no StorePath"
}

@test "query: a 500 is tried again with backoff, then the path is unknown; other paths stay" {
	cp -r "$CACHE" faulty
	url=$(cache_serve_faulty faulty)
	echo 500 >"faulty/.status/$(hashpart "$B").narinfo"
	run "${Q[@]}" --cache "$url" --key "$PK" "$A" "$B" "$C"
	assert_success
	assert_line --index 0 --regexp "^$A present $url verified"
	assert_line --index 1 "$B unknown: cache '$url': HTTP 500 on '$B' (3 tries)"
	assert_line --index 2 --regexp "^$C present $url verified"
	[ "$(grep -c "$(hashpart "$B")" faulty/.requests)" = 3 ]
}

@test "query: a 503 that passes on the next try gives the answer" {
	cp -r "$CACHE" faulty
	url=$(cache_serve_faulty faulty)
	echo "503 2" >"faulty/.status/$(hashpart "$B").narinfo"
	echo "502 1" >faulty/.status/nix-cache-info
	run "${Q[@]}" --cache "$url" --key "$PK" --stats "$B"
	assert_line --index 0 --regexp "^$B present $url verified"
	# HTTP/1.1 keep-alive: 5 requests, fewer connections
	assert_line --index 1 --regexp "^cache $url up .* requests=5 connections=[1-4]$"
}

@test "query: 404, 410 and 403 mean absent and are not tried again; 401 fails at once" {
	cp -r "$CACHE" faulty
	url=$(cache_serve_faulty faulty)
	echo 410 >"faulty/.status/$(hashpart "$A").narinfo"
	echo 403 >"faulty/.status/$(hashpart "$B").narinfo"
	echo 401 >"faulty/.status/$(hashpart "$C").narinfo"
	run "${Q[@]}" --cache "$url" --key "$PK" "$A" "$B" "$C"
	assert_line --index 0 "$A absent"
	assert_line --index 1 "$B absent"
	assert_line --index 2 "$C unknown: cache '$url': HTTP 401 on '$C'"
	[ "$(wc -l <faulty/.requests)" = 4 ]
}

@test "query: a cache that accepts and never answers costs bounded time" {
	url=$(cache_serve_mute)
	# bounded by its own time limits (requests=2, each timed out); 30 s only guards a hang
	run timeout -k 5 30 "$TT" cache-query --tries 2 --backoff 20 --timeout 700 --cache "$url" \
		--cache "file://$CACHE" --key "$PK" --stats "$A" /nix/store/00000000000000000000000000000000-x
	assert_success
	assert_line --index 0 --regexp "^$A present file://$CACHE verified"
	assert_line --index 1 --regexp "^/nix/store/0+-x unknown: cache '$url' is down: .*[Tt]imeout|timed out"
	assert_line --index 2 --regexp "^cache $url down .*requests=2 .*error: cache '$url' is down"
}

@test "query: SIGINT stops a query that waits on a silent cache, at once" {
	url=$(cache_serve_mute)
	"$TT" cache-query --timeout 30000 --cache "$url" "$A" >out 2>err 3>&- &
	pid=$!
	# interrupted once it waits: its connection to the silent cache is up
	for _ in $(seq 1 100); do
		[ -n "$(ss -Htn state established "( dport = :${url##*:} )")" ] && break
		sleep 0.1
	done
	[ -n "$(ss -Htn state established "( dport = :${url##*:} )")" ]
	kill -INT "$pid"
	# it ends long before its 30 s request timeout (10 s: a guard, not a measure)
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; fail "still running 10 s after SIGINT"; }
	status=0
	wait "$pid" || status=$?
	assert_equal "$status" 130
	run cat err
	assert_output "error: interrupted while asking the binary caches"
}

@test "query: a narinfo that stalls times out; the cache is then down for what is left" {
	cp -r "$CACHE" faulty
	url=$(cache_serve_faulty faulty)
	touch "faulty/.stall/$(hashpart "$B").narinfo"
	# 30 s only guards a hang: the message says it timed out
	run timeout -k 5 30 "${Q[@]}" --timeout 600 --tries 2 --cache "$url" --key "$PK" "$A" "$B"
	assert_success
	assert_line --index 0 --regexp "^$A present $url verified"
	assert_line --index 1 --regexp "^$B unknown: cache '$url' is down: .*(timed out|Timeout)"
}

@test "query: a cache that is down is named with the reason; the others still answer" {
	down=$(cache_closed_url)
	run "${Q[@]}" --cache "$down" --cache "file://$CACHE" --key "$PK" --stats "$A" \
		/nix/store/00000000000000000000000000000000-x
	assert_success
	assert_line --index 0 --regexp "^$A present file://$CACHE verified"
	assert_line --index 1 "/nix/store/00000000000000000000000000000000-x unknown: cache '$down' is down: Connection refused"
	assert_line --index 2 --regexp "^cache $down down priority=0 mass-query=0 http=0 requests=3 connections=0 error: cache '$down' is down: Connection refused$"
}

@test "query: the lowest Priority is asked first; ?priority= on the URL wins" {
	cp -r "$CACHE" low
	echo "Priority: 5" >>low/nix-cache-info
	cp -r "$CACHE" high
	echo "Priority: 50" >>high/nix-cache-info
	lo=$(cache_serve_static low)
	hi=$(cache_serve_static high)
	run "${Q[@]}" --cache "$hi" --cache "$lo" --key "$PK" --stats "$A"
	assert_line --index 0 --regexp "^$A present $lo verified"
	assert_line --index 1 --regexp "^cache $lo up priority=5 "
	assert_line --index 2 --regexp "^cache $hi up priority=50 "
	run "${Q[@]}" --cache "$hi?priority=1" --cache "$lo/" --key "$PK" "$A"
	assert_output --regexp "^$A present $hi verified"
}

@test "query: a cache for another store, or without nix-cache-info, is not used" {
	cp -r "$CACHE" gnu
	sed -i 's|/nix/store|/gnu/store|' gnu/nix-cache-info
	cp -r "$CACHE" bare
	rm bare/nix-cache-info
	g=$(cache_serve_static gnu)
	b=$(cache_serve_static bare)
	run "${Q[@]}" --cache "$g" --cache "$b" --key "$PK" "$A"
	assert_output "$A unknown: cache '$g' is not usable: it is for store '/gnu/store', not /nix/store; cache '$b' is not usable: no nix-cache-info: not a binary cache"
}

@test "query: substituters that are not http, https or file are reported, not asked" {
	run "${Q[@]}" --cache "ssh://builder" --cache "file://$CACHE" --key "$PK" --stats "$A"
	assert_line --index 0 --regexp "^$A present file://$CACHE verified"
	assert_line --index 1 --partial "cache ssh://builder down"
	assert_line --index 1 --partial "is not asked: only http://, https:// and file:// caches are"
}

@test "query: a host's own caches: its file:// ones, one with a '#', and past the 16th are not asked from here" {
	local s more=() i
	s=$(cache_serve_static "$CACHE")
	for i in $(seq 1 14); do more+=(--cache "http://127.0.0.1:1/c$i"); done
	run "${Q[@]}" --from-host --cache "file://$CACHE" --cache "$s/x#" "${more[@]}" --cache "$s" \
		--key "$PK" --stats "$A"
	assert_line --index 0 --regexp "^$A unknown: "
	assert_line --regexp "^cache file://$CACHE down .* requests=0 .*error: cache 'file://$CACHE' is not asked: a host's file:// cache is on that host$"
	assert_line --regexp "^cache $s/x# down .* requests=0 .*error: cache '$s/x#' is not asked: its URL has a '#'$"
	assert_line --regexp "^cache $s down .* requests=0 .*error: cache '$s' is not asked: only a host's first 16 caches are$"
	# the same caches named here are asked
	run "${Q[@]}" --cache "file://$CACHE" --key "$PK" "$A"
	assert_output --regexp "^$A present file://$CACHE verified"
}

@test "query: what is not a store path is refused before any request" {
	run "${Q[@]}" --cache "file://$CACHE" /nix/store/short /tmp/x
	assert_failure 2
	assert_output "error: '/nix/store/short' is not a store path in /nix/store"
	run "${Q[@]}" --cache "file://$CACHE" --key nonsense "$A"
	assert_failure 2
	assert_output --partial "public key 'nonsense'"
}

# Generate N signed narinfos (no NARs: a query needs none) into DIR; paths in DIR.paths.
gen_cache() {
	"$TT" cache-keygen gen-1 >keys
	mkdir -p "$1"
	"$TT" cache-gen "$1" "$2" "$(head -n 1 keys)" >"$1.paths"
	GENKEY=$(tail -n 1 keys)
}

@test "query: HTTP/1.1 keep-alive (nginx): 400 paths over at most 4 connections" {
	command -v nginx >/dev/null || fail "nginx is not installed (make deps)"
	gen_cache gen 400
	url=$(cache_serve_nginx "$PWD/gen")
	run "${Q[@]}" --http 1 --max-connections 4 --cache "$url" --key "$GENKEY" --quiet --stats - <gen.paths
	assert_success
	assert_line --index 0 "present 400 verified 400 absent 0 unknown 0"
	assert_line --index 1 --regexp "^cache $url up priority=30 mass-query=1 http=1 requests=401 connections=[1-4]$"
}

@test "query: HTTP/2 over TLS (nginx, ALPN): one connection, streams multiplexed" {
	command -v nginx >/dev/null || fail "nginx is not installed (make deps)"
	gen_cache gen 400
	url=$(cache_serve_nginx "$PWD/gen" tls)
	run "${Q[@]}" --ca-file "$(cache_tls_cert)" --cache "$url" --key "$GENKEY" --quiet --stats - <gen.paths
	assert_success
	assert_line --index 0 "present 400 verified 400 absent 0 unknown 0"
	assert_line --index 1 "cache $url up priority=30 mass-query=1 http=2 requests=401 connections=1"
	# --http 2 over TLS: the same, with no HTTP/1.1 to fall back to
	run "${Q[@]}" --http 2 --ca-file "$(cache_tls_cert)" --cache "$url" --key "$GENKEY" --quiet --stats - <gen.paths
	assert_line --index 1 "cache $url up priority=30 mass-query=1 http=2 requests=401 connections=1"
	# HTTP/1.1 over the same TLS server when asked
	run "${Q[@]}" --http 1 --max-connections 3 --ca-file "$(cache_tls_cert)" --cache "$url" \
		--key "$GENKEY" --quiet --stats - <gen.paths
	assert_line --index 1 --regexp "^cache $url up .* http=1 requests=401 connections=[1-3]$"
}

@test "query: an https cache's redirect to plain http is not followed; one to https is" {
	command -v nginx >/dev/null || fail "nginx is not installed (make deps)"
	gen_cache gen 3
	plain=$(cache_serve_nginx "$PWD/gen")
	secure=$(cache_serve_nginx "$PWD/gen" tls)
	# the plain server serves them: the redirect is all that stands in the way
	run -0 "${Q[@]}" --cache "$plain" --key "$GENKEY" --quiet --stats - <gen.paths
	assert_line --index 0 "present 3 verified 3 absent 0 unknown 0"
	down=$(cache_serve_nginx "$PWD/gen" "tls-redirect=$plain")
	run -0 "${Q[@]}" --ca-file "$(cache_tls_cert)" --cache "$down" --key "$GENKEY" --quiet --stats - <gen.paths
	refute_line --index 0 "present 3 verified 3 absent 0 unknown 0"
	refute_output --partial "verified 3"
	up=$(cache_serve_nginx "$PWD/gen" "tls-redirect=$secure")
	run -0 "${Q[@]}" --ca-file "$(cache_tls_cert)" --cache "$up" --key "$GENKEY" --quiet --stats - <gen.paths
	assert_line --index 0 "present 3 verified 3 absent 0 unknown 0"
}

@test "query: a certificate we do not trust makes the cache down, and says why" {
	command -v nginx >/dev/null || fail "nginx is not installed (make deps)"
	url=$(cache_serve_nginx "$CACHE" tls)
	run "${Q[@]}" --cache "$url" --key "$PK" "$A"
	assert_success
	assert_output --regexp "^$A unknown: cache '$url' is down: .*(certificate|SSL)"
}

@test "query: HTTP/2 with prior knowledge (nginx h2c), where libcurl can" {
	command -v nginx >/dev/null || fail "nginx is not installed (make deps)"
	gen_cache gen 100
	url=$(cache_serve_nginx "$PWD/gen" h2c)
	run "${Q[@]}" --http 2 --cache "$url" --key "$GENKEY" --quiet --stats - <gen.paths
	if ((0x$(curl-config --vernum 2>/dev/null || echo 0) < 0x080000)); then
		assert_failure 2
		assert_output --partial "cannot reuse HTTP/2 connections made with prior knowledge"
		return
	fi
	assert_success
	assert_line --index 0 "present 100 verified 100 absent 0 unknown 0"
	assert_line --index 1 "cache $url up priority=30 mass-query=1 http=2 requests=101 connections=1"
}

@test "query: HTTP/2 asked of an HTTP/1.1-only server fails clearly" {
	command -v nginx >/dev/null || fail "nginx is not installed (make deps)"
	url=$(cache_serve_nginx "$CACHE")
	run "${Q[@]}" --http 2 --cache "$url" --key "$PK" "$A"
	# a libcurl before 8.0 is never asked: HTTP/2 without TLS is refused first, with why
	if ((0x$(curl-config --vernum 2>/dev/null || echo 0) < 0x080000)); then
		assert_failure 2
		assert_output --partial "cannot reuse HTTP/2 connections made with prior knowledge (fixed in 8.0)"
		return
	fi
	assert_success
	assert_output --regexp "^$A unknown: cache '$url' is down: "
}
