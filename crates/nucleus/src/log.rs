//! Runtime messages: stderr only (stdout belongs to the workload), one line each, text or JSON.

use crate::cli::LogFormat;

pub struct Logger {
    format: LogFormat,
}

impl Logger {
    pub fn new(format: LogFormat) -> Self {
        Self { format }
    }

    fn emit(&self, level: &str, msg: &str) {
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
}
