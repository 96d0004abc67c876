# Shared by the bundle's scripts, which `run` starts on the jumphost as root. The rack's settings
# are in rack.env beside this file; a script's own parameters come from `run`. The Pis are reached
# with the key only root can read (/etc/skolo/pi-ssh-key), each checked against its pinned host key.
# shellcheck source=/dev/null
. "$BUNDLE/rack.env"
PI_KEY=/etc/skolo/pi-ssh-key

say() { echo "skolo[$NODE_NAME]: $*"; }
fail() { say "$*" >&2; exit 1; }
k() { k3s kubectl "$@"; }

# quote TEXT: TEXT as one single-quoted shell word.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# A private directory for this run, and the Pi's pinned key in a known_hosts of its own.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$HOST_KEY" ]; then
  printf '%s %s\n' "$ADDRESS" "$HOST_KEY" > "$work/known_hosts"
  checking=yes
else
  : > "$work/known_hosts"
  checking=no
fi

# pi COMMAND: run COMMAND on the Pi as its user. A dead Pi fails in seconds.
pi() {
  ssh -i "$PI_KEY" -o BatchMode=yes -o ConnectTimeout=10 -o ConnectionAttempts=2 -o LogLevel=ERROR \
    -o StrictHostKeyChecking="$checking" -o UserKnownHostsFile="$work/known_hosts" -p 22 \
    "$PI_USER@$ADDRESS" "$@"
}

# on_pi NAME [KEY=VALUE...]: run this bundle's NAME.sh on the Pi as root, the parameters set at its
# top (quoted); standard input passes through (the join token, never a command line).
on_pi() {
  name=$1
  shift
  text=$(for parameter in "$@"; do printf '%s=%s\n' "${parameter%%=*}" "$(quote "${parameter#*=}")"; done
         cat "$BUNDLE/$name.sh")
  pi "sudo -n sh -c $(quote "$text") skolo-$name"
}

# wait_until SECONDS WHAT COMMAND...: poll COMMAND every 5 s until it succeeds.
wait_until() {
  limit=$1 what=$2 waited=0
  shift 2
  until "$@"; do
    [ "$waited" -lt "$limit" ] || fail "$what did not happen within ${limit}s"
    sleep 5
    waited=$((waited + 5))
  done
}

node_exists() { k get node "$NODE_NAME" >/dev/null 2>&1; }
node_ready() {
  [ "$(k get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}
sshd_answers() { [ -n "$(ssh-keyscan -T 3 -p 22 "$ADDRESS" 2>/dev/null)" ]; }
sshd_gone() { ! sshd_answers; }
