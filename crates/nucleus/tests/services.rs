//! Services (#20): readiness (`--sd-notify` relayed to the caller's NOTIFY_SOCKET,
//! `--readiness-tcp`, `--readiness-exec`) and supervision (`--restart` with back-off,
//! `--health-on-failure restart`), from inside (what the workload does) and outside (the
//! messages a service manager receives, the record, the events).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::Value;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

/// A service manager's notification socket: what arrives, with when.
struct Manager {
    sock: UnixDatagram,
    t0: Instant,
}

impl Manager {
    fn new(t: &TempDir) -> (Manager, String) {
        let p = t.path().join("notify.sock");
        let sock = UnixDatagram::bind(&p).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        (
            Manager {
                sock,
                t0: Instant::now(),
            },
            p.display().to_string(),
        )
    }
    /// Every message until `STOPPING=1` (or `limit`), each with its time since `new`.
    fn until_stopping(&self, limit: Duration) -> Vec<(Duration, String)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while self.t0.elapsed() < limit {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let stop = m == "STOPPING=1";
                out.push((self.t0.elapsed(), m));
                if stop {
                    break;
                }
            }
        }
        out
    }
}

fn events(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn event<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {all:?}"))
}

/// `nucleus run FLAGS -- CMD` with NOTIFY_SOCKET set, in the background.
fn spawn_notified(sock: &str, flags: &[&str], cmd: &[&str]) -> std::process::Child {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(cmd);
    nucleus(&args)
        .env("NOTIFY_SOCKET", sock)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sd_notify_relays_what_is_safe_and_ready_comes_from_the_workload() {
    let _g = serial();
    let t = TempDir::new("svc-notify");
    let (m, sock) = Manager::new(&t);
    let ev = t.path().join("events.jsonl");
    let evs = ev.display().to_string();
    // The workload (uid 1000) says it is starting, tries to claim a host pid and a file
    // descriptor store, then is ready 0.6 s in.
    let py = "import socket, os, time\n\
              s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
              a = os.environ['NOTIFY_SOCKET']\n\
              print('socket', a, flush=True)\n\
              time.sleep(0.3)\n\
              s.sendto(b'STATUS=warming up\\nMAINPID=1\\nFDSTORE=1', a)\n\
              time.sleep(0.3)\n\
              s.sendto(b'READY=1\\nSTATUS=serving', a)\n\
              time.sleep(0.3)\n";
    let child = spawn_notified(
        &sock,
        &["--sd-notify", "-u", "1000", "--events-jsonl", &evs],
        &["python3", "-c", py],
    );
    let got = m.until_stopping(Duration::from_secs(20));
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("socket /run/notify"), "{}", stdout(&o));
    let msgs: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    // MAINPID and FDSTORE never reach the manager; READY=1 only when the workload said it.
    assert_eq!(
        msgs,
        [
            "STATUS=warming up",
            "READY=1",
            "STATUS=serving",
            "STOPPING=1"
        ],
        "{got:?}"
    );
    let ready_at = got[1].0;
    assert!(ready_at >= Duration::from_millis(550), "{got:?}");
    let all = events(&ev);
    assert_eq!(event(&all, "ready")["how"], "notify");
    // The socket the runtime made is gone with the sandbox.
    let left: Vec<_> = std::fs::read_dir(state_root().join(".notify"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn readiness_by_tcp_and_by_command_waits_for_the_service() {
    let _g = serial();
    // Ready 0.8 s in, not before: what the manager hears first is READY=1, then.
    let ready_after = |name: &str, flags: &[&str], cmd: &[&str]| {
        let t = TempDir::new(name);
        let (m, sock) = Manager::new(&t);
        let child = spawn_notified(&sock, flags, cmd);
        let got = m.until_stopping(Duration::from_secs(20));
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(
            got.first().map(|g| g.1.as_str()),
            Some("READY=1"),
            "{name}: {got:?}"
        );
        assert!(
            got[0].0 >= Duration::from_millis(750),
            "{name}: ready too soon: {got:?}"
        );
    };
    // TCP: the server listens 0.8 s in (in the sandbox's own network namespace).
    ready_after(
        "svc-ready-tcp",
        &["--readiness-tcp", "8080"],
        &[
            "sh",
            "-c",
            "sleep 0.8; exec python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",8080)); s.listen(); time.sleep(0.5)'",
        ],
    );
    // A command: ready once it exits 0 (the file appears 0.8 s in).
    ready_after(
        "svc-ready-exec",
        &["--readiness-exec", "test -e /tmp/up"],
        &["sh", "-c", "sleep 0.8; touch /tmp/up; sleep 1"],
    );
    // Without a readiness flag: ready when the workload starts.
    let t3 = TempDir::new("svc-ready-start");
    let (m, sock) = Manager::new(&t3);
    let child = spawn_notified(&sock, &[], &["sleep", "0.5"]);
    let got = m.until_stopping(Duration::from_secs(20));
    child.wait_with_output().unwrap();
    assert_eq!(
        got.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(),
        ["READY=1", "STOPPING=1"]
    );
    assert!(got[0].0 < Duration::from_millis(450), "{got:?}");
}

/// The record's restarts and status, as `ps --format json` shows them.
fn ps_of(id: &str) -> Value {
    let o = run(&["ps", "-a", "--format", "json"]);
    let all: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    all.into_iter().find(|s| s["id"] == id).unwrap()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn on_failure_restarts_back_off_and_stop_at_the_limit() {
    let _g = serial();
    let t = TempDir::new("svc-restart");
    let ev = t.path().join("events.jsonl");
    let evs = ev.display().to_string();
    let o = run(&[
        "run",
        "-d",
        "--restart",
        "on-failure:3",
        "--events-jsonl",
        &evs,
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    wait_for(
        "three restarts, and the last run",
        Duration::from_secs(20),
        || {
            let s = ps_of(&id);
            s["restarts"]["count"] == 3
                && s["restarts"]["next_ms"].is_null()
                && s["status"] == "stopped"
        },
    );
    let all = events(&ev);
    let restarts: Vec<&Value> = all.iter().filter(|e| e["event"] == "restart").collect();
    assert_eq!(restarts.len(), 3, "{all:?}");
    // 100 ms, then doubling (each run failed at once).
    let delays: Vec<u64> = restarts
        .iter()
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [100, 200, 400]);
    assert!(restarts.iter().all(|e| e["reason"] == "exit 3"));
    assert_eq!(all.iter().filter(|e| e["event"] == "started").count(), 4);
    assert_eq!(ps_of(&id)["restarts"]["reason"], "exit 3");
    let o = run(&["rm", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn always_restarts_until_stop_and_stop_holds_even_while_waiting() {
    let _g = serial();
    leaves_nothing(|| {
        // A workload that keeps failing: stop while the monitor waits to restart it.
        let o = run(&[
            "run",
            "-d",
            "--restart",
            "always",
            "--",
            "sh",
            "-c",
            "sleep 0.2; exit 1",
        ]);
        let id = stdout(&o).trim().to_string();
        wait_for("two restarts", Duration::from_secs(20), || {
            ps_of(&id)["restarts"]["count"].as_u64() >= Some(2)
        });
        let o = run(&["stop", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        let count = ps_of(&id)["restarts"]["count"].clone();
        std::thread::sleep(Duration::from_secs(2));
        let s = ps_of(&id);
        assert_eq!(s["restarts"]["count"], count, "restarted after stop: {s}");
        assert_eq!(s["status"], "stopped", "{s}");
        assert!(run(&["rm", &id]).status.success());
        // A workload that runs: stop ends it for good.
        let o = run(&["run", "-d", "--restart", "always", "--", "sleep", "100"]);
        let id = stdout(&o).trim().to_string();
        let o = run(&["stop", "-t", "2", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::thread::sleep(Duration::from_millis(500));
        let s = ps_of(&id);
        assert!(s["restarts"].is_null(), "{s}");
        assert!(run(&["rm", &id]).status.success());
        // rm -f of a running one: removed at once, not restarted after the kill (it used to
        // be, and rm -f waited 30 s for the monitor, then failed).
        let o = run(&["run", "-d", "--restart", "always", "--", "sleep", "100"]);
        let id = stdout(&o).trim().to_string();
        let t = std::time::Instant::now();
        let o = run(&["rm", "-f", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "rm -f took {:?}",
            t.elapsed()
        );
    });
}

#[test]
fn an_unhealthy_sandbox_is_restarted_when_asked() {
    let _g = serial();
    let t = TempDir::new("svc-health");
    let ev = t.path().join("events.jsonl");
    let evs = ev.display().to_string();
    // Healthy for 1 s, then the check fails for good: killed and started again.
    let o = run(&[
        "run",
        "-d",
        "--events-jsonl",
        &evs,
        "--health-cmd",
        "test -e /tmp/healthy",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-on-failure",
        "restart",
        "--",
        "sh",
        "-c",
        "touch /tmp/healthy; sleep 1; rm /tmp/healthy; sleep 100",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    wait_for("a restart for health", Duration::from_secs(20), || {
        ps_of(&id)["restarts"]["reason"] == "unhealthy"
    });
    wait_for("running again", Duration::from_secs(20), || {
        ps_of(&id)["status"] == "running"
    });
    let all = events(&ev);
    assert!(all
        .iter()
        .any(|e| e["event"] == "health" && e["status"] == "unhealthy"));
    assert!(all
        .iter()
        .any(|e| e["event"] == "restart" && e["reason"] == "unhealthy"));
    assert!(run(&["stop", "-t", "1", &id]).status.success());
    assert!(run(&["rm", &id]).status.success());
}

#[test]
fn bad_readiness_and_restart_flags_are_refused() {
    let _g = serial();
    for (args, flag, want) in [
        (
            vec!["--restart", "sometimes"],
            "--restart",
            "no, on-failure",
        ),
        (
            vec!["--restart", "on-failure:0"],
            "--restart",
            "MAX at least 1",
        ),
        (vec!["--restart", "always"], "--restart", "give -d"),
        (
            vec!["-d", "--rm", "--restart", "always"],
            "--restart",
            "not with --rm",
        ),
        (
            vec!["-d", "--health-on-failure", "restart"],
            "--health-on-failure",
            "--health-cmd",
        ),
        (
            vec!["--health-on-failure", "maybe"],
            "--health-on-failure",
            "none or restart",
        ),
        (
            vec!["--sd-notify", "--readiness-tcp", "80"],
            "--sd-notify",
            "give one of",
        ),
        (
            vec!["--readiness-tcp", "0"],
            "--readiness-tcp",
            "1 to 65535",
        ),
        (
            vec!["--readiness-exec", " "],
            "--readiness-exec",
            "empty command",
        ),
    ] {
        let mut a = vec!["run"];
        a.extend(args.iter());
        a.extend(["--", "true"]);
        let o = leaves_nothing(|| run(&a));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{a:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{a:?}: {err}");
        assert!(
            err.contains(&format!("{flag}: ")) && err.contains(want),
            "{a:?}: {err}"
        );
    }
}
