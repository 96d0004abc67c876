#!/bin/sh
# Runs in the datastore-backup CronJob (not on a host): a consistent copy of the k3s SQLite
# datastore (SQLite's online backup, safe while k3s writes), the server token and the
# jumphost's node password (without it a restored server rejects its own node), as
# $RACK-k3s-<date>.tar.gz in $DESTINATION (gs://BUCKET/FOLDER or a directory), keeping the
# newest $KEEP. Restoring them onto a replacement jumphost: README, "Swapping a jumphost".
set -eu
: "${RACK:?}" "${DESTINATION:?}" "${KEEP:?}" "${SERVER_DIR:?}" "${NODE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name="$RACK-k3s-$(date -u +%Y-%m-%dT%H-%M-%SZ)"
mkdir "$work/$name"
python3 - "$SERVER_DIR/db/state.db" "$work/$name/state.db" <<'PYTHON'
import sqlite3
import sys

source = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
target = sqlite3.connect(sys.argv[2])
source.backup(target)
target.close()
source.close()
PYTHON
cp "$SERVER_DIR/token" "$work/$name/token"
cp "$NODE_DIR/password" "$work/$name/node-password"
umask 077
tar -C "$work" -czf "$work/$name.tar.gz" "$name"
case "$DESTINATION" in
  gs://*)
    gcloud auth activate-service-account --key-file="$GOOGLE_APPLICATION_CREDENTIALS" --quiet
    gsutil -q cp "$work/$name.tar.gz" "$DESTINATION/$name.tar.gz"
    gsutil ls "$DESTINATION/$RACK-k3s-*.tar.gz" | sort | head -n -"$KEEP" | while read -r old; do
      gsutil -q rm "$old"
    done
    ;;
  *)
    mkdir -p "$DESTINATION"
    cp "$work/$name.tar.gz" "$DESTINATION/.$name.tar.gz.partial"
    mv "$DESTINATION/.$name.tar.gz.partial" "$DESTINATION/$name.tar.gz"
    find "$DESTINATION" -maxdepth 1 -name "$RACK-k3s-*.tar.gz" | sort | head -n -"$KEEP" | while read -r old; do
      rm -f "$old"
    done
    ;;
esac
echo "backed up the k3s datastore of $RACK to $DESTINATION/$name.tar.gz"
