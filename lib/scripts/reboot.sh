#!/bin/sh
# Reboots the host (lib/reboot.c). Its boot id first, on stdout: a new one
# after the reboot is the proof that it happened. Then the reboot, whose
# output is the user's (stderr); the connection drops as the host goes
# down, and ssh's status 255 is then success.
PATH=$PATH:/run/current-system/sw/bin
cat /proc/sys/kernel/random/boot_id || exit "$ST_NO_BOOT_ID"
reboot >&2 || exit "$ST_REFUSED"
