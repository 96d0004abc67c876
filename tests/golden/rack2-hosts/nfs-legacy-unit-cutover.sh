#!/bin/sh
# skolo host script legacy-unit-stop (components/scripts/legacy-unit-stop.sh)
UNIT='nfs-kernel-server rpcbind.socket rpcbind.service'
# Cut-over: stop and disable a legacy unit of the "push" system, so the service that replaces it
# can take its port. Parameters: UNIT, one or more unit names (validated: no spaces, no globs),
# stopped in order: the legacy unit first, then what it leaves holding a port the replacement
# needs (nfs-kernel-server's rpcbind). A missing unit is fine (a jumphost that never ran it).
set -eu
set -f
# shellcheck disable=SC2086 # a list of unit names, split on purpose
for name in $UNIT; do
  if systemctl cat "$name" >/dev/null 2>&1; then
    if systemctl is-active --quiet "$name" || systemctl is-enabled --quiet "$name"; then
      systemctl disable --now "$name"
      echo "skolo: stopped and disabled legacy $name"
    else
      echo "skolo: legacy $name already stopped and disabled"
    fi
  else
    echo "skolo: no legacy unit $name on this host; nothing to stop"
  fi
done
