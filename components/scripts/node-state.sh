# Runs on the jumphost: put a Pi's Node in the state its config asks for. active: schedulable
# (uncordon); cordoned: no new pods, running ones stay; drained: cordoned and its pods evicted.
# The state is also a node label: a drain leaves DaemonSet pods alone, so the swarming
# DaemonSet avoids nodes labelled drained, and the Pi's bot stops for a device swap.
# Parameters: NODE_NAME, STATE, STATE_LABEL, DRAIN_SECONDS.
set -eu
k3s kubectl label node "$NODE_NAME" "$STATE_LABEL=$STATE" --overwrite
case "$STATE" in
  active)
    k3s kubectl uncordon "$NODE_NAME"
    ;;
  cordoned)
    k3s kubectl cordon "$NODE_NAME"
    ;;
  drained)
    k3s kubectl cordon "$NODE_NAME"
    k3s kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force --timeout="${DRAIN_SECONDS}s"
    ;;
  *)
    echo "skolo[$NODE_NAME]: unknown state $STATE" >&2
    exit 1
    ;;
esac
echo "skolo[$NODE_NAME]: $STATE"
