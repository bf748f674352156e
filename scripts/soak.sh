#!/usr/bin/env bash
# Soak: the model-based test of the real binary (crates/nucleus/tests/model.rs), long. One
# caller's random verbs checked step by step against the model, then CALLERS callers at once
# with launchers killed at random moments; every run ends with everything collected and the
# host as before. Prints the seeds (a failure repeats with NUCLEUS_MODEL_SEED=N) and how many
# sandboxes were made. Needs root.
#
#   scripts/soak.sh [STEPS] [CALLERS] [ROUNDS]     (default 1500 steps, 8 callers, 1 round)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-1500}
callers=${2:-8}
rounds=${3:-1}
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root" >&2; exit 1; }
scripts/ensure-target.sh
cargo build --workspace -q
echo "soak: the lifecycle model first (stateright, exhaustive)" >&2
cargo test -q -p nucleus-model -- --nocapture --test-threads=1 2>&1 | grep -oE 'model .*(states|spurious|graphs).*' >&2
start=$(date +%s)
for r in $(seq "$rounds"); do
  echo "soak: round $r of $rounds: $steps steps, then $callers callers x $steps steps" >&2
  NUCLEUS_MODEL_STEPS=$steps NUCLEUS_MODEL_CALLERS=$callers \
    cargo test -q -p nucleus --test model -- --nocapture --test-threads=1 2>&1 |
    grep -E '^model|panicked|left behind|seed [0-9]+|FAILED|test result|^ +"' >&2
done
echo "soak: done in $(( $(date +%s) - start )) s" >&2
