#!/usr/bin/env bash
# Mutation testing of the security-critical code with cargo-mutants (crates.io): one deliberate
# bug at a time (a return value replaced, an operator swapped, a condition negated), the tests
# run against each; a mutant no test notices is a protection nothing guards.
#
#   scripts/mutants.sh          the bounded set: named security-critical functions, tested with
#                               the unit tests or, where the end-to-end suites guard them, with
#                               the isolation and policy suites too (~20 minutes here;
#                               scripts/test.sh runs it and fails on any missed mutant)
#   scripts/mutants.sh --full   every mutant in the security-critical files, tested with every
#                               test (hours on 2 cores)
#
# Results: target/mutants/{unit,e2e,full}/mutants.out/{caught,missed,timeout,unviable}.txt. Needs root (the
# end-to-end tests start real sandboxes). Mutates the working tree in place, one file at a time,
# restoring each file afterwards: do not interrupt it with kill -9 (git checkout puts a file
# back if you must).
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
  echo "scripts/mutants.sh: installing cargo-mutants $version (crates.io)" >&2
  cargo install --locked --quiet cargo-mutants --version "$version"
fi

# The security-critical functions, in two passes by what guards them (a mutant that makes the
# end-to-end suites hang costs the 30 s timeout, so those the unit tests catch are tested with
# the unit tests only): file, and a regex over cargo-mutants' names of mutants in it.
unit_guarded=(
  # copy-back ownership and modes
  "crates/nucleus-sys/src/copy.rs" "Copier::owner_for|Copier::mode_of"
  # trusted resolution of bind and copy sources
  "crates/nucleus-sys/src/resolve.rs" "open_trusted"
  # the resolver's admission and name matching
  "crates/nucleus-spec/src/net.rs" "ResolverPlan::admits|DomainRule::matches_labels|embedded_v4"
  # the default seccomp policy and generated profiles
  "crates/nucleus-spec/src/seccomp/default.rs" "default_filter|init_filter"
  # init's hardening and the descriptors it keeps
  "crates/nucleus-sys/src/init.rs" "harden|close_ranges"
  # Landlock rules
  "crates/nucleus-sys/src/security.rs" "apply_landlock"
  # cgroup v2 device rules: the BPF program compiled from them
  "crates/nucleus-spec/src/cgroup/devices.rs" "device_program"
)
e2e_guarded=(
  # capability and identity setup
  "crates/nucleus-sys/src/security.rs" "set_identity|drop_bounding|set_capabilities|set_no_new_privs"
  # host id ranges
  "crates/nucleus-sys/src/idslot.rs" "IdSlot::host_base|lock_byte"
  # init's signal forwarding and reaping
  "crates/nucleus-sys/src/init.rs" "in run|replace run"
)
full_files=(
  crates/nucleus-sys/src/security.rs crates/nucleus-sys/src/idslot.rs crates/nucleus-sys/src/copy.rs
  crates/nucleus-sys/src/resolve.rs crates/nucleus-sys/src/init.rs crates/nucleus-sys/src/cgroup.rs
  crates/nucleus-spec/src/net.rs crates/nucleus-spec/src/dns.rs crates/nucleus-spec/src/plan.rs
  crates/nucleus-spec/src/seccomp/default.rs crates/nucleus-spec/src/seccomp/profile.rs
)

# The baseline (tests on the unmutated tree) is what scripts/test.sh has just run.
common=(--workspace --in-place --no-shuffle --baseline skip --timeout 30
  --test-package nucleus,nucleus-spec,nucleus-sys)
e2e_tests=(--cargo-test-arg=--lib --cargo-test-arg=--test --cargo-test-arg=isolation
  --cargo-test-arg=--test --cargo-test-arg=policy)
rm -rf target/mutants
mkdir -p target/mutants
bin=$PWD/target/x86_64-unknown-linux-musl/debug/nucleus

# A mutant that hangs the tests is killed by cargo-mutants with its test process; detached
# sandboxes those tests started (their monitors are nobody's children) and stale records stay.
# Remove them: processes of this tree's own nucleus binary only, then gc of the tests' roots.
cleanup() {
  for p in $(pgrep -f nucleus || true); do
    case "$(readlink "/proc/$p/exe" 2>/dev/null)" in
      "$bin" | "$bin (deleted)") kill -9 "$p" 2>/dev/null || true ;;
    esac
  done
  sleep 0.5
  for r in target/tmp/state target/*/tmp/state /tmp/nucleus-test-state-*; do
    [ -d "$r" ] && "$bin" --root "$r" gc >/dev/null 2>&1 || true
  done
  "$bin" gc >/dev/null 2>&1 || true
}

# One cargo-mutants pass: NAME, then pairs of file and regex, then `--` and test arguments.
worst=0
pass() {
  local name=$1 re="" args=()
  shift
  while [ "$1" != -- ]; do
    args+=(-f "$1")
    re="${re:+$re|}$2"
    shift 2
  done
  shift
  set +e
  cargo mutants "${common[@]}" --output "target/mutants/$name" "${args[@]}" -F "$re" "$@"
  local rc=$?
  set -e
  cleanup
  # cargo-mutants: 0 every mutant caught, 2 some missed, 3 some made the tests hang (a hang is
  # noticed: the test run did not pass), other: the run itself failed.
  case "$rc" in
    0 | 3) ;;
    2) worst=2 ;;
    *) echo "scripts/mutants.sh: cargo-mutants failed ($rc) in the $name pass" >&2; exit "$rc" ;;
  esac
}

if [ "${1:-}" = --full ]; then
  args=()
  for f in "${full_files[@]}"; do args+=(-f "$f"); done
  set +e
  cargo mutants "${common[@]}" --output target/mutants/full "${args[@]}"
  rc=$?
  set -e
  cleanup
  case "$rc" in 0 | 3) ;; 2) worst=2 ;; *) exit "$rc" ;; esac
else
  pass unit "${unit_guarded[@]}" -- --cargo-test-arg=--lib
  pass e2e "${e2e_guarded[@]}" -- "${e2e_tests[@]}"
fi
for k in caught missed timeout unviable; do
  printf '%s %s\n' "$k" "$(cat target/mutants/*/mutants.out/$k.txt 2>/dev/null | wc -l)"
done
if [ "$worst" = 2 ]; then
  echo "scripts/mutants.sh: missed mutants (no test fails on them):" >&2
  cat target/mutants/*/mutants.out/missed.txt >&2
  exit 1
fi
