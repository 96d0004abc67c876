#!/bin/sh
# skolo host script pi-key (components/scripts/pi-key.sh)
# Keep the key the jumphost reaches the Pis with (stdin) in /etc/skolo/pi-ssh-key, root's alone
# (0600), rewritten only when it changed. It never reaches a command line or the output.
set -eu
umask 077
mkdir -p /etc/skolo
tmp=$(mktemp /etc/skolo/.pi-ssh-key.XXXXXX)
cat > "$tmp"
if [ ! -s "$tmp" ]; then
  rm -f "$tmp"
  echo "skolo: no key arrived on stdin; refusing to write an empty one" >&2
  exit 1
fi
if cmp -s "$tmp" /etc/skolo/pi-ssh-key; then
  rm -f "$tmp"
  echo "skolo: the Pis' key is in place already"
else
  mv -f "$tmp" /etc/skolo/pi-ssh-key
  echo "skolo: installed the key the jumphost reaches the Pis with"
fi
