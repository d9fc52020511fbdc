#!/bin/sh
# After a config taken from the boot partition: keep it once the agent has run with it for
# STABLE_SEC seconds in a row (systemd says active only once the agent is ready); if that does not
# happen within WAIT_SEC, put the last good config back, leave a note the agent shows (log, alert,
# page), and restart it. Does nothing when no config is on trial.
set -u
CONFIG=${CONFIG_FILE:-/etc/edge-agent/config.yaml}
STATE=${STATE_DIR:-/var/lib/edge-agent}
SYSTEMCTL=${SYSTEMCTL:-systemctl}
WAIT=${WAIT_SEC:-180}
STABLE=${STABLE_SEC:-30}
TRIAL="$STATE/boot-config.on-trial"
[ -f "$TRIAL" ] || exit 0
up=0
waited=0
while [ "$waited" -lt "$WAIT" ]; do
	if $SYSTEMCTL is-active --quiet edge-agent.service; then up=$((up + 1)); else up=0; fi
	if [ "$up" -ge "$STABLE" ]; then
		rm -f "$TRIAL" "$STATE/boot-config-rollback.json"
		echo "the config from the boot partition runs: kept"
		exit 0
	fi
	sleep 1
	waited=$((waited + 1))
done
why="the agent did not start and run for $STABLE s within $WAIT s with the config from the boot partition"
if [ -f "$CONFIG.last-good" ]; then
	cp -p "$CONFIG.last-good" "$CONFIG"
	printf '{"at":"%s","reason":"%s; the last good config is back"}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$why" >"$STATE/boot-config-rollback.json"
	chmod 0644 "$STATE/boot-config-rollback.json"
	echo "$why: the last good config is back" >&2
else
	echo "$why, and there is no last good config to go back to" >&2
fi
rm -f "$TRIAL"
$SYSTEMCTL restart edge-agent.service
