#!/bin/sh
# STAND-IN for the official k3s install script (https://get.k3s.io), served to the sandboxed
# hosts by the tests. The real one downloads k3s; this one records how it was called and writes
# the files the real one writes: the binary (a stub that prints its version), the systemd unit
# and its env file, the uninstall script, and on a server the admin kubeconfig. It then does what
# the started k3s would do in the sandbox's shared cluster directory: a server serves its version,
# an agent registers its Node (NotReady while it restarts, then Ready at its version). Timestamped
# events go to the cluster's events.log. A test can make it slow (/etc/standin/install-seconds),
# hold it until a file goes (/etc/standin/hold-install) or fail (/etc/standin/fail-install).
set -eu
ROLE=${1:-server}
STATE=/var/lib/rancher/standin
CLUSTER=/var/lib/rancher/standin-cluster
mkdir -p "$STATE" "$CLUSTER/nodes"
if [ "$ROLE" = server ]; then
  NODE=server
else
  NODE=$(sed -n 's/^node-name: //p' /etc/rancher/k3s/config.yaml)
fi
event() { echo "$(date +%s.%N) $NODE $1" >> "$CLUSTER/events.log"; }
event "install-start $INSTALL_K3S_VERSION"
if [ "$ROLE" != server ] && [ -d "$CLUSTER/nodes/$NODE" ]; then
  echo False > "$CLUSTER/nodes/$NODE/ready"  # the agent restarts
fi
waited=0
while [ -f /etc/standin/hold-install ] && [ "$waited" -lt 1200 ]; do
  sleep 0.1
  waited=$((waited + 1))
done
sleep "$(cat /etc/standin/install-seconds 2>/dev/null || echo 0)"
if [ -f /etc/standin/fail-install ]; then
  event install-failed
  echo "[ERROR]  stand-in: download failed" >&2
  exit 1
fi
# One line per variable: values may span lines (sudo exports the whole command as SUDO_COMMAND).
env -0 | tr '\n' ' ' | tr '\0' '\n' > "$STATE/installer-env.log"
{
  echo "call: $*"
  grep -E '^(INSTALL_K3S|K3S)_' "$STATE/installer-env.log" | sort
} >> "$STATE/installer.log"
if [ "$ROLE" = server ]; then SERVICE=k3s; else SERVICE=k3s-agent; fi

cat > /usr/local/bin/.k3s.new <<STUB
#!/bin/sh
# STAND-IN k3s binary written by the stand-in installer.
case "\$1" in
  --version) echo "k3s version $INSTALL_K3S_VERSION (stand-in)"; echo "go version stand-in" ;;
  kubectl) shift; exec /usr/local/bin/standin-kubectl "\$@" ;;
  *) echo "stand-in k3s: \$*" ;;
esac
STUB
chmod 755 /usr/local/bin/.k3s.new
mv -f /usr/local/bin/.k3s.new /usr/local/bin/k3s

mkdir -p /etc/systemd/system
printf '[Service]\nExecStart=/usr/local/bin/k3s %s\n' "$ROLE" > "/etc/systemd/system/$SERVICE.service"
: > "/etc/systemd/system/$SERVICE.service.env"
chmod 600 "/etc/systemd/system/$SERVICE.service.env"

cat > "/usr/local/bin/$SERVICE-uninstall.sh" <<UNINSTALL
#!/bin/sh
# STAND-IN uninstall script written by the stand-in installer.
echo "uninstall $SERVICE" >> $STATE/uninstall.log
rm -f /usr/local/bin/k3s /etc/systemd/system/$SERVICE.service /etc/systemd/system/$SERVICE.service.env
rm -f /usr/local/bin/$SERVICE-uninstall.sh
UNINSTALL
chmod 755 "/usr/local/bin/$SERVICE-uninstall.sh"

if [ "$ROLE" = server ]; then
  mkdir -p /etc/rancher/k3s
  umask 077
  cat > /etc/rancher/k3s/k3s.yaml <<'KUBECONFIG'
__STAND_IN_KUBECONFIG__
KUBECONFIG
fi
systemctl daemon-reload
systemctl enable "$SERVICE"
systemctl restart "$SERVICE"
if [ "$ROLE" = server ]; then
  echo "$INSTALL_K3S_VERSION" > "$CLUSTER/server-version"
  # the server's own kubelet registers the jumphost's Node
  server_node=$(sed -n 's/^node-name: //p' /etc/rancher/k3s/config.yaml)
  mkdir -p "$CLUSTER/nodes/$server_node"
  echo "$INSTALL_K3S_VERSION" > "$CLUSTER/nodes/$server_node/version"
  echo True > "$CLUSTER/nodes/$server_node/ready"
else
  mkdir -p "$CLUSTER/nodes/$NODE"
  echo "$INSTALL_K3S_VERSION" > "$CLUSTER/nodes/$NODE/version"
  echo True > "$CLUSTER/nodes/$NODE/ready"
fi
event "install-done $INSTALL_K3S_VERSION"
