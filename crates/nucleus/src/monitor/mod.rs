//! The monitor of a sandbox (sandboxes that outlive a command: `run -d`, `create`/`start`, `ps`, `state`, `logs`,
//! `exec`, `stop`, `kill`, `rm`. No daemon: each sandbox has a monitor, the process that
//! started it, which keeps its record in the state store (nucleus-sys `store`) and writes its
//! events. A foreground `run` is its own sandbox's monitor and keeps a record too (removed at
//! exit), so `ps`, `exec`, `stop` and `kill` work on it as well.

pub(crate) mod health;
pub(crate) mod launcher;
pub(crate) mod logcap;
pub(crate) mod ready;
pub(crate) mod systemd;
pub(crate) mod tracker;

pub(crate) use health::*;
pub(crate) use launcher::*;
pub(crate) use logcap::*;
pub(crate) use ready::*;
pub(crate) use systemd::*;
pub(crate) use tracker::*;

use crate::events::Events;
use anyhow::{anyhow, Context, Result};
use nucleus_spec::state::{MonitorReport, State};
use nucleus_spec::Plan;
use nucleus_sys::process;
use nucleus_sys::sandbox::Detach;
use nucleus_sys::store::{self, Store};
use std::fs::File;
use std::time::{Duration, Instant};

/// `nucleus monitor ID`: the monitor of a detached sandbox, as its systemd unit runs it. Its
/// output (the workload's, and runtime warnings) goes to the journal.
pub(crate) fn monitor_entry(store: &Store, id: &str) -> Result<u8> {
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
        None,
    ))
}

/// The monitor of one detached sandbox: it records every step and serves the control socket
/// until the sandbox ends. `notify` reaches the launcher waiting for the start's result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn monitor_main(
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
    restore: Option<nucleus_sys::sandbox::Restore>,
) -> u8 {
    let id = st.id.clone();
    let name = st.name.clone();
    // The launcher that wrote the record (its first monitor): the record must still be that
    // launch's when this monitor takes it over (see first_save).
    let launcher = st.monitor;
    st.monitor = Some(process::this_process());
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
        ready: match Ready::new(plan, store, false) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("nucleus: warning: --sd-notify: {e}");
                None
            }
        },
        freezer: None,
        unhealthy_kill: false,
        restart_unhealthy: plan.health_on_failure == nucleus_spec::config::HealthOnFailure::Restart,
        pid1_workload: plan.checkpointable,
        report_early: false,
        log_cap: log_max.map(|max| LogCap {
            dir: store.dir(&id),
            max,
            next: Instant::now() + Duration::from_millis(100),
            last_len: [0; 2],
        }),
    };
    // The first record write, under the sandbox directory's lock. Until it, the record names
    // the launcher as the monitor: a launcher killed meanwhile makes the sandbox read as
    // stopped (lost), and `rm` may remove it. Under the lock, either `rm` came first and the
    // record is gone (then nothing is started: a sandbox without a record is out of reach of
    // ps, rm and its name), or the record names this monitor, alive, for every later reader.
    // (Found by the lifecycle model, crates/nucleus-model.)
    if !t.first_save(launcher) {
        t.notify.done(&MonitorReport::Error {
            code: 125,
            msg: "its record was removed while it was being made".into(),
        });
        return 125;
    }
    let mut detach = Detach {
        hold,
        control,
        console: console.map(nucleus_sys::channel::ConsoleSocket::from),
        restore,
    };
    let mut quick = 0u32;
    loop {
        let began = Instant::now();
        let out = match nucleus_sys::sandbox::run_detached(plan, &mut t, Some(&detach)) {
            Ok(out) => out,
            Err(e) if t.state.restarts.is_none() => {
                t.notify.done(&MonitorReport::Error {
                    code: 125,
                    msg: e.to_string(),
                });
                let _ = store.remove(&id, name.as_deref());
                crate::events::audit_removal(store, &id, "monitor");
                return 125;
            }
            // A restart that could not start: recorded as a failed run (and maybe retried).
            Err(e) => nucleus_sys::sandbox::Outcome::failed(e.to_string()),
        };
        let code = finish(&mut t, &out, memory_limit);
        let unhealthy = std::mem::take(&mut t.unhealthy_kill);
        let count = t.state.restarts.as_ref().map_or(0, |r| r.count);
        let again = unhealthy || plan.restart.wants(i32::from(code), count);
        if !again || stop_requested(store, &id) || store.read(&id).is_none() {
            return 0;
        }
        // Back-off: doubling for each quick failure in a row.
        quick = if began.elapsed() >= Duration::from_millis(nucleus_spec::config::RESTART_RESET_MS)
        {
            0
        } else {
            quick + 1
        };
        let delay = nucleus_spec::config::RestartPolicy::delay_ms(quick.saturating_sub(1));
        let reason = match (&out.status, unhealthy) {
            (_, true) => "unhealthy".to_string(),
            (nucleus_sys::raw::WaitStatus::Signaled(s), _) => format!("signal {s}"),
            _ => format!("exit {code}"),
        };
        let next = nucleus_sys::store::now_ms() + delay;
        t.state.restarts = Some(nucleus_spec::state::Restarts {
            count: count + 1,
            reason: reason.clone(),
            next_ms: Some(next),
        });
        t.save();
        t.events.emit(
            "restart",
            &id,
            serde_json::json!({ "count": count + 1, "reason": reason, "delay_ms": delay }),
        );
        // Waiting, a `stop` (or `rm -f`) ends it.
        let until = Instant::now() + Duration::from_millis(delay);
        while Instant::now() < until {
            if store.read(&id).is_none() {
                return 0;
            }
            if stop_requested(store, &id) {
                if let Some(r) = &mut t.state.restarts {
                    r.next_ms = None;
                }
                t.save();
                t.events.emit(
                    "restart_cancelled",
                    &id,
                    serde_json::json!({ "restarts": count + 1 }),
                );
                return 0;
            }
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        if let Some(r) = &mut t.state.restarts {
            r.next_ms = None;
        }
        t.again(plan, store);
        detach.hold = false;
        // (A restart starts the plan afresh, not the image again.)
        detach.restore = None;
    }
}

/// `nucleus stop` (and `rm -f`) said the sandbox is to stay stopped.
pub(crate) fn stop_requested(store: &Store, id: &str) -> bool {
    store.dir(id).join(STOP_MARK).exists()
}

/// The file `stop` leaves in a sandbox's record directory before it signals.
pub(crate) const STOP_MARK: &str = "stopping";
