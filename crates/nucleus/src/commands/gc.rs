//! `nucleus gc`.

use crate::log::Logger;
use crate::records;
use crate::run::located;
use anyhow::Result;
use nucleus_sys::store::Store;
use std::path::Path;

/// `nucleus gc`: remove cgroups whose runtime died (their holder name is free), records of
/// killed runs, the empty default cgroup parents (runs keep them for the next run), and /etc
/// views no sandbox holds (the next run snapshots the host afresh).
pub(crate) fn gc(a: &crate::cli::GcArgs, root: Option<&Path>, log: &Logger) -> Result<u8> {
    if let Ok(store) = Store::open(&records::state_root(root)?) {
        for id in records::gc_records(&store) {
            log.info(&format!(
                "removed the record of {id} (its process was killed)"
            ));
        }
        nucleus_sys::etcview::remove_unheld(&store.root().join(".etc-views"));
    }
    let Some(plan) = located(a.cgroup_parent.as_deref())? else {
        log.warn("no cgroup hierarchy is mounted: nothing to clean");
        return Ok(0);
    };
    for p in nucleus_sys::cgroup::gc(&plan) {
        log.info(&format!("removed {}", p.display()));
    }
    // The shared default parents, once empty (runs keep them for the next run).
    for p in nucleus_sys::cgroup::remove_empty_defaults(&plan) {
        log.info(&format!("removed {}", p.display()));
    }
    Ok(0)
}
