//! Lifecycle events (JSON lines to --events-jsonl / --events-fd) and the audit log.

use anyhow::Result;
use nucleus_spec::config::ConfigError;
use nucleus_spec::state::{self};
use nucleus_sys::store::{self, now_ms, Store};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// `--events-jsonl PATH` / `--events-fd N`: one JSON object per line.
#[derive(Default)]
pub(crate) struct Events {
    sinks: Vec<File>,
}

impl Events {
    pub(crate) fn open(path: Option<&Path>, fd: Option<i32>) -> Result<Events> {
        let mut sinks = Vec::new();
        if let Some(p) = path {
            sinks.push(store::open_append(p).map_err(|e| {
                ConfigError::new("--events-jsonl", format!("{}: {e}", p.display()))
            })?);
        }
        if let Some(n) = fd {
            sinks.push(store::dup_fd(n).map_err(|e| {
                ConfigError::new("--events-fd", format!("{n}: not an open descriptor ({e})"))
            })?);
        }
        Ok(Events { sinks })
    }

    /// Whether any sink takes events.
    pub(crate) fn on(&self) -> bool {
        !self.sinks.is_empty()
    }

    pub(crate) fn emit(&mut self, kind: &str, id: &str, fields: serde_json::Value) {
        if self.sinks.is_empty() {
            return;
        }
        let mut line = state::event(kind, id, now_ms(), fields).to_string();
        line.push('\n');
        for s in &mut self.sinks {
            let _ = s.write_all(line.as_bytes());
        }
    }
}

/// The host's append-only audit log: one line per lifecycle action, with who asked.
pub(crate) fn audit(store: &Store, verb: &str, id: &str, result: &Result<u8>) {
    let (ok, err) = match result {
        Ok(0) => (true, None),
        Ok(c) => (false, Some(format!("exit status {c}"))),
        Err(e) => (false, Some(crate::one_line(e))),
    };
    audit_line(store, verb, id, ok, err, None);
}

/// An audit line for each record removed, naming the sandbox by id (a verb's line names what
/// its caller gave: a name or a prefix) and why it went (`by`: the verb, or `gc`, `launcher`,
/// `monitor`, `auto-remove`, `stale name`).
pub(crate) fn audit_removal(store: &Store, id: &str, by: &str) {
    audit_line(store, "remove", id, true, None, Some(by));
}

fn audit_line(
    store: &Store,
    verb: &str,
    id: &str,
    ok: bool,
    err: Option<String>,
    by: Option<&str>,
) {
    let mut line = serde_json::json!({
        "v": state::EVENTS_VERSION,
        "time": state::rfc3339(now_ms()),
        "verb": verb,
        "id": id,
        "uid": nucleus_sys::security::real_uid(),
        "pid": std::process::id(),
        "ok": ok,
    });
    if let Some(e) = err {
        line["error"] = e.into();
    }
    if let Some(b) = by {
        line["by"] = b.into();
    }
    if let Ok(mut f) = store::open_append(&store.root().join("audit.jsonl")) {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}
