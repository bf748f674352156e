//! `nucleus pause` and `nucleus unpause`.

use crate::events::Events;
use crate::records::{effective, is_paused, resolve, settled, FREEZER, PAUSED};
use anyhow::{bail, Context, Result};
use nucleus_spec::state::{State, Status};
use nucleus_spec::Plan;
use nucleus_sys::store::Store;
use std::path::{Path, PathBuf};

/// `pause` (on) and `unpause`.
pub(crate) fn pause(store: &Store, q: &str, on: bool) -> Result<u8> {
    let s = settled(store, resolve(store, q)?);
    // Under the sandbox's lock, re-read: a concurrent `rm` or `restart` removes the record
    // (and the freezer leaf it names) under the same lock, so a leaf made here is always
    // named by a record that is still there.
    let (_lock, s) = crate::records::lock_and_read(store, &s.id, q)?;
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

pub(crate) fn set_frozen(store: &Store, s: &State, on: bool) -> Result<()> {
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
    // v1: the freezer leaf is named in the sandbox's directory before it is made, so that
    // whatever happens next (this process killed, the sandbox ending), `rm` finds it.
    if on && cp.driver == nucleus_spec::cgroup::Driver::V1 {
        let l = nucleus_sys::cgroup::v1_freezer_leaf(&leaves, &host)?;
        let text = format!("{}\n", l.display());
        store.write_file(&s.id, FREEZER, text.as_bytes())?;
    }
    nucleus_sys::cgroup::set_frozen(cp.driver, &leaves, &host, on)?;
    if on {
        store.write_file(&s.id, PAUSED, b"")?;
    } else {
        let _ = std::fs::remove_file(store.dir(&s.id).join(PAUSED));
    }
    Ok(())
}

/// A paused sandbox is thawed before it is signalled (a frozen v1 task does not even die).
pub(crate) fn thaw_if_paused(store: &Store, s: &State) {
    if is_paused(store, &s.id) {
        let _ = set_frozen(store, s, false);
    }
}
