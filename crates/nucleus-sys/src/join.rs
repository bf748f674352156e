//! `nucleus exec`: run another process in a running sandbox, under the same protections as
//! its workload.
//!
//! The caller (outside) moves only its *children's* pid namespace into the sandbox's, then
//! forks; so it stays the new process's parent (it waits, relays signals, proxies the tty)
//! without entering the sandbox or its cgroup itself. The child:
//! 1. joins the sandbox's cgroups (writes itself to each `cgroup.procs`, through host paths,
//!    so first);
//! 2. joins the user, mount, uts, ipc, net and cgroup namespaces of the sandbox's workload at
//!    once (setns on its pidfd), and its time namespace;
//! 3. becomes root of that user namespace, then takes the workload's own path: rlimits,
//!    session and tty, capabilities, uid/gids, cwd, no_new_privs, Landlock, seccomp, exec.

use crate::channel::{self, ConsoleSocket, FromChild, Stage, StartFailure, ToChild};
use crate::error::{Context, Result};
use crate::init;
use crate::mount::Switched;
use crate::raw::{self, Forked};
use crate::sandbox::{self, Observer, Outcome};
use crate::tty;
use nucleus_spec::plan::{IdMapPlan, Plan};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// Run `plan.process` (the exec'd command, its env, cwd and tty) in the sandbox of the process
/// behind `init_pidfd` (the sandbox's workload: it is in every namespace, time included).
/// Single-threaded callers only (it forks).
/// `contained` (nucleus's own exec): the process runs under an init of its own, PID 1 of a
/// pid namespace nested in the sandbox's, which dies with the caller; when it ends, or is
/// killed, nothing the process started outlives it. Without (OCI exec): it is a process of
/// the container's pid namespace itself, as runc's.
/// `capture`: the process's stdout and stderr go there (capped), not to the caller's.
pub fn exec(
    plan: &Plan,
    init_pid: libc::pid_t,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    obs: &mut dyn Observer,
    (contained, capture): (bool, Option<crate::relay::Capture>),
) -> Result<Outcome> {
    let how = if contained {
        How::Contained
    } else {
        How::Waited
    };
    let r = sandbox::with_signals_blocked(|| {
        parent(plan, init_pid, init_pidfd, cgroups, obs, how, capture)
    })?;
    match r {
        Exec::Waited(o) => Ok(*o),
        Exec::Started(..) => Err(crate::error::other("exec", "started detached")),
    }
}

/// OCI `exec --detach`: the process is started with the caller's stdio as it is (its
/// terminal's master to `console`), and left to the caller's supervisor once it is set up.
/// Its pid, or its failure.
pub fn exec_detached(
    plan: &Plan,
    init_pid: libc::pid_t,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    console: Option<&ConsoleSocket>,
) -> std::result::Result<libc::pid_t, sandbox::CreateError> {
    start(plan, init_pid, init_pidfd, cgroups, How::Detached(console))
}

/// `nucleus exec -d`: the process starts contained (as [`exec`]'s) but outlives the caller,
/// its standard descriptors /dev/null; returns once it is set up (just before its exec).
pub fn exec_in_background(
    plan: &Plan,
    init_pid: libc::pid_t,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
) -> std::result::Result<libc::pid_t, sandbox::CreateError> {
    start(plan, init_pid, init_pidfd, cgroups, How::Background)
}

/// A process started and left running (`how`: detached or in the background).
fn start(
    plan: &Plan,
    init_pid: libc::pid_t,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    how: How<'_>,
) -> std::result::Result<libc::pid_t, sandbox::CreateError> {
    let mut obs = sandbox::NoObserver;
    let r = sandbox::with_signals_blocked(|| {
        parent(plan, init_pid, init_pidfd, cgroups, &mut obs, how, None)
    })?;
    match r {
        Exec::Started(pid, Ok(())) => Ok(pid),
        Exec::Started(_, Err(e)) => Err(e),
        Exec::Waited(_) => Err(crate::error::other("exec", "not detached").into()),
    }
}

enum Exec {
    Waited(Box<Outcome>),
    Started(libc::pid_t, std::result::Result<(), sandbox::CreateError>),
}

/// How the process runs and who waits for it.
#[derive(Clone, Copy)]
enum How<'a> {
    /// A process of the sandbox's pid namespace, waited for (OCI exec).
    Waited,
    /// Under an init of its own in a nested pid namespace, waited for (`nucleus exec`).
    Contained,
    /// OCI `exec --detach`: started, with its terminal's master to the console socket.
    Detached(Option<&'a ConsoleSocket>),
    /// `nucleus exec -d`: contained, started, left running.
    Background,
}

fn parent(
    plan: &Plan,
    init_pid: libc::pid_t,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    obs: &mut dyn Observer,
    how: How<'_>,
    capture: Option<crate::relay::Capture>,
) -> Result<Exec> {
    let detached = match how {
        How::Detached(c) => Some(c),
        How::Background => Some(None),
        _ => None,
    };
    let sfd = raw::signalfd(init::FORWARDED).ctx("signalfd", "")?;
    let time_ns = if plan.namespaces.has_time() {
        Some(
            fs::File::open(format!("/proc/{init_pid}/ns/time"))
                .ctx("open", "the sandbox's time namespace")?,
        )
    } else {
        None
    };
    // Moving children into the sandbox's pid namespace needs CAP_SYS_ADMIN over it: root has
    // it from outside; an unprivileged caller (whose nucleus made the user namespace) gets it by
    // joining the user namespace in the same call, which then also holds this process (root
    // stays outside: its child writes the host's cgroup files before it joins).
    let unprivileged = matches!(plan.idmap, IdMapPlan::Caller { .. });
    let user_joined = plan.namespaces.pid && plan.namespaces.user && unprivileged;
    if plan.namespaces.pid {
        let flags = if user_joined {
            libc::CLONE_NEWUSER | libc::CLONE_NEWPID
        } else {
            libc::CLONE_NEWPID
        };
        raw::setns(init_pidfd, flags).ctx("join", "pid namespace")?;
    }
    let contained = matches!(how, How::Contained | How::Background) && plan.namespaces.pid;
    let background = matches!(how, How::Background);
    // --cpus: the exec'd command runs on the sandbox's CPUs, as its workload does.
    if plan.process.cpu_count.is_some() {
        if let Ok(cpus) = raw::cpu_affinity(init_pid) {
            let _ = raw::set_cpu_affinity(&cpus);
        }
    }
    let (pch, cch) = channel::pair::<ToChild, FromChild>()?;
    // Without --tty the caller's terminals are relayed through pipes, never handed over: a
    // process the exec leaves behind must hold nothing of the caller's.
    let stdio = if plan.process.tty || detached.is_some() {
        crate::relay::Stdio::default()
    } else if let Some(c) = capture {
        crate::relay::Stdio::capturing(c).ctx("pipe", "standard descriptors")?
    } else {
        crate::relay::Stdio::for_terminals().ctx("pipe", "standard descriptors")?
    };
    #[allow(unsafe_code)] // raw::fork_into: the caller must be single-threaded.
    // SAFETY: single-threaded caller (documented on `exec`).
    let forked = unsafe { raw::fork_into(0, None) }.ctx("fork", "exec process")?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(pch);
            if stdio.install().is_err() {
                raw::exit_now(126);
            }
            drop(stdio);
            if let Err((stage, e)) =
                child_join(plan, init_pidfd, time_ns.as_ref(), cgroups, user_joined)
            {
                sandbox::fail_with(&cch, StartFailure::new(stage, e.to_string()));
            }
            let slave = if plan.process.tty {
                match tty::open_in_sandbox() {
                    Ok(pty) => {
                        if cch.send(FromChild::Pty(pty.master.into())).is_err() {
                            raw::exit_now(126);
                        }
                        Some(pty.slave)
                    }
                    Err(e) => {
                        sandbox::fail_with(&cch, StartFailure::new(Stage::Tty, e.to_string()))
                    }
                }
            } else {
                None
            };
            // Read and put back (umask cannot fail).
            let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022)).bits();
            let tty_slave = slave.as_ref().map(|s| s.as_fd());
            if contained {
                contained_exec(plan, &cch, tty_slave, umask, !background)
            }
            sandbox::workload_exec(plan, &cch, Switched::PivotRoot, tty_slave, umask)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(cch);
    if let Some(console) = detached {
        let r = sandbox::await_applied(&pch, pid, &console.into(), plan).map(drop);
        if r.is_err() {
            let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = raw::waitpid(pid, false);
        }
        return Ok(Exec::Started(pid, r));
    }
    let mut relay = crate::relay::Relay::default();
    if !stdio.is_empty() {
        stdio
            .into_relay(&mut relay)
            .ctx("relay", "standard descriptors")?;
    }
    obs.started(pid, cgroups);
    sandbox::wait(plan, pid, &pidfd, &pch, &sfd, obs, relay).map(|o| Exec::Waited(Box::new(o)))
}

/// The process the caller forked, in the sandbox's pid namespace: it makes a pid namespace
/// under it whose PID 1 is the exec's init (and the exec'd process its workload), passes the
/// caller's signals on to that init, and ends with it. Each dies with its parent (the caller
/// gone: this process, then the init, then everything in the nested namespace).
fn contained_exec(
    plan: &Plan,
    cch: &crate::channel::Sandbox,
    tty_slave: Option<BorrowedFd<'_>>,
    umask: libc::mode_t,
    with_caller: bool,
) -> ! {
    // (Set only now: the kernel cleared it when our credentials changed.)
    if with_caller && raw::die_with_parent().is_err() {
        raw::exit_now(126);
    }
    if !with_caller {
        // In the background: nothing of the caller's.
        let null = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null");
        let ok = null.is_ok_and(|n| {
            rustix::stdio::dup2_stdin(&n).is_ok()
                && rustix::stdio::dup2_stdout(&n).is_ok()
                && rustix::stdio::dup2_stderr(&n).is_ok()
        });
        if !ok {
            sandbox::fail_with(
                cch,
                StartFailure::new(Stage::Start, "/dev/null".to_string()),
            );
        }
    }
    // Only a member of a pid namespace can make one under it.
    if let Err(e) = raw::unshare(libc::CLONE_NEWPID) {
        sandbox::fail_with(cch, StartFailure::new(Stage::JoinNamespaces, e.to_string()));
    }
    let sfd = crate::init::signals();
    #[allow(unsafe_code)]
    // raw::fork: single-threaded (a forked child of a single-threaded caller).
    // SAFETY: this process is single-threaded.
    let init = match unsafe { raw::fork() } {
        Ok(None) => {
            if raw::die_with_parent().is_err() {
                raw::exit_now(126);
            }
            sandbox::workload_exec_under_init(plan, cch, tty_slave, umask)
        }
        Ok(Some(pid)) => pid,
        Err(e) => sandbox::fail_with(cch, StartFailure::new(Stage::ForkWorkload, e.to_string())),
    };
    // This process stays in the sandbox (root of its user namespace) while the command runs:
    // it gives up what the sandbox's init gives up (capabilities but CAP_KILL, file access,
    // every syscall but a few, its descriptors but the signals').
    let _ = crate::init::harden(
        &[sfd.as_raw_fd()],
        crate::init::KEPT_CAPS,
        &plan.init_seccomp_bpf,
    );
    loop {
        let Ok(sig) = raw::read_signal(sfd.as_fd()) else {
            raw::exit_now(1)
        };
        if sig != libc::SIGCHLD {
            let _ = raw::kill(init, sig);
            continue;
        }
        // The init reported the exec'd process's status itself.
        while let Ok(Some((pid, _))) = raw::waitpid(-1, true) {
            if pid == init {
                raw::exit_now(0);
            }
        }
    }
}

fn child_join(
    plan: &Plan,
    init_pidfd: BorrowedFd<'_>,
    time_ns: Option<&fs::File>,
    cgroups: &[PathBuf],
    user_joined: bool,
) -> std::result::Result<(), (Stage, io::Error)> {
    // OCI execCPUAffinity.initial: the CPUs it runs on until it is in the container's cgroup.
    if let Some(cpus) = &plan.process.tuning.cpus_initial {
        raw::set_cpu_affinity(cpus).map_err(|e| (Stage::JoinCgroup, e))?;
    }
    for c in cgroups {
        crate::cgroup::join_self_at(c).map_err(|e| (Stage::JoinCgroup, e))?;
    }
    // All but pid (the caller moved its children's) at once, and user if already joined.
    // Its new namespaces, and those it joined by path (an OCI container's network namespace
    // from CNI): the process is in all of them.
    let mut flags = sandbox::ns_flags(plan, false) & !(libc::CLONE_NEWPID as u64);
    for j in &plan.namespaces.join {
        if j.kind != nucleus_spec::plan::NsKind::Pid {
            flags |= sandbox::ns_flag(j.kind) as u64;
        }
    }
    if user_joined {
        flags &= !(libc::CLONE_NEWUSER as u64);
    }
    raw::setns(init_pidfd, flags as libc::c_int).map_err(|e| (Stage::JoinNamespaces, e))?;
    if let Some(t) = time_ns {
        raw::setns(t.as_fd(), libc::CLONE_NEWTIME).map_err(|e| (Stage::JoinTimeNamespace, e))?;
    }
    if plan.namespaces.user {
        // Joining the user namespace gave us CAP_SETUID/SETGID in it. The calling task's ids
        // (a forked child: single-threaded, so they are the process's, as libc's would set).
        use rustix::process::{Gid, Uid};
        rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT)
            .and_then(|()| rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT))
            .map_err(|e| (Stage::UserNamespace, io::Error::from(e)))?;
    }
    Ok(())
}

/// A process inside a sandbox running some of the runtime's own work ([`in_sandbox`]).
pub struct InSandbox {
    pid: libc::pid_t,
    err: OwnedFd,
}

impl InSandbox {
    /// Wait for it: its error, if its work failed.
    pub fn wait(self) -> Result<()> {
        use std::io::Read;
        let mut msg = String::new();
        let _ = fs::File::from(self.err).take(4096).read_to_string(&mut msg);
        let st = raw::waitpid(self.pid, false).ctx("wait", "copy process")?;
        match st {
            Some((_, raw::WaitStatus::Exited(0))) => Ok(()),
            _ if !msg.is_empty() => Err(crate::error::other("cp", msg.trim())),
            other => Err(crate::error::other(
                "cp",
                format!("the copy process ended: {other:?}"),
            )),
        }
    }
}

/// Run `work` in a process inside the sandbox of the process behind `init_pidfd`: in its
/// cgroups and every namespace but pid (its root its mount namespace's: the sandbox's), as
/// `uid`:`gid` there (0:0: its root, with only the capabilities root has in its user
/// namespace). Returns at once; [`InSandbox::wait`] for the end. Single-threaded callers.
pub fn in_sandbox(
    plan: &Plan,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    who: (u32, u32),
    work: impl FnOnce() -> io::Result<()>,
) -> Result<InSandbox> {
    in_sandbox_with(plan, init_pidfd, cgroups, who, false, work)
}

/// [`in_sandbox`] as the workload's user and group under the workload's Landlock rules (with
/// no_new_privs): what the workload's own commands could do with the files, no more (the
/// MCP server's file tools).
pub fn in_sandbox_as_workload(
    plan: &Plan,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    work: impl FnOnce() -> io::Result<()>,
) -> Result<InSandbox> {
    let who = (plan.process.uid, plan.process.gid);
    in_sandbox_with(plan, init_pidfd, cgroups, who, true, work)
}

fn in_sandbox_with(
    plan: &Plan,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    (uid, gid): (u32, u32),
    confine: bool,
    work: impl FnOnce() -> io::Result<()>,
) -> Result<InSandbox> {
    let (r, w) = raw::pipe().ctx("pipe", "copy process")?;
    #[allow(unsafe_code)] // raw::fork: the caller is single-threaded (documented).
    // SAFETY: single-threaded caller.
    let forked = unsafe { raw::fork() }.ctx("fork", "copy process")?;
    let Some(pid) = forked else {
        drop(r);
        let fail = |msg: String| -> ! {
            let _ = raw::write_all(w.as_fd(), msg.as_bytes());
            raw::exit_now(1)
        };
        if let Err((_, e)) = child_join(plan, init_pidfd, None, cgroups, false) {
            fail(format!("join the sandbox: {e}"))
        }
        if raw::die_with_parent().is_err() {
            raw::exit_now(1);
        }
        if (uid, gid) != (0, 0) {
            if let Err(e) = crate::security::set_identity(uid, gid, Some(&[])) {
                fail(e.to_string())
            }
        }
        if confine {
            if let Err(e) = crate::security::set_no_new_privs() {
                fail(e.to_string())
            }
            if let Some(Err(e)) = plan.landlock.as_ref().map(crate::security::apply_landlock) {
                fail(format!("landlock: {}", e.msg))
            }
        }
        match work() {
            Ok(()) => raw::exit_now(0),
            Err(e) => fail(e.to_string()),
        }
    };
    drop(w);
    Ok(InSandbox { pid, err: r })
}
