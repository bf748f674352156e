//! Report first, clean after: a foreground run exits with its workload's status as soon as
//! the sandbox's init reports it, and a helper process finishes the teardown.
//!
//! The kernel tears the sandbox's namespaces down in init's exit (the tree unmounted,
//! superblocks destroyed, an RCU grace period for the mount namespace), and the cgroup can only
//! be removed once init is gone: ≈ 0.7 ms the caller no longer waits for. The helper is forked
//! while the runtime waits for the sandbox to set itself up (off the path to the exit status),
//! holding what must outlive the runtime: init's pidfd, the cgroup, the id range, the /etc
//! view's lock, prepared trees. Until the runtime's byte it only waits (its own set-up would
//! compete with the sandbox's for the CPUs); then, before anything else, it leaves the
//! caller: a session of its own (signals for the caller's terminal or process group do not
//! reach it; they stay blocked meanwhile), standard streams to /dev/null, every other
//! descriptor closed but what it holds (a reader of the workload's output sees its end right
//! after the runtime's exit). The byte:
//!
//! - `E` (the runtime reported early and exits): wait for init (bounded: [`INIT_EXIT_WAIT`],
//!   then SIGKILL), remove the cgroup, release the rest, then [`Observer::after_teardown`]
//!   (the record) and the collection of cgroups dead runs left;
//! - `S` (the runtime finishes the sandbox itself, as before): exit at once, releasing
//!   nothing;
//! - end of file (the runtime died, e.g. SIGKILL: init dies with it): the same as `E`, so a
//!   killed runtime no longer leaves its cgroup and record for `gc`.
//!
//! If the helper itself is killed, what it held is what a killed runtime used to leave: the
//! next run's cgroup collection and `nucleus gc` remove it.

use super::parent::Tree;
use super::Observer;
use crate::cgroup::Cgroup;
use crate::idslot::IdSlot;
use crate::raw;
use nucleus_spec::plan::Plan;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// How long the teardown waits for init to finish exiting after its report before it kills the
/// sandbox (the kernel kills a workload's leftover processes as init exits; only a process
/// stuck in the kernel can hold that up).
pub(super) const INIT_EXIT_WAIT: Duration = Duration::from_secs(10);

/// The byte that hands the teardown over to the helper.
const EARLY: u8 = b'E';
/// The byte that tells the helper the runtime does it all itself.
const SYNC: u8 = b'S';

/// What outlives the runtime until the sandbox is gone.
pub(super) struct Held {
    pub(super) pidfd: OwnedFd,
    pub(super) cgroup: Option<Cgroup>,
    pub(super) slot: Option<IdSlot>,
    /// The shared lock on the /etc view the sandbox mounted.
    pub(super) etc_view: Option<fs::File>,
    /// Prepared trees the sandbox mounted (none to copy back: those runs stay synchronous).
    pub(super) trees: Vec<Tree>,
}

impl Held {
    fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.pidfd.as_raw_fd()];
        if let Some(c) = &self.cgroup {
            v.extend(c.fds());
        }
        if let Some(s) = &self.slot {
            v.push(s.fd());
        }
        v.extend(self.etc_view.as_ref().map(|f| f.as_raw_fd()));
        v.extend(self.trees.iter().map(|t| t.view.as_raw_fd()));
        v
    }

    /// Wait for init, remove the cgroup, release the rest.
    fn finish(self) {
        if !crate::process::wait_exit(&self.pidfd, INIT_EXIT_WAIT) {
            let _ = raw::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
            let _ = crate::process::wait_exit(&self.pidfd, INIT_EXIT_WAIT);
        }
        // (Not this process's child: its exit already took it out of the cgroup; a reaper
        // collects it.)
        if let Some(c) = self.cgroup {
            let _ = c.remove();
        }
        drop(self.slot);
        drop(self.etc_view);
        drop(self.trees);
    }
}

/// Which side of [`fork`] this is.
pub(super) enum Side {
    /// The runtime, with its end of the hand-over.
    Runtime(HandOver),
    /// The helper, with its end.
    Helper(OwnedFd),
}

/// The runtime's end of the hand-over: [`HandOver::early`] or [`HandOver::sync`].
pub(super) struct HandOver {
    tx: OwnedFd,
    helper: libc::pid_t,
}

impl HandOver {
    /// The helper finishes the sandbox; the caller must release nothing of [`Held`]'s.
    pub(super) fn early(self) {
        let _ = raw::write_all(self.tx.as_fd(), &[EARLY]);
    }

    /// The runtime finishes the sandbox itself: the helper exits (and is reaped here).
    pub(super) fn sync(self) {
        let _ = raw::write_all(self.tx.as_fd(), &[SYNC]);
        drop(self.tx);
        let _ = raw::waitpid(self.helper, false);
    }
}

/// Fork the helper. Single-threaded callers only (the runtime is, while it runs a sandbox).
pub(super) fn fork() -> std::io::Result<Side> {
    let (rx, tx) = raw::pipe()?;
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: the runtime is single-threaded while it runs a sandbox (see sandbox::run).
    match unsafe { raw::fork() }? {
        Some(helper) => {
            drop(rx);
            Ok(Side::Runtime(HandOver { tx, helper }))
        }
        None => {
            drop(tx);
            Ok(Side::Helper(rx))
        }
    }
}

/// The helper's life (see the module's documentation). Never returns.
pub(super) fn helper_main(rx: OwnedFd, held: Held, plan: &Plan, obs: &mut dyn Observer) -> ! {
    let _ = raw::set_cmdline(&format!("nucleus: clean-up of {}", plan.id));
    // Until the runtime's byte it only waits (off the CPUs the sandbox is being set up on);
    // then it leaves the caller before anything else: the caller's streams close within
    // microseconds of the runtime's exit.
    let mut b = [0u8; 1];
    let got = loop {
        match raw::read(rx.as_fd(), &mut b) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(1) => break Some(b[0]),
            _ => break None,
        }
    };
    if got == Some(SYNC) {
        // Nothing is released here: the runtime holds and releases it all.
        raw::exit_now(0);
    }
    let mut keep = held.fds();
    keep.push(rx.as_raw_fd());
    leave_caller(&keep);
    held.finish();
    obs.after_teardown(got.is_none());
    if let Some(cp) = &plan.cgroup {
        crate::cgroup::gc(cp);
    }
    raw::exit_now(0)
}

/// Leave the caller's session, terminal and descriptors: standard streams to /dev/null, every
/// other descriptor but `keep` closed. Signals stay blocked as the runtime blocked them.
fn leave_caller(keep: &[RawFd]) {
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        raw::close_number(fd);
    }
}
