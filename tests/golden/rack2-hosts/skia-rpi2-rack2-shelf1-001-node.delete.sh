#!/bin/sh
# skolo host script node-decommission (components/scripts/node-decommission.sh)
NODE_NAME=skia-rpi2-rack2-shelf1-001
PI_ADDRESS=192.168.1.101
PI_USER=chrome-bot
PI_PORT=22
PI_HOST_KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICYn2ez1kYaCd7uSR0gEuccJRmSAo8o6Islfxwos6Fp5'
DRAIN_SECONDS=120
# Runs on the jumphost when a Pi leaves the rack (or is re-joined): drain its Node, uninstall
# the k3s agent on the Pi if it answers, then delete the Node, which also drops its
# node-password secret so a re-flashed Pi of the same name can join again. An unreachable Pi
# is reported and skipped, never a reason to keep its Node.
# Parameters: NODE_NAME, PI_ADDRESS, PI_USER, PI_PORT, PI_HOST_KEY (empty: not checked),
# DRAIN_SECONDS. The SSH private key for the Pi arrives on stdin and lives only in a
# private ssh-agent for the length of this script.
set -eu
say() { echo "skolo[$NODE_NAME]: $*"; }

if ! command -v k3s >/dev/null 2>&1; then
  say "k3s is not installed on this jumphost: there is no Node to drain or delete"
  exit 0
fi

if k3s kubectl get node "$NODE_NAME" >/dev/null 2>&1; then
  k3s kubectl cordon "$NODE_NAME"
  if ! k3s kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force \
      --timeout="${DRAIN_SECONDS}s"; then
    say "drain did not finish within ${DRAIN_SECONDS}s; deleting the Node anyway" >&2
  fi
fi

uninstall_on_pi() {
  if ! ssh-add -q - 2>/dev/null; then
    say "could not load the SSH key from stdin; k3s was not uninstalled from $PI_ADDRESS" >&2
    return 1
  fi
  # ssh looks a host up as "address" on port 22 and "[address]:port" elsewhere.
  if [ "$PI_PORT" = 22 ]; then known=$PI_ADDRESS; else known="[$PI_ADDRESS]:$PI_PORT"; fi
  if [ -n "$PI_HOST_KEY" ]; then
    printf '%s %s\n' "$known" "$PI_HOST_KEY" > "$work/known_hosts"
    checking=yes
  else
    : > "$work/known_hosts"
    checking=no
  fi
  ssh -o BatchMode=yes -o ConnectTimeout=10 -o ConnectionAttempts=2 \
    -o StrictHostKeyChecking="$checking" -o UserKnownHostsFile="$work/known_hosts" \
    -p "$PI_PORT" "$PI_USER@$PI_ADDRESS" \
    'if [ -x /usr/local/bin/k3s-agent-uninstall.sh ]; then sudo -n /usr/local/bin/k3s-agent-uninstall.sh; fi' </dev/null
}

work=$(mktemp -d)
agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then SSH_AGENT_PID=$agent_pid ssh-agent -k >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(ssh-agent -s -a "$work/agent.sock")" >/dev/null
agent_pid=$SSH_AGENT_PID
if uninstall_on_pi; then
  say "k3s agent uninstalled from $PI_ADDRESS"
else
  say "could not reach $PI_ADDRESS to uninstall k3s; re-image the Pi before it comes back" >&2
fi

k3s kubectl delete node "$NODE_NAME" --ignore-not-found
say "Node deleted"
