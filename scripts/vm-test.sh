#!/usr/bin/env bash
# vm-test.sh: run the privileged end-to-end tests again inside a real cgroup-v2 kernel.
#
# This host is hybrid (v1 controllers), so the v2 driver (CLONE_INTO_CGROUP, memory.max,
# cpu.max, pids.max, subtree_control delegation) is proven in a Debian 6.1 kernel booted under
# qemu TCG with cgroup_no_v1=all (scripts/vm-run.sh). The test binaries are the same ones
# `cargo test` runs here; they find nucleus at its build path, which the guest recreates as
# links. The same boot also gives a second kernel (6.1, Landlock ABI 3) for the isolation tests.
#
# The checkpoint tests run here with Debian's CRIU (3.17 runs on 6.1, not on this host's
# kernel): criu and the tools it runs (iproute2's ip, iptables-save through xtables-nft-multi,
# GNU tar) are copied in, and the modules its kernel probe needs are loaded.
#
# Usage: scripts/vm-test.sh [TEST-BINARY-NAME...]   (default: limits isolation oci checkpoint)
#        VMTEST_ARGS="a_failed --nocapture" scripts/vm-test.sh checkpoint  (more test-binary arguments)
#        VMTEST_REPEAT=5 ...   (each binary run that many times in one boot: chasing a flaky test)
# Exit status: the guest's (0 = every test passed), 125 if the VM itself failed.
# shellcheck disable=SC2016 # the guest script is written literally (its $ expand in the guest)
set -euo pipefail
cd "$(dirname "$0")/.."

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(limits isolation oci checkpoint)

export CARGO_TERM_COLOR=never
cargo build -q -p nucleus -p nucleus-probe
test_args=()
for s in "${suites[@]}"; do test_args+=(--test "$s"); done
exes=$(cargo test -q -p nucleus "${test_args[@]}" --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*/deps/[a-z_]*-[0-9a-f]*"' | sed 's/"executable":"//; s/"$//' | sort -u)
[ -n "$exes" ] || { echo "vm-test: no test binaries built" >&2; exit 1; }

# (CARGO_TARGET_DIR, when set, is where cargo put them.)
debug_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")/x86_64-unknown-linux-musl/debug
# The OCI tests read runc's default config.json from the source tree: the same path in the guest.
fixtures=$(pwd)/crates/nucleus-spec/tests/oci
guest=$(mktemp /tmp/nucleus-vm-test.XXXXXX.sh)
trap 'rm -f "$guest"' EXIT
{
  echo 'set -u'
  echo "mkdir -p '$debug_dir'"
  # Copies, not links: a root caller's bind sources follow no links outside the system's own.
  echo "cp /opt/bin/nucleus '$debug_dir/nucleus'"
  echo "cp /opt/bin/nucleus-probe '$debug_dir/nucleus-probe'"
  # A host /etc file the isolation tests expect to see read-only (busybox images have none).
  echo 'touch /etc/ld.so.cache'
  echo 'mkdir -p /etc/ssl/certs && echo "# test CA bundle" >/etc/ssl/certs/ca-certificates.crt'
  echo 'echo "guest: $(uname -r), cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"'
  echo 'rc=0'
  for e in $exes; do
    b=$(basename "$e")
    skip=()
    # The guest's only filesystems are tmpfs: there is no block device to throttle.
    case "$b" in limits-*) skip=(--skip io_limit_throttles_direct_writes)
      echo "echo 'guest: io_limit_throttles_direct_writes is not run here (no block device in the VM); it runs on the host'";;
    # OCI containers on cgroup v2 (device rules as a BPF program, v2 limits, freezer), and
    # their checkpoint and restore (CRIU and its modules, below). The hooks test's hooks and
    # the seccomp agent are python3 scripts, which the guest has not. The idmapped-bind test
    # runs on the host only: the guest's /tmp is a tmpfs, which 6.1 cannot idmap (6.3 can).
    # (The terminal test, once skipped here for an EAGAIN from `stty size`, was a race: the
    # terminal's size was set after the program could run; and the netDevices test's veth is
    # loaded with CRIU's modules.)
    oci-*) skip=(--skip hooks_run_at_their_points --skip a_seccomp_agent --skip an_idmapped_bind)
      echo "echo 'guest: the OCI hooks and seccomp agent tests (python3, which the VM has not) and the idmapped-bind test (tmpfs on 6.1) are not run here; they run on the host'"
      # (The tests name it through crates/nucleus/.., which must exist too.)
      echo "mkdir -p '$fixtures' '$PWD/crates/nucleus' && cp /opt/bin/runc-spec.json '$fixtures/'"
      # CRIU's tools (the checkpoint test).
      echo 'for n in iptables-save ip6tables-save iptables-restore ip6tables-restore; do ln -sf xtables-nft-multi /opt/bin/$n; done';;
    checkpoint-*)
      echo 'for n in iptables-save ip6tables-save iptables-restore ip6tables-restore; do ln -sf xtables-nft-multi /opt/bin/$n; done';;
    esac
    echo "echo '== $b (cgroup v2 guest)'"
    echo "for _ in \$(seq ${VMTEST_REPEAT:-1}); do /opt/bin/$b --test-threads=1 ${skip[*]} ${VMTEST_ARGS:-} || rc=1; done"
  done
  echo 'exit $rc'
} >"$guest"

# Not exec: the EXIT trap removes the guest script.
# shellcheck disable=SC2086 # one word per binary
extra=()
modules=
case " ${suites[*]} " in *" checkpoint "*|*" oci "*)
  for t in criu tar ip xtables-nft-multi; do
    command -v "$t" >/dev/null || { echo "vm-test: $t is missing (scripts/test.sh installs it)" >&2; exit 1; }
    extra+=("$(command -v "$t")")
  done
  modules=nf_tables,nf_conntrack_netlink,veth,tun,unix_diag,inet_diag,tcp_diag,udp_diag,raw_diag,af_packet_diag,netlink_diag
  # A bridged sandbox's (the bridge, its masquerade and guard, egress rules and their log).
  modules+=,bridge,nft_ct,nft_masq,nft_chain_nat,nft_nat,nft_reject_inet,nft_log,nfnetlink_log,nft_meta_bridge,nft_limit;;
esac
scripts/vm-run.sh --mem 1024 --smp 2 --timeout 1200 ${modules:+--modules "$modules"} --script "$guest" \
  "$debug_dir/nucleus" "$debug_dir/nucleus-probe" "$fixtures/runc-spec.json" "${extra[@]}" $exes
