//! `nucleus state` (OCI state) and `nucleus inspect`.

use crate::commands::shown;
use crate::records::{effective, resolve};
use anyhow::Result;
use nucleus_spec::state::{self};
use nucleus_spec::Plan;
use nucleus_sys::store::Store;

pub(crate) fn state(store: &Store, q: &str) -> Result<u8> {
    let s = resolve(store, q)?;
    let (st, _) = effective(&s);
    let dir = store.dir(&s.id);
    let mut v = s.oci(st, &dir.to_string_lossy());
    // (runc's word for a frozen container.)
    v["status"] = shown(store, &s, st).into();
    // What was applied (nucleus's own sandboxes; a field OCI clients do not read).
    if let Some(p) = &s.protections {
        v["protections"] = serde_json::to_value(p)?;
    }
    outln!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

/// `nucleus inspect`: the record with the configuration its plan holds. Environment values
/// are left out (they may be secrets): names only.
pub(crate) fn inspect(store: &Store, q: &str) -> Result<u8> {
    let s = resolve(store, q)?;
    let (st, ex) = effective(&s);
    let plan: Option<Plan> = std::fs::read(store.dir(&s.id).join("plan.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    let mut v = serde_json::json!({
        "id": s.id,
        "name": s.name,
        "status": shown(store, &s, st),
        "health": s.health,
        "pid": s.init.map(|p| p.pid),
        "command": s.argv,
        "created": state::rfc3339(s.created_ms),
        "started": s.started_ms.map(state::rfc3339),
        "finished": s.finished_ms.map(state::rfc3339),
        "exit": ex,
        "cgroups": s.cgroups,
        "usage": s.usage,
        "protections": s.protections,
        "ready": s.ready_ms.map(state::rfc3339),
        "restarts": s.restarts,
    });
    if let Some(p) = plan {
        let limits: serde_json::Map<String, serde_json::Value> = p
            .cgroup
            .iter()
            .flat_map(|c| c.dirs.iter())
            .flat_map(|d| d.writes.iter())
            .map(|(f, val)| (f.clone(), val.clone().into()))
            .collect();
        v["config"] = serde_json::json!({
            "hostname": p.hostname,
            "user": { "uid": p.process.uid, "gid": p.process.gid,
                      "additional_gids": p.process.additional_gids },
            "cwd": p.process.cwd,
            "tty": p.process.tty,
            "env_names": p.process.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "limits": limits,
            "cpu_count": p.process.cpu_count,
            "mounts": p.mounts,
            "network": p.net,
            "namespaces": p.namespaces,
            "service_mode": p.mode.as_str(),
            "attested_root": p.attested,
            "readiness": p.readiness,
            "restart": p.restart,
        });
    }
    outln!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}
