#!/bin/sh
# skolo host script sshd-max-startups (components/scripts/sshd-max-startups.sh)
MAX_STARTUPS=256:30:1024
# Let hundreds of Pi connections jump through this host at once: sshd's default
# MaxStartups 10:30:100 drops unauthenticated connections past ten. Parameters: MAX_STARTUPS.
# The new setting is checked with 'sshd -t' before sshd is reloaded, so a bad file never
# locks anyone out.
set -eu
DROPIN=/etc/ssh/sshd_config.d/50-skolo.conf
want="MaxStartups $MAX_STARTUPS"
if [ -f "$DROPIN" ] && [ "$(cat "$DROPIN")" = "$want" ]; then
  echo "skolo: sshd already allows $MAX_STARTUPS startups"
  exit 0
fi
mkdir -p "$(dirname "$DROPIN")"
tmp=$(mktemp "$DROPIN.XXXXXX")
printf '%s\n' "$want" > "$tmp"
chmod 644 "$tmp"
if [ -f "$DROPIN" ]; then cp -p "$DROPIN" "$DROPIN.skolo-old"; fi
mv -f "$tmp" "$DROPIN"
if ! sshd -t; then
  if [ -f "$DROPIN.skolo-old" ]; then mv -f "$DROPIN.skolo-old" "$DROPIN"; else rm -f "$DROPIN"; fi
  echo "skolo: sshd rejected '$want'; left sshd as it was" >&2
  exit 1
fi
rm -f "$DROPIN.skolo-old"
systemctl reload ssh 2>/dev/null || systemctl reload sshd
if ! sshd -T 2>/dev/null | grep -qi "^maxstartups $MAX_STARTUPS$"; then
  echo "skolo: warning: sshd does not read $DROPIN (no 'Include /etc/ssh/sshd_config.d/*.conf'?); MaxStartups is unchanged" >&2
fi
echo "skolo: sshd now allows $MAX_STARTUPS startups"
