#!/usr/bin/env bash
# Checkpoint benchmark: `nucleus checkpoint` and `nucleus restore` of a sandbox whose workload
# holds 100 MiB resident (the probe: hold_mib=100), side by side with bare CRIU dumping
# and restoring the same program outside any sandbox (the floor: CRIU's own work), interleaved,
# medians of RUNS each. Runs in the cgroup-v2 Linux 6.1 VM (scripts/vm-run.sh: Debian's CRIU
# 3.17 cannot run on this host's 6.18), under TCG: absolute times are an emulated CPU's, the
# ratio is the figure. Image sizes too.
#
#   scripts/bench-checkpoint.sh [RUNS]     (default 5)
# shellcheck disable=SC2016 # the guest script is written literally
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
case $runs in ''|*[!0-9]*) echo "bench-checkpoint: RUNS must be a number" >&2; exit 2 ;; esac
for t in criu tar ip xtables-nft-multi; do
  command -v "$t" >/dev/null || { echo "bench-checkpoint: $t is missing (scripts/test.sh installs it)" >&2; exit 1; }
done
cargo build --release -q -p nucleus -p nucleus-probe
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release
guest=$(mktemp /tmp/bench-checkpoint.XXXXXX.sh)
trap 'rm -f "$guest"' EXIT
{
  echo "runs=$runs"
  cat <<'EOF'
for n in iptables-save ip6tables-save iptables-restore ip6tables-restore; do ln -sf xtables-nft-multi /opt/bin/$n; done
mkdir -p /run/nucleus
N=/opt/bin/nucleus
# Wall time of a command in ms (busybox's time: 10 ms resolution).
ms() { /opt/bin/time -f %e "$@" 2>/tmp/t >/dev/null || { cat /tmp/t >&2; return 1; }; awk '{printf "%d", $1 * 1000}' </tmp/t | tail -c 20; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$1/status; }
nd=; nr=; cd_=; cr=; size=; csize=; rs=
for i in $(seq "$runs"); do
  # nucleus
  $N run -d --checkpointable --name b -v /opt/bin/nucleus-probe:/probe:ro -- /probe hold_mib=100 >/dev/null 2>/tmp/run.err || { cat /tmp/run.err; exit 1; }
  sleep 2
  p=$(pgrep -f '^/probe hold_mib=100' | head -1)
  [ -n "$p" ] || { echo "bench-checkpoint: the sandbox's workload is not running"; $N ps -a; $N logs b; exit 1; }
  rs=$(rss "$p")
  rm -rf /tmp/ck
  nd="$nd $(ms $N checkpoint -o /tmp/ck b)" || exit 1
  size=$(du -sm /tmp/ck | cut -f1)
  nr="$nr $(ms $N restore -d -i /tmp/ck)" || exit 1
  $N rm -f b >/dev/null
  # bare CRIU, the same program, no namespaces
  setsid /opt/bin/nucleus-probe hold_mib=100 </dev/null >/tmp/bare.out 2>&1 &
  sleep 2
  p=$(pgrep -f '^/opt/bin/nucleus-probe hold_mib=100' | head -1)
  [ -n "$p" ] || { echo "bench-checkpoint: the bare workload is not running"; cat /tmp/bare.out; ls -la /tmp; grep tmp /proc/mounts; ps -o pid,args; exit 1; }
  rm -rf /tmp/cc && mkdir -p /tmp/cc
  cd_="$cd_ $(ms criu dump -t "$p" -D /tmp/cc -o d.log)" || { grep Error /tmp/cc/d.log | tail -3; exit 1; }
  csize=$(du -sm /tmp/cc | cut -f1)
  cr="$cr $(ms criu restore -D /tmp/cc -d -o r.log)" || { grep Error /tmp/cc/r.log | tail -3; exit 1; }
  kill -9 "$(pgrep -f 'nucleus-probe hold_mib=100' | head -1)" 2>/dev/null
  sleep 0.5
done
echo "workload: the probe holding 100 MiB (VmRSS $rs MiB); $runs runs each, interleaved; medians (ms, TCG-emulated 6.1 guest)"
a=$(echo "$nd" | median); b=$(echo "$cd_" | median); c=$(echo "$nr" | median); d=$(echo "$cr" | median)
printf '%-34s %8s %8s %8s\n' "" nucleus "bare criu" ratio
printf '%-34s %8s %8s %8s\n' "checkpoint (dump, image $size/$csize MiB)" "$a" "$b" "$(awk -v x="$a" -v y="$b" 'BEGIN {printf "%.2fx", x / y}')"
printf '%-34s %8s %8s %8s\n' "restore (to running)" "$c" "$d" "$(awk -v x="$c" -v y="$d" 'BEGIN {printf "%.2fx", x / y}')"
echo "raw: nucleus checkpoint$nd; criu dump$cd_; nucleus restore$nr; criu restore$cr"
EOF
} >"$guest"
exec scripts/vm-run.sh --mem 2048 --timeout 1500 \
  --modules nf_tables,nf_conntrack_netlink,veth,tun,unix_diag,inet_diag,tcp_diag,udp_diag,raw_diag,af_packet_diag,netlink_diag \
  --script "$guest" "$(command -v criu)" "$(command -v tar)" "$(command -v ip)" "$(command -v xtables-nft-multi)" \
  /usr/bin/pgrep /usr/bin/time "$bin/nucleus" "$bin/nucleus-probe"
