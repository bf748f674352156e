//! The monitor of a sandbox (sandboxes that outlive a command: `run -d`, `create`/`start`, `ps`, `state`, `logs`,
//! `exec`, `stop`, `kill`, `rm`. No daemon: each sandbox has a monitor, the process that
//! started it, which keeps its record in the state store (nucleus-sys `store`) and writes its
//! events. A foreground `run` is its own sandbox's monitor and keeps a record too (removed at
//! exit), so `ps`, `exec`, `stop` and `kill` work on it as well.

pub(crate) mod health;
pub(crate) mod launcher;
pub(crate) mod logcap;
pub(crate) mod systemd;
pub(crate) mod tracker;

pub(crate) use health::*;
pub(crate) use launcher::*;
pub(crate) use logcap::*;
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
) -> u8 {
    let id = st.id.clone();
    let name = st.name.clone();
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
        console: console.map(nucleus_sys::channel::ConsoleSocket::from),
    };
    match nucleus_sys::sandbox::run_detached(plan, &mut t, Some(&detach)) {
        Ok(out) => {
            finish(&mut t, &out, memory_limit);
            0
        }
        Err(e) => {
            t.notify.done(&MonitorReport::Error {
                code: 125,
                msg: e.to_string(),
            });
            let _ = store.remove(&id, name.as_deref());
            125
        }
    }
}
