//! `nucleus exec` as an agent's tool call (#21): a time limit that takes the whole tree, a
//! structured result (`--json`, `--capture`), a user, a file as input; the exec'd tree dies
//! with its client and never lingers under the sandbox's init.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A session's tool calls.
trait Calls {
    fn call(&self, flags: &[&str], cmd: &[&str]) -> Value;
    fn processes(&self) -> Vec<String>;
}

impl Calls for Session {
    /// `exec --json --capture [flags] -- cmd`: the result object.
    fn call(&self, flags: &[&str], cmd: &[&str]) -> Value {
        let mut a = vec!["exec", "--json", "--capture"];
        a.extend_from_slice(flags);
        a.push(&self.0);
        a.push("--");
        a.extend_from_slice(cmd);
        let o = run(&a);
        let line = stdout(&o).lines().last().unwrap_or_default().to_string();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{cmd:?}: not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)));
        assert_eq!(
            o.status.code(),
            v["exit_code"].as_i64().map(|c| c as i32),
            "{v}"
        );
        v
    }
    /// The command lines of the sandbox's processes (its cgroup's).
    fn processes(&self) -> Vec<String> {
        let o = run(&["ps", "--format", "json", &self.0]);
        let pids: Vec<i32> = serde_json::from_slice(&o.stdout).unwrap_or_default();
        pids.iter()
            .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .collect()
    }
}

#[test]
fn a_session_of_tool_calls_gets_structured_results_and_leaves_nothing() {
    let _g = serial();
    let s = Session::new(&["--memory", "128m"]);
    let baseline = s.processes();
    let t0 = Instant::now();
    for i in 0..40 {
        // Success, with output.
        let v = s.call(&[], &["sh", "-c", &format!("echo call-{i}")]);
        assert_eq!(v["exit_code"], 0, "{v}");
        assert_eq!(v["stdout"], format!("call-{i}\n"), "{v}");
        assert_eq!(v["timed_out"], false);
        // Failure, on stderr.
        let v = s.call(&[], &["sh", "-c", "echo oops >&2; exit 3"]);
        assert_eq!(
            (v["exit_code"].as_i64(), v["stderr"].as_str()),
            (Some(3), Some("oops\n")),
            "{v}"
        );
        // Huge output: kept up to the cap, counted, flagged.
        let v = s.call(
            &["--capture-max", "64k"],
            &["head", "-c", "3000000", "/dev/zero"],
        );
        assert_eq!(
            v["stdout"].as_str().unwrap().len(),
            65536,
            "{}",
            v["stdout_bytes"]
        );
        assert_eq!(v["stdout_bytes"], 3_000_000);
        assert_eq!(v["stdout_truncated"], true);
        // A signal.
        let v = s.call(&[], &["sh", "-c", "kill -9 $$"]);
        assert_eq!(
            (v["exit_code"].as_i64(), v["signal"].as_i64()),
            (Some(137), Some(9)),
            "{v}"
        );
        // A command that does not exist.
        let v = s.call(&[], &["no-such-command"]);
        assert_eq!(v["exit_code"], 127, "{v}");
    }
    // A timeout with children in the background: all of it is killed.
    for _ in 0..5 {
        let t = Instant::now();
        let v = s.call(
            &["--timeout", "0.5"],
            &["sh", "-c", "sleep 1000 & sleep 1000 & sleep 1000"],
        );
        assert_eq!(
            (v["exit_code"].as_i64(), v["timed_out"].as_bool()),
            (Some(124), Some(true)),
            "{v}"
        );
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    }
    // Background children of a command that ended are gone with it.
    let v = s.call(&[], &["sh", "-c", "sleep 1000 & echo started"]);
    assert_eq!(v["stdout"], "started\n", "{v}");
    // OOM inside a call is that call's.
    let v = s.call(&[], &["python3", "-c", "x = bytearray(400 << 20)"]);
    assert_eq!(v["oom_killed"], true, "{v}");
    let v = s.call(&[], &["true"]);
    assert_eq!(v["oom_killed"], false, "{v}");
    // CPU time and memory of the call.
    let v = s.call(
        &[],
        &[
            "python3",
            "-c",
            "x = bytearray(50 << 20); sum(range(3000000))",
        ],
    );
    assert!(v["cpu_usec"].as_u64().unwrap() > 10_000, "{v}");
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 50 << 20, "{v}");
    assert!(v["duration_ms"].as_f64().unwrap() > 0.0, "{v}");
    eprintln!("{} calls in {:?}", 40 * 5 + 9, t0.elapsed());
    // Nothing any call started is left in the sandbox.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.processes(), baseline);
}

#[test]
fn the_exec_tree_dies_with_its_client() {
    let _g = serial();
    let s = Session::new(&[]);
    let baseline = s.processes();
    let mut c = nucleus(&[
        "exec",
        &s.0,
        "--",
        "sh",
        "-c",
        "sleep 1000 & sleep 1000 & wait",
    ])
    .stdin(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let t0 = Instant::now();
    while s.processes().iter().filter(|p| *p == "sleep 1000").count() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            s.processes()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill().unwrap();
    c.wait().unwrap();
    let t0 = Instant::now();
    while s.processes() != baseline {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "left after the client's SIGKILL: {:?}",
            s.processes()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn user_and_input_file() {
    let _g = serial();
    let s = Session::new(&["-u", "1000"]);
    let t = TempDir::new("exec-stdin");
    let input = t.path().join("in.txt");
    std::fs::write(&input, "line one\nline two\n").unwrap();
    let inp = input.display().to_string();
    let v = s.call(&["--stdin-file", &inp], &["wc", "-l"]);
    assert_eq!(v["stdout"], "2\n", "{v}");
    let v = s.call(&[], &["id", "-u"]);
    assert_eq!(v["stdout"], "1000\n", "{v}");
    for (user, want) in [("0", "0\n"), ("4321:4321", "4321\n"), ("root", "0\n")] {
        let v = s.call(&["-u", user], &["id", "-u"]);
        assert_eq!(v["stdout"], want, "{user}: {v}");
    }
}

#[test]
fn bad_exec_flags_are_refused_with_one_line() {
    let _g = serial();
    let s = Session::new(&[]);
    for (flags, flag, want) in [
        (vec!["--timeout", "0"], "--timeout", "more than 0"),
        (vec!["--timeout", "soon"], "--timeout", "not a duration"),
        (
            vec!["-u", "nobody-here"],
            "--user",
            "not a user of the sandbox",
        ),
        (vec!["-u", "1:x"], "--user", "UID:GID"),
        (
            vec!["--stdin-file", "/nonexistent"],
            "--stdin-file",
            "/nonexistent",
        ),
        (
            vec!["--json", "--capture", "--capture-max", "lots"],
            "--capture-max",
            "",
        ),
        (
            vec!["-t", "--json", "--capture"],
            "--tty",
            "not with --capture",
        ),
    ] {
        let mut a = vec!["exec"];
        a.extend(flags.iter());
        a.extend([s.0.as_str(), "--", "true"]);
        let o = run(&a);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{a:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{a:?}: {err}");
        assert!(
            err.contains(&format!("{flag}: ")) && err.contains(want),
            "{a:?}: {err}"
        );
    }
}

#[test]
fn a_background_exec_outlives_its_client_and_takes_its_tree_when_it_ends() {
    let _g = serial();
    let s = Session::new(&[]);
    let baseline = s.processes();
    let t0 = Instant::now();
    let o = run(&[
        "exec",
        "-d",
        &s.0,
        "--",
        "sh",
        "-c",
        "sleep 0.5; touch /tmp/bg-done; exec sleep 1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(stdout(&o).is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let v = s.call(&[], &["test", "-e", "/tmp/bg-done"]);
    assert_eq!(v["exit_code"], 0, "{v}");
    assert!(
        s.processes().iter().any(|p| p == "sleep 1000"),
        "{:?}",
        s.processes()
    );
    // One whose command ends: what it left in the background goes with it.
    let o = run(&[
        "exec",
        "-d",
        &s.0,
        "--",
        "sh",
        "-c",
        "sleep 2000 & sleep 0.3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t0 = Instant::now();
    loop {
        let now = s.processes();
        if !now.iter().any(|p| p == "sleep 2000") && t0.elapsed() > Duration::from_millis(500) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = run(&["exec", "-d", "--json", &s.0, "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("--detach: not with --json"),
        "{}",
        stderr(&o)
    );
    let _ = baseline;
}

/// The process between an exec's client and its init (it stays in the sandbox, in its pid
/// namespace, relaying signals) gives up what the sandbox's init gives up: every capability
/// but CAP_KILL, new privileges, all but a few syscalls (seccomp filter mode).
#[test]
fn the_exec_forwarder_is_hardened_like_init() {
    let _g = serial();
    let s = Session::new(&[]);
    let mut c = nucleus(&["exec", &s.0, "--", "sleep", "4242"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The command, seen from the host: its parent is the exec's init, whose parent is the
    // forwarder.
    let status =
        |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |st: &str, k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let t0 = Instant::now();
    let cmd = loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().find(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x004242\x00")
        });
        if let Some(e) = found {
            break e.file_name().to_string_lossy().into_owned();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the exec never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let init = field(&status(&cmd), "PPid:");
    let forwarder = field(&status(&init), "PPid:");
    let st = status(&forwarder);
    assert!(
        field(&st, "Name:").starts_with("nucleus") || field(&st, "Name:") == "exe",
        "{st}"
    );
    // CAP_KILL is bit 5.
    assert_eq!(field(&st, "CapEff:"), "0000000000000020", "{st}");
    assert_eq!(field(&st, "CapPrm:"), "0000000000000020", "{st}");
    assert_eq!(field(&st, "NoNewPrivs:"), "1", "{st}");
    assert_eq!(field(&st, "Seccomp:"), "2", "{st}");
    c.kill().unwrap();
    c.wait().unwrap();
}
