//! Lifecycle end to end: detached sandboxes and their monitors, create/start, ps/state/logs,
//! exec (same namespaces, cgroup and protections as the workload), stop/kill/rm, events and
//! the audit log, and the races: stop during start, two rm at once, kill -9 of a monitor, 50
//! sandboxes started and removed concurrently. Each test has its own state root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Root(TempDir);

impl Drop for Root {
    /// A failing test must not leave sandboxes running: remove every record, forcibly.
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq"]);
        let ids: Vec<String> = stdout(&ids).lines().map(String::from).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(|s| s.as_str()));
            let _ = self.run(&args);
        }
    }
}

impl Root {
    fn new(name: &str) -> Root {
        Root(TempDir::new(&format!("state-{name}")))
    }
    fn path(&self) -> &Path {
        &self.0 .0
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = nucleus(&["--root", self.path().to_str().unwrap()]);
        c.args(args).stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    /// Run a verb that must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "nucleus {args:?} failed: {:?}\n{}",
            o.status,
            stderr(&o)
        );
        stdout(&o).trim().to_string()
    }
    fn ps(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.ok(&["ps", "-a", "--format", "json"])).unwrap();
        v.as_array().unwrap().clone()
    }
    fn state_file(&self, id: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.path().join(id).join("state.json")).unwrap())
            .unwrap()
    }
    /// Everything in the root but the store's own entries (see `store_own`).
    fn records(&self) -> Vec<String> {
        // A foreground run's clean-up helper deletes its retired record (`.gone.ID`) just
        // after the run's exit: what is left counts once the helpers are done.
        let t = Instant::now();
        while clean_up_helpers() > 0 && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !store_own(n))
            .collect();
        // names/ is made with the first name.
        if let Ok(names) = std::fs::read_dir(self.path().join("names")) {
            v.extend(names.map(|e| format!("names/{}", e.unwrap().file_name().to_string_lossy())));
        }
        v.sort();
        v
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_of(root: &Root, id: &str) -> String {
    root.ps()
        .iter()
        .find(|s| s["id"] == id)
        .map(|s| s["status"].as_str().unwrap().to_string())
        .unwrap_or_else(|| "absent".into())
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn detached_run_is_listed_logged_stopped_and_removed() {
    let _g = serial();
    let root = Root::new("detached");
    leaves_nothing(|| {
        let id = root.ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "--",
            "sh",
            "-c",
            "echo hello-from-web; sleep 1000",
        ]);
        assert_eq!(id.len(), 16, "run -d prints the id: {id}");
        let ps = root.ps();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0]["name"], "web");
        assert_eq!(ps[0]["status"], "running");
        let pid = ps[0]["pid"].as_i64().unwrap();
        assert!(
            alive(pid),
            "the sandbox's init runs on the host as pid {pid}"
        );
        // The table, by name and by prefix.
        let table = root.ok(&["ps"]);
        assert!(table.contains("web") && table.contains("up "), "{table}");
        let st: Value = serde_json::from_str(&root.ok(&["state", &id[..5]])).unwrap();
        assert_eq!(st["id"], id.as_str());
        assert_eq!(st["status"], "running");
        assert_eq!(st["pid"], pid);
        assert_eq!(st["ociVersion"], "1.2.0");
        wait_until("the log line", Duration::from_secs(5), || {
            root.ok(&["logs", "web"]).contains("hello-from-web")
        });
        // The monitor does not show the command line it was started from.
        let s = root.state_file(&id);
        let monitor = s["monitor"]["pid"].as_i64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{monitor}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            cmdline.starts_with(&format!("nucleus monitor {id}")) && !cmdline.contains("web"),
            "{cmdline:?}"
        );
        // stats takes names too.
        let st: Value = serde_json::from_str(&root.ok(&["stats", "--json", "web"])).unwrap();
        assert_eq!(st["id"], id.as_str());
        // rm refuses a running sandbox.
        let o = root.run(&["rm", "web"]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("stop it first"), "{}", stderr(&o));
        let t = Instant::now();
        root.ok(&["stop", "web"]);
        assert!(t.elapsed() < Duration::from_secs(5), "sh dies of SIGTERM");
        assert!(!alive(pid));
        let ps = root.ps();
        assert_eq!(ps[0]["status"], "stopped");
        assert_eq!(ps[0]["exit_code"], 143, "killed by SIGTERM");
        assert!(
            root.ok(&["ps"]).lines().count() == 1,
            "ps without -a hides it"
        );
        // Kept until rm; the name is free again after.
        root.ok(&["rm", "web"]);
        assert!(root.records().is_empty(), "{:?}", root.records());
        root.ok(&["run", "--name", "web", "--", "true"]);
    });
}

#[test]
fn create_waits_for_start() {
    let _g = serial();
    let root = Root::new("create");
    let dir = TempDir::new("create-ws");
    leaves_nothing(|| {
        let ws = format!("{}:/w", dir.0.display());
        let id = root.ok(&[
            "create",
            "-v",
            &ws,
            "--",
            "sh",
            "-c",
            "echo ran > /w/marker; exit 7",
        ]);
        assert_eq!(status_of(&root, &id), "created");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !dir.0.join("marker").exists(),
            "a created sandbox's command has not run"
        );
        let st: Value = serde_json::from_str(&root.ok(&["state", &id])).unwrap();
        assert_eq!(st["status"], "created");
        assert!(st["pid"].as_i64().unwrap() > 0);
        root.ok(&["start", &id]);
        wait_until("exit", Duration::from_secs(5), || {
            status_of(&root, &id) == "stopped"
        });
        assert!(dir.0.join("marker").exists());
        let ps = root.ps();
        assert_eq!(ps[0]["exit_code"], 7);
        let o = root.run(&["start", &id]);
        assert!(!o.status.success(), "a stopped sandbox cannot be started");
        assert!(
            stderr(&o).contains("only a created sandbox"),
            "{}",
            stderr(&o)
        );
        root.ok(&["rm", &id]);

        // A command that does not exist: create succeeds (it is set up), start says why.
        let id = root.ok(&["create", "--", "no-such-command"]);
        let o = root.run(&["start", &id]);
        assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
        assert!(stderr(&o).contains("command not found"), "{}", stderr(&o));
        root.ok(&["rm", &id]);
        // With run -d it fails at once, and nothing is kept.
        let o = root.run(&["run", "-d", "--", "no-such-command"]);
        assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
        assert_eq!(stdout(&o), "", "no id for a sandbox that never ran");
        assert!(root.records().is_empty(), "{:?}", root.records());
    });
}

/// Host view of the namespaces of a process.
fn namespaces(pid: i64) -> Vec<String> {
    ["mnt", "net", "uts", "ipc", "user", "pid", "cgroup"]
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn exec_joins_the_sandbox_with_the_same_protections() {
    let _g = serial();
    let root = Root::new("exec");
    let probe = probe();
    let vol = format!("{}:/probe:ro", probe.display());
    leaves_nothing(|| {
        let id = root.ok(&[
            "run",
            "-d",
            "-v",
            &vol,
            "--pids",
            "64",
            "-e",
            "FROM_RUN=1",
            "--",
            "sleep",
            "1000",
        ]);
        let s = root.state_file(&id);
        let workload = s["workload"]["pid"].as_i64().unwrap();
        // Namespaces, seen from inside the exec'd process.
        let inside = root.ok(&[
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "for n in mnt net uts ipc user pid cgroup; do readlink /proc/self/ns/$n; done; grep NSpid /proc/self/status",
        ]);
        let mut inside: Vec<String> = inside.lines().map(String::from).collect();
        let nspid = inside.pop().unwrap();
        // Every namespace but pid: the exec runs under an init of its own, in a pid namespace
        // nested in the sandbox's (its pids: the sandbox's, then its own).
        let mut want = namespaces(workload);
        assert_ne!(inside[5], want[5], "a pid namespace of its own");
        inside.remove(5);
        want.remove(5);
        assert_eq!(inside, want, "exec joins every other namespace");
        assert_eq!(nspid.split_whitespace().count(), 3, "{nspid}");
        // Protections: the probe's whole report, from the workload's seat and from exec.
        let exec_report: Value =
            serde_json::from_str(&root.ok(&["exec", &id, "--", "/probe"])).unwrap();
        let run_report = probe_run(&["--pids", "64"], &[]);
        let differs = |k: &str| {
            matches!(
                k,
                "pid" | "visible_pids" | "monotonic_secs" | "hostname" | "uid_map"
            )
        };
        for (k, v) in run_report.as_object().unwrap() {
            if differs(k) || k.starts_with("mount:") && k.contains("probe") {
                continue;
            }
            assert_eq!(&exec_report[k], v, "{k}: exec differs from the workload");
        }
        assert_eq!(exec_report["Seccomp"], "2");
        assert_eq!(exec_report["NoNewPrivs"], "1");
        assert_eq!(exec_report["CapEff"], "0000000000000000");
        // Same cgroup (it counts against the sandbox's pids limit), env, and exit status.
        let cg = root.ok(&["exec", &id, "--", "cat", "/proc/self/cgroup"]);
        assert!(cg.lines().all(|l| l.ends_with(":/")), "{cg}");
        let pids_file = s["cgroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| PathBuf::from(c.as_str().unwrap()))
            .find(|c| c.join("pids.max").exists())
            .unwrap();
        let o = root.run(&[
            "exec",
            "-e",
            "EXTRA=2",
            &id,
            "--",
            "sh",
            "-c",
            "echo $FROM_RUN$EXTRA; cat /proc/self/cgroup >/dev/null; exit 5",
        ]);
        assert_eq!(o.status.code(), Some(5));
        assert_eq!(stdout(&o).trim(), "12");
        let procs = std::fs::read_to_string(pids_file.join("cgroup.procs")).unwrap();
        assert_eq!(
            procs.lines().count(),
            2,
            "init and the workload only: {procs}"
        );
        let o = root.run(&["exec", &id, "--", "no-such-command"]);
        assert_eq!(o.status.code(), Some(127));
        root.ok(&["rm", "-f", &id]);
        let o = root.run(&["exec", &id, "--", "true"]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("no such sandbox"), "{}", stderr(&o));
    });
}

#[test]
fn exec_tty_gets_a_terminal_from_the_sandbox() {
    let _g = serial();
    let root = Root::new("exectty");
    let id = root.ok(&["run", "-d", "--", "sleep", "1000"]);
    // `script` gives nucleus a terminal of its own.
    let cmd = format!(
        "{} --root {} exec -t {id} -- sh -c 'tty; test -t 0 && echo is-a-tty; echo TERM=$TERM'",
        bin().display(),
        root.path().display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) is needed for the tty test");
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("is-a-tty"), "{out}");
    assert!(out.contains("TERM=xterm"), "{out}");
    root.ok(&["rm", "-f", &id]);
}

#[test]
fn stop_escalates_and_kill_signals_the_workload() {
    let _g = serial();
    let root = Root::new("stop");
    leaves_nothing(|| {
        let id = root.ok(&[
            "run",
            "-d",
            "--",
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; trap '' TERM; while :; do sleep 0.05; done",
        ]);
        std::thread::sleep(Duration::from_millis(200));
        root.ok(&["kill", &id, "USR1"]);
        wait_until("the trap", Duration::from_secs(5), || {
            root.ok(&["logs", &id]).contains("got-usr1")
        });
        let o = root.run(&["kill", &id, "NOPE"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("SIGNAL"), "{}", stderr(&o));
        let t = Instant::now();
        root.ok(&["stop", "-t", "1", &id]);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "SIGTERM is ignored: SIGKILL after the 1 s grace ({took:?})"
        );
        assert_eq!(root.ps()[0]["exit_code"], 137);
        root.ok(&["rm", &id]);
    });
}

#[test]
fn killed_monitor_takes_its_sandbox_along() {
    let _g = serial();
    let root = Root::new("monkill");
    leaves_nothing(|| {
        let id = root.ok(&["run", "-d", "--", "sleep", "1000"]);
        let s = root.state_file(&id);
        let monitor = s["monitor"]["pid"].as_i64().unwrap();
        let init = s["init"]["pid"].as_i64().unwrap();
        // SAFETY: a plain kill of the monitor this test started.
        unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
        wait_until("the sandbox to die", Duration::from_secs(5), || {
            !alive(init)
        });
        assert_eq!(status_of(&root, &id), "stopped");
        let ps = root.ps();
        assert!(ps[0]["error"].as_str().unwrap().contains("monitor"));
        // rm removes the record and the cgroups the monitor could not.
        root.ok(&["rm", &id]);
        assert!(root.records().is_empty());
    });
}

#[test]
fn names_prefixes_and_bad_references() {
    let _g = serial();
    let root = Root::new("names");
    let a = root.ok(&["run", "-d", "--name", "alpha", "--", "sleep", "1000"]);
    let o = root.run(&["run", "-d", "--name", "alpha", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains(&format!("--name alpha: already used by sandbox {a}")));
    let o = root.run(&["run", "--name", "bad/name", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--name"), "{}", stderr(&o));
    let b = root.ok(&["run", "-d", "--", "sleep", "1000"]);
    // Two ids share no long prefix by chance often; the empty-ish prefix is ambiguous.
    let common: String = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    if !common.is_empty() {
        let o = root.run(&["state", &common]);
        assert!(stderr(&o).contains("matches 2 sandboxes"), "{}", stderr(&o));
    }
    let o = root.run(&["state", "zzzz"]);
    assert!(stderr(&o).contains("no such sandbox"), "{}", stderr(&o));
    assert!(root.ok(&["state", "alpha"]).contains(&a));
    assert!(root.ok(&["state", &b[..8]]).contains(&b));
    root.ok(&["rm", "-f", "alpha", &b]);
    assert!(root.records().is_empty());
    // --rm: the record goes when the workload exits.
    let c = root.ok(&["run", "-d", "--rm", "--name", "gone", "--", "true"]);
    wait_until("auto-removal", Duration::from_secs(5), || {
        root.records().is_empty()
    });
    let o = root.run(&["state", &c]);
    assert!(stderr(&o).contains("no such sandbox"), "{}", stderr(&o));
}

#[test]
fn events_and_audit_lines() {
    let _g = serial();
    let root = Root::new("events");
    let ev = root.path().join("events.jsonl");
    let evs = ev.to_str().unwrap();
    let id = root.ok(&[
        "run",
        "-d",
        "--events-jsonl",
        evs,
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    wait_until("exit", Duration::from_secs(5), || {
        status_of(&root, &id) == "stopped"
    });
    root.ok(&["rm", &id]);
    // A foreground run with an events descriptor.
    let o = root
        .cmd(&["run", "--events-fd", "1", "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let fg: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(&fg), ["created", "started", "exited", "removed"]);
    let lines: Vec<Value> = std::fs::read_to_string(&ev)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kinds(&lines), ["created", "started", "exited", "removed"]);
    for e in &lines {
        assert_eq!(e["v"], 1);
        assert_eq!(e["id"], id.as_str());
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    let started = &lines[1];
    assert_eq!(started["protections"]["seccomp"], "enforced");
    assert_eq!(started["protections"]["capabilities_dropped"], true);
    assert_eq!(lines[2]["status"], 3);
    assert!(lines[2]["usage"]["cpu_usec"].as_u64().is_some());
    let audit = std::fs::read_to_string(root.path().join("audit.jsonl")).unwrap();
    let verbs: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(verbs
        .iter()
        .any(|a| a["verb"] == "run" && a["id"] == id.as_str() && a["ok"] == true));
    assert!(verbs.iter().any(|a| a["verb"] == "rm" && a["uid"] == 0));
    // Each removal is a line of its own naming the id and who removed it.
    assert!(verbs
        .iter()
        .any(|a| a["verb"] == "remove" && a["id"] == id.as_str() && a["by"] == "rm"));
}

#[test]
fn foreground_runs_are_listed_and_joinable() {
    let _g = serial();
    let root = Root::new("fg");
    leaves_nothing(|| {
        let mut child = root
            .cmd(&["run", "--name", "fg", "--", "sleep", "1000"])
            .spawn()
            .unwrap();
        wait_until("the record", Duration::from_secs(5), || {
            status_of(
                &root,
                root.ps().first().map_or("", |s| s["id"].as_str().unwrap()),
            ) == "running"
        });
        assert_eq!(root.ok(&["exec", "fg", "--", "echo", "joined"]), "joined");
        root.ok(&["stop", "fg"]);
        let st = wait_within(&mut child, DEADLINE, "child");
        assert_eq!(st.code(), Some(143));
        assert!(root.records().is_empty(), "{:?}", root.records());
    });
}

/// An unnamed foreground run is listed before its program runs (docs/lifecycle.md): a caller
/// that reads the program's first line finds its record at once, `ps` lists it, and `exec` and
/// `stop` reach it. Twenty starts in a row. (The record is made before the clone; session 22
/// measured orders that write it later, at low priority: this test fails for them.)
#[test]
fn an_unnamed_foreground_run_is_listed_from_its_first_line() {
    let _g = serial();
    let root = Root::new("fg-first-line");
    leaves_nothing(|| {
        for _ in 0..20 {
            let mut child = root
                .cmd(&["run", "--", "sh", "-c", "echo up; exec sleep 1000"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            assert_eq!(first_line(&mut child), "up\n");
            // Its record is there the moment the program has run (read straight from the
            // state root: a `ps` takes milliseconds to start, time enough for a record made
            // late to appear).
            let listed = std::fs::read_dir(root.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    !store_own(&n) && !n.starts_with('.') && e.path().join("state.json").exists()
                })
                .count();
            assert!(
                listed >= 1,
                "not listed when its program printed its first line"
            );
            // (The last round's record may still be listed as exited, for a moment.)
            let ps = root.ps();
            let live: Vec<&Value> = ps
                .iter()
                .filter(|s| s["status"] == "creating" || s["status"] == "running")
                .collect();
            assert_eq!(live.len(), 1, "{ps:?}");
            let id = live[0]["id"].as_str().unwrap().to_string();
            assert_eq!(root.ok(&["exec", &id, "--", "echo", "joined"]), "joined");
            root.ok(&["stop", &id]);
            let st = wait_within(&mut child, DEADLINE, "child");
            assert_eq!(st.code(), Some(143));
        }
        assert!(root.records().is_empty(), "{:?}", root.records());
    });
}

/// The runtime writes its record at the lowest priority while the sandbox sets itself up,
/// then goes back to its caller's: it still relays output and waits at that priority. Also
/// as a root without CAP_SYS_NICE (Docker's default), which could lower it and never raise it
/// again: there it is never lowered.
#[test]
fn the_runtime_runs_on_at_its_callers_priority() {
    let _g = serial();
    let root = Root::new("nice");
    let nice_of = |pid: u32| -> i64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap()
    };
    let ours = nice_of(std::process::id());
    leaves_nothing(|| {
        for without_cap_sys_nice in [false, true] {
            let mut c = if without_cap_sys_nice {
                let mut c = Command::new("setpriv");
                c.args(["--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "--"])
                    .arg(bin())
                    .args(["--root", root.path().to_str().unwrap()]);
                c
            } else {
                root.cmd(&[])
            };
            let mut child = c
                .args(["run", "--name", "nice", "--", "sleep", "1000"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            wait_until("the record", Duration::from_secs(10), || {
                root.ps()
                    .iter()
                    .any(|s| s["name"] == "nice" && s["status"] == "running")
            });
            assert_eq!(
                nice_of(child.id()),
                ours,
                "CAP_SYS_NICE dropped: {without_cap_sys_nice}"
            );
            root.ok(&["stop", "nice"]);
            let st = wait_within(&mut child, DEADLINE, "child");
            assert_eq!(st.code(), Some(143));
        }
    });
}

/// A foreground run killed with SIGKILL (no exit path ran) does not keep its name: the next
/// `run --name` of that name collects the dead record; until then `ps -a` says why it ended.
/// (With --sync-cleanup: otherwise its clean-up helper removes the record at once, tested in
/// isolation.rs.)
#[test]
fn a_killed_foreground_run_frees_its_name() {
    let _g = serial();
    let root = Root::new("fg-kill");
    leaves_nothing(|| {
        let mut child = root
            .cmd(&[
                "run",
                "--sync-cleanup",
                "--name",
                "web",
                "--",
                "sleep",
                "1000",
            ])
            .spawn()
            .unwrap();
        wait_until("the record", Duration::from_secs(5), || {
            root.ps().first().is_some_and(|s| s["status"] == "running")
        });
        child.kill().unwrap();
        wait_within(&mut child, DEADLINE, "child");
        let table = root.ok(&["ps", "-a"]);
        assert!(table.contains("lost (runtime killed)"), "{table}");
        let o = root.run(&["run", "--name", "web", "--", "echo", "again"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "again");
        assert!(root.records().is_empty(), "{:?}", root.records());
    });
}

/// `inspect`: the configuration of a sandbox as JSON, environment names without values.
#[test]
fn inspect_shows_the_configuration_without_env_values() {
    let _g = serial();
    let root = Root::new("inspect");
    let id = root.ok(&[
        "run",
        "-d",
        "--name",
        "cfg",
        "-e",
        "API_TOKEN=s3cret",
        "--memory",
        "64M",
        "--pids",
        "100",
        "--hostname",
        "box",
        "--",
        "sleep",
        "1000",
    ]);
    let v: Value = serde_json::from_str(&root.ok(&["inspect", "cfg"])).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["name"], "cfg");
    assert_eq!(v["status"], "running");
    assert_eq!(v["config"]["hostname"], "box");
    let names = v["config"]["env_names"].to_string();
    assert!(names.contains("API_TOKEN"), "{names}");
    assert!(
        !v.to_string().contains("s3cret"),
        "an environment value leaked: {v}"
    );
    let limits = v["config"]["limits"].to_string();
    assert!(
        limits.contains("67108864") && limits.contains("100"),
        "{limits}"
    );
    assert!(v["config"]["mounts"].as_array().unwrap().len() > 5);
    root.ok(&["rm", "-f", "cfg"]);
    let o = root.run(&["inspect", "cfg"]);
    assert_eq!(o.status.code(), Some(125));
}

/// `--timeout`: the workload gets SIGTERM when its time is up (the exit is its own), the
/// record and an event say it timed out; a detached sandbox likewise.
#[test]
fn timeout_ends_the_workload_and_says_so() {
    let _g = serial();
    let root = Root::new("timeout");
    leaves_nothing(|| {
        let t0 = Instant::now();
        let o = root.run(&[
            "run",
            "--timeout",
            "1s",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; sleep 30 & wait",
        ]);
        let took = t0.elapsed();
        assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "got-term");
        assert!(
            stderr(&o).contains("--timeout 1s ran out"),
            "{}",
            stderr(&o)
        );
        assert!(took < Duration::from_secs(8), "took {took:?}");
        let id = root.ok(&["run", "-d", "--timeout", "500ms", "--", "sleep", "30"]);
        wait_until("the timeout", Duration::from_secs(10), || {
            status_of(&root, &id) == "stopped"
        });
        let ps = root.ps();
        assert_eq!(ps[0]["exit_code"], 143, "{ps:?}");
        assert_eq!(ps[0]["error"], "timed out after 0.5s", "{ps:?}");
        assert!(root.ok(&["ps", "-a"]).contains("timed out (143)"));
        root.ok(&["rm", &id]);
    });
    let o = root.run(&["run", "--timeout", "soon", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--timeout"), "{}", stderr(&o));
}

/// `restart`: a stopped detached sandbox starts again with its id, name and flags; a running
/// one is stopped first; a record with nothing to restart from says so.
#[test]
fn restart_starts_a_stopped_sandbox_again_as_it_was_made() {
    let _g = serial();
    let root = Root::new("restart");
    leaves_nothing(|| {
        let id = root.ok(&[
            "run",
            "-d",
            "--name",
            "again",
            "-e",
            "WHO=first",
            "--hostname",
            "box",
            "--",
            "sh",
            "-c",
            "echo $WHO@$(hostname); sleep 1000",
        ]);
        wait_until("output", Duration::from_secs(5), || {
            root.ok(&["logs", "again"]).contains("first@box")
        });
        root.ok(&["stop", "-t", "1", "again"]);
        assert_eq!(status_of(&root, &id), "stopped");
        assert_eq!(root.ok(&["restart", "again"]), id);
        assert_eq!(status_of(&root, &id), "running");
        wait_until("output again", Duration::from_secs(5), || {
            root.ok(&["logs", "again"]).contains("first@box")
        });
        // Running: stopped, then started again (a new workload).
        let pid = root.ps()[0]["pid"].clone();
        assert_eq!(root.ok(&["restart", "-t", "1", &id]), id);
        assert_eq!(status_of(&root, &id), "running");
        assert_ne!(root.ps()[0]["pid"], pid);
        assert_eq!(root.ps().len(), 1);
        root.ok(&["rm", "-f", "again"]);
    });
    let o = root.run(&["restart", "nosuch"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn stop_during_start_and_two_rm_at_once() {
    let _g = serial();
    let root = Root::new("races");
    leaves_nothing(|| {
        for round in 0..5 {
            let name = format!("r{round}");
            let launcher = root
                .cmd(&["run", "-d", "--name", &name, "--", "sleep", "1000"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // Stop it as soon as it can be named, possibly while it is being set up.
            let t = Instant::now();
            loop {
                let o = root.run(&["stop", "-t", "2", &name]);
                if o.status.success() {
                    break;
                }
                assert!(
                    stderr(&o).contains("no such sandbox"),
                    "stop: {}",
                    stderr(&o)
                );
                assert!(t.elapsed() < Duration::from_secs(10));
            }
            let _ = launcher.wait_with_output().unwrap();
            // Stopped, or (stopped before its workload ran) gone.
            let ps = root.ps();
            assert!(ps.len() <= 1);
            if ps.is_empty() {
                continue;
            }
            assert_eq!(ps[0]["status"], "stopped");
            // Two rm at once: one wins, the other finds nothing; nothing is left.
            let a = root
                .cmd(&["rm", "-f", &name])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let b = root
                .cmd(&["rm", "-f", &name])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            let wins = [&a, &b].iter().filter(|o| o.status.success()).count();
            assert!(wins >= 1, "{} / {}", stderr(&a), stderr(&b));
            for o in [&a, &b] {
                if !o.status.success() {
                    assert!(stderr(o).contains("no such sandbox"), "{}", stderr(o));
                }
            }
            assert!(root.records().is_empty(), "{:?}", root.records());
        }
    });
}

#[test]
fn fifty_detached_sandboxes_at_once() {
    let _g = serial();
    let root = Root::new("fifty");
    leaves_nothing(|| {
        let n = 50;
        let launchers: Vec<_> = (0..n)
            .map(|i| {
                root.cmd(&[
                    "run",
                    "-d",
                    "--name",
                    &format!("s{i}"),
                    "--",
                    "sleep",
                    "1000",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        // ps stays consistent while they start: every listed record is whole and unique.
        let mut seen_max = 0;
        for _ in 0..5 {
            let ps = root.ps();
            let mut ids: Vec<&str> = ps.iter().map(|s| s["id"].as_str().unwrap()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), ps.len());
            seen_max = seen_max.max(ps.len());
        }
        let ids: Vec<String> = launchers
            .into_iter()
            .map(|l| {
                let o = l.wait_with_output().unwrap();
                assert!(o.status.success(), "{}", stderr(&o));
                stdout(&o).trim().to_string()
            })
            .collect();
        assert!(seen_max <= n);
        let ps = root.ps();
        assert_eq!(ps.len(), n);
        assert!(ps.iter().all(|s| s["status"] == "running"));
        let mut names: Vec<&str> = ps.iter().map(|s| s["name"].as_str().unwrap()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        // Remove them all concurrently (in 5 rm -f commands of 10).
        let removers: Vec<_> = ids
            .chunks(10)
            .map(|c| {
                let mut args = vec!["rm", "-f"];
                args.extend(c.iter().map(|s| s.as_str()));
                root.cmd(&args).spawn().unwrap()
            })
            .collect();
        for mut r in removers {
            assert!(wait_within(&mut r, DEADLINE, "r").success());
        }
        assert!(root.ps().is_empty());
        assert!(root.records().is_empty(), "{:?}", root.records());
    });
}

#[test]
fn logs_tail_and_follow() {
    let _g = serial();
    let root = Root::new("logs");
    let id = root.ok(&[
        "run",
        "-d",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.5; echo late; echo err >&2",
    ]);
    wait_until("output", Duration::from_secs(5), || {
        root.ok(&["logs", &id]).contains("line5")
    });
    assert_eq!(root.ok(&["logs", "-n", "2", &id]), "line4\nline5");
    // -f returns once the sandbox stopped, with everything it wrote: its stdout on ours, its
    // stderr on ours.
    let o = root.run(&["logs", "-f", &id]);
    assert!(o.status.success());
    assert!(stdout(&o).ends_with("line5\nlate\n"), "{}", stdout(&o));
    assert_eq!(stderr(&o), "err\n");
    let o = root.run(&["logs", &id]);
    assert_eq!(stderr(&o), "err\n");
    assert!(!stdout(&o).contains("err"), "{}", stdout(&o));
    root.ok(&["rm", &id]);
}

#[test]
fn console_socket_receives_the_terminal() {
    use std::io::BufRead;
    let _g = serial();
    let root = Root::new("console");
    let sockdir = TempDir::new("console-sock");
    let sock = sockdir.0.join("console.sock");
    let mut rx = Command::new("python3")
        .args(["-c", CONSOLE_RECEIVER, sock.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the console-socket receiver");
    let mut out = std::io::BufReader::new(rx.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let id = root.ok(&[
        "create",
        "-t",
        "--console-socket",
        sock.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "tty; test -t 1 && echo on-a-tty",
    ]);
    root.ok(&["start", &id]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    wait_within(&mut rx, DEADLINE, "rx");
    assert!(rest.contains("name /dev/ptmx"), "{rest}");
    assert!(rest.contains("/dev/pts/0"), "{rest}");
    assert!(rest.contains("on-a-tty"), "{rest}");
    wait_until("exit", Duration::from_secs(5), || {
        status_of(&root, &id) == "stopped"
    });
    root.ok(&["rm", &id]);
    // Without a socket a detached sandbox cannot have a terminal; a dead socket is refused.
    let o = root.run(&["run", "-d", "-t", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--console-socket"), "{}", stderr(&o));
    let o = root.run(&[
        "run",
        "-d",
        "-t",
        "--console-socket",
        "/nonexistent.sock",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(root.records().is_empty(), "{:?}", root.records());
}

/// The python of the virtualenv scripts/test.sh makes with opentelemetry-proto in it.
fn otlp_python() -> PathBuf {
    // scripts/test.sh makes it in the workspace's target/ (artifacts are one level deeper,
    // under the target triple).
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/otlp-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: scripts/test.sh creates it (python3 -m venv target/otlp-venv && \
         target/otlp-venv/bin/pip install opentelemetry-proto); refusing to skip",
        p.display()
    );
    p
}

#[test]
fn spans_reach_a_real_otlp_receiver() {
    use std::io::BufRead;
    let _g = serial();
    let root = Root::new("otlp");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_receiver.py");
    let mut rx = Command::new(otlp_python())
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(rx.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let with_otlp = |args: &[&str]| -> Output {
        let o = root
            .cmd(args)
            .env("NUCLEUS_OTLP_ENDPOINT", &endpoint)
            .env(
                "TRACEPARENT",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("OTLP"), "{}", stderr(&o));
        o
    };
    let id = stdout(&with_otlp(&[
        "run", "-d", "--name", "traced", "--", "sleep", "1000",
    ]))
    .trim()
    .to_string();
    with_otlp(&["exec", "traced", "--", "true"]);
    with_otlp(&["stop", "traced"]);
    with_otlp(&["rm", "traced"]);
    with_otlp(&["create", "--name", "held", "--", "true"]);
    with_otlp(&["start", "held"]);
    let spans: Vec<Value> = lines
        .by_ref()
        .take(7)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    rx.kill().unwrap();
    wait_within(&mut rx, DEADLINE, "rx");
    root.run(&["rm", "-f", "held"]);
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "nucleus.create",
            "nucleus.start",
            "nucleus.exec",
            "nucleus.stop",
            "nucleus.rm",
            "nucleus.create",
            "nucleus.start"
        ]
    );
    // One trace per sandbox, under the caller's trace; later verbs are children of create.
    let create = &spans[0];
    assert_eq!(create["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(create["parent"], "00f067aa0ba902b7");
    for s in &spans[1..5] {
        assert_eq!(s["trace_id"], create["trace_id"]);
        assert_eq!(s["parent"], create["span_id"], "{s}");
        assert_eq!(s["attrs"]["sandbox.id"], id.as_str());
        assert_eq!(s["status"], 1, "STATUS_CODE_OK: {s}");
    }
    for s in &spans {
        assert_eq!(s["resource"]["service.name"], "nucleus");
        assert!(s["end"].as_u64() >= s["start"].as_u64() && s["start"].as_u64() > Some(0));
    }
    assert_eq!(create["attrs"]["sandbox.name"], "traced");
    assert_eq!(spans[2]["attrs"]["process.executable.name"], "true");
    assert_eq!(spans[2]["attrs"]["process.exit.code"], 0);
    // A collector that is down costs one warning, not the command.
    let o = root
        .cmd(&["run", "--", "true"])
        .env("NUCLEUS_OTLP_ENDPOINT", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stderr(&o).contains("OTLP export"), "{}", stderr(&o));
    let o = root
        .cmd(&["run", "--", "true"])
        .env("NUCLEUS_OTLP_ENDPOINT", "https://collector")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("NUCLEUS_OTLP_ENDPOINT"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn gc_removes_abandoned_staging_directories_only() {
    let _g = serial();
    let root = Root::new("staging");
    root.ok(&["ps"]); // creates the root
    let start_of = |pid: u32| -> String {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .to_string()
    };
    // A directory being filled names its maker: here a process that is still alive.
    let mut maker = Command::new("sleep").arg("1000").spawn().unwrap();
    let live = root.path().join(format!(
        ".tmp.00000000cafebabe.{}.{}",
        maker.id(),
        start_of(maker.id())
    ));
    // One whose maker is gone (its pid now belongs to another process).
    let dead = root
        .path()
        .join(format!(".tmp.00000000deadbeef.{}.1", std::process::id()));
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("state.json"), "{").unwrap();
    std::fs::create_dir(&live).unwrap();
    let o = root.run(&["gc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dead.exists(), "an abandoned staging directory is removed");
    assert!(live.exists(), "one being prepared is kept");
    maker.kill().unwrap();
    wait_within(&mut maker, DEADLINE, "maker");
    root.ok(&["gc"]);
    assert!(!live.exists());
}

#[test]
fn an_unprivileged_user_runs_detaches_and_execs() {
    let _g = serial();
    let rt = TempDir::new("rootless-rt");
    // The runtime directory belongs to nobody (65534).
    std::os::unix::fs::chown(&rt.0, Some(65534), Some(65534)).unwrap();
    // Root's sandbox, under the same cgroup parent: nobody's verbs do not see it.
    let theirs = stdout(&run(&["run", "-d", "--", "sleep", "1000"]))
        .trim()
        .to_string();
    let script = format!(
        "cd /; export XDG_RUNTIME_DIR={rt}; N={bin}; unset NUCLEUS_ROOT; \
         $N run -- sh -c 'echo fg-ok' 2>$XDG_RUNTIME_DIR/fg.err || exit 11; \
         echo \"fg-stderr=$(cat $XDG_RUNTIME_DIR/fg.err)\"; \
         $N run --context /tmp -- true 2>&1 | sed 's/^/ctx: /'; \
         $N run --workspace /tmp --workspace-mode copy-in-out -- true 2>&1 | sed 's/^/ws: /'; \
         id=$($N run -d -- sleep 1000 2>/dev/null) || exit 12; \
         $N exec $id -- sh -c 'echo exec-ok; grep ^Seccomp: /proc/self/status' || exit 13; \
         echo \"mine=$id\"; $N stats --format json | sed 's/^/stats: /'; \
         $N stats {theirs} 2>&1 | sed 's/^/theirs: /'; \
         $N rm -f $id || exit 14; $N ps -aq",
        rt = rt.0.display(),
        bin = bin().display()
    );
    let o = Command::new("su")
        .args(["nobody", "-s", "/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{:?}: {}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    let out = stdout(&o);
    assert!(out.contains("fg-ok") && out.contains("exec-ok"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(!out.lines().any(|l| l.len() == 16), "no record left: {out}");
    run(&["rm", "-f", &theirs]);
    // stats: the caller's own sandbox, never another user's.
    let mine = out
        .lines()
        .find_map(|l| l.strip_prefix("mine="))
        .unwrap_or_default();
    let stats: Vec<&str> = out.lines().filter(|l| l.starts_with("stats: ")).collect();
    assert_eq!(stats.len(), 1, "{out}");
    assert!(stats[0].contains(mine), "{out}");
    assert!(
        out.contains("theirs: ") && out.contains("no such sandbox"),
        "{out}"
    );
    // No limit asked for: no warning that limits are not applied (it said so on every run).
    assert!(out.lines().any(|l| l == "fg-stderr="), "{out}");
    // The copy modes need root: one line saying so and what works instead.
    assert!(
        out.contains("ctx: nucleus: --context-mode: copy needs root"),
        "{out}"
    );
    assert!(
        out.contains("ws: nucleus: --workspace-mode: copy-in-out needs root"),
        "{out}"
    );
}

#[test]
fn health_checks_report_healthy_unhealthy_and_recovery_as_events() {
    let _g = serial();
    let root = Root::new("health");
    let ev = root.path().join("events.jsonl");
    let ev_s = ev.to_str().unwrap().to_string();
    let health_of = |id: &str| {
        root.state_file(id)["health"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    leaves_nothing(|| {
        let id = root.ok(&[
            "run",
            "-d",
            "--events-jsonl",
            &ev_s,
            "--health-cmd",
            "echo probing; test ! -e /tmp/bad",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "--",
            "sleep",
            "1000",
        ]);
        wait_until("healthy", Duration::from_secs(10), || {
            health_of(&id) == "healthy"
        });
        let table = root.ok(&["ps"]);
        assert!(table.contains("(healthy)"), "{table}");
        // Machine-readable too: ps JSON, the OCI state's annotations, inspect.
        assert_eq!(root.ps()[0]["health"], "healthy");
        let st: Value = serde_json::from_str(&root.ok(&["state", &id])).unwrap();
        assert_eq!(st["annotations"]["org.nucleus.health"], "healthy", "{st}");
        let ins: Value = serde_json::from_str(&root.ok(&["inspect", &id])).unwrap();
        assert_eq!(ins["health"], "healthy", "{ins}");
        root.ok(&["exec", &id, "--", "touch", "/tmp/bad"]);
        wait_until("unhealthy", Duration::from_secs(10), || {
            health_of(&id) == "unhealthy"
        });
        root.ok(&["exec", &id, "--", "rm", "/tmp/bad"]);
        wait_until("healthy again", Duration::from_secs(10), || {
            health_of(&id) == "healthy"
        });
        root.ok(&["rm", "-f", &id]);

        // A check that outlives its timeout fails; during the start period failures do not
        // count (starting, then unhealthy once the period is over).
        let id = root.ok(&[
            "run",
            "-d",
            "--events-jsonl",
            &ev_s,
            "--health-cmd",
            "sleep 1000",
            "--health-timeout",
            "200ms",
            "--health-interval",
            "100ms",
            "--health-retries",
            "1",
            "--health-start-period",
            "1s",
            "--",
            "sleep",
            "1000",
        ]);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(health_of(&id), "starting");
        wait_until("unhealthy by timeout", Duration::from_secs(10), || {
            health_of(&id) == "unhealthy"
        });
        root.ok(&["rm", "-f", &id]);
    });
    let events = std::fs::read_to_string(&ev).unwrap();
    let health: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "health")
        .collect();
    let statuses: Vec<&str> = health
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["healthy", "unhealthy", "healthy", "unhealthy"],
        "{events}"
    );
    assert_eq!(health[0]["output"], "probing");
    assert_eq!(health[1]["failing_streak"], 2);
    assert_eq!(health[3]["exit_code"], 124);
}

#[test]
fn bad_health_flags_are_one_line_naming_the_flag() {
    let root = Root::new("health-bad");
    for (args, flag) in [
        (
            vec!["--health-cmd", "true", "--health-interval", "soon"],
            "--health-interval",
        ),
        (
            vec!["--health-cmd", "true", "--health-interval", "10ms"],
            "--health-interval",
        ),
        (
            vec!["--health-cmd", "true", "--health-retries", "0"],
            "--health-retries",
        ),
        (vec!["--health-cmd", " "], "--health-cmd"),
        // Health settings without a check are refused, not ignored.
        (vec!["--health-interval", "soon"], "--health-cmd"),
        (vec!["--health-retries", "5"], "--health-cmd"),
        (vec!["--supervisor", "nope"], "--supervisor"),
        (vec!["--supervisor", "systemd"], "--supervisor"),
    ] {
        let mut a = vec!["run", "-d"];
        a.extend(args);
        a.extend(["--", "true"]);
        let o = root.run(&a);
        assert_eq!(o.status.code(), Some(125), "{a:?}");
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(flag), "{e}");
    }
    assert!(root.records().is_empty());
}

#[test]
fn signals_reach_a_workload_of_another_uid_and_init_keeps_only_cap_kill() {
    let _g = serial();
    let root = Root::new("siguid");
    let mut child = root
        .cmd(&[
            "run",
            "-u",
            "1000",
            "--",
            "sh",
            "-c",
            "trap 'echo got-TERM; exit 3' TERM; echo ready; while true; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let id = root.ps()[0]["id"].as_str().unwrap().to_string();
    let init = root.state_file(&id)["init"]["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    for (k, want) in [
        ("CapEff", "0000000000000020"),
        ("CapPrm", "0000000000000020"),
        ("CapBnd", "0000000000000020"),
        ("CapInh", "0000000000000000"),
    ] {
        let got = status.lines().find(|l| l.starts_with(k)).unwrap();
        assert!(got.ends_with(want), "init {got}, want {want}");
    }
    // SAFETY: a plain kill of the nucleus process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let st = wait_within(&mut child, DEADLINE, "child");
    assert!(rest.contains("got-TERM"), "{rest}");
    assert_eq!(st.code(), Some(3));
}
