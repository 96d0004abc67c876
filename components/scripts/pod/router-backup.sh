#!/bin/sh
# Runs in the router-backup CronJob (not on a host): keep the config of every device of the rack,
# each read the way it speaks. An EdgeRouter (EdgeOS) gives its config file over key-based scp.
# An EdgeSwitch has no such file: its running-config is read through its CLI over password SSH
# (enable, terminal length 0, show running-config), the password handed to ssh by SSH_ASKPASS
# from a file, never on a command line. Every host key must match the pinned ones.
# Each config goes, gzipped, to gs://$BUCKET/$FOLDER/<YYYY-MM-DD>-<device>-<sha1>.gz, named as
# Skia's file-backup named them (sha1 of the config). One device failing does not stop the
# others; the job fails at the end, naming them, so the BackupFailed alert fires.
# Devices are lines "name address user kind path" in $DEVICES; host keys in $KNOWN_HOSTS.
set -eu
: "${BUCKET:?}" "${FOLDER:?}" "${DEVICES:?}" "${KNOWN_HOSTS:?}" "${SSH_KEY:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
# ssh refuses a key that others may read; the mounted secret is 0440.
cp "$SSH_KEY" "$work/id"
# shellcheck disable=SC2016 # the askpass program reads the variable when ssh runs it
printf '#!/bin/sh\nexec cat "$SWITCH_PASSWORD_FILE"\n' > "$work/askpass"
chmod 700 "$work/askpass"

pinned() {
  cmd=$1
  shift
  "$cmd" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=20 "$@"
}

# fetch_edgerouter NAME ADDRESS USER PATH: the config file itself, over the classic scp protocol
# (-O): today's scp speaks SFTP, which an EdgeRouter's older sshd need not serve.
fetch_edgerouter() {
  pinned scp -O -q -i "$work/id" -o BatchMode=yes "$3@$2:$4" "$work/$1" </dev/null
}

# fetch_edgeswitch NAME ADDRESS USER: the running-config, from "!Current Configuration" on (the CLI
# prompts without a newline, so the prompt may share its line), less the CLI's prompt lines and the
# blank lines it ends with. An
# EdgeSwitch often ends the session with status 255, so the answer decides.
fetch_edgeswitch() {
  if [ ! -r "${SWITCH_PASSWORD_FILE:-}" ]; then
    echo "no EdgeSwitch password to log into $1 (skolo:powerCyclePassword)" >&2
    return 1
  fi
  printf 'enable\nterminal length 0\nshow running-config\nexit\nexit\n' |
    SSH_ASKPASS="$work/askpass" SSH_ASKPASS_REQUIRE=force pinned ssh -T -o PubkeyAuthentication=no \
      -o PreferredAuthentications=keyboard-interactive,password -o NumberOfPasswordPrompts=1 "$3@$2" \
      > "$work/$1.session" 2> "$work/$1.err" || true
  sed -n -e 's/^.*!Current Configuration/!Current Configuration/' -e '/^!Current Configuration/,$p' \
    "$work/$1.session" | grep -v '^([^)]*) *[>#]' |
    awk 'NF { for (; blank > 0; blank--) print ""; print; next } { blank++ }' > "$work/$1" || true
  if [ ! -s "$work/$1" ]; then
    echo "$1 gave no running-config: $(tail -n 1 "$work/$1.err" "$work/$1.session" | grep -v '^==>' | tr '\n' ' ')" >&2
    return 1
  fi
}

gcloud auth activate-service-account --key-file="$GOOGLE_APPLICATION_CREDENTIALS" --quiet
day=$(date -u +%Y-%m-%d)
failed=""
while read -r name address user kind path; do
  [ -n "$name" ] || continue
  case "$kind" in
    edgerouter) fetched=fetch_edgerouter ;;
    edgeswitch) fetched=fetch_edgeswitch ;;
    *) echo "$name: unknown device kind $kind" >&2; failed="$failed $name"; continue ;;
  esac
  if ! "$fetched" "$name" "$address" "$user" "$path"; then
    echo "could not read the config of $name ($kind at $address)" >&2
    failed="$failed $name"
    continue
  fi
  sum=$(sha1sum "$work/$name" | cut -d ' ' -f 1)
  gzip -n "$work/$name"
  if gsutil -q cp "$work/$name.gz" "gs://$BUCKET/$FOLDER/$day-$name-$sum.gz" </dev/null; then
    echo "backed up $name ($kind at $address) as gs://$BUCKET/$FOLDER/$day-$name-$sum.gz"
  else
    echo "could not upload the backup of $name" >&2
    failed="$failed $name"
  fi
done < "$DEVICES"
if [ -n "$failed" ]; then
  echo "backup failed for:$failed" >&2
  exit 1
fi
