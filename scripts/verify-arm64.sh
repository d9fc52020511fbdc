#!/usr/bin/env bash
# The arm64 packages, checked on this x86-64 machine under qemu: build the arm64 single executable
# (better-sqlite3 and epoll cross-compiled with Debian's aarch64 toolchain, classic-level's and
# lz4-napi's arm64 builds taken from npm for the target), run the smoke test against it under
# qemu-aarch64-static (start, publish over MQTT, read back over the HTTP API, forward to
# PostgreSQL), then build the arm64 .deb and install, check and purge it in an arm64 Debian chroot
# (debootstrap, second stage under qemu through binfmt_misc). Run as root; takes several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v file >/dev/null || need+=(file)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster 15 main start 2>/dev/null || pg_ctlcluster 15 main status >/dev/null
fi

echo "== the arm64 single executable"
npm run build:binary -- --arch arm64
file dist/edge-agent-linux-arm64 | grep -q 'ARM aarch64' || { echo "dist/edge-agent-linux-arm64 is not an arm64 executable" >&2; exit 1; }

echo "== its smoke test under qemu"
node dist/scripts/binary/smoke.js qemu-aarch64-static -L /usr/aarch64-linux-gnu dist/edge-agent-linux-arm64

echo "== the arm64 .deb in an arm64 Debian chroot"
npm run build:deb -- --arch arm64
deb="dist/edge-agent_$(node -p 'require("./package.json").version')_arm64.deb"
root=$(mktemp -d /tmp/edge-agent-arm64-chroot.XXXXXX)
chmod 0755 "$root" # its /: the agent's user must get in
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
mirror=$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
debootstrap --foreign --arch=arm64 --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >/dev/null
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
chroot "$root" /debootstrap/debootstrap --second-stage >/dev/null
cp "$deb" "$root/tmp/edge-agent.deb"
mount -t proc proc "$root/proc"
chroot "$root" dpkg -i /tmp/edge-agent.deb
chroot "$root" getent passwd edge-agent
[ -L "$root/etc/systemd/system/multi-user.target.wants/edge-agent.service" ] || { echo "the unit is not enabled" >&2; exit 1; }
chroot "$root" /usr/bin/edge-agent --version | grep 'linux-arm64, single executable'
chroot --userspec=edge-agent:edge-agent "$root" /usr/bin/env HOME=/var/lib/edge-agent /usr/bin/edge-agent config check --config /etc/edge-agent/config.yaml
chroot "$root" dpkg -P edge-agent
if chroot "$root" getent passwd edge-agent || [ -e "$root/var/lib/edge-agent" ]; then echo "purge left the user or the data" >&2; exit 1; fi
echo "arm64 verified: binary smoke test under qemu, .deb installed and purged in an arm64 chroot"
