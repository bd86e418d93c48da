#!/usr/bin/env bats
# The --json reports are an interface: each has a JSON Schema in doc/,
# and every report the suite's runs print is checked against it (the nrr
# helper of tests/lib/common.bash calls report_check). Here: the checker
# itself, and the parts of reports that need no fleet.

bats_require_minimum_version 1.5.0

setup() {
	load lib/assert
	TT=${TEST_TOOL:-$BATS_TEST_DIRNAME/test-tool}
	DOC=$BATS_TEST_DIRNAME/../doc
	CHECK=$BATS_TEST_DIRNAME/lib/jsonschema.py
}

ok_report='{"target": "t1", "action": "switch", "result": "ok", "status": 0,
  "storePath": "/nix/store/x-nixos-system", "generation": {"before": 1, "after": 2},
  "pathsCopied": 3, "bytesCopied": 1024}'

@test "every report has a schema, and each schema is JSON" {
	for s in report fleet-report generations diff; do
		run python3 -m json.tool "$DOC/$s.schema.json"
		assert_success
	done
}

@test "a report that follows its schema passes" {
	run python3 "$CHECK" "$DOC/report.schema.json" <<<"$ok_report"
	assert_success
	assert_output ''
}

@test "unknown keys, other result words and snake_case keys are refused" {
	run -1 python3 "$CHECK" "$DOC/report.schema.json" <<<"${ok_report%\}}, \"paths_copied\": 1}"
	assert_output "\$: unknown key 'paths_copied'"
	run -1 python3 "$CHECK" "$DOC/report.schema.json" <<<"${ok_report/\"ok\"/\"rolled back\"}"
	assert_output --partial "\$.result: \"rolled back\" is not one of"
	run -1 python3 "$CHECK" "$DOC/fleet-report.schema.json" <<<"[$ok_report]"
	assert_output --partial "lacks 'name'"
}

@test "a schema may only ask for what the checker checks" {
	echo '{"type": "object", "maxProperties": 1}' >"$BATS_TEST_TMPDIR/s.json"
	run -1 python3 "$CHECK" "$BATS_TEST_TMPDIR/s.json" <<<'{}'
	assert_output --partial "unsupported keywords ['maxProperties']"
}

@test "a package diff follows doc/diff.schema.json" {
	local d=$BATS_TEST_TMPDIR
	printf '/nix/store/00000000000000000000000000000000-a-1\t1000\n/nix/store/11111111111111111111111111111111-b-1\t2000\n' >"$d/old"
	printf '/nix/store/00000000000000000000000000000000-a-1\t1000\n/nix/store/22222222222222222222222222222222-b-2\t2500\n' >"$d/new"
	run "$TT" diff-json "$d/old" "$d/new"
	assert_success
	echo "$output" >"$d/diff.json"
	run python3 "$CHECK" "$DOC/diff.schema.json" "$d/diff.json"
	assert_success
}
