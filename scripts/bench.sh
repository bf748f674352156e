#!/usr/bin/env bash
# Cold-start benchmark: nucleus side by side with bubblewrap, crun and runc, interleaved in one
# run on the same machine. Prints median, p90, p99 and the ratio to nucleus for each, and writes
# the raw figures to JSON. Needs root. Peers are installed with apt; a missing peer is an
# error, never a silent skip.
#
#   scripts/bench.sh [RUNS] [OUT.json]      (default 300 runs, target/bench/cold-start.json)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
out=${2:-target/bench/cold-start.json}
[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root" >&2; exit 1; }

for t in hyperfine bwrap crun runc busybox; do
  if ! command -v "$t" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine bubblewrap crun runc busybox-static >/dev/null
    break
  fi
done
for t in hyperfine bwrap crun runc busybox; do
  command -v "$t" >/dev/null || { echo "bench.sh: $t is required and could not be installed" >&2; exit 1; }
done

cargo build --release -q -p nucleus
nucleus=$PWD/target/release/nucleus
work=$(mktemp -d /tmp/nucleus-bench.XXXXXX)
cleanup() {
  rm -rf "$work"
  # Empty cgroups the peers leave behind, under our own cgroup only.
  while IFS=: read -r _ ctrls path; do
    for c in ${ctrls//,/ }; do
      c=${c#name=}
      [ -n "$c" ] && rmdir "/sys/fs/cgroup/$c${path%/}/nucleus-bench" 2>/dev/null || true
    done
    [ -z "$ctrls" ] && { rmdir "/sys/fs/cgroup/unified${path%/}/nucleus-bench" 2>/dev/null || true; }
  done < /proc/self/cgroup
}
trap cleanup EXIT
mkdir -p "$(dirname "$out")"

# An OCI bundle for crun/runc: static busybox, /bin/true, default namespaces. A relative
# cgroupsPath puts their cgroups under this shell's own cgroup in every controller (never
# elsewhere); the EXIT trap removes them.
mkdir -p "$work/bundle/rootfs/bin"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
(cd "$work/bundle" && crun spec >/dev/null)
python3 - "$work/bundle/config.json" "nucleus-bench" <<'PY'
import json, sys
p, cg = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["linux"]["cgroupsPath"] = cg
json.dump(c, open(p, "w"))
PY

bwrap_cmd="bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --proc /proc --dev /dev --tmpfs /tmp --new-session /bin/true"

# All commands run in one private mount namespace without the cgroup2 mount, which crun 1.8
# needs on this hybrid host; it changes nothing outside and keeps the comparison fair.
unshare -m --propagation private sh -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  hyperfine -N --warmup 20 --runs $runs --export-json '$out' \
    -n nucleus '$nucleus run -- /bin/true' \
    -n nucleus-strict '$nucleus run --service-mode strict-agent -- /bin/true' \
    -n bwrap '$bwrap_cmd' \
    -n crun 'crun run --bundle $work/bundle nucleus-bench-crun' \
    -n runc 'runc run --bundle $work/bundle nucleus-bench-runc' >/dev/null
"

python3 - "$out" <<'PY'
import json, sys, statistics
r = json.load(open(sys.argv[1]))["results"]
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
base = statistics.median(next(x for x in r if x["command"] == "nucleus")["times"])
print(f"{'runtime':16} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'vs nucleus':>11}")
for x in r:
    t = x["times"]; m = statistics.median(t)
    print(f"{x['command']:16} {m*1e3:10.2f} {pct(t,.9)*1e3:8.2f} {pct(t,.99)*1e3:8.2f} {m/base:10.2f}x")
PY
echo "raw figures: $out" >&2
