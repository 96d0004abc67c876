#!/bin/sh
# skolo host script legacy-unit-start (components/scripts/legacy-unit-start.sh)
UNIT=metadata-server
# Rollback: enable and start legacy units again (the design doc's 'sudo systemctl start metadata'),
# once the service that replaced them is gone. Parameters: UNIT, the cut-over's list; started in
# reverse order, so what the legacy unit needs (rpcbind) is up before it.
set -eu
set -f
reversed=""
# shellcheck disable=SC2086 # a list of unit names, split on purpose
for name in $UNIT; do reversed="$name $reversed"; done
for name in $reversed; do
  if systemctl cat "$name" >/dev/null 2>&1; then
    systemctl enable --now "$name"
    echo "skolo: enabled and started legacy $name"
  else
    echo "skolo: no legacy unit $name on this host; nothing to start"
  fi
done
