#!/bin/sh
# skolo host script legacy-unit-start (components/scripts/legacy-unit-start.sh)
UNIT=metadata
# Rollback: enable and start the legacy metadata server again (the design doc's
# 'sudo systemctl start metadata'). Parameters: UNIT.
set -eu
if systemctl cat "$UNIT" >/dev/null 2>&1; then
  systemctl enable --now "$UNIT"
  echo "skolo: enabled and started legacy $UNIT; it needs port 80, which traefik holds while k3s runs"
else
  echo "skolo: no legacy unit $UNIT on this host; nothing to start"
fi
