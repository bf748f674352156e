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

use crate::cgroup::{self, Cgroup, Usage};
use crate::channel::{
    self, Channel, FromChild, SecurityReport, Stage, StartFailure, ToChild, START,
};
use crate::copy;
use crate::error::{other, Context, Result};
use crate::idslot::{IdSlot, WIDTH};
use crate::init;
use crate::mount::{self, Prepared, Switched};
use crate::net;
use crate::netwatch;
use crate::notify;
use crate::raw::{self, Forked, WaitStatus, MOUNT_ATTR_IDMAP};
use crate::security;
use crate::trace;
use crate::tty;
use nucleus_spec::mounts::MountOp;
use nucleus_spec::plan::{IdMapPlan, OnFailure, Plan, SeccompNotify};
use nucleus_spec::state::{LandlockStatus, RootSwitch, SeccompStatus};
use std::collections::VecDeque;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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
    /// need its usage figures can overlap the teardown).
    fn workload_exited(&mut self) {}
    /// `--timeout` ran out: the workload is sent SIGTERM now, the sandbox SIGKILL after the
    /// grace period.
    fn timed_out(&mut self, _after_ms: u64) {}
    /// Timed work of the observer's own (health checks): milliseconds until it wants
    /// [`Observer::tick`] (-1: never), and a descriptor whose readiness also calls it.
    fn next_tick_ms(&self) -> i32 {
        -1
    }
    fn watched(&self) -> Option<i32> {
        None
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
    pub console: Option<Channel>,
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
    plan.namespaces.net
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
    with_signals_blocked(|| parent_run(plan, obs, detach))
}

/// Run `f` with the forwarded signals and SIGCHLD blocked (they are read from a signalfd and
/// relayed), restoring the caller's mask after.
pub(crate) fn with_signals_blocked<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut blocked = init::FORWARDED.to_vec();
    blocked.push(libc::SIGCHLD);
    let old_mask = raw::block_signals(&blocked).ctx("block signals", "")?;
    let r = f();
    // SAFETY: restoring the mask saved above.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    r
}

struct Tree {
    /// The parent's own (not idmapped) view, for copying back.
    view: OwnedFd,
    src: PathBuf,
    copy_back: bool,
    max_bytes: u64,
}

fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn parent_prepare_trees(plan: &Plan) -> Result<Vec<Tree>> {
    let mut out = Vec::new();
    for t in &plan.prepared {
        let size = t.max_bytes.to_string();
        let m = raw::detached_tmpfs(&[("mode", "0755"), ("size", &size)])
            .ctx("create tmpfs for", t.src.display())?;
        copy::copy_in(
            &t.src,
            &fd_path(m.as_fd()),
            plan.process.uid,
            plan.process.gid,
        )
        .map_err(|e| {
            if e.source.raw_os_error() == Some(libc::ENOSPC) {
                other(
                    "copy in",
                    format!(
                        "{} holds more than --workspace-max-size ({} bytes)",
                        t.src.display(),
                        t.max_bytes
                    ),
                )
            } else {
                e
            }
        })?;
        out.push(Tree {
            view: m,
            src: t.src.clone(),
            copy_back: t.copy_back,
            max_bytes: t.max_bytes,
        });
    }
    Ok(out)
}

/// Hold the plan's /etc view (made when missing) and clone it detached: read-only, noexec,
/// nosuid, nodev. The clone is made here, not by the sandbox: the view lies under the state
/// root, which only the runtime may search.
fn parent_etc_view(v: &nucleus_spec::plan::EtcView) -> Result<(fs::File, OwnedFd)> {
    let held = crate::etcview::hold(v, Path::new("/etc"))?;
    let m = raw::open_tree_clone(Some(held.as_fd()), Path::new(""), false)
        .ctx("clone", v.dir().display())?;
    setattr_maybe_idmapped(m.as_fd(), mount::bind_attrs(true, true), None)
        .ctx("make read-only", v.dir().display())?;
    trace::mark("etc view");
    Ok((held, m))
}

fn parent_write_maps(pid: libc::pid_t, idmap: &IdMapPlan, slot: Option<&IdSlot>) -> Result<()> {
    let (uid_map, gid_map) = match (idmap, slot) {
        (IdMapPlan::PrivateRange { width }, Some(s)) => {
            let l = format!("0 {} {}\n", s.host_base(), width.min(&WIDTH));
            (l.clone(), l)
        }
        (IdMapPlan::Caller { uid, gid }, _) => {
            fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .ctx("write", format!("/proc/{pid}/setgroups"))?;
            (format!("0 {uid} 1\n"), format!("0 {gid} 1\n"))
        }
        _ => return Err(other("id map", "no id range reserved")),
    };
    fs::write(format!("/proc/{pid}/uid_map"), uid_map).ctx("write", "uid_map")?;
    fs::write(format!("/proc/{pid}/gid_map"), gid_map).ctx("write", "gid_map")
}

/// Set mount attributes on a detached clone, idmapped to `userns` when given. A filesystem or
/// kernel without idmapped-mount support (tmpfs before Linux 6.3) answers EINVAL: the clone is
/// then used without the idmap. Returns whether the idmap was applied.
fn setattr_maybe_idmapped(
    fd: BorrowedFd<'_>,
    set: u64,
    userns: Option<BorrowedFd<'_>>,
) -> std::io::Result<bool> {
    let Some(ns) = userns else {
        raw::mount_setattr(Some(fd), Path::new(""), false, set, 0, None)?;
        return Ok(false);
    };
    match raw::mount_setattr(
        Some(fd),
        Path::new(""),
        false,
        set | MOUNT_ATTR_IDMAP,
        0,
        Some(ns),
    ) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            raw::mount_setattr(Some(fd), Path::new(""), false, set, 0, None)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Idmapped clones of user binds and prepared trees, in plan order. Where idmapping is not
/// supported, binds are plain (owners show as they map, or as nobody) and prepared trees are
/// re-owned to the sandbox's host ids (`host_base`), with a warning.
fn parent_idmapped_mounts(
    plan: &Plan,
    pid: libc::pid_t,
    trees: &[Tree],
    host_base: Option<u32>,
    obs: &mut dyn Observer,
) -> Result<(Vec<OwnedFd>, Vec<OwnedFd>)> {
    let needs = plan
        .mounts
        .iter()
        .any(|m| matches!(m, MountOp::Bind { idmap: true, .. }))
        || !trees.is_empty();
    if !needs {
        return Ok((vec![], vec![]));
    }
    let userns = fs::File::open(format!("/proc/{pid}/ns/user")).ctx("open", "user namespace")?;
    let idmap_for_trees = matches!(plan.idmap, IdMapPlan::PrivateRange { .. });
    let mut binds = Vec::new();
    let mut prepared = Vec::new();
    for op in &plan.mounts {
        match op {
            MountOp::Bind {
                src,
                readonly,
                noexec,
                idmap: true,
                ..
            } => {
                // Resolved without following symlinks planted by others (crate::resolve).
                let at = crate::resolve::open_trusted(src).ctx("bind", src.display())?;
                let fd = raw::open_tree_clone(Some(at.as_fd()), Path::new(""), false)
                    .ctx("bind", src.display())?;
                let set = mount::bind_attrs(*readonly, *noexec);
                if !setattr_maybe_idmapped(fd.as_fd(), set, Some(userns.as_fd()))
                    .ctx("idmap bind", src.display())?
                {
                    obs.degraded(&format!(
                        "{}: this filesystem cannot be idmapped here; host owners show as the sandbox maps them (others as nobody)",
                        src.display()
                    ));
                }
                binds.push(fd);
            }
            MountOp::Attach {
                slot,
                readonly,
                noexec,
                ..
            } => {
                let t = trees
                    .get(*slot)
                    .ok_or_else(|| other("attach", format!("no prepared tree {slot}")))?;
                let fd = raw::open_tree_clone(Some(t.view.as_fd()), Path::new(""), false)
                    .ctx("clone tree", t.src.display())?;
                let set = mount::bind_attrs(*readonly, *noexec);
                let ns = idmap_for_trees.then(|| userns.as_fd());
                let mapped = setattr_maybe_idmapped(fd.as_fd(), set, ns)
                    .ctx("prepare tree", t.src.display())?;
                if idmap_for_trees && !mapped {
                    if let Some(base) = host_base {
                        copy::shift_owners(&fd_path(t.view.as_fd()), base)?;
                    }
                }
                prepared.push(fd);
            }
            _ => {}
        }
    }
    Ok((binds, prepared))
}

fn seed() -> u32 {
    let mut b = [0u8; 4];
    raw::fill_random(&mut b);
    u32::from_ne_bytes(b)
}

/// Create the sandbox's cgroup. Strict modes refuse when it or a limit cannot be applied;
/// agent mode reports it and goes on.
fn parent_cgroup(plan: &Plan, obs: &mut dyn Observer) -> Result<Option<Cgroup>> {
    let Some(cp) = &plan.cgroup else {
        return Ok(None);
    };
    let refuse = plan.on_security_failure == OnFailure::Refuse;
    match Cgroup::create(cp) {
        Ok(c) if c.failed.is_empty() => Ok(Some(c)),
        Ok(c) => {
            let what = c.failed.join("; ");
            if refuse {
                return Err(other(
                    "cgroup",
                    format!("limit cannot be written: {what}; strict modes refuse to start"),
                ));
            }
            obs.degraded(&format!("limit NOT applied: {what}"));
            Ok(Some(c))
        }
        Err(e) if refuse => Err(other(
            "cgroup",
            format!("{e}; strict modes refuse to start without resource limits"),
        )),
        Err(_) if cp.quiet_failure => Ok(None),
        Err(e) => {
            obs.degraded(&format!("resource limits are NOT applied: {e}"));
            Ok(None)
        }
    }
}

fn parent_run(plan: &Plan, obs: &mut dyn Observer, detach: Option<&Detach>) -> Result<Outcome> {
    let sfd = raw::signalfd(init::FORWARDED).ctx("signalfd", "")?;
    let slot = match plan.idmap {
        IdMapPlan::PrivateRange { .. } => Some(IdSlot::acquire(seed())?),
        IdMapPlan::Caller { .. } => None,
    };
    trace::mark("id range");
    let cgroup = parent_cgroup(plan, obs)?;
    // v1: the sandbox moves itself (see Cgroup::self_join_files), then unshares its cgroup
    // namespace (it decides that from the same files); dropped here after the clone.
    let join_files = match &cgroup {
        Some(c) => c.self_join_files()?,
        None => Vec::new(),
    };
    let cgroup_view = cgroup.as_ref().and_then(|c| c.view());
    trace::mark("cgroup");
    let trees = parent_prepare_trees(plan)?;
    // The /etc view: held (shared lock) until the sandbox is gone, and cloned detached here;
    // the child inherits the clone with the fork and attaches it.
    let etc_view = match &plan.etc_view {
        Some(v) => Some(parent_etc_view(v)?),
        None => None,
    };
    let (pch, cch) = channel::pair()?;
    // Without --tty the caller's terminals are relayed through pipes, never handed over.
    let stdio = if plan.process.tty {
        crate::relay::Stdio::default()
    } else {
        crate::relay::Stdio::for_terminals().ctx("pipe", "standard descriptors")?
    };

    let into = cgroup.as_ref().and_then(|c| c.clone_into());
    let mut flags = ns_flags(plan, !join_files.is_empty());
    if net_in_thread(plan) {
        flags &= !(libc::CLONE_NEWNET as u64);
    }
    // SAFETY: nucleus is single-threaded here (no threads are ever spawned before a run).
    let forked = unsafe { raw::fork_into(flags, into) }.ctx("clone3", "new namespaces")?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(pch);
            if stdio.install().is_err() {
                raw::exit_now(125);
            }
            drop(stdio);
            let etc_mount = etc_view.map(|(_, m)| m);
            child_main(plan, cch, &join_files, etc_mount, cgroup_view)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    trace::mark("clone3");
    let mut relay = crate::relay::Relay::default();
    if !stdio.is_empty() {
        stdio
            .into_relay(&mut relay)
            .ctx("relay", "standard descriptors")?;
    }
    // Only the lock stays (the child has its own copy of the clone).
    let _etc_view_held = etc_view.map(|(held, _)| held);
    drop(cch);
    drop(join_files);

    let kill_child = |e| {
        let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = raw::waitpid(pid, false);
        e
    };
    parent_write_maps(pid, &plan.idmap, slot.as_ref()).map_err(kill_child)?;
    trace::mark("id maps");
    // Bridge mode: the veth's far end must be in the sandbox before it configures itself.
    let host_net = match &plan.net.bridge {
        Some(b) => Some(net::bridge_host_side(b, &plan.id, pid).map_err(kill_child)?),
        None => None,
    };
    let slirp = match &plan.net.slirp {
        Some(s) => Some(net::Slirp::start(s, pid).map_err(kill_child)?),
        None => None,
    };
    let host_base = slot.as_ref().map(|s| s.host_base());
    let (binds, prepared) =
        parent_idmapped_mounts(plan, pid, &trees, host_base, obs).map_err(kill_child)?;
    let fds: Vec<BorrowedFd<'_>> = binds
        .iter()
        .chain(prepared.iter())
        .map(|f| f.as_fd())
        .collect();
    pch.send(
        &ToChild::Go {
            idmapped: binds.len(),
            prepared: prepared.len(),
            sync: detach.is_some(),
            hold: detach.is_some_and(|d| d.hold),
            net: host_net.as_ref().map(|h| h.assigned.clone()),
        },
        &fds,
    )
    .ctx("send", "go")
    .map_err(kill_child)?;
    obs.started(pid, &cgroup.as_ref().map(|c| c.paths()).unwrap_or_default());
    drop(fds);
    drop(binds);
    drop(prepared);

    let mut control = detach.map(|d| Control {
        listener: d.control.as_fd(),
        console: d.console.as_ref(),
        hold: d.hold,
        start_sent: false,
        waiters: vec![],
        result: None,
    });
    let mut out = parent_wait(pid, &pidfd, &pch, &sfd, obs, control.as_mut(), plan, relay)?;
    drop(slirp);
    drop(host_net);
    if let Some(c) = cgroup {
        out.usage = c.usage();
        if let Err(e) = c.remove() {
            obs.degraded(&e.to_string());
        }
    }
    if out.usage.cpu_usec.is_none() {
        out.usage.cpu_usec = Some(raw::children_cpu_usec());
    }
    if out.report.is_some() {
        for t in trees.iter().filter(|t| t.copy_back) {
            copy::copy_back(&fd_path(t.view.as_fd()), &t.src, t.max_bytes)?;
        }
    }
    drop(slot);
    Ok(out)
}

/// What the sandbox has told the runtime so far.
#[derive(Default)]
struct Collected {
    report: Option<SecurityReport>,
    failure: Option<StartFailure>,
    status: Option<WaitStatus>,
    sync: Option<Channel>,
    /// The sandbox must die (its terminal could not be handed over).
    kill: bool,
    /// Descriptor number of the workload's seccomp listener, announced before it exists.
    listener_at: Option<i32>,
    pty: Option<OwnedFd>,
    raw_mode: Option<tty::RawMode>,
    /// Egress supervision sockets from the sandbox, not yet served.
    watch: Option<(Vec<OwnedFd>, bool)>,
}

impl Collected {
    /// Take one message from the channel; false when the channel is closed.
    fn absorb(&mut self, ch: &Channel, obs: &mut dyn Observer, console: Option<&Channel>) -> bool {
        match ch.recv::<FromChild>() {
            Ok(Some((FromChild::Timings(m), _))) => trace::merge(m),
            Ok(Some((FromChild::Applied(r), _))) => {
                obs.applied(&r);
                self.report = Some(r);
            }
            Ok(Some((FromChild::Failed(f), _))) => self.failure = Some(f),
            Ok(Some((FromChild::ExecSync, mut fds))) => self.sync = fds.pop().map(Channel::from),
            Ok(Some((FromChild::Listener(n), _))) => self.listener_at = Some(n),
            Ok(Some((FromChild::NetWatch { log, .. }, fds))) => self.watch = Some((fds, log)),
            Ok(Some((FromChild::Exited(st), _))) => {
                self.status = Some(st);
                trace::mark("workload exit reported");
                obs.workload_exited();
            }
            Ok(Some((FromChild::Pty, mut fds))) => {
                if let (Some(m), Some(c)) = (fds.first(), console) {
                    // The receiver owns the terminal from now on; ours closes.
                    if let Err(e) = c.send_bytes(b"/dev/ptmx", &[m.as_fd()]) {
                        self.failure = Some(StartFailure::new(Stage::ConsoleSocket, e.to_string()));
                        self.kill = true;
                    }
                } else if let Some(m) = fds.pop() {
                    tty::copy_window_size(0, m.as_raw_fd());
                    self.raw_mode = Some(tty::RawMode::enter());
                    self.pty = Some(m);
                }
            }
            Ok(None) | Err(_) => return false,
        }
        true
    }
}

/// The control socket of a detached sandbox, and who waits for its exec result.
struct Control<'a> {
    listener: BorrowedFd<'a>,
    console: Option<&'a Channel>,
    hold: bool,
    start_sent: bool,
    waiters: Vec<OwnedFd>,
    /// Once known: None = exec succeeded, Some((exit code, message)) = it failed.
    result: Option<Option<(u8, String)>>,
}

impl Control<'_> {
    fn reply(conn: &OwnedFd, result: &Option<(u8, String)>) {
        use nucleus_spec::state::MonitorReport;
        let r = match result {
            None => MonitorReport::Ok,
            Some((code, msg)) => MonitorReport::Error {
                code: *code,
                msg: msg.clone(),
            },
        };
        let line = format!("{}\n", r.encode());
        let _ = raw::write_all(conn.as_fd(), line.as_bytes());
    }

    /// Serve one request: `start` (release a held workload; answered once its exec result is
    /// known).
    fn serve(&mut self, sync: Option<&Channel>) {
        let Ok(conn) = raw::unix_accept(self.listener, 2000) else {
            return;
        };
        let mut buf = [0u8; 64];
        let n = raw::read(conn.as_fd(), &mut buf).unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        if req != START {
            Self::reply(&conn, &Some((2, format!("unknown request {req:?}"))));
            return;
        }
        if !self.hold {
            Self::reply(&conn, &Some((1, "the sandbox was already started".into())));
            return;
        }
        if let Some(r) = &self.result {
            if r.is_none() {
                Self::reply(&conn, &Some((1, "the sandbox was already started".into())));
            } else {
                Self::reply(&conn, r);
            }
            return;
        }
        if !self.start_sent {
            match sync {
                Some(s) if s.send(&START, &[]).is_ok() => self.start_sent = true,
                _ => {
                    Self::reply(
                        &conn,
                        &Some((1, "the sandbox is not waiting for start".into())),
                    );
                    return;
                }
            }
        }
        self.waiters.push(conn);
    }

    fn finish(&mut self, result: Option<(u8, String)>) {
        for w in self.waiters.drain(..) {
            Self::reply(&w, &result);
        }
        self.result = Some(result);
    }
}

/// Wait for a process the runtime forked (and whose channel end it holds): relay signals,
/// proxy its tty, collect its report and exit status.
pub(crate) fn wait(
    plan: &Plan,
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    ch: &Channel,
    sfd: &OwnedFd,
    obs: &mut dyn Observer,
    relay: crate::relay::Relay,
) -> Result<Outcome> {
    parent_wait(pid, pidfd, ch, sfd, obs, None, plan, relay)
}

/// Copy the workload's seccomp listener: descriptor `n` of init's child (the workload) or,
/// for a process `exec` started, of `pid` itself. The workload announced the number before
/// creating it, so wait until it is there and is a seccomp listener.
fn fetch_listener(pid: libc::pid_t, n: i32, ch: i32) -> std::io::Result<Option<OwnedFd>> {
    let target = raw::first_child(pid).unwrap_or(pid);
    let pidfd = raw::pidfd_open(target)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(fd) = notify::pidfd_getfd(pidfd.as_fd(), n) {
            let link = fs::read_link(fd_path(fd.as_fd())).unwrap_or_default();
            if link.to_string_lossy().contains("seccomp") {
                return Ok(Some(fd));
            }
        }
        // The workload died, or wrote again (it says its filter failed): no listener.
        let r = raw::poll_read(&[pidfd.as_raw_fd(), ch], 0)?;
        if r[0] != 0 || r[1] != 0 {
            return Ok(None);
        }
        if std::time::Instant::now() > deadline {
            return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

#[allow(clippy::too_many_arguments)]
fn parent_wait(
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    ch: &Channel,
    sfd: &OwnedFd,
    obs: &mut dyn Observer,
    mut control: Option<&mut Control<'_>>,
    plan: &Plan,
    mut relay: crate::relay::Relay,
) -> Result<Outcome> {
    let seccomp_notify = plan.seccomp_notify.as_ref();
    let resolver = plan.net.resolver.as_ref();
    let mut got = Collected::default();
    let mut watcher: Option<netwatch::Watcher> = None;
    let mut ch_open = true;
    let mut pty_relayed = false;
    let console = control.as_ref().and_then(|c| c.console);
    let mut mode = seccomp_notify.map(|n| match n {
        SeccompNotify::Trace => notify::Mode::Trace(Default::default()),
        SeccompNotify::LogDenied { decide } => notify::Mode::LogDenied(decide.clone()),
    });
    let mut listener: Option<OwnedFd> = None;
    let mut deny_log = notify::DenyLog::default();
    // --timeout: counted from the start (a created sandbox's from `start`).
    let mut deadline: Option<std::time::Instant> = None;
    let mut kill_at: Option<std::time::Instant> = None;
    let mut timed_out = false;
    loop {
        let now = std::time::Instant::now();
        let held = control.as_ref().is_some_and(|c| c.hold && !c.start_sent);
        if let (None, Some(ms), false) = (deadline, plan.timeout_ms, held) {
            deadline = Some(now + std::time::Duration::from_millis(ms));
        }
        for (nr, errno, count) in deny_log.flush(now) {
            obs.denied_again(&syscall_name(nr), errno, count);
        }
        // Over budget: the listener waits (and so does the workload in its syscall).
        let serve_notify = deny_log.may_serve(now);
        if let Some((fds, log)) = got.watch.take() {
            watcher = Some(netwatch::Watcher::spawn(resolver.cloned(), fds, log)?);
        }
        if let Some(n) = got.listener_at.take().filter(|n| *n >= 0) {
            // None: the workload said it has no listener after all (its filter failed).
            if let Some(l) = fetch_listener(pid, n, ch.raw()).ctx("take the seccomp listener", n)? {
                listener = Some(l);
                ch.send(&channel::ListenerTaken, &[])
                    .ctx("send", "listener taken")?;
            }
        }
        let pty = got.pty.as_ref().map(|m| m.as_raw_fd());
        if let (Some(m), false) = (&got.pty, pty_relayed) {
            pty_relayed = true;
            crate::relay::pty(&mut relay, m.as_fd(), true).ctx("relay", "terminal")?;
        }
        let mut fds = vec![
            if ch_open { ch.raw() } else { -1 },
            sfd.as_raw_fd(),
            pidfd.as_raw_fd(),
        ];
        let slot = |fds: &mut Vec<i32>, fd: i32| {
            fds.push(fd);
            fds.len() - 1
        };
        let sync_i = got.sync.as_ref().map(|s| slot(&mut fds, s.raw()));
        let ctl_i = control
            .as_ref()
            .map(|c| slot(&mut fds, c.listener.as_raw_fd()));
        let notify_i = listener
            .as_ref()
            .map(|l| slot(&mut fds, if serve_notify { l.as_raw_fd() } else { -1 }));
        let watch_i = watcher.as_ref().map(|w| slot(&mut fds, w.fd().as_raw_fd()));
        let own = fds.len();
        fds.extend(obs.watched());
        let mut timeout = obs.next_tick_ms();
        let mut sooner = |ms: i32| {
            if ms >= 0 && (timeout < 0 || ms < timeout) {
                timeout = ms;
            }
        };
        sooner(deny_log.ms_to_flush(now));
        for t in [deadline.filter(|_| !timed_out), kill_at]
            .into_iter()
            .flatten()
        {
            // Rounded up: a poll that wakes before the deadline would only spin.
            let ms = t.saturating_duration_since(now).as_micros().div_ceil(1000);
            sooner(ms.min(i32::MAX as u128) as i32);
        }
        if listener.is_some() && !serve_notify {
            sooner(1);
        }
        // Our descriptors and the observer's read; then the relay's streams.
        let mut with: Vec<(i32, i16)> = fds.iter().map(|&f| (f, libc::POLLIN)).collect();
        with.extend(relay.poll_set());
        let all = raw::poll(&with, timeout).ctx("poll", "")?;
        let (rev, relay_rev) = all.split_at(fds.len());
        relay.service(relay_rev);
        let relay_moved = relay_rev.iter().any(|r| *r != 0);
        let ready = |i: Option<usize>| i.is_some_and(|i| rev[i] != 0);
        obs.tick();
        let after = std::time::Instant::now();
        if let (Some(d), false) = (deadline, timed_out) {
            if after >= d {
                timed_out = true;
                obs.timed_out(plan.timeout_ms.unwrap_or(0));
                // Init forwards it to the workload.
                let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGTERM);
                kill_at = Some(
                    after + std::time::Duration::from_millis(nucleus_spec::plan::TIMEOUT_GRACE_MS),
                );
            }
        }
        if kill_at.is_some_and(|k| after >= k) {
            kill_at = None;
            let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        }
        if rev[..own].iter().all(|r| *r == 0) {
            // Only the observer's time or descriptor, or the relay: nothing else is ready.
            let _ = relay_moved;
            continue;
        }
        if let (true, Some(w)) = (ready(watch_i), &watcher) {
            if let Some(r) = w.recv() {
                obs.egress_refused(&r);
            }
        }
        if rev[0] != 0 {
            ch_open = got.absorb(ch, obs, console);
            if std::mem::take(&mut got.kill) {
                let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            }
            continue;
        }
        if rev[1] != 0 {
            let sig = raw::read_signal(sfd.as_fd()).ctx("read signal", "")?;
            match (sig, pty) {
                (libc::SIGWINCH, Some(m)) => tty::copy_window_size(0, m),
                _ => {
                    let _ = raw::pidfd_send_signal(pidfd.as_fd(), sig);
                }
            }
        }
        if ready(sync_i) {
            // The workload's end closed: its exec succeeded, or it failed and said so first
            // (the report is already queued on the channel).
            while ch_open
                && raw::poll_read(&[ch.raw()], 0)
                    .map(|r| r[0] != 0)
                    .unwrap_or(false)
            {
                ch_open = got.absorb(ch, obs, console);
            }
            let held = control.as_ref().is_some_and(|c| c.hold && !c.start_sent);
            let failed = match &got.failure {
                Some(f) => Some(f.clone()),
                None if held => Some(StartFailure::new(Stage::Start, "killed before start")),
                None => None,
            };
            obs.exec_result(failed.as_ref());
            if let Some(c) = control.as_deref_mut() {
                c.finish(failed.map(|f| (f.exit_code(), f.to_string())));
            }
            got.sync = None;
            continue;
        }
        if let (Some(i), Some(l), Some(m)) = (notify_i, &listener, mode.as_mut()) {
            if rev[i] & libc::POLLIN != 0 {
                deny_log.take();
                if let Ok(seen) = notify::serve(l.as_fd(), m) {
                    if let Some(e) = seen.errno {
                        if deny_log.record(seen.nr, e) {
                            obs.denied(seen.pid, &syscall_name(seen.nr), e);
                        }
                    }
                }
            } else if rev[i] != 0 {
                // No process uses the filter any more.
                listener = None;
            }
        }
        if ready(ctl_i) {
            if let Some(c) = control.as_deref_mut() {
                c.serve(got.sync.as_ref());
            }
        }
        if rev[2] != 0 {
            for (nr, errno, count) in deny_log.flush(now + notify::DenyLog::WINDOW) {
                obs.denied_again(&syscall_name(nr), errno, count);
            }
            // Init is gone: move what its terminal or pipes still hold (without waiting),
            // drain the channel, then reap. Nothing of the caller's stays with the sandbox.
            relay.finish();
            while ch_open {
                ch_open = got.absorb(ch, obs, console);
            }
            let init_status = raw::waitpid(pid, false)
                .ctx("wait", "sandbox init")?
                .map(|(_, s)| s);
            // Its sockets hold the sandbox's network namespace (and so its addresses).
            if let Some(w) = watcher.take() {
                for r in w.stop() {
                    obs.egress_refused(&r);
                }
            }
            let status = got
                .status
                .or(init_status)
                .unwrap_or(WaitStatus::Exited(255));
            if let Some(c) = control.as_deref_mut() {
                if c.result.is_none() {
                    c.finish(Some((
                        status.code().clamp(0, 255) as u8,
                        "the sandbox ended before its workload started".into(),
                    )));
                }
            }
            return Ok(Outcome {
                status,
                report: got.report,
                failure: got.failure,
                usage: Usage::default(),
                traced: match mode {
                    Some(notify::Mode::Trace(t)) => Some(t),
                    _ => None,
                },
                timed_out,
            });
        }
    }
}

/// A syscall's name for a report ("numbers this architecture does not define" for the bucket
/// of those).
fn syscall_name(nr: u32) -> String {
    match nucleus_spec::seccomp::syscalls::name(nr) {
        Some(n) => n.to_string(),
        None if nr == notify::UNKNOWN_SYSCALLS => {
            "syscalls this architecture does not define".into()
        }
        None => format!("syscall {nr}"),
    }
}

/// The sandbox side. Never returns.
fn child_main(
    plan: &Plan,
    ch: Channel,
    join_files: &[fs::File],
    etc_view: Option<OwnedFd>,
    cgroup_view: Option<mount::CgroupView>,
) -> ! {
    // Setup creates directories and files with exactly the plan's modes; the workload gets the
    // caller's umask back before exec.
    // SAFETY: umask cannot fail.
    let caller_umask = unsafe { libc::umask(0) };
    match child_setup(plan, &ch, join_files, etc_view, cgroup_view) {
        Ok((switched, slave, go)) => {
            let tty_slave = slave.as_ref().map(|s| s.as_raw_fd());
            let sync = if go.sync {
                match channel::pair() {
                    Ok((ours, theirs)) => {
                        if ch.send(&FromChild::ExecSync, &[theirs.as_fd()]).is_err() {
                            raw::exit_now(1);
                        }
                        Some((ours, go.hold))
                    }
                    Err(e) => fail(&ch, Stage::ExecSync, &e.to_string()),
                }
            } else {
                None
            };
            let hold = sync.as_ref().is_some_and(|(_, h)| *h);
            // A full fork for `create` (the workload waits for `start` before its exec, and
            // init must reap and forward signals meanwhile) and with a time namespace (the
            // workload is its first member, and kernels before 6.x refuse CLONE_VM into a
            // time namespace other than the parent's: EINVAL on 6.1).
            let full_fork = hold || plan.namespaces.time_offset_secs.is_some();
            // The bounding set, once for both processes: everything but what the workload
            // keeps and init's CAP_KILL (each keeps dropping only what is left).
            let bounding_left =
                plan.process.caps.as_ref().map_or(0, |c| c.bounding) | init::KEPT_CAPS;
            if let Err(e) = security::drop_bounding_except(bounding_left) {
                fail(&ch, Stage::Capabilities, &e.to_string());
            }
            // Init is hardened before the workload's program runs: the workload's first act is
            // to wait for `go`, which init writes once it has given up what it does not need
            // (it cannot before the clone: the workload would inherit its seccomp filter and
            // lost capabilities). Shared memory takes turns: the workload waits while init
            // hardens, init while the workload sets up and until its exec (end of file on a
            // pipe the workload holds close-on-exec).
            let sfd = init::signals();
            let (Ok((ready_r, ready_w)), Ok((go_r, go_w))) = (raw::pipe(), raw::pipe()) else {
                fail(&ch, Stage::ForkWorkload, "pipe")
            };
            let (ready_r, ready_w) = (ready_r.into_raw_fd(), ready_w.into_raw_fd());
            let (go_r, go_w) = (go_r.into_raw_fd(), go_w.into_raw_fd());
            // (The workload also holds `ready_w`, close-on-exec, never written.)
            let hs = Handshake { go: go_r };
            let keep = [ch.raw(), sfd.as_raw_fd(), ready_r, go_w];
            let seccomp = &plan.init_seccomp_bpf;
            let workload = start_workload(
                full_fork,
                || {
                    child_exec(
                        plan,
                        &ch,
                        switched,
                        tty_slave,
                        caller_umask,
                        sync.as_ref(),
                        Some(hs),
                    )
                },
                || {
                    // SAFETY: our copies of the workload's ends (it has its own).
                    unsafe {
                        libc::close(ready_w);
                        libc::close(go_r);
                    }
                    // The workload learns whether init is hardened with its go (and refuses
                    // to run, or reports what is missing, as the mode says).
                    let go = match init::harden(&keep, bounding_left, seccomp) {
                        Ok(()) => init::HARDENED,
                        Err(step) => init::HARDEN_FAILED.saturating_add(step as u8),
                    };
                    let _ = raw::send_byte(go_w, go);
                    if !full_fork {
                        // The workload sets up in our memory: wait until its exec or exit
                        // (end of file; nothing is ever written).
                        // SAFETY: ours until closed below.
                        let r = unsafe { BorrowedFd::borrow_raw(ready_r) };
                        while raw::read(r, &mut [0u8; 1]).is_ok_and(|n| n > 0) {}
                    }
                    // SAFETY: ours, no longer needed.
                    unsafe {
                        libc::close(go_w);
                        libc::close(ready_r);
                    }
                },
            );
            match workload {
                Ok(workload) => {
                    // Init no longer holds the workload's end of `sync` (its closing means
                    // "exec'd"): harden's close_range took it. Forgotten, not closed twice.
                    std::mem::forget(sync);
                    init::run(workload, ch, sfd)
                }
                Err(e) => fail(&ch, Stage::ForkWorkload, &e.to_string()),
            }
        }
        Err(f) => fail_with(&ch, f),
    }
}

fn fail(ch: &Channel, stage: Stage, error: &str) -> ! {
    fail_with(ch, StartFailure::new(stage, error))
}

/// Report the failure, and end with its exit code.
pub(crate) fn fail_with(ch: &Channel, f: StartFailure) -> ! {
    let code = f.exit_code();
    let _ = ch.send(&FromChild::Failed(f), &[]);
    raw::exit_now(i32::from(code))
}

/// The runtime's twin of the plan's degrade-or-refuse rule (nucleus-spec `enforce`): a
/// protection the workload would go without fails the start at `stage` in strict modes
/// (`refuse`), and is recorded in the report in agent mode.
fn degrade_or_fail(
    ch: &Channel,
    report: &mut SecurityReport,
    refuse: bool,
    stage: Stage,
    refusal: &str,
    degraded: String,
) {
    if refuse {
        fail(ch, stage, refusal);
    }
    report.degraded.push(degraded);
}

type StageResult<T> = std::result::Result<T, StartFailure>;

fn stage<T>(stage: Stage, r: Result<T>) -> StageResult<T> {
    r.map_err(|e| StartFailure::new(stage, e.to_string()))
}

/// Start the workload: a fork, or (unless `full_fork`) a child that shares init's memory until
/// its exec: no fork copy, no copy-on-write faults ([`raw::spawn_shared`]).
/// `meanwhile` runs in init after the clone (see `child_main`'s handshake).
fn start_workload(
    full_fork: bool,
    exec: impl FnOnce() -> std::convert::Infallible,
    meanwhile: impl FnOnce(),
) -> io::Result<libc::pid_t> {
    if full_fork {
        // SAFETY: still single-threaded in the new pid namespace.
        return match unsafe { raw::fork() }? {
            #[allow(unreachable_code)]
            None => match exec() {},
            Some(w) => {
                meanwhile();
                Ok(w)
            }
        };
    }
    // SAFETY: single-threaded; `exec` (child_exec) ends in exec or _exit and takes no lock init
    // holds; what it allocates stays with init's heap. `meanwhile` takes turns with it through
    // the handshake and returns after its exec or exit.
    unsafe { raw::spawn_shared(exec, meanwhile) }
}

/// The workload's end of the handshake with init: it starts by reading `go` (init is hardened
/// by then). Close-on-exec.
#[derive(Clone, Copy)]
struct Handshake {
    go: libc::c_int,
}

/// The thread making the sandbox's network namespace, and the pid namespace's `ns_last_pid`.
struct NetThread {
    handle: std::thread::JoinHandle<io::Result<OwnedFd>>,
    /// None where the kernel has no ns_last_pid or /proc/sys is read-only: the workload is
    /// then pid 3.
    last_pid: Option<fs::File>,
}

/// A thread that makes the sandbox's network namespace (see [`net_in_thread`]) with its
/// loopback up, and returns it as an fd.
fn spawn_netns() -> io::Result<NetThread> {
    // Opened now: the main thread may switch to the staging root before the thread looks up
    // its namespace file. ns_last_pid is per pid namespace (the opener's).
    let proc = fs::File::open("/proc")?;
    let last_pid = fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/kernel/ns_last_pid")
        .ok();
    let handle = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            // SAFETY: unshare with a flag only; it changes this thread's namespace alone.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            net::loopback_up().map_err(io::Error::other)?;
            raw::open_at(proc.as_fd(), "thread-self/ns/net")
        })?;
    Ok(NetThread { handle, last_pid })
}

/// Enter the namespace the network thread made (once; no-op without one).
fn join_netns(t: &mut Option<io::Result<NetThread>>) -> StageResult<()> {
    use std::io::Write;
    let Some(t) = t.take() else { return Ok(()) };
    let err = |e: io::Error| StartFailure::new(Stage::NetworkNamespace, e.to_string());
    let mut t = t.map_err(err)?;
    let fd = t
        .handle
        .join()
        .map_err(|_| io::Error::other("network thread panicked"))
        .and_then(|r| r)
        .map_err(err)?;
    raw::setns(fd.as_fd(), libc::CLONE_NEWNET).map_err(err)?;
    // The thread took pid 2 of the sandbox's pid namespace: the workload is pid 2 all the
    // same (the next pid after ns_last_pid; the thread's is free once it has exited).
    if let Some(f) = &mut t.last_pid {
        let _ = f.write_all(b"1");
    }
    Ok(())
}

/// What "go" said beyond the mounts.
#[derive(Clone, Copy)]
struct GoFlags {
    sync: bool,
    hold: bool,
}

fn child_setup(
    plan: &Plan,
    ch: &Channel,
    join_files: &[fs::File],
    etc_view: Option<OwnedFd>,
    cgroup_view: Option<mount::CgroupView>,
) -> StageResult<(Switched, Option<OwnedFd>, GoFlags)> {
    // cgroup v1: into the sandbox's cgroups first, while the runtime writes our id maps; nothing
    // of the sandbox runs (or is charged) outside them. Reported once there is a Go to answer.
    let joined = cgroup::join_self(join_files);
    // --cpus N: on N of the CPUs we may use (best effort: the quota holds either way).
    if let Some(n) = plan.process.cpu_count {
        if let Ok(allowed) = raw::cpu_affinity(0) {
            let seed = nucleus_spec::host::fnv1a(plan.id.bytes());
            let _ = raw::set_cpu_affinity(&nucleus_spec::plan::pick_cpus(&allowed, n, seed));
        }
    }
    // The runtime's own marks came with the fork: they are its to report.
    drop(trace::take());
    trace::mark_as("sandbox", "cgroup joined");
    let mut net_thread = if net_in_thread(plan) {
        Some(spawn_netns())
    } else {
        None
    };
    let (idmapped, trees, go, assigned) = match ch.recv::<ToChild>() {
        Ok(Some((
            ToChild::Go {
                idmapped,
                prepared,
                sync,
                hold,
                net,
            },
            mut fds,
        ))) if fds.len() == idmapped + prepared => {
            let trees: Vec<Option<OwnedFd>> =
                fds.split_off(idmapped).into_iter().map(Some).collect();
            (VecDeque::from(fds), trees, GoFlags { sync, hold }, net)
        }
        // The runtime is gone or broken: nothing to report to.
        _ => raw::exit_now(1),
    };
    trace::mark_as("sandbox", "go received");
    joined.map_err(|e| StartFailure::new(Stage::JoinCgroup, e.to_string()))?;
    // Our credentials still carry the host ids, unmapped in the new namespace: become its root
    // (we hold CAP_SETUID/CAP_SETGID there). This task only: the network thread keeps its
    // ids, and libc's calls would wait for it to take the change, i.e. for its namespace.
    stage(Stage::UserNamespace, security::set_identity(0, 0, None))?;
    // Changing credentials made us non-dumpable, which turns our /proc/self files root-owned
    // (unwritable, e.g. timens_offsets). Init makes itself non-dumpable again before it waits.
    stage(
        Stage::Dumpable,
        raw::prctl(libc::PR_SET_DUMPABLE, 1).ctx("prctl", "PR_SET_DUMPABLE"),
    )?;
    // Die with the runtime. Set only now: the kernel clears the parent-death signal whenever
    // credentials change, as the setresuid above just did. If the runtime already died in
    // between, its end of the channel is closed: leave at once.
    stage(
        Stage::ParentDeathSignal,
        raw::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
            .ctx("prctl", "PDEATHSIG"),
    )?;
    if raw::poll_read(&[ch.raw()], 0)
        .map(|r| r[0] & libc::POLLHUP != 0)
        .unwrap_or(true)
    {
        raw::exit_now(1);
    }
    if let Some(secs) = plan.namespaces.time_offset_secs {
        // Before /proc is replaced by the sandbox's read-only one. Only children enter the new
        // time namespace, and the workload is forked later.
        // SAFETY: unshare with a flag only.
        if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
            return Err(StartFailure::new(
                Stage::TimeNamespace,
                io::Error::last_os_error().to_string(),
            ));
        }
        let offsets = format!("monotonic {secs} 0\nboottime {secs} 0\n");
        stage(
            Stage::TimeNamespace,
            fs::write("/proc/self/timens_offsets", offsets).ctx("write", "timens_offsets"),
        )?;
    }
    if plan.namespaces.uts {
        let h = CString::new(plan.hostname.as_bytes())
            .map_err(|_| StartFailure::new(Stage::Hostname, "NUL in hostname".to_string()))?;
        // SAFETY: h is a valid buffer of the given length.
        if unsafe { libc::sethostname(h.as_ptr(), plan.hostname.len()) } != 0 {
            return Err(StartFailure::new(
                Stage::Hostname,
                io::Error::last_os_error().to_string(),
            ));
        }
    }
    if plan.namespaces.net && net_thread.is_none() {
        stage(Stage::Network, net::loopback_up())?;
    }
    if let Some(a) = &assigned {
        stage(Stage::Network, net::configure_sandbox(a))?;
    }
    if let Some(e) = &plan.net.egress {
        stage(Stage::EgressPolicy, net::install_egress(e))?;
    }
    if plan.net.egress.is_some() || plan.net.resolver.is_some() {
        let w = stage(
            Stage::EgressPolicy,
            netwatch::WatchSockets::open(plan.net.resolver.is_some(), plan.net.egress.is_some()),
        )?;
        stage(
            Stage::EgressPolicy,
            ch.send(
                &FromChild::NetWatch {
                    resolver: w.resolver.is_some(),
                    log: w.log.is_some(),
                },
                &w.fds(),
            )
            .ctx("send", "egress sockets"),
        )?;
    }
    trace::mark_as("sandbox", "hostname, network");
    stage(Stage::Mounts, mount::stage())?;
    stage(Stage::Mounts, mount::make_root(&plan.root))?;
    let mut prep = Prepared {
        cgroup: cgroup_view,
        idmapped,
        trees,
        etc_view,
        readonly_trees: Vec::new(),
    };
    for op in &plan.mounts {
        if matches!(op, MountOp::Sysfs { .. }) {
            // A new sysfs shows the mounter's network namespace: be in ours first.
            join_netns(&mut net_thread)?;
        }
        stage(Stage::Mounts, mount::apply(op, &mut prep))?;
    }
    join_netns(&mut net_thread)?;
    trace::mark_as("sandbox", "mounts");
    let switched = stage(
        Stage::SwitchRoot,
        mount::switch_root(plan.allow_chroot_fallback),
    )?;
    trace::mark_as("sandbox", "root switched");
    // The terminal comes from the sandbox's own devpts, so ttyname() works inside; the master
    // goes to the runtime (as with an OCI console socket).
    let slave = if plan.process.tty {
        let pty = stage(Stage::Tty, tty::open_in_sandbox())?;
        stage(
            Stage::Tty,
            ch.send(&FromChild::Pty, &[pty.master.as_fd()])
                .ctx("send", "pty master"),
        )?;
        Some(pty.slave)
    } else {
        None
    };
    // (On v2 the clone itself made the cgroup namespace, inside the cgroup.)
    if !join_files.is_empty() && plan.namespaces.cgroup {
        // SAFETY: unshare with a flag only; we are now in our cgroup (we joined it above).
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
            return Err(StartFailure::new(
                Stage::CgroupNamespace,
                io::Error::last_os_error().to_string(),
            ));
        }
    }
    trace::mark_as("sandbox", "tty, cgroup namespace");
    Ok((switched, slave, go))
}

/// The workload's last steps (also those of a process `nucleus exec` starts in a sandbox):
/// rlimits, session and tty, capabilities, identity, cwd, no_new_privs, Landlock, seccomp,
/// report, exec.
pub(crate) fn workload_exec(
    plan: &Plan,
    ch: &Channel,
    switched: Switched,
    tty_slave: Option<i32>,
    umask: libc::mode_t,
) -> ! {
    child_exec(plan, ch, switched, tty_slave, umask, None, None)
}

fn child_exec(
    plan: &Plan,
    ch: &Channel,
    switched: Switched,
    tty_slave: Option<i32>,
    umask: libc::mode_t,
    sync: Option<&(Channel, bool)>,
    init: Option<Handshake>,
) -> ! {
    // Under our init: nothing before `go` (init hardens meanwhile, in the same memory; end of
    // file: init is gone, and so is the sandbox). Signals are blocked here: no EINTR.
    let mut init_failed = None;
    if let Some(hs) = init {
        // SAFETY: the workload's end of the pipe, open until its exec.
        let go = unsafe { BorrowedFd::borrow_raw(hs.go) };
        let mut b = [0u8; 1];
        if !matches!(raw::read(go, &mut b), Ok(1)) {
            raw::exit_now(1);
        }
        if b[0] != init::HARDENED {
            let step = usize::from(b[0].saturating_sub(init::HARDEN_FAILED));
            init_failed = Some(
                init::HARDEN_STEPS
                    .get(step)
                    .copied()
                    .unwrap_or("unknown step"),
            );
        }
    }
    // `nucleus exec` (no init of ours) ends with its runtime.
    let die_with_parent = init.is_none();
    let p = &plan.process;
    trace::mark_as("workload", "forked");
    raw::reset_signals();
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(umask) };
    // SAFETY: setsid has no arguments; the workload leads its own session.
    unsafe { libc::setsid() };
    if let Some(s) = tty_slave {
        if let Err(e) = tty::become_controlling(s) {
            fail(ch, Stage::Tty, &e.to_string());
        }
    }
    let refuse = plan.on_security_failure == OnFailure::Refuse;
    let mut report = SecurityReport {
        landlock_abi: crate::probe::landlock_abi(),
        ..Default::default()
    };
    if let Some(step) = init_failed {
        let what = format!("the sandbox's init could not harden itself ({step})");
        let refusal = format!("{what}; strict modes refuse to start");
        degrade_or_fail(ch, &mut report, refuse, Stage::Init, &refusal, what);
    }
    report.root_switch = match switched {
        Switched::PivotRoot => RootSwitch::PivotRoot,
        Switched::Chroot(e) => {
            report
                .degraded
                .push(format!("pivot_root failed ({e}); chroot used instead"));
            RootSwitch::Chroot
        }
    };
    if let Err(e) = security::set_rlimits(&p.rlimits) {
        fail(ch, Stage::Rlimits, &e.to_string());
    }
    let keep = p.caps.clone().unwrap_or_default();
    // Under our init the bounding set is already the workload's plus init's CAP_KILL.
    let dropped = match init {
        Some(_) => security::drop_bounding(init::KEPT_CAPS & !keep.bounding),
        None => security::drop_bounding_except(keep.bounding),
    };
    if let Err(e) = dropped {
        fail(ch, Stage::Capabilities, &e.to_string());
    }
    if keep.permitted != 0 {
        if let Err(e) = security::keep_caps() {
            fail(ch, Stage::Capabilities, &e.to_string());
        }
    }
    // An unprivileged caller's user namespace has setgroups denied (the kernel requires it for
    // such a gid map, and the plan allows no extra groups there): its groups stay.
    let groups = match plan.idmap {
        IdMapPlan::Caller { .. } => None,
        IdMapPlan::PrivateRange { .. } => Some(&p.additional_gids[..]),
    };
    if let Err(e) = security::set_identity(p.uid, p.gid, groups) {
        fail(ch, Stage::Identity, &e.to_string());
    }
    if let Err(e) = security::set_capabilities(keep.effective, keep.permitted, keep.inheritable)
        .and_then(|()| security::raise_ambient(keep.ambient))
    {
        fail(ch, Stage::Capabilities, &e.to_string());
    }
    report.capabilities_dropped = true;
    report.capabilities_kept = nucleus_spec::policy::CapSets::names(keep.bounding)
        .into_iter()
        .map(String::from)
        .collect();
    if let Err(e) = std::env::set_current_dir(&p.cwd) {
        fail(ch, Stage::Workdir, &format!("{}: {e}", p.cwd.display()));
    }
    if let Err(e) = security::set_no_new_privs() {
        fail(ch, Stage::NoNewPrivs, &e.to_string());
    }
    report.no_new_privs = true;
    if die_with_parent {
        // A process `nucleus exec` started ends with it (a health check killed at its timeout,
        // an exec whose runtime was killed): nobody else would reap or report it. Set after
        // the last credential change, which clears it.
        let _ = raw::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    }
    trace::mark_as("workload", "session, rlimits, capabilities, identity");
    match security::apply_landlock(&plan.landlock) {
        Ok(o) if o.status != LandlockStatus::NotEnforced => report.landlock = o.status,
        Ok(o) => {
            report.landlock = o.status;
            degrade_or_fail(
                ch,
                &mut report,
                refuse,
                Stage::Landlock,
                "Landlock is not available on this kernel (strict mode refuses to start)",
                "landlock: not available on this kernel".into(),
            );
        }
        // A policy's `missing = "error"` holds in every mode.
        Err(e) => {
            report.landlock = LandlockStatus::NotEnforced;
            let what = format!("landlock: {}", e.msg);
            degrade_or_fail(
                ch,
                &mut report,
                refuse || e.required,
                Stage::Landlock,
                &e.msg,
                what,
            );
        }
    }
    // Nothing nucleus inherited (an --events-fd, a --config-fd, the caller's descriptors)
    // reaches the workload: close-on-exec for all but stdio, now, while every syscall still
    // works (a profile may deny close_range).
    if let Err(e) = security::cloexec_from(3) {
        fail(ch, Stage::Descriptors, &e.to_string());
    }
    let installed = if plan.seccomp_notify.is_some() {
        // The runtime serves this filter's notifications: announce where the listener will be.
        match notify::next_fd() {
            Ok(n) if ch.send(&FromChild::Listener(n), &[]).is_ok() => {
                match security::install_seccomp_listener(&plan.seccomp_bpf, plan.seccomp_flags) {
                    Ok(l) => {
                        // Wait until the runtime holds its copy (it takes it with pidfd_getfd;
                        // a notified recv is served once it does). Ours closes at exec.
                        let _ = ch.recv::<channel::ListenerTaken>();
                        drop(l);
                        Ok(())
                    }
                    Err(e) => {
                        // No filter, so this message is not notified: stop the runtime waiting.
                        let _ = ch.send(&FromChild::Listener(-1), &[]);
                        Err(e)
                    }
                }
            }
            Ok(_) => Err(io::Error::from_raw_os_error(libc::EPIPE)),
            Err(e) => Err(e),
        }
    } else {
        match security::install_seccomp(&plan.seccomp_bpf, plan.seccomp_flags) {
            // A kernel without an optional flag (LOG, SPEC_ALLOW): the filter without them.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && plan.seccomp_flags != 0 => {
                report.degraded.push(format!(
                    "seccomp: this kernel refuses the profile's flags {:#x} ({e}); the filter is installed without them",
                    plan.seccomp_flags
                ));
                security::install_seccomp(&plan.seccomp_bpf, 0)
            }
            r => r,
        }
    };
    match installed {
        Ok(()) => report.seccomp = SeccompStatus::Enforced,
        Err(e) => {
            if refuse {
                fail(ch, Stage::Seccomp, &e.to_string());
            }
            report.seccomp = SeccompStatus::NotApplied;
            report.degraded.push(format!("seccomp: {e}"));
        }
    }
    if trace::enabled() {
        trace::mark_as("workload", "landlock, seccomp");
        let _ = ch.send(&FromChild::Timings(trace::take()), &[]);
    }
    let _ = ch.send(&FromChild::Applied(report), &[]);
    if let Some((s, true)) = sync {
        // `create`: fully set up; exec only when the runtime says start. Its end closing
        // first means the sandbox is being removed.
        match s.recv::<String>() {
            Ok(Some((m, _))) if m == START => {}
            _ => raw::exit_now(0),
        }
    }
    exec(ch, &p.argv, &p.env)
}

fn exec(ch: &Channel, argv: &[String], env: &[(String, String)]) -> ! {
    let cargs: Vec<CString> = match argv.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => fail(ch, Stage::Exec, "argument contains a NUL byte"),
    };
    let cenv: Vec<CString> = env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let mut argp: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let prog = &argv[0];
    let candidates: Vec<PathBuf> = if prog.contains('/') {
        vec![PathBuf::from(prog)]
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(prog))
            .collect()
    };
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    let mut saw_eacces = false;
    for c in candidates {
        let Ok(cpath) = CString::new(c.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: argp/envp are NULL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(cpath.as_ptr(), argp.as_ptr(), envp.as_ptr()) };
        last = io::Error::last_os_error();
        if last.raw_os_error() == Some(libc::EACCES) {
            saw_eacces = true;
        }
    }
    if saw_eacces {
        fail(ch, Stage::Exec, &format!("{prog}: permission denied"))
    } else if last.raw_os_error() == Some(libc::ENOENT) {
        fail_with(
            ch,
            StartFailure::not_found(format!("{prog}: command not found")),
        )
    } else {
        fail(ch, Stage::Exec, &format!("{prog}: {last}"))
    }
}
