#!/bin/sh
# skolo host script wait-for-reboot (components/scripts/wait-for-reboot.sh)
PI_ADDRESS=192.168.1.101
PI_PORT=22
REBOOT=yes
DOWN_SECONDS=180
UP_SECONDS=600
# Runs on the jumphost: if the Pi scheduled a reboot, wait for its sshd to go away and come
# back, so the join that follows talks to the rebooted Pi. Parameters: PI_ADDRESS, PI_PORT,
# REBOOT (yes/no), DOWN_SECONDS, UP_SECONDS.
set -eu
up() { [ -n "$(ssh-keyscan -T 3 -p "$PI_PORT" "$PI_ADDRESS" 2>/dev/null)" ]; }
if [ "$REBOOT" != yes ]; then
  echo "skolo: $PI_ADDRESS did not need a reboot"
  exit 0
fi
waited=0
while up; do
  if [ "$waited" -ge "$DOWN_SECONDS" ]; then
    echo "skolo: $PI_ADDRESS scheduled a reboot but was still up after ${DOWN_SECONDS}s" >&2
    exit 1
  fi
  sleep 5
  waited=$((waited + 5))
done
waited=0
until up; do
  if [ "$waited" -ge "$UP_SECONDS" ]; then
    echo "skolo: $PI_ADDRESS did not come back within ${UP_SECONDS}s of rebooting" >&2
    exit 1
  fi
  sleep 5
  waited=$((waited + 5))
done
echo "skolo: $PI_ADDRESS is back after its reboot"
