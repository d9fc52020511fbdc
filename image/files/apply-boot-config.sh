#!/bin/sh
# Headless reconfiguration: an edge-agent.yaml dropped on the boot partition becomes the agent's
# config if it is valid (checked by the agent itself); if not, the old config stays and the reason
# is logged (journalctl -u edge-agent-bootconfig). Runs as root on every boot, before the agent.
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
if reason=$("$AGENT" config check --config "$BOOT/edge-agent.yaml" 2>&1); then
	tmp="$CONFIG.new.$$"
	cp "$BOOT/edge-agent.yaml" "$tmp"
	chmod 0640 "$tmp"
	chgrp edge-agent "$tmp" 2>/dev/null || true
	mv "$tmp" "$CONFIG"
	mv "$BOOT/edge-agent.yaml" "$BOOT/edge-agent.yaml.applied"
	echo "edge-agent.yaml from $BOOT is the config now"
else
	echo "edge-agent.yaml from $BOOT is not valid; the config stays as it was: $reason" >&2
	mv "$BOOT/edge-agent.yaml" "$BOOT/edge-agent.yaml.invalid"
	exit 0
fi
