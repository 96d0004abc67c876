#!/bin/sh
# skolo host script legacy-unit-stop (components/scripts/legacy-unit-stop.sh)
UNIT=metadata-server
# Cut-over: stop and disable a legacy unit of the "push" system, so the service that replaces it
# can take its port. Parameters: UNIT. A missing unit is fine (a jumphost that never ran it).
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
