//! `nucleus events` (runc's `events`): a running container's resource usage as JSON lines,
//! every --interval until it stops (`--stats`: once), and an `oom` event whenever the kernel's
//! OOM killer killed in it.

use crate::cli::EventsArgs;
use crate::records::{effective, resolve, settled};
use anyhow::{bail, Context, Result};
use nucleus_spec::state::{State, Status};
use nucleus_spec::Plan;
use nucleus_sys::store::Store;

pub(crate) fn events(store: &Store, a: &EventsArgs) -> Result<u8> {
    let every = nucleus_spec::config::parse_duration_ms("--interval", &a.interval)?;
    if every == 0 {
        return Err(nucleus_spec::config::ConfigError::new("--interval", "must be above 0").into());
    }
    let mut ooms = None;
    loop {
        let s = settled(store, resolve(store, &a.id)?);
        let st = effective(&s).0;
        if !matches!(st, Status::Created | Status::Running) {
            if a.stats || ooms.is_none() {
                bail!(
                    "{}: is {}; events need a running container",
                    a.id,
                    st.as_str()
                );
            }
            return Ok(0);
        }
        let u = usage(store, &s)?;
        if ooms.is_some_and(|n| u.oom_kills > n) {
            outln!("{}", serde_json::json!({ "type": "oom", "id": s.id }));
        }
        ooms = Some(u.oom_kills);
        // runc's names (types.Stats): CPU in nanoseconds, memory in bytes.
        let data = serde_json::json!({
            "cpu": { "usage": { "total": u.cpu_usec.map(|c| c * 1000) } },
            "memory": {
                "usage": { "usage": u.memory_current, "max": u.memory_peak },
                "oom_kill": u.oom_kills,
            },
            "pids": { "current": u.pids_current, "peak": u.pids_peak },
        });
        outln!(
            "{}",
            serde_json::json!({ "type": "stats", "id": s.id, "data": data })
        );
        if a.stats {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(every));
    }
}

/// Usage read from the container's cgroup leaves (by their hierarchy).
fn usage(store: &Store, s: &State) -> Result<nucleus_spec::cgroup::Usage> {
    let data = std::fs::read(store.dir(&s.id).join("plan.json"))
        .with_context(|| format!("{}: read its plan", s.id))?;
    let plan: Plan = serde_json::from_slice(&data).context("decode its plan")?;
    let Some(cp) = plan.cgroup else {
        bail!("{}: has no cgroup to read usage from", s.id);
    };
    let leaves: Vec<(String, std::path::PathBuf)> = cp
        .dirs
        .iter()
        .map(|d| d.hierarchy.clone())
        .zip(s.cgroups.iter().cloned())
        .collect();
    Ok(nucleus_sys::cgroup::read_usage(cp.driver, &leaves, true))
}
