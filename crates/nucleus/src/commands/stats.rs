//! `nucleus stats`.

use crate::cli::OutputFormat;
use crate::records;
use crate::run::located;
use anyhow::Result;
use nucleus_sys::store::Store;
use std::path::Path;

pub(crate) fn mib(b: Option<u64>) -> String {
    b.map(|x| format!("{:.1}MiB", x as f64 / 1048576.0))
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn opt(n: Option<u64>) -> String {
    n.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// `nucleus stats`: live usage read from each sandbox's cgroup, for the running sandboxes of
/// the caller's state root only (another user's, or another root's, are not listed even when
/// their cgroups lie under the same parent).
pub(crate) fn stats(a: &crate::cli::StatsArgs, root: Option<&Path>) -> Result<u8> {
    use nucleus_spec::state::Status;
    let store = Store::open(&records::state_root(root)?)?;
    let running = |s: &nucleus_spec::state::State| {
        matches!(records::effective(s).0, Status::Running | Status::Created)
    };
    let chosen: Vec<nucleus_spec::state::State> = if a.ids.is_empty() {
        store.list().into_iter().filter(running).collect()
    } else {
        let mut v = Vec::new();
        for q in &a.ids {
            let s = records::resolve(&store, q)?;
            if !running(&s) {
                anyhow::bail!(
                    "{q}: is {}; stats shows running sandboxes",
                    records::effective(&s).0.as_str()
                );
            }
            v.push(s);
        }
        v
    };
    let json = a.json || a.format == OutputFormat::Json;
    let Some(plan) = located(a.cgroup_parent.as_deref())? else {
        anyhow::bail!("no cgroup hierarchy is mounted: no sandbox has usage to show");
    };
    let all = nucleus_sys::cgroup::list(&plan);
    if !json {
        outln!(
            "{:<16}  {:<16}  {:>10}  {:>10}  {:>10}  {:>5}  {:>5}  {:>4}",
            "ID",
            "NAME",
            "MEM",
            "MEM PEAK",
            "CPU",
            "PIDS",
            "PEAK",
            "OOM"
        );
    }
    for s in chosen {
        let leaves = all
            .iter()
            .find(|(id, _)| *id == s.id)
            .map(|(_, l)| l.as_slice())
            .unwrap_or_default();
        let mut u = nucleus_sys::cgroup::read_usage(plan.driver, leaves, true);
        if plan.driver == nucleus_spec::cgroup::Driver::V1 {
            // v1 has no CPU counter of its own here: exec'd commands (reaped outside the
            // sandbox) are counted by `exec` in the record.
            let done = records::exec_cpu_usec(&store, &s.id);
            if done > 0 || u.cpu_usec.is_some() {
                u.cpu_usec = Some(u.cpu_usec.unwrap_or(0) + done);
            }
        }
        if json {
            outln!(
                "{}",
                serde_json::json!({ "id": s.id, "name": s.name, "usage": u })
            );
        } else {
            outln!(
                "{:<16}  {:<16}  {:>10}  {:>10}  {:>10}  {:>5}  {:>5}  {:>4}",
                s.id,
                s.name.as_deref().unwrap_or("-"),
                mib(u.memory_current),
                mib(u.memory_peak),
                u.cpu_usec
                    .map(|c| format!("{:.2}s", c as f64 / 1e6))
                    .unwrap_or_else(|| "-".into()),
                opt(u.pids_current),
                opt(u.pids_peak),
                u.oom_kills
            );
        }
    }
    Ok(0)
}
