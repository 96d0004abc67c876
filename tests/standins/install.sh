#!/bin/sh
# STAND-IN for the official k3s install script (https://get.k3s.io), served to the sandboxed
# hosts by the tests. The real one downloads k3s; this one records how it was called and writes
# the files the real one writes: the binary (a stub that prints its version), the systemd unit
# and its env file, the uninstall script, and on a server the admin kubeconfig.
set -eu
ROLE=${1:-server}
STATE=/var/lib/rancher/standin
mkdir -p "$STATE"
# One line per variable: values may span lines (sudo exports the whole command as SUDO_COMMAND).
env -0 | tr '\n' ' ' | tr '\0' '\n' > "$STATE/installer-env.log"
{
  echo "call: $*"
  grep -E '^(INSTALL_K3S|K3S)_' "$STATE/installer-env.log" | sort
} >> "$STATE/installer.log"
if [ "$ROLE" = server ]; then SERVICE=k3s; else SERVICE=k3s-agent; fi

cat > /usr/local/bin/k3s <<STUB
#!/bin/sh
# STAND-IN k3s binary written by the stand-in installer.
case "\$1" in
  --version) echo "k3s version $INSTALL_K3S_VERSION (stand-in)"; echo "go version stand-in" ;;
  kubectl) shift; exec /usr/local/bin/standin-kubectl "\$@" ;;
  *) echo "stand-in k3s: \$*" ;;
esac
STUB
chmod 755 /usr/local/bin/k3s

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
