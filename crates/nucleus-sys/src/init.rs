//! The mini-init: PID 1 of the sandbox's pid namespace. It reaps every zombie, forwards
//! signals to the workload, reports the workload's status to the runtime and exits, at which
//! point the kernel kills whatever else is left in the namespace.
//!
//! It is a fork of the runtime, not an exec of it: the runtime binary is never opened inside
//! the sandbox. It is made non-dumpable, so the workload (same uid) cannot open /proc/1/exe,
//! /proc/1/mem or its fds (CVE-2019-5736 overwrote runc through /proc/<pid>/exe), and it
//! gives up capabilities (all but CAP_KILL, to signal a workload of another uid), file system
//! access and most syscalls before it waits.

use crate::channel::{FromChild, Sandbox};
use crate::raw::{self, WaitStatus};
use crate::security;
use nucleus_spec::seccomp::SockFilter;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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
pub fn run(workload: libc::pid_t, ch: &Sandbox, sfd: OwnedFd) -> ! {
    loop {
        let Ok(sig) = raw::read_signal(sfd.as_fd()) else {
            raw::exit_now(1)
        };
        if sig != libc::SIGCHLD {
            let _ = raw::kill(workload, sig);
            continue;
        }
        // Reap everything; orphans re-parented to us included.
        while let Ok(Some((pid, st))) = raw::waitpid(-1, true) {
            if pid == workload {
                finish(ch, st);
            }
        }
    }
}

fn finish(ch: &Sandbox, st: WaitStatus) -> ! {
    let _ = ch.send(FromChild::Exited(st));
    raw::exit_now(0)
}

/// The capabilities init keeps: CAP_KILL only (a bit mask).
pub(crate) const KEPT_CAPS: u64 = 1 << 5;

/// The descriptor ranges (first, last) that leave open 0-2 and `keep` only.
fn close_ranges(keep: &[libc::c_int]) -> Vec<(u32, u32)> {
    let mut keep: Vec<u32> = keep.iter().map(|k| *k as u32).collect();
    keep.sort_unstable();
    let mut out = vec![];
    let mut from = 3u32;
    for k in keep {
        if k > from {
            out.push((from, k - 1));
        }
        from = from.max(k + 1);
    }
    out.push((from, u32::MAX));
    out
}

/// The steps of [`harden`], in order; a failure is reported to the workload as
/// `HARDEN_FAILED + index` in place of the go byte.
pub(crate) const HARDEN_STEPS: &[&str] = &[
    "not dumpable",
    "standard descriptors to /dev/null",
    "other descriptors closed",
    "bounding set",
    "capabilities",
    "no_new_privs",
    "Landlock",
    "seccomp filter",
];
/// The go byte when every step of [`harden`] held.
pub(crate) const HARDENED: u8 = 1;
/// The go byte's base for a failed step.
pub(crate) const HARDEN_FAILED: u8 = 100;

/// Give up what init does not need, before the workload runs (see `sandbox::child::child_main`):
/// every descriptor but `keep`, capabilities but CAP_KILL, file system access, most syscalls.
/// `bounding_left`: the bounding set the sandbox left (the workload's and init's). Every step
/// is tried; the first that failed is returned (an index into [`HARDEN_STEPS`]).
pub(crate) fn harden(
    keep: &[libc::c_int],
    bounding_left: u64,
    seccomp: &[SockFilter],
) -> Result<(), usize> {
    let mut failed: Option<usize> = None;
    let mut step = |i: usize, ok: bool| {
        if !ok && failed.is_none() {
            failed = Some(i);
        }
    };
    step(0, raw::set_dumpable(false).is_ok());
    // Do not hold the workload's stdio open (a pipe reader would never see EOF).
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    step(
        1,
        null.is_ok_and(|null| {
            use rustix::stdio::{dup2_stderr, dup2_stdin, dup2_stdout};
            let fd = null.as_fd();
            let onto = [
                dup2_stdin::<BorrowedFd<'_>>,
                dup2_stdout::<BorrowedFd<'_>>,
                dup2_stderr::<BorrowedFd<'_>>,
            ];
            onto.iter().all(|dup| dup(fd).is_ok())
        }),
    );
    step(
        2,
        close_ranges(keep)
            .into_iter()
            .all(|(a, b)| raw::close_range(a, b).is_ok()),
    );
    // CAP_KILL only: the workload may run as another uid (`-u`), and a signal from an
    // unprivileged uid 0 to it is refused (EPERM). Init signals nothing but the workload.
    // The sandbox cut the bounding set down to the workload's and this before the clone.
    step(
        3,
        security::drop_bounding(bounding_left & !KEPT_CAPS).is_ok(),
    );
    step(
        4,
        security::set_capabilities(KEPT_CAPS, KEPT_CAPS, 0).is_ok(),
    );
    step(5, security::set_no_new_privs().is_ok());
    step(6, security::landlock_deny_all().is_ok());
    step(7, security::install_seccomp(seccomp, 0).is_ok());
    match failed {
        None => Ok(()),
        Some(i) => Err(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, BorrowedFd};

    #[test]
    fn close_ranges_keep_exactly_the_listed_descriptors() {
        assert_eq!(close_ranges(&[]), vec![(3, u32::MAX)]);
        assert_eq!(close_ranges(&[3]), vec![(4, u32::MAX)]);
        assert_eq!(
            close_ranges(&[5, 3, 9, 5]),
            vec![(4, 4), (6, 8), (10, u32::MAX)]
        );
        assert_eq!(close_ranges(&[4, 5]), vec![(3, 3), (6, u32::MAX)]);
        assert_eq!(close_ranges(&[1, 7]), vec![(3, 6), (8, u32::MAX)]);
    }

    /// What harden leaves, seen from inside the hardened process (no file access: Landlock
    /// denies it): the kept descriptor open, another closed, stdio on /dev/null, and a bounding
    /// set of CAP_KILL alone.
    #[test]
    fn harden_leaves_only_what_init_needs() {
        let (r, w) = raw::pipe().unwrap();
        let (extra, _extra_w) = raw::pipe().unwrap();
        let keep = [w.as_raw_fd()];
        let bounding = security::bounding_set();
        // The smallest filter the kernel takes: allow everything.
        let allow = [SockFilter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        }];
        let extra_fd = extra.as_fd();
        let code = raw::in_child(|| {
            let hardened = harden(&keep, bounding, &allow).is_ok();
            let open = |fd: BorrowedFd<'_>| rustix::io::fcntl_getfd(fd).is_ok();
            let null = rustix::fs::fstat(rustix::stdio::stdin())
                .is_ok_and(|st| st.st_rdev == rustix::fs::makedev(1, 3));
            let left = security::bounding_set();
            let ok = hardened && open(w.as_fd()) && !open(extra_fd) && null && left == KEPT_CAPS;
            let _ = raw::send_byte(keep[0], if ok { 1 } else { 2 });
            0
        });
        drop(w);
        let mut b = [0u8; 1];
        let n = raw::read(r.as_fd(), &mut b).unwrap();
        assert_eq!(code, 0);
        assert_eq!(
            (n, b[0]),
            (1, 1),
            "harden failed, or left more than init needs"
        );
    }

    /// Each step's result is checked: a seccomp program the kernel refuses (empty) is reported
    /// as the seccomp step, in a forked child (harden changes the whole process).
    #[test]
    fn harden_reports_the_step_that_failed() {
        let code = raw::in_child(|| match harden(&[], 0, &[]) {
            Ok(()) => 0,
            Err(i) => 10 + i as i32,
        });
        assert_eq!(code, 10 + 7, "{:?}", HARDEN_STEPS.get(code as usize - 10));
        assert_eq!(HARDEN_STEPS[7], "seccomp filter");
    }
}
