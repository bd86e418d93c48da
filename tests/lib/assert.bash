# shellcheck shell=bash
# bats-support and bats-assert, for tests that need no fleet (lib/common loads them too).
# Use as `load lib/assert` in setup. Every test loads it anew (bats sources it in each test's
# process): no command substitution here. The libraries' own load.bash forks a `dirname` for
# each of their files, 15 in all: a fifth of a second a test on this machine, a minute of the
# suite. Their files, sourced directly, define the same functions.
for _lib in /usr/lib/bats/bats-support /usr/lib/bats/bats-assert; do
	if [ -f "$_lib/src/output.bash" ] || [ -f "$_lib/src/assert.bash" ]; then
		for _f in "$_lib"/src/*.bash; do
			# shellcheck disable=SC1090 # the library's files
			source "$_f"
		done
	else
		load "$_lib/load"
	fi
done
unset _lib _f
