#!/usr/bin/env bash
# Long fuzzing runs (libFuzzer via cargo-fuzz) of the parsers of untrusted input: the DNS
# messages sandboxes send and upstreams answer, compose topologies, OCI config.json (parsed
# and planned), MCP lines, seccomp profiles. Needs a nightly toolchain (cargo-fuzz is
# installed from crates.io when missing). CI runs the bounded proptest versions instead
# (crates/nucleus-spec/tests/fuzz_*.rs). A crash leaves its input in fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]     (default 60 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dns_query dns_answer compose_topology oci_config mcp_line seccomp_profile)
# Seeds: real inputs from the repository.
mkdir -p fuzz/corpus/{oci_config,compose_topology,seccomp_profile}
cp crates/nucleus-spec/tests/oci/*.json fuzz/corpus/oci_config/
cp crates/nucleus-spec/testdata/seccomp/*.json fuzz/corpus/seccomp_profile/ 2>/dev/null || true
awk '/^```toml$/{f=1; n++; next} /^```$/{f=0} f{print > ("fuzz/corpus/compose_topology/doc" n ".toml")}' docs/compose.md
for t in "${targets[@]}"; do
  echo "fuzz.sh: $t for $secs s" >&2
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 |
    grep -E "^(#[0-9]+.*DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written|error)" >&2 || true
  if ls fuzz/artifacts/"$t"/crash-* >/dev/null 2>&1; then
    echo "fuzz.sh: $t crashed: $(ls fuzz/artifacts/"$t"/crash-*)" >&2
    exit 1
  fi
done
echo "fuzz.sh: no crash" >&2
