# Runs on the jumphost when a Pi leaves the rack (or is re-joined): drain its Node, uninstall the
# k3s agent on the Pi if it answers, then delete the Node, which also drops its node-password
# secret so a re-flashed Pi of the same name can join again. A Pi that does not answer is
# reported and skipped, never a reason to keep its Node.
# Parameters: NODE_NAME, ADDRESS, HOST_KEY (empty: not checked).
set -eu
# shellcheck source=components/scripts/bundle/lib.sh
. "$BUNDLE/lib.sh"

if ! command -v k3s >/dev/null 2>&1; then
  say "k3s is not installed on this jumphost: there is no Node to drain or delete"
  exit 0
fi
if node_exists; then
  k cordon "$NODE_NAME"
  if ! k drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force --timeout="${STATE_DRAIN_SECONDS}s"; then
    say "drain did not finish within ${STATE_DRAIN_SECONDS}s; deleting the Node anyway" >&2
  fi
fi
if pi 'if [ -x /usr/local/bin/k3s-agent-uninstall.sh ]; then sudo -n /usr/local/bin/k3s-agent-uninstall.sh; fi' </dev/null; then
  say "k3s agent uninstalled from $ADDRESS"
else
  say "could not reach $ADDRESS to uninstall k3s; re-image the Pi before it comes back" >&2
fi
k delete node "$NODE_NAME" --ignore-not-found
say "Node deleted"
