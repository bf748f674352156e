//! The verbs that act on existing sandboxes, one file each.

pub(crate) mod checkpoint;
pub(crate) mod compose;
pub(crate) mod cp;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod gc;
pub(crate) mod inspect;
pub(crate) mod list;
pub(crate) mod logs;
pub(crate) mod ls;
pub(crate) mod mcp;
pub(crate) mod pause;
pub(crate) mod ps;
pub(crate) mod restart;
pub(crate) mod rm;
pub(crate) mod rootfs;
pub(crate) mod seccomp;
pub(crate) mod start;
pub(crate) mod stats;
pub(crate) mod stop;
pub(crate) mod unit;
pub(crate) mod update;

pub(crate) use events::*;
pub(crate) use exec::*;
pub(crate) use gc::*;
pub(crate) use inspect::*;
pub(crate) use list::*;
pub(crate) use logs::*;
pub(crate) use pause::*;
pub(crate) use ps::*;
pub(crate) use restart::*;
pub(crate) use rm::*;
pub(crate) use seccomp::*;
pub(crate) use start::*;
pub(crate) use stats::*;
pub(crate) use stop::*;
pub(crate) use update::*;

use crate::events::audit;
use crate::log::Logger;
use crate::monitor::monitor_entry;
use crate::records::{resolve, state_root};
use crate::telemetry::{self, Tracer};
use anyhow::{bail, Result};
use nucleus_sys::store::Store;
use std::path::Path;

/// The verbs that act on existing sandboxes, each recorded in the audit log (and, for start,
/// exec, stop and rm, as a span in the sandbox's trace).
pub(crate) fn verb(
    c: crate::cli::Command,
    root: Option<&Path>,
    log: &Logger,
    t0: u64,
) -> Result<u8> {
    use crate::cli::Command as C;
    let store = Store::open(&state_root(root)?)?;
    let first = match &c {
        C::Start(a) => Some(a.id.as_str()),
        C::Exec(a) => Some(a.id.as_str()),
        C::Stop(a) => a.ids.first().map(|s| s.as_str()),
        C::Rm(a) | C::Delete(a) => a.ids.first().map(|s| s.as_str()),
        _ => None,
    };
    // Only when spans are exported: the sandbox's record, for its trace (read before the verb
    // runs, as `rm` removes it).
    let mut tracer = Some(Tracer::from_env(None)?).filter(|t| t.enabled() && first.is_some());
    let target = tracer
        .as_ref()
        .and(first)
        .and_then(|q| resolve(&store, q).ok());
    if let Some(trace) = target.as_ref().and_then(|s| s.trace.as_deref()) {
        tracer = Some(Tracer::from_env(Some(trace))?);
    }
    let (name, id, r) = match &c {
        C::Start(a) => ("start", a.id.clone(), start(&store, &a.id, log)),
        C::Restart(a) => ("restart", a.id.clone(), restart(&store, root, a, log, t0)),
        C::Ps(a) => return ps(&store, a),
        C::List(a) => return list(&store, a),
        C::Events(a) => return events(&store, a),
        C::State(a) => return state(&store, &a.id),
        C::Inspect(a) => return inspect(&store, &a.id),
        C::Logs(a) => return logs(&store, a),
        C::Monitor(a) => return monitor_entry(&store, &a.id),
        C::Exec(a) => ("exec", a.id.clone(), exec(&store, a, log)),
        C::Cp(a) => ("cp", format!("{} {}", a.src, a.dst), cp::cp(&store, a)),
        C::Ls(a) => return ls::ls(&store, a),
        C::Stop(a) => ("stop", a.ids.join(" "), stop(&store, a, log)),
        C::Kill(a) => ("kill", a.id.clone(), kill(&store, a)),
        C::Update(a) => ("update", a.id.clone(), update(&store, a)),
        C::Checkpoint(a) => (
            "checkpoint",
            a.id.clone(),
            checkpoint::checkpoint(&store, a),
        ),
        C::Pause(a) => ("pause", a.id.clone(), pause(&store, &a.id, true)),
        C::Unpause(a) => ("unpause", a.id.clone(), pause(&store, &a.id, false)),
        C::Rm(a) => ("rm", a.ids.join(" "), rm(&store, a, log)),
        C::Delete(a) => ("delete", a.ids.join(" "), delete(&store, a, log)),
        _ => bail!("internal: not a lifecycle verb"),
    };
    audit(&store, name, &id, &r);
    if let Some(tr) = tracer.as_mut() {
        let (code, err) = telemetry::outcome(&r);
        let mut attrs = vec![(
            "sandbox.id",
            telemetry::s(target.as_ref().map_or(id.clone(), |s| s.id.clone())),
        )];
        if let Some(n) = target.as_ref().and_then(|s| s.name.clone()) {
            attrs.push(("sandbox.name", telemetry::s(n)));
        }
        if let C::Exec(a) = &c {
            attrs.push((
                "process.executable.name",
                telemetry::s(a.command.first().cloned().unwrap_or_default()),
            ));
            if let Some(code) = code {
                attrs.push(("process.exit.code", nucleus_spec::otlp::Attr::Int(code)));
            }
        }
        tr.record(&format!("nucleus.{name}"), t0, attrs, err);
        tr.flush(log);
    }
    r
}
