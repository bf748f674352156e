#!/usr/bin/env bash
# systemd-rootfs.sh: a Debian 12 root filesystem with systemd, for the test that boots it with
# systemd-nspawn and checks nucleus's systemd supervision (transient units, journald logs) with
# systemd as PID 1 (this machine's PID 1 is not systemd). Built once with debootstrap from the
# Debian mirror and kept outside the checkout (it is ~250 MiB); prints its path.
#
#   scripts/systemd-rootfs.sh            (needs root; installs debootstrap and systemd-container)
set -euo pipefail
dir=${NUCLEUS_SYSTEMD_ROOTFS:-/var/tmp/nucleus-systemd-rootfs-v1}
if [ -x "$dir/rootfs/lib/systemd/systemd" ] && [ -e "$dir/.complete" ]; then
  echo "$dir/rootfs"
  exit 0
fi
for t in debootstrap systemd-nspawn; do
  if ! command -v "$t" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap systemd-container >/dev/null
    break
  fi
done
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$dir"
mkdir -p "$dir"
echo "systemd-rootfs: debootstrap bookworm from $mirror into $dir (a few minutes, once)" >&2
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$dir/rootfs" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
  { tail -5 "$dir/debootstrap.log" >&2; exit 1; }
# A quiet, fast boot: no gettys, no network manager.
for u in getty@tty1.service console-getty.service systemd-networkd.service systemd-resolved.service; do
  ln -sf /dev/null "$dir/rootfs/etc/systemd/system/$u"
done
touch "$dir/.complete"
echo "$dir/rootfs"
