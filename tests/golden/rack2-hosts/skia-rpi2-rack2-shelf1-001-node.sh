#!/bin/sh
# skolo bundle call: pi-node.sh of /var/lib/skolo/bundle/fb3fe840c73a8eac on the jumphost (see ../bundle/)
export NODE_NAME=skia-rpi2-rack2-shelf1-001
export ADDRESS=192.168.1.101
export HOST_KEY='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICYn2ez1kYaCd7uSR0gEuccJRmSAo8o6Islfxwos6Fp5'
export K3S_VERSION=v1.31.6+k3s1
export STATE=active
export REJOIN=0
export BUNDLE=/var/lib/skolo/bundle/fb3fe840c73a8eac
# shellcheck source=/dev/null
. "$BUNDLE/pi-node.sh"
