//! The stage recipe for one sandbox. `parent_*` functions run in the runtime process,
//! `child_*` in the sandbox (init, then the workload). Each stage interprets the plan.
//!
//! Order, and why:
//! 1. parent: block forwarded signals; reserve a host id range; prepare detached trees
//!    (context copies, copy-in-out workspace) — all before the fork, nothing on host paths.
//! 2. clone3 into new user, pid, mount, uts, ipc, cgroup (and net) namespaces, with a pidfd.
//! 3. parent: write uid/gid maps; make idmapped mounts (they need the child's user namespace
//!    and host privilege); send them with "go".
//! 4. child (PID 1): die with the parent (PDEATHSIG); hostname; `lo` up; build the root from
//!    the mount list; pivot_root; time namespace offsets; fork the workload; become mini-init.
//! 5. workload: new session (+ controlling tty); rlimits; empty bounding/ambient sets (needs
//!    CAP_SETPCAP, so first); setgroups/setgid/setuid; clear capabilities; chdir;
//!    no_new_privs; Landlock; seccomp last (it may deny what earlier steps need); report; exec.
//! 6. parent: relay signals, proxy the tty, collect the report and the exit status; copy the
//!    workspace back; everything else disappears with the namespaces.
//!
//! Files: steps 1-3 `parent.rs`, 4 `child.rs`, 5 `workload.rs`, 6 `wait.rs`.

use crate::cgroup::Usage;
use crate::channel::{ConsoleSocket, SecurityReport, StartFailure};
use crate::error::{Context, Result};
use crate::init;
use crate::raw::{self, WaitStatus};
use nucleus_spec::plan::Plan;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

mod child;
mod gvisor;
mod oci;
mod parent;
mod restore;
mod teardown;
mod wait;
mod workload;

pub(crate) use child::fail_with;
pub use gvisor::{exec as gvisor_exec, ps as gvisor_ps};
pub(crate) use oci::{await_applied, ns_flag};
pub use oci::{block_forwarded, create as create_oci, foreground, Console, CreateError, Created};
use parent::parent_run;
pub use restore::{restore_oci, OciRestore, Restore};
pub(crate) use wait::wait;
pub(crate) use workload::{workload_exec, workload_exec_under_init};

/// How a sandbox run ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: WaitStatus,
    /// Protections applied to the workload (absent when setup failed before exec).
    pub report: Option<SecurityReport>,
    /// Setup or exec failure reported by the sandbox.
    pub failure: Option<StartFailure>,
    /// Resource usage of the sandbox (cgroup counters; CPU time falls back to rusage).
    pub usage: Usage,
    /// `seccomp trace`: syscall numbers the workload made, with counts.
    pub traced: Option<std::collections::BTreeMap<u32, u64>>,
    /// `--timeout` ran out (the workload was sent SIGTERM, then the sandbox SIGKILL).
    pub timed_out: bool,
    /// The status was reported early ([`Observer::report_early`]): a helper process finishes
    /// the sandbox's teardown (see sandbox/teardown.rs); the caller exits without waiting.
    pub handed_over: bool,
    /// parent_wait returned at the workload's report, before init was gone.
    pub(crate) init_running: bool,
}

impl Outcome {
    /// A start that failed before the sandbox existed (the runtime's error).
    pub fn failed(error: String) -> Outcome {
        Outcome {
            status: WaitStatus::Exited(125),
            report: None,
            failure: Some(StartFailure::new(nucleus_spec::stage::Stage::Start, error)),
            usage: Usage::default(),
            traced: None,
            timed_out: false,
            handed_over: false,
            init_running: false,
        }
    }
}

/// Hooks the binary gives the recipe (events, progress).
pub trait Observer {
    fn applied(&mut self, _report: &SecurityReport) {}
    /// A protection or limit decided on is not applied (agent mode goes on).
    fn degraded(&mut self, _what: &str) {}
    /// Egress the sandbox's policy refused (a name or a destination), rate-limited.
    fn egress_refused(&mut self, _what: &nucleus_spec::net::EgressRefusal) {}
    /// The sandbox exists (its init has `pid` on the host) and was told to go.
    fn started(&mut self, _pid: libc::pid_t, _cgroups: &[PathBuf]) {}
    /// Detached sandboxes: the workload's exec succeeded (None) or failed.
    fn exec_result(&mut self, _failure: Option<&StartFailure>) {}
    /// `--seccomp-log-denied`: a syscall was refused with `errno` (the first such refusal in a
    /// window of [`notify::DenyLog::WINDOW`]).
    fn denied(&mut self, _pid: u32, _syscall: &str, _errno: i32) {}
    /// `--seccomp-log-denied`: the same refusal `count` more times in the window that ended.
    fn denied_again(&mut self, _syscall: &str, _errno: i32, _count: u64) {}
    /// Init reported the workload's exit; the sandbox is being torn down (work that does not
    /// need its usage figures can overlap the teardown). `handing_over`: the status goes to the
    /// caller now and a helper finishes the teardown ([`Observer::report_early`] was taken).
    fn workload_exited(&mut self, _handing_over: bool) {}
    /// A foreground run may hear the workload's status as soon as init reports it, with the
    /// sandbox's teardown left in [`Outcome::teardown`] (report first, clean after). Only runs
    /// that need nothing from the sandbox after its exit say yes (see docs/benchmarks.md).
    fn report_early(&self) -> bool {
        false
    }
    /// Whether a run that reports early needs its usage beyond the OOM kills (which decide
    /// its message): read at the report, on the way to the status.
    fn wants_usage(&self) -> bool {
        true
    }
    /// In the helper of a run that reported early, once the sandbox is gone and its cgroup
    /// removed; `runtime_died`: the runtime never handed over (it was killed).
    fn after_teardown(&mut self, _runtime_died: bool) {}
    /// `--timeout` ran out: the workload is sent SIGTERM now, the sandbox SIGKILL after the
    /// grace period.
    fn timed_out(&mut self, _after_ms: u64) {}
    /// Timed work of the observer's own (health checks): milliseconds until it wants
    /// [`Observer::tick`] (-1: never), and a descriptor whose readiness also calls it.
    fn next_tick_ms(&self) -> i32 {
        -1
    }
    fn watched(&self) -> Vec<i32> {
        Vec::new()
    }
    fn tick(&mut self) {}
}

/// How a detached (monitored) sandbox differs from a foreground run.
pub struct Detach {
    /// `create`: the workload waits, fully set up, until a `start` request.
    pub hold: bool,
    /// A listening unix socket for requests (`start`); answered `ok` or `error CODE MSG`.
    pub control: OwnedFd,
    /// `--console-socket`: a connected unix socket the pty master is sent over (OCI
    /// convention: one message, payload the terminal's name, the fd as SCM_RIGHTS).
    pub console: Option<ConsoleSocket>,
    /// `nucleus restore`: start from this CRIU image instead (the first run only: a restart
    /// starts the plan afresh).
    pub restore: Option<Restore>,
}

pub struct NoObserver;
impl Observer for NoObserver {}

/// The CLONE_NEW* flags of the plan's namespaces; `cgroup_later` leaves the cgroup namespace
/// out (it is unshared once the sandbox is in its cgroup).
pub(crate) fn ns_flags(plan: &Plan, cgroup_later: bool) -> u64 {
    let n = &plan.namespaces;
    let mut f = 0u64;
    for (on, flag) in [
        (n.user, libc::CLONE_NEWUSER),
        (n.pid, libc::CLONE_NEWPID),
        (n.mount, libc::CLONE_NEWNS),
        (n.net, libc::CLONE_NEWNET),
        (n.uts, libc::CLONE_NEWUTS),
        (n.ipc, libc::CLONE_NEWIPC),
        (n.cgroup && !cgroup_later, libc::CLONE_NEWCGROUP),
    ] {
        if on {
            f |= flag as u64;
        }
    }
    f
}

/// Whether the sandbox makes its network namespace itself, in a thread, while it builds its
/// root: creating one is the dearest namespace (~0.75 ms here: loopback device, sysctl tables),
/// and this way it overlaps the mounts instead of lengthening clone3. Not when the runtime
/// must reach into it right after the clone (bridge veth, slirp4netns) or when the sandbox
/// configures it before its mounts (egress rules, the resolver's sockets).
fn net_in_thread(plan: &Plan) -> bool {
    let n = &plan.net;
    // (Not for an OCI container: its network namespace must exist from the clone, for its
    // prestart hooks and joiners to find it by pid.)
    plan.namespaces.net
        && plan.supervisor.is_nucleus()
        && n.bridge.is_none()
        && n.slirp.is_none()
        && n.egress.is_none()
        && n.resolver.is_none()
}

/// Run the plan to completion. Single-threaded callers only (the recipe forks).
pub fn run(plan: &Plan, obs: &mut dyn Observer) -> Result<Outcome> {
    run_detached(plan, obs, None)
}

/// Run the plan as a detached sandbox's monitor: stdio is whatever the caller set up; exec
/// success is reported through [`Observer::exec_result`]; `control` serves `start`.
pub fn run_detached(
    plan: &Plan,
    obs: &mut dyn Observer,
    detach: Option<&Detach>,
) -> Result<Outcome> {
    if let Some((d, r)) = detach.and_then(|d| Some((d, d.restore.as_ref()?))) {
        return with_signals_blocked(|| restore::restore_run(plan, obs, d, r));
    }
    match &plan.gvisor {
        Some(g) => with_signals_blocked(|| gvisor::run(plan, g, obs, detach)),
        None => with_signals_blocked(|| parent_run(plan, obs, detach)),
    }
}

/// Run `f` with the forwarded signals and SIGCHLD blocked (they are read from a signalfd and
/// relayed), restoring the caller's mask after.
pub(crate) fn with_signals_blocked<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut blocked = init::FORWARDED.to_vec();
    blocked.push(libc::SIGCHLD);
    let old_mask = raw::block_signals(&blocked).ctx("block signals", "")?;
    let r = f();
    raw::set_signal_mask(&old_mask);
    r
}
