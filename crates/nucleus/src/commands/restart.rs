//! `nucleus restart`.

use crate::cli::RunArgs;
use crate::commands::stop_one;
use crate::events::Events;
use crate::log::Logger;
use crate::records::{remove_cgroups, resolve, settled, ARGS};
use anyhow::{anyhow, Context, Result};
use nucleus_sys::store::Store;
use std::path::Path;
use std::time::Duration;

/// `nucleus restart`: a detached sandbox (stopped, or stopped first as `stop` does) starts
/// again as it was made, with the same id and name: the same flags, a plan made afresh.
pub(crate) fn restart(
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
    {
        // As `rm`: under the sandbox's lock, re-read (another restart or rm may have won).
        let (_lock, s) = crate::records::lock_and_read(store, &s.id, &a.id)?;
        let st = crate::records::effective(&s).0;
        if st != nucleus_spec::state::Status::Stopped {
            anyhow::bail!(
                "{}: is {} again (another caller started it)",
                a.id,
                st.as_str()
            );
        }
        let _ = remove_cgroups(store, &s);
        store.remove(&s.id, s.name.as_deref())?;
        crate::events::audit_removal(store, &s.id, "restart");
    }
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit("restarting", &s.id, serde_json::json!({}));
    crate::run::main(args, root, false, log, t0, None, Some(s.id.clone()))
}
