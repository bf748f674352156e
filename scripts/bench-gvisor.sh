#!/usr/bin/env bash
# gVisor's cold start (#23): `nucleus run --runtime gvisor` against a native `nucleus run`,
# plain `runsc do` and `runsc run` of a bundle (runsc itself, without nucleus), interleaved in
# one run; medians, p90 and the ratio of each to nucleus on gVisor, paired by round. Needs root
# and runsc (installed with apt when missing: an error if it cannot be).
#
#   scripts/bench-gvisor.sh [RUNS] [OUT.json]   (default 30 runs, target/bench/gvisor.json)
#
# Then exec of /bin/true into a running sandbox: nucleus exec on gVisor, on native, and
# runsc exec into a container of runsc's own (OUT-exec.json).
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
ln -s busybox "$work/bundle/rootfs/bin/sleep"
(cd "$work/bundle" && runsc spec -- /bin/true)
mkdir -p "$work/long"
ln -s ../bundle/rootfs "$work/long/rootfs"
(cd "$work/long" && runsc spec -- /bin/sleep 100000)
exec_out=${out%.json}-exec.json
rs="runsc --root $work/runsc --platform=$platform --network=none --ignore-cgroups"
# In a private mount and network namespace, as scripts/bench.sh runs its peers.
unshare -m -n --propagation private sh -c "
  ip link set lo up
  python3 '$PWD/scripts/interleave.py' '$out' $runs 2 \
    nucleus-gvisor '$nucleus --root $work/state run --runtime gvisor --gvisor-platform $platform -- /bin/true' \
    nucleus '$nucleus --root $work/state run -- /bin/true' \
    runsc-do '$rs do --quiet /bin/true' \
    runsc-run '$rs run --bundle $work/bundle nucleus-bench-runsc'
  n='$nucleus --root $work/state'
  g=\$(\$n run -d --runtime gvisor --gvisor-platform $platform -- sleep 100000)
  v=\$(\$n run -d -- sleep 100000)
  $rs run --detach --bundle $work/long nucleus-bench-long
  python3 '$PWD/scripts/interleave.py' '$exec_out' $runs 2 \
    exec-gvisor \"\$n exec \$g -- /bin/true\" \
    exec-native \"\$n exec \$v -- /bin/true\" \
    runsc-exec '$rs exec nucleus-bench-long /bin/true'
  \$n rm -f \$g \$v >/dev/null
  $rs delete --force nucleus-bench-long
"
python3 - "$out" "$exec_out" <<'PY'
import json, sys, statistics
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
for path, base in [(sys.argv[1], "nucleus-gvisor"), (sys.argv[2], "exec-gvisor")]:
    r = json.load(open(path))["results"]
    gv = next(x for x in r if x["command"] == base)["times"]
    print(f"{'command':16} {'median ms':>10} {'p90 ms':>8} {'vs ' + base:>18} {'paired':>7}")
    for x in r:
        t = x["times"]; m = statistics.median(t)
        paired = statistics.median(a / b for a, b in zip(t, gv))
        print(f"{x['command']:16} {m*1e3:10.1f} {pct(t,.9)*1e3:8.1f} {m/statistics.median(gv):17.2f}x {paired:6.2f}x")
    print()
PY
echo "raw figures: $out, $exec_out"
