#!/bin/sh
# The target's own name (--target-host checks).
exec uname -n
