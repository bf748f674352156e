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
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

/// Run `plan.process` (the exec'd command, its env, cwd and tty) in the sandbox of the process
/// behind `init_pidfd` (the sandbox's workload: it is in every namespace, time included).
/// Single-threaded callers only (it forks).
pub fn exec(
    plan: &Plan,
    init_pid: libc::pid_t,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    let r =
        sandbox::with_signals_blocked(|| parent(plan, init_pid, init_pidfd, cgroups, obs, None))?;
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
    let mut obs = sandbox::NoObserver;
    let r = sandbox::with_signals_blocked(|| {
        parent(plan, init_pid, init_pidfd, cgroups, &mut obs, Some(console))
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

/// `detached`: Some(console) for OCI `exec --detach`.
fn parent(
    plan: &Plan,
    init_pid: libc::pid_t,
    init_pidfd: BorrowedFd<'_>,
    cgroups: &[PathBuf],
    obs: &mut dyn Observer,
    detached: Option<Option<&ConsoleSocket>>,
) -> Result<Exec> {
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
