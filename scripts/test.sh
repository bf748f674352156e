#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need (apt), builds, runs the
# unit tests and the privileged end-to-end tests. Needs root (the end-to-end tests start real
# sandboxes); without root it stops with an error.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: the end-to-end tests need root (real namespaces, idmapped mounts); run it as root" >&2
  exit 1
fi

# Tools the workload-compatibility tests run inside sandboxes, the network tests' world
# (slirp4netns for --network slirp, dnsmasq as the test DNS server, nft and ip to inspect), and
# the OCI clients that drive nucleus as their runtime (podman with conmon, and uidmap's
# newuidmap for rootless podman; Docker's dockerd
# with its containerd, whose ctr drives the runc v2 shim as Kubernetes' CRI does), and Nix
# (offline, a local store) for the root filesystems nix/lib.nix builds; gVisor's runsc for
# --runtime gvisor.
need=(bash dash busybox python3 gcc git perl node slirp4netns dnsmasq nft ip unshare podman conmon newuidmap dockerd ctr nix-build runsc criu xtables-nft-multi tar)
missing=()
for t in "${need[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
# Debian's PostgreSQL: the compose test's database (its binaries are not on PATH).
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ] || [ ! -e /usr/bin/python3 ]; then
  echo "scripts/test.sh: installing test tools with apt (missing: ${missing[*]:-/usr/bin/python3})" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq bash dash busybox-static python3 gcc libc6-dev git perl nodejs \
    slirp4netns dnsmasq-base nftables iproute2 util-linux podman conmon uidmap docker.io containerd \
    nix-bin postgresql runsc criu iptables tar >/dev/null
fi

# npm (the MCP Inspector's installer): Debian's nodejs leaves it to its own package; a
# NodeSource nodejs has it built in and conflicts with that package.
if ! command -v npm >/dev/null; then
  echo "scripts/test.sh: installing npm with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq npm >/dev/null
fi

# A Debian root filesystem with systemd, booted under systemd-nspawn by the systemd-supervision
# test (this machine's PID 1 is not systemd); built once, kept in /var/tmp.
scripts/systemd-rootfs.sh >/dev/null

# A real OTLP receiver for the telemetry test: the OpenTelemetry project's protobuf
# definitions (PyPI opentelemetry-proto) in a virtualenv under target/.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "scripts/test.sh: installing python3-venv with apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
fi
if ! target/otlp-venv/bin/python -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
  echo "scripts/test.sh: setting up target/otlp-venv (opentelemetry-proto from PyPI)" >&2
  rm -rf target/otlp-venv
  python3 -m venv target/otlp-venv
  target/otlp-venv/bin/pip install -q opentelemetry-proto
fi

# The Python SDK's tests (sdk/python) and the MCP server's (tests/mcp, with the official MCP
# Python SDK's client): pytest and mcp (PyPI) in a virtualenv under target/.
if ! target/sdk-venv/bin/python -c 'import pytest, mcp' 2>/dev/null; then
  echo "scripts/test.sh: setting up target/sdk-venv (pytest and mcp from PyPI)" >&2
  rm -rf target/sdk-venv
  python3 -m venv target/sdk-venv
  target/sdk-venv/bin/pip install -q pytest 'mcp>=2.3,<3'
fi

# The build target (.cargo/config.toml) may not have come with the toolchain.
scripts/ensure-target.sh

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== format and lints" >&2
cargo fmt --all --check
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== build" >&2
cargo build --workspace -q

echo "== release build (the README's binary)" >&2
# Bounded: a thin-LTO build of one tree (964d4d3) never finished (LLVM spun for over 15
# minutes on one codegen unit while a one-line change later built in 30 s). Here it fails in
# minutes, naming the cause, instead of hanging CI until its 90-minute limit.
if ! timeout 900 cargo build --release -q -p nucleus; then
  echo "scripts/test.sh: the release build did not finish within 15 minutes (or failed); see above" >&2
  exit 1
fi
# The start path's layout (scripts/cc-lld): most of scripts/start-order.txt must name
# functions this build has, else the list has gone stale and the layout with it.
stats=$(ls -t target/x86_64-unknown-linux-musl/release/deps/nucleus-*.order-matched 2>/dev/null | head -1)
if [ -n "$stats" ]; then
  read -r matched listed <"$stats"
  echo "scripts/test.sh: start path layout: $matched of the $listed functions in scripts/start-order.txt found" >&2
  if [ $((matched * 2)) -lt "$listed" ]; then
    echo "scripts/test.sh: scripts/start-order.txt is stale (fewer than half its functions are in this build); write it anew with scripts/start-order.sh" >&2
    exit 1
  fi
fi

echo "== the lifecycle model, every interleaving (stateright): state counts and properties" >&2
cargo test -q -p nucleus-model -- --nocapture --test-threads=1 2>&1 | grep -oE 'model .*(states|spurious|graphs).*'

echo "== unit and end-to-end tests" >&2
# End-to-end tests serialise themselves where they compare host state.
cargo test --workspace -q -- --test-threads=2

echo "== the Python SDK and the MCP server against the binary (pytest)" >&2
NUCLEUS_BIN="$PWD/target/x86_64-unknown-linux-musl/debug/nucleus" \
  PYTHONPATH=sdk/python target/sdk-venv/bin/python -m pytest -q -p no:cacheprovider sdk/python/tests tests/mcp

echo "== the MCP server under the official MCP Inspector (npm)" >&2
scripts/mcp-inspector.sh

echo "== limits and isolation tests again in a pure cgroup-v2 kernel (Linux 6.1 under qemu TCG)" >&2
scripts/vm-test.sh

echo "== mutation testing of the security-critical functions (cargo-mutants; ~17 min)" >&2
scripts/mutants.sh

echo "== benchmark harness smoke run (a few iterations so it cannot rot; not a timed test)" >&2
scripts/bench.sh 3 target/bench/smoke.json >/dev/null
scripts/pgbench.sh 1 2 target/bench/pgbench-smoke.json >/dev/null

echo "== all tests passed" >&2
