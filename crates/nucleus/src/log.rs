//! Runtime messages: stderr only (stdout belongs to the workload), one line each, text or JSON.

use crate::cli::LogFormat;

pub struct Logger {
    format: LogFormat,
}

impl Logger {
    pub fn new(format: LogFormat) -> Self {
        Self { format }
    }

    /// Every message is one line: control characters (newlines, terminal escapes) are escaped,
    /// since a message may quote what a sandbox said (a refused DNS name, a path it made).
    fn emit(&self, level: &str, msg: &str) {
        let msg = &nucleus_spec::config::single_line(msg);
        match self.format {
            LogFormat::Text => {
                if level == "error" {
                    eprintln!("nucleus: {msg}");
                } else {
                    eprintln!("nucleus: {level}: {msg}");
                }
            }
            LogFormat::Json => {
                eprintln!("{}", serde_json::json!({ "level": level, "msg": msg }));
            }
        }
    }

    pub fn error(&self, msg: &str) {
        self.emit("error", msg);
    }

    pub fn warn(&self, msg: &str) {
        self.emit("warning", msg);
    }

    pub fn info(&self, msg: &str) {
        self.emit("info", msg);
    }

    /// The start event (JSON format only): the id to use with `nucleus stats`, the init's
    /// host pid, the cgroup directories.
    pub fn started(&self, id: &str, pid: i32, cgroups: &[std::path::PathBuf]) {
        if let LogFormat::Json = self.format {
            eprintln!(
                "{}",
                serde_json::json!({
                    "level": "info", "event": "started", "id": id, "pid": pid,
                    "cgroups": cgroups,
                })
            );
        }
    }

    /// The exit event (JSON format only: text mode stays quiet on success).
    pub fn exited(&self, id: &str, status: u8, usage: &nucleus_sys::cgroup::Usage) {
        if let LogFormat::Json = self.format {
            eprintln!(
                "{}",
                serde_json::json!({
                    "level": "info", "event": "exited", "id": id, "status": status,
                    "oom_killed": usage.oom_kills > 0, "usage": usage,
                })
            );
        }
    }
}
