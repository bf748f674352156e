//! `run -d` and `create`: the record, the monitor forked (or a systemd unit started), and the
//! launcher waiting for the monitor's reports ([`MonitorReport`]) before it prints the id.

use crate::cli::RunArgs;
use crate::events::Events;
use crate::log::Logger;
use crate::monitor::{monitor_main, start_unit, supervisor, LOG_STREAMS};
use crate::records::{free_stale_name, ARGS};
use crate::telemetry::{self, Tracer};
use anyhow::{anyhow, bail, Result};
use nucleus_spec::config::ConfigError;
use nucleus_spec::state::{MonitorReport, State};
use nucleus_spec::Plan;
use nucleus_sys::process;
use nucleus_sys::store::{self, now_ms, Store};
use std::io::{BufRead, BufReader};

/// `run -d` and `create`: fork the monitor, wait until the sandbox is set up (and, for `run
/// -d`, its workload exec'd), print its id. `restore`: the sandbox starts from a checkpoint.
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch(
    a: &RunArgs,
    (plan, cgroup_host, cgroup_parent): (
        &Plan,
        &nucleus_spec::cgroup::CgroupHost,
        &nucleus_spec::cgroup::CgroupParent,
    ),
    store: &Store,
    log: &Logger,
    events: Events,
    hold: bool,
    (tracer, t0): (&mut Tracer, u64),
    restore: Option<nucleus_sys::sandbox::Restore>,
) -> Result<u8> {
    let memory_limit = a
        .memory
        .as_deref()
        .and_then(|m| nucleus_spec::config::parse_size("--memory", m).ok());
    let log_max = log_max_size(&a.log_max_size)?;
    let id = plan.id.clone();
    let (create_span, trace) = tracer.sandbox_span();
    let console =
        match &a.console_socket {
            Some(p) => Some(nucleus_sys::raw::unix_connect(p).map_err(|e| {
                ConfigError::new("--console-socket", format!("{}: {e}", p.display()))
            })?),
            None => None,
        };
    let supervisor_unit = supervisor(a, &id)?;
    // (A foreground restore's stdout is its workload's: no id there.)
    let quiet = restore.as_ref().is_some_and(|r| r.foreground);
    if restore.is_some() && supervisor_unit.is_some() {
        bail!("a restored sandbox's monitor is nucleus's own (not a systemd unit, --supervisor)");
    }
    let mut st = State::new(&id, a.name.clone(), plan.process.argv.clone(), now_ms());
    st.unit = supervisor_unit.clone();
    // Absolute: a monitor started by systemd runs in /.
    st.events = a
        .events_jsonl
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    st.auto_remove = a.rm;
    st.trace = trace;
    // Until the monitor writes its own pid (first thing after the fork), the launcher is
    // the record's monitor: the sandbox reads as `creating` while it waits for the monitor.
    st.monitor = Some(process::this_process());
    // What a monitor started by systemd reads besides the record and the plan.
    let launch = match supervisor_unit {
        Some(_) => Some(serde_json::to_vec(&LaunchInfo { hold, memory_limit })?),
        None => None,
    };
    let plan_json = serde_json::to_vec(plan)?;
    // For `restart`: the flags, without what names this caller's descriptors or dry runs.
    let mut args = serde_json::to_value(a)?;
    args["events_fd"] = serde_json::Value::Null;
    args["detach"] = true.into();
    let args_json = serde_json::to_vec(&args)?;
    let mut files: Vec<(&str, &[u8])> = vec![("plan.json", &plan_json), (ARGS, &args_json)];
    if let Some(l) = &launch {
        files.push(("launch.json", l));
    }
    if let Some(n) = &a.name {
        free_stale_name(store, n);
    }
    store.create(&id, a.name.as_deref(), &st, &files)?;
    let forget = |e: anyhow::Error| {
        let _ = store.remove(&id, a.name.as_deref());
        crate::events::audit_removal(store, &id, "launcher");
        e
    };
    let (notify, reader) = match &supervisor_unit {
        Some(unit) => (None, Some(start_unit(store, &id, unit).map_err(forget)?)),
        None => {
            let logf = store::open_append(&store.dir(&id).join(LOG_STREAMS[0]))
                .map_err(|e| forget(e.into()))?;
            let errf = store::open_append(&store.dir(&id).join(LOG_STREAMS[1]))
                .map_err(|e| forget(e.into()))?;
            let (logf, errf) = if plan.checkpointable {
                let again =
                    |f: &std::fs::File| store::reopen_append(f).map_err(|e| forget(e.into()));
                (again(&logf)?, again(&errf)?)
            } else {
                (logf, errf)
            };
            let control =
                store::listen(&store.dir(&id).join("ctl")).map_err(|e| forget(e.into()))?;
            match process::fork_monitor(&logf, &errf, &format!("nucleus monitor {id}")) {
                Ok(process::MonitorFork::Monitor { notify }) => {
                    (Some((notify, logf, control)), None)
                }
                Ok(process::MonitorFork::Launcher { reader }) => (None, Some(reader)),
                Err(e) => return Err(forget(e.into())),
            }
        }
    };
    if let Some((notify, _logf, control)) = notify {
        // The monitor (a fork of this process).
        let code = monitor_main(
            store,
            st,
            plan,
            events,
            notify,
            hold,
            control,
            console,
            memory_limit,
            Some(log_max),
            restore,
        );
        crate::run::collect_cgroups(cgroup_host, cgroup_parent);
        std::process::exit(code.into())
    }
    let reader = reader.ok_or_else(|| anyhow!("the monitor did not start"))?;
    // The launcher: relay what the monitor says, then print the id.
    let mut code = None;
    let mut created_ns = None;
    let mut error = None;
    for line in BufReader::new(reader).lines().map_while(|l| l.ok()) {
        match MonitorReport::parse(&line) {
            Some(MonitorReport::Warn(w)) => log.warn(&w),
            Some(MonitorReport::Created(ns)) => created_ns = Some(ns),
            Some(MonitorReport::Ok) => {
                code = Some(0);
                break;
            }
            Some(MonitorReport::Error { code: c, msg }) => {
                log.error(&msg);
                error = Some(msg);
                code = Some(c);
                break;
            }
            None => {}
        }
    }
    if tracer.enabled() {
        let now = telemetry::now_ns();
        let created = created_ns.unwrap_or(now);
        let attrs = || {
            vec![
                ("sandbox.id", telemetry::s(&id)),
                (
                    "sandbox.name",
                    telemetry::s(a.name.clone().unwrap_or_default()),
                ),
                (
                    "nucleus.service_mode",
                    telemetry::s(a.service_mode.as_str()),
                ),
                (
                    "process.executable.name",
                    telemetry::s(plan.process.argv.first().cloned().unwrap_or_default()),
                ),
            ]
        };
        let parent = tracer.parent;
        let create_error = if created_ns.is_none() {
            error.clone()
        } else {
            None
        };
        tracer.record_as(
            create_span,
            parent,
            "nucleus.create",
            t0,
            created,
            attrs(),
            create_error,
        );
        if !hold && created_ns.is_some() {
            tracer.record_as(
                telemetry::span_id(),
                Some(create_span),
                "nucleus.start",
                created,
                now,
                attrs(),
                error.clone(),
            );
        }
        tracer.flush(log);
    }
    match code {
        Some(0) => {
            if !quiet {
                outln!("{id}");
            }
            Ok(0)
        }
        Some(c) => Ok(c),
        None => {
            let _ = store.remove(&id, a.name.as_deref());
            crate::events::audit_removal(store, &id, "launcher");
            bail!("the monitor exited while setting the sandbox up")
        }
    }
}

/// What a monitor started by systemd needs besides the record and the plan.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct LaunchInfo {
    pub(crate) hold: bool,
    pub(crate) memory_limit: Option<u64>,
}

/// `--log-max-size`: at least 64 KiB.
pub(crate) fn log_max_size(s: &str) -> Result<u64, ConfigError> {
    let n = nucleus_spec::config::parse_size("--log-max-size", s)?;
    if n < 64 << 10 {
        return Err(ConfigError::new("--log-max-size", "must be at least 64k"));
    }
    Ok(n)
}
