#!/usr/bin/env bash
# Cold-start benchmark: nucleus side by side with bubblewrap, crun and runc, interleaved in one
# run on the same machine. Prints median, p90, p99 and the ratio to nucleus for each, and writes
# the raw figures to JSON. Needs root. Peers are installed with apt; a missing peer is an
# error, never a silent skip.
#
#   scripts/bench.sh [RUNS] [OUT.json]      (default 300 runs, target/bench/cold-start.json)
#
# Then: throughput (sandboxes/s with 1, 2 and 8 concurrent callers, every runtime), memory of
# idle detached sandboxes (min(RUNS, 100) of them) and the binary size, in OUT-extra.json;
# with NUCLEUS_BENCH_CLEAN_BUILD=1 also the time of a clean release build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
out=${2:-target/bench/cold-start.json}
[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root" >&2; exit 1; }

for t in bwrap crun runc busybox podman conmon dockerd; do
  if ! command -v "$t" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap crun runc busybox-static podman conmon docker.io >/dev/null
    break
  fi
done
for t in bwrap crun runc busybox podman conmon dockerd; do
  command -v "$t" >/dev/null || { echo "bench.sh: $t is required and could not be installed" >&2; exit 1; }
done

scripts/ensure-target.sh
cargo build --release -q -p nucleus
nucleus=$PWD/target/x86_64-unknown-linux-musl/release/nucleus
work=$(mktemp -d /tmp/nucleus-bench.XXXXXX)
# Build time: a from-scratch release build (all dependencies) into a scratch target directory,
# when NUCLEUS_BENCH_CLEAN_BUILD=1 (it takes minutes on 2 cores; -1 in the JSON otherwise).
build_s=-1
if [ "${NUCLEUS_BENCH_CLEAN_BUILD:-0}" = 1 ]; then
  t0=$(date +%s.%N)
  cargo build --release -q -p nucleus --target-dir "$work/target"
  build_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
  rm -rf "$work/target"
fi
chmod 755 "$work"  # the --rootfs variant binds from inside its user namespace
cleanup() {
  rm -rf "$work"
  # Empty cgroups the peers leave behind, under our own cgroup only.
  while IFS=: read -r _ ctrls path; do
    for c in ${ctrls//,/ }; do
      c=${c#name=}
      if [ -n "$c" ]; then rmdir "/sys/fs/cgroup/$c${path%/}"/nucleus-bench* 2>/dev/null || true; fi
    done
    if [ -z "$ctrls" ]; then rmdir "/sys/fs/cgroup/unified${path%/}"/nucleus-bench* 2>/dev/null || true; fi
  done < /proc/self/cgroup
  # podman's and dockerd's parents (absolute: their cgroupfs managers take no relative one)
  # and their leaves.
  for d in /sys/fs/cgroup/*/nucleus-bench-podman /sys/fs/cgroup/nucleus-bench-podman \
    /sys/fs/cgroup/*/nucleus-bench-docker /sys/fs/cgroup/nucleus-bench-docker; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}
trap cleanup EXIT
mkdir -p "$(dirname "$out")"

# An OCI bundle for crun/runc: static busybox, /bin/true, default namespaces. A relative
# cgroupsPath puts their cgroups under this shell's own cgroup in every controller (never
# elsewhere); the EXIT trap removes them.
mkdir -p "$work/bundle/rootfs/bin"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
# Mount points nucleus's --rootfs variant mounts on (it does not write into a rootfs).
for d in etc proc dev sys tmp run home root; do mkdir -p "$work/bundle/rootfs/$d"; done
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

# bwrap with the same read-only binds as nucleus's default sandbox (issue #7): /usr, the merged-
# /usr links, and the host /etc entries nucleus gives a sandbox (its plan's list, read with
# --dry-run, so it follows nucleus and the host): one --ro-bind per file or directory, one
# --symlink per link. (nucleus itself serves them from one snapshot it keeps, see
# docs/isolation.md; bwrap has no such thing.) The files nucleus writes itself (passwd, group,
# hosts, hostname, resolv.conf, nsswitch.conf) are not binds and have no bwrap counterpart.
# `bwrap-usr` is the same without /etc (for reference).
bwrap_base="bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --proc /proc --dev /dev --tmpfs /tmp --new-session"
etc_args=$("$nucleus" run --dry-run -- /bin/true | python3 -c '
import json, sys
plan = json.load(sys.stdin)
entries = (plan.get("etc_view") or {}).get("entries") or []
for e in entries:
    p = "/etc/" + e["path"]
    k = e["kind"]
    print("--symlink " + k["Symlink"] + " " + p if isinstance(k, dict) else "--ro-bind " + p + " " + p)
')
[ -n "$etc_args" ] || { echo "bench.sh: could not read nucleus's /etc entries" >&2; exit 1; }
bwrap_cmd="$bwrap_base $(echo $etc_args) /bin/true"
bwrap_usr_cmd="$bwrap_base /bin/true"

# All commands run in one private mount namespace without the cgroup2 mount, which crun 1.8
# needs on this hybrid host, and in a network namespace of their own (the bridge variant
# creates its bridge and forwarding settings there, not on the host); it changes nothing
# outside and keeps the comparison fair. The bridge variant's --dns is never contacted.
# Interleaved: every round runs each command once, in a new random order (seeded) each round, so a
# load change on this shared machine hits every runtime alike (hyperfine would run all of one
# command's runs, then the next's). Each run is timed from spawn to reaped exit.
# An attested root (issue #20): a 120 MB tree of 2500 files (deterministic, made here, not the
# host's), its manifest, and its first verification (which seals it into an EROFS image), timed
# once; the interleaved runs then start on the sealed image, against the same tree unattested.
tree=$work/tree
mkdir -p "$tree/bin"
for d in etc proc dev sys tmp run home root; do mkdir -p "$tree/$d"; done
cp "$(command -v busybox)" "$tree/bin/busybox"
ln -s busybox "$tree/bin/true"
python3 - "$tree/data" <<'PY'
import os, random, sys
r = random.Random(20)
for i in range(2500):
    d = os.path.join(sys.argv[1], f"d{i // 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:04d}"), "wb") as f:
        f.write(r.randbytes(48 * 1024))
PY
t0=$(date +%s%N)
digest=$("$nucleus" rootfs manifest "$tree" -o "$work/tree.manifest" 2>/dev/null)
manifest_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
attest="--rootfs $tree --rootfs-manifest $work/tree.manifest --rootfs-sha256 $digest --rootfs-cache $work/rootfs-cache"
limits="--memory 256m --cpus 1"
unshare -m -n --propagation private sh -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  ip link set lo up
  t0=\$(date +%s%N)
  $nucleus run $attest $limits -- /bin/true 2>/dev/null || exit 1
  echo \"attested root: manifest of $(du -sm $tree | cut -f1) MB in $manifest_ms ms; first start (verify + seal) \$(( (\$(date +%s%N) - t0) / 1000000 )) ms\" >&2
  python3 '$PWD/scripts/interleave.py' '$out' $runs 5 \
    nucleus-tree '$nucleus run --rootfs $tree $limits -- /bin/true' \
    nucleus-attested '$nucleus run $attest $limits -- /bin/true' \
    nucleus-production '$nucleus run --service-mode production $attest $limits -- /bin/true' \
    nucleus '$nucleus run -- /bin/true' \
    nucleus-sync '$nucleus run --sync-cleanup -- /bin/true' \
    floor 'unshare -U -m -p -i -u -C -T -n -f /bin/true' \
    nucleus-strict '$nucleus run --service-mode strict-agent -- /bin/true' \
    nucleus-bridge '$nucleus run --network bridge --dns 192.0.2.53 -- /bin/true' \
    nucleus-egress '$nucleus run --network bridge --dns 192.0.2.53 --egress-allow 192.0.2.0/24 -- /bin/true' \
    nucleus-rootfs '$nucleus run --rootfs $work/bundle/rootfs -- /bin/true' \
    bwrap '$bwrap_cmd' \
    bwrap-usr '$bwrap_usr_cmd' \
    nucleus-oci '$nucleus run --bundle $work/bundle nucleus-bench-oci' \
    crun 'crun run --bundle $work/bundle nucleus-bench-crun' \
    runc 'runc run --bundle $work/bundle nucleus-bench-runc'
"

python3 - "$out" <<'PY'
import json, sys, statistics
r = json.load(open(sys.argv[1]))["results"]
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
nu = next(x for x in r if x["command"] == "nucleus")["times"]
base = statistics.median(nu)
# Paired: the median over rounds of this round's time / nucleus's time in the same round
# (the rounds are interleaved, so a load change on the machine cancels out).
print(f"{'runtime':16} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'vs nucleus':>11} {'paired':>7}")
for x in r:
    t = x["times"]; m = statistics.median(t)
    paired = statistics.median(a / b for a, b in zip(t, nu))
    print(f"{x['command']:16} {m*1e3:10.2f} {pct(t,.9)*1e3:8.2f} {pct(t,.99)*1e3:8.2f} {m/base:10.2f}x {paired:6.2f}x")
# Issue #28's targets, paired by round: nucleus within 1.5x the kernel floor (every namespace,
# fork, exec, no mounts) and 0.8x the minimal bwrap (--unshare-all with /usr bound).
by = {x["command"]: x["times"] for x in r}
for peer, target in (("floor", 1.5), ("bwrap-usr", 0.8)):
    for v in ("nucleus", "nucleus-sync", "nucleus-strict", "nucleus-bridge"):
        p = statistics.median(a / b for a, b in zip(by[v], by[peer]))
        print(f"{v} / {peer} = {p:.2f}x (paired median; target <= {target}x)")
# The OCI runtime's whole cycle (create, start, wait, delete: `run --bundle`) against crun's
# and runc's on the same bundle, paired by round (issue #19's target: at most 0.5x crun).
oci = {x["command"]: x["times"] for x in r}
if "nucleus-oci" in oci:
    for peer in ("crun", "runc"):
        p = statistics.median(a / b for a, b in zip(oci["nucleus-oci"], oci[peer]))
        print(f"OCI cycle (run --bundle): nucleus / {peer} = {p:.2f}x (paired median)")
# An attested start after the first verification, against the same tree unattested (issue
# #20's target: at most 1.2x, whatever the tree's size).
for v in ("nucleus-attested", "nucleus-production"):
    p = statistics.median(a / b for a, b in zip(oci[v], oci["nucleus-tree"]))
    print(f"attested root ({v[8:]}): {p:.2f}x the same tree unattested (paired median)")
PY
echo "raw figures: $out" >&2

# Throughput: complete sandboxes per second with 1, 2 and 8 concurrent callers (each runtime
# runs $tp_n sandboxes of /bin/true in total). crun/runc need a unique name per container and,
# when running at once, a cgroup each (a container's exit kills its cgroup): one bundle per
# caller slot.
tp_n=$(( runs < 16 ? 16 : runs ))
for k in 0 1 2 3 4 5 6 7; do
  mkdir -p "$work/bundle-$k"
  # runc refuses a symlinked rootfs: point root.path at the shared one instead.
  python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["linux"]["cgroupsPath"]=sys.argv[3]; c["root"]["path"]=sys.argv[4]; json.dump(c,open(sys.argv[2],"w"))' \
    "$work/bundle/config.json" "$work/bundle-$k/config.json" "nucleus-bench-$k" "$work/bundle/rootfs"
done
extra=${out%.json}-extra.json
unshare -m --propagation private sh -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  python3 - '$extra' '$tp_n' '$nucleus' '$work/bundle' \"$bwrap_cmd\" \"$bwrap_usr_cmd\" <<'PY'
import json, queue, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
out, n, nucleus, bundle, bwrap, bwrap_usr = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
cmds = {
    'nucleus': lambda i, k: [nucleus, 'run', '--', '/bin/true'],
    'bwrap': lambda i, k: bwrap.split(),
    'bwrap-usr': lambda i, k: bwrap_usr.split(),
    'crun': lambda i, k: ['crun', 'run', '--bundle', f'{bundle}-{k}', f'nucleus-bench-tp-crun-{i}'],
    'runc': lambda i, k: ['runc', 'run', '--bundle', f'{bundle}-{k}', f'nucleus-bench-tp-runc-{i}'],
}
res = {}
for callers in (1, 2, 8):
    for name, mk in cmds.items():
        slots = queue.Queue()
        for k in range(callers):
            slots.put(k)
        def one(i):
            k = slots.get()
            r = subprocess.run(mk(i, k), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            slots.put(k)
            if r.returncode != 0:
                raise SystemExit(f'{name} failed with {r.returncode}')
        t = time.monotonic()
        with ThreadPoolExecutor(callers) as ex:
            list(ex.map(one, range(n)))
        res.setdefault(name, {})[str(callers)] = n / (time.monotonic() - t)
json.dump({'throughput_per_s': res, 'sandboxes_per_config': n}, open(out, 'w'))
PY
"

# podman run --rm with nucleus, crun and runc as its runtime, interleaved (issue #19's target:
# nucleus at most 0.9x crun). podman's storage in the work directory; at most 30 runs each.
pod_n=$(( runs < 30 ? runs : 30 ))
tar -C "$work/bundle/rootfs" -cf "$work/rootfs.tar" .
pod_out=${out%.json}-podman.json
unshare -m --propagation private sh -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  P='podman --root $work/podman/root --runroot $work/podman/run --tmpdir $work/podman/tmp --network-config-dir $work/podman/net --cgroup-manager cgroupfs --events-backend file'
  \$P import -q $work/rootfs.tar nucleus-bench >/dev/null
  R='run --rm --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --cgroup-parent /nucleus-bench-podman --network none nucleus-bench /bin/true'
  python3 '$PWD/scripts/interleave.py' '$pod_out' $pod_n 2 \
    podman-nucleus \"\$P --runtime $nucleus \$R\" \
    podman-crun \"\$P --runtime $(command -v crun) \$R\" \
    podman-runc \"\$P --runtime $(command -v runc) \$R\"
  \$P rm -af >/dev/null 2>&1 || true
"
python3 - "$pod_out" <<'PY'
import json, sys, statistics
r = {x["command"]: x["times"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"\n{'podman run --rm':16} {'median ms':>10}")
for k, t in r.items():
    print(f"{k:16} {statistics.median(t)*1e3:10.1f}")
for peer in ("podman-crun", "podman-runc"):
    p = statistics.median(a / b for a, b in zip(r["podman-nucleus"], r[peer]))
    print(f"podman with nucleus / {peer[7:]} = {p:.2f}x (paired median)")
PY

# Agent calls (issue #21): exec latency into one long-lived sandbox, nucleus (plain, and
# --json --capture as an agent's tool call) against crun exec and runc exec into a container of
# the same bundle and `docker exec` into a container of a local dockerd (started here, with its
# default runc, in this private mount namespace; the bundle's rootfs imported as its image),
# interleaved; then cp throughput, the 120 MB tree in and out, nucleus cp and docker cp.
ln -sf busybox "$work/bundle/rootfs/bin/sleep"
python3 - "$work/bundle/config.json" "$work/bundle-exec/config.json" "$work/bundle/rootfs" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/sleep", "100000"]
c["root"]["path"] = sys.argv[3]
c["linux"]["cgroupsPath"] = "nucleus-bench-exec"
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
json.dump(c, open(sys.argv[2], "w"))
PY
exec_out=${out%.json}-exec.json
unshare -m --propagation private sh -c "
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  export NUCLEUS_ROOT=$work/exec-state
  id=\$($nucleus run -d -- sleep 100000) || exit 1
  crun run -d --bundle $work/bundle-exec nucleus-bench-exec-crun || exit 1
  runc run -d --bundle $work/bundle-exec nucleus-bench-exec-runc >/dev/null || exit 1
  D=$work/docker; mkdir -p \$D
  dockerd --data-root \$D/data --exec-root \$D/exec --pidfile \$D/pid -H unix://\$D/sock \
    --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
    --cgroup-parent=/nucleus-bench-docker >\$D/dockerd.log 2>&1 &
  DK=\"docker -H unix://\$D/sock\"
  for i in \$(seq 300); do \$DK info >/dev/null 2>&1 && break; sleep 0.1; done
  tar -C $work/bundle/rootfs -c . | \$DK import - bench:latest >/dev/null || { tail -5 \$D/dockerd.log >&2; exit 1; }
  \$DK run -d --name nucleus-bench-exec --network none bench /bin/sleep 100000 >/dev/null || exit 1
  python3 '$PWD/scripts/interleave.py' '$exec_out' $runs 5 \
    nucleus-exec \"$nucleus exec \$id -- /bin/true\" \
    nucleus-exec-json \"$nucleus exec --json --capture \$id -- /bin/true\" \
    crun-exec 'crun exec nucleus-bench-exec-crun /bin/true' \
    runc-exec 'runc exec nucleus-bench-exec-runc /bin/true' \
    docker-exec \"\$DK exec nucleus-bench-exec /bin/true\"
  rc=\$?
  ms() { echo \$(( (\$2 - \$1) / 1000000 )); }
  t0=\$(date +%s%N); $nucleus cp $tree \$id:/tmp/tree-in >/dev/null || rc=1
  t1=\$(date +%s%N); $nucleus cp \$id:/tmp/tree-in $work/tree-out >/dev/null || rc=1
  t2=\$(date +%s%N); \$DK cp $tree nucleus-bench-exec:/tmp/tree-in >/dev/null || rc=1
  t3=\$(date +%s%N); \$DK cp nucleus-bench-exec:/tmp/tree-in $work/tree-out-docker >/dev/null || rc=1
  t4=\$(date +%s%N)
  echo \"cp: 120 MB, 2500 files: nucleus in \$(ms \$t0 \$t1) ms, out \$(ms \$t1 \$t2) ms; docker in \$(ms \$t2 \$t3) ms, out \$(ms \$t3 \$t4) ms\" >&2
  $nucleus rm -f \$id >/dev/null
  \$DK rm -f nucleus-bench-exec >/dev/null
  kill \$(cat \$D/pid); for i in \$(seq 100); do [ -e \$D/pid ] || break; sleep 0.1; done
  for r in crun runc; do
    \$r kill nucleus-bench-exec-\$r KILL 2>/dev/null
    for i in 1 2 3 4 5 6 7 8 9 10; do \$r delete -f nucleus-bench-exec-\$r 2>/dev/null && break; sleep 0.2; done
  done
  exit \$rc
"
python3 - "$exec_out" <<'PY'
import json, sys, statistics
r = {x["command"]: x["times"] for x in json.load(open(sys.argv[1]))["results"]}
def pct(v, q):
    v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))]
print(f"\n{'exec (one sandbox)':20} {'p50 ms':>8} {'p99 ms':>8}")
for k, t in r.items():
    print(f"{k:20} {statistics.median(t)*1e3:8.2f} {pct(t, .99)*1e3:8.2f}")
for peer in ("crun-exec", "runc-exec", "docker-exec"):
    p = statistics.median(a / b for a, b in zip(r["nucleus-exec"], r[peer]))
    print(f"nucleus exec / {peer[:-5]} exec = {p:.2f}x (paired median)")
PY

# Compose (issue #22): `up` of a 10-service topology (two waves, no health waits) and its
# `down`, in a network namespace of its own; absolute times and per service (docker compose
# is not available here to compare with). Median of 5.
{
  echo 'name = "bench"'
  echo '[service.s0]'; echo 'command = ["sleep", "100000"]'
  for i in $(seq 1 9); do printf '[service.s%d]\ndepends_on = ["s0"]\ncommand = ["sleep", "100000"]\n' "$i"; done
} > "$work/compose.toml"
unshare -n -m --propagation private sh -c "
  ip link set lo up
  for r in 1 2 3 4 5; do
    t0=\$(date +%s%N); $nucleus --root $work/compose-state compose -f $work/compose.toml up -d 2>/dev/null || exit 1
    t1=\$(date +%s%N); $nucleus --root $work/compose-state compose -f $work/compose.toml down 2>/dev/null || exit 1
    t2=\$(date +%s%N); echo \$(( (t1 - t0) / 1000 )) \$(( (t2 - t1) / 1000 ))
  done
" > "$work/compose-times" || { echo "bench.sh: compose up/down failed" >&2; exit 1; }
python3 - "$work/compose-times" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
up = statistics.median(r[0] for r in rows) / 1000; down = statistics.median(r[1] for r in rows) / 1000
print(f"\ncompose, 10 services in 2 waves (median of {len(rows)}): up {up:.0f} ms ({up/10:.1f} ms per service), down {down:.0f} ms ({down/10:.1f} ms per service)")
PY

# Memory: idle detached sandboxes (monitor + init of each), and the binary's size.
mem_n=$(( runs < 100 ? runs : 100 ))
memroot=$work/state
before=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
for _ in $(seq "$mem_n"); do "$nucleus" --root "$memroot" run -d -- sleep 1000 >/dev/null; done
sleep 1
after=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
python3 - "$extra" "$memroot" "$mem_n" "$before" "$after" "$nucleus" "$build_s" "$(nproc)" <<'PY'
import glob, json, os, sys
out, root, n, before, after, binary = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
build_s, cpus = float(sys.argv[7]), int(sys.argv[8])
pss = priv = 0
for f in glob.glob(root + '/*/state.json'):
    s = json.load(open(f))
    for k in ('monitor', 'init'):
        t = open(f"/proc/{s[k]['pid']}/smaps_rollup").read()
        v = {l.split(':')[0]: int(l.split()[1]) for l in t.splitlines()[1:] if l.endswith('kB')}
        pss += v['Pss']; priv += v['Private_Clean'] + v['Private_Dirty']
d = json.load(open(out))
d['memory'] = {'sandboxes': n, 'pss_mib_per_sandbox': pss / n / 1024, 'private_mib_per_sandbox': priv / n / 1024,
               'host_mib_per_sandbox': (before - after) / n / 1024}
d['binary_bytes'] = os.path.getsize(binary)
d['clean_release_build_seconds'] = build_s
d['cpus'] = cpus
json.dump(d, open(out, 'w'), indent=1)
tp = d['throughput_per_s']
print(f"\n{'throughput /s':16} {'1 caller':>9} {'2 callers':>10} {'8 callers':>10}")
for name, v in tp.items():
    print(f"{name:16} {v['1']:9.1f} {v['2']:10.1f} {v['8']:10.1f}")
m = d['memory']
print(f"\nmemory, {n} idle detached sandboxes: Pss {m['pss_mib_per_sandbox']:.2f} MiB, private {m['private_mib_per_sandbox']:.2f} MiB, host {m['host_mib_per_sandbox']:.2f} MiB per sandbox")
print(f"binary: {d['binary_bytes'] / 1048576:.2f} MiB (release, stripped)")
if build_s >= 0:
    print(f"build: {build_s:.0f} s for a clean release build on {cpus} CPUs")
else:
    print("build: not timed (NUCLEUS_BENCH_CLEAN_BUILD=1 times a clean release build)")
PY
mapfile -t ids < <("$nucleus" --root "$memroot" ps -q)
if [ ${#ids[@]} -gt 0 ]; then "$nucleus" --root "$memroot" rm -f "${ids[@]}" >/dev/null; fi
echo "more figures: $extra" >&2
