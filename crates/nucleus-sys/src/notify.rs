//! Seccomp user notifications, served by the runtime: the workload's filter returns
//! SECCOMP_RET_USER_NOTIF for the syscalls the runtime wants to see, and the runtime reads each
//! from the listener and answers. Two uses: `seccomp trace` (every syscall is recorded and
//! continued) and `--seccomp-log-denied` (a denied syscall is named in the log, then failed with
//! the errno the profile gives it).
//!
//! The listener is created in the workload (it must install the filter itself); the runtime
//! takes a copy with pidfd_getfd, at the fd number the workload announced before installing
//! (the lowest free one, as seccomp(2) returns it).

use crate::raw;
use nucleus_spec::seccomp::bpf::{interpret, native_arch};
use nucleus_spec::seccomp::SockFilter;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

const FLAG_CONTINUE: u32 = 1;

/// The key under which a trace counts the syscall numbers this architecture does not define
/// (a workload can make millions of distinct bogus ones; one entry each would grow the
/// runtime without bound).
pub const UNKNOWN_SYSCALLS: u32 = u32::MAX;

/// What the runtime does with notifications.
pub enum Mode {
    /// Record every syscall and let it run: a count per syscall the architecture defines, and
    /// one count for all others ([`UNKNOWN_SYSCALLS`]).
    Trace(BTreeMap<u32, u64>),
    /// The filter that decides denials (the profile as written): its errno is returned.
    LogDenied(Vec<SockFilter>),
}

/// One notification received.
pub struct Seen {
    pub pid: u32,
    pub nr: u32,
    /// The errno returned, for a denial.
    pub errno: Option<i32>,
}

/// The lowest free descriptor number: what seccomp(2) will return next in a single-threaded
/// process.
pub fn next_fd() -> io::Result<RawFd> {
    // A duplicate of 0 at the lowest free number (close-on-exec, which changes nothing: it is
    // closed at once).
    match rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdin(), 0) {
        Ok(dup) => Ok(dup.as_raw_fd()),
        // stdin may be closed: then fd 0 is the lowest free one.
        Err(rustix::io::Errno::BADF) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Copy descriptor `fd` of the process behind `pidfd` (Linux 5.6).
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: RawFd) -> io::Result<OwnedFd> {
    use rustix::process::PidfdGetfdFlags;
    Ok(rustix::process::pidfd_getfd(
        pidfd,
        fd,
        PidfdGetfdFlags::empty(),
    )?)
}

/// Receive and answer one notification. Err(ENOENT) when the notifying process died before
/// it was answered (nothing to do).
pub fn serve(listener: BorrowedFd<'_>, mode: &mut Mode) -> io::Result<Seen> {
    let n = raw::seccomp_notif_recv(listener)?;
    let nr = n.data.nr as u32;
    let (error, flags, errno) = match mode {
        Mode::Trace(seen) => {
            let key = if nucleus_spec::seccomp::syscalls::name(nr).is_some() {
                nr
            } else {
                UNKNOWN_SYSCALLS
            };
            *seen.entry(key).or_default() += 1;
            (0, FLAG_CONTINUE, None)
        }
        Mode::LogDenied(filter) => {
            let v = interpret(filter, native_arch(), nr, n.data.args);
            let e = (v & 0xffff) as i32;
            (-e, 0, Some(e))
        }
    };
    let r = raw::SeccompNotifResp {
        id: n.id,
        val: 0,
        error,
        flags,
    };
    raw::seccomp_notif_send(listener, r)?;
    Ok(Seen {
        pid: n.pid,
        nr,
        errno,
    })
}

/// `--seccomp-log-denied` under a flood: the first refusal of each syscall (and errno) in a
/// window is reported at once, the rest are counted and reported once when the window ends;
/// and the runtime serves at most [`DenyLog::RATE`] notifications a second (beyond that the
/// listener is left unpolled until the budget refills, so the workload waits in its syscall:
/// a flood costs the runtime, which runs outside the sandbox's cgroup, a bounded share of a
/// CPU, and its log a few lines per window).
pub struct DenyLog {
    window_start: std::time::Instant,
    /// (syscall, errno) → refusals not yet reported in this window (None: reported, none since).
    seen: BTreeMap<(u32, i32), u64>,
    tokens: f64,
    last_refill: std::time::Instant,
}

impl Default for DenyLog {
    fn default() -> Self {
        let now = std::time::Instant::now();
        DenyLog {
            window_start: now,
            seen: BTreeMap::new(),
            tokens: Self::RATE as f64,
            last_refill: now,
        }
    }
}

impl DenyLog {
    /// Length of an aggregation window.
    pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(5);
    /// Notifications served per second at most.
    pub const RATE: u32 = 2000;

    /// A refusal: true when it is to be reported now (the first of its kind in the window).
    pub fn record(&mut self, nr: u32, errno: i32) -> bool {
        let nr = if nucleus_spec::seccomp::syscalls::name(nr).is_some() {
            nr
        } else {
            UNKNOWN_SYSCALLS
        };
        match self.seen.get_mut(&(nr, errno)) {
            Some(n) => {
                *n += 1;
                false
            }
            None => {
                self.seen.insert((nr, errno), 0);
                true
            }
        }
    }

    /// At the end of a window: the counts not yet reported (syscall, errno, count), and a new
    /// window. Empty before.
    pub fn flush(&mut self, now: std::time::Instant) -> Vec<(u32, i32, u64)> {
        if now < self.window_start + Self::WINDOW {
            return vec![];
        }
        self.window_start = now;
        let out = self
            .seen
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((nr, e), n)| (*nr, *e, *n))
            .collect();
        self.seen.clear();
        out
    }

    /// Milliseconds until the window ends while counts wait (-1: none wait).
    pub fn ms_to_flush(&self, now: std::time::Instant) -> i32 {
        if self.seen.values().all(|n| *n == 0) {
            return -1;
        }
        let d = (self.window_start + Self::WINDOW).saturating_duration_since(now);
        i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
    }

    /// Whether a notification may be served now (one is taken from the budget if so).
    pub fn may_serve(&mut self, now: std::time::Instant) -> bool {
        let dt = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + dt * f64::from(Self::RATE)).min(f64::from(Self::RATE));
        self.tokens >= 1.0
    }

    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_are_reported_once_per_window_and_throttled() {
        let mut d = DenyLog::default();
        let mkdir = nucleus_spec::seccomp::syscalls::number("mkdir").unwrap();
        assert!(d.record(mkdir, 1));
        for _ in 0..10_000 {
            assert!(!d.record(mkdir, 1));
        }
        // Bogus numbers share one entry.
        assert!(d.record(5_000_000, 38));
        for i in 0..10_000 {
            assert!(!d.record(5_000_001 + i, 38));
        }
        assert_eq!(d.seen.len(), 2);
        let t0 = d.window_start;
        assert!(d.flush(t0).is_empty());
        let out = d.flush(t0 + DenyLog::WINDOW);
        assert_eq!(
            out,
            vec![(mkdir, 1, 10_000), (UNKNOWN_SYSCALLS, 38, 10_000)]
        );
        // The budget: RATE at once, then about RATE a second.
        let now = d.last_refill;
        let mut served = 0;
        while d.may_serve(now) {
            d.take();
            served += 1;
        }
        assert_eq!(served, DenyLog::RATE);
        assert!(d.may_serve(now + std::time::Duration::from_millis(10)));
    }
}
