#!/bin/sh
# The running system, after a confirmed --magic-rollback.
readlink -f /run/current-system
