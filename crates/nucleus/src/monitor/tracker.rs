//! The record tracker: the monitor's view of one sandbox, an `Observer` of it that writes
//! its record, events and warnings, and its final state.

use crate::cli::RunArgs;
use crate::events::Events;
use crate::log::Logger;
use crate::monitor::{Health, LogCap, Ready};
use crate::records::{free_stale_name, freezer_of, workload_of};
use anyhow::Result;
use nucleus_spec::net::EgressRefusal;
use nucleus_spec::stage::StartFailure;
use nucleus_spec::state::{ExitInfo, MonitorReport, ProcId, SecurityReport, State, Status};
use nucleus_spec::Plan;
use nucleus_sys::process;
use nucleus_sys::raw::WaitStatus;
use nucleus_sys::sandbox::{Observer, Outcome};
use nucleus_sys::store::{now_ms, Store};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the monitor reports to the command that launched it (detached sandboxes): warnings,
/// then `Ok` or `Error` ([`MonitorReport`], one line each).
pub(crate) struct Notify(pub(crate) Option<File>);

impl Notify {
    pub(crate) fn line(&mut self, r: &MonitorReport) {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(format!("{}\n", r.encode()).as_bytes());
        }
    }
    /// The last report: the launcher stops reading.
    pub(crate) fn done(&mut self, r: &MonitorReport) {
        self.line(r);
        self.0 = None;
    }
}

/// The monitor's view of one sandbox: it records every step in the store and the events.
pub(crate) struct Tracker<'a> {
    pub store: &'a Store,
    pub state: State,
    pub events: Events,
    /// Foreground runs warn on stderr; detached ones through the launcher.
    pub(crate) log: Option<&'a Logger>,
    pub(crate) notify: Notify,
    pub(crate) hold: bool,
    /// A foreground run whose record could not be made before the start: made with this plan
    /// once the sandbox exists.
    pub(crate) plan: Option<&'a Plan>,
    /// When the workload was about to exec (for the `create` span).
    pub applied_ns: Option<u64>,
    /// The record was already removed (a foreground run's, while its sandbox was torn down).
    pub(crate) removed: bool,
    /// `--health-cmd`: the checks this supervisor runs.
    pub(crate) health: Option<Health>,
    /// The v1 freezer leaf a pause made, once the record that names it is gone.
    pub(crate) freezer: Option<PathBuf>,
    /// A detached sandbox's log, kept under `--log-max-size`.
    pub(crate) log_cap: Option<LogCap>,
    /// When the service is ready, and the caller's service manager told.
    pub(crate) ready: Option<Ready>,
    /// `--health-on-failure restart` killed the sandbox: start it again.
    pub(crate) unhealthy_kill: bool,
    /// `--health-on-failure restart`.
    pub(crate) restart_unhealthy: bool,
    /// The workload is the sandbox's PID 1 (`--checkpointable`: no init of ours).
    pub(crate) pid1_workload: bool,
    /// A foreground run that may report its status before the sandbox is torn down
    /// ([`Observer::report_early`]).
    pub(crate) report_early: bool,
}

impl Tracker<'_> {
    pub(crate) fn save(&self) {
        let _ = self.store.write(&self.state);
    }
    /// The monitor's first write (see `monitor_main`): false when the record is gone, or is
    /// not this launch's any more: `restart` reuses the id, so a record removed as lost (its
    /// launcher killed before this write) may have been replaced by a new launch's, which a
    /// late monitor must not take over (two monitors would run one id, one of them out of
    /// reach once the other is removed: seen in the concurrent model-based test).
    pub(crate) fn first_save(&self, launcher: Option<nucleus_spec::state::ProcId>) -> bool {
        let Ok(_lock) = self.store.lock(&self.state.id) else {
            return false;
        };
        self.store
            .read(&self.state.id)
            .is_some_and(|r| r.monitor == launcher)
            && self.store.write(&self.state).is_ok()
    }
    /// A warning: on stderr for a foreground run; to the launcher while it waits; after that
    /// into a detached sandbox's log (the monitor's stderr).
    pub(crate) fn say(&mut self, what: &str) {
        // One line whatever the sandbox put in it (the launcher's protocol is line-based).
        let what = &nucleus_spec::config::single_line(what);
        match (self.log, &self.notify.0) {
            (Some(l), _) => l.warn(what),
            (None, Some(_)) => self.notify.line(&MonitorReport::Warn(what.into())),
            (None, None) => eprintln!("nucleus: warning: {what}"),
        }
    }
    /// A line for the user (see [`Tracker::say`]) and the event that says the same.
    pub(crate) fn report(&mut self, line: &str, event: &str, fields: serde_json::Value) {
        self.say(line);
        self.events.emit(event, &self.state.id, fields);
    }
    pub(crate) fn warn(&mut self, what: &str) {
        self.report(
            what,
            "security_degraded",
            serde_json::json!({ "what": what }),
        );
    }
}

impl Tracker<'_> {
    /// Ready for the next run of a restarted sandbox: its record as a new start's.
    pub(crate) fn again(&mut self, plan: &Plan, store: &Store) {
        let s = &mut self.state;
        s.status = Status::Creating;
        (s.init, s.workload, s.exit, s.usage) = (None, None, None, None);
        (s.started_ms, s.finished_ms, s.ready_ms, s.health) = (None, None, None, None);
        s.protections = None;
        s.monitor = Some(process::this_process());
        self.hold = false;
        self.health = Health::new(plan, store);
        self.ready = Ready::new(plan, store, false).ok();
        self.save();
    }
    /// The workload runs: readiness probing begins (or it is ready now).
    pub(crate) fn ready_begin(&mut self) {
        if self.ready.as_mut().is_some_and(|r| r.begin()) {
            self.became_ready();
        }
    }
    /// Ready: recorded (and, when a readiness flag said how, saved and an event).
    fn became_ready(&mut self) {
        self.state.ready_ms = Some(now_ms());
        let Some(how) = self.ready.as_ref().map(|r| r.how.clone()) else {
            return;
        };
        if how.is_started() {
            // (Saved with the start: no write, no event more per run.)
            return;
        }
        let how = serde_json::to_value(&how).unwrap_or_default();
        self.save();
        self.events
            .emit("ready", &self.state.id, serde_json::json!({ "how": how }));
    }
    /// The workload runs: health checks begin.
    pub(crate) fn health_begin(&mut self) {
        if let Some(h) = &mut self.health {
            if h.started.is_none() {
                let now = Instant::now();
                h.started = Some(now);
                h.next = Some(now + Duration::from_millis(h.check.interval_ms));
                self.state.health = Some(h.state.status.as_str().into());
            }
        }
    }
    pub(crate) fn health_result(&mut self, code: i32, output: String) {
        let Some(h) = &mut self.health else {
            return;
        };
        let now = Instant::now();
        h.next = Some(now + Duration::from_millis(h.check.interval_ms));
        let in_start = h
            .started
            .is_some_and(|s| now < s + Duration::from_millis(h.check.start_period_ms));
        let changed = h.state.observe(code, in_start);
        let streak = h.state.failures;
        if let Some(status) = changed {
            let status = status.as_str();
            self.state.health = Some(status.into());
            self.save();
            if status == "unhealthy" {
                self.say(&format!(
                    "health check failing ({streak} in a row): {output}"
                ));
                if self.restart_unhealthy {
                    self.unhealthy_kill = true;
                    if let Some(fd) = self.state.init.as_ref().and_then(process::pidfd) {
                        use std::os::fd::AsFd;
                        let _ = nucleus_sys::raw::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                    }
                }
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
    fn report_early(&self) -> bool {
        self.report_early
    }
    fn wants_usage(&self) -> bool {
        self.events.on() || self.log.is_some_and(|l| l.json())
    }
    fn next_tick_ms(&self) -> i32 {
        let soonest = |a: i32, b: i32| match (a, b) {
            (-1, x) | (x, -1) => x,
            (a, b) => a.min(b),
        };
        let health = self.health.as_ref().map_or(-1, |h| h.next_tick_ms());
        let ready = self.ready.as_ref().map_or(-1, Ready::next_tick_ms);
        let log = self.log_cap.as_ref().map_or(-1, LogCap::ms_until);
        soonest(soonest(health, ready), log)
    }
    fn watched(&self) -> Vec<i32> {
        use std::os::fd::AsRawFd;
        let mut v = self.ready.as_ref().map(Ready::watched).unwrap_or_default();
        if let Some((_, fd, _)) = self.health.as_ref().and_then(|h| h.running.as_ref()) {
            v.push(fd.as_raw_fd());
        }
        v
    }
    fn tick(&mut self) {
        if let Some(l) = &mut self.log_cap {
            l.check();
        }
        let id = self.state.id.clone();
        let init = self.state.init;
        if self.ready.as_mut().is_some_and(|r| r.tick(&id, init)) {
            self.became_ready();
        }
        let Some(h) = &mut self.health else {
            return;
        };
        let now = Instant::now();
        let paused = h.root.join(&id).join(crate::records::PAUSED).exists();
        if let Some((c, _, began)) = &mut h.running {
            let done = matches!(c.try_wait(), Ok(Some(_)));
            if done || now >= *began + Duration::from_millis(h.check.timeout_ms) {
                // A check the pause caught (refused, or frozen until its timeout) says nothing
                // about the workload's health: not counted.
                if let Some((code, out)) = h.collect().filter(|_| !paused) {
                    self.health_result(code, out);
                }
            }
        } else if h.next.is_some_and(|n| now >= n) {
            // A paused sandbox is not checked (exec refuses it): it keeps its status.
            if paused {
                h.next = Some(now + Duration::from_millis(h.check.interval_ms));
                return;
            }
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
        self.state.init = process::start_time(pid).map(|start| ProcId { pid, start });
        if self.pid1_workload {
            self.state.workload = self.state.init;
        }
        self.state.cgroups = cgroups.to_vec();
        // A foreground run's record was made before the clone (`creating`, no pid): it must be
        // listed before the workload's program runs (a script that sees the program's first
        // output may `ps`, `kill` or `exec` it at once; they wait for its pid). The pid now.
        // Detached ones are listed from now on (`creating` until the workload's report).
        if let Some(l) = self.log {
            l.started(&self.state.id, pid, cgroups);
        }
        match self.plan.take().and_then(|p| serde_json::to_vec(p).ok()) {
            // Its record could not be made before the start: once more, and the run goes on
            // without one (a full or read-only state root) if it still cannot, but says so.
            Some(p) => {
                if let Err(e) =
                    self.store
                        .create(&self.state.id, None, &self.state, &[("plan.json", &p)])
                {
                    self.say(&format!(
                        "its record could not be made ({e}): ps, exec and stop will not find it"
                    ));
                }
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
        self.notify.line(&MonitorReport::Created(now));
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
            self.ready_begin();
            self.save();
            crate::timing::mark("update record");
            self.events.emit("started", &self.state.id, fields);
            return;
        }
        self.state.workload = match self.pid1_workload {
            true => self.state.init,
            false => self.state.init.as_ref().and_then(workload_of),
        };
        if self.hold {
            self.state.status = Status::Created;
            self.save();
            self.notify.done(&MonitorReport::Ok);
        } else {
            self.save();
        }
    }
    fn workload_exited(&mut self, handing_over: bool) {
        if let Some(h) = &mut self.health {
            h.stop();
        }
        if let Some(r) = &mut self.ready {
            r.stopping();
        }
        // A foreground run's record goes while the kernel tears the namespaces down, off the
        // path to the exit status.
        if self.log.is_some() && self.state.auto_remove {
            // (Reporting early, the helper removes a v1 freezer leaf once init is gone: it
            // reads it from the retired record.)
            if !handing_over {
                self.freezer = freezer_of(self.store, &self.state.id);
            }
            let (id, name) = (&self.state.id, self.state.name.as_deref());
            // Reporting early: out of sight in one rename; the helper deletes it.
            self.removed = match handing_over {
                true => self.store.retire(id, name),
                false => self.store.remove(id, name),
            }
            .is_ok();
        }
    }
    fn after_teardown(&mut self, runtime_died: bool) {
        let id = &self.state.id;
        let freezer = crate::records::freezer_in(&self.store.retired_dir(id))
            .or_else(|| freezer_of(self.store, id));
        self.store.remove_retired(id);
        if runtime_died {
            let _ = self.store.remove(id, self.state.name.as_deref());
        }
        if let Some(f) = freezer {
            let _ = nucleus_sys::cgroup::remove_leaf(&f);
        }
    }
    fn egress_refused(&mut self, r: &EgressRefusal) {
        self.say(&r.to_string());
        self.events.emit(
            "egress_refused",
            &self.state.id,
            serde_json::json!({ "kind": r.kind(), "target": r.target() }),
        );
    }
    fn denied(&mut self, pid: u32, syscall: &str, errno: i32) {
        self.report(
            &format!("seccomp: denied {syscall} (errno {errno}) to pid {pid}"),
            "seccomp_denied",
            serde_json::json!({ "syscall": syscall, "errno": errno, "pid": pid }),
        );
    }
    fn denied_again(&mut self, syscall: &str, errno: i32, count: u64) {
        self.report(
            &format!("seccomp: denied {syscall} (errno {errno}) {count} more times"),
            "seccomp_denied",
            serde_json::json!({ "syscall": syscall, "errno": errno, "count": count }),
        );
    }
    fn exec_result(&mut self, failure: Option<&StartFailure>) {
        match failure {
            None => {
                self.state.status = Status::Running;
                self.state.started_ms = Some(now_ms());
                self.health_begin();
                self.ready_begin();
                self.save();
                self.events.emit(
                    "started",
                    &self.state.id,
                    serde_json::json!({
                        "pid": self.state.init.map(|p| p.pid),
                        "protections": self.state.protections,
                    }),
                );
                self.notify.done(&MonitorReport::Ok);
            }
            Some(f) => {
                self.state.exit = Some(ExitInfo {
                    code: Some(i32::from(f.exit_code())),
                    error: Some(f.to_string()),
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
pub(crate) fn finish(t: &mut Tracker<'_>, out: &Outcome, memory_limit: Option<u64>) -> u8 {
    // (A sandbox killed as a whole never reports its workload's exit.)
    if let Some(h) = &mut t.health {
        h.stop();
    }
    let id = t.state.id.clone();
    let never_ran = out.report.is_none()
        || (out.failure.is_some() && t.state.status != Status::Running && !t.hold);
    let mut code = out.status.code().clamp(0, 255) as u8;
    if let Some(f) = &out.failure {
        code = f.exit_code();
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
        exit.error = out.failure.as_ref().map(ToString::to_string);
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
            // (A foreground run's own record, made and removed by one command, is not
            // audited.)
            if t.log.is_none() {
                let by = if never_ran { "monitor" } else { "auto-remove" };
                crate::events::audit_removal(t.store, &id, by);
            }
        }
        if let Some(f) = t.freezer.take() {
            let _ = nucleus_sys::cgroup::remove_leaf(&f);
        }
        t.events.emit("removed", &id, serde_json::json!({}));
    } else {
        t.save();
    }
    // A launcher still waiting hears why only now, when the record is in its final state.
    match &out.failure {
        Some(f) => t.notify.done(&MonitorReport::Error {
            code,
            msg: f.to_string(),
        }),
        None => t.notify.done(&MonitorReport::Error {
            code,
            msg: "the sandbox stopped before its workload started".into(),
        }),
    }
    code
}

/// A foreground run's tracker (the record appears once the sandbox exists; removed at exit).
pub(crate) fn foreground<'a>(
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
    st.monitor = Some(process::this_process());
    st.events = a.events_jsonl.clone();
    st.auto_remove = true;
    if let Some(n) = &a.name {
        // Claimed now, so a taken name fails before anything starts.
        free_stale_name(store, n);
    }
    // The record, plan included, is made before the clone, so the sandbox is listed before
    // its program runs whenever the runtime gets to add the pid (it does that at low priority:
    // sandbox/parent.rs; docs/benchmarks.md, session 22). A named one must be (its name is
    // claimed), as must a gVisor one (its bundle is written into the directory before the
    // start); another runs on where none can be made (a full or read-only state root), and
    // carries its plan for started() to try again.
    let made = serde_json::to_vec(plan)
        .map_err(anyhow::Error::from)
        .and_then(|p| Ok(store.create(&plan.id, a.name.as_deref(), &st, &[("plan.json", &p)])?));
    let carried = match made {
        Ok(()) => None,
        Err(e) if a.name.is_some() || plan.gvisor.is_some() => return Err(e),
        Err(_) => Some(plan),
    };
    Ok(Tracker {
        store,
        state: st,
        events,
        log: Some(log),
        notify: Notify(None),
        hold: false,
        plan: carried,
        applied_ns: None,
        removed: false,
        health: Health::new(plan, store),
        freezer: None,
        log_cap: None,
        ready: Some(Ready::new(plan, store, true)?),
        unhealthy_kill: false,
        restart_unhealthy: false,
        pid1_workload: plan.checkpointable,
        report_early: false,
    })
}
