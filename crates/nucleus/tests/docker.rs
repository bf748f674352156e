//! Docker (Debian's docker.io: dockerd 20.10 with its containerd and the runc v2 shim) and
//! containerd's own client (`ctr`, the path Kubernetes' CRI takes through the same shim) run
//! containers with nucleus as their OCI runtime. dockerd is started by the test with its own
//! data and exec directories, no bridge and no iptables, in a private mount namespace; its
//! cgroups go under parents this test removes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::{Command, Stdio};

const PARENT: &str = "nucleus-docker-test";
const CTR_PARENT: &str = "nucleus-ctr-test";

fn require(tool: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success()),
        "{tool} is required (scripts/test.sh installs docker.io); refusing to skip silently"
    );
}

/// A busybox image as a tarball of its root.
fn rootfs_tar(t: &TempDir) {
    busybox_image_tar(
        t,
        &[
            "sh", "sleep", "cat", "grep", "tr", "echo", "true", "touch", "test",
        ],
    );
    tar_rootfs(t);
}

/// Run `body` with dockerd up ($DK: the docker client, $C: ctr on dockerd's containerd, $R:
/// docker run's flags, $IMG: the image for ctr); its stdout and stderr. dockerd goes at the
/// end (with it its containerd), and the cgroup parents.
fn with_dockerd(t: &TempDir, body: &str) -> (String, String) {
    for tool in ["dockerd", "ctr", "tar"] {
        require(tool);
    }
    let d = t.s();
    let script = format!(
        r#"set -u
D={d}/d; mkdir -p $D
# A hybrid host's empty v2 tree would make containerd's shim take the host for cgroup v2.
umount /sys/fs/cgroup/unified 2>/dev/null
dockerd --data-root $D/data --exec-root $D/exec --pidfile $D/pid -H unix://$D/sock \
  --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
  --cgroup-parent=/{PARENT} --containerd-namespace nt --containerd-plugins-namespace nt-p \
  --add-runtime nucleus={bin} >$D/dockerd.log 2>&1 &
DK="/usr/bin/docker -H unix://$D/sock"
for i in $(seq 300); do $DK info >/dev/null 2>&1 && break; sleep 0.1; done
$DK import {d}/rootfs.tar bb:latest >/dev/null || {{ echo "import failed"; tail -20 $D/dockerd.log >&2; }}
$DK save bb:latest -o {d}/img.tar
C="ctr --address $D/exec/containerd/containerd.sock -n nct"
$C image import {d}/img.tar >/dev/null
IMG=docker.io/library/bb:latest
R="--runtime nucleus --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
{body}
$DK rm -f $($DK ps -aq) >/dev/null 2>&1
kill $(cat $D/pid)
for i in $(seq 100); do [ -e $D/pid ] || break; sleep 0.1; done
tail -5 $D/dockerd.log >&2
"#,
        bin = bin().display()
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null());
    let o = output_within(&mut c, DEADLINE);
    for parent in [PARENT, CTR_PARENT] {
        remove_cgroup_parent(parent);
    }
    (stdout(&o), stderr(&o))
}

#[test]
fn docker_and_containerd_run_containers_with_nucleus() {
    let _g = serial();
    let t = TempDir::new("docker");
    rootfs_tar(&t);
    let (out, err) = with_dockerd(
        &t,
        &format!(
            r#"
# Docker: its config carries a prestart hook (libnetwork's) that nucleus runs.
echo "run: $($DK run --rm $R bb sh -c 'echo -n "hello "; grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status | tr -d "\t" | tr "\n" " "')"
$DK run --rm $R bb sh -c 'exit 3'; echo "status: $?"
$DK run -d $R --name web --health-cmd 'test -e /ok' --health-interval 1s bb sh -c 'echo logged; sleep 1000' >/dev/null; echo "run-d: $?"
echo "exec: $($DK exec web sh -c 'echo in-exec')"
$DK exec web sh -c 'exit 7'; echo "exec-status: $?"
$DK exec web touch /ok
for i in $(seq 100); do [ "$($DK inspect web --format '{{{{.State.Health.Status}}}}')" = healthy ] && break; sleep 0.2; done
echo "health: $($DK inspect web --format '{{{{.State.Health.Status}}}}')"
echo "logs: $($DK logs web)"
$DK stop -t 1 web >/dev/null; echo "stop: $?"
echo "stopped: $($DK inspect web --format '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}')"
$DK rm web >/dev/null; echo "rm: $?"
echo "limits: $($DK run --rm $R --memory 64m --pids-limit 33 --cpus 0.5 bb sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max' | tr '\n' ' ')"
echo "init: $($DK run --rm $R --init bb sh -c 'cat /proc/1/cmdline | tr "\0" " "')"
# containerd through the runc v2 shim, nucleus as its binary.
echo "ctr-run: $($C run --rm --runc-binary {bin} --cgroup /{CTR_PARENT}/c1 $IMG c1 sh -c 'echo hello-ctr')"
$C run -d --runc-binary {bin} --cgroup /{CTR_PARENT}/c2 $IMG c2 sleep 1000 >/dev/null; echo "ctr-run-d: $?"
echo "ctr-exec: $($C task exec --exec-id e1 c2 sh -c 'echo in-exec')"
$C task exec --exec-id e2 c2 sh -c 'exit 5'; echo "ctr-exec-status: $?"
echo "ctr-ps: $($C task ps c2 | tail -n +2 | wc -l)"
echo "ctr-metrics: $($C task metrics c2 2>&1 | grep -c -E 'memory.usage_in_bytes|memory.usage|pids.current')"
$C task pause c2; echo "ctr-pause: $? $($C task ls | grep c2 | tr -s ' ' | cut -d' ' -f3)"
$C task resume c2; echo "ctr-resume: $? $($C task ls | grep c2 | tr -s ' ' | cut -d' ' -f3)"
$C task kill -s KILL c2
for i in $(seq 50); do $C task ls | grep c2 | grep -q STOPPED && break; sleep 0.1; done
echo "ctr-kill: $($C task ls | grep c2 | tr -s ' ' | cut -d' ' -f3)"
$C task rm c2 >/dev/null; echo "ctr-task-rm: $?"
$C container rm c2; echo "ctr-rm: $?"
"#,
            bin = bin().display()
        ),
    );
    let l = |k: &str| output_line(&out, &err, k);
    // Docker's own seccomp profile, compiled by nucleus.
    assert_eq!(l("run"), "hello NoNewPrivs:0 Seccomp:2 ", "{err}");
    assert_eq!(l("status"), "3");
    assert_eq!(l("run-d"), "0", "{err}");
    assert_eq!(l("exec"), "in-exec");
    assert_eq!(l("exec-status"), "7");
    assert_eq!(l("health"), "healthy", "{err}");
    assert_eq!(l("logs"), "logged");
    assert_eq!(l("stop"), "0");
    // (sh as PID 1 ignores SIGTERM: docker stop's SIGKILL after the timeout.)
    assert_eq!(l("stopped"), "exited 137");
    assert_eq!(l("rm"), "0");
    let limits = l("limits");
    assert!(
        limits == "67108864 33 50000 " || limits == "67108864 33 50000 100000 ",
        "{limits}"
    );
    // Docker's init (tini) is the container's PID 1, the command its child.
    assert!(
        l("init").starts_with("/sbin/docker-init -- sh -c "),
        "{}",
        l("init")
    );
    assert_eq!(l("ctr-run"), "hello-ctr", "{err}");
    assert_eq!(l("ctr-run-d"), "0");
    assert_eq!(l("ctr-exec"), "in-exec");
    assert_eq!(l("ctr-exec-status"), "5");
    assert_eq!(l("ctr-ps"), "1");
    assert_ne!(l("ctr-metrics"), "0");
    assert_eq!(l("ctr-pause"), "0 PAUSED");
    assert_eq!(l("ctr-resume"), "0 RUNNING");
    assert_eq!(l("ctr-kill"), "STOPPED");
    assert_eq!(l("ctr-task-rm"), "0");
    assert_eq!(l("ctr-rm"), "0");
}
