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
# The machine's own apt configuration names the mirror (and any proxy): the first source of
# Debian bookworm's main archive, in deb822 (*.sources) or one-line (sources.list) form.
mirror=$(
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -r "$f" ] || continue
      # One stanza per paragraph: its URIs when its Suites include bookworm.
      awk 'BEGIN { RS = ""; FS = "\n" }
        { uris = ""; bw = 0
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^URIs:/) { sub(/^URIs: */, "", $i); uris = $i }
            if ($i ~ /^Suites:/ && $i ~ /(^|[ :])bookworm( |$)/) bw = 1
          }
          if (bw && uris != "") { split(uris, u, " "); print u[1] } }' "$f"
    done
    # (Either file may be missing: cat's failure is no answer, not the script's end.)
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
      awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { if ($(i + 1) == "bookworm") print $i; break } }'
  } | grep -v -- '-security' | sed -n 1p
)
# (sed, not head: head leaves after one line, and under pipefail the writer's SIGPIPE would
# fail this assignment silently where apt names several bookworm sources.)
if [ -z "$mirror" ]; then
  echo "systemd-rootfs: no Debian bookworm source in /etc/apt (sources.list or sources.list.d/*.sources); add one, or set NUCLEUS_SYSTEMD_ROOTFS to a ready root filesystem" >&2
  exit 1
fi
proxy=$(apt-config shell p Acquire::http::Proxy 2>/dev/null | sed -n "s/^p='\(.*\)'$/\1/p")
if [ -n "$proxy" ] && [ -z "${http_proxy:-}" ]; then
  export http_proxy=$proxy
fi
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
