//! An OCI container's start (`nucleus create --bundle`): the runtime sets the sandbox up as
//! for `nucleus run` and leaves; the container's process (the sandbox's PID 1, no init of
//! ours) waits for `start` on the exec fifo, and the caller's subreaper (conmon,
//! containerd's shim) inherits it.

use super::child::child_main;
use super::parent::{parent_cgroup, parent_write_maps};
use super::{ns_flags, NoObserver};
use crate::channel::{
    self, ConsoleSocket, FromChild, Runtime, SecurityReport, StartFailure, ToChild,
};
use crate::error::{other, Context, Result};
use crate::raw::{self, Forked};
use crate::trace;
use nucleus_spec::mounts::MountOp;
use nucleus_spec::plan::{NsKind, Plan, SeccompNotify, Supervisor};
use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A created container.
#[derive(Debug)]
pub struct Created {
    /// Its process, as the host sees it.
    pub pid: libc::pid_t,
    /// Its cgroup directories (left in place: `delete` removes them).
    pub cgroups: Vec<PathBuf>,
    pub report: SecurityReport,
    /// Its terminal's master, when kept ([`Console::Keep`]).
    pub master: Option<OwnedFd>,
}

/// Where a container's terminal (process.terminal) goes.
pub enum Console<'a> {
    /// Nowhere: it has none.
    None,
    /// Its master over the caller's `--console-socket`.
    Socket(&'a ConsoleSocket),
    /// Kept by the runtime, which relays it (`run` in the foreground).
    Keep,
}

impl<'a> From<Option<&'a ConsoleSocket>> for Console<'a> {
    fn from(c: Option<&'a ConsoleSocket>) -> Self {
        c.map_or(Console::None, Console::Socket)
    }
}

/// Why a create failed: nucleus's own error, or the container's report.
#[derive(Debug)]
pub enum CreateError {
    Runtime(crate::error::SysError),
    Failed(StartFailure),
}

impl From<crate::error::SysError> for CreateError {
    fn from(e: crate::error::SysError) -> Self {
        CreateError::Runtime(e)
    }
}

/// The CLONE_NEW* flag of a kind of namespace.
pub(crate) fn ns_flag(kind: NsKind) -> libc::c_int {
    match kind {
        NsKind::User => libc::CLONE_NEWUSER,
        NsKind::Pid => libc::CLONE_NEWPID,
        NsKind::Mount => libc::CLONE_NEWNS,
        NsKind::Net => libc::CLONE_NEWNET,
        NsKind::Uts => libc::CLONE_NEWUTS,
        NsKind::Ipc => libc::CLONE_NEWIPC,
        NsKind::Cgroup => libc::CLONE_NEWCGROUP,
        NsKind::Time => libc::CLONE_NEWTIME,
    }
}

/// The /proc/PID/ns file of a kind of namespace.
fn ns_file(kind: NsKind) -> &'static str {
    match kind {
        NsKind::User => "user",
        NsKind::Pid => "pid",
        NsKind::Mount => "mnt",
        NsKind::Net => "net",
        NsKind::Uts => "uts",
        NsKind::Ipc => "ipc",
        NsKind::Cgroup => "cgroup",
        NsKind::Time => "time",
    }
}

/// Join the plan's existing namespaces, user first (the others are then joined with the
/// rights it gives). The runtime itself joins: it leaves right after, and the container is
/// cloned from it into them (a pid namespace is entered by children only).
fn join_namespaces(plan: &Plan) -> Result<()> {
    let mut joins: Vec<_> = plan.namespaces.join.iter().collect();
    joins.sort_by_key(|j| j.kind != NsKind::User);
    let fds = joins
        .iter()
        .map(|j| {
            rfs::open(&j.path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(io::Error::from)
                .ctx("open namespace", j.path.display())
        })
        .collect::<Result<Vec<OwnedFd>>>()?;
    // A sysctl is written into a joined namespace only if that is not the runtime's own (the
    // host's): a path naming /proc/1/ns/net must not turn net.* sysctls into host changes.
    for (j, fd) in joins.iter().zip(&fds) {
        let sysctl = plan.mounts.iter().find_map(|m| match m {
            MountOp::Sysctl { key, .. }
                if nucleus_spec::oci::sysctl_namespace(key) == Some(j.kind) =>
            {
                Some(key)
            }
            _ => None,
        });
        if let Some(key) = sysctl {
            let ours = rfs::stat(format!("/proc/self/ns/{}", ns_file(j.kind)))
                .map_err(io::Error::from)
                .ctx("stat", "the runtime's namespace")?;
            let theirs = rfs::fstat(fd)
                .map_err(io::Error::from)
                .ctx("stat", j.path.display())?;
            if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino) {
                return Err(other(
                    "linux.sysctl",
                    format!(
                        "{key}: {} is the runtime's own namespace (it would change the host)",
                        j.path.display()
                    ),
                ));
            }
        }
    }
    for (j, fd) in joins.iter().zip(&fds) {
        raw::setns(fd.as_fd(), ns_flag(j.kind)).ctx("join namespace", j.path.display())?;
    }
    Ok(())
}

/// Set the container up; return once its process waits for `start`. Single-threaded
/// callers only. On failure nothing is left: the process is killed, the cgroup and the fifo
/// removed.
pub fn create(plan: &Plan, console: Console<'_>) -> std::result::Result<Created, CreateError> {
    let Supervisor::Caller { fifo } = &plan.supervisor else {
        return Err(other("create", "not an OCI plan").into());
    };
    if plan.process.tty && matches!(console, Console::None) {
        return Err(other(
            "process.terminal",
            "needs --console-socket (where the terminal's master goes)",
        )
        .into());
    }
    rfs::mknodat(
        rfs::CWD,
        fifo,
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(io::Error::from)
    .ctx("mkfifo", fifo.display())?;
    let removed = RemoveOnError(fifo);
    // Read-write: opening does not wait for a writer; the container's read does.
    let fifo_fd = rfs::open(fifo, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(io::Error::from)
        .ctx("open", fifo.display())?;
    let cgroup = parent_cgroup(plan, &mut NoObserver)?;
    let join_files = match &cgroup {
        Some(c) => c.self_join_files()?,
        None => Vec::new(),
    };
    let cgroup_view = cgroup.as_ref().and_then(|c| c.view());
    trace::mark("fifo, cgroup");
    join_namespaces(plan)?;
    // A time namespace: the runtime's children enter it (the container's process is the
    // first), with its offsets written before anything is in it.
    if let Some(t) = &plan.namespaces.time_offsets {
        raw::unshare(libc::CLONE_NEWTIME).ctx("unshare", "time namespace")?;
        std::fs::write("/proc/self/timens_offsets", t.proc_text())
            .ctx("write", "timens_offsets")?;
    }
    let (pch, cch) = channel::pair::<ToChild, FromChild>()?;
    let into = cgroup.as_ref().and_then(|c| c.clone_into());
    let flags = ns_flags(plan, !join_files.is_empty());
    let forked = clone(flags, into)?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(pch);
            child_main(
                plan,
                cch,
                &join_files,
                None,
                cgroup_view,
                Some(fifo_fd),
                None,
            )
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    trace::mark("clone3");
    drop(cch);
    drop(join_files);
    drop(fifo_fd);
    let kill = |e: CreateError| {
        let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = raw::waitpid(pid, false);
        e
    };
    if plan.namespaces.user {
        parent_write_maps(pid, &plan.idmap, None)
            .map_err(CreateError::from)
            .map_err(kill)?;
    }
    // linux.netDevices: into the container's network namespace before its hooks see it.
    crate::net::move_devices(&plan.net_devices, pid)
        .map_err(CreateError::from)
        .map_err(kill)?;
    // prestart and createRuntime: the runtime's, in its namespaces, once the container's
    // exist (Docker's network hook finds them by the state's pid).
    if let Some(h) = &plan.hooks {
        let state = plan.oci_state("creating", pid).to_string();
        crate::hooks::run_all(&h.prestart, &state)
            .and_then(|()| crate::hooks::run_all(&h.create_runtime, &state))
            .map_err(|e| CreateError::from(other("hook", e)))
            .map_err(kill)?;
    }
    let idmapped = idmapped_binds(plan)
        .map_err(CreateError::from)
        .map_err(kill)?;
    pch.send(ToChild::Go {
        idmapped: idmapped.into_iter().map(Into::into).collect(),
        prepared: vec![],
        sync: false,
        hold: false,
        net: vec![],
        pid,
    })
    .ctx("send", "go")
    .map_err(CreateError::from)
    .map_err(kill)?;
    let (report, master) = await_applied(&pch, pid, &console, plan).map_err(kill)?;
    removed.keep();
    Ok(Created {
        pid,
        cgroups: cgroup.map(|c| c.keep()).unwrap_or_default(),
        report,
        master,
    })
}

/// Wait until the process reports it is set up (`Applied`: it waits for start, or execs now),
/// handing its terminal to `console` (or returning it, kept). Its failure, or its end, is the
/// error (it is reaped).
/// A seccomp listener it announces goes to the plan's agent.
pub(crate) fn await_applied(
    ch: &Runtime,
    pid: libc::pid_t,
    console: &Console<'_>,
    plan: &Plan,
) -> std::result::Result<(SecurityReport, Option<OwnedFd>), CreateError> {
    let mut kept = None;
    loop {
        match ch.recv() {
            Ok(Some(FromChild::Applied(r))) => return Ok((r, kept)),
            // Its seccomp listener (it waits for ListenerTaken before going on).
            Ok(Some(FromChild::Listener(n))) if n >= 0 => {
                if let Some(l) = super::wait::fetch_listener(pid, n, ch.raw())
                    .ctx("take the seccomp listener", n)?
                {
                    hand_to_agent(plan, pid, l)?;
                    ch.send(ToChild::ListenerTaken)
                        .ctx("send", "listener taken")?;
                }
            }
            Ok(Some(FromChild::Timings(m))) => trace::merge(m),
            Ok(Some(FromChild::Failed(f))) => {
                let _ = raw::waitpid(pid, false);
                return Err(CreateError::Failed(f));
            }
            Ok(Some(FromChild::Pty(m))) => {
                let sent = match (m.into_inner(), console) {
                    (Some(m), Console::Socket(c)) => c.send_master(m.as_fd()),
                    (Some(m), Console::Keep) => {
                        kept = Some(m);
                        Ok(())
                    }
                    _ => Err(io::Error::from_raw_os_error(libc::EBADF)),
                };
                sent.ctx("send the terminal to", "--console-socket")?;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                let st = raw::waitpid(pid, false)
                    .ok()
                    .flatten()
                    .map(|(_, s)| s.code());
                return Err(other(
                    "start",
                    format!("the process ended during setup (status {st:?})"),
                )
                .into());
            }
        }
    }
}

/// The idmapped binds of the plan, in its order: each source cloned by the runtime (idmapping a
/// mount needs privilege over the filesystem, which the container's process in a user
/// namespace lacks) and idmapped to a user namespace with the mount's maps.
fn idmapped_binds(plan: &Plan) -> Result<Vec<OwnedFd>> {
    let mut out = Vec::new();
    for op in &plan.mounts {
        let MountOp::Oci {
            source,
            dst,
            options,
            idmap: Some(map),
            ..
        } = op
        else {
            continue;
        };
        let recursive = options.flags & nucleus_spec::oci::options::MS_REC != 0;
        let tree = raw::open_tree_clone(None, source, recursive).ctx("bind", source.display())?;
        let userns = userns_with(map)?;
        raw::mount_setattr(
            Some(tree.as_fd()),
            Path::new(""),
            map.recursive,
            raw::MOUNT_ATTR_IDMAP,
            0,
            Some(userns.as_fd()),
        )
        .ctx("idmap", dst.display())?;
        out.push(tree);
    }
    Ok(out)
}

/// A user namespace with `map`'s ids: a child made in a new one waits while its maps are
/// written and its namespace opened, then goes.
#[allow(unsafe_code)] // raw::fork_into: create is single-threaded.
fn userns_with(map: &nucleus_spec::mounts::IdMapping) -> Result<OwnedFd> {
    let (r, w) = raw::pipe().ctx("pipe", "")?;
    // SAFETY: single-threaded (create's contract); the child only reads and exits.
    let forked = unsafe { raw::fork_into(libc::CLONE_NEWUSER as u64, None) }
        .ctx("clone", "user namespace for an idmapped mount")?;
    match forked {
        Forked::Child => {
            drop(w);
            let _ = raw::read(r.as_fd(), &mut [0u8; 1]);
            raw::exit_now(0)
        }
        Forked::Parent { pid, .. } => {
            drop(r);
            let ns = parent_write_maps(
                pid,
                &nucleus_spec::plan::IdMapPlan::Explicit {
                    uid: map.uid.clone(),
                    gid: map.gid.clone(),
                },
                None,
            )
            .and_then(|()| {
                rfs::open(
                    format!("/proc/{pid}/ns/user"),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io::Error::from)
                .ctx("open", "the idmapped mount's user namespace")
            });
            drop(w);
            let _ = raw::waitpid(pid, false);
            ns
        }
    }
}

/// Hand a process's seccomp listener to the container's agent (`linux.seccomp.listenerPath`):
/// runtime-spec's containerProcessState (`fds: ["seccompFd"]`, the process's pid, the
/// listener's metadata, the container's state) with the descriptor, over the agent's unix
/// socket. The runtime keeps no copy.
pub(crate) fn hand_to_agent(plan: &Plan, pid: libc::pid_t, listener: OwnedFd) -> Result<()> {
    let Some(SeccompNotify::Agent { path, metadata }) = &plan.seccomp_notify else {
        return Err(other("seccomp", "a listener nobody asked for"));
    };
    let msg = serde_json::json!({
        "ociVersion": nucleus_spec::state::OCI_STATE_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": plan.oci_state("creating", pid),
    });
    let sock = raw::unix_connect(path).ctx("connect to the seccomp agent", path.display())?;
    crate::channel::send_with_fds(
        sock.as_fd(),
        msg.to_string().as_bytes(),
        &[listener.as_fd()],
    )
    .ctx("send the listener to the seccomp agent", path.display())?;
    Ok(())
}

#[allow(unsafe_code)] // raw::fork_into: the caller must be single-threaded (create's contract).
fn clone(flags: u64, into: Option<std::os::fd::BorrowedFd<'_>>) -> Result<Forked> {
    // SAFETY: `create` is documented single-threaded; the child runs `child_main`, which
    // never returns.
    unsafe { raw::fork_into(flags, into) }.ctx("clone3", "new namespaces")
}

/// Removes a path when dropped, unless kept.
struct RemoveOnError<'a>(&'a Path);

impl RemoveOnError<'_> {
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for RemoveOnError<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// Block the signals `run` in the foreground forwards (and SIGCHLD), for the rest of the
/// runtime's life: from before the container is made, so none is lost or kills the runtime
/// between its create and its end. (The container's process unblocks them before exec.)
pub fn block_forwarded() -> Result<()> {
    let mut sigs = crate::init::FORWARDED.to_vec();
    sigs.push(libc::SIGCHLD);
    raw::block_signals(&sigs).ctx("block signals", "")?;
    Ok(())
}

/// `run` in the foreground, once started: until the container's process (the runtime's
/// child) ends, pass the signals the runtime gets on to it and relay its terminal (`master`,
/// kept at create) to the caller's. Its status as a shell reports it (128+N when killed by
/// signal N). Call [`block_forwarded`] before the container is made.
pub fn foreground(pid: libc::pid_t, master: Option<OwnedFd>) -> Result<i32> {
    use std::os::fd::AsRawFd;
    let mut sigs = crate::init::FORWARDED.to_vec();
    sigs.push(libc::SIGCHLD);
    let sfd = raw::signalfd(&sigs).ctx("signalfd", "")?;
    let mut relay = crate::relay::Relay::default();
    let stdin = rustix::stdio::stdin();
    // The caller's terminal raw while it types into the container's (restored on return).
    let _raw = master.as_ref().map(|m| {
        crate::tty::copy_window_size(stdin, m.as_fd());
        crate::tty::RawMode::enter()
    });
    if let Some(m) = &master {
        crate::relay::pty(&mut relay, m.as_fd(), true).ctx("relay", "the terminal")?;
    }
    loop {
        if let Some((_, st)) = raw::waitpid(pid, true).ctx("wait for", "the container")? {
            relay.finish();
            return Ok(st.code());
        }
        let mut set = vec![(sfd.as_raw_fd(), libc::POLLIN)];
        set.extend(relay.poll_set());
        let rev = raw::poll(&set, -1).ctx("poll", "signals and terminal")?;
        if rev[0] != 0 {
            match raw::read_signal(sfd.as_fd()).ctx("read", "signalfd")? {
                libc::SIGCHLD => {}
                // A terminal's size follows the caller's (the kernel signals its group).
                libc::SIGWINCH if master.is_some() => {
                    if let Some(m) = &master {
                        crate::tty::copy_window_size(stdin, m.as_fd());
                    }
                }
                sig => {
                    let _ = raw::kill(pid, sig);
                }
            }
        }
        relay.service(&rev[1..]);
    }
}
