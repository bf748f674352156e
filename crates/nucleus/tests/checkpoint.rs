//! End-to-end: checkpointable sandboxes (`run --checkpointable`), what `nucleus checkpoint`
//! (issue #24, docs/checkpoint-design.md) will save with CRIU: the workload is the sandbox's
//! PID 1 (no mini-init of the runtime's, which CRIU could not save), it has no Landlock (CRIU
//! cannot save a Landlock domain; agent mode says so, strict modes refuse), the masked
//! directories are read-only tmpfs of their own, and the detached logs are open without
//! O_NOFOLLOW (CRIU reopens an inherited file with the flags it was dumped with).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

/// `f`'s first Some within `secs` seconds.
fn poll_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > end {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Removes the named sandboxes when dropped: a failed test leaves none running for the next.
struct Gone(&'static [&'static str]);

impl Drop for Gone {
    fn drop(&mut self) {
        for n in self.0 {
            let _ = run(&["rm", "-f", n]);
        }
    }
}

/// `o` succeeded; if not, the failure names its CRIU log's last lines (the VM's are lost).
fn assert_ok(o: &std::process::Output) {
    if o.status.code() == Some(0) {
        return;
    }
    let err = stderr(o);
    let tail = err
        .rsplit_once("(log: ")
        .and_then(|(_, l)| l.split(')').next())
        .and_then(|l| std::fs::read_to_string(l).ok())
        .map(|t| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        })
        .unwrap_or_default();
    panic!(
        "status {:?}: {err}\n{tail}\n{}",
        o.status.code(),
        null_holders()
    );
}

/// Every process holding /dev/null at a descriptor, with the mount it was opened through
/// (diagnosing a CRIU "Can't lookup mount" in the VM).
fn null_holders() -> String {
    let mut out = String::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let fdn = fd.file_name().to_string_lossy().to_string();
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            if target.to_string_lossy() != "/dev/null" {
                continue;
            }
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fdn}")).unwrap_or_default();
            let mnt = info
                .lines()
                .find(|l| l.starts_with("mnt_id:"))
                .unwrap_or("")
                .to_string();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let ppid = status
                .lines()
                .find(|l| l.starts_with("PPid:"))
                .unwrap_or("");
            let nspid = status
                .lines()
                .find(|l| l.starts_with("NSpid:"))
                .unwrap_or("");
            out += &format!("{pid} {} fd {fdn} {mnt} {ppid} {nspid}\n", comm.trim());
        }
    }
    out += &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    out
}

#[test]
fn the_workload_is_pid_1_without_landlock_and_says_so() {
    let _g = serial();
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--checkpointable",
            "--",
            "sh",
            "-c",
            "echo pid=$$; grep -c . /proc/1/cmdline >/dev/null; tr '\\0' ' ' </proc/1/cmdline; echo",
        ])
    });
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("pid=1\n"), "{out}");
    assert!(
        out.contains("sh -c echo pid"),
        "PID 1 is the workload: {out}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("Landlock NOT applied") && err.contains("--checkpointable"),
        "{err}"
    );
    // Its exit code is the workload's, as with init.
    let o = leaves_nothing(|| run(&["run", "--checkpointable", "--", "sh", "-c", "exit 7"]));
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
}

/// The probe's view: Landlock not applied, seccomp on, and the masks still hide and refuse
/// writes (tmpfs of their own instead of the shared empty directory).
#[test]
fn protections_other_than_landlock_hold() {
    let _g = serial();
    let p = probe_run(&["--checkpointable"], &[]);
    assert_eq!(p["Seccomp"], "2", "{p}");
    assert_ne!(p["landlock"], "applied", "{p}");
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--checkpointable",
            "--",
            "sh",
            "-c",
            "for d in /proc/acpi /sys/firmware /sys/kernel/debug; do \
               [ -d $d ] || continue; \
               echo \"$d:$(ls -A $d | wc -l):$(grep \" $d \" /proc/self/mounts | cut -d' ' -f3,4 | cut -d, -f1):$(awk -v d=$d '$5 == d {print $4}' /proc/self/mountinfo)\"; \
               touch $d/x 2>/dev/null && echo \"$d writable\"; \
             done; true",
        ])
    });
    assert_ok(&o);
    let out = stdout(&o);
    assert!(!out.contains("writable"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty(), "no masked directory exists here: {out}");
    for l in lines {
        // Its own file system's root (the shared mask, a directory of another tmpfs, is a
        // mount CRIU cannot save).
        assert!(
            l.ends_with(":0:tmpfs ro:/"),
            "an empty read-only tmpfs: {l}"
        );
    }
}

#[test]
fn strict_modes_refuse_it_with_one_line() {
    let _g = serial();
    // (Production mode refuses the default root before it gets here: it needs --rootfs.)
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--service-mode",
            "strict-agent",
            "--checkpointable",
            "--",
            "true",
        ])
    });
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--checkpointable") && err.contains("Landlock"),
        "{err}"
    );
}

/// Detached: the logs are the workload's descriptors (checked from the host: open for
/// appending, without O_NOFOLLOW), `logs` reads them, `stop` ends a PID-1 shell that ignores
/// SIGTERM (no handler: the kernel drops it) by the grace period's SIGKILL.
#[test]
fn a_detached_checkpointable_sandbox_logs_and_stops() {
    let _g = serial();
    let name = "ckpt-detached";
    let _gone = Gone(&["ckpt-detached"]);
    let _ = run(&["rm", "-f", name]);
    leaves_nothing(|| {
        let o = run(&[
            "run",
            "-d",
            "--checkpointable",
            "--name",
            name,
            "--",
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo started; while :; do sleep 0.1; done",
        ]);
        assert_ok(&o);
        let pid = poll_for(5, || {
            let o = run(&["inspect", name]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
            v["pid"].as_i64().filter(|p| *p > 0)
        })
        .expect("the sandbox's pid");
        // Its PID 1 is the workload itself: the shell, not a fork of nucleus.
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            cmd.starts_with(b"sh\0-c\0"),
            "{:?}",
            String::from_utf8_lossy(&cmd)
        );
        let flags = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/1")).unwrap();
        let flags = flags
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_eq!(flags & libc::O_NOFOLLOW as u32, 0, "flags {flags:o}");
        assert_ne!(flags & libc::O_APPEND as u32, 0, "flags {flags:o}");
        let logs = poll_for(5, || {
            let o = run(&["logs", name]);
            stdout(&o).contains("started").then_some(())
        });
        assert!(logs.is_some());
        // exec joins the workload itself (PID 1), not a child it happens to have.
        for _ in 0..5 {
            let o = run(&[
                "exec",
                name,
                "--",
                "sh",
                "-c",
                "echo in $(cat /proc/1/comm)",
            ]);
            assert_eq!(stdout(&o), "in sh\n", "{}", stderr(&o));
        }
        // stop's SIGTERM reaches PID 1 itself (its trap: exit 7), not its `sleep`.
        let o = run(&["stop", "-t", "5", name]);
        assert_ok(&o);
        let o = run(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["exit"]["code"], 7, "{v}");
        let o = run(&["rm", name]);
        assert_ok(&o);
    });
}

/// The count of a `checkpoint` counter's log (one number a line), in order.
fn counted(name: &str) -> Vec<u64> {
    stdout(&run(&["logs", name]))
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether CRIU runs here; when it cannot (Debian's 3.17 on Linux >= 6.13), the refusal is
/// checked and the test says where its other half runs. In the test VM it must run.
fn criu_runs_here(o: &std::process::Output) -> bool {
    let err = stderr(o);
    if o.status.code() == Some(125) && err.contains("cannot run on Linux") {
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("--criu") && err.contains("4.1"), "{err}");
        assert!(
            std::env::var_os("VMRUN").is_none(),
            "CRIU must run in the test VM: {err}"
        );
        eprintln!(
            "checkpoint: {} here; the save and restore run in the cgroup-v2 Linux 6.1 VM \
             (scripts/vm-test.sh checkpoint)",
            err.trim()
        );
        return false;
    }
    true
}

/// [`criu_runs_here`]; when it does not, the sandbox `name` is removed (its test ends there).
fn criu_runs_here_or_rm(o: &std::process::Output, name: &str) -> bool {
    criu_runs_here(o) || {
        let _ = run(&["rm", "-f", name]);
        false
    }
}

/// A counter writes an increasing number to its log and to a file of its /tmp: saved (it
/// stops, its record goes), restored under its name, it counts on from where it was, its shell
/// PID 1 again, the same hostname, its /tmp as it was; exec, stop and rm work on it.
#[test]
fn a_counter_goes_on_from_where_it_was_saved() {
    let _g = serial();
    let name = "ckpt-counter";
    let _gone = Gone(&["ckpt-counter"]);
    let _ = run(&["rm", "-f", name]);
    let t = TempDir::new("ckpt-counter");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    leaves_nothing(|| {
        let o = run(&[
            "run",
            "-d",
            "--checkpointable",
            "--name",
            name,
            "--",
            "sh",
            "-c",
            "echo $$ >/tmp/pid; hostname >/tmp/host; i=0; \
             while :; do i=$((i+1)); echo $i; echo $i >/tmp/n; sleep 0.1; done",
        ]);
        assert_ok(&o);
        assert!(poll_for(10, || (counted(name).len() >= 3).then_some(())).is_some());
        let host = stdout(&run(&["exec", name, "--", "cat", "/tmp/host"]));
        let before = counted(name);
        let o = run(&["checkpoint", "-o", &dir_s, name]);
        if !criu_runs_here(&o) {
            // Refused before anything: it runs on, and no image is left.
            assert!(!dir.exists(), "a half-made image");
            let later = poll_for(5, || {
                let n = counted(name).len();
                (n > before.len()).then_some(n)
            });
            assert!(later.is_some(), "the sandbox stopped counting");
            let _ = run(&["rm", "-f", name]);
            return;
        }
        eprintln!("checkpoint: CRIU runs here");
        assert_ok(&o);
        // It is saved and gone.
        assert!(run(&["inspect", name]).status.code() != Some(0));
        assert!(dir.join("nucleus.json").is_file() && dir.join("images").is_dir());
        let o = run(&["restore", "-d", "-i", &dir_s]);
        assert_ok(&o);
        let again = poll_for(10, || {
            let c = counted(name);
            (c.len() >= 3).then_some(c)
        })
        .expect("the restored sandbox counts");
        // On from the last number saved (past what was logged before the save), one by one.
        assert!(
            again[0] > *before.last().unwrap(),
            "{before:?} then {again:?}"
        );
        assert!(again.windows(2).all(|w| w[1] == w[0] + 1), "{again:?}");
        let inside = stdout(&run(&[
            "exec",
            name,
            "--",
            "sh",
            "-c",
            "echo $(cat /tmp/pid) $(cat /proc/1/comm) $(hostname) $(cat /tmp/n) \
             $(touch /x 2>/dev/null && echo root-writable || echo root-sealed)",
        ]));
        let f: Vec<&str> = inside.split_whitespace().collect();
        assert_eq!(&f[..3], ["1", "sh", host.trim()], "{inside}");
        assert!(f[3].parse::<u64>().unwrap() >= again[0], "{inside}");
        assert_eq!(f[4], "root-sealed", "{inside}");
        let o = run(&["stop", "-t", "1", name]);
        assert_ok(&o);
        let o = run(&["rm", name]);
        assert_ok(&o);
    });
}

/// Bad requests are one line each and leave the sandbox running and nothing written.
#[test]
fn refusals_are_one_line_and_change_nothing() {
    let _g = serial();
    let name = "ckpt-refusals";
    let _gone = Gone(&["ckpt-refusals"]);
    let _ = run(&["rm", "-f", name]);
    let t = TempDir::new("ckpt-refusals");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    leaves_nothing(|| {
        let o = run(&["run", "-d", "--name", name, "--", "sleep", "60"]);
        assert_ok(&o);
        let one_line = |o: &std::process::Output, want: &str| {
            let err = stderr(o);
            assert_eq!(o.status.code(), Some(125), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(want), "{want}: {err}");
        };
        one_line(
            &run(&["checkpoint", "-o", &dir_s, name]),
            "--checkpointable",
        );
        assert!(!dir.exists());
        one_line(&run(&["checkpoint", "-o", &dir_s, "no-such"]), "no-such");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("x"), "").unwrap();
        one_line(&run(&["restore", "-d", "-i", &dir_s]), "--input");
        one_line(&run(&["restore", "-i", &dir_s]), "--input");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let o = run(&["inspect", name]);
        assert_eq!(o.status.code(), Some(0));
        let _ = run(&["rm", "-f", name]);
    });
}

/// Start a checkpointable detached sandbox `name` with `flags` and `cmd`; wait until its log
/// has `lines` lines.
fn start_counting(name: &str, flags: &[&str], cmd: &[&str], lines: usize) {
    let _ = run(&["rm", "-f", name]);
    let mut args = vec!["run", "-d", "--checkpointable", "--name", name];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(cmd);
    let o = run(&args);
    assert_ok(&o);
    let ok = poll_for(15, || {
        (stdout(&run(&["logs", name])).lines().count() >= lines).then_some(())
    });
    assert!(ok.is_some(), "{name}: {}", stdout(&run(&["logs", name])));
}

/// The numbers of `echo N` lines of a sandbox's log.
fn echoed(name: &str) -> (Vec<u64>, String) {
    let log = stdout(&run(&["logs", name]));
    let n = log
        .lines()
        .filter_map(|l| l.strip_prefix("echo ")?.parse().ok())
        .collect();
    (n, log)
}

/// A TCP connection inside the sandbox (the probe's echo server and its one client on lo)
/// survives a save and restore with --tcp-established: the client goes on over the same
/// connection. Without the flag CRIU refuses the dump, nucleus says so in one line, and the
/// sandbox goes on.
#[test]
fn an_established_tcp_connection_survives_with_tcp_established() {
    let _g = serial();
    let name = "ckpt-tcp";
    let _gone = Gone(&["ckpt-tcp"]);
    let t = TempDir::new("ckpt-tcp");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    let vol = format!("{}:/probe:ro", probe().display());
    leaves_nothing(|| {
        start_counting(name, &["-v", &vol], &["/probe", "tcp_echo=7000"], 3);
        let o = run(&["checkpoint", "-o", &dir_s, name]);
        if !criu_runs_here_or_rm(&o, name) {
            return;
        }
        // Without the flag: refused, one line, running on, nothing written.
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("tcp-established"), "{}", stderr(&o));
        assert!(!dir.exists());
        // The log the error names is kept (with the sandbox's record, not in DIR).
        let err = stderr(&o);
        let log = err
            .rsplit_once("(log: ")
            .and_then(|(_, l)| l.split(')').next())
            .unwrap_or_else(|| panic!("no log named: {err}"));
        assert!(log.ends_with("/checkpoint.log"), "{err}");
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.contains("Error ("), "{text}");
        let before = echoed(name).0.len();
        assert!(poll_for(5, || (echoed(name).0.len() > before).then_some(())).is_some());
        let o = run(&["checkpoint", "--tcp-established", "-o", &dir_s, name]);
        assert_ok(&o);
        let last = echoed(name).0;
        assert!(last.is_empty(), "its record and log went with the save");
        let o = run(&["restore", "-d", "-i", &dir_s]);
        assert_ok(&o);
        let (n, log) = poll_for(10, || {
            let (n, log) = echoed(name);
            (n.len() >= 3 || log.contains("broken")).then_some((n, log))
        })
        .expect("the restored client echoes");
        assert!(!log.contains("broken"), "{log}");
        assert!(
            n[0] > before as u64 && n.windows(2).all(|w| w[1] == w[0] + 1),
            "{log}"
        );
        let _ = run(&["rm", "-f", name]);
    });
}

/// The restored sandbox is back in a cgroup with its limits: its processes are in it, and a
/// command that allocates past --memory is OOM-killed there.
#[test]
fn limits_hold_after_a_restore() {
    let _g = serial();
    let name = "ckpt-limits";
    let _gone = Gone(&["ckpt-limits"]);
    let t = TempDir::new("ckpt-limits");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    let vol = format!("{}:/probe:ro", probe().display());
    leaves_nothing(|| {
        start_counting(
            name,
            &["-v", &vol, "--memory", "64M", "--rm"],
            &["sh", "-c", "while :; do echo .; sleep 0.2; done"],
            2,
        );
        let o = run(&["checkpoint", "-o", &dir_s, name]);
        if !criu_runs_here_or_rm(&o, name) {
            return;
        }
        assert_ok(&o);
        // (--rm: its monitor removed the record as the dump ended it; the save stands.)
        assert_ne!(run(&["inspect", name]).status.code(), Some(0));
        let o = run(&["restore", "-d", "-i", &dir_s]);
        assert_ok(&o);
        let v: serde_json::Value = serde_json::from_slice(&run(&["inspect", name]).stdout).unwrap();
        let pid = v["pid"].as_i64().unwrap();
        let cgroups: Vec<String> = v["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let mem = cgroups
            .iter()
            .find_map(|c| {
                std::fs::read_to_string(format!("{c}/memory.max"))
                    .or_else(|_| std::fs::read_to_string(format!("{c}/memory.limit_in_bytes")))
                    .ok()
                    .map(|l| (c.clone(), l))
            })
            .expect("a memory cgroup");
        assert_eq!(mem.1.trim(), (64u64 << 20).to_string(), "{mem:?}");
        let procs = std::fs::read_to_string(format!("{}/cgroup.procs", mem.0)).unwrap();
        assert!(
            procs.lines().any(|p| p == pid.to_string()),
            "{pid} not in {procs}"
        );
        let o = run(&["exec", name, "--", "/probe", "alloc_mib=200"]);
        assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
        let _ = run(&["rm", "-f", name]);
    });
}

/// A shell moves its own standard descriptors for a moment for each redirection of a builtin
/// (`: </dev/null`): a checkpoint in the middle of that still names the files CRIU finds once
/// the sandbox is frozen (CI saw "Can't lookup mount=21 for fd=0 path=/dev/null" when the ids
/// were read from the workload's descriptors). Saved five times running, each save succeeds.
#[test]
fn a_shell_busy_redirecting_its_own_descriptors_is_saved() {
    let _g = serial();
    let name = "ckpt-redirects";
    let _gone = Gone(&["ckpt-redirects"]);
    let t = TempDir::new("ckpt-redirects");
    leaves_nothing(|| {
        start_counting(
            name,
            &[],
            &[
                "sh",
                "-c",
                "echo ready; while :; do : </dev/null >/dev/null 2>/dev/null; done",
            ],
            1,
        );
        for i in 0..5 {
            let dir = t.path().join(format!("image{i}")).display().to_string();
            let o = run(&["checkpoint", "--leave-running", "-o", &dir, name]);
            if !criu_runs_here_or_rm(&o, name) {
                return;
            }
            assert_ok(&o);
        }
        let o = run(&["rm", "-f", name]);
        assert_ok(&o);
    });
}

/// --leave-running: the source runs on; its image restored under another name is a copy with
/// an id, a cgroup and a host id range of its own, and both count on independently. Under the
/// saved name (taken) the restore is refused in one line.
#[test]
fn leave_running_then_a_copy_runs_beside_its_source() {
    let _g = serial();
    let name = "ckpt-leave";
    let _gone = Gone(&["ckpt-leave", "ckpt-leave-2"]);
    let copy = "ckpt-leave-2";
    let _ = run(&["rm", "-f", copy]);
    let t = TempDir::new("ckpt-leave");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    leaves_nothing(|| {
        start_counting(
            name,
            &[],
            &[
                "sh",
                "-c",
                "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done",
            ],
            3,
        );
        let before = counted(name);
        let o = run(&["checkpoint", "--leave-running", "-o", &dir_s, name]);
        if !criu_runs_here_or_rm(&o, name) {
            return;
        }
        assert_ok(&o);
        let saved_at = counted(name).len();
        assert!(poll_for(5, || (counted(name).len() > saved_at + 2).then_some(())).is_some());
        let o = run(&["restore", "-d", "-i", &dir_s]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("--name"), "{}", stderr(&o));
        let o = run(&["restore", "-d", "-i", &dir_s, "--name", copy]);
        assert_ok(&o);
        let again = poll_for(10, || {
            let c = counted(copy);
            (c.len() >= 2).then_some(c)
        })
        .expect("the copy counts");
        // On from the save: past what was logged before it, one by one.
        assert!(
            again[0] > *before.last().unwrap(),
            "{before:?} then {again:?}"
        );
        assert!(again.windows(2).all(|w| w[1] == w[0] + 1), "{again:?}");
        // Both count on, each in its own range and cgroup.
        let (a, b) = (counted(name).len(), counted(copy).len());
        assert!(poll_for(5, || {
            (counted(name).len() > a && counted(copy).len() > b).then_some(())
        })
        .is_some());
        let look = |n: &str| -> (String, String) {
            let v: serde_json::Value =
                serde_json::from_slice(&run(&["inspect", n]).stdout).unwrap();
            let pid = v["pid"].as_i64().unwrap();
            (
                std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap(),
                v["cgroups"].to_string(),
            )
        };
        let (src, cp) = (look(name), look(copy));
        assert_ne!(src.0, cp.0, "one host id range");
        assert_ne!(src.1, cp.1, "one cgroup");
        let _ = run(&["rm", "-f", name]);
        let _ = run(&["rm", "-f", copy]);
    });
}

/// Without -d the restore is a foreground run: the sandbox's output on its stdout, counting on
/// from the save; SIGTERM to it reaches the workload (its trap exits 3), whose status is the
/// restore's; its record is gone after.
#[test]
fn a_foreground_restore_relays_output_signals_and_status() {
    use std::io::BufRead;
    let _g = serial();
    let name = "ckpt-fg";
    let _gone = Gone(&["ckpt-fg"]);
    let t = TempDir::new("ckpt-fg");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    leaves_nothing(|| {
        start_counting(
            name,
            &[],
            &[
                "sh",
                "-c",
                "trap 'exit 3' TERM; i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done",
            ],
            3,
        );
        let before = counted(name);
        let o = run(&["checkpoint", "-o", &dir_s, name]);
        if !criu_runs_here_or_rm(&o, name) {
            return;
        }
        assert_ok(&o);
        let mut child = nucleus(&["restore", "-i", &dir_s])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut got: Vec<u64> = Vec::new();
        while got.len() < 3 {
            let l = rx
                .recv_timeout(std::time::Duration::from_secs(15))
                .expect("the restored count on the restore's stdout");
            got.push(l.trim().parse().unwrap_or_else(|_| panic!("{l:?}")));
        }
        assert!(got[0] > *before.last().unwrap(), "{before:?} then {got:?}");
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let st = wait_within(&mut child, std::time::Duration::from_secs(30), "restore");
        assert_eq!(st.code(), Some(3));
        assert_ne!(
            run(&["inspect", name]).status.code(),
            Some(0),
            "its record stayed"
        );
    });
}

/// A restore that CRIU cannot finish (an image cut short) is one line and leaves nothing: no
/// record, cgroup, mount or process; a restore of the intact image then works.
#[test]
fn a_failed_restore_leaves_nothing() {
    let _g = serial();
    let name = "ckpt-broken";
    let _gone = Gone(&["ckpt-broken"]);
    let t = TempDir::new("ckpt-broken");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    start_counting(
        name,
        &[],
        &["sh", "-c", "while :; do echo .; sleep 0.2; done"],
        2,
    );
    let o = run(&["checkpoint", "-o", &dir_s, name]);
    if !criu_runs_here_or_rm(&o, name) {
        return;
    }
    assert_ok(&o);
    let pages = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pages-")
        })
        .expect("a pages image");
    let whole = std::fs::read(&pages).unwrap();
    std::fs::write(&pages, &whole[..whole.len() / 2]).unwrap();
    leaves_nothing(|| {
        let o = run(&["restore", "-d", "-i", &dir_s]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("restore"), "{}", stderr(&o));
        assert_ne!(run(&["inspect", name]).status.code(), Some(0));
    });
    std::fs::write(&pages, &whole).unwrap();
    leaves_nothing(|| {
        let o = run(&["restore", "-d", "-i", &dir_s]);
        assert_ok(&o);
        let _ = run(&["rm", "-f", name]);
    });
}

/// `f` on a thread of its own in a new network namespace with its loopback up: the bridge and
/// its tables are made there, never in the host's (the processes `f` starts inherit it).
fn in_own_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare with a constant flag; it changes this thread's namespace only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
        let o = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .output()
            .unwrap_or_else(|e| panic!("ip (iproute2): {e}"));
        assert!(o.status.success(), "{}", stderr(&o));
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The host ends of bridge `br`'s ports ("NAME state"), from `ip -o link show master BR`.
fn ports_of(br: &str) -> Vec<String> {
    let o = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", br])
        .output()
        .unwrap_or_else(|e| panic!("ip (iproute2): {e}"));
    stdout(&o)
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?.split('@').next()?;
            let up = l.contains(",UP") || l.contains("<UP");
            Some(format!("{name} {}", if up { "up" } else { "down" }))
        })
        .collect()
}

/// A bridged sandbox with egress rules, saved while the host has a TCP connection open to it
/// (`--tcp-established`): restored, its host port is on the bridge again (same name, up), its
/// address is the same, the host's connection goes on, and its egress rules hold again (an
/// allowed port of the gateway reachable, another refused and reported as an event by the new
/// runtime: its refusal log was made again). In a network namespace of the test's own.
#[test]
fn a_bridged_sandbox_keeps_its_address_connection_and_egress_rules() {
    let _g = serial();
    let name = "ckpt-bridge";
    let _gone = Gone(&["ckpt-bridge", "ckpt-bridge-2"]);
    let br = "nuckpt0";
    let _ = run(&["rm", "-f", name]);
    let t = TempDir::new("ckpt-bridge");
    let dir = t.path().join("image");
    let dir_s = dir.display().to_string();
    let events = t.path().join("events.jsonl");
    let events_s = events.display().to_string();
    let vol = format!("{}:/probe:ro", probe().display());
    leaves_nothing(move || {
        in_own_netns(move || {
            use std::io::{BufRead, BufReader, Write};
            // The gateway's services the sandbox tries: 7101 allowed, 7102 not.
            for port in [7101u16, 7102] {
                let l = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
                std::thread::spawn(move || for _ in l.incoming() {});
            }
            // (busybox: the test VM has no other shell tools.)
            let tries = "/probe tcp_serve=7100 & \
                 while :; do for p in 7101 7102; do \
                   busybox nc -w 2 10.123.0.1 $p </dev/null >/dev/null 2>&1 \
                     && echo \"port $p open\" || echo \"port $p refused\"; \
                 done; sleep 0.3; done";
            start_counting(
                name,
                &[
                    "--network",
                    "bridge",
                    "--bridge",
                    br,
                    "--subnet",
                    "10.123.0.0/24",
                    "--egress-allow",
                    "10.123.0.1",
                    "--egress-tcp-port",
                    "7101",
                    "--events-jsonl",
                    &events_s,
                    "-v",
                    &vol,
                ],
                &["sh", "-c", tries],
                4,
            );
            let log = || stdout(&run(&["logs", name]));
            let both = || {
                poll_for(15, || {
                    let l = log();
                    (l.contains("port 7101 open") && l.contains("port 7102 refused")).then_some(l)
                })
            };
            let l = both().unwrap_or_else(|| panic!("{}", log()));
            assert!(!l.contains("port 7101 refused"), "{l}");
            assert!(!l.contains("port 7102 open"), "{l}");
            let addr = || {
                let o = run(&[
                    "exec", name, "--", "busybox", "ip", "-4", "addr", "show", "eth0",
                ]);
                let out = stdout(&o);
                out.split_whitespace()
                    .skip_while(|w| *w != "inet")
                    .nth(1)
                    .map(|a| a.split('/').next().unwrap().to_string())
                    .unwrap_or_else(|| panic!("no address: {out} {}", stderr(&o)))
            };
            let ip = addr();
            let ports = ports_of(br);
            assert!(ports.len() == 1 && ports[0].ends_with(" up"), "{ports:?}");
            let conn = std::net::TcpStream::connect((ip.as_str(), 7100)).unwrap();
            conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut w = conn;
            let mut echo = |n: &str| {
                writeln!(w, "{n}").unwrap();
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                line.trim().to_string()
            };
            assert_eq!(echo("1"), "1");
            let o = run(&["checkpoint", "--tcp-established", "-o", &dir_s, name]);
            if !criu_runs_here_or_rm(&o, name) {
                return;
            }
            assert_ok(&o);
            let refused_before = std::fs::read_to_string(&events)
                .unwrap_or_default()
                .matches("egress_refused")
                .count();
            assert!(refused_before > 0, "no refusal reported before the save");
            let o = run(&["restore", "-d", "-i", &dir_s]);
            assert_ok(&o);
            // The same port again, on the bridge and up; the same address.
            assert_eq!(ports_of(br), ports);
            assert_eq!(addr(), ip);
            // The host's connection goes on.
            assert_eq!(echo("2"), "2");
            // Its egress rules again, and refusals reported by the new runtime.
            let l = both().unwrap_or_else(log);
            assert!(
                l.contains("port 7101 open") && l.contains("port 7102 refused"),
                "{l}"
            );
            assert!(!l.contains("port 7102 open"), "{l}");
            let more = poll_for(10, || {
                let n = std::fs::read_to_string(&events)
                    .unwrap_or_default()
                    .matches("egress_refused")
                    .count();
                (n > refused_before).then_some(n)
            });
            assert!(more.is_some(), "no refusal reported after the restore");
            // A copy beside its running source would need the source's addresses: refused in
            // one line, the source running on.
            let again = t.path().join("again").display().to_string();
            let o = run(&[
                "checkpoint",
                "--leave-running",
                "--tcp-established",
                "-o",
                &again,
                name,
            ]);
            assert_ok(&o);
            let o = run(&["restore", "-d", "-i", &again, "--name", "ckpt-bridge-2"]);
            assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
            assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
            assert!(stderr(&o).contains("bridged"), "{}", stderr(&o));
            assert_eq!(echo("3"), "3");
            let o = run(&["rm", "-f", name]);
            assert_ok(&o);
        })
    });
}
