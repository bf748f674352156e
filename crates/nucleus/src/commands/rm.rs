//! `nucleus rm`.

use crate::cli::RmArgs;
use crate::commands::thaw_if_paused;
use crate::events::Events;
use crate::log::Logger;
use crate::records::{each, effective, remove_cgroups, resolve, settled, signal, wait_monitor};
use anyhow::{bail, Result};
use nucleus_spec::state::Status;
use nucleus_sys::store::Store;
use std::time::Duration;

pub(crate) fn rm(store: &Store, a: &RmArgs, log: &Logger) -> Result<u8> {
    each(&a.ids, log, |q| rm_one(store, q, a.force, log))
}

/// `delete` (runc's): as `rm`, but `--force` of an id that does not exist succeeds, as runc's
/// does (containerd's shim deletes --force what a failed start may never have made).
pub(crate) fn delete(store: &Store, a: &RmArgs, log: &Logger) -> Result<u8> {
    each(&a.ids, log, |q| match rm_one(store, q, a.force, log) {
        Err(e)
            if a.force
                && matches!(
                    e.downcast_ref::<nucleus_spec::state::ResolveError>(),
                    Some(nucleus_spec::state::ResolveError::NotFound(_))
                ) =>
        {
            Ok(())
        }
        r => r,
    })
}

pub(crate) fn rm_one(store: &Store, q: &str, force: bool, log: &Logger) -> Result<()> {
    let id = resolve(store, q)?.id;
    // Not a sandbox killed whose record then cannot go.
    if store.read_only() {
        bail!(
            "{q}: the state root {} is read-only: nothing was stopped or removed",
            store.root().display()
        );
    }
    let mut waited = false;
    let (_lock, s) = loop {
        let (lock, s) = crate::records::lock_and_read(store, &id, q)?;
        // A sandbox being set up is waited for without the lock, which its monitor's first
        // record write takes (holding it here would stall both until settled()'s deadline).
        if force && !waited && effective(&s).0 == Status::Creating {
            drop(lock);
            settled(store, s);
            waited = true;
            continue;
        }
        break (lock, s);
    };
    if s.oci.is_some() {
        return crate::oci::delete(store, &s, force, log);
    }
    let s = if effective(&s).0 != Status::Stopped {
        if !force {
            bail!(
                "{q}: is {}; stop it first, or use rm -f",
                effective(&s).0.as_str()
            );
        }
        let s = settled(store, s);
        // As `stop`: the mark first, or a --restart policy starts it again after the kill
        // (and this waits for a monitor that never ends). Found by the lifecycle model.
        let _ = std::fs::write(store.dir(&s.id).join(crate::monitor::STOP_MARK), b"");
        thaw_if_paused(store, &s);
        signal(&s, libc::SIGKILL)?;
        if !wait_monitor(&s, Duration::from_secs(30)) {
            bail!("{q}: did not stop within 30 s of SIGKILL");
        }
        store.read(&s.id).unwrap_or(s)
    } else {
        s
    };
    let _ = remove_cgroups(store, &s);
    store.remove(&s.id, s.name.as_deref())?;
    crate::events::audit_removal(store, &s.id, "rm");
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit("removed", &s.id, serde_json::json!({}));
    Ok(())
}
