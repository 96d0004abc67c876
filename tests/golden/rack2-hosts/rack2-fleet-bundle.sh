#!/bin/sh
# skolo host script bundle-install (components/scripts/bundle-install.sh)
HASH=fb3fe840c73a8eac
KEEP=20
ARCHIVE_SHA256=38df0e3bd9855d3a704923bc92f2e5ea354dc60d3f6a37b2c887658f0377b33c
# Install this rack's bundle of scripts for the Pis on the jumphost, once per content: stdin is the
# bundle as a base64 tar.gz, checked against ARCHIVE_SHA256 before anything is unpacked. It lands
# read-only in /var/lib/skolo/bundle/HASH, `current` points at it, and the newest KEEP bundles
# stay (a Pi whose last update failed still names its own). Parameters: HASH, ARCHIVE_SHA256, KEEP.
set -eu
BUNDLES=/var/lib/skolo/bundle
umask 022
mkdir -p "$BUNDLES"
tmp=$(mktemp -d "$BUNDLES/.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
base64 -d > "$tmp/archive.tar.gz"
if ! printf '%s  %s\n' "$ARCHIVE_SHA256" "$tmp/archive.tar.gz" | sha256sum -c - >/dev/null 2>&1; then
  echo "skolo: bundle $HASH arrived damaged (checksum mismatch); nothing installed" >&2
  exit 1
fi
if [ -x "$BUNDLES/$HASH/run" ]; then
  echo "skolo: bundle $HASH is installed already"
else
  mkdir "$tmp/files"
  tar -xzf "$tmp/archive.tar.gz" -C "$tmp/files" --no-same-owner
  chmod -R go-w "$tmp/files"
  mv "$tmp/files" "$BUNDLES/$HASH"
  echo "skolo: installed bundle $HASH"
fi
if [ "$(readlink "$BUNDLES/current" 2>/dev/null || true)" != "$HASH" ]; then
  ln -sfn "$HASH" "$BUNDLES/.current.new"
  mv -T "$BUNDLES/.current.new" "$BUNDLES/current"
fi
find "$BUNDLES" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %f\n' | sort -rn | tail -n +"$((KEEP + 1))" |
  while read -r _ old; do
    if [ "$old" != "$HASH" ]; then rm -rf "${BUNDLES:?}/$old"; fi
  done
