#!/bin/sh
# skolo host script legacy-unit-stop (components/scripts/legacy-unit-stop.sh)
UNIT=metadata
# Cut-over: stop and disable the legacy metadata server so traefik can take port 80.
# Parameters: UNIT. A missing unit is fine (a jumphost that never ran it).
set -eu
if systemctl cat "$UNIT" >/dev/null 2>&1; then
  if systemctl is-active --quiet "$UNIT" || systemctl is-enabled --quiet "$UNIT"; then
    systemctl disable --now "$UNIT"
    echo "skolo: stopped and disabled legacy $UNIT"
  else
    echo "skolo: legacy $UNIT already stopped and disabled"
  fi
else
  echo "skolo: no legacy unit $UNIT on this host; nothing to stop"
fi
