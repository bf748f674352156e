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
    // SAFETY: nucleus is single-threaded (no threads are spawned before a launch).
    let forked = unsafe { crate::raw::fork() };
    match forked {
        Ok(Some(_)) | Err(_) => {
            // SAFETY: restoring the mask saved above.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            drop(w);
            forked.ctx("fork", "monitor")?;
            Ok(MonitorFork::Launcher { reader: r.into() })
        }
        Ok(None) => {
            drop(r);
            // SAFETY: setsid has no arguments (a forked child is never a group leader).
            unsafe { libc::setsid() };
            let _ = std::env::set_current_dir("/");
            let null = fs::OpenOptions::new().read(true).open("/dev/null");
            // SAFETY: dup2 onto the standard descriptors, which the monitor owns.
            unsafe {
                if let Ok(n) = &null {
                    libc::dup2(n.as_raw_fd(), 0);
                }
                libc::dup2(out.as_raw_fd(), 1);
                libc::dup2(err.as_raw_fd(), 2);
            }
            let _ = crate::raw::set_cmdline(title);
            Ok(MonitorFork::Monitor { notify: w.into() })
        }
    }
}
