//! The mini-init: PID 1 of the sandbox's pid namespace. It reaps every zombie, forwards
//! signals to the workload, reports the workload's status to the runtime and exits, at which
//! point the kernel kills whatever else is left in the namespace.
//!
//! It is a fork of the runtime, not an exec of it: the runtime binary is never opened inside
//! the sandbox. It is made non-dumpable, so the workload (same uid) cannot open /proc/1/exe,
//! /proc/1/mem or its fds (CVE-2019-5736 overwrote runc through /proc/<pid>/exe), and it
//! gives up capabilities (all but CAP_KILL, to signal a workload of another uid), file system
//! access and most syscalls before it waits.

use crate::channel::{Channel, FromChild};
use crate::raw::{self, WaitStatus};
use crate::security;
use nucleus_spec::seccomp::SockFilter;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Signals the runtime and init pass on to the workload.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
];

/// The signalfd init waits on (the forwarded signals and SIGCHLD).
pub fn signals() -> OwnedFd {
    let mut sigs = FORWARDED.to_vec();
    sigs.push(libc::SIGCHLD);
    match raw::signalfd(&sigs) {
        Ok(fd) => fd,
        Err(_) => raw::exit_now(1),
    }
}

/// Init's loop, once it is hardened ([`harden`]): forward signals, reap, report the workload.
pub fn run(workload: libc::pid_t, ch: Channel, sfd: OwnedFd) -> ! {
    loop {
        let sig = match raw::read_signal(sfd.as_fd()) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => raw::exit_now(1),
        };
        if sig != libc::SIGCHLD {
            let _ = raw::kill(workload, sig);
            continue;
        }
        // Reap everything; orphans re-parented to us included.
        while let Ok(Some((pid, st))) = raw::waitpid(-1, true) {
            if pid == workload {
                finish(&ch, st);
            }
        }
    }
}

fn finish(ch: &Channel, st: WaitStatus) -> ! {
    let _ = ch.send(&FromChild::Exited(st), &[]);
    raw::exit_now(0)
}

/// The capabilities init keeps: CAP_KILL only (a bit mask).
pub(crate) const KEPT_CAPS: u64 = 1 << 5;

/// Give up what init does not need, before the workload runs (see `sandbox::child_main`):
/// every descriptor but `keep`, capabilities but CAP_KILL, file system access, most syscalls.
/// `bounding_left`: the bounding set the sandbox left (the workload's and init's).
pub(crate) fn harden(keep: &[libc::c_int], bounding_left: u64, seccomp: &[SockFilter]) {
    let _ = raw::prctl(libc::PR_SET_DUMPABLE, 0);
    // Do not hold the workload's stdio open (a pipe reader would never see EOF).
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which init owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut from = 3u32;
    for k in keep {
        let k = k as u32;
        if k > from {
            let _ = raw::close_range(from, k - 1);
        }
        from = from.max(k + 1);
    }
    let _ = raw::close_range(from, u32::MAX);
    // CAP_KILL only: the workload may run as another uid (`-u`), and a signal from an
    // unprivileged uid 0 to it is refused (EPERM). Init signals nothing but the workload.
    // The sandbox cut the bounding set down to the workload's and this before the clone.
    let _ = security::drop_bounding(bounding_left & !KEPT_CAPS);
    let _ = security::set_capabilities(KEPT_CAPS, KEPT_CAPS, 0);
    let _ = security::set_no_new_privs();
    let _ = security::landlock_deny_all();
    let _ = security::install_seccomp(seccomp, 0);
}
