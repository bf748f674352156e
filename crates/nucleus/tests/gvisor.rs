//! `--runtime gvisor` (#23): sandboxes run by gVisor's runsc (Debian's, `--gvisor-platform
//! ptrace`: the only platform this VM runs), checked from inside (gVisor's kernel, the files
//! the plan gives it, exit codes and signals) and outside (cgroups, records, processes: nothing
//! left, also after kill -9 of the runtime).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

const GV: [&str; 4] = ["--runtime", "gvisor", "--gvisor-platform", "ptrace"];

fn gv_run(flags: &[&str], cmd: &[&str]) -> std::process::Output {
    let mut a = vec!["run"];
    a.extend(GV);
    a.extend(flags);
    a.push("--");
    a.extend(cmd);
    run(&a)
}

/// No process of runsc's whose command line names `id` (runsc-sandbox, runsc-gofer, runsc).
fn runsc_processes(id: &str) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("runsc") && cmd.contains(id) {
            out.push(cmd);
        }
    }
    out
}

#[test]
fn the_workload_runs_on_gvisors_kernel_and_its_exit_code_is_the_runs() {
    let _g = serial();
    leaves_nothing(|| {
        let o = gv_run(
            &["--events-fd", "2"],
            &["sh", "-c", "uname -r; dmesg | head -1; id -u; exit 3"],
        );
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "4.4.0", "{out}");
        assert!(lines[1].contains("Starting gVisor"), "{out}");
        assert_eq!(lines[2], "0");
        // The events say what ran it, and which protections are gVisor's.
        let started: Value = stderr(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == "started")
            .unwrap_or_else(|| panic!("no started event: {}", stderr(&o)));
        let p = &started["protections"];
        assert_eq!(p["runtime"], "gvisor", "{p}");
        assert_eq!(p["root_switch"], "gvisor", "{p}");
        assert_eq!(p["seccomp"], "gvisor");
        assert_eq!(p["landlock"], "not_applicable");
        assert_eq!(p["gvisor"]["platform"], "ptrace");
        assert_eq!(p["gvisor"]["runsc"], "/usr/bin/runsc");
    });
}

#[test]
fn the_workload_suite_runs_under_gvisor() {
    let _g = serial();
    leaves_nothing(|| {
        let script = r#"set -e
python3 -c 'import threading, multiprocessing as m; t = threading.Thread(target=print, args=("thread",)); t.start(); t.join(); print(m.Pool(2).map(abs, [-1, -2]))'
printf 'int main(void){return 0;}' > /tmp/a.c && gcc -o /tmp/a /tmp/a.c && /tmp/a && echo gcc
cd /tmp && git init -q r && echo git
node -e 'console.log("node", 1 + 1)'
echo abc | sha256sum
"#;
        let o = gv_run(&[], &["sh", "-c", script]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            stdout(&o),
            "thread\n[1, 2]\ngcc\ngit\nnode 2\nedeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb  -\n"
        );
    });
}

#[test]
fn files_in_and_out_follow_the_plan() {
    let _g = serial();
    let t = TempDir::new("gv-files");
    let ws = t.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("in"), "from the host\n").unwrap();
    leaves_nothing(|| {
        // Read-write workspace: a file written inside is on the host.
        let w = ws.to_str().unwrap();
        let o = gv_run(
            &["--workspace", w],
            &["sh", "-c", "cat /workspace/in; echo made > /workspace/out"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "from the host\n");
        assert_eq!(std::fs::read_to_string(ws.join("out")).unwrap(), "made\n");
        // Read-only: writes fail, the host is unchanged.
        let o = gv_run(
            &["--workspace", w, "--workspace-mode", "bind-ro"],
            &["sh", "-c", "echo x > /workspace/ro || echo refused"],
        );
        assert_eq!(stdout(&o), "refused\n", "{}", stderr(&o));
        assert!(!ws.join("ro").exists());
        // Copy in and out: the sandbox's changes come back once it ends.
        let o = gv_run(
            &["--workspace", w, "--workspace-mode", "copy-in-out"],
            &[
                "sh",
                "-c",
                "echo copied > /workspace/back; cat /workspace/in",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(ws.join("back")).unwrap(),
            "copied\n"
        );
        // The context (a read-only copy, as native's) and a read-only volume.
        let ctx = t.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("c"), "context\n").unwrap();
        let vol = format!("{}:/data:ro", ws.display());
        let o = gv_run(
            &["--context", ctx.to_str().unwrap(), "-v", &vol],
            &[
                "sh",
                "-c",
                "cat /context/c; (echo x > /context/c2) 2>/dev/null || echo ctx-ro; cat /data/in; (echo y > /data/z) 2>/dev/null || echo vol-ro",
            ],
        );
        assert_eq!(
            stdout(&o),
            "context\nctx-ro\nfrom the host\nvol-ro\n",
            "{}",
            stderr(&o)
        );
        assert!(!ctx.join("c2").exists() && !ws.join("z").exists());
        // The root is read-only, /tmp is gVisor's tmpfs with the plan's size; /etc is the view.
        let o = gv_run(
            &["--tmpfs", "/scratch:1m"],
            &[
                "sh",
                "-c",
                "touch /new 2>/dev/null || echo ro-root; dd if=/dev/zero of=/scratch/f bs=64k count=64 2>/dev/null || echo full; test -s /etc/os-release && echo etc",
            ],
        );
        assert_eq!(stdout(&o), "ro-root\nfull\netc\n", "{}", stderr(&o));
    });
}

#[test]
fn signals_timeouts_and_missing_programs_behave_as_native() {
    let _g = serial();
    leaves_nothing(|| {
        let o = gv_run(&[], &["sh", "-c", "kill -TERM $$"]);
        assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
        let o = gv_run(&[], &["/no/such/program"]);
        assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
        let began = Instant::now();
        let o = gv_run(&["--timeout", "1s"], &["sleep", "100"]);
        assert!(
            matches!(o.status.code(), Some(143) | Some(137)),
            "{:?} {}",
            o.status,
            stderr(&o)
        );
        assert!(began.elapsed() < Duration::from_secs(30));
        // SIGTERM to the runtime reaches the workload (runsc kill).
        let mut a = vec!["run"];
        a.extend(GV);
        a.extend([
            "--",
            "sh",
            "-c",
            "trap 'echo term; exit 7' TERM; while :; do sleep 0.1; done",
        ]);
        let mut c = nucleus(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        // SAFETY: kill(2) of the runtime this test started.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let st = wait_within(&mut c, DEADLINE, "runtime");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut c.stdout.take().unwrap(), &mut out).unwrap();
        assert_eq!((st.code(), out.as_str()), (Some(7), "term\n"));
    });
}

#[test]
fn a_detached_gvisor_sandbox_has_the_lifecycle_verbs() {
    let _g = serial();
    let _ = run(&["rm", "-f", "gv1"]);
    leaves_nothing(|| {
        let mut a = vec![
            "run",
            "-d",
            "--name",
            "gv1",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "1s",
        ];
        a.extend(GV);
        a.extend([
            "--",
            "sh",
            "-c",
            "trap 'echo term; exit 7' TERM; echo up; while :; do sleep 0.1; done",
        ]);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        let o = run(&["ps", "--format", "json"]);
        let ps: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
        let me = ps.iter().find(|s| s["id"] == id.as_str()).unwrap();
        assert_eq!(me["status"], "running", "{me}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while stdout(&run(&["logs", "gv1"])) != "up\n" && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(stdout(&run(&["logs", "gv1"])), "up\n");
        assert!(!runsc_processes(&id).is_empty());
        // ps ID: the processes inside gVisor (runsc ps: the sentry's pids), JSON the host's.
        let o = run(&["ps", "gv1"]);
        let table = stdout(&o);
        assert!(
            table.starts_with("UID") && table.contains("sleep"),
            "{table}"
        );
        let o = run(&["ps", "gv1", "--format", "json"]);
        let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap();
        assert!(pids.len() >= 3, "{pids:?}");
        // exec: runsc exec, with the plan's environment and the caller's changes.
        let o = run(&[
            "exec",
            "-u",
            "1000:1000",
            "-e",
            "X=y",
            "-w",
            "/tmp",
            "gv1",
            "--",
            "sh",
            "-c",
            "echo $X $(id -u) $(pwd); touch /tmp/ok; exit 4",
        ]);
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        assert_eq!(stdout(&o), "y 1000 /tmp\n");
        let o = run(&["exec", "gv1", "--", "/no/such/program"]);
        assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
        // exec --json --capture (the agent interface's) and --timeout.
        let o = run(&[
            "exec",
            "--json",
            "--capture",
            "gv1",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (&j["exit_code"], &j["stdout"], &j["stderr"]),
            (
                &Value::from(3),
                &Value::from("out\n"),
                &Value::from("err\n")
            ),
            "{j}"
        );
        let began = Instant::now();
        let o = run(&[
            "exec",
            "--json",
            "--capture",
            "--timeout",
            "1s",
            "gv1",
            "--",
            "sleep",
            "30",
        ]);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (&j["exit_code"], &j["timed_out"]),
            (&Value::from(124), &Value::from(true))
        );
        assert!(began.elapsed() < Duration::from_secs(8), "{j}");
        // The health check (an exec) sees what the exec made.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = run(&["inspect", "gv1"]);
            let rec: Value = serde_json::from_slice(&o.stdout).unwrap();
            if rec["health"] == "healthy" {
                break;
            }
            assert!(Instant::now() < deadline, "never healthy: {rec}");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Verbs that would reach into its files from the host are refused, one line.
        let o = run(&["cp", "gv1:/etc/hostname", "/tmp/x"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("gVisor"), "{}", stderr(&o));
        let o = run(&["exec", "-d", "gv1", "--", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("--detach"), "{}", stderr(&o));
        // exec -t: runsc's terminal, relayed.
        let o = run(&[
            "exec",
            "-t",
            "gv1",
            "--",
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo terminal",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("terminal"), "{}", stdout(&o));
        let o = run(&["stop", "-t", "5", "gv1"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = run(&["inspect", "gv1"]);
        let rec: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(rec["status"], "stopped", "{rec}");
        // stop's SIGTERM reached the workload itself (through ginit and runsc kill), which
        // ended as it chose.
        assert_eq!(rec["exit"]["code"], 7, "{rec}");
        assert!(stdout(&run(&["logs", "gv1"])).ends_with("term\n"));
        assert!(
            runsc_processes(&id).is_empty(),
            "{:?}",
            runsc_processes(&id)
        );
        let o = run(&["rm", "gv1"]);
        assert!(o.status.success(), "{}", stderr(&o));
    });
}

#[test]
fn kill_9_of_the_runtime_takes_runscs_processes_along() {
    let _g = serial();
    leaves_nothing(|| {
        let mut a = vec!["run", "--name", "gvk"];
        a.extend(GV);
        a.extend(["--", "sleep", "1000"]);
        let mut c = nucleus(&a).stdin(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let id = loop {
            let o = run(&["ps", "--format", "json"]);
            let ps: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
            if let Some(s) = ps
                .iter()
                .find(|s| s["name"] == "gvk" && s["status"] == "running")
            {
                break s["id"].as_str().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "never running");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(!runsc_processes(&id).is_empty());
        c.kill().unwrap();
        wait_within(&mut c, DEADLINE, "runtime");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !runsc_processes(&id).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            runsc_processes(&id).is_empty(),
            "{:?}",
            runsc_processes(&id)
        );
        // The record is lost; rm removes it with its bundle.
        let o = run(&["rm", "gvk"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!state_root().join(&id).exists());
    });
}

#[test]
fn what_gvisor_cannot_honour_is_one_line_and_leaves_nothing() {
    let _g = serial();
    leaves_nothing(|| {
        for (flags, flag) in [
            (vec!["--network", "slirp"], "--network"),
            (
                vec![
                    "--network",
                    "bridge",
                    "--attach",
                    "bridge=b2,subnet=10.89.0.0/24",
                ],
                "--attach",
            ),
            (vec!["--seccomp-allow", "ptrace"], "--seccomp-allow"),
            (vec!["--time-offset", "10"], "--time-offset"),
        ] {
            let o = gv_run(&flags, &["true"]);
            assert_eq!(o.status.code(), Some(125), "{flags:?}");
            let e = stderr(&o);
            assert_eq!(e.trim().lines().count(), 1, "{e}");
            assert!(e.contains(flag) && e.contains("gvisor"), "{e}");
        }
        // An unknown platform or runtime.
        for bad in [
            vec![
                "run",
                "--runtime",
                "gvisor",
                "--gvisor-platform",
                "vm",
                "--",
                "true",
            ],
            vec!["run", "--runtime", "qemu", "--", "true"],
        ] {
            let o = run(&bad);
            assert_eq!(o.status.code(), Some(125), "{bad:?}");
            assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
        }
        // gVisor's flags without it.
        let o = run(&["run", "--gvisor-platform", "ptrace", "--", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("--gvisor-platform"), "{}", stderr(&o));
        // A runsc that is not there, or not root's: never a native run instead.
        let t = TempDir::new("gv-bad");
        let fake = t.path().join("runsc");
        std::fs::write(&fake, "#!/bin/sh\necho ran > /dev/stderr\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let f = fake.to_str().unwrap();
        let o = run(&["run", "--runtime", "gvisor", "--runsc", f, "--", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("--runsc") && stderr(&o).contains("writable"),
            "{}",
            stderr(&o)
        );
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let o = output_within(
            nucleus(&["run", "--runtime", "gvisor", "--", "true"])
                .env("PATH", empty.as_path())
                .env_remove("NUCLEUS_RUNSC")
                .stdin(Stdio::null()),
            DEADLINE,
        );
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("runsc not found"), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1);
    });
}

#[test]
fn limits_hold_runscs_processes() {
    let _g = serial();
    leaves_nothing(|| {
        // Memory: the cgroup holds the sentry; a breach kills it, so the whole sandbox (137).
        let o = gv_run(
            &["--memory", "96m", "--events-fd", "2"],
            &[
                "python3",
                "-c",
                "b = bytearray(400 << 20); print('allocated')",
            ],
        );
        assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
        assert!(!stdout(&o).contains("allocated"));
        let exited: Value = stderr(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == "exited")
            .unwrap();
        assert_eq!(exited["oom_killed"], true, "{exited}");
        // pids: host tasks, gVisor's ptrace stubs among them (one per process inside): a
        // workload past the limit ends its own sandbox, nothing else (the runtime reports it
        // and cleans up).
        let o = gv_run(
            &["--pids", "64", "--events-fd", "2"],
            &[
                "sh",
                "-c",
                "for i in $(seq 1 100); do sleep 3 & done; wait; echo done",
            ],
        );
        assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
        let exited: Value = stderr(&o)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == "exited")
            .unwrap();
        assert!(
            exited["usage"]["pids_limit_hits"].as_u64().unwrap() > 0,
            "{exited}"
        );
    });
}

#[test]
fn create_start_pause_and_restart_a_gvisor_sandbox() {
    let _g = serial();
    // (A run that failed half-way left its name: not this one's business to keep failing.)
    let _ = run(&["rm", "-f", "gv2"]);
    leaves_nothing(|| {
        let mut a = vec!["create", "--name", "gv2"];
        a.extend(GV);
        a.extend([
            "--",
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
        ]);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let status = || {
            let o = run(&["inspect", "gv2"]);
            serde_json::from_slice::<Value>(&o.stdout).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(status(), "created");
        let o = run(&["start", "gv2"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let count = || -> u64 {
            let o = run(&["exec", "gv2", "--", "cat", "/tmp/n"]);
            stdout(&o).trim().parse().unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while count() < 5 {
            assert!(Instant::now() < deadline, "the workload never counted");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Paused: the counter stands still (read once unpaused: exec waits for that).
        let o = run(&["pause", "gv2"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(status(), "paused");
        let o = run(&["unpause", "gv2"]);
        assert!(o.status.success(), "{}", stderr(&o));
        // The counter's progress over a paused second against a running one (each measured
        // the same way, exec's own time included: a loaded machine slows both alike).
        let before = count();
        run(&["pause", "gv2"]);
        std::thread::sleep(Duration::from_millis(1000));
        run(&["unpause", "gv2"]);
        let paused = count() - before;
        let b2 = count();
        std::thread::sleep(Duration::from_millis(1000));
        let running = count() - b2;
        assert!(
            paused * 2 < running,
            "counted {paused} in a paused second, {running} in a running one"
        );
        // Restart: a new sandbox of the same id, counting from 1 again.
        let o = run(&["restart", "gv2"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = count();
            if c > 0 && c < before {
                break;
            }
            assert!(Instant::now() < deadline, "not restarted: {c}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let o = run(&["rm", "-f", "gv2"]);
        assert!(o.status.success(), "{}", stderr(&o));
    });
}

#[test]
fn tty_gives_the_workload_a_terminal() {
    let _g = serial();
    leaves_nothing(|| {
        let o = gv_run(
            &["--tty"],
            &[
                "sh",
                "-c",
                "test -t 0 && test -t 1 && echo terminal; exit 3",
            ],
        );
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stdout(&o).contains("terminal"), "{}", stdout(&o));
    });
}

#[test]
fn create_with_a_console_socket_hands_over_the_terminal() {
    use std::io::BufRead;
    let _g = serial();
    let t = TempDir::new("gv-console");
    let sock = t.path().join("console.sock");
    let mut rx = std::process::Command::new("python3")
        .args(["-c", CONSOLE_RECEIVER, sock.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(rx.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    leaves_nothing(|| {
        let mut a = vec!["create", "-t", "--console-socket", sock.to_str().unwrap()];
        a.extend(GV);
        a.extend(["--", "sh", "-c", "test -t 1 && echo on-a-tty"]);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        let o = run(&["start", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        wait_within(&mut rx, DEADLINE, "rx");
        assert!(rest.contains("name /dev/ptmx"), "{rest}");
        assert!(rest.contains("on-a-tty"), "{rest}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = run(&["rm", &id]);
            if o.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "{}", stderr(&o));
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// A caller's stdout that is a regular file opened without O_APPEND: gVisor would write at an
/// offset of its own, from 0, over what the file held; through a pipe it goes on after it.
#[test]
fn output_to_a_file_goes_on_after_what_it_held() {
    let _g = serial();
    let t = TempDir::new("gv-out");
    let path = t.path().join("out");
    leaves_nothing(|| {
        let mut f = std::fs::File::create(&path).unwrap();
        std::io::Write::write_all(&mut f, b"before the run\n").unwrap();
        let mut a = vec!["run"];
        a.extend(GV);
        a.extend(["--", "echo", "hi"]);
        let st = nucleus(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "before the run\nhi\n"
        );
    });
}
