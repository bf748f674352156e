//! `nucleus stop` and `nucleus kill`.

use crate::cli::{KillArgs, StopArgs};
use crate::commands::thaw_if_paused;
use crate::log::Logger;
use crate::records::{each, effective, resolve, settled, signal, wait_monitor};
use anyhow::{bail, Result};
use nucleus_spec::state::{self, Status};
use nucleus_sys::store::Store;
use std::time::Duration;

pub(crate) fn stop(store: &Store, a: &StopArgs, log: &Logger) -> Result<u8> {
    let timeout = Duration::from_secs_f64(a.time.max(0.0));
    each(&a.ids, log, |q| stop_one(store, q, timeout))
}

/// SIGTERM to the workload, SIGKILL to the whole sandbox after `timeout`; wait until its
/// monitor has recorded the end.
pub(crate) fn stop_one(store: &Store, q: &str, timeout: Duration) -> Result<()> {
    let s = settled(store, resolve(store, q)?);
    // Said first: a monitor restarting the sandbox (--restart) leaves it stopped, also one
    // waiting to restart it now.
    if s.restarts.is_some() || effective(&s).0 != Status::Stopped {
        let _ = std::fs::write(store.dir(&s.id).join(crate::monitor::STOP_MARK), b"");
    }
    if effective(&s).0 == Status::Stopped {
        // Lost with its monitor while paused: still frozen, its init's parent-death SIGKILL
        // pending; thawed, it ends (the lifecycle model found it stopped but not gone).
        thaw_if_paused(store, &s);
        if s.restarts.is_some() && !wait_monitor(&s, Duration::from_secs(5)) {
            bail!("{q}: its monitor did not stop restarting it within 5 s");
        }
        return Ok(());
    }
    thaw_if_paused(store, &s);
    // SIGTERM, then SIGKILL once `timeout` ran out, each to what the record names at that
    // moment: a monitor restarting the sandbox (--restart) may have started a new init after
    // this read the record and before the mark was there; signalling only the init read
    // first left that one running, and the stop failed after its 30 s (the lifecycle model,
    // crates/nucleus-model, found it).
    let began = std::time::Instant::now();
    let mut termed = s.init;
    signal(&s, libc::SIGTERM)?;
    loop {
        if wait_monitor(&s, Duration::from_millis(50)) {
            return Ok(());
        }
        let Some(now) = store.read(&s.id) else {
            return Ok(());
        };
        // Paused again meanwhile: a frozen process acts on no signal.
        thaw_if_paused(store, &now);
        if began.elapsed() >= timeout {
            signal(&now, libc::SIGKILL)?;
        } else if now.init != termed {
            signal(&now, libc::SIGTERM)?;
            termed = now.init;
        }
        if began.elapsed() >= timeout + Duration::from_secs(30) {
            bail!("{q}: did not stop within 30 s of SIGKILL");
        }
    }
}

pub(crate) fn kill(store: &Store, a: &KillArgs) -> Result<u8> {
    let sig = state::parse_signal("SIGNAL", &a.signal)?;
    let s = settled(store, resolve(store, &a.id)?);
    let st = effective(&s).0;
    if sig == libc::SIGKILL || sig == libc::SIGTERM {
        thaw_if_paused(store, &s);
    }
    if a.all && matches!(st, Status::Created | Status::Running) {
        // Each process of it, as runc's --all (a container without its own pid namespace
        // has no init whose end takes the others).
        let pids = crate::records::procs(&s);
        for p in &pids {
            let _ = nucleus_sys::raw::kill(*p, sig);
        }
        if !pids.is_empty() {
            return Ok(0);
        }
    }
    if !matches!(st, Status::Created | Status::Running) || !signal(&s, sig)? {
        bail!("{}: is {}; there is nothing to signal", a.id, st.as_str());
    }
    Ok(0)
}
