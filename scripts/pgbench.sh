#!/usr/bin/env bash
# Steady-state overhead: PostgreSQL (Debian's) under pgbench, on the bare host and inside a
# nucleus sandbox (default agent mode: user namespace, seccomp, Landlock, no capabilities; the
# data directory as a volume, the server's unix socket in it, pgbench on the host). Both
# servers run side by side on copies of one database; each round drives one, then the other
# (order alternating), for SELECT-only and TPC-B-like loads. Prints TPS medians, the ratio
# nucleus / bare and the median of the per-round ratios; writes OUT.json. Needs root; installs
# postgresql with apt when missing.
#
#   scripts/pgbench.sh [RUNS] [SECONDS] [OUT.json]   (default 3 runs of 20 s each)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-20}
out=${3:-target/bench/pgbench.json}
[ "$(id -u)" = 0 ] || { echo "pgbench.sh: needs root" >&2; exit 1; }
if ! command -v pgbench >/dev/null || ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
scripts/ensure-target.sh
cargo build --release -q -p nucleus
nucleus=$PWD/target/x86_64-unknown-linux-musl/release/nucleus
mkdir -p "$(dirname "$out")"

work=$(mktemp -d /var/tmp/nucleus-pgbench.XXXXXX)
chmod 755 "$work"
server=
bare_up=
stop_servers() {
  if [ -n "$server" ]; then
    # SIGTERM (smart shutdown): a background job of a script ignores SIGINT.
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
  fi
  if [ -n "$bare_up" ]; then
    as_pg "$pgbin/pg_ctl stop -s -m fast -D $work/data-bare" 2>/dev/null || true
    bare_up=
  fi
}
trap 'stop_servers; rm -rf "$work"' EXIT
as_pg() { su postgres -s /bin/sh -c "$*"; }
uid=$(id -u postgres)
mkdir -p "$work/sock-bare" "$work/sock-nucleus"
chown postgres "$work" "$work/sock-bare" "$work/sock-nucleus"
as_pg "$pgbin/initdb -D $work/data-bare --auth=trust -U postgres >/dev/null"
opts="-c listen_addresses= -c shared_buffers=128MB -c max_connections=20"

wait_ready() { # NAME SOCKET-DIR
  for _ in $(seq 100); do
    as_pg "$pgbin/pg_isready -q -h $2" && return 0
    sleep 0.1
  done
  cat "$work/server-$1.log" >&2
  echo "pgbench.sh: the $1 server did not come up" >&2
  exit 1
}

# Both servers lead a session of their own, as deployed ones do (pg_ctl and systemd start
# postgres that way; nucleus gives every workload a new session). It matters here: with
# autogroup scheduling each session is one group on the CPUs, so a server in the session of
# its pgbench clients got the CPU per process instead of per group (SELECT-only ~10% apart,
# measured: the same bare server under setsid lost the same 10%).
start_bare() {
  # Marked first: a pg_ctl that fails after forking the server must not leave it running.
  bare_up=1
  as_pg "$pgbin/pg_ctl start -s -D $work/data-bare -l $work/server-bare.log -o '-k $work/sock-bare $opts'" >/dev/null
  wait_ready bare "$work/sock-bare"
}

start_bare
as_pg "pgbench -q -i -s 10 -h $work/sock-bare postgres >/dev/null 2>&1"
stop_servers
# The same database for each server: a copy made while neither runs.
as_pg "cp -a $work/data-bare $work/data-nucleus"

# Both servers run side by side, idle but for the one pgbench is driving: the two runs of a
# pair are seconds apart, so a load change on this shared machine hits both alike (one
# server after the other, each for minutes, it hit one of them: pairs varied by ±20%).
start_bare
"$nucleus" run -u "$uid" -v "$work:/pg" -- "$pgbin/postgres" -D /pg/data-nucleus -k /pg/sock-nucleus $opts >"$work/server-nucleus.log" 2>&1 &
server=$!
wait_ready nucleus "$work/sock-nucleus"

# Steady state: a short SELECT-only run first fills each server's shared_buffers (a fresh
# server reads its working set from the page cache during the first seconds, which is
# start-up, not overhead).
for where in bare nucleus; do
  as_pg "pgbench -S -n -c 4 -j 2 -T $(( secs < 20 ? secs / 4 + 1 : 5 )) -h $work/sock-$where postgres >/dev/null 2>&1"
done
results=$work/results
: >"$results"
for r in $(seq "$runs"); do
  for load in select tpcb; do
    flag=; [ "$load" = select ] && flag=-S
    # Which server goes first alternates round by round.
    order="bare nucleus"; [ $((r % 2)) = 0 ] && order="nucleus bare"
    for where in $order; do
      tps=$(as_pg "pgbench $flag -n -c 4 -j 2 -T $secs -h $work/sock-$where postgres 2>/dev/null" |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p')
      echo "$where $load $r $tps" | tee -a "$results" >&2
    done
  done
done
stop_servers

python3 - "$results" "$out" "$runs" "$secs" <<'PY'
import json, statistics, sys
res, out, runs, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
d, by_round = {}, {}
for line in open(res):
    where, load, r, tps = line.split()
    d.setdefault(load, {}).setdefault(where, []).append(float(tps))
    by_round.setdefault(load, {}).setdefault(r, {})[where] = float(tps)
summary = {"runs": runs, "seconds": secs, "clients": 4, "scale": 10, "tps": d, "ratio": {},
           "paired_ratio": {}}
# ratio: of the medians; paired: the median over rounds of that round's nucleus/bare (the two
# servers of a round ran back to back, so a slow patch of the shared disk cancels out).
print(f"{'load':8} {'bare tps':>10} {'nucleus tps':>12} {'ratio':>7} {'paired':>7}")
for load, v in d.items():
    b, n = statistics.median(v["bare"]), statistics.median(v["nucleus"])
    paired = statistics.median(x["nucleus"] / x["bare"] for x in by_round[load].values())
    summary["ratio"][load] = n / b
    summary["paired_ratio"][load] = paired
    print(f"{load:8} {b:10.0f} {n:12.0f} {n / b:7.3f} {paired:7.3f}")
json.dump(summary, open(out, "w"), indent=1)
PY
echo "raw figures: $out" >&2
