//! `nucleus ps`.

use crate::cli::{OutputFormat, PsArgs};
use crate::records::{effective, is_paused};
use anyhow::Result;
use nucleus_spec::state::{self, ExitInfo, State, Status};
use nucleus_sys::store::{now_ms, Store};

pub(crate) fn command_line(argv: &[String], max: usize) -> String {
    let c = argv.join(" ");
    if c.chars().count() > max {
        let mut t: String = c.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        c
    }
}

pub(crate) fn status_text(st: Status, exit: &Option<ExitInfo>, s: &State, now: u64) -> String {
    let text = status_only(st, exit, s, now);
    match &s.restarts {
        Some(r) if r.next_ms.is_some() && st == Status::Stopped => {
            format!("restarting ({}: {})", r.count, r.reason)
        }
        Some(r) => format!("{text}, restarts {}", r.count),
        None => text,
    }
}

fn status_only(st: Status, exit: &Option<ExitInfo>, s: &State, now: u64) -> String {
    match st {
        Status::Stopped => {
            let e = exit.clone().unwrap_or_default();
            let how = match (e.code, &e.error) {
                // No status: the runtime died (kill -9) and took the sandbox with it.
                (None, _) => "lost (runtime killed)".to_string(),
                (Some(c), Some(_)) if s.started_ms.is_none() => format!("failed ({c})"),
                (Some(c), Some(e)) if e.starts_with("timed out") => format!("timed out ({c})"),
                (Some(c), _) if e.oom_killed => format!("exited ({c}, OOM)"),
                (Some(c), _) => format!("exited ({c})"),
            };
            match s.finished_ms {
                Some(f) => format!("{how} {}", state::age(now, f)),
                None => how,
            }
        }
        Status::Running => {
            let up = match s.started_ms {
                Some(t) => format!("up {}", state::age(now, t).trim_end_matches(" ago")),
                None => "running".into(),
            };
            match &s.health {
                Some(h) => format!("{up} ({h})"),
                None => up,
            }
        }
        other => other.as_str().into(),
    }
}

pub(crate) fn ps(store: &Store, a: &PsArgs) -> Result<u8> {
    if let Some(q) = &a.id {
        return processes(store, q, a.format);
    }
    let now = now_ms();
    let rows: Vec<(State, Status, Option<ExitInfo>)> = store
        .list()
        .into_iter()
        .map(|s| {
            let (st, ex) = effective(&s);
            (s, st, ex)
        })
        .filter(|(_, st, _)| a.all || *st != Status::Stopped)
        .collect();
    if a.quiet {
        for (s, _, _) in &rows {
            outln!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format {
        OutputFormat::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|(s, st, ex)| {
                    serde_json::json!({
                        "id": s.id,
                        "name": s.name,
                        "status": shown(store, s, *st),
                        "pid": s.init.map(|p| p.pid),
                        "command": s.argv,
                        "created": state::rfc3339(s.created_ms),
                        "started": s.started_ms.map(state::rfc3339),
                        "finished": s.finished_ms.map(state::rfc3339),
                        "exit_code": ex.as_ref().and_then(|e| e.code),
                        "oom_killed": ex.as_ref().is_some_and(|e| e.oom_killed),
                        "error": ex.as_ref().and_then(|e| e.error.clone()),
                        "health": s.health,
                        "ready": s.ready_ms.map(state::rfc3339),
                        "restarts": s.restarts,
                    })
                })
                .collect();
            outln!("{}", serde_json::Value::Array(v));
        }
        OutputFormat::Table => {
            outln!(
                "{:<16}  {:<16}  {:<22}  {:<8}  {:<10}  COMMAND",
                "ID",
                "NAME",
                "STATUS",
                "PID",
                "CREATED"
            );
            for (s, st, ex) in &rows {
                outln!(
                    "{:<16}  {:<16}  {:<22}  {:<8}  {:<10}  {}",
                    s.id,
                    s.name.as_deref().unwrap_or("-"),
                    if shown(store, s, *st) == "paused" {
                        "paused".to_string()
                    } else {
                        status_text(*st, ex, s, now)
                    },
                    match st {
                        Status::Created | Status::Running =>
                            s.init.map(|p| p.pid.to_string()).unwrap_or_default(),
                        _ => "-".into(),
                    },
                    state::age(now, s.created_ms),
                    command_line(&s.argv, 40)
                );
            }
        }
    }
    Ok(0)
}

/// A status as shown: "paused" for a running sandbox that is frozen.
pub(crate) fn shown(store: &Store, s: &State, st: Status) -> &'static str {
    if st == Status::Running && is_paused(store, &s.id) {
        "paused"
    } else {
        st.as_str()
    }
}

/// `ps ID` (runc's `ps`): the processes of one sandbox or container, as pids (`--format
/// json`, what containerd's shim reads) or a table of pid and command line.
fn processes(store: &Store, q: &str, format: OutputFormat) -> Result<u8> {
    let s = crate::records::resolve(store, q)?;
    let st = effective(&s).0;
    if !matches!(st, Status::Created | Status::Running) {
        anyhow::bail!("{q}: is {}; it has no processes", st.as_str());
    }
    // A gVisor sandbox's table: the processes inside gVisor's kernel (runsc ps); its JSON
    // stays the host's pids (what it runs on the host: ginit, runsc's sentry and gofer).
    if crate::records::is_gvisor(&s) && format == OutputFormat::Table {
        let plan: nucleus_spec::Plan = serde_json::from_slice(
            &std::fs::read(store.dir(&s.id).join("plan.json"))
                .map_err(|e| anyhow::anyhow!("{q}: read its plan: {e}"))?,
        )?;
        let fd = s
            .init
            .as_ref()
            .and_then(nucleus_sys::process::pidfd)
            .ok_or_else(|| anyhow::anyhow!("{q}: is not running any more"))?;
        let table = nucleus_sys::sandbox::gvisor_ps(&plan, std::os::fd::AsFd::as_fd(&fd))?;
        // (runsc's text: shown escaped where it is not printable, as command lines are.)
        for l in table.lines() {
            outln!("{}", l.escape_debug());
        }
        return Ok(0);
    }
    let pids = crate::records::procs(&s);
    match format {
        OutputFormat::Json => outln!("{}", serde_json::to_string(&pids)?),
        OutputFormat::Table => {
            outln!("{:<8}  COMMAND", "PID");
            for p in pids {
                // The sandbox writes its command lines: shown escaped, never as raw bytes.
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let argv: Vec<String> = cmd
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).escape_debug().to_string())
                    .collect();
                outln!("{p:<8}  {}", command_line(&argv, 80));
            }
        }
    }
    Ok(0)
}
