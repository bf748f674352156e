//! Runtime messages: stderr only (stdout belongs to the workload), one line each, text or JSON.

use crate::cli::LogFormat;

pub(crate) struct Logger {
    format: LogFormat,
    /// `--log FILE` (the OCI command line): every line is also appended there.
    file: Option<std::sync::Mutex<std::fs::File>>,
}

impl Logger {
    pub(crate) fn new(format: LogFormat) -> Self {
        Self { format, file: None }
    }

    /// JSON lines (their `exited` line carries the usage).
    pub(crate) fn json(&self) -> bool {
        matches!(self.format, LogFormat::Json)
    }

    /// Also append every line to `path` (made 0600 when missing); a file that cannot be
    /// opened is said once on stderr.
    pub(crate) fn with_file(mut self, path: Option<&std::path::Path>) -> Self {
        if let Some(p) = path {
            match nucleus_sys::store::open_append(p) {
                Ok(f) => self.file = Some(std::sync::Mutex::new(f)),
                Err(e) => eprintln!("nucleus: --log {}: {e}", p.display()),
            }
        }
        self
    }

    fn line(&self, text: &str) {
        eprintln!("{text}");
        if let Some(f) = &self.file {
            use std::io::Write;
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{text}");
            }
        }
    }

    /// Every message is one line: control characters (newlines, terminal escapes) are escaped,
    /// since a message may quote what a sandbox said (a refused DNS name, a path it made).
    fn emit(&self, level: &str, kind: Option<&str>, msg: &str) {
        let msg = &nucleus_spec::config::single_line(msg);
        match self.format {
            LogFormat::Text => {
                if level == "error" {
                    self.line(&format!("nucleus: {msg}"));
                } else {
                    self.line(&format!("nucleus: {level}: {msg}"));
                }
            }
            LogFormat::Json => {
                let mut line = json_line(level);
                line["msg"] = msg.as_str().into();
                if let Some(k) = kind {
                    line["kind"] = k.into();
                }
                self.line(&line.to_string());
            }
        }
    }

    pub(crate) fn error(&self, msg: &str) {
        self.emit("error", None, msg);
    }

    /// An error that ends the command, with its stable kind (usage, config, not_found,
    /// runtime) in JSON.
    pub(crate) fn error_of(&self, kind: &str, msg: &str) {
        self.emit("error", Some(kind), msg);
    }

    pub(crate) fn warn(&self, msg: &str) {
        self.emit("warning", None, msg);
    }

    pub(crate) fn info(&self, msg: &str) {
        self.emit("info", None, msg);
    }

    /// The start event (JSON format only): the id to use with `nucleus stats`, the init's
    /// host pid, the cgroup directories.
    pub(crate) fn started(&self, id: &str, pid: i32, cgroups: &[std::path::PathBuf]) {
        if let LogFormat::Json = self.format {
            let mut line = json_line("info");
            line["event"] = "started".into();
            line["id"] = id.into();
            line["pid"] = pid.into();
            line["cgroups"] = serde_json::json!(cgroups);
            eprintln!("{line}");
        }
    }

    /// The exit event (JSON format only: text mode stays quiet on success).
    pub(crate) fn exited(&self, id: &str, status: u8, usage: &nucleus_sys::cgroup::Usage) {
        if let LogFormat::Json = self.format {
            let mut line = json_line("info");
            line["event"] = "exited".into();
            line["id"] = id.into();
            line["status"] = status.into();
            line["oom_killed"] = (usage.oom_kills > 0).into();
            line["usage"] = serde_json::json!(usage);
            eprintln!("{line}");
        }
    }
}

/// The fields every JSON line starts with, as in events: format version, time, level.
fn json_line(level: &str) -> serde_json::Value {
    serde_json::json!({
        "v": nucleus_spec::state::EVENTS_VERSION,
        "time": nucleus_spec::state::rfc3339(nucleus_sys::store::now_ms()),
        "level": level,
    })
}
