//! One error type for the mechanism layer: the operation, the path or value it touched, and
//! the OS error. Displayed as one line: `mount /proc: Operation not permitted (os error 1)`.

use std::fmt;
use std::io;

#[derive(Debug)]
pub struct SysError {
    pub op: &'static str,
    pub what: String,
    pub source: io::Error,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.what.is_empty() {
            write!(f, "{}: {}", self.op, self.source)
        } else {
            write!(f, "{} {}: {}", self.op, self.what, self.source)
        }
    }
}

impl std::error::Error for SysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub type Result<T> = std::result::Result<T, SysError>;

/// Attach an operation name and subject to an `io::Result`.
pub trait Context<T> {
    fn ctx(self, op: &'static str, what: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, op: &'static str, what: impl fmt::Display) -> Result<T> {
        self.map_err(|source| SysError {
            op,
            what: what.to_string(),
            source,
        })
    }
}

pub fn other(op: &'static str, msg: impl fmt::Display) -> SysError {
    SysError {
        op,
        what: String::new(),
        source: io::Error::other(msg.to_string()),
    }
}
