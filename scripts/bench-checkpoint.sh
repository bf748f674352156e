#!/usr/bin/env bash
# Checkpoint benchmark: `nucleus checkpoint` and `nucleus restore` of a sandbox whose workload
# holds 100 MiB resident (the probe: hold_mib=100), side by side with the same program as an
# OCI container checkpointed and restored by runc and by nucleus (runc's verbs, one bundle),
# and with bare CRIU dumping and restoring it outside any sandbox (the floor: CRIU's own
# work), interleaved, medians of RUNS each. Runs in the cgroup-v2 Linux 6.1 VM (scripts/vm-run.sh: Debian's CRIU
# 3.17 cannot run on this host's 6.18), under TCG: absolute times are an emulated CPU's, the
# ratio is the figure. Image sizes too.
#
#   scripts/bench-checkpoint.sh [RUNS]     (default 5)
# shellcheck disable=SC2016 # the guest script is written literally
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
case $runs in ''|*[!0-9]*) echo "bench-checkpoint: RUNS must be a number" >&2; exit 2 ;; esac
for t in criu tar ip xtables-nft-multi runc; do
  command -v "$t" >/dev/null || { echo "bench-checkpoint: $t is missing (scripts/test.sh installs it)" >&2; exit 1; }
done
cargo build --release -q -p nucleus -p nucleus-probe
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release
# The OCI bundle's config.json: runc's default with the probe as its process, no terminal.
config=$(mktemp /tmp/bench-checkpoint-config.XXXXXX.json)
python3 - crates/nucleus-spec/tests/oci/runc-spec.json >"$config" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/probe", "hold_mib=100"]
c["root"]["readonly"] = True
print(json.dumps(c))
PY
guest=$(mktemp /tmp/bench-checkpoint.XXXXXX.sh)
trap 'rm -f "$guest" "$config"' EXIT
{
  echo "runs=$runs"
  echo "config=$(basename "$config")"
  cat <<'EOF'
for n in iptables-save ip6tables-save iptables-restore ip6tables-restore; do ln -sf xtables-nft-multi /opt/bin/$n; done
# runc's CRIU locks the network with iptables' mark match: its extension where iptables
# loads it from.
mkdir -p /usr/lib/x86_64-linux-gnu/xtables && cp /opt/bin/libxt_*.so /usr/lib/x86_64-linux-gnu/xtables/
mkdir -p /run/nucleus
N=/opt/bin/nucleus
# Wall time of a command in ms (busybox's time: 10 ms resolution).
ms() { /opt/bin/time -f %e "$@" 2>/tmp/t >/dev/null || { cat /tmp/t >&2; return 1; }; awk '{printf "%d", $1 * 1000}' </tmp/t | tail -c 20; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$1/status; }
nd=; nr=; cd_=; cr=; od=; orr=; rd=; rr=; size=; csize=; rs=
# One OCI bundle for runc and nucleus: the probe on a root of its own.
mkdir -p /tmp/bundle/rootfs/proc /tmp/bundle/rootfs/sys /tmp/bundle/rootfs/dev /tmp/bundle/rootfs/tmp
cp /opt/bin/nucleus-probe /tmp/bundle/rootfs/probe
cp "/opt/bin/$config" /tmp/bundle/config.json
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
  # runc's checkpoint and restore of the OCI container, then nucleus's (runc's verbs)
  # (Its stdio /dev/null, which is in the container too: runc names no file outside it to CRIU.)
  runc --log /tmp/runc.err run -d --bundle /tmp/bundle rb </dev/null >/dev/null 2>&1 || { cat /tmp/runc.err; exit 1; }
  sleep 2
  rm -rf /tmp/rk
  rd="$rd $(ms runc checkpoint --image-path /tmp/rk rb)" || { grep -B4 Error /tmp/rk/dump.log | tail -24; exit 1; }
  runc delete -f rb 2>/dev/null
  rr="$rr $(ms runc restore -d --image-path /tmp/rk --bundle /tmp/bundle rb)" || { grep Error /tmp/rk/restore.log | tail -3; exit 1; }
  runc delete -f rb >/dev/null 2>&1
  $N run -d --bundle /tmp/bundle ob </dev/null >/dev/null 2>/tmp/oci.err || { cat /tmp/oci.err; exit 1; }
  sleep 2
  rm -rf /tmp/ok
  od="$od $(ms $N checkpoint --image-path /tmp/ok ob)" || exit 1
  $N delete ob
  orr="$orr $(ms $N restore -d --image-path /tmp/ok --bundle /tmp/bundle ob)" || exit 1
  $N delete -f ob >/dev/null
  sleep 0.5
done
echo "workload: the probe holding 100 MiB (VmRSS $rs MiB); $runs runs each, interleaved; medians (ms, TCG-emulated 6.1 guest)"
a=$(echo "$nd" | median); b=$(echo "$cd_" | median); c=$(echo "$nr" | median); d=$(echo "$cr" | median)
e=$(echo "$od" | median); f=$(echo "$orr" | median); g=$(echo "$rd" | median); h=$(echo "$rr" | median)
x() { awk -v x="$1" -v y="$2" 'BEGIN {printf "%.2fx", x / y}'; }
printf '%-30s %9s %9s %9s %9s %11s %11s\n' "" nucleus "nuc-oci" runc "bare criu" "nuc/criu" "nuc-oci/runc"
printf '%-30s %9s %9s %9s %9s %11s %11s\n' "checkpoint (image $size/$csize MiB)" "$a" "$e" "$g" "$b" "$(x "$a" "$b")" "$(x "$e" "$g")"
printf '%-30s %9s %9s %9s %9s %11s %11s\n' "restore (to running)" "$c" "$f" "$h" "$d" "$(x "$c" "$d")" "$(x "$f" "$h")"
echo "raw: nucleus checkpoint$nd; nucleus-oci checkpoint$od; runc checkpoint$rd; criu dump$cd_"
echo "raw: nucleus restore$nr; nucleus-oci restore$orr; runc restore$rr; criu restore$cr"
EOF
} >"$guest"
scripts/vm-run.sh --mem 2048 --timeout 1500 \
  --modules nf_tables,nf_conntrack_netlink,veth,tun,unix_diag,inet_diag,tcp_diag,udp_diag,raw_diag,af_packet_diag,netlink_diag,nft_compat,xt_mark \
  --script "$guest" "$(command -v criu)" "$(command -v tar)" "$(command -v ip)" "$(command -v xtables-nft-multi)" \
  /usr/bin/pgrep /usr/bin/time "$(command -v runc)" "$config" "$bin/nucleus" "$bin/nucleus-probe" \
  /usr/lib/x86_64-linux-gnu/xtables/libxt_mark.so /usr/lib/x86_64-linux-gnu/xtables/libxt_standard.so
