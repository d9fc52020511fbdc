#!/bin/sh
# First boot of an image made by the edge-agent image customiser: install the agent's .deb, put the
# config (checked when the image was made) in place, set the first admin's password if one was
# given, then remove this one-time step. Runs as root, once (ConditionPathExists on the .deb).
set -eu
DIR=/var/lib/edge-agent-firstboot
dpkg -i "$DIR/edge-agent.deb"
install -m 0640 -o root -g edge-agent "$DIR/config.yaml" /etc/edge-agent/config.yaml
if [ -f "$DIR/boot-config.pub" ]; then
	# From now on a boot-partition config is taken only when signed with the matching private key.
	install -m 0644 -o root -g root "$DIR/boot-config.pub" /etc/edge-agent/boot-config.pub
fi
if [ -f "$DIR/admin-password" ]; then
	runuser -u edge-agent -- env HOME=/var/lib/edge-agent /usr/bin/edge-agent user add admin --role admin --config /etc/edge-agent/config.yaml <"$DIR/admin-password"
fi
if [ -f "$DIR/authorized_keys" ]; then
	install -d -m 0700 /root/.ssh
	cat "$DIR/authorized_keys" >>/root/.ssh/authorized_keys
	chmod 0600 /root/.ssh/authorized_keys
fi
rm -rf "$DIR"
systemctl disable edge-agent-firstboot.service || true
systemctl restart edge-agent.service
