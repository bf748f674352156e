//! nucleus as an OCI runtime (runc's command line): bundles created, started, signalled and
//! deleted as podman's conmon and containerd's shim drive them. The test process is the
//! containers' subreaper, as those supervisors are: a container outlives `create`, and its
//! exit status comes to us.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Orphaned containers come to this process (once per test binary).
fn subreaper() {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0);
}

/// Wait for a container process (our child once `create` left); its exit code, or 128 + the
/// signal that ended it.
fn reap(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: waitpid on our own child with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(r, pid, "waitpid {pid}");
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        128 + libc::WTERMSIG(st)
    }
}

/// A bundle: a busybox root and runc's default config.json with `args`, changed by `edit`.
fn bundle(t: &TempDir, args: &[&str], edit: impl FnOnce(&mut Value)) {
    let root = t.path().join("rootfs");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is required (scripts/test.sh installs it)");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../nucleus-spec/tests/oci/runc-spec.json"
    ))
    .unwrap();
    let mut c: Value = serde_json::from_str(&spec).unwrap();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(args);
    c["process"]["env"] = json!(["PATH=/bin", "GREETING=hello"]);
    edit(&mut c);
    std::fs::write(t.path().join("config.json"), c.to_string()).unwrap();
}

/// `nucleus create --bundle B --pid-file P ID` with the container's stdout and stderr going to
/// files (as conmon gives it pipes it reads on its own): the pid.
fn create(t: &TempDir, id: &str, extra: &[&str]) -> (Output, Option<i32>) {
    let pid_file = t.path().join("pid");
    let _ = std::fs::remove_file(&pid_file);
    // (Appending, as a log is written: CRIU restores a regular file only in append mode, whose
    // size it cannot check, into another file: the checkpoint test's.)
    let _ = std::fs::remove_file(t.path().join("out"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(t.path().join("out"))
        .unwrap();
    let b = t.s();
    let p = pid_file.display().to_string();
    let mut args = vec!["create", "--bundle", &b, "--pid-file", &p];
    args.extend_from_slice(extra);
    args.push(id);
    let err = t.path().join("err");
    let mut c = nucleus(&args);
    c.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    // Not output_within: it pipes stdout and stderr, which the container holds open.
    let what = format!("{c:?}");
    let mut child = c.spawn().unwrap();
    let status = wait_within(&mut child, DEADLINE, &what);
    // nucleus's own lines (the container, still waiting for start, has written nothing).
    let o = Output {
        status,
        stdout: vec![],
        stderr: std::fs::read(&err).unwrap(),
    };
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .map(|s| s.trim().parse().unwrap());
    (o, pid)
}

fn state(id: &str) -> Value {
    let o = run(&["state", id]);
    assert!(o.status.success(), "state {id}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn a_bundle_is_created_started_and_deleted_as_runc_does_it() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-life");
    bundle(
        &t,
        &[
            "sh",
            "-c",
            "echo $GREETING from $(hostname); busybox id -u; busybox grep -E 'CapEff|NoNewPrivs' /proc/self/status; \
             busybox ls /dev | busybox tr '\\n' ' '; echo; touch /x 2>/dev/null || echo ro-root; \
             busybox wc -c < /proc/timer_list; busybox ls /sys/firmware | busybox wc -l; echo pid=$$",
        ],
        |_| {},
    );
    let id = "oci-life";
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pid = pid.expect("create wrote no --pid-file");
        let s = state(id);
        assert_eq!(s["status"], "created");
        assert_eq!(s["pid"], pid);
        assert_eq!(s["bundle"], t.s());
        // Set up, not yet running its program: nothing written.
        assert_eq!(std::fs::read_to_string(t.path().join("out")).unwrap(), "");
        let o = run(&["start", id]);
        assert!(o.status.success(), "{}", stderr(&o));
        // A second start is refused: it runs (or ran) already.
        let again = run(&["start", id]);
        assert_eq!(again.status.code(), Some(125));
        assert_eq!(reap(pid), 0);
        let out = std::fs::read_to_string(t.path().join("out")).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "hello from runc", "{out}");
        assert_eq!(lines[1], "0");
        // runc's default: AUDIT_WRITE, KILL, NET_BIND_SERVICE; no_new_privs.
        assert!(lines[2].ends_with("0000000020000420"), "{out}");
        assert!(lines[3].ends_with('1'), "{out}");
        // Its own /dev: the default devices and links, nothing of the host's.
        for d in [
            "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
            "fd",
        ] {
            assert!(lines[4].split(' ').any(|e| e == d), "/dev lacks {d}: {out}");
        }
        assert!(
            !lines[4].contains("sda") && !lines[4].contains("kmsg"),
            "{out}"
        );
        assert_eq!(lines[5], "ro-root");
        // maskedPaths: /proc/timer_list reads as /dev/null, /sys/firmware is an empty directory.
        assert_eq!(lines[6].trim(), "0");
        assert_eq!(lines[7].trim(), "0");
        // The workload is the container's PID 1 (no init of nucleus's).
        assert_eq!(lines[8], "pid=1");
        assert_eq!(state(id)["status"], "stopped");
        let o = run(&["delete", id]);
        assert!(o.status.success(), "{}", stderr(&o));
    });
}

#[test]
fn delete_refuses_a_running_container_unless_forced_and_kill_signals_it() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-kill");
    bundle(&t, &["sleep", "1000"], |c| {
        c["process"]["args"] = json!(["/bin/busybox", "sleep", "1000"]);
    });
    let id = "oci-kill";
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pid = pid.unwrap();
        assert!(run(&["start", id]).status.success());
        assert_eq!(state(id)["status"], "running");
        let o = run(&["delete", id]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("is running"), "{}", stderr(&o));
        // The same id cannot be created twice.
        let (o, _) = create(&t, id, &[]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
        assert_eq!(state(id)["status"], "running");
        let o = run(&["kill", id, "KILL"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(reap(pid), 128 + libc::SIGKILL);
        assert_eq!(state(id)["status"], "stopped");
        assert!(run(&["delete", id]).status.success());
        // A created container (never started) goes with delete, killed.
        let (o, pid) = create(&t, id, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(run(&["delete", id]).status.success());
        assert_eq!(reap(pid.unwrap()), 128 + libc::SIGKILL);
        // --force deletes a running one.
        let (_, pid) = create(&t, id, &[]);
        assert!(run(&["start", id]).status.success());
        assert!(run(&["delete", "--force", id]).status.success());
        assert_eq!(reap(pid.unwrap()), 128 + libc::SIGKILL);
    });
}

#[test]
fn bad_bundles_get_one_line_naming_the_field_and_leave_nothing() {
    let _g = serial();
    let t = TempDir::new("oci-bad");
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|c| c["ociVersion"] = json!("2.0.0")), "ociVersion"),
        (
            Box::new(|c| c["process"]["cwd"] = json!("relative")),
            "process.cwd",
        ),
        (
            Box::new(|c| c["hooks"] = json!({"prestart": [{"path": "true"}]})),
            "hooks.prestart[0].path",
        ),
        (
            Box::new(|c| c["linux"]["sysctl"] = json!({"kernel.panic": "1"})),
            "linux.sysctl.kernel.panic",
        ),
        (
            Box::new(|c| c["process"]["user"]["uid"] = json!("root")),
            "process.user.uid",
        ),
        // A net sysctl in a "joined" namespace that is the runtime's own (the host's) would
        // change the host: refused at create, before anything is written.
        (
            Box::new(|c| {
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                ns.retain(|n| n["type"] != "network");
                ns.push(json!({"type": "network", "path": "/proc/self/ns/net"}));
                c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            }),
            "runtime's own namespace",
        ),
        (
            Box::new(|c| c["root"]["path"] = json!("no-such-rootfs")),
            "no-such-rootfs",
        ),
    ];
    for (edit, field) in cases {
        bundle(&t, &["true"], |c| edit(c));
        leaves_nothing(|| {
            let (o, pid) = create(&t, "oci-bad", &[]);
            assert_eq!(o.status.code(), Some(125), "{field}: {}", stderr(&o));
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(field), "{field}: {err}");
            assert!(pid.is_none());
        });
        std::fs::remove_dir_all(t.path().join("rootfs")).unwrap();
    }
    // systemd's cgroup driver where systemd is not PID 1 (this host; the systemd test
    // proves the driver under systemd).
    if !Path::new("/run/systemd/system").is_dir() {
        bundle(&t, &["true"], |_| {});
        leaves_nothing(|| {
            let o = run(&["--systemd-cgroup", "create", "--bundle", &t.s(), "oci-bad"]);
            assert_eq!(o.status.code(), Some(125));
            assert!(
                stderr(&o).contains("--systemd-cgroup: systemd is not PID 1"),
                "{}",
                stderr(&o)
            );
        });
    }
    // Not JSON at all.
    std::fs::write(t.path().join("config.json"), "{").unwrap();
    let (o, _) = create(&t, "oci-bad", &[]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
    // --log with --log-format json: the error is a JSON line in the file too (conmon and
    // containerd's shim read it from there).
    let log = t.path().join("log.json");
    let o = run(&[
        "--log",
        &log.display().to_string(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        &t.s(),
        "oci-bad",
    ]);
    assert_eq!(o.status.code(), Some(125));
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("config.json"));
}

#[test]
fn an_images_symlinks_cannot_lead_mounts_out_of_its_root() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-hostile");
    let outside = TempDir::new("oci-hostile-outside");
    bundle(&t, &["sh", "-c", "busybox ls /dev/shm; echo done"], |_| {});
    let root = t.path().join("rootfs");
    // /dev/shm is where runc's config mounts a tmpfs: a link in the image pointing out of it
    // (absolute and through ..) must land inside the root.
    std::fs::remove_dir(root.join("dev")).unwrap();
    std::fs::create_dir_all(root.join("devdir")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../..{}", outside.s()),
        root.join("dev"),
    )
    .unwrap();
    leaves_nothing(|| {
        let (o, pid) = create(&t, "oci-hostile", &[]);
        if o.status.success() {
            let pid = pid.unwrap();
            assert!(run(&["start", "oci-hostile"]).status.success());
            assert_eq!(reap(pid), 0);
            assert!(run(&["delete", "oci-hostile"]).status.success());
        }
        // Whatever happened inside, nothing was made or mounted in the host directory.
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "the image's link led a mount out of its root"
        );
    });
    // proc refuses any symlink on its way (as runc since CVE-2019-19921).
    bundle(&t, &["true"], |_| {});
    std::fs::remove_dir(root.join("proc")).unwrap();
    std::os::unix::fs::symlink("tmp", root.join("proc")).unwrap();
    leaves_nothing(|| {
        let (o, _) = create(&t, "oci-hostile", &[]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(stderr(&o).contains("/proc"), "{}", stderr(&o));
    });
}

#[test]
fn exec_process_joins_a_running_container_detached_or_not() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-exec");
    bundle(&t, &["/bin/busybox", "sleep", "1000"], |c| {
        c["hostname"] = json!("box");
    });
    let id = "oci-exec";
    let process = |args: &[&str]| {
        let p = t.path().join("process.json");
        let v = json!({
            "args": args,
            "cwd": "/",
            "env": ["PATH=/bin", "WHO=exec"],
            "user": {"uid": 0, "gid": 0},
            "noNewPrivileges": true,
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        });
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    };
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pid = pid.unwrap();
        assert!(run(&["start", id]).status.success());
        // Attached: its status is exec's.
        let p = process(&[
            "sh",
            "-c",
            "echo $WHO in $(hostname); busybox grep CapEff /proc/self/status; exit 3",
        ]);
        let o = run(&["exec", "--process", &p, id]);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.starts_with("exec in box\n"), "{out}");
        assert!(out.trim_end().ends_with("0000000000000020"), "{out}");
        // Detached (as conmon and the shim call it): the process is left to us, its pid in
        // the file.
        let p = process(&["sh", "-c", "echo detached > /dev/shm/mark"]);
        let pid_file = t.path().join("exec.pid");
        let o = run(&[
            "exec",
            "--process",
            &p,
            "--detach",
            "--pid-file",
            &pid_file.display().to_string(),
            id,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let epid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(reap(epid), 0);
        let o = run(&[
            "exec",
            "--process",
            &process(&["busybox", "cat", "/dev/shm/mark"]),
            id,
        ]);
        assert_eq!(stdout(&o), "detached\n", "{}", stderr(&o));
        // A process.json that does not parse: the field, and nothing started.
        let bad = t.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"args":["true"],"cwd":"/","user":{"uid":"x","gid":0}}"#,
        )
        .unwrap();
        let o = run(&["exec", "--process", &bad.display().to_string(), id]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("process.user.uid"), "{}", stderr(&o));
        assert!(run(&["delete", "--force", id]).status.success());
        assert_eq!(reap(pid), 128 + libc::SIGKILL);
    });
}

#[test]
fn tmpcopyup_starts_a_tmpfs_with_what_the_image_had_there() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-copyup");
    bundle(
        &t,
        &["sh", "-c", "busybox cat /etc/hello; busybox stat -c '%u:%g %a' /etc/hello; echo new > /etc/new && echo writable"],
        |c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.push(json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                "options": ["rw", "nosuid", "nodev", "tmpcopyup"]}));
        },
    );
    let hello = t.path().join("rootfs/etc/hello");
    std::fs::write(&hello, "from the image\n").unwrap();
    std::os::unix::fs::chown(&hello, Some(1234), Some(2345)).unwrap();
    std::fs::set_permissions(&hello, std::os::unix::fs::PermissionsExt::from_mode(0o604)).unwrap();
    leaves_nothing(|| {
        let (o, pid) = create(&t, "oci-copyup", &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(run(&["start", "oci-copyup"]).status.success());
        assert_eq!(reap(pid.unwrap()), 0);
        let out = std::fs::read_to_string(t.path().join("out")).unwrap();
        assert_eq!(out, "from the image\n1234:2345 604\nwritable\n");
        // The image's directory itself is untouched (the write went to the tmpfs).
        assert!(!t.path().join("rootfs/etc/new").exists());
        assert!(run(&["delete", "oci-copyup"]).status.success());
    });
}

#[test]
fn features_and_spec_say_what_the_runtime_does() {
    let o = run(&["features"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("mount")));
    // Every hook kind is run (the hooks test proves each); what is refused is not claimed.
    assert_eq!(
        f["hooks"],
        json!([
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ])
    );
    assert_eq!(f["linux"]["apparmor"]["enabled"], false);
    let t = TempDir::new("oci-spec");
    let o = run(&["spec", "--bundle", &t.s()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(c["root"]["path"], "rootfs");
    // Never over an existing config.json.
    let o = run(&["spec", "--bundle", &t.s()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
}

#[test]
fn the_pid_file_is_never_written_through_a_planted_link() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-pidlink");
    bundle(&t, &["true"], |_| {});
    // A link where the runtime makes its temporary pid file, pointing at a file it must not
    // write.
    let victim = t.path().join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    std::os::unix::fs::symlink(&victim, t.path().join(".pid.tmp")).unwrap();
    leaves_nothing(|| {
        let (o, pid) = create(&t, "oci-pidlink", &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(pid.is_some());
        assert!(run(&["delete", "oci-pidlink"]).status.success());
        assert_eq!(reap(pid.unwrap()), 128 + libc::SIGKILL);
    });
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
}

#[test]
fn device_rules_and_sysctls_hold_inside_and_touch_nothing_outside() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-devsys");
    let host_range =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    bundle(
        &t,
        &["sh", "-c", "echo x > /dev/null && echo null-ok; busybox mknod /dev/t c 10 200 2>/dev/null && echo made || echo denied; busybox cat /proc/sys/net/ipv4/ip_unprivileged_port_start"],
        |c| {
            // CAP_MKNOD kept: only the device cgroup (runc's deny-all) stops it.
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set].as_array_mut().unwrap().push(json!("CAP_MKNOD"));
            }
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "81"});
        },
    );
    leaves_nothing(|| {
        let (o, pid) = create(&t, "oci-devsys", &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(run(&["start", "oci-devsys"]).status.success());
        assert_eq!(reap(pid.unwrap()), 0);
        let out = std::fs::read_to_string(t.path().join("out")).unwrap();
        // The devices every container has stay usable (v1 rules, or v2's device program).
        assert_eq!(out, "null-ok\ndenied\n81\n");
        assert!(run(&["delete", "oci-devsys"]).status.success());
    });
    // The sysctl was the container's network namespace's, not the host's.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_range
    );
}

/// Wait until a container reports `want` (a run in the foreground made it).
fn await_status(id: &str, want: &str) {
    let t0 = std::time::Instant::now();
    loop {
        let o = run(&["state", id]);
        if o.status.success() && stdout(&o).contains(&format!("\"status\": \"{want}\"")) {
            return;
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "{id} never became {want}: {}",
            stdout(&o)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn run_in_the_foreground_passes_signals_and_the_status_and_leaves_nothing() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-run");
    let id = "oci-run";
    leaves_nothing(|| {
        // The workload's status is the runtime's, and its record goes with it.
        bundle(&t, &["sh", "-c", "echo out; exit 3"], |_| {});
        let o = output_within(
            nucleus(&["run", "--bundle", &t.s(), id]).stdin(Stdio::null()),
            DEADLINE,
        );
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert_eq!(stdout(&o), "out\n");
        assert!(!run(&["state", id]).status.success());
        // A signal to the runtime is the container's (a shell that traps it, as PID 1).
        bundle(
            &t,
            &[
                "sh",
                "-c",
                "trap 'echo got-term; exit 7' TERM; echo ready; busybox sleep 100 & wait",
            ],
            |_| {},
        );
        let mut c = nucleus(&["run", "--bundle", &t.s(), id]);
        c.stdin(Stdio::null())
            .stdout(std::fs::File::create(t.path().join("out")).unwrap());
        let what = format!("{c:?}");
        let mut child = c.spawn().unwrap();
        await_status(id, "running");
        // (Running: the trap is set once "ready" is written.)
        let t0 = std::time::Instant::now();
        while !std::fs::read_to_string(t.path().join("out"))
            .unwrap()
            .contains("ready")
        {
            assert!(t0.elapsed() < DEADLINE);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let st = wait_within(&mut child, DEADLINE, &what);
        assert_eq!(st.code(), Some(7));
        let out = std::fs::read_to_string(t.path().join("out")).unwrap();
        assert!(out.contains("got-term"), "{out}");
        assert!(!run(&["state", id]).status.success());
    });
}

#[test]
fn run_keeps_the_terminal_of_a_container_that_asks_for_one() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-tty");
    let id = "oci-tty";
    bundle(
        &t,
        &[
            "sh",
            "-c",
            "busybox tty; busybox stty size; echo x=$((6*7))",
        ],
        |c| {
            c["process"]["terminal"] = json!(true);
            // The runtime relays the terminal only after `start`, whose poststart hook holds
            // it here while the program runs: the size must be the terminal's from its
            // opening, not from the runtime's copy (0x0 before it: `stty size` fails).
            c["hooks"] = json!({"poststart": [{"path": "/bin/sleep", "args": ["sleep", "0.5"]}]});
        },
    );
    leaves_nothing(|| {
        let (st, out) = run_at_terminal(nucleus(&["run", "--bundle", &t.s(), id]), 33, 101);
        assert_eq!(st.code(), Some(0), "{out}");
        // Its own terminal (a pts of its devpts), the caller's size, its output relayed.
        assert!(out.contains("/dev/pts/0"), "{out}");
        assert!(out.contains("33 101"), "{out}");
        assert!(out.contains("x=42"), "{out}");
    });
    // process.consoleSize: the size its terminal starts with, where no caller's terminal
    // gives one (the runtime's stdio is not a terminal here).
    bundle(&t, &["sh", "-c", "busybox stty size"], |c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 40, "width": 120});
    });
    leaves_nothing(|| {
        let o = output_within(
            nucleus(&["run", "--bundle", &t.s(), id]).stdin(Stdio::null()),
            DEADLINE,
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("40 120"), "{}", stdout(&o));
    });
}

#[test]
fn runc_verbs_list_ps_events_update_pause_and_kill_all() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-verbs");
    let id = "oci-verbs";
    bundle(
        &t,
        &["sh", "-c", "busybox sleep 1000 & busybox sleep 1000"],
        |c| {
            c["linux"]["resources"] = json!({"memory": {"limit": 104857600}, "pids": {"limit": 50}})
        },
    );
    leaves_nothing(|| {
        // (Its output to a file: the container holds what it is given, as under conmon.)
        let mut c = nucleus(&["run", "--detach", "--bundle", &t.s(), id]);
        c.stdin(Stdio::null())
            .stdout(std::fs::File::create(t.path().join("out")).unwrap())
            .stderr(std::fs::File::create(t.path().join("err")).unwrap());
        let what = format!("{c:?}");
        let st = wait_within(&mut c.spawn().unwrap(), DEADLINE, &what);
        let err = std::fs::read_to_string(t.path().join("err")).unwrap();
        assert!(st.success(), "{err}");
        let pid = state(id)["pid"].as_i64().unwrap() as i32;
        // list: runc's fields.
        let o = run(&["list", "--format", "json"]);
        let all: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let me = all
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{all}"));
        assert_eq!(me["status"], "running");
        assert_eq!(me["pid"], pid);
        assert_eq!(me["bundle"], t.s());
        assert_eq!(me["owner"], "root");
        assert!(stdout(&run(&["list", "-q"])).lines().any(|l| l == id));
        // ps --format json: the pids of its processes (its shell and both sleeps' one left).
        let o = run(&["ps", "--format", "json", id]);
        let pids: Vec<i32> = serde_json::from_str(&stdout(&o)).unwrap();
        assert!(pids.contains(&pid) && pids.len() == 2, "{pids:?}");
        // events --stats: one line of usage.
        let o = run(&["events", "--stats", id]);
        let ev: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(ev["type"], "stats");
        assert_eq!(ev["id"], id);
        assert_eq!(ev["data"]["pids"]["current"], 2, "{ev}");
        assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
        // update --resources - (containerd's shim) and runc's --pids-limit.
        let cgroups: Vec<String> = serde_json::from_value(
            serde_json::from_str::<Value>(&stdout(&run(&["inspect", id]))).unwrap()["cgroups"]
                .clone(),
        )
        .unwrap();
        let file = |name: &str| {
            let ctl = name.split('.').next().unwrap();
            cgroups
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.exists() && (p.to_string_lossy().contains(ctl) || cgroups.len() == 1))
                .unwrap_or_else(|| panic!("{name} in {cgroups:?}"))
        };
        let (mem, pids_max) = if Path::new(&cgroups[0]).join("memory.max").exists() {
            ("memory.max", "pids.max")
        } else {
            ("memory.limit_in_bytes", "pids.max")
        };
        let mut c = nucleus(&["update", "--resources", "-", id]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            br#"{"memory":{"limit":209715200},"pids":{"limit":77}}"#,
        )
        .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(file(mem)).unwrap().trim(),
            "209715200"
        );
        assert_eq!(
            std::fs::read_to_string(file(pids_max)).unwrap().trim(),
            "77"
        );
        assert!(run(&["update", "--pids-limit", "88", id]).status.success());
        assert_eq!(
            std::fs::read_to_string(file(pids_max)).unwrap().trim(),
            "88"
        );
        // A device rule cannot change on a running container: refused by name.
        std::fs::write(
            t.path().join("res.json"),
            r#"{"devices":[{"allow":true,"access":"rwm"}]}"#,
        )
        .unwrap();
        let o = run(&[
            "update",
            "-r",
            &t.path().join("res.json").display().to_string(),
            id,
        ]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("linux.resources.devices"),
            "{}",
            stderr(&o)
        );
        // pause / resume (runc's names).
        assert!(run(&["pause", id]).status.success());
        assert_eq!(state(id)["status"], "paused");
        assert!(run(&["resume", id]).status.success());
        assert_eq!(state(id)["status"], "running");
        // kill --all: every process of it.
        assert!(run(&["kill", "--all", id, "KILL"]).status.success());
        assert_eq!(reap(pid), 128 + libc::SIGKILL);
        assert_eq!(state(id)["status"], "stopped");
        let o = run(&["ps", id]);
        assert_eq!(o.status.code(), Some(125));
        assert!(run(&["delete", id]).status.success());
    });
}

#[test]
fn hooks_run_at_their_points_with_the_state_and_their_failures_stop_the_create() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-hooks");
    let id = "oci-hooks";
    let log = t.path().join("hooks.log");
    let script = t.path().join("hook.py");
    // Each host-side hook appends: its kind, the state's status and id, its environment's
    // FOO, and (runtime hooks) whether the state's pid is in a network namespace of its own.
    std::fs::write(
        &script,
        format!(
            r#"import json, os, sys
kind = sys.argv[1]
s = json.load(sys.stdin)
extra = ""
if kind in ("prestart", "createRuntime"):
    own = os.readlink("/proc/%d/ns/net" % s["pid"]) != os.readlink("/proc/self/ns/net")
    extra = "netns-own" if own else "netns-host"
with open({log:?}, "a") as f:
    f.write("%s %s %s %s %s %s\n" % (kind, s["status"], s["id"], os.environ.get("FOO"), os.environ.get("PATH"), extra))
"#,
            log = log.display().to_string()
        ),
    )
    .unwrap();
    let py = |kind: &str| {
        json!({"path": "/usr/bin/python3", "args": ["python3", script.display().to_string(), kind],
               "env": ["FOO=bar"], "timeout": 30})
    };
    bundle(&t, &["sh", "-c", "cat /hookstate"], |c| {
        c["root"]["readonly"] = json!(false);
        c["hooks"] = json!({
            "prestart": [py("prestart")],
            "createRuntime": [py("createRuntime")],
            "createContainer": [py("createContainer")],
            // In the container: its own sh, its own file system.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /hookstate"]}],
            "poststart": [py("poststart")],
            "poststop": [py("poststop")],
        });
    });
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pid = pid.unwrap();
        let after_create = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            after_create,
            format!(
                "prestart creating {id} bar None netns-own\ncreateRuntime creating {id} bar None netns-own\ncreateContainer creating {id} bar None \n"
            )
        );
        assert!(run(&["start", id]).status.success());
        assert_eq!(reap(pid), 0);
        // startContainer had the state (status created, the host's pid) on stdin.
        let out: Value =
            serde_json::from_str(&std::fs::read_to_string(t.path().join("out")).unwrap()).unwrap();
        assert_eq!(out["status"], "created");
        assert_eq!(out["pid"], pid);
        assert_eq!(out["bundle"], t.s());
        assert!(run(&["delete", id]).status.success());
        let all = std::fs::read_to_string(&log).unwrap();
        assert!(
            all.ends_with(&format!(
                "poststart running {id} bar None \npoststop stopped {id} bar None \n"
            )),
            "{all}"
        );
    });
    // A failing createRuntime hook: create fails naming it, with what it said; poststop
    // still runs; nothing is left.
    std::fs::remove_file(&log).unwrap();
    bundle(&t, &["true"], |c| {
        c["hooks"] = json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no network for you >&2; printf '\\033[2J' >&2; exit 3"]}],
            "poststop": [py("poststop")],
        });
    });
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert_eq!(o.status.code(), Some(125));
        let err = stderr(&o);
        assert!(
            err.contains("hooks.createRuntime[0]")
                && err.contains("exit status: 3")
                && err.contains("no network for you"),
            "{err}"
        );
        // What the hook wrote is shown escaped: its terminal controls never reach ours.
        assert!(
            !err.contains('\u{1b}') && err.contains("\\u{1b}[2J"),
            "{err:?}"
        );
        assert!(pid.is_none());
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!("poststop stopped {id} bar None \n")
        );
    });
    // A hook past its timeout is killed, and fails the create.
    std::fs::remove_dir_all(t.path().join("rootfs")).unwrap();
    bundle(&t, &["true"], |c| {
        c["hooks"] = json!({
            "prestart": [{"path": "/bin/sleep", "args": ["sleep", "100"], "timeout": 1}],
        });
    });
    leaves_nothing(|| {
        let t0 = std::time::Instant::now();
        let (o, _) = create(&t, id, &[]);
        assert_eq!(o.status.code(), Some(125));
        assert!(t0.elapsed() < std::time::Duration::from_secs(20));
        let err = stderr(&o);
        assert!(
            err.contains("hooks.prestart[0]") && err.contains("timed out"),
            "{err}"
        );
    });
}

/// process.ioPriority and scheduler reach the container's program, as the host sees it
/// (ionice, /proc/PID/stat's nice and policy); execCPUAffinity is an exec'd process's
/// (runtime-spec: not the container's own): `final` is its program's CPUs.
#[test]
fn io_priority_scheduler_and_cpu_affinity_reach_the_program() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-tune");
    let id = "oci-tune";
    bundle(&t, &["busybox", "sleep", "1000"], |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    });
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pid = pid.unwrap();
        assert!(run(&["start", id]).status.success());
        let io = Command::new("ionice")
            .args(["-p", &pid.to_string()])
            .output()
            .unwrap();
        assert_eq!(stdout(&io).trim(), "idle", "{}", stderr(&io));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // (Fields after the command's closing parenthesis: nice is the 19th, policy the 41st.)
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        assert_eq!((f[19 - 3], f[41 - 3]), ("7", "3"), "{stat}");
        let p = t.path().join("process.json");
        let v = json!({
            "args": ["busybox", "grep", "Cpus_allowed_list", "/proc/self/status"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": {"initial": "0-1", "final": "0"}
        });
        std::fs::write(&p, v.to_string()).unwrap();
        let o = run(&["exec", "--process", &p.display().to_string(), id]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "Cpus_allowed_list:\t0\n");
        assert!(run(&["delete", "--force", id]).status.success());
        assert_eq!(reap(pid), 128 + libc::SIGKILL);
    });
    // A priority out of the policy's range: refused by the field, nothing left.
    bundle(&t, &["true"], |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 0});
    });
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("process.scheduler.priority"),
            "{}",
            stderr(&o)
        );
        assert!(pid.is_none());
    });
}

/// linux.memoryPolicy is set with set_mempolicy in the container's process: a bind to this
/// machine's node 0 runs; one to a node the machine has not is the kernel's refusal, one line
/// naming the field, and nothing left.
#[test]
fn a_memory_policy_is_set_in_the_container() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-mpol");
    for (nodes, ok) in [("0", true), ("1000", false)] {
        bundle(&t, &["sh", "-c", "echo bound"], |c| {
            c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": nodes});
        });
        leaves_nothing(|| {
            let o = output_within(
                nucleus(&["run", "--bundle", &t.s(), "oci-mpol"]).stdin(Stdio::null()),
                DEADLINE,
            );
            if ok {
                assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
                assert_eq!(stdout(&o), "bound\n");
            } else {
                assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
                let e = stderr(&o);
                assert!(
                    e.contains("linux.memoryPolicy") && e.lines().count() == 1,
                    "{e}"
                );
            }
        });
    }
}

/// linux.netDevices: a host interface (a veth, in a network namespace this test makes)
/// moves into the container's network namespace under the name asked for, and is gone from
/// the host's; one that does not exist is one line naming it, nothing started, nothing left.
#[test]
fn a_host_interface_moves_into_the_container_under_its_new_name() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-netdev");
    let missing = TempDir::new("oci-netdev-missing");
    let list =
        "busybox ip -o link show | busybox cut -d: -f2 | busybox tr -d ' ' | busybox tr '\\n' ' '";
    bundle(&t, &["sh", "-c", list], |c| {
        c["linux"]["netDevices"] = json!({"ntdev0": {"name": "eth7"}});
    });
    bundle(&missing, &["true"], |c| {
        c["linux"]["netDevices"] = json!({"nope0": {}});
    });
    let script = format!(
        r#"set -u
ip link add ntdev0 type veth peer name ntdev1 || exit 90
echo "inside: $({bin} run --bundle {b} oci-netdev </dev/null)"
echo "host-after: $(ip -o link show ntdev0 2>/dev/null | wc -l)"
{bin} run --bundle {m} oci-netdev-missing </dev/null; echo "missing: $?"
"#,
        bin = bin().display(),
        b = t.s(),
        m = missing.s()
    );
    let (out, err) = leaves_nothing(|| {
        let o = output_within(
            Command::new("unshare")
                .args(["-n", "sh", "-c", &script])
                .env("NUCLEUS_ROOT", state_root())
                .stdin(Stdio::null()),
            DEADLINE,
        );
        (stdout(&o), stderr(&o))
    });
    let line = |k: &str| output_line(&out, &err, k);
    // (A veth shows its peer's index: eth7@ifN.)
    assert!(
        line("inside").starts_with("lo eth7@if"),
        "{}\n{err}",
        line("inside")
    );
    assert_eq!(line("host-after"), "0");
    assert_eq!(line("missing"), "125");
    let e: Vec<&str> = err.lines().filter(|l| l.contains("nope0")).collect();
    assert!(e.len() == 1 && e[0].contains("linux.netDevices"), "{err}");
}

#[test]
fn personality_sets_the_execution_domain() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-pers");
    bundle(&t, &["busybox", "uname", "-m"], |c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    leaves_nothing(|| {
        let o = output_within(
            nucleus(&["run", "--bundle", &t.s(), "oci-pers"]).stdin(Stdio::null()),
            DEADLINE,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        // A 32-bit domain on x86_64: the machine reads as i686.
        assert_eq!(stdout(&o), "i686\n");
    });
}

#[test]
fn preserve_fds_passes_exactly_the_descriptors_asked_for() {
    use std::os::unix::process::CommandExt;
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-fds");
    bundle(
        &t,
        &[
            "sh",
            "-c",
            "echo via-fd3 >&3; test -e /proc/$$/fd/4 && echo fd4-leaked || echo no-fd4",
        ],
        |_| {},
    );
    let mut fds = [0; 2];
    // SAFETY: pipe with a valid two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    leaves_nothing(|| {
        let mut c = nucleus(&["run", "--preserve-fds", "1", "--bundle", &t.s(), "oci-fds"]);
        c.stdin(Stdio::null())
            .stdout(std::fs::File::create(t.path().join("out")).unwrap());
        // SAFETY: only dup2 between fork and exec: fd 3 the pipe's write end, fd 4 another
        // open descriptor that is not to be passed.
        unsafe {
            c.pre_exec(move || {
                if libc::dup2(w, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let what = format!("{c:?}");
        let st = wait_within(&mut c.spawn().unwrap(), DEADLINE, &what);
        // SAFETY: closing our write end (the container's copies are gone with it).
        unsafe { libc::close(w) };
        assert!(st.success(), "{what}");
        let mut got = String::new();
        // SAFETY: r is our pipe's read end, owned from here.
        let mut rf = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(r) };
        std::io::Read::read_to_string(&mut rf, &mut got).unwrap();
        assert_eq!(got, "via-fd3\n");
        assert_eq!(
            std::fs::read_to_string(t.path().join("out")).unwrap(),
            "no-fd4\n"
        );
    });
    // Asking for descriptors the caller does not have: one line naming the flag.
    let o = run(&["run", "--preserve-fds", "40", "--bundle", &t.s(), "oci-fds"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--preserve-fds"), "{}", stderr(&o));
}

#[test]
fn a_seccomp_agent_gets_the_listener_and_decides_the_notified_calls() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-agent");
    let sock = t.path().join("agent.sock");
    let said = t.path().join("agent.json");
    // The agent (python: socket.recv_fds and the seccomp notify ioctls): it records the
    // process state it is sent, then fails every notified call with ENOTSUP.
    let agent = r#"
import fcntl, json, socket, struct, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 65536, 4)
st = json.loads(msg)
with open(out, "w") as f:
    json.dump({"fds": st["fds"], "metadata": st["metadata"], "id": st["state"]["id"],
               "status": st["state"]["status"], "pid": st["pid"], "got": len(fds)}, f)
while True:
    buf = bytearray(80)
    try:
        fcntl.ioctl(fds[0], 0xC0502100, buf)  # SECCOMP_IOCTL_NOTIF_RECV
    except OSError:
        break
    nid = struct.unpack_from("Q", buf, 0)[0]
    try:
        fcntl.ioctl(fds[0], 0xC0182101, bytearray(struct.pack("QqiI", nid, 0, -95, 0)))
    except OSError:
        pass
"#;
    let mut a = std::process::Command::new("python3")
        .arg("-c")
        .arg(agent)
        .arg(&sock)
        .arg(&said)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(first_line(&mut a), "ready\n");
    bundle(
        &t,
        &["sh", "-c", "busybox mkdir /tmp/x 2>&1; echo after"],
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": sock.display().to_string(),
                "listenerMetadata": "hello-agent",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
            });
        },
    );
    leaves_nothing(|| {
        let o = output_within(
            nucleus(&["run", "--bundle", &t.s(), "oci-agent"]).stdin(Stdio::null()),
            DEADLINE,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        // The agent's answer (ENOTSUP), not the read-only root's (EROFS).
        assert!(
            stdout(&o).contains("Operation not supported") && stdout(&o).ends_with("after\n"),
            "{}",
            stdout(&o)
        );
    });
    let _ = a.wait();
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&said).unwrap()).unwrap();
    assert_eq!(st["fds"], json!(["seccompFd"]));
    assert_eq!(st["metadata"], "hello-agent");
    assert_eq!(st["id"], "oci-agent");
    assert_eq!(st["got"], 1);
    assert!(st["pid"].as_i64().unwrap() > 1);
    // SCMP_ACT_NOTIFY without an agent is refused by name.
    bundle(&t, &["true"], |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
        });
    });
    let o = run(&["run", "--bundle", &t.s(), "oci-agent"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("listenerPath"), "{}", stderr(&o));
}

#[test]
fn resources_beyond_nucleus_limits_reach_their_cgroup_files() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-res");
    let v2 = !Path::new("/sys/fs/cgroup/memory").exists();
    bundle(
        &t,
        &["sh", "-c", "busybox dd if=/dev/zero of=/tmp/fill bs=1M count=16 2>/dev/null; busybox grep Cpus_allowed_list /proc/self/status | busybox tr -d '\\t'; busybox sleep 1000"],
        |c| {
            // 16 MiB on a tmpfs, counted against the container's memory.
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
            let mut memory = json!({"limit": 104857600, "reservation": 52428800});
            let mut res = json!({"cpu": {"cpus": "0", "mems": "0", "quota": 25000, "period": 50000, "burst": 1000, "idle": 1}});
            if v2 {
                res["unified"] = json!({"memory.high": "94371840"});
                if hugetlb_v2() {
                    res["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
                }
            } else {
                memory["swappiness"] = json!(10);
                memory["kernelTCP"] = json!(8388608);
                memory["disableOOMKiller"] = json!(true);
            }
            res["memory"] = memory;
            c["linux"]["resources"] = res;
        },
    );
    leaves_nothing(|| {
        let (o, pid) = create(&t, "oci-res", &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pid = pid.unwrap();
        assert!(run(&["start", "oci-res"]).status.success());
        let inspect: Value = serde_json::from_str(&stdout(&run(&["inspect", "oci-res"]))).unwrap();
        let cgroups: Vec<String> = serde_json::from_value(inspect["cgroups"].clone()).unwrap();
        let read = |name: &str| {
            cgroups
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.exists())
                .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
                .unwrap_or_else(|| panic!("{name} in {cgroups:?}"))
        };
        assert_eq!(read("cpuset.cpus"), "0");
        assert_eq!(read("cpuset.mems"), "0");
        assert_eq!(read("cpu.idle"), "1");
        if v2 {
            assert_eq!(read("memory.low"), "52428800");
            assert_eq!(read("memory.high"), "94371840");
            assert_eq!(read("cpu.max"), "25000 50000");
            assert_eq!(read("cpu.max.burst"), "1000");
            if hugetlb_v2() {
                assert_eq!(read("hugetlb.2MB.max"), "4194304");
            }
        } else {
            assert_eq!(read("memory.soft_limit_in_bytes"), "52428800");
            assert_eq!(read("memory.swappiness"), "10");
            assert_eq!(read("memory.kmem.tcp.limit_in_bytes"), "8388608");
            assert!(read("memory.oom_control").contains("oom_kill_disable 1"));
            assert_eq!(read("cpu.cfs_period_us"), "50000");
            assert_eq!(read("cpu.cfs_quota_us"), "25000");
            assert_eq!(read("cpu.cfs_burst_us"), "1000");
        }
        // Its processes run on CPU 0 only.
        let t0 = std::time::Instant::now();
        while !std::fs::read_to_string(t.path().join("out"))
            .unwrap()
            .contains("Cpus_allowed_list")
        {
            assert!(t0.elapsed() < DEADLINE);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            std::fs::read_to_string(t.path().join("out")).unwrap(),
            "Cpus_allowed_list:0\n"
        );
        // update --resources (containerd's shim sends the whole object): the period, the
        // burst and a memory limit checked against what the container uses.
        let res = t.path().join("res.json");
        std::fs::write(
            &res,
            json!({"cpu": {"quota": 40000, "period": 80000, "burst": 2000},
                   "memory": {"limit": 104857600, "checkBeforeUpdate": true}})
            .to_string(),
        )
        .unwrap();
        let o = run(&["update", "--resources", &res.to_string_lossy(), "oci-res"]);
        assert!(o.status.success(), "{}", stderr(&o));
        if v2 {
            assert_eq!(read("cpu.max"), "40000 80000");
            assert_eq!(read("cpu.max.burst"), "2000");
        } else {
            assert_eq!(read("cpu.cfs_period_us"), "80000");
            assert_eq!(read("cpu.cfs_burst_us"), "2000");
        }
        // runc's flags: a quota over a period of its own; a period alone is refused.
        let o = run(&[
            "update",
            "--cpu-quota",
            "30000",
            "--cpu-period",
            "60000",
            "oci-res",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        if v2 {
            assert_eq!(read("cpu.max"), "30000 60000");
        } else {
            assert_eq!(read("cpu.cfs_period_us"), "60000");
            assert_eq!(read("cpu.cfs_quota_us"), "30000");
        }
        let o = run(&["update", "--cpu-period", "60000", "oci-res"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("--cpu-period"), "{}", stderr(&o));
        // A limit below what it uses now (its 16 MiB file) is refused by the field; the old
        // one stays.
        std::fs::write(
            &res,
            json!({"memory": {"limit": 8388608, "checkBeforeUpdate": true}}).to_string(),
        )
        .unwrap();
        let o = run(&["update", "--resources", &res.to_string_lossy(), "oci-res"]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("linux.resources.memory.limit"),
            "{}",
            stderr(&o)
        );
        let limit = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        assert_eq!(read(limit), "104857600");
        assert!(run(&["kill", "oci-res", "KILL"]).status.success());
        assert_eq!(reap(pid), 128 + libc::SIGKILL);
        assert!(run(&["delete", "oci-res"]).status.success());
    });
}

/// Whether this is a cgroup-v2 host offering the hugetlb controller.
fn hugetlb_v2() -> bool {
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"))
}

/// A block I/O weight is BFQ's or blk-iocost's file, whichever this kernel has; a kernel
/// with neither refuses the container with a line naming them and leaves nothing.
#[test]
fn a_block_io_weight_is_written_where_the_kernel_has_it_or_refused() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-blkw");
    let v2 = !Path::new("/sys/fs/cgroup/memory").exists();
    bundle(&t, &["busybox", "sleep", "1000"], |c| {
        c["linux"]["resources"] = json!({"blockIO": {"weight": 500}});
    });
    let (files, want) = if v2 {
        (
            ["io.bfq.weight", "io.weight"],
            ["default 500", "default 4950"],
        )
    } else {
        (["blkio.bfq.weight", "blkio.weight"], ["500", "500"])
    };
    leaves_nothing(|| {
        let (o, pid) = create(&t, "oci-blkw", &[]);
        let Some(pid) = pid else {
            assert_eq!(o.status.code(), Some(125));
            let e = stderr(&o);
            assert!(
                e.contains(&format!("none of {}, {}", files[0], files[1]))
                    && e.lines().count() == 1,
                "{e}"
            );
            eprintln!("this kernel has no block I/O weight file: refused as it should be");
            return;
        };
        let inspect: Value = serde_json::from_str(&stdout(&run(&["inspect", "oci-blkw"]))).unwrap();
        let cgroups: Vec<String> = serde_json::from_value(inspect["cgroups"].clone()).unwrap();
        let found = cgroups.iter().find_map(|d| {
            files.iter().zip(want).find_map(|(f, w)| {
                let text = std::fs::read_to_string(Path::new(d).join(f)).ok()?;
                Some((f, text, w))
            })
        });
        let (f, text, w) = found.unwrap_or_else(|| panic!("no weight file in {cgroups:?}"));
        assert!(
            text.contains(w.trim_start_matches("default ")),
            "{f}: {text}"
        );
        assert!(run(&["delete", "--force", "oci-blkw"]).status.success());
        assert_eq!(reap(pid), 128 + libc::SIGKILL);
    });
}

#[test]
fn an_idmapped_bind_shows_the_files_owners_through_its_maps() {
    use std::os::unix::fs::MetadataExt;
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-idmap");
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), "x").unwrap();
    std::os::unix::fs::chown(data.join("f"), Some(1000), Some(1000)).unwrap();
    bundle(
        &t,
        &[
            "sh",
            "-c",
            "busybox stat -c '%u:%g' /data/f; busybox stat -c '%u:%g' /plain/f",
        ],
        |c| {
            let src = data.display().to_string();
            c["mounts"].as_array_mut().unwrap().extend([
                // The files' uid/gid 1000 show as 0 through this bind (its own maps, as
                // written to the idmapping's user namespace: an id on disk is a
                // containerID, shown as its hostID; the container has no user namespace).
                json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "idmap"],
                       "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
                       "gidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}]}),
                json!({"destination": "/plain", "type": "bind", "source": src, "options": ["rbind"]}),
            ]);
        },
    );
    leaves_nothing(|| {
        let o = output_within(
            nucleus(&["run", "--bundle", &t.s(), "oci-idmap"]).stdin(Stdio::null()),
            DEADLINE,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "0:0\n1000:1000\n");
    });
    // The host's file is untouched.
    assert_eq!(std::fs::metadata(data.join("f")).unwrap().uid(), 1000);
    // In a container with a user namespace, `idmap` alone takes the container's maps: a file
    // of host root shows as the container's root (and as nobody through a plain bind).
    std::os::unix::fs::chown(data.join("f"), Some(0), Some(0)).unwrap();
    std::fs::remove_dir_all(t.path().join("rootfs")).unwrap();
    bundle(
        &t,
        &[
            "sh",
            "-c",
            "busybox stat -c '%u:%g' /data/f; busybox stat -c '%u:%g' /plain/f",
        ],
        |c| {
            let src = data.display().to_string();
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["mounts"].as_array_mut().unwrap().extend([
                json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "idmap"]}),
                json!({"destination": "/plain", "type": "bind", "source": src, "options": ["rbind"]}),
            ]);
        },
    );
    // (Mount points the container's root, an unprivileged host uid, could not make.)
    for d in ["data", "plain"] {
        std::fs::create_dir_all(t.path().join("rootfs").join(d)).unwrap();
    }
    leaves_nothing(|| {
        let o = output_within(
            nucleus(&["run", "--bundle", &t.s(), "oci-idmap"]).stdin(Stdio::null()),
            DEADLINE,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "0:0\n65534:65534\n");
    });
    // idmap without maps of its own in a container without a user namespace: refused.
    bundle(&t, &["true"], |c| {
        c["mounts"].as_array_mut().unwrap().push(json!(
            {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}));
    });
    let o = run(&["run", "--bundle", &t.s(), "oci-idmap"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("uidMappings"), "{}", stderr(&o));
}

#[test]
fn a_time_namespace_shifts_the_containers_clocks() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-time");
    bundle(&t, &["sh", "-c", "busybox cut -d. -f1 /proc/uptime"], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 864000},
            "boottime": {"secs": 864000, "nanosecs": 5},
        });
    });
    leaves_nothing(|| {
        let o = output_within(
            nucleus(&["run", "--bundle", &t.s(), "oci-time"]).stdin(Stdio::null()),
            DEADLINE,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let up: u64 = stdout(&o).trim().parse().unwrap();
        let host: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // Ten days later than the host's boot clock, within the run's own time.
        assert!(
            up >= 864000 + host as u64 - 5 && up <= 864000 + host as u64 + 5,
            "{up} vs host {host}"
        );
    });
}

/// The numbers a counter wrote to `f`, one a line.
fn numbers(f: &Path) -> Vec<u64> {
    std::fs::read_to_string(f)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// runc's `checkpoint` and `restore`, as podman's `container checkpoint` and `container
/// restore` call them: a counting container saved with CRIU (it ends), deleted, and restored
/// from its bundle counts on from where it was, into the restore's caller's descriptors (a new
/// file here; conmon's new pipes under podman), as the same process inside (pid 1) with a new
/// pid outside; state, kill and delete work on it. Where CRIU cannot run (Debian's 3.17 on
/// Linux >= 6.13) the refusal is one line and the container runs on; the test VM runs it all.
#[test]
fn a_container_is_checkpointed_and_restored_from_its_bundle() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-ckpt");
    let id = "oci-ckpt";
    let (vol_a, vol_b) = (t.path().join("vol-a"), t.path().join("vol-b"));
    std::fs::create_dir_all(&vol_a).unwrap();
    std::fs::create_dir_all(&vol_b).unwrap();
    let vol_at_dump = vol_a.display().to_string();
    let _ = run(&["delete", "--force", id]);
    bundle(
        &t,
        &[
            "sh",
            "-c",
            // (Between numbers the shell moves its own descriptors for each builtin it
            // redirects: the checkpoint names them as the caller gave them, not as a moment
            // of the process shows them.)
            "echo pid $$; i=0; while :; do i=$((i+1)); echo $i; echo $i >/data/n; j=0; \
             while [ $j -lt 300 ]; do : </dev/null >/dev/null 2>/dev/null; j=$((j+1)); done; \
             done",
        ],
        |c| {
            // A volume: restored from the source the restore's config.json gives (runc's
            // mapping), not from where it was at the dump.
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/data", "type": "bind", "source": vol_at_dump,
                "options": ["rbind", "rw"]
            }));
        },
    );
    let images = t.path().join("images").display().to_string();
    let work = t.path().join("work").display().to_string();
    leaves_nothing(|| {
        let (o, pid) = create(&t, id, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pid = pid.unwrap();
        assert!(run(&["start", id]).status.success());
        let out = t.path().join("out");
        let counted = |f: &Path, n: usize| {
            let t0 = std::time::Instant::now();
            while numbers(f).len() < n {
                assert!(
                    t0.elapsed() < DEADLINE,
                    "{}",
                    std::fs::read_to_string(f).unwrap_or_default()
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            numbers(f)
        };
        counted(&out, 3);
        // What nucleus does not do is one line naming the flag; nothing changes.
        for (flag, more) in [
            ("--pre-dump", None),
            ("--lazy-pages", None),
            ("--manage-cgroups-mode", Some("loose")),
        ] {
            let mut args = vec!["checkpoint", "--image-path", &images, flag];
            args.extend(more);
            args.push(id);
            let o = run(&args);
            assert_eq!(o.status.code(), Some(125), "{flag}: {}", stderr(&o));
            assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
            assert!(stderr(&o).contains(flag), "{}", stderr(&o));
        }
        assert!(!Path::new(&images).exists());
        assert_eq!(state(id)["status"], "running");
        let o = run(&[
            "checkpoint",
            "--image-path",
            &images,
            "--work-path",
            &work,
            id,
        ]);
        let err = stderr(&o);
        if o.status.code() == Some(125) && err.contains("cannot run on Linux") {
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                std::env::var_os("VMRUN").is_none(),
                "CRIU must run in the test VM: {err}"
            );
            eprintln!(
                "oci checkpoint: {} here; it runs in the test VM",
                err.trim()
            );
            assert_eq!(state(id)["status"], "running");
            assert!(run(&["delete", "--force", id]).status.success());
            assert_eq!(reap(pid), 137);
            return;
        }
        assert_eq!(o.status.code(), Some(0), "{err}");
        // CRIU ended it; its record says stopped, for delete (as podman then calls it), or for
        // a restore of the same id, which replaces it (runc's checkpoint then restore).
        assert_eq!(reap(pid), 137);
        let before = numbers(&out);
        assert_eq!(state(id)["status"], "stopped");
        // The volume moves (another host's path): config.json says where it is now.
        let cfg = t.path().join("config.json");
        let moved = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(&vol_at_dump, &vol_b.display().to_string());
        std::fs::write(&cfg, moved).unwrap();
        let at_dump = std::fs::read_to_string(vol_a.join("n")).unwrap();
        let out2 = t.path().join("out2");
        let pid_file = t.path().join("pid2");
        let b = t.s();
        let p = pid_file.display().to_string();
        let mut c = nucleus(&[
            "restore",
            "-d",
            "--image-path",
            &images,
            "--work-path",
            &work,
            "--bundle",
            &b,
            "--pid-file",
            &p,
            id,
        ]);
        let errf = t.path().join("restore-err");
        c.stdin(Stdio::null())
            .stdout(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&out2)
                    .unwrap(),
            )
            .stderr(std::fs::File::create(&errf).unwrap());
        let what = format!("{c:?}");
        let st = wait_within(&mut c.spawn().unwrap(), DEADLINE, &what);
        let said = std::fs::read_to_string(&errf).unwrap_or_default();
        let log = std::fs::read_to_string(t.path().join("work/restore.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        assert_eq!(st.code(), Some(0), "{said}\n{}", tail.join("\n"));
        let pid2: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let again = counted(&out2, 3);
        // On from the last number saved, one by one, the same shell (pid 1 inside).
        assert!(
            again[0] > *before.last().unwrap(),
            "{before:?} then {again:?}"
        );
        assert!(again.windows(2).all(|w| w[1] == w[0] + 1), "{again:?}");
        // It writes to the volume's new source; the old one keeps what it had at the dump.
        let t0 = std::time::Instant::now();
        while numbers(&vol_b.join("n"))
            .first()
            .is_none_or(|n| n <= before.last().unwrap())
        {
            assert!(
                t0.elapsed() < DEADLINE,
                "nothing written to the moved volume"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(std::fs::read_to_string(vol_a.join("n")).unwrap(), at_dump);
        let s = state(id);
        assert_eq!(s["status"], "running");
        assert_eq!(s["pid"], pid2);
        assert!(run(&["kill", id, "KILL"]).status.success());
        assert_eq!(reap(pid2), 137);
        assert!(run(&["delete", id]).status.success());
    });
}

/// A container whose standard descriptors are a terminal (the caller's tty handed over as its
/// stdin, no process.terminal) is refused by `checkpoint` in one line before anything is
/// written or CRIU is asked (on any host), and runs on.
#[test]
fn checkpoint_refuses_a_container_on_a_terminal() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-ckpt-tty");
    let id = "oci-ckpt-tty";
    let _ = run(&["delete", "--force", id]);
    bundle(&t, &["sh", "-c", "sleep 1000"], |_| {});
    let images = t.path().join("images");
    leaves_nothing(|| {
        let (_master, slave) = openpty(None);
        let pid_file = t.path().join("pid");
        let (b, p) = (t.s(), pid_file.display().to_string());
        let mut c = nucleus(&["create", "--bundle", &b, "--pid-file", &p, id]);
        let errf = t.path().join("create-err");
        c.stdin(slave.try_clone().unwrap())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errf).unwrap());
        let what = format!("{c:?}");
        let st = wait_within(&mut c.spawn().unwrap(), DEADLINE, &what);
        assert!(
            st.success(),
            "{}",
            std::fs::read_to_string(&errf).unwrap_or_default()
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(run(&["start", id]).status.success());
        let o = run(&[
            "checkpoint",
            "--image-path",
            &images.display().to_string(),
            id,
        ]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("descriptor 0 is /dev/pts/"),
            "{}",
            stderr(&o)
        );
        assert!(!images.exists());
        assert_eq!(state(id)["status"], "running");
        assert!(run(&["kill", id, "KILL"]).status.success());
        assert_eq!(reap(pid), 137);
        assert!(run(&["delete", id]).status.success());
    });
}

/// The CRIU a restore runs is an outside program: it starts as any program does (no signal
/// blocked, although the runtime blocks the ones it relays; none of the caller's descriptors
/// but the ones CRIU is told of), its failure is one line with its last error, and nothing
/// is left. A fake CRIU (a shell script, so this runs on any host) records what it got.
#[test]
fn a_restores_criu_starts_clean_and_its_failure_leaves_nothing() {
    subreaper();
    let _g = serial();
    let t = TempDir::new("oci-fake-criu");
    let id = "oci-fake-criu";
    let _ = run(&["delete", "--force", id]);
    bundle(&t, &["sh", "-c", "sleep 1000"], |_| {});
    let images = t.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let info = json!({
        "version": 1, "id": id, "stdio": [], "netns_external": false, "dumped_pid": 4242,
        "options": {
            "tcp_established": false, "ext_unix_sk": false, "shell_job": false,
            "file_locks": false, "manage_cgroups_mode": null
        }
    });
    std::fs::write(images.join("nucleus-oci.json"), info.to_string()).unwrap();
    let seen = t.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    // (Root's, 0755: nucleus runs no CRIU another user could change.)
    let criu = t.path().join("criu");
    std::fs::write(
        &criu,
        format!(
            r#"#!/bin/sh
[ "$1" = --version ] && {{ echo "Version: 4.1"; exit 0; }}
grep '^SigBlk' /proc/$$/status > {seen}/signals
ls -l /proc/$$/fd > {seen}/fds
log=; while [ $# -gt 0 ]; do case "$1" in -D) log=${{log:-$2}};; -W) log=$2;; esac; shift; done
echo "(00.010) Error (criu/fake.c:7): fake criu refuses" > "$log/restore.log"
exit 1
"#,
            seen = seen.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&criu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let marker = t.path().join("callers-own-file");
    std::fs::write(&marker, b"").unwrap();
    leaves_nothing(|| {
        // The caller leaves a descriptor open (9) for the runtime to pass on, or not.
        let m = std::fs::File::open(&marker).unwrap();
        let mfd = std::os::fd::AsRawFd::as_raw_fd(&m);
        let (criu_s, images_s, b) = (
            criu.display().to_string(),
            images.display().to_string(),
            t.s(),
        );
        let mut c = nucleus(&[
            "--criu",
            &criu_s,
            "restore",
            "--image-path",
            &images_s,
            "--bundle",
            &b,
            id,
        ]);
        // SAFETY: dup2 in the forked child before exec, on a descriptor open here.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                if libc::dup2(mfd, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = output_within(c.stdin(Stdio::null()), DEADLINE);
        drop(m);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("fake criu refuses"), "{err}");
        let signals = std::fs::read_to_string(seen.join("signals")).unwrap();
        assert_eq!(signals.trim(), "SigBlk:\t0000000000000000", "{signals}");
        let fds = std::fs::read_to_string(seen.join("fds")).unwrap();
        assert!(!fds.contains("callers-own-file"), "{fds}");
        assert!(!run(&["state", id]).status.success(), "no record is left");
    });
}
