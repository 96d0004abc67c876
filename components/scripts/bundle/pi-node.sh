# Runs on the jumphost for one Pi whenever what the stack declares for it changes: brings the Pi to
# its k3s version, config and state.
#   1. If the Node is Ready with exactly this version and config applied, the Pi is not contacted:
#      only its state is applied.
#   2. Otherwise a state that takes the Pi out of service (cordoned, drained) is applied first:
#      that needs nothing from the Pi, so it works on a dead one.
#   3. Otherwise the server must run K3S_VERSION or newer (an agent is never newer than its
#      server); then, on the Pi: the memory cgroup (and the reboot it needs), then the agent
#      install with the token from the jumphost's own token file on stdin. An upgrade of a running
#      agent first takes one of MAX_UNAVAILABLE slots, cordons the Pi, stops its swarming bot (the
#      maintenance label) and drains it; if it then fails, the roll halts: no new Pi starts until
#      an operator removes $HALT. A Pi that does not answer fails alone and halts nothing.
#   4. The Node is waited Ready at K3S_VERSION and marked with what was applied; the state is
#      applied (an upgraded Pi is uncordoned unless its state says otherwise).
# Parameters: NODE_NAME, ADDRESS, HOST_KEY (empty: not checked), K3S_VERSION, STATE, REJOIN.
set -eu
# shellcheck source=components/scripts/bundle/lib.sh
. "$BUNDLE/lib.sh"
UPGRADE_DIR=/var/lib/skolo/upgrade
HALT="$UPGRADE_DIR/halt"

agent_config() {
  printf 'server: %s\nnode-name: %s\ntoken-file: %s\nnode-label:\n- %s\n' "$SERVER_URL" "$NODE_NAME" "$TOKEN_FILE" \
    "$NODE_LABEL"
}
# What was applied to the Pi: its version, its config and the scripts that ran there.
APPLIED=$({ printf '%s\n' "$K3S_VERSION"; agent_config; cat "$BUNDLE/k3s-install.sh" "$BUNDLE/rpi-cgroups.sh"; } |
  sha256sum | cut -c 1-16)
applied() {
  [ "$(k get node "$NODE_NAME" -o jsonpath='{.metadata.annotations.skolo\.skia\.org/applied}' 2>/dev/null)" = "$APPLIED" ]
}

apply_state() {
  node_exists || return 0
  k label node "$NODE_NAME" "$STATE_LABEL=$STATE" --overwrite >/dev/null
  case "$STATE" in
    active) k uncordon "$NODE_NAME" ;;
    cordoned) k cordon "$NODE_NAME" ;;
    drained)
      k cordon "$NODE_NAME"
      k drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force --timeout="${STATE_DRAIN_SECONDS}s" ;;
    *) fail "unknown state $STATE" ;;
  esac
}

take_slot() {
  mkdir -p /run/skolo/upgrade "$UPGRADE_DIR"
  while :; do
    [ ! -f "$HALT" ] || fail "the k3s upgrade is halted: $(cat "$HALT"). Look at that Pi; to resume, remove $HALT on the jumphost and run pulumi up again"
    slot=0
    while [ "$slot" -lt "$MAX_UNAVAILABLE" ]; do
      exec 9>"/run/skolo/upgrade/slot-$slot"
      if flock -n 9; then
        [ ! -f "$HALT" ] || { exec 9>&-; continue 2; }
        say "upgrading k3s from $installed to $K3S_VERSION (slot $((slot + 1)) of $MAX_UNAVAILABLE)"
        return 0
      fi
      slot=$((slot + 1))
    done
    sleep 2
  done
}

halt_roll() {
  status=$?
  if [ "$status" != 0 ]; then
    printf '%s failed upgrading to %s at %s\n' "$NODE_NAME" "$K3S_VERSION" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$HALT"
    say "upgrade failed; the roll is halted until $HALT is removed" >&2
  fi
  rm -rf "$work"
  exit "$status"
}

# The version the API server runs now (not the binary on disk, which an upgrade replaces first).
server_version() { k get --raw /version 2>/dev/null | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p'; }
newest() { printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1; }
server_runs_it() {
  running=$(server_version)
  [ -n "$running" ] && [ "$(newest "$running" "$K3S_VERSION")" = "$running" ]
}
ready_at_version() {
  node_ready &&
    [ "$(k get node "$NODE_NAME" -o jsonpath='{.status.nodeInfo.kubeletVersion}' 2>/dev/null)" = "$K3S_VERSION" ]
}
no_bot() { [ -z "$(k get pods -n "$SWARMING_NAMESPACE" --field-selector "spec.nodeName=$NODE_NAME" -o name 2>/dev/null)" ]; }

if node_ready && applied; then
  apply_state
  say "k3s $K3S_VERSION and its config are applied already; the Pi was not contacted; $STATE"
  exit 0
fi
[ "$STATE" = active ] || apply_state
pi true || fail "does not answer SSH at $ADDRESS; its state is applied, k3s on it is not; run pulumi up again when it answers"
wait_until "$UP_SECONDS" "the server running k3s $K3S_VERSION or newer (an agent is never newer than its server)" \
  server_runs_it
installed=$(pi 'if [ -x /usr/local/bin/k3s ]; then /usr/local/bin/k3s --version | head -n 1 | cut -d " " -f 3; fi')
if [ -n "$installed" ] && [ "$(newest "$installed" "$K3S_VERSION")" != "$K3S_VERSION" ]; then
  fail "refusing to downgrade k3s from $installed to $K3S_VERSION; set skolo:k3sVersion to $installed or newer"
fi
upgrade=""
if [ -n "$installed" ] && [ "$installed" != "$K3S_VERSION" ] && node_exists; then
  upgrade=yes
  take_slot
  trap halt_roll EXIT
  k cordon "$NODE_NAME"
  k label node "$NODE_NAME" "$MAINTENANCE_LABEL=k3s-upgrade" --overwrite >/dev/null
  k drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force --timeout="${DRAIN_SECONDS}s"
  wait_until "$DRAIN_SECONDS" "its swarming bot stopping" no_bot
fi

on_pi rpi-cgroups "CGROUP_FLAGS=$CGROUP_FLAGS" </dev/null > "$work/cgroups"
cat "$work/cgroups"
if grep -qx reboot-scheduled "$work/cgroups"; then
  wait_until "$DOWN_SECONDS" "the reboot it scheduled" sshd_gone
  wait_until "$UP_SECONDS" "its return after rebooting" sshd_answers
  say "back after its reboot"
fi
on_pi k3s-install ROLE=agent "NODE_NAME=$NODE_NAME" "K3S_VERSION=$K3S_VERSION" "INSTALL_SCRIPT_URL=$INSTALL_SCRIPT_URL" \
  "INSTALL_SCRIPT_SHA256=$INSTALL_SCRIPT_SHA256" "TOKEN_FILE=$TOKEN_FILE" "CONFIG_YAML=$(agent_config)" < "$TOKEN_FILE"
wait_until "$READY_SECONDS" "Ready at $K3S_VERSION (see journalctl -u k3s-agent on the Pi)" ready_at_version
k annotate node "$NODE_NAME" "skolo.skia.org/applied=$APPLIED" --overwrite >/dev/null
if [ -n "$upgrade" ]; then
  k label node "$NODE_NAME" "$MAINTENANCE_LABEL-" >/dev/null
  trap 'rm -rf "$work"' EXIT
fi
apply_state
say "k3s $K3S_VERSION joined, Ready, $STATE"
