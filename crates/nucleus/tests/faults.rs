//! Faults of the host side (#25): a state root that is full (a tiny tmpfs, ENOSPC) and one that
//! is read-only. Every refused command is one line with exit 125 and leaves nothing half
//! written; a sandbox already running is unharmed (exec, stop and rm still work once the
//! fault is gone); nothing is left on the host. Each test in a mount namespace of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::{Command, Stdio};

/// Run `body` (bash) in a private mount namespace: $A is a fresh 8 MiB tmpfs, $N nucleus with
/// its state root there. Whatever happens, every sandbox in $A is removed at the end.
fn fault_world(t: &TempDir, body: &str) -> (String, String) {
    let script = format!(
        r#"set -u
A={w}/a; mkdir -p $A; mount -t tmpfs -o size=8m,mode=700 none $A
B="{bin}"; N="$B --root $A"
sweep() {{ for d in $(ls $A 2>/dev/null | grep -E '^[0-9a-f]{{16}}$'); do $N rm -f $d >/dev/null 2>&1; done; $N gc >/dev/null 2>&1; umount -R {w}/r 2>/dev/null; umount $A; }}
trap sweep EXIT
line() {{ echo "$1: rc=$2 lines=$(wc -l < {w}/err) $(head -c 300 {w}/err | tr '\n' ' ')"; }}
{body}"#,
        w = t.s(),
        bin = bin().display()
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "bash", "-c", &script])
        .stdin(Stdio::null());
    let o = leaves_nothing(|| output_within(&mut c, DEADLINE));
    (stdout(&o), stderr(&o))
}

/// A full state root: `run -d` and `create` are refused with one line naming the write that
/// failed and leave no record, name or staging directory; a foreground run goes on and says
/// its record could not be made; the sandbox started before keeps running, and exec, stop and
/// rm work once there is room again.
#[test]
fn a_full_state_root_refuses_new_sandboxes_and_keeps_the_running_one() {
    let _g = serial();
    let t = TempDir::new("fault-full");
    let (out, err) = fault_world(
        &t,
        r#"
$N run -d --name keep -- sleep 100000 >/dev/null && echo "keep: started"
dd if=/dev/zero of=$A/fill bs=4k 2>/dev/null
$N run -d --name new -- sleep 100000 2>$W_ERR >/dev/null; line run-d $?
$N create --name made -- true 2>$W_ERR >/dev/null; line create $?
$N run -- echo foreground-ran 2>$W_ERR; line run $?
echo "entries: $(ls -a $A | grep -v -e '^\.$' -e '^\.\.$' -e '^\.etc-views$' -e '^fill$' -e '^audit.jsonl$' | tr '\n' ' ')"
echo "names: $(ls $A/names | tr '\n' ' ')"
echo "exec: $($N exec keep -- echo alive)"
rm $A/fill
$N stop -t 2 keep >/dev/null; echo "stop: $?"
$N rm keep >/dev/null; echo "rm: $?"
"#
        .replace("$W_ERR", &format!("{}/err", t.s()))
        .as_str(),
    );
    assert!(out.contains("keep: started"), "{out}\n{err}");
    for v in ["run-d", "create"] {
        let l = output_line(&out, &err, v);
        assert!(l.starts_with("rc=125 lines=1 "), "{v}: {l}");
        assert!(l.contains("No space left on device"), "{v}: {l}");
    }
    // Only the sandbox that was there: no record, staging directory or name of the refused.
    let entries = output_line(&out, &err, "entries");
    assert_eq!(entries.split_whitespace().count(), 2, "{entries}"); // its dir and names/
    assert_eq!(output_line(&out, &err, "names"), "keep ");
    assert!(out.contains("foreground-ran"), "{out}");
    assert!(
        output_line(&out, &err, "run").contains("its record could not be made"),
        "{out}"
    );
    assert_eq!(output_line(&out, &err, "exec"), "alive");
    assert_eq!(output_line(&out, &err, "stop"), "0");
    assert_eq!(output_line(&out, &err, "rm"), "0");
}

/// A read-only state root (the same store seen through a read-only bind mount): new sandboxes
/// are refused with one line; `rm -f` refuses before it stops anything (the sandbox keeps
/// running, its record intact); ps and exec work.
#[test]
fn a_read_only_state_root_refuses_changes_before_making_any() {
    let _g = serial();
    let t = TempDir::new("fault-ro");
    let (out, err) = fault_world(
        &t,
        &format!(
            r#"
R={w}/r; mkdir -p $R; mount --bind $A $R; mount -o remount,bind,ro $R
RO="$B --root $R"
$N run -d --name keep -- sleep 100000 >/dev/null && echo "keep: started"
$RO run -d --name new -- sleep 100000 2>{w}/err >/dev/null; line run-d $?
$RO rm -f keep 2>{w}/err; line rm-f $?
echo "ps: $($RO ps --format json | python3 -c 'import json,sys; print([r["status"] for r in json.load(sys.stdin)])')"
echo "exec: $($RO exec keep -- echo alive)"
echo "names: $(ls $A/names | tr '\n' ' ')"
$N rm -f keep >/dev/null; echo "rm: $?"
"#,
            w = t.s()
        ),
    );
    assert!(out.contains("keep: started"), "{out}\n{err}");
    let l = output_line(&out, &err, "run-d");
    assert!(
        l.starts_with("rc=125 lines=1 ") && l.contains("Read-only file system"),
        "{l}"
    );
    let l = output_line(&out, &err, "rm-f");
    assert!(
        l.starts_with("rc=125 lines=1 ") && l.contains("is read-only: nothing was stopped"),
        "{l}"
    );
    assert_eq!(output_line(&out, &err, "ps"), "['running']", "{out}");
    assert_eq!(output_line(&out, &err, "exec"), "alive");
    assert_eq!(output_line(&out, &err, "names"), "keep ");
    assert_eq!(output_line(&out, &err, "rm"), "0");
}

/// Host pid exhaustion where nucleus runs: in a pids cgroup (under the test's own) that has
/// room for the calling shell and the launcher but not for the monitor's fork, `run -d` is
/// refused with one line and leaves no record, name or cgroup; with room for one more, it
/// starts and is removed as usual.
#[test]
fn no_room_for_the_monitor_is_one_line_and_leaves_nothing() {
    let _g = serial();
    let t = TempDir::new("fault-pids");
    let cg = test_cgroup("pids");
    let (out, err) = fault_world(
        &t,
        &format!(
            r#"
mkdir {cg}
# A shell of its own in the cgroup, which becomes the launcher: with room for 1 process the
# monitor's fork fails, with 2 the sandbox's clone (on v1 it starts in the caller's cgroup).
for max in 1 2; do
  bash -c 'echo $$ > {cg}/cgroup.procs; echo '$max' > {cg}/pids.max; exec '"$N"' run -d --name tight -- sleep 100000' 2>{w}/err >/dev/null
  line tight$max $?
  echo "records$max: $(ls $A | grep -cE '^[0-9a-f]{{16}}$') names: $(ls $A/names | wc -l)"
done
bash -c 'echo $$ > {cg}/cgroup.procs; echo 8 > {cg}/pids.max; exec '"$N"' run -d --name roomy -- sleep 100000' >/dev/null; echo "roomy: $?"
$N rm -f roomy >/dev/null; echo "rm: $?"
# The default cgroup parent made under the caller's (this one's) stays for the next run; gc,
# from where it was made, removes it once empty.
bash -c 'echo $$ > {cg}/cgroup.procs; exec '"$N"' gc' >/dev/null 2>&1; echo "gc: $?"
rmdir {cg}; echo "cgroup removed: $?"
"#,
            w = t.s()
        ),
    );
    for (max, what) in [("1", "fork monitor"), ("2", "clone3")] {
        let l = output_line(&out, &err, &format!("tight{max}"));
        assert!(l.starts_with("rc=125 lines=1 "), "{l}\n{out}\n{err}");
        assert!(
            l.contains(what) && l.contains("Resource temporarily unavailable"),
            "{l}"
        );
        assert_eq!(
            output_line(&out, &err, &format!("records{max}")),
            "0 names: 0",
            "{out}"
        );
    }
    assert_eq!(output_line(&out, &err, "roomy"), "0", "{out}\n{err}");
    assert_eq!(output_line(&out, &err, "rm"), "0");
    assert_eq!(output_line(&out, &err, "gc"), "0");
    assert_eq!(output_line(&out, &err, "cgroup removed"), "0");
}

/// A cgroup for a test under the test's own in `controller`'s hierarchy (v1), or in the
/// unified one (v2); not made yet.
fn test_cgroup(controller: &str) -> String {
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let v1 = format!(":{controller}:");
    let base = match mine.lines().find_map(|l| l.split_once(v1.as_str())) {
        Some((_, p)) => format!("/sys/fs/cgroup/{controller}{p}"),
        None => {
            let p = mine.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            format!("/sys/fs/cgroup{p}")
        }
    };
    format!(
        "{}/nucleus-test-{controller}-{}",
        base.trim_end_matches('/'),
        std::process::id()
    )
}

/// Host memory exhaustion where nucleus runs: launches in a memory cgroup too small for them
/// are killed by the kernel at whatever step they reached; afterwards `gc` and `rm -f` of
/// every listed sandbox leave nothing (no record, name, staging directory or cgroup).
#[test]
fn launches_killed_by_the_oom_killer_leave_nothing_after_gc() {
    let _g = serial();
    let t = TempDir::new("fault-mem");
    let cg = test_cgroup("memory");
    let limit = if cg.contains("/memory/") {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    let (out, err) = fault_world(
        &t,
        &format!(
            r#"
mkdir {cg}
for mb in 2 3 4 5 6 8 10 12; do
  bash -c 'echo $$ > {cg}/cgroup.procs; echo '$mb'M > {cg}/{limit}; exec '"$N"' run -d -- sleep 100000' >/dev/null 2>&1
  echo "limit ${{mb}}M: $?"
done
# Collected from where they were made (gc finds cgroups under its caller's own).
inside() {{ bash -c 'echo $$ > {cg}/cgroup.procs; echo -1 > {cg}/{limit} 2>/dev/null || echo max > {cg}/{limit}; exec '"$N"' "$@"' - "$@"; }}
inside gc >/dev/null 2>&1
for d in $($N ps -a -q); do $N rm -f $d >/dev/null; done
inside gc >/dev/null; echo "gc: $?"
echo "cgroups: $(find {cg} -mindepth 1 -type d | wc -l)"
echo "left: $(ls -a $A | grep -v -e '^\.$' -e '^\.\.$' -e '^\.etc-views$' -e '^audit.jsonl$' -e '^names$' | tr '\n' ' ')|$(ls $A/names | wc -l)"
for i in $(seq 50); do rmdir {cg} 2>/dev/null && break; sleep 0.1; done; echo "cgroup removed: $?"
"#
        ),
    );
    // Some launches were killed (the small limits), some succeeded (the large ones).
    assert!(
        out.contains(": 137") || out.contains(": 125"),
        "{out}\n{err}"
    );
    assert!(out.contains(": 0"), "{out}\n{err}");
    assert_eq!(output_line(&out, &err, "gc"), "0");
    assert_eq!(output_line(&out, &err, "left"), "|0", "{out}");
    assert_eq!(output_line(&out, &err, "cgroups"), "0", "{out}");
    assert_eq!(output_line(&out, &err, "cgroup removed"), "0", "{out}");
}
