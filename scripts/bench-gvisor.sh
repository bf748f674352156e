#!/usr/bin/env bash
# gVisor's cold start (#23): `nucleus run --runtime gvisor` against a native `nucleus run`,
# plain `runsc do` and `runsc run` of a bundle (runsc itself, without nucleus), interleaved in
# one run; medians, p90 and the ratio of each to nucleus on gVisor, paired by round. Needs root
# and runsc (installed with apt when missing: an error if it cannot be).
#
#   scripts/bench-gvisor.sh [RUNS] [OUT.json]   (default 30 runs, target/bench/gvisor.json)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
out=${2:-target/bench/gvisor.json}
[ "$(id -u)" = 0 ] || { echo "bench-gvisor.sh: needs root" >&2; exit 1; }
if ! command -v runsc >/dev/null || ! command -v busybox >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc busybox-static >/dev/null
fi
command -v runsc >/dev/null || { echo "bench-gvisor.sh: runsc is required and could not be installed" >&2; exit 1; }
platform=${NUCLEUS_GVISOR_PLATFORM:-ptrace}

scripts/ensure-target.sh
cargo build --release -q -p nucleus
nucleus=$PWD/target/x86_64-unknown-linux-musl/release/nucleus
work=$(mktemp -d /tmp/nucleus-bench-gvisor.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
# runsc's own bundle: static busybox, /bin/true, runsc's default spec.
mkdir -p "$work/bundle/rootfs/bin"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
(cd "$work/bundle" && runsc spec -- /bin/true)
rs="runsc --root $work/runsc --platform=$platform --network=none --ignore-cgroups"
# In a private mount and network namespace, as scripts/bench.sh runs its peers.
unshare -m -n --propagation private sh -c "
  ip link set lo up
  python3 '$PWD/scripts/interleave.py' '$out' $runs 2 \
    nucleus-gvisor '$nucleus --root $work/state run --runtime gvisor --gvisor-platform $platform -- /bin/true' \
    nucleus '$nucleus --root $work/state run -- /bin/true' \
    runsc-do '$rs do --quiet /bin/true' \
    runsc-run '$rs run --bundle $work/bundle nucleus-bench-runsc'
"
python3 - "$out" <<'PY'
import json, sys, statistics
r = json.load(open(sys.argv[1]))["results"]
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
gv = next(x for x in r if x["command"] == "nucleus-gvisor")["times"]
print(f"{'runtime':16} {'median ms':>10} {'p90 ms':>8} {'vs gvisor':>10} {'paired':>7}")
for x in r:
    t = x["times"]; m = statistics.median(t)
    paired = statistics.median(a / b for a, b in zip(t, gv))
    print(f"{x['command']:16} {m*1e3:10.1f} {pct(t,.9)*1e3:8.1f} {m/statistics.median(gv):9.2f}x {paired:6.2f}x")
PY
echo "raw figures: $out"
