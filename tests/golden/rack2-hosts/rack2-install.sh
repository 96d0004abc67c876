#!/bin/sh
# skolo host script k3s-install (components/scripts/k3s-install.sh)
ROLE=server
NODE_NAME=skolo-rack2-jumphost
K3S_VERSION=v1.31.6+k3s1
INSTALL_SCRIPT_URL=https://get.k3s.io
INSTALL_SCRIPT_SHA256=''
TOKEN_FILE=/etc/rancher/k3s/skolo-token
CONFIG_YAML='node-name: skolo-rack2-jumphost
token-file: /etc/rancher/k3s/skolo-token
write-kubeconfig-mode: '"'"'0600'"'"'
tls-san:
- 192.168.1.8
- skolo-rack2-jumphost
cluster-cidr: 10.44.0.0/14
node-label:
- skolo.skia.org/role=jumphost
'
# Install or upgrade k3s (server or agent) at exactly K3S_VERSION, idempotently.
# Parameters (set above by components/hostscripts.py): ROLE, NODE_NAME, K3S_VERSION,
# INSTALL_SCRIPT_URL, INSTALL_SCRIPT_SHA256 (empty: not checked), TOKEN_FILE, CONFIG_YAML. The join
# token arrives on stdin and only ever goes to a 0600 file that config.yaml points at (token-file),
# never to a command line or the output.
set -eu

CONFIG_DIR=/etc/rancher/k3s
CONFIG_FILE="$CONFIG_DIR/config.yaml"
BIN=/usr/local/bin/k3s
if [ "$ROLE" = server ]; then SERVICE=k3s; else SERVICE=k3s-agent; fi
say() { echo "skolo[$NODE_NAME]: $*"; }

installed=""
if [ -x "$BIN" ]; then
  installed=$("$BIN" --version | awk 'NR == 1 { print $3 }')
fi
if [ -n "$installed" ] && [ "$installed" != "$K3S_VERSION" ]; then
  oldest=$(printf '%s\n%s\n' "$installed" "$K3S_VERSION" | sort -V | head -n 1)
  if [ "$oldest" = "$K3S_VERSION" ]; then
    say "refusing to downgrade k3s from $installed to $K3S_VERSION; set skolo:k3sVersion to $installed or newer" >&2
    exit 1
  fi
fi

# replace FILE with stdin-or-text only when it differs; prints "changed" when it did.
umask 077
mkdir -p "$CONFIG_DIR"
put() {
  tmp=$(mktemp "$CONFIG_DIR/.skolo.XXXXXX")
  cat > "$tmp"
  chmod 600 "$tmp"
  if [ ! -s "$tmp" ]; then
    rm -f "$tmp"
    say "nothing arrived for $1; refusing to write an empty file" >&2
    exit 1
  fi
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
    chmod 600 "$1"
  else
    mv -f "$tmp" "$1"
    echo changed
  fi
}
token_changed=$(put "$TOKEN_FILE")
config_changed=$(printf '%s\n' "$CONFIG_YAML" | put "$CONFIG_FILE")

if [ "$installed" != "$K3S_VERSION" ]; then
  say "installing k3s $K3S_VERSION ($ROLE; was: ${installed:-not installed})"
  installer=$(mktemp)
  trap 'rm -f "$installer"' EXIT
  curl -sfL --retry 3 -o "$installer" "$INSTALL_SCRIPT_URL"
  if [ -n "$INSTALL_SCRIPT_SHA256" ] && ! printf '%s  %s\n' "$INSTALL_SCRIPT_SHA256" "$installer" | sha256sum -c - >/dev/null 2>&1; then
    say "the install script from $INSTALL_SCRIPT_URL does not match skolo:k3sInstallScriptSha256; not running it" >&2
    exit 1
  fi
  INSTALL_K3S_VERSION="$K3S_VERSION" sh "$installer" "$ROLE"
elif [ -n "$token_changed$config_changed" ]; then
  say "k3s $K3S_VERSION already installed; config changed, restarting $SERVICE"
  systemctl restart "$SERVICE"
elif ! systemctl is-active --quiet "$SERVICE"; then
  say "k3s $K3S_VERSION already installed; starting $SERVICE"
  systemctl start "$SERVICE"
else
  say "k3s $K3S_VERSION already installed and configured; nothing to do"
fi

# The stack labels the jumphost's Node right after this (components/node_roles.py), so the server
# is done once k3s has registered it.
if [ "$ROLE" = server ]; then
  waited=0
  until "$BIN" kubectl get node "$NODE_NAME" >/dev/null 2>&1; do
    if [ "$waited" -ge 300 ]; then
      say "k3s has not registered the Node $NODE_NAME within 300s; see journalctl -u k3s" >&2
      exit 1
    fi
    sleep 2
    waited=$((waited + 2))
  done
fi
