//! Sandboxes that outlive a command: `run -d`, `create`/`start`, `ps`, `state`, `logs`,
//! `exec`, `stop`, `kill`, `rm`. No daemon: each sandbox has a monitor, the process that
//! started it, which keeps its record in the state store (nucleus-sys `store`) and writes its
//! events. A foreground `run` is its own sandbox's monitor and keeps a record too (removed at
//! exit), so `ps`, `exec`, `stop` and `kill` work on it as well.

use crate::cli::{ExecArgs, KillArgs, LogsArgs, PsArgs, RmArgs, RunArgs, StopArgs};
use crate::log::Logger;
use crate::telemetry::{self, Tracer};
use anyhow::{anyhow, bail, Context, Result};
use nucleus_spec::config::{ConfigError, EnvVar};
use nucleus_spec::state::{self, ExitInfo, ProcId, SecurityReport, State, Status};
use nucleus_spec::Plan;
use nucleus_sys::raw::WaitStatus;
use nucleus_sys::sandbox::{Detach, Observer, Outcome};
use nucleus_sys::store::{self, now_ms, Store};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The state root: `--root`, else /run/nucleus for root, else $XDG_RUNTIME_DIR/nucleus.
pub fn state_root(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(r) = flag {
        return Ok(r.into());
    }
    if nucleus_sys::security::is_root() {
        return Ok("/run/nucleus".into());
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(x) if !x.is_empty() => Ok(Path::new(&x).join("nucleus")),
        _ => bail!("--root: not given, and XDG_RUNTIME_DIR is not set (where should state go?)"),
    }
}

/// `--events-jsonl PATH` / `--events-fd N`: one JSON object per line.
#[derive(Default)]
pub struct Events {
    sinks: Vec<File>,
}

impl Events {
    pub fn open(path: Option<&Path>, fd: Option<i32>) -> Result<Events> {
        let mut sinks = Vec::new();
        if let Some(p) = path {
            sinks.push(store::open_append(p).map_err(|e| {
                ConfigError::new("--events-jsonl", format!("{}: {e}", p.display()))
            })?);
        }
        if let Some(n) = fd {
            sinks.push(store::dup_fd(n).map_err(|e| {
                ConfigError::new("--events-fd", format!("{n}: not an open descriptor ({e})"))
            })?);
        }
        Ok(Events { sinks })
    }

    pub fn emit(&mut self, kind: &str, id: &str, fields: serde_json::Value) {
        if self.sinks.is_empty() {
            return;
        }
        let mut line = state::event(kind, id, now_ms(), fields).to_string();
        line.push('\n');
        for s in &mut self.sinks {
            let _ = s.write_all(line.as_bytes());
        }
    }
}

/// The host's append-only audit log: one line per lifecycle action, with who asked.
pub fn audit(store: &Store, verb: &str, id: &str, result: &Result<u8>) {
    let (ok, err) = match result {
        Ok(0) => (true, None),
        Ok(c) => (false, Some(format!("exit status {c}"))),
        Err(e) => (false, Some(crate::one_line(e))),
    };
    let mut line = serde_json::json!({
        "v": state::EVENTS_VERSION,
        "time": state::rfc3339(now_ms()),
        "verb": verb,
        "id": id,
        "uid": nucleus_sys::security::real_uid(),
        "pid": std::process::id(),
        "ok": ok,
    });
    if let Some(e) = err {
        line["error"] = e.into();
    }
    if let Ok(mut f) = store::open_append(&store.root().join("audit.jsonl")) {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// How the monitor reports to the command that launched it (detached sandboxes): lines
/// `warn MSG`, then `ok` or `error CODE MSG`.
struct Notify(Option<File>);

impl Notify {
    fn line(&mut self, l: &str) {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(format!("{l}\n").as_bytes());
        }
    }
    fn done(&mut self, l: &str) {
        self.line(l);
        self.0 = None;
    }
}

/// The monitor's view of one sandbox: it records every step in the store and the events.
pub struct Tracker<'a> {
    pub store: &'a Store,
    pub state: State,
    pub events: Events,
    /// Foreground runs warn on stderr; detached ones through the launcher.
    log: Option<&'a Logger>,
    notify: Notify,
    hold: bool,
    /// Foreground runs write their record only once the sandbox exists (the writes overlap
    /// the sandbox's own setup), with this plan.
    plan: Option<&'a Plan>,
    /// When the workload was about to exec (for the `create` span).
    pub applied_ns: Option<u64>,
    /// The record was already removed (a foreground run's, while its sandbox was torn down).
    removed: bool,
    /// `--health-cmd`: the checks this supervisor runs.
    health: Option<Health>,
    /// The v1 freezer leaf a pause made (and whether its parent goes when empty), once the
    /// record that names it is gone.
    freezer: Option<(PathBuf, bool)>,
    /// A detached sandbox's log, kept under `--log-max-size`.
    log_cap: Option<LogCap>,
}

/// The files of a detached sandbox's output, in its directory: its stdout and its stderr
/// (the monitor's own warnings included), each with the older part moved aside.
const LOG_STREAMS: [&str; 2] = ["log", "log.err"];

/// A detached sandbox's logs (`log` and `log.err` in its directory, which the workload appends
/// to directly) are kept under a size each: once one is larger, its last `max` bytes move to
/// `<name>.1` (replacing the older one) and it starts again empty. The workload writes with
/// O_APPEND, so its next write lands at the new end. Checked every 250 ms, every 50 ms while
/// one grows, so a log exceeds the size by at most what the workload writes in that time;
/// `nucleus logs` reads both parts.
struct LogCap {
    dir: std::path::PathBuf,
    max: u64,
    next: Instant,
    last_len: [u64; 2],
}

impl LogCap {
    fn check(&mut self) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        let mut growing = false;
        for (i, name) in LOG_STREAMS.iter().enumerate() {
            let log = self.dir.join(name);
            let len = std::fs::metadata(&log).map_or(0, |m| m.len());
            growing |= len.saturating_sub(self.last_len[i]) >= 64 << 10;
            self.last_len[i] = len;
            if len > self.max {
                self.cut(name, len);
                self.last_len[i] = 0;
            }
        }
        self.next = now + Duration::from_millis(if growing { 50 } else { 250 });
    }
    fn cut(&self, name: &str, len: u64) {
        let log = self.dir.join(name);
        let rotated = self.dir.join(format!("{name}.1"));
        let tmp = self.dir.join(format!("{name}.1.tmp"));
        let max = self.max;
        let cut = std::fs::OpenOptions::new().write(true).open(&log);
        // The last `max` bytes and whatever the workload appends meanwhile (copied to the end,
        // twice: the second pass right before the cut), so what it writes during the copy is
        // not lost with the cut; only a write in the microseconds between the last read and
        // the truncation can be.
        let moved = (|| -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut src = File::open(&log)?;
            src.seek(SeekFrom::Start(len - max))?;
            let mut dst = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            std::io::copy(&mut src, &mut dst)?;
            std::io::copy(&mut src, &mut dst)?;
            Ok(())
        })();
        // Cut whether or not a copy could be kept: the log is never left to grow.
        if let Ok(f) = cut {
            let _ = f.set_len(0);
        }
        if moved
            .and_then(|()| std::fs::rename(&tmp, &rotated))
            .is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    fn ms_until(&self) -> i32 {
        let d = self.next.saturating_duration_since(Instant::now());
        i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1)
    }
}

/// Health checks: `nucleus exec ID -- /bin/sh -c CMD` every interval once the workload runs;
/// `retries` consecutive failures after the start period make the sandbox unhealthy, one
/// success healthy again. Status changes are recorded and emitted as `health` events.
struct Health {
    check: nucleus_spec::config::HealthCheck,
    root: std::path::PathBuf,
    started: Option<Instant>,
    next: Option<Instant>,
    running: Option<(std::process::Child, std::os::fd::OwnedFd, Instant)>,
    failures: u32,
    status: &'static str,
}

impl Health {
    /// No more checks; one still running is killed and reaped.
    fn stop(&mut self) {
        self.next = None;
        if let Some((mut c, _, _)) = self.running.take() {
            Self::kill(&c);
            let _ = c.wait();
        }
    }
    /// Kill a check and everything it started: the process `nucleus exec` started in the
    /// sandbox leads a session and group of its own (its children stay in that group), so
    /// that group goes first, then the check's own group.
    fn kill(c: &std::process::Child) {
        if let Some(inner) = nucleus_sys::raw::first_child(c.id() as i32) {
            let _ = nucleus_sys::raw::kill(-inner, libc::SIGKILL);
        }
        let _ = nucleus_sys::raw::kill(-(c.id() as i32), libc::SIGKILL);
    }
    fn new(plan: &Plan, store: &Store) -> Option<Health> {
        plan.health.clone().map(|check| Health {
            check,
            root: store.root().to_path_buf(),
            started: None,
            next: None,
            running: None,
            failures: 0,
            status: "starting",
        })
    }
    fn ms_until(t: Instant) -> i32 {
        // Rounded up: a poll that wakes before the deadline would only spin.
        let d = t.saturating_duration_since(Instant::now());
        (d.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32
    }
    fn next_tick_ms(&self) -> i32 {
        match (&self.running, self.next) {
            (Some((_, _, began)), _) => {
                Self::ms_until(*began + Duration::from_millis(self.check.timeout_ms))
            }
            (None, Some(n)) => Self::ms_until(n),
            (None, None) => -1,
        }
    }
    fn spawn(&mut self, id: &str) {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(_) => return,
        };
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new(exe)
            .arg("--root")
            .arg(&self.root)
            .args(["exec", id, "--", "/bin/sh", "-c", &self.check.cmd])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // A group of its own: a check that times out is killed with every process of it.
            .process_group(0)
            .spawn();
        if let Ok(c) = child {
            match nucleus_sys::raw::pidfd_open(c.id() as i32) {
                Ok(fd) => self.running = Some((c, fd, Instant::now())),
                Err(_) => {
                    let mut c = c;
                    Self::kill(&c);
                    let _ = c.wait();
                }
            }
        }
    }
    /// The check that ended: (exit code, its first output).
    fn collect(&mut self) -> Option<(i32, String)> {
        let (mut c, _pidfd, began) = self.running.take()?;
        let done = matches!(c.try_wait(), Ok(Some(_)));
        let timed_out = !done && began.elapsed() >= Duration::from_millis(self.check.timeout_ms);
        if timed_out {
            Self::kill(&c);
        }
        let st = match c.wait() {
            Ok(st) => st,
            Err(_) => return Some((125, "the check could not be waited for".into())),
        };
        // What is there now only: a process the check left behind may hold the pipes.
        let out = [read_now(c.stdout.take()), read_now(c.stderr.take())].concat();
        if timed_out {
            return Some((124, format!("timed out after {} ms", self.check.timeout_ms)));
        }
        Some((
            st.code().unwrap_or(128),
            out.trim().chars().take(512).collect(),
        ))
    }
}

/// Up to 512 bytes a pipe holds now, without waiting for more.
fn read_now<P: Read + std::os::fd::AsRawFd>(pipe: Option<P>) -> String {
    let Some(mut p) = pipe else {
        return String::new();
    };
    // SAFETY: fcntl on a descriptor the pipe owns.
    unsafe { libc::fcntl(p.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut b = [0u8; 512];
    let n = p.read(&mut b).unwrap_or(0);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

impl Tracker<'_> {
    fn save(&self) {
        let _ = self.store.write(&self.state);
    }
    /// A warning: on stderr for a foreground run; to the launcher while it waits; after that
    /// into a detached sandbox's log (the monitor's stderr).
    fn say(&mut self, what: &str) {
        // One line whatever the sandbox put in it (the launcher's protocol is line-based).
        let what = &nucleus_spec::config::single_line(what);
        match (self.log, &self.notify.0) {
            (Some(l), _) => l.warn(what),
            (None, Some(_)) => self.notify.line(&format!("warn {what}")),
            (None, None) => eprintln!("nucleus: warning: {what}"),
        }
    }
    fn warn(&mut self, what: &str) {
        self.say(what);
        self.events.emit(
            "security_degraded",
            &self.state.id,
            serde_json::json!({ "what": what }),
        );
    }
}

fn workload_of(init: &ProcId) -> Option<ProcId> {
    let pid = nucleus_sys::raw::first_child(init.pid)?;
    Some(ProcId {
        pid,
        start: store::start_time(pid)?,
    })
}

impl Tracker<'_> {
    /// The workload runs: health checks begin.
    fn health_begin(&mut self) {
        if let Some(h) = &mut self.health {
            if h.started.is_none() {
                let now = Instant::now();
                h.started = Some(now);
                h.next = Some(now + Duration::from_millis(h.check.interval_ms));
                self.state.health = Some(h.status.into());
            }
        }
    }
    fn health_result(&mut self, code: i32, output: String) {
        let Some(h) = &mut self.health else {
            return;
        };
        let now = Instant::now();
        h.next = Some(now + Duration::from_millis(h.check.interval_ms));
        let in_start = h
            .started
            .is_some_and(|s| now < s + Duration::from_millis(h.check.start_period_ms));
        let before = h.status;
        if code == 0 {
            h.failures = 0;
            h.status = "healthy";
        } else if !in_start {
            h.failures += 1;
            if h.failures >= h.check.retries {
                h.status = "unhealthy";
            }
        }
        let (status, streak) = (h.status, h.failures);
        if status != before {
            self.state.health = Some(status.into());
            self.save();
            if status == "unhealthy" {
                self.say(&format!(
                    "health check failing ({streak} in a row): {output}"
                ));
            }
            self.events.emit(
                "health",
                &self.state.id,
                serde_json::json!({
                    "status": status,
                    "failing_streak": streak,
                    "exit_code": code,
                    "output": output,
                }),
            );
        }
    }
}

impl Observer for Tracker<'_> {
    fn next_tick_ms(&self) -> i32 {
        let health = self.health.as_ref().map_or(-1, |h| h.next_tick_ms());
        match (&self.log_cap, health) {
            (None, h) => h,
            (Some(l), -1) => l.ms_until(),
            (Some(l), h) => h.min(l.ms_until()),
        }
    }
    fn watched(&self) -> Option<i32> {
        use std::os::fd::AsRawFd;
        let (_, fd, _) = self.health.as_ref()?.running.as_ref()?;
        Some(fd.as_raw_fd())
    }
    fn tick(&mut self) {
        if let Some(l) = &mut self.log_cap {
            l.check();
        }
        let id = self.state.id.clone();
        let Some(h) = &mut self.health else {
            return;
        };
        let now = Instant::now();
        if let Some((c, _, began)) = &mut h.running {
            let done = matches!(c.try_wait(), Ok(Some(_)));
            if done || now >= *began + Duration::from_millis(h.check.timeout_ms) {
                if let Some((code, out)) = h.collect() {
                    self.health_result(code, out);
                }
            }
        } else if h.next.is_some_and(|n| now >= n) {
            h.next = None;
            h.spawn(&id);
            if h.running.is_none() {
                // Could not even start: a failed check, and the next one on schedule.
                self.health_result(125, "the check could not be started".into());
            }
        }
    }
    fn started(&mut self, pid: i32, cgroups: &[PathBuf]) {
        crate::timing::mark("clone, maps, go sent");
        self.state.init = store::start_time(pid).map(|start| ProcId { pid, start });
        self.state.cgroups = cgroups.to_vec();
        // A foreground run's record is made now, with its plan, while the sandbox builds its
        // root (the writes overlap that setup): it must be listed before the workload's program
        // runs (a script that sees the program's first output may `ps`, `kill` or `exec` it
        // at once). A named one was made before the start (the name is claimed); detached
        // ones are listed from now on (`creating` until the workload's report).
        if let Some(l) = self.log {
            l.started(&self.state.id, pid, cgroups);
        }
        match self.plan.take().and_then(|p| serde_json::to_vec(p).ok()) {
            // Only a foreground tracker carries the plan.
            Some(p) if self.state.name.is_none() => {
                let _ = self
                    .store
                    .create(&self.state.id, None, &self.state, &[("plan.json", &p)]);
            }
            Some(p) => {
                let _ = self.store.write_file(&self.state.id, "plan.json", &p);
                self.save();
            }
            None => self.save(),
        }
        crate::timing::mark("write record");
    }
    fn degraded(&mut self, what: &str) {
        self.warn(what);
    }
    fn timed_out(&mut self, after_ms: u64) {
        let secs = after_ms as f64 / 1000.0;
        self.say(&format!(
            "--timeout {secs}s ran out: SIGTERM to the workload, SIGKILL to the sandbox in {} s",
            nucleus_spec::plan::TIMEOUT_GRACE_MS / 1000
        ));
        self.events.emit(
            "timeout",
            &self.state.id,
            serde_json::json!({ "after_ms": after_ms }),
        );
        let exit = self.state.exit.get_or_insert_with(Default::default);
        exit.error = Some(format!("timed out after {secs}s"));
    }
    fn applied(&mut self, r: &SecurityReport) {
        crate::timing::mark("workload applied (child setup done)");
        if self.log.is_some() {
            // A foreground workload runs from now on (detached ones: once exec succeeded).
            self.health_begin();
        }
        let now = crate::telemetry::now_ns();
        self.applied_ns = Some(now);
        self.notify.line(&format!("created {now}"));
        for d in &r.degraded {
            self.warn(&format!("security degraded: {d}"));
        }
        self.state.protections = Some(r.clone());
        let fields = serde_json::json!({
            "pid": self.state.init.map(|p| p.pid),
            "protections": r,
        });
        self.events.emit("created", &self.state.id, fields.clone());
        if self.log.is_some() {
            // Foreground: the workload execs right after this report.
            self.state.status = Status::Running;
            self.state.started_ms = Some(now_ms());
            self.save();
            crate::timing::mark("update record");
            self.events.emit("started", &self.state.id, fields);
            return;
        }
        self.state.workload = self.state.init.as_ref().and_then(workload_of);
        if self.hold {
            self.state.status = Status::Created;
            self.save();
            self.notify.done("ok");
        } else {
            self.save();
        }
    }
    fn workload_exited(&mut self) {
        if let Some(h) = &mut self.health {
            h.stop();
        }
        // A foreground run's record goes while the kernel tears the namespaces down, off the
        // path to the exit status.
        if self.log.is_some() && self.state.auto_remove {
            self.freezer = freezer_of(self.store, &self.state.id);
            self.removed = self
                .store
                .remove(&self.state.id, self.state.name.as_deref())
                .is_ok();
        }
    }
    fn egress_refused(&mut self, what: &str) {
        self.say(what);
        let (kind, target) = what.split_once(": ").unwrap_or(("egress refused", what));
        self.events.emit(
            "egress_refused",
            &self.state.id,
            serde_json::json!({
                "kind": if kind.starts_with("dns") { "dns" } else { "packet" },
                "target": target,
            }),
        );
    }
    fn denied(&mut self, pid: u32, syscall: &str, errno: i32) {
        self.say(&format!(
            "seccomp: denied {syscall} (errno {errno}) to pid {pid}"
        ));
        self.events.emit(
            "seccomp_denied",
            &self.state.id,
            serde_json::json!({ "syscall": syscall, "errno": errno, "pid": pid }),
        );
    }
    fn denied_again(&mut self, syscall: &str, errno: i32, count: u64) {
        self.say(&format!(
            "seccomp: denied {syscall} (errno {errno}) {count} more times"
        ));
        self.events.emit(
            "seccomp_denied",
            &self.state.id,
            serde_json::json!({ "syscall": syscall, "errno": errno, "count": count }),
        );
    }
    fn exec_result(&mut self, failure: Option<(i32, &str, &str)>) {
        match failure {
            None => {
                self.state.status = Status::Running;
                self.state.started_ms = Some(now_ms());
                self.health_begin();
                self.save();
                self.events.emit(
                    "started",
                    &self.state.id,
                    serde_json::json!({
                        "pid": self.state.init.map(|p| p.pid),
                        "protections": self.state.protections,
                    }),
                );
                self.notify.done("ok");
            }
            Some((code, stage, err)) => {
                self.state.exit = Some(ExitInfo {
                    code: Some(code),
                    error: Some(format!("{stage}: {err}")),
                    ..Default::default()
                });
                if self.hold {
                    // `start` is answered right after this: the record must already say how
                    // it ended, so an `rm` that follows finds it stopped.
                    self.state.status = Status::Stopped;
                    self.state.finished_ms = Some(now_ms());
                    self.save();
                }
                // `run -d`: the launcher hears of it once the record is gone (`finish`).
            }
        }
    }
}

/// Record how the sandbox ended; remove the record if asked to (or if it never ran).
/// Returns the shell-style status.
pub fn finish(t: &mut Tracker<'_>, out: &Outcome, memory_limit: Option<u64>) -> u8 {
    // (A sandbox killed as a whole never reports its workload's exit.)
    if let Some(h) = &mut t.health {
        h.stop();
    }
    let id = t.state.id.clone();
    let never_ran = out.report.is_none()
        || (out.failure.is_some() && t.state.status != Status::Running && !t.hold);
    let mut code = out.status.code().clamp(0, 255) as u8;
    if let Some((stage, _)) = &out.failure {
        if out.report.is_none() {
            code = state::failed_start_code(stage, code);
        }
    }
    let oom = out.usage.oom_kills > 0;
    if oom {
        let limit = memory_limit
            .map(nucleus_spec::cgroup::human_bytes)
            .unwrap_or_default();
        let msg = format!(
            "out of memory: the OOM killer killed {} process(es) in the sandbox (--memory {limit})",
            out.usage.oom_kills
        );
        if let Some(l) = t.log {
            l.error(&msg);
        }
        t.events.emit(
            "oom",
            &id,
            serde_json::json!({ "kills": out.usage.oom_kills }),
        );
        // The exit code stays the workload's: 137 only if the OOM killer killed the workload
        // itself (its status says so); a shell whose child was killed exits as it chooses.
    }
    let finished = now_ms();
    let signal = match out.status {
        WaitStatus::Signaled(s) => Some(s),
        _ => None,
    };
    let mut exit = t.state.exit.take().unwrap_or_default();
    exit.code = Some(i32::from(code));
    exit.signal = signal;
    exit.oom_killed = oom;
    if exit.error.is_none() {
        exit.error = out.failure.as_ref().map(|(s, e)| format!("{s}: {e}"));
    }
    t.events.emit(
        "exited",
        &id,
        serde_json::json!({
            "status": code,
            "signal": signal,
            "oom_killed": oom,
            "duration_ms": t.state.started_ms.map(|s| finished.saturating_sub(s)),
            "usage": out.usage,
            "error": exit.error,
        }),
    );
    t.state.status = Status::Stopped;
    t.state.finished_ms = Some(finished);
    t.state.exit = Some(exit);
    t.state.usage = Some(out.usage.clone());
    if never_ran || t.state.auto_remove {
        if !t.removed {
            t.freezer = freezer_of(t.store, &id);
            let _ = t.store.remove(&id, t.state.name.as_deref());
        }
        if let Some((f, parent)) = t.freezer.take() {
            let _ = nucleus_sys::cgroup::remove_extra(&f, parent);
        }
        t.events.emit("removed", &id, serde_json::json!({}));
    } else {
        t.save();
    }
    // A launcher still waiting hears why only now, when the record is in its final state.
    match &out.failure {
        Some((stage, err)) => t.notify.done(&format!("error {code} {stage}: {err}")),
        None => t.notify.done(&format!(
            "error {code} the sandbox stopped before its workload started"
        )),
    }
    code
}

/// A foreground run's tracker (the record appears once the sandbox exists; removed at exit).
pub fn foreground<'a>(
    store: &'a Store,
    plan: &'a Plan,
    a: &RunArgs,
    log: &'a Logger,
    events: Events,
) -> Result<Tracker<'a>> {
    let mut st = State::new(
        &plan.id,
        a.name.clone(),
        plan.process.argv.clone(),
        now_ms(),
    );
    st.monitor = Some(store::this_process());
    st.events = a.events_jsonl.clone();
    st.auto_remove = true;
    if let Some(n) = &a.name {
        // Claimed now, so a taken name fails before anything starts.
        free_stale_name(store, n);
        store.create(&plan.id, Some(n), &st, &[])?;
    }
    Ok(Tracker {
        store,
        state: st,
        events,
        log: Some(log),
        notify: Notify(None),
        hold: false,
        plan: Some(plan),
        applied_ns: None,
        removed: false,
        health: Health::new(plan, store),
        freezer: None,
        log_cap: None,
    })
}

/// `run -d` and `create`: fork the monitor, wait until the sandbox is set up (and, for `run
/// -d`, its workload exec'd), print its id.
pub fn launch(
    a: &RunArgs,
    (plan, cgroup_host, cgroup_parent): (
        &Plan,
        &nucleus_spec::cgroup::CgroupHost,
        &nucleus_spec::cgroup::CgroupParent,
    ),
    store: &Store,
    log: &Logger,
    events: Events,
    hold: bool,
    (tracer, t0): (&mut Tracer, u64),
) -> Result<u8> {
    let memory_limit = a
        .memory
        .as_deref()
        .and_then(|m| nucleus_spec::config::parse_size("--memory", m).ok());
    let log_max = log_max_size(&a.log_max_size)?;
    let id = plan.id.clone();
    let (create_span, trace) = tracer.sandbox_span();
    let console =
        match &a.console_socket {
            Some(p) => Some(nucleus_sys::raw::unix_connect(p).map_err(|e| {
                ConfigError::new("--console-socket", format!("{}: {e}", p.display()))
            })?),
            None => None,
        };
    let supervisor_unit = supervisor(a, &id)?;
    let mut st = State::new(&id, a.name.clone(), plan.process.argv.clone(), now_ms());
    st.unit = supervisor_unit.clone();
    // Absolute: a monitor started by systemd runs in /.
    st.events = a
        .events_jsonl
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    st.auto_remove = a.rm;
    st.trace = trace;
    // Until the monitor writes its own pid (first thing after the fork), the launcher is
    // the record's monitor: the sandbox reads as `creating` while it waits for the monitor.
    st.monitor = Some(store::this_process());
    // What a monitor started by systemd reads besides the record and the plan.
    let launch = match supervisor_unit {
        Some(_) => Some(serde_json::to_vec(&LaunchInfo { hold, memory_limit })?),
        None => None,
    };
    let plan_json = serde_json::to_vec(plan)?;
    // For `restart`: the flags, without what names this caller's descriptors or dry runs.
    let mut args = serde_json::to_value(a)?;
    args["events_fd"] = serde_json::Value::Null;
    args["detach"] = true.into();
    let args_json = serde_json::to_vec(&args)?;
    let mut files: Vec<(&str, &[u8])> = vec![("plan.json", &plan_json), (ARGS, &args_json)];
    if let Some(l) = &launch {
        files.push(("launch.json", l));
    }
    if let Some(n) = &a.name {
        free_stale_name(store, n);
    }
    store.create(&id, a.name.as_deref(), &st, &files)?;
    let forget = |e: anyhow::Error| {
        let _ = store.remove(&id, a.name.as_deref());
        e
    };
    let (notify, reader) = match &supervisor_unit {
        Some(unit) => (None, Some(start_unit(store, &id, unit).map_err(forget)?)),
        None => {
            let logf = store::open_append(&store.dir(&id).join(LOG_STREAMS[0]))
                .map_err(|e| forget(e.into()))?;
            let errf = store::open_append(&store.dir(&id).join(LOG_STREAMS[1]))
                .map_err(|e| forget(e.into()))?;
            let control =
                store::listen(&store.dir(&id).join("ctl")).map_err(|e| forget(e.into()))?;
            match store::fork_monitor(&logf, &errf, &format!("nucleus monitor {id}")) {
                Ok(store::MonitorFork::Monitor { notify }) => (Some((notify, logf, control)), None),
                Ok(store::MonitorFork::Launcher { reader }) => (None, Some(reader)),
                Err(e) => return Err(forget(e.into())),
            }
        }
    };
    if let Some((notify, _logf, control)) = notify {
        // The monitor (a fork of this process).
        let code = monitor_main(
            store,
            st,
            plan,
            events,
            notify,
            hold,
            control,
            console,
            memory_limit,
            Some(log_max),
        );
        crate::run::collect_cgroups(cgroup_host, cgroup_parent);
        std::process::exit(code.into())
    }
    let reader = reader.ok_or_else(|| anyhow!("the monitor did not start"))?;
    // The launcher: relay what the monitor says, then print the id.
    let mut code = None;
    let mut created_ns = None;
    let mut error = None;
    for line in BufReader::new(reader).lines().map_while(|l| l.ok()) {
        if let Some(w) = line.strip_prefix("warn ") {
            log.warn(w);
        } else if let Some(t) = line.strip_prefix("created ") {
            created_ns = t.parse::<u64>().ok();
        } else if line == "ok" {
            code = Some(0);
            break;
        } else if let Some(e) = line.strip_prefix("error ") {
            let (c, msg) = e.split_once(' ').unwrap_or(("125", e));
            log.error(msg);
            error = Some(msg.to_string());
            code = Some(c.parse().unwrap_or(125));
            break;
        }
    }
    if tracer.enabled() {
        let now = telemetry::now_ns();
        let created = created_ns.unwrap_or(now);
        let attrs = || {
            vec![
                ("sandbox.id", telemetry::s(&id)),
                (
                    "sandbox.name",
                    telemetry::s(a.name.clone().unwrap_or_default()),
                ),
                ("nucleus.service_mode", telemetry::s(a.service_mode.clone())),
                (
                    "process.executable.name",
                    telemetry::s(plan.process.argv.first().cloned().unwrap_or_default()),
                ),
            ]
        };
        let parent = tracer.parent;
        let create_error = if created_ns.is_none() {
            error.clone()
        } else {
            None
        };
        tracer.record_as(
            create_span,
            parent,
            "nucleus.create",
            t0,
            created,
            attrs(),
            create_error,
        );
        if !hold && created_ns.is_some() {
            tracer.record_as(
                telemetry::span_id(),
                Some(create_span),
                "nucleus.start",
                created,
                now,
                attrs(),
                error.clone(),
            );
        }
        tracer.flush(log);
    }
    match code {
        Some(0) => {
            outln!("{id}");
            Ok(0)
        }
        Some(c) => Ok(c),
        None => {
            let _ = store.remove(&id, a.name.as_deref());
            bail!("the monitor exited while setting the sandbox up")
        }
    }
}

/// What a monitor started by systemd needs besides the record and the plan.
#[derive(serde::Serialize, serde::Deserialize)]
struct LaunchInfo {
    hold: bool,
    memory_limit: Option<u64>,
}

/// `--log-max-size`: at least 64 KiB.
pub fn log_max_size(s: &str) -> Result<u64, ConfigError> {
    let n = nucleus_spec::config::parse_size("--log-max-size", s)?;
    if n < 64 << 10 {
        return Err(ConfigError::new("--log-max-size", "must be at least 64k"));
    }
    Ok(n)
}

/// Whether systemd runs this machine (sd_booted(3)).
fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The transient unit that will supervise a detached sandbox, or None for a monitor process.
fn supervisor(a: &RunArgs, id: &str) -> Result<Option<String>> {
    let flag = "--supervisor";
    let root = nucleus_sys::security::is_root();
    let usable = || -> Result<(), String> {
        if !systemd_booted() {
            return Err("systemd is not PID 1 here".into());
        }
        if !root {
            return Err("transient units need root (the system manager)".into());
        }
        if a.events_fd.is_some() {
            return Err("--events-fd is a descriptor of the caller's, which a unit cannot inherit (use --events-jsonl)".into());
        }
        if a.console_socket.is_some() {
            return Err("--console-socket is connected once, by the caller's side; use --supervisor monitor".into());
        }
        Ok(())
    };
    match a.supervisor.as_str() {
        "monitor" => Ok(None),
        "auto" => Ok(usable().ok().map(|_| format!("nucleus-{id}.service"))),
        "systemd" => match usable() {
            Ok(()) => Ok(Some(format!("nucleus-{id}.service"))),
            Err(why) => Err(ConfigError::new(flag, format!("systemd: {why}")).into()),
        },
        other => Err(ConfigError::new(
            flag,
            format!("unknown supervisor {other:?} (allowed: auto, monitor, systemd)"),
        )
        .into()),
    }
}

/// Start `nucleus monitor ID` as a transient service and wait for it to connect to the
/// sandbox's `notify` socket; what it says there is read like a forked monitor's pipe.
fn start_unit(store: &Store, id: &str, unit: &str) -> Result<File> {
    let dir = store.dir(id);
    let sock = dir.join("notify");
    let listener = nucleus_sys::raw::unix_listen(&sock)
        .with_context(|| format!("listen on {}", sock.display()))?;
    let exe = std::env::current_exe().context("find the nucleus binary")?;
    let out = std::process::Command::new("systemd-run")
        .arg(format!("--unit={unit}"))
        .arg(format!("--description=nucleus sandbox {id}"))
        .args(["--collect", "--quiet", "--property=KillMode=mixed"])
        // SIGTERM reaches the workload through the monitor; one that ignores it is killed
        // with the unit after this.
        .arg("--property=TimeoutStopSec=10")
        .arg(format!("--setenv=NUCLEUS_ROOT={}", store.root().display()))
        .arg("--")
        .arg(exe)
        .args(["monitor", id])
        .stdin(std::process::Stdio::null())
        .output()
        .context("run systemd-run")?;
    if !out.status.success() {
        bail!(
            "systemd-run: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("failed")
        );
    }
    // The monitor connects once it has read the record; a unit that failed before that never
    // does: stop it rather than leave it behind.
    let ready = nucleus_sys::raw::poll_read(&[std::os::fd::AsRawFd::as_raw_fd(&listener)], 30_000)
        .is_ok_and(|r| r[0] != 0);
    let conn = match ready {
        true => nucleus_sys::raw::unix_accept(std::os::fd::AsFd::as_fd(&listener), 0).ok(),
        false => None,
    };
    let Some(conn) = conn else {
        let _ = std::process::Command::new("systemctl")
            .args(["stop", unit])
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::fs::remove_file(&sock);
        bail!("{unit}: its monitor did not report within 30 s (see `journalctl -u {unit}`)");
    };
    let _ = std::fs::remove_file(&sock);
    Ok(File::from(conn))
}

/// `nucleus monitor ID`: the monitor of a detached sandbox, as its systemd unit runs it. Its
/// output (the workload's, and runtime warnings) goes to the journal.
pub fn monitor_entry(store: &Store, id: &str) -> Result<u8> {
    let dir = store.dir(id);
    let st = store
        .read(id)
        .ok_or_else(|| anyhow!("{id}: no such sandbox"))?;
    let plan: Plan = serde_json::from_slice(&std::fs::read(dir.join("plan.json"))?)?;
    let info: LaunchInfo = serde_json::from_slice(&std::fs::read(dir.join("launch.json"))?)?;
    let notify = File::from(
        nucleus_sys::raw::unix_connect(&dir.join("notify")).context("connect to the launcher")?,
    );
    let control = store::listen(&dir.join("ctl"))?;
    let events = Events::open(st.events.as_deref(), None)?;
    Ok(monitor_main(
        store,
        st,
        &plan,
        events,
        notify,
        info.hold,
        control,
        // (--console-socket keeps the forked monitor: see `supervisor`.)
        None,
        info.memory_limit,
        // The journal keeps a unit's output.
        None,
    ))
}

/// The monitor of one detached sandbox: it records every step and serves the control socket
/// until the sandbox ends. `notify` reaches the launcher waiting for the start's result.
#[allow(clippy::too_many_arguments)]
fn monitor_main(
    store: &Store,
    mut st: State,
    plan: &Plan,
    events: Events,
    notify: File,
    hold: bool,
    control: std::os::fd::OwnedFd,
    console: Option<std::os::fd::OwnedFd>,
    memory_limit: Option<u64>,
    log_max: Option<u64>,
) -> u8 {
    let id = st.id.clone();
    let name = st.name.clone();
    st.monitor = Some(store::this_process());
    let mut t = Tracker {
        store,
        state: st,
        events,
        log: None,
        notify: Notify(Some(notify)),
        hold,
        plan: None,
        applied_ns: None,
        removed: false,
        health: Health::new(plan, store),
        freezer: None,
        log_cap: log_max.map(|max| LogCap {
            dir: store.dir(&id),
            max,
            next: Instant::now() + Duration::from_millis(100),
            last_len: [0; 2],
        }),
    };
    t.save();
    let detach = Detach {
        hold,
        control,
        console: console.map(nucleus_sys::channel::Channel::from),
    };
    match nucleus_sys::sandbox::run_detached(plan, &mut t, Some(&detach)) {
        Ok(out) => {
            finish(&mut t, &out, memory_limit);
            0
        }
        Err(e) => {
            t.notify.done(&format!("error 125 {e}"));
            let _ = store.remove(&id, name.as_deref());
            125
        }
    }
}

/// Resolve a reference (name, id or unique id prefix) among the store's sandboxes.
pub fn resolve(store: &Store, q: &str) -> Result<State> {
    let all = store.list();
    let entries: Vec<(String, Option<String>)> =
        all.iter().map(|s| (s.id.clone(), s.name.clone())).collect();
    let id = state::resolve(q, &entries).map_err(anyhow::Error::new)?;
    all.into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| anyhow!("{q}: no such sandbox"))
}

fn monitor_alive(s: &State) -> bool {
    s.monitor.as_ref().is_some_and(store::alive)
}

pub fn effective(s: &State) -> (Status, Option<ExitInfo>) {
    s.effective(monitor_alive(s))
}

/// Wait while the sandbox is still being set up (its pids are not known yet).
fn settled(store: &Store, mut s: State) -> State {
    let deadline = Instant::now() + Duration::from_secs(30);
    while effective(&s).0 == Status::Creating && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        match store.read(&s.id) {
            Some(n) => s = n,
            None => break,
        }
    }
    s
}

/// Wait for the monitor to exit (it has then written the final record); false on timeout.
fn wait_monitor(s: &State, timeout: Duration) -> bool {
    let Some(m) = &s.monitor else { return true };
    match store::pidfd(m) {
        Some(fd) => store::wait_exit(&fd, timeout),
        None => true,
    }
}

/// Send `sig` to the sandbox: SIGKILL to its init (the whole pid namespace dies), other
/// signals to the workload. False if there was nothing to signal.
fn signal(s: &State, sig: i32) -> Result<bool> {
    let target = if sig == libc::SIGKILL {
        s.init
    } else {
        s.workload
            .or_else(|| s.init.as_ref().and_then(workload_of))
            .or(s.init)
    };
    let Some(p) = target else { return Ok(false) };
    match store::pidfd(&p) {
        Some(fd) => {
            nucleus_sys::raw::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), sig)
                .with_context(|| format!("signal {}", s.id))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

pub fn start(store: &Store, q: &str, log: &Logger) -> Result<u8> {
    let s = settled(store, resolve(store, q)?);
    let (st, _) = effective(&s);
    if st != Status::Created {
        bail!(
            "{}: is {}; only a created sandbox can be started",
            q,
            st.as_str()
        );
    }
    let reply = store::request(&store.dir(&s.id).join("ctl"), "start")
        .with_context(|| format!("{q}: its monitor does not answer"))?;
    if reply == "ok" {
        return Ok(0);
    }
    let e = reply.strip_prefix("error ").unwrap_or(&reply);
    let (c, msg) = e.split_once(' ').unwrap_or(("1", e));
    log.error(msg);
    Ok(c.parse().unwrap_or(1))
}

fn command_line(argv: &[String], max: usize) -> String {
    let c = argv.join(" ");
    if c.chars().count() > max {
        let mut t: String = c.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        c
    }
}

fn status_text(st: Status, exit: &Option<ExitInfo>, s: &State, now: u64) -> String {
    match st {
        Status::Stopped => {
            let e = exit.clone().unwrap_or_default();
            let how = match (e.code, &e.error) {
                // No status: the runtime died (kill -9) and took the sandbox with it.
                (None, _) => "lost (runtime killed)".to_string(),
                (Some(c), Some(_)) if s.started_ms.is_none() => format!("failed ({c})"),
                (Some(c), Some(e)) if e.starts_with("timed out") => format!("timed out ({c})"),
                (Some(c), _) if e.oom_killed => format!("exited ({c}, OOM)"),
                (Some(c), _) => format!("exited ({c})"),
            };
            match s.finished_ms {
                Some(f) => format!("{how} {}", state::age(now, f)),
                None => how,
            }
        }
        Status::Running => {
            let up = match s.started_ms {
                Some(t) => format!("up {}", state::age(now, t).trim_end_matches(" ago")),
                None => "running".into(),
            };
            match &s.health {
                Some(h) => format!("{up} ({h})"),
                None => up,
            }
        }
        other => other.as_str().into(),
    }
}

pub fn ps(store: &Store, a: &PsArgs) -> Result<u8> {
    let now = now_ms();
    let rows: Vec<(State, Status, Option<ExitInfo>)> = store
        .list()
        .into_iter()
        .map(|s| {
            let (st, ex) = effective(&s);
            (s, st, ex)
        })
        .filter(|(_, st, _)| a.all || *st != Status::Stopped)
        .collect();
    if a.quiet {
        for (s, _, _) in &rows {
            outln!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|(s, st, ex)| {
                    serde_json::json!({
                        "id": s.id,
                        "name": s.name,
                        "status": shown(store, s, *st),
                        "pid": s.init.map(|p| p.pid),
                        "command": s.argv,
                        "created": state::rfc3339(s.created_ms),
                        "started": s.started_ms.map(state::rfc3339),
                        "finished": s.finished_ms.map(state::rfc3339),
                        "exit_code": ex.as_ref().and_then(|e| e.code),
                        "oom_killed": ex.as_ref().is_some_and(|e| e.oom_killed),
                        "error": ex.as_ref().and_then(|e| e.error.clone()),
                        "health": s.health,
                    })
                })
                .collect();
            outln!("{}", serde_json::Value::Array(v));
        }
        "table" => {
            outln!(
                "{:<16}  {:<16}  {:<22}  {:<8}  {:<10}  COMMAND",
                "ID",
                "NAME",
                "STATUS",
                "PID",
                "CREATED"
            );
            for (s, st, ex) in &rows {
                outln!(
                    "{:<16}  {:<16}  {:<22}  {:<8}  {:<10}  {}",
                    s.id,
                    s.name.as_deref().unwrap_or("-"),
                    if shown(store, s, *st) == "paused" {
                        "paused".to_string()
                    } else {
                        status_text(*st, ex, s, now)
                    },
                    match st {
                        Status::Created | Status::Running =>
                            s.init.map(|p| p.pid.to_string()).unwrap_or_default(),
                        _ => "-".into(),
                    },
                    state::age(now, s.created_ms),
                    command_line(&s.argv, 40)
                );
            }
        }
        other => {
            return Err(
                ConfigError::new("--format", format!("{other:?}: use table or json")).into(),
            )
        }
    }
    Ok(0)
}

pub fn state(store: &Store, q: &str) -> Result<u8> {
    let s = resolve(store, q)?;
    let (st, _) = effective(&s);
    let dir = store.dir(&s.id);
    let mut v = s.oci(st, &dir.to_string_lossy());
    // (runc's word for a frozen container.)
    v["status"] = shown(store, &s, st).into();
    outln!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

/// A status as shown: "paused" for a running sandbox that is frozen.
fn shown(store: &Store, s: &State, st: Status) -> &'static str {
    if st == Status::Running && is_paused(store, &s.id) {
        "paused"
    } else {
        st.as_str()
    }
}

/// `nucleus inspect`: the record with the configuration its plan holds. Environment values
/// are left out (they may be secrets): names only.
pub fn inspect(store: &Store, q: &str) -> Result<u8> {
    let s = resolve(store, q)?;
    let (st, ex) = effective(&s);
    let plan: Option<Plan> = std::fs::read(store.dir(&s.id).join("plan.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    let mut v = serde_json::json!({
        "id": s.id,
        "name": s.name,
        "status": shown(store, &s, st),
        "health": s.health,
        "pid": s.init.map(|p| p.pid),
        "command": s.argv,
        "created": state::rfc3339(s.created_ms),
        "started": s.started_ms.map(state::rfc3339),
        "finished": s.finished_ms.map(state::rfc3339),
        "exit": ex,
        "cgroups": s.cgroups,
        "usage": s.usage,
    });
    if let Some(p) = plan {
        let limits: serde_json::Map<String, serde_json::Value> = p
            .cgroup
            .iter()
            .flat_map(|c| c.dirs.iter())
            .flat_map(|d| d.writes.iter())
            .map(|(f, val)| (f.clone(), val.clone().into()))
            .collect();
        v["config"] = serde_json::json!({
            "hostname": p.hostname,
            "user": { "uid": p.process.uid, "gid": p.process.gid,
                      "additional_gids": p.process.additional_gids },
            "cwd": p.process.cwd,
            "tty": p.process.tty,
            "env_names": p.process.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "limits": limits,
            "cpu_count": p.process.cpu_count,
            "mounts": p.mounts,
            "network": p.net,
            "namespaces": p.namespaces,
        });
    }
    outln!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

pub fn logs(store: &Store, a: &LogsArgs) -> Result<u8> {
    let s = resolve(store, &a.id)?;
    if let Some(unit) = &s.unit {
        // Supervised by systemd: the output is in the journal.
        let mut c = std::process::Command::new("journalctl");
        // The unit's own processes only (not the manager's messages about the unit).
        c.args(["--no-pager", "--quiet", "--output=cat"]);
        c.arg(format!("_SYSTEMD_UNIT={unit}"));
        if let Some(n) = a.tail {
            c.arg(format!("--lines={n}"));
        }
        if a.follow {
            c.arg("--follow");
        }
        let st = c.status().context("run journalctl")?;
        return Ok(st.code().unwrap_or(1).clamp(0, 255) as u8);
    }
    let dir = store.dir(&s.id);
    if !dir.join(LOG_STREAMS[0]).exists() {
        bail!("{}: has no log (only detached sandboxes keep one)", a.id);
    }
    // The workload's stdout to ours, its stderr to ours: each stream whole and in order (the
    // order between the two is not kept).
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut files = Vec::new();
    for (name, w) in LOG_STREAMS
        .iter()
        .zip([&mut out as &mut dyn Write, &mut err])
    {
        // A sandbox made by an older nucleus has no log.err.
        let Ok(f) = File::open(dir.join(name)) else {
            continue;
        };
        files.push((print_log(&dir, name, f, a.tail, w)?, *name));
    }
    if !a.follow {
        return Ok(0);
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut moved = false;
        for (f, name) in &mut files {
            let w: &mut dyn Write = if *name == LOG_STREAMS[0] {
                &mut out
            } else {
                &mut err
            };
            // Moved aside and started again: read the new log from its start.
            if f.metadata()?.len() < f.stream_position()? {
                f.seek(SeekFrom::Start(0))?;
            }
            loop {
                let k = f.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                moved = true;
                w.write_all(&buf[..k])?;
            }
            w.flush()?;
        }
        // Follow until the sandbox's monitor is gone (then read what is left once more).
        let cur = store.read(&s.id);
        if !cur.as_ref().is_some_and(monitor_alive) && !moved {
            return Ok(0);
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Print one stream of a detached sandbox's log to `out`: the part moved aside (`NAME.1`),
/// then the current file, or their last `tail` lines. Returns the current file, at its end.
fn print_log(
    dir: &Path,
    name: &str,
    mut f: File,
    tail: Option<usize>,
    out: &mut dyn Write,
) -> Result<File> {
    let mut buf = vec![0u8; 64 * 1024];
    // The older part, moved aside by --log-max-size: first, or as much of it as --tail wants
    // beyond what the current log holds.
    let older_wanted = match tail {
        None => Some(usize::MAX),
        Some(n) => {
            let start = tail_offset(&mut f, n)?;
            f.seek(SeekFrom::Start(start))?;
            if start == 0 {
                let mut count = 0usize;
                loop {
                    let k = f.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    count += buf[..k].iter().filter(|&&b| b == b'\n').count();
                }
                f.seek(SeekFrom::Start(0))?;
                Some(n.saturating_sub(count))
            } else {
                None
            }
        }
    };
    if let (Some(want), Ok(mut old)) = (
        older_wanted.filter(|w| *w > 0),
        File::open(dir.join(format!("{name}.1"))),
    ) {
        if want != usize::MAX {
            let start = tail_offset(&mut old, want)?;
            old.seek(SeekFrom::Start(start))?;
        }
        std::io::copy(&mut old, out)?;
    }
    std::io::copy(&mut f, out)?;
    out.flush()?;
    Ok(f)
}

/// Offset of the start of the last `n` lines.
fn tail_offset(f: &mut File, n: usize) -> Result<u64> {
    let len = f.seek(SeekFrom::End(0))?;
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut seen = 0usize;
    let mut buf = vec![0u8; 8192];
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    while pos > 0 {
        let k = (pos as usize).min(buf.len());
        pos -= k as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..k])?;
        for i in (0..k).rev() {
            if buf[i] == b'\n' {
                if skip_last && pos + i as u64 == len - 1 {
                    skip_last = false;
                    continue;
                }
                seen += 1;
                if seen == n {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
        skip_last = false;
    }
    Ok(0)
}

struct ExecObserver<'a> {
    log: &'a Logger,
}

impl Observer for ExecObserver<'_> {
    fn denied(&mut self, pid: u32, syscall: &str, errno: i32) {
        self.log.warn(&format!(
            "seccomp: denied {syscall} (errno {errno}) to pid {pid}"
        ));
    }
    fn denied_again(&mut self, syscall: &str, errno: i32, count: u64) {
        self.log.warn(&format!(
            "seccomp: denied {syscall} (errno {errno}) {count} more times"
        ));
    }
    fn applied(&mut self, r: &SecurityReport) {
        for d in &r.degraded {
            self.log.warn(&format!("security degraded: {d}"));
        }
    }
}

pub fn exec(store: &Store, a: &ExecArgs, log: &Logger) -> Result<u8> {
    let s = settled(store, resolve(store, &a.id)?);
    let (st, _) = effective(&s);
    if st != Status::Running {
        bail!("{}: is {}; exec needs a running sandbox", a.id, st.as_str());
    }
    // Join through the workload: it is in every namespace of the sandbox (time included) and,
    // unlike the mini-init, dumpable, so an unprivileged owner may open it too.
    let init = s
        .workload
        .or_else(|| s.init.as_ref().and_then(workload_of))
        .ok_or_else(|| anyhow!("{}: its workload is not known", a.id))?;
    let data = std::fs::read(store.dir(&s.id).join("plan.json"))
        .with_context(|| format!("{}: read its plan", a.id))?;
    let mut plan: Plan = serde_json::from_slice(&data).context("decode the sandbox's plan")?;
    if a.command.is_empty() {
        return Err(ConfigError::new("COMMAND", "give the command to run after `--`").into());
    }
    plan.process.argv = a.command.clone();
    // The sandbox's TERM is for its own terminal; exec -t brings one (a run with -t has it).
    if a.tty && !plan.process.env.iter().any(|(k, _)| k == "TERM") {
        plan.process.env.push(("TERM".into(), "xterm".into()));
    }
    for e in &a.env {
        let v = EnvVar::parse("--env", e)?;
        plan.process.env.retain(|(k, _)| *k != v.key);
        plan.process.env.push((v.key, v.value));
    }
    if let Some(w) = &a.workdir {
        if !w.is_absolute() {
            return Err(ConfigError::new(
                "--workdir",
                format!("{}: must be an absolute path", w.display()),
            )
            .into());
        }
        plan.process.cwd = w.clone();
    }
    plan.process.tty = a.tty;
    let Some(pidfd) = store::pidfd(&init) else {
        bail!("{}: is not running any more", a.id);
    };
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit(
        "exec",
        &s.id,
        serde_json::json!({ "argv": a.command, "tty": a.tty }),
    );
    let out = nucleus_sys::join::exec(
        &plan,
        init.pid,
        std::os::fd::AsFd::as_fd(&pidfd),
        &s.cgroups,
        &mut ExecObserver { log },
    )?;
    let mut code = out.status.code().clamp(0, 255) as u8;
    if let Some((stage, err)) = &out.failure {
        log.error(&format!("{stage}: {err}"));
        if out.report.is_none() {
            code = state::failed_start_code(stage, code);
        }
    }
    record_exec_cpu(store, &s.id);
    events.emit(
        "exec_exited",
        &s.id,
        serde_json::json!({ "argv": a.command, "status": code }),
    );
    Ok(code)
}

pub fn stop(store: &Store, a: &StopArgs, log: &Logger) -> Result<u8> {
    let timeout = Duration::from_secs_f64(a.time.max(0.0));
    each(&a.ids, log, |q| stop_one(store, q, timeout))
}

/// SIGTERM to the workload, SIGKILL to the whole sandbox after `timeout`; wait until its
/// monitor has recorded the end.
fn stop_one(store: &Store, q: &str, timeout: Duration) -> Result<()> {
    let s = settled(store, resolve(store, q)?);
    if effective(&s).0 == Status::Stopped {
        return Ok(());
    }
    thaw_if_paused(store, &s);
    if !signal(&s, libc::SIGTERM)? || !wait_monitor(&s, timeout) {
        signal(&s, libc::SIGKILL)?;
        if !wait_monitor(&s, Duration::from_secs(30)) {
            bail!("{q}: did not stop within 30 s of SIGKILL");
        }
    }
    Ok(())
}

/// `nucleus restart`: a detached sandbox (stopped, or stopped first as `stop` does) starts
/// again as it was made, with the same id and name: the same flags, a plan made afresh.
pub fn restart(
    store: &Store,
    root: Option<&Path>,
    a: &crate::cli::RestartArgs,
    log: &Logger,
    t0: u64,
) -> Result<u8> {
    let s = settled(store, resolve(store, &a.id)?);
    let data = std::fs::read(store.dir(&s.id).join(ARGS)).map_err(|_| {
        anyhow!(
            "{}: cannot be restarted: only sandboxes made by `run -d` or `create` keep how they were made",
            a.id
        )
    })?;
    let mut args: RunArgs =
        serde_json::from_slice(&data).context("decode how the sandbox was made")?;
    args.detach = true;
    stop_one(store, &a.id, Duration::from_secs_f64(a.time.max(0.0)))?;
    let s = store.read(&s.id).unwrap_or(s);
    remove_cgroups(store, &s);
    store.remove(&s.id, s.name.as_deref())?;
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit("restarting", &s.id, serde_json::json!({}));
    crate::run::main(args, root, false, log, t0, None, Some(s.id.clone()))
}

/// How a detached sandbox was made (its `run` flags, as JSON), for `restart`.
const ARGS: &str = "args.json";

/// `nucleus update`: write new limits into a running sandbox's cgroup, and into its plan (so
/// `inspect` shows them). Only limits whose controller the sandbox has: on v1 the hierarchies
/// are chosen at start (a sandbox started without --memory has no memory cgroup to change).
pub fn update(store: &Store, a: &crate::cli::UpdateArgs) -> Result<u8> {
    use nucleus_spec::cgroup::{parse_pids, Driver, Limits};
    if a.memory.is_none()
        && a.memory_swap.is_none()
        && a.cpus.is_none()
        && a.cpu_weight.is_none()
        && a.pids.is_none()
    {
        return Err(ConfigError::new(
            "--memory",
            "give a limit to change: --memory, --memory-swap, --cpus, --cpu-weight or --pids",
        )
        .into());
    }
    let l = Limits {
        pids: match &a.pids {
            Some(p) => parse_pids(p)?,
            None => None,
        },
        ..crate::run::limits(
            a.memory.as_deref(),
            a.memory_swap.as_deref(),
            a.cpus.as_deref(),
            a.cpu_weight.as_deref(),
        )?
    };
    let host_cpus = nucleus_sys::raw::cpu_affinity(0).map_or(0, |c| c.len() as u64);
    l.validate(host_cpus)?;
    let s = settled(store, resolve(store, &a.id)?);
    if !matches!(effective(&s).0, Status::Running | Status::Created) {
        bail!(
            "{}: is {}; only a running sandbox's limits change",
            a.id,
            effective(&s).0.as_str()
        );
    }
    let dir = store.dir(&s.id);
    let data =
        std::fs::read(dir.join("plan.json")).with_context(|| format!("{}: read its plan", a.id))?;
    let mut plan: Plan = serde_json::from_slice(&data).context("decode the sandbox's plan")?;
    let Some(cp) = plan.cgroup.as_mut() else {
        bail!(
            "{}: has no cgroup (no cgroup hierarchy was usable when it started)",
            a.id
        );
    };
    // Which flag a file belongs to: only those given are written.
    let wanted = |f: &str| {
        (a.memory.is_some() && f.starts_with("memory."))
            || (a.cpus.is_some() && (f == "cpu.max" || f.starts_with("cpu.cfs_")))
            || (a.cpu_weight.is_some() && (f == "cpu.weight" || f == "cpu.shares"))
            || (a.pids.is_some() && f.starts_with("pids."))
    };
    let flag_of = |f: &str| match f.split('.').next() {
        Some("memory") => "--memory",
        Some("pids") => "--pids",
        _ if f == "cpu.weight" || f == "cpu.shares" => "--cpu-weight",
        _ => "--cpus",
    };
    // (index of the cgroup directory, file, value)
    let mut writes: Vec<(usize, String, String)> = Vec::new();
    match cp.driver {
        Driver::V2 => {
            for (f, v) in l.v2_writes() {
                if wanted(&f) {
                    writes.push((0, f, v));
                }
            }
        }
        Driver::V1 => {
            let memsw = cp
                .dirs
                .iter()
                .position(|d| d.hierarchy == "memory")
                .and_then(|i| s.cgroups.get(i))
                .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
            for (c, f, v) in l.v1_writes(memsw) {
                if !wanted(&f) {
                    continue;
                }
                let Some(i) = cp.dirs.iter().position(|d| d.hierarchy == c) else {
                    return Err(ConfigError::new(
                        flag_of(&f),
                        format!("the sandbox has no {c} cgroup (on cgroup v1 it gets one only when started with {})", flag_of(&f)),
                    )
                    .into());
                };
                writes.push((i, f, v));
            }
        }
    }
    // Memory and memory+swap constrain each other at every step (v1): what fails is tried
    // again once the others are written.
    let mut pending = writes.clone();
    for round in 0..2 {
        let mut failed = Vec::new();
        for (i, f, v) in pending {
            let Some(leaf) = s.cgroups.get(i) else {
                bail!("{}: its cgroup is not known", a.id);
            };
            if let Err(e) = std::fs::write(leaf.join(&f), &v) {
                if round == 1 {
                    return Err(ConfigError::new(flag_of(&f), format!("{f} = {v}: {e}")).into());
                }
                failed.push((i, f, v));
            }
        }
        if failed.is_empty() {
            break;
        }
        pending = failed;
    }
    for (i, f, v) in &writes {
        if let Some(d) = cp.dirs.get_mut(*i) {
            match d.writes.iter_mut().find(|(x, _)| x == f) {
                Some(w) => w.1 = v.clone(),
                None => d.writes.push((f.clone(), v.clone())),
            }
        }
    }
    if let Some(c) = l.cpus_milli {
        plan.process.cpu_count = Some(c.div_ceil(1000).max(1) as u32);
    }
    store.write_file(&s.id, "plan.json", &serde_json::to_vec(&plan)?)?;
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit(
        "updated",
        &s.id,
        serde_json::json!({ "files": writes.iter().map(|(_, f, v)| (f.clone(), v.clone())).collect::<std::collections::BTreeMap<_, _>>() }),
    );
    Ok(0)
}

/// The marker of a paused sandbox in its record's directory (the monitor owns state.json).
const PAUSED: &str = "paused";
/// The v1 freezer leaf a pause made (removed with the sandbox).
const FREEZER: &str = "freezer";

pub fn is_paused(store: &Store, id: &str) -> bool {
    store.dir(id).join(PAUSED).exists()
}

/// `pause` (on) and `unpause`.
pub fn pause(store: &Store, q: &str, on: bool) -> Result<u8> {
    let s = settled(store, resolve(store, q)?);
    if effective(&s).0 != Status::Running {
        bail!(
            "{q}: is {}; only a running sandbox is paused or unpaused",
            effective(&s).0.as_str()
        );
    }
    if is_paused(store, &s.id) == on {
        bail!(
            "{q}: is {}",
            if on { "paused already" } else { "not paused" }
        );
    }
    set_frozen(store, &s, on)?;
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit(
        if on { "paused" } else { "unpaused" },
        &s.id,
        serde_json::json!({}),
    );
    Ok(0)
}

fn set_frozen(store: &Store, s: &State, on: bool) -> Result<()> {
    let data = std::fs::read(store.dir(&s.id).join("plan.json"))
        .with_context(|| format!("{}: read its plan", s.id))?;
    let plan: Plan = serde_json::from_slice(&data).context("decode the sandbox's plan")?;
    let Some(cp) = plan.cgroup else {
        bail!("{}: has no cgroup, so nothing can freeze it", s.id);
    };
    let leaves: Vec<(String, PathBuf)> = cp
        .dirs
        .iter()
        .map(|d| d.hierarchy.clone())
        .zip(s.cgroups.iter().cloned())
        .collect();
    let host = nucleus_sys::probe::cgroup_host(Path::new("/"));
    let made = nucleus_sys::cgroup::set_frozen(cp.driver, &leaves, &host, on)?;
    if let Some(l) = made {
        // Second line: the parent is a shared default, removed when it empties.
        let text = format!("{}\n{}\n", l.display(), cp.remove_empty_parents);
        store.write_file(&s.id, FREEZER, text.as_bytes())?;
    }
    if on {
        store.write_file(&s.id, PAUSED, b"")?;
    } else {
        let _ = std::fs::remove_file(store.dir(&s.id).join(PAUSED));
    }
    Ok(())
}

/// A paused sandbox is thawed before it is signalled (a frozen v1 task does not even die).
fn thaw_if_paused(store: &Store, s: &State) {
    if is_paused(store, &s.id) {
        let _ = set_frozen(store, s, false);
    }
}

/// The v1 freezer leaf a pause of the sandbox made, if any, and whether its parent goes too.
fn freezer_of(store: &Store, id: &str) -> Option<(PathBuf, bool)> {
    let t = std::fs::read_to_string(store.dir(id).join(FREEZER)).ok()?;
    let mut l = t.lines();
    Some((PathBuf::from(l.next()?), l.next() == Some("true")))
}

/// Remove the v1 freezer leaf a pause made, if any.
fn remove_freezer(store: &Store, id: &str) {
    if let Some((f, parent)) = freezer_of(store, id) {
        let _ = nucleus_sys::cgroup::remove_extra(&f, parent);
    }
}

pub fn kill(store: &Store, a: &KillArgs) -> Result<u8> {
    let sig = state::parse_signal("SIGNAL", &a.signal)?;
    let s = settled(store, resolve(store, &a.id)?);
    let st = effective(&s).0;
    if sig == libc::SIGKILL || sig == libc::SIGTERM {
        thaw_if_paused(store, &s);
    }
    if !matches!(st, Status::Created | Status::Running) || !signal(&s, sig)? {
        bail!("{}: is {}; there is nothing to signal", a.id, st.as_str());
    }
    Ok(0)
}

pub fn rm(store: &Store, a: &RmArgs, log: &Logger) -> Result<u8> {
    each(&a.ids, log, |q| rm_one(store, q, a.force))
}

/// A verb over several sandboxes goes through the whole list: each failure is one line, and
/// any failure makes the exit status 125.
fn each(ids: &[String], log: &Logger, mut f: impl FnMut(&str) -> Result<()>) -> Result<u8> {
    let mut failed = false;
    for q in ids {
        if let Err(e) = f(q) {
            log.error_of(crate::error_kind(&e), &crate::one_line(&e));
            failed = true;
        }
    }
    Ok(if failed { crate::EXIT_NUCLEUS } else { 0 })
}

fn rm_one(store: &Store, q: &str, force: bool) -> Result<()> {
    let s = resolve(store, q)?;
    let _lock = store
        .lock(&s.id)
        .map_err(|_| anyhow!("{q}: no such sandbox (see `nucleus ps -a`)"))?;
    // Re-read under the lock: another `rm` may have won.
    let s = store
        .read(&s.id)
        .ok_or_else(|| anyhow!("{q}: no such sandbox (see `nucleus ps -a`)"))?;
    let s = if effective(&s).0 != Status::Stopped {
        if !force {
            bail!(
                "{q}: is {}; stop it first, or use rm -f",
                effective(&s).0.as_str()
            );
        }
        let s = settled(store, s);
        thaw_if_paused(store, &s);
        signal(&s, libc::SIGKILL)?;
        if !wait_monitor(&s, Duration::from_secs(30)) {
            bail!("{q}: did not stop within 30 s of SIGKILL");
        }
        store.read(&s.id).unwrap_or(s)
    } else {
        s
    };
    remove_cgroups(store, &s);
    store.remove(&s.id, s.name.as_deref())?;
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit("removed", &s.id, serde_json::json!({}));
    Ok(())
}

/// What a sandbox that lost its monitor (kill -9) left: its cgroups (empty), the parents
/// nucleus made for them when its plan says so, its address claims and slirp's API socket.
/// (Its veth went with its network namespace, its NAT table with the monitor's socket.)
fn remove_cgroups(store: &Store, s: &State) {
    remove_freezer(store, &s.id);
    let net = store.root().join("net");
    nucleus_sys::net::Claim::release_all(&net, &s.id);
    let _ = std::fs::remove_file(net.join(format!("slirp-{}.sock", &s.id[..s.id.len().min(12)])));
    let plan: Option<Plan> = std::fs::read(store.dir(&s.id).join("plan.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    let parents = plan
        .and_then(|p| p.cgroup)
        .is_some_and(|c| c.remove_empty_parents);
    for c in &s.cgroups {
        if std::fs::remove_dir(c).is_ok() && parents {
            if let Some(p) = c.parent() {
                let _ = std::fs::remove_dir(p);
            }
        }
    }
}

/// Records of foreground runs (and `--rm` ones) whose runtime died (kill -9): they were to be
/// removed at exit.
pub fn gc_records(store: &Store) -> Vec<String> {
    // Directories whose maker died while filling them.
    let mut out = store.remove_abandoned();
    for s in store.list() {
        if collect_dead(store, &s) {
            out.push(s.id);
        }
    }
    out
}

/// Remove a record that was to go at exit (a foreground run, `--rm`) whose runtime is gone.
fn collect_dead(store: &Store, s: &State) -> bool {
    if !s.auto_remove || monitor_alive(s) {
        return false;
    }
    remove_cgroups(store, s);
    store.remove(&s.id, s.name.as_deref()).is_ok()
}

/// A name held by such a record is free: collect that record before claiming the name (a
/// foreground `run --name X` killed with SIGKILL no longer keeps X until `rm`).
fn free_stale_name(store: &Store, name: &str) {
    let link = store.root().join("names").join(name);
    let Ok(owner) = std::fs::read_link(&link) else {
        return;
    };
    if let Some(s) = store.read(&owner.to_string_lossy()) {
        collect_dead(store, &s);
    }
}

/// The verbs that act on existing sandboxes, each recorded in the audit log (and, for start,
/// exec, stop and rm, as a span in the sandbox's trace).
pub fn verb(c: crate::cli::Command, root: Option<&Path>, log: &Logger, t0: u64) -> Result<u8> {
    use crate::cli::Command as C;
    let store = Store::open(&state_root(root)?)?;
    let first = match &c {
        C::Start(a) => Some(a.id.as_str()),
        C::Exec(a) => Some(a.id.as_str()),
        C::Stop(a) => a.ids.first().map(|s| s.as_str()),
        C::Rm(a) => a.ids.first().map(|s| s.as_str()),
        _ => None,
    };
    // Only when spans are exported: the sandbox's record, for its trace (read before the verb
    // runs, as `rm` removes it).
    let mut tracer = Some(Tracer::from_env(None)?).filter(|t| t.enabled() && first.is_some());
    let target = tracer
        .as_ref()
        .and(first)
        .and_then(|q| resolve(&store, q).ok());
    if let Some(trace) = target.as_ref().and_then(|s| s.trace.as_deref()) {
        tracer = Some(Tracer::from_env(Some(trace))?);
    }
    let (name, id, r) = match &c {
        C::Start(a) => ("start", a.id.clone(), start(&store, &a.id, log)),
        C::Restart(a) => ("restart", a.id.clone(), restart(&store, root, a, log, t0)),
        C::Ps(a) => return ps(&store, a),
        C::State(a) => return state(&store, &a.id),
        C::Inspect(a) => return inspect(&store, &a.id),
        C::Logs(a) => return logs(&store, a),
        C::Monitor(a) => return monitor_entry(&store, &a.id),
        C::Exec(a) => ("exec", a.id.clone(), exec(&store, a, log)),
        C::Stop(a) => ("stop", a.ids.join(" "), stop(&store, a, log)),
        C::Kill(a) => ("kill", a.id.clone(), kill(&store, a)),
        C::Update(a) => ("update", a.id.clone(), update(&store, a)),
        C::Pause(a) => ("pause", a.id.clone(), pause(&store, &a.id, true)),
        C::Unpause(a) => ("unpause", a.id.clone(), pause(&store, &a.id, false)),
        C::Rm(a) => ("rm", a.ids.join(" "), rm(&store, a, log)),
        _ => bail!("internal: not a lifecycle verb"),
    };
    audit(&store, name, &id, &r);
    if let Some(tr) = tracer.as_mut() {
        let (code, err) = telemetry::outcome(&r);
        let mut attrs = vec![(
            "sandbox.id",
            telemetry::s(target.as_ref().map_or(id.clone(), |s| s.id.clone())),
        )];
        if let Some(n) = target.as_ref().and_then(|s| s.name.clone()) {
            attrs.push(("sandbox.name", telemetry::s(n)));
        }
        if let C::Exec(a) = &c {
            attrs.push((
                "process.executable.name",
                telemetry::s(a.command.first().cloned().unwrap_or_default()),
            ));
            if let Some(code) = code {
                attrs.push(("process.exit.code", nucleus_spec::otlp::Attr::Int(code)));
            }
        }
        tr.record(&format!("nucleus.{name}"), t0, attrs, err);
        tr.flush(log);
    }
    r
}

/// The CPU time of the command `exec` ran (and what it reaped), added to the sandbox's record:
/// on cgroup v1 nothing else counts it once it is gone (it was reaped here, outside the
/// sandbox). One line per exec, appended.
fn record_exec_cpu(store: &Store, id: &str) {
    let usec = nucleus_sys::raw::children_cpu_usec();
    if usec == 0 {
        return;
    }
    if let Ok(mut f) = store::open_append(&store.dir(id).join("exec-cpu")) {
        let _ = std::io::Write::write_all(&mut f, format!("{usec}\n").as_bytes());
    }
}

/// The CPU time of every finished exec of the sandbox (see [`record_exec_cpu`]).
pub fn exec_cpu_usec(store: &Store, id: &str) -> u64 {
    std::fs::read_to_string(store.dir(id).join("exec-cpu"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse::<u64>().ok()).sum())
        .unwrap_or(0)
}
