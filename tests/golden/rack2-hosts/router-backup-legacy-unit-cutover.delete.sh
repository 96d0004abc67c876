#!/bin/sh
# skolo host script legacy-unit-start (components/scripts/legacy-unit-start.sh)
UNIT=router-backup
# Rollback: enable and start a legacy unit again (the design doc's 'sudo systemctl start metadata'),
# once the service that replaced it is gone. Parameters: UNIT.
set -eu
if systemctl cat "$UNIT" >/dev/null 2>&1; then
  systemctl enable --now "$UNIT"
  echo "skolo: enabled and started legacy $UNIT"
else
  echo "skolo: no legacy unit $UNIT on this host; nothing to start"
fi
