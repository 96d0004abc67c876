#!/bin/sh
# Runs in the router-backup CronJob (not on a host): copy each device's config over SSH, gzip
# it and upload it as gs://$BUCKET/$FOLDER/<date>-<device>-<sha1>.gz. One device failing does
# not stop the others; the job fails at the end so the BackupFailed alert fires.
# Devices are lines "name address user path" in /etc/router-backup/devices; the bucket
# writer's key is at $GOOGLE_APPLICATION_CREDENTIALS.
set -eu
: "${BUCKET:?}" "${FOLDER:?}"
DEVICES=/etc/router-backup/devices
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# ssh refuses a group-readable key; the mounted secret is 0440.
install -m 600 /var/secrets/ssh/id "$work/id"
gcloud auth activate-service-account --key-file="$GOOGLE_APPLICATION_CREDENTIALS" --quiet
stamp=$(date -u +%Y-%m-%dT%H-%M-%SZ)
failed=""
while read -r name address user path; do
  [ -n "$name" ] || continue
  if scp -q -i "$work/id" -o BatchMode=yes -o ConnectTimeout=20 -o StrictHostKeyChecking=accept-new \
      -o UserKnownHostsFile="$work/known_hosts" "$user@$address:$path" "$work/$name" </dev/null; then
    sum=$(sha1sum "$work/$name" | cut -d ' ' -f 1)
    gzip -n "$work/$name"
    if gsutil -q cp "$work/$name.gz" "gs://$BUCKET/$FOLDER/$stamp-$name-$sum.gz" </dev/null; then
      echo "backed up $name ($address:$path)"
    else
      echo "could not upload the backup of $name" >&2
      failed="$failed $name"
    fi
  else
    echo "could not copy $path from $name ($address)" >&2
    failed="$failed $name"
  fi
done < "$DEVICES"
if [ -n "$failed" ]; then
  echo "backup failed for:$failed" >&2
  exit 1
fi
