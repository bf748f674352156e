#!/usr/bin/env bash
# criu-vm-recipe.sh: the CRIU recipe `nucleus checkpoint`/`restore` will follow (issue #24,
# docs/checkpoint-design.md), run by hand against a `--checkpointable` sandbox in the
# cgroup-v2 Linux 6.1 VM (scripts/vm-run.sh), where Debian's CRIU 3.17 works (it fails on
# kernels >= 6.13: "vdso: Unexpected rt vDSO area bounds").
#
# A detached sandbox counts on stdout; CRIU dumps it (the tree dies), restores it from the
# image into a new mount namespace, and the count goes on from where it was, its shell PID 1
# of its pid namespace again. Exit 0 when the restored sandbox runs and counts on.
#
# Usage: scripts/criu-vm-recipe.sh   (builds nucleus; root; apt installs criu if missing)
# shellcheck disable=SC2016 # the guest script is written literally
set -euo pipefail
cd "$(dirname "$0")/.."
command -v criu >/dev/null || { apt-get install -y -qq criu >/dev/null || { apt-get update -qq && apt-get install -y -qq criu >/dev/null; }; }
command -v xtables-nft-multi >/dev/null || apt-get install -y -qq iptables >/dev/null
cargo build -q -p nucleus
guest=$(mktemp /tmp/criu-recipe.XXXXXX.sh)
trap 'rm -f "$guest"' EXIT
cat >"$guest" <<'EOF'
set -u
# CRIU runs iptables-save/ip6tables-save for a network namespace.
for n in iptables-save ip6tables-save iptables-restore ip6tables-restore; do ln -s xtables-nft-multi /opt/bin/$n; done
mkdir -p /run/nucleus /tmp/img
N=/opt/bin/nucleus
$N run -d --checkpointable --name c1 -- /bin/sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done' 2>/dev/null
sleep 1.5
P=$(pgrep -P "$(pgrep -f 'nucleus monitor' | head -1)")
echo "sandbox PID 1 on the host: $P"
# The mount points of the root: the root tmpfs is not in the image (it is --root at restore).
R=$(awk '$5=="/" {print $1}' /proc/$P/mountinfo)
awk -v r="$R" '$2==r {print $5}' /proc/$P/mountinfo >/tmp/mps
# Descriptors on files outside the sandbox's mounts (stdin /dev/null, the logs): external,
# as file[mnt_id:inode] in hex.
EXT=
for f in 0 1 2; do
  m=$(awk '/^mnt_id:/ {print $2}' /proc/$P/fdinfo/$f); i=$(stat -L -c %i /proc/$P/fd/$f)
  EXT="$EXT --external file[$(printf %x "$m"):$(printf %x "$i")]"
done
U=$(awk '$1==0 {print $2}' /proc/$P/uid_map)
criu dump -t "$P" -D /tmp/img -o dump.log --ext-mount-map auto --enable-external-sharing \
  --enable-external-masters --network-lock nftables $EXT || { grep Error /tmp/img/dump.log; exit 1; }
last=$(tail -n 1 /run/nucleus/*/log)
echo "dumped at $last; image $(du -sh /tmp/img | cut -f1)"
# Restore: the root's mount points on a fresh tmpfs; new logs owned by the sandbox's root,
# 0600 as dumped (CRIU reopens an inherited file as the restored task and checks its mode).
mkdir -p /tmp/rroot && mount -t tmpfs -o mode=0755 tmpfs /tmp/rroot
while read -r m; do mkdir -p "/tmp/rroot$m"; done </tmp/mps
touch /tmp/newlog /tmp/newlog.err; chown "$U:$U" /tmp/newlog /tmp/newlog.err; chmod 600 /tmp/newlog /tmp/newlog.err
INH=; n=5
for e in $EXT; do case $e in file*) INH="$INH --inherit-fd fd[$n]:$e"; n=$((n+1));; esac; done
export INH
# In a mount namespace of its own, the state root is a 0711 tmpfs with the /etc view bound
# at its old path: the restored task (the sandbox's root) opens external bind sources itself.
cat >/tmp/rs.sh <<'Y'
set -e
mount --make-rprivate /
EV=$(ls /run/nucleus/.etc-views)
exec 8</run/nucleus/.etc-views/$EV
mount -t tmpfs -o mode=0711 tmpfs /run/nucleus
mkdir -p /run/nucleus/.etc-views/$EV
mount --bind /proc/self/fd/8 /run/nucleus/.etc-views/$EV
exec criu restore -D /tmp/img -o restore.log -r /tmp/rroot --ext-mount-map auto \
  --enable-external-sharing --enable-external-masters $INH -d -S \
  5</dev/null 6>>/tmp/newlog 7>>/tmp/newlog.err
Y
unshare -m sh /tmp/rs.sh || { grep Error /tmp/img/restore.log; exit 1; }
sleep 1
W=$(pgrep -f 'i=0; while' | head -1)
[ -n "$W" ] || { echo "the restored sandbox is gone"; exit 1; }
echo "restored: host pid $W, $(grep NSpid /proc/$W/status)"
first=$(head -n 1 /tmp/newlog); now=$(tail -n 1 /tmp/newlog)
echo "counted on from $first to $now"
[ "$first" = $((last + 1)) ] && [ "$now" -gt "$first" ] && grep -q 'NSpid:.*[[:space:]]1$' /proc/$W/status
EOF
exec scripts/vm-run.sh --timeout 300 \
  --modules nf_tables,nf_conntrack_netlink,veth,tun,unix_diag,inet_diag,tcp_diag,udp_diag,raw_diag,af_packet_diag,netlink_diag \
  --script "$guest" "$(command -v criu)" /usr/bin/pgrep /usr/bin/tar /sbin/ip "$(command -v xtables-nft-multi)" \
  "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/debug/nucleus"
