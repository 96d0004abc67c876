#!/bin/sh
# skolo host script rpi-cgroups (components/scripts/rpi-cgroups.sh)
CGROUP_FLAGS='cgroup_memory=1 cgroup_enable=memory cgroup_enable=cpuset'
# Raspberry Pi prerequisite for k3s: the memory cgroup must be enabled on the kernel command
# line. Adds the flags only when missing, then schedules a reboot a minute out so this SSH
# session ends cleanly; prints 'reboot-scheduled' so the jumphost waits for the Pi to return.
# Parameters: CGROUP_FLAGS (space-separated).
set -eu
if [ -f /boot/firmware/cmdline.txt ]; then
  CMDLINE=/boot/firmware/cmdline.txt
elif [ -f /boot/cmdline.txt ]; then
  CMDLINE=/boot/cmdline.txt
else
  echo "skolo: neither /boot/firmware/cmdline.txt nor /boot/cmdline.txt exists; is this a Raspberry Pi?" >&2
  exit 1
fi
line=$(head -n 1 "$CMDLINE")
missing=""
for flag in $CGROUP_FLAGS; do
  case " $line " in
    *" $flag "*) ;;
    *) missing="$missing $flag" ;;
  esac
done
if [ -n "$missing" ]; then
  cp -p "$CMDLINE" "$CMDLINE.skolo-bak"
  printf '%s%s\n' "$line" "$missing" > "$CMDLINE.skolo-new"
  mv -f "$CMDLINE.skolo-new" "$CMDLINE"
  echo "skolo: added$missing to $CMDLINE"
fi
# /proc/cgroups answers for cgroup v1 and v2 alike: column 4 is 1 when the controller is on.
if [ "$(awk '$1 == "memory" { print $4 }' /proc/cgroups)" = 1 ]; then
  echo "skolo: memory cgroup enabled"
else
  shutdown -r +1 "skolo: rebooting to enable the memory cgroup for k3s"
  echo reboot-scheduled
fi
