#!/bin/sh
# skolo host script node-ready (components/scripts/node-ready.sh)
NODE_NAME=skia-rpi2-rack2-shelf1-001
READY_SECONDS=300
# Runs on the jumphost after a Pi joined: wait until its Node is registered and Ready.
# Parameters: NODE_NAME, READY_SECONDS.
set -eu
waited=0
while :; do
  ready=$(k3s kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  if [ "$ready" = True ]; then
    echo "skolo: $NODE_NAME is Ready"
    exit 0
  fi
  if [ "$waited" -ge "$READY_SECONDS" ]; then
    echo "skolo: $NODE_NAME did not become Ready within ${READY_SECONDS}s (Ready=${ready:-not registered}); see: journalctl -u k3s-agent on the Pi" >&2
    exit 1
  fi
  sleep 5
  waited=$((waited + 5))
done
