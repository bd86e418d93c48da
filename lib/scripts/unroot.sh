#!/bin/sh
# Removes the GC root realise.sh made on the build host ($1: its directory,
# as realise.sh named it), once the deploy that needed it is over.
case ${1##*/} in
nrr-result.*) rm -f "$1/result" && rmdir "$1" ;;
esac
