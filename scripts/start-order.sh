#!/usr/bin/env bash
# Writes scripts/start-order.txt: the functions `nucleus run -- /bin/true` executes, most
# sampled first. scripts/cc-lld lays the release binary's
# code out in that order (the start path together: fewer code pages faulted in by each process
# of a run; docs/benchmarks.md, session 24). Run it again when the start path changed much
# (the list only guides the layout: a stale one costs speed, never correctness).
#
#   scripts/start-order.sh [RUNS]     (root; needs perf: apt-get install linux-perf)
#
# A separate build (target/start-order) of the same profile, so its Rust symbols carry the
# release build's hashes (cargo's -C metadata; RUSTFLAGS stay out of it), keeps its symbols
# (scripts/cc-lld leaves them when NUCLEUS_KEEP_SYMBOLS is set) and frame pointers, so that
# every function on a sampled stack counts, not only the one running.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-400}
command -v perf >/dev/null || { echo "start-order.sh: perf is needed (apt-get install linux-perf)" >&2; exit 1; }
scripts/ensure-target.sh
dir=target/start-order
NUCLEUS_KEEP_SYMBOLS=1 RUSTFLAGS="-C force-frame-pointers=yes" \
    cargo build --release --quiet --target-dir "$dir" -p nucleus
bin=$(realpath "$dir/x86_64-unknown-linux-musl/release/nucleus")
data=$dir/perf.data
# In namespaces of our own (mounts, network: `lo` up), as the benchmark harness runs it.
unshare -m -n --propagation private bash -c '
    set -e
    ip link set lo up
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    for i in $(seq 20); do "$1" run -- /bin/true; done
    perf record -q -F 20000 -g -o "$3" -- bash -c "for i in \$(seq $2); do \"$1\" run -- /bin/true; done" 2>/dev/null
' _ "$bin" "$runs" "$data"
# Each function goes with the processes of a run that execute it (the runtime, the sandbox's
# init with its network thread and the workload before its exec, the clean-up helper): every
# process faults in the code pages it touches itself (a fork copies no page tables of file
# mappings), so each one's code is kept together, the start's critical path (runtime, init)
# first: runtime only, runtime and helper, all three, runtime and init, init only, init and
# helper, helper only; most sampled first within each group.
perf script -i "$data" --show-task-events -F comm,pid,tid,ip,sym,dso --no-demangle 2>/dev/null | python3 -c '
import collections, re, sys
binary = sys.argv[1]
count = collections.Counter()
roles = collections.defaultdict(set)
role, kids = {}, collections.Counter()
# (Without the suffix ThinLTO gives a function it promotes: it changes with the module.)
def key(name):
    return re.sub(r"\.llvm\.[0-9]+$", "", name)
fork = re.compile(r"PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):(\d+)\)")
execd = re.compile(r"PERF_RECORD_COMM exec: (\S+):(\d+)/")
head = re.compile(r"^\s*\S+\s+(\d+)/(\d+)\s")
frame = re.compile(r"^\s*[0-9a-f]+ (\S+?)(?:\+0x[0-9a-f]+)? \((.*)\)$")
who = None
for line in sys.stdin:
    if "PERF_RECORD" in line:
        m = fork.search(line)
        if m:
            child, ctid, parent = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if child == ctid:
                if role.get(parent) == "R":
                    kids[parent] += 1
                    role[child] = "I" if kids[parent] == 1 else "H"
                elif role.get(parent) == "I":
                    role[child] = "I"
            continue
        m = execd.search(line)
        if m:
            role[int(m.group(2))] = "R" if m.group(1) == "nucleus" else None
        continue
    m = head.match(line)
    if m:
        who = role.get(int(m.group(1)))
        continue
    m = frame.match(line)
    if m and m.group(2) == binary and m.group(1) != "[unknown]" and who:
        name = key(m.group(1))
        count[name] += 1
        roles[name].add(who)
order = ["R", "HR", "HIR", "IR", "I", "HI", "H"]
group = lambda n: order.index("".join(sorted(roles[n])))
print("# scripts/start-order.sh: functions of `nucleus run -- /bin/true`, grouped by the processes")
print("# that run them, most sampled first; scripts/cc-lld matches them to a build (by hash-free")
print("# name where a hash changed).")
for name, _ in sorted(count.items(), key=lambda kv: (group(kv[0]), -kv[1], kv[0])):
    print(name)
' "$bin" >scripts/start-order.txt
echo "start-order.sh: $(grep -vc '^#' scripts/start-order.txt) functions in scripts/start-order.txt" >&2
