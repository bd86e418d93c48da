#!/bin/sh
# Run over a new connection: removes the watchdog's token, if still there.
[ -e "$1" ] && rm -f "$1" && echo confirmed
