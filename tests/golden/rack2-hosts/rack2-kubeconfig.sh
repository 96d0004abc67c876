#!/bin/sh
# skolo host script read-file (components/scripts/read-file.sh)
FILE=/etc/rancher/k3s/k3s.yaml
# Print one root-only file (the kubeconfig). The caller keeps the output secret and unlogged.
# Parameters: FILE.
set -eu
if [ ! -f "$FILE" ]; then
  echo "skolo: $FILE does not exist on $(hostname); did the k3s install finish?" >&2
  exit 1
fi
cat "$FILE"
