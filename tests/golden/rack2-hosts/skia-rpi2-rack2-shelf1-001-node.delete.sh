#!/bin/sh
# skolo bundle call: pi-remove.sh of /var/lib/skolo/bundle/current on the jumphost (see ../bundle/)
export NODE_NAME=skia-rpi2-rack2-shelf1-001
export ADDRESS=192.168.1.101
export HOST_KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICYn2ez1kYaCd7uSR0gEuccJRmSAo8o6Islfxwos6Fp5'
export BUNDLE=/var/lib/skolo/bundle/current
# shellcheck source=/dev/null
. "$BUNDLE/pi-remove.sh"
