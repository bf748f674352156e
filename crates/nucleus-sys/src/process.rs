//! Processes the runtime keeps track of: a process's identity (pid and start time, so a reused
//! pid is never taken for it), a pidfd checked against that identity, waiting for an exit, and
//! forking a detached sandbox's monitor.

use crate::error::{Context, Result};
use nucleus_spec::state::ProcId;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

/// Start time of a live process (field 22 of /proc/PID/stat, after the parenthesised name);
/// None for a zombie, which is dead already.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = crate::raw::proc_stat(pid).ok()?;
    let mut f = stat.split_whitespace();
    if matches!(f.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    f.nth(18)?.parse().ok()
}

pub fn this_process() -> ProcId {
    let pid = std::process::id() as i32;
    ProcId {
        pid,
        start: start_time(pid).unwrap_or(0),
    }
}

pub fn alive(p: &ProcId) -> bool {
    start_time(p.pid) == Some(p.start)
}

/// A pidfd for `p` if it is still that process (not a reused pid).
pub fn pidfd(p: &ProcId) -> Option<OwnedFd> {
    let fd = crate::raw::pidfd_open(p.pid).ok()?;
    // Checked after opening: if the start time still matches now, the pidfd is for `p`.
    alive(p).then_some(fd)
}

/// Wait up to `timeout` for the process behind `pidfd` to exit; true once it has.
pub fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    crate::raw::poll_read(&[pidfd.as_raw_fd()], ms)
        .map(|r| r[0] != 0)
        .unwrap_or(true)
}

/// Either side of [`fork_monitor`].
pub enum MonitorFork {
    /// The command that launched the sandbox: reads the monitor's report lines.
    Launcher { reader: fs::File },
    /// The new monitor: writes its report lines here, then closes it.
    Monitor { notify: fs::File },
}

/// Fork a sandbox's monitor: a new session, cwd /, stdin /dev/null, stdout and stderr to
/// `log` (the workload inherits them), `title` as its command line, forwarded signals
/// blocked from the start (they are relayed to the sandbox once it runs).
pub fn fork_monitor(out: &fs::File, err: &fs::File, title: &str) -> Result<MonitorFork> {
    let (r, w) = crate::raw::pipe().ctx("pipe", "")?;
    let old = crate::raw::block_signals(crate::init::FORWARDED).ctx("block signals", "")?;
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: nucleus is single-threaded (no threads are spawned before a launch).
    let forked = unsafe { crate::raw::fork() };
    match forked {
        Ok(Some(_)) | Err(_) => {
            // Restoring the mask saved above.
            crate::raw::set_signal_mask(&old);
            drop(w);
            forked.ctx("fork", "monitor")?;
            Ok(MonitorFork::Launcher { reader: r.into() })
        }
        Ok(None) => {
            drop(r);
            // (A forked child is never a group leader: it cannot fail.)
            let _ = rustix::process::setsid();
            let _ = std::env::set_current_dir("/");
            let null = fs::OpenOptions::new().read(true).open("/dev/null");
            // Onto the standard descriptors, which the monitor owns.
            if let Ok(n) = &null {
                let _ = rustix::stdio::dup2_stdin(n);
            }
            let _ = rustix::stdio::dup2_stdout(out);
            let _ = rustix::stdio::dup2_stderr(err);
            let _ = crate::raw::set_cmdline(title);
            Ok(MonitorFork::Monitor { notify: w.into() })
        }
    }
}
