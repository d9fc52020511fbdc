#!/bin/sh
# Headless reconfiguration: an edge-agent.yaml dropped on the boot partition becomes the agent's
# config if it is valid (checked by the agent itself) and, when a key was installed with the image
# (/etc/edge-agent/boot-config.pub), signed with it. The config it replaces is kept as the last
# good one; the new one is on trial until edge-agent-bootconfig-verify sees the agent run with it
# (else it goes back). Nothing with secrets stays on the card, which the OS mounts readable by all:
# the file is taken off it, and a short note says what happened. Runs as root before the agent.
set -u
BOOT=${BOOT_DIR:-}
if [ -z "$BOOT" ]; then
	for d in /boot/firmware /boot; do
		if [ -f "$d/edge-agent.yaml" ]; then BOOT=$d; break; fi
	done
fi
[ -n "$BOOT" ] && [ -f "$BOOT/edge-agent.yaml" ] || exit 0
CONFIG=${CONFIG_FILE:-/etc/edge-agent/config.yaml}
AGENT=${AGENT_BIN:-/usr/bin/edge-agent}
STATE=${STATE_DIR:-/var/lib/edge-agent}
KEY=${BOOT_CONFIG_KEY:-/etc/edge-agent/boot-config.pub}
NEW="$BOOT/edge-agent.yaml"
SIG="$BOOT/edge-agent.yaml.sig"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$STATE"

# What stays on the card: a note without secrets (the old notes go).
note() {
	rm -f "$BOOT"/edge-agent.yaml.*.txt
	printf '%s\n' "$2" >"$BOOT/edge-agent.yaml.$1.txt"
}

refuse() {
	install -m 0600 "$NEW" "$STATE/boot-config.rejected.yaml"
	rm -f "$NEW" "$SIG"
	note rejected "$now: not applied: $1. The file is in $STATE/boot-config.rejected.yaml on the Pi; the config stays as it was."
	echo "edge-agent.yaml from $BOOT not applied: $1; the config stays as it was" >&2
	exit 0
}

if [ -f "$KEY" ]; then
	[ -f "$SIG" ] || refuse "not signed, and this agent takes only boot configs signed with the key installed with its image (edge-agent.yaml.sig)"
	openssl dgst -sha256 -verify "$KEY" -signature "$SIG" "$NEW" >/dev/null 2>&1 || refuse "its signature does not match (signed with another key, or changed since)"
fi
reason=$("$AGENT" config check --config "$NEW" 2>&1) || refuse "not valid: $(printf '%s' "$reason" | tr '\n' ' ')"

[ -f "$CONFIG" ] && cp -p "$CONFIG" "$CONFIG.last-good"
tmp="$CONFIG.new.$$"
cp "$NEW" "$tmp"
chmod 0640 "$tmp"
chgrp edge-agent "$tmp" 2>/dev/null || true
mv "$tmp" "$CONFIG"
echo "$now" >"$STATE/boot-config.on-trial"
sum=$(sha256sum "$NEW" | cut -d' ' -f1)
rm -f "$NEW" "$SIG"
note applied "$now: applied (sha256 $sum). If the agent does not start and run with it, the last good config comes back (journalctl -u edge-agent-bootconfig-verify)."
echo "edge-agent.yaml from $BOOT is the config now, on trial; the last good one is $CONFIG.last-good"
