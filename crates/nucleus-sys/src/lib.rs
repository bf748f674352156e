//! nucleus-sys: the mechanism. Every syscall and every `unsafe` block of nucleus lives here,
//! each with a SAFETY comment. It interprets a [`nucleus_spec::Plan`] and decides nothing: no
//! defaults, no parsing of user input.
//!
//! `unsafe` is confined to [`raw`]: the syscalls rustix covers are called through it (safe),
//! the rest (clone3, the shared spawn, mount_setattr, signalfd, seccomp…) through small
//! audited functions there. Elsewhere only the calls of raw's `unsafe fn`s that start a
//! process (fork semantics: the caller must be single-threaded) are allowed, each at its
//! statement.
#![deny(unsafe_code)]

pub mod attest;
pub mod cgroup;
pub mod channel;
pub mod checkpoint;
pub mod copy;
pub mod cp;
pub mod error;
pub mod etcview;
pub mod hooks;
pub mod idslot;
pub mod init;
pub mod inroot;
pub mod join;
pub mod mount;
pub mod net;
pub mod netwatch;
pub mod notify;
pub mod otlp;
pub mod probe;
pub mod process;
#[allow(unsafe_code)]
pub mod raw;
pub mod relay;
pub mod resolve;
pub mod sandbox;
pub mod security;
pub mod store;
pub mod systemd;
pub mod trace;
pub mod tty;

pub use error::{Result, SysError};

/// A scratch directory for a unit test, `$TMPDIR/nucleus-NAME-PID`: made empty (0700), removed when
/// dropped (also when the test fails).
#[cfg(test)]
pub(crate) struct TestDir(std::path::PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new(name: &str) -> TestDir {
        let p = std::env::temp_dir().join(format!("nucleus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch directory");
        // Owner-only whatever the umask (the store refuses a root others may write).
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o700);
        std::fs::set_permissions(&p, mode).expect("scratch directory mode");
        TestDir(p)
    }
}

#[cfg(test)]
impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
