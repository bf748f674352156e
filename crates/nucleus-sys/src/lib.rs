//! nucleus-sys: the mechanism. Every syscall and every `unsafe` block of nucleus lives here,
//! each with a SAFETY comment. It interprets a [`nucleus_spec::Plan`] and decides nothing: no
//! defaults, no parsing of user input.

pub mod cgroup;
pub mod channel;
pub mod copy;
pub mod error;
pub mod etcview;
pub mod idslot;
pub mod init;
pub mod join;
pub mod mount;
pub mod net;
pub mod netwatch;
pub mod notify;
pub mod otlp;
pub mod probe;
pub mod raw;
pub mod sandbox;
pub mod security;
pub mod store;
pub mod trace;
pub mod tty;

pub use error::{Result, SysError};
