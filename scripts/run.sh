#!/usr/bin/env bash
# Build nucleus (release) and run it with these arguments: the README's first command.
#   scripts/run.sh run -- echo hello
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-target.sh
cargo build --release -q -p nucleus
exec target/x86_64-unknown-linux-musl/release/nucleus "$@"
