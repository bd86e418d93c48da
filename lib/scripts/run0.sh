#!/bin/sh
# The run0 elevation: run0 has no way to keep the caller's PATH but to say
# it; "$@" is the /bin/sh -c SCRIPT sh ARGS that follows.
exec systemd-run --uid=0 --pipe --quiet --wait --collect --service-type=exec --send-sighup --setenv=PATH="$PATH" -- "$@"
