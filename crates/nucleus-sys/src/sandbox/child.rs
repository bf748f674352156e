//! The sandbox's init: `child_main` and `child_setup` (namespaces, hostname, network, the
//! root from the mount list), the failures it reports, and the start of the workload.

use super::net_in_thread;
use super::workload::{child_exec, Hold};
use crate::cgroup;
use crate::channel::{
    self, Fd, FromChild, Nothing, Release, Sandbox, SecurityReport, Stage, StartFailure, ToChild,
};
use crate::error::{Context, Result};
use crate::init;
use crate::mount::{self, Prepared, Switched};
use crate::net;
use crate::netwatch;
use crate::raw;
use crate::security;
use crate::trace;
use crate::tty;
use nucleus_spec::mounts::MountOp;
use nucleus_spec::mounts::RootSource;
use nucleus_spec::plan::{NsKind, Plan};
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The sandbox side. Never returns.
pub(super) fn child_main(
    plan: &Plan,
    ch: Sandbox,
    join_files: &[fs::File],
    etc_view: Option<OwnedFd>,
    cgroup_view: Option<mount::CgroupView>,
    fifo: Option<OwnedFd>,
    root_image: Option<OwnedFd>,
) -> ! {
    // Setup creates directories and files with exactly the plan's modes; the workload gets the
    // caller's umask back before exec.
    // (umask cannot fail.)
    let caller_umask = rustix::process::umask(rustix::fs::Mode::empty()).bits();
    match child_setup(plan, &ch, join_files, (etc_view, root_image), cgroup_view) {
        Ok((switched, slave, go)) => {
            let tty_slave = slave.as_ref().map(|s| s.as_fd());
            let exec_with =
                |hold, init| child_exec(plan, &ch, switched, tty_slave, caller_umask, hold, init);
            // An OCI container: its process is the sandbox's PID 1, no init of ours; it waits
            // for `start` on the exec fifo.
            if !plan.supervisor.is_nucleus() {
                let Some(f) = fifo else {
                    fail(&ch, Stage::ExecSync, "no exec fifo")
                };
                match exec_with(Hold::Fifo(f, go.pid), None) {}
            }
            drop(fifo);
            let sync = if go.sync {
                match channel::pair::<Release, Nothing>() {
                    Ok((theirs, ours)) => {
                        if ch
                            .send(FromChild::ExecSync(OwnedFd::from(theirs).into()))
                            .is_err()
                        {
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
            // (Init no longer holds the workload's end of `sync` once it runs: harden's
            // close_range took it; it is never dropped, init::run does not return.)
            let hold = sync.as_ref().map_or(Hold::None, Hold::Sync);
            // A checkpointable sandbox's workload is its PID 1, as under runc: init, a fork of
            // the runtime mapped from the host's binary, is nothing CRIU could save.
            if plan.checkpointable {
                match exec_with(hold, None) {}
            }
            become_init(plan, &ch, full_fork, move |hs| exec_with(hold, Some(hs)))
        }
        Err(f) => fail_with(&ch, f),
    }
}

/// Start the workload (`exec`, told by `go` when init is hardened) and become its init: PID 1
/// of its pid namespace, which reaps, forwards signals, reports the workload's status on `ch`
/// and exits (the kernel then kills whatever is left in the namespace). The sandbox's init,
/// and the init of each `nucleus exec` (a pid namespace of its own under the sandbox's).
pub(crate) fn become_init(
    plan: &Plan,
    ch: &Sandbox,
    full_fork: bool,
    exec: impl FnOnce(Handshake) -> std::convert::Infallible,
) -> ! {
    // The bounding set, once for both processes: everything but what the workload
    // keeps and init's CAP_KILL (each keeps dropping only what is left).
    let bounding_left = plan.process.caps.as_ref().map_or(0, |c| c.bounding) | init::KEPT_CAPS;
    if let Err(e) = security::drop_bounding_except(bounding_left) {
        fail(ch, Stage::Capabilities, &e.to_string());
    }
    // Init is hardened before the workload's program runs: the workload's first act is
    // to wait for `go`, which init writes once it has given up what it does not need
    // (it cannot before the clone: the workload would inherit its seccomp filter and
    // lost capabilities). Shared memory takes turns: the workload waits while init
    // hardens, init while the workload sets up and until its exec (end of file on a
    // pipe the workload holds close-on-exec).
    let sfd = init::signals();
    let (Ok((ready_r, ready_w)), Ok((go_r, go_w))) = (raw::pipe(), raw::pipe()) else {
        fail(ch, Stage::ForkWorkload, "pipe")
    };
    // The workload has the descriptors by number (open in its copy of the table,
    // whether it shares our memory or not); init owns them (the `meanwhile` closure).
    // (The workload also holds `ready_w`, close-on-exec, never written.)
    let hs = Handshake {
        go: go_r.as_raw_fd(),
    };
    let keep = [
        ch.raw(),
        sfd.as_raw_fd(),
        ready_r.as_raw_fd(),
        go_w.as_raw_fd(),
    ];
    let seccomp = &plan.init_seccomp_bpf;
    let workload = start_workload(
        full_fork,
        || exec(hs),
        move || {
            // Our copies of the workload's ends (it has its own).
            drop(ready_w);
            drop(go_r);
            // The workload learns whether init is hardened with its go (and refuses
            // to run, or reports what is missing, as the mode says).
            let go = match init::harden(&keep, bounding_left, seccomp) {
                Ok(()) => init::HARDENED,
                Err(step) => init::HARDEN_FAILED.saturating_add(step as u8),
            };
            let _ = raw::send_byte(go_w.as_raw_fd(), go);
            if !full_fork {
                // The workload sets up in our memory: wait until its exec or exit
                // (end of file; nothing is ever written).
                while raw::read(ready_r.as_fd(), &mut [0u8; 1]).is_ok_and(|n| n > 0) {}
            }
            // No longer needed.
            drop(go_w);
            drop(ready_r);
        },
    );
    match workload {
        Ok(workload) => init::run(workload, ch, sfd),
        Err(e) => fail(ch, Stage::ForkWorkload, &e.to_string()),
    }
}

pub(super) fn fail(ch: &Sandbox, stage: Stage, error: &str) -> ! {
    fail_with(ch, StartFailure::new(stage, error))
}

/// Report the failure, and end with its exit code.
pub(crate) fn fail_with(ch: &Sandbox, f: StartFailure) -> ! {
    let code = f.exit_code();
    let _ = ch.send(FromChild::Failed(f));
    raw::exit_now(i32::from(code))
}

/// The runtime's twin of the plan's degrade-or-refuse rule (nucleus-spec `enforce`): a
/// protection the workload would go without fails the start at `stage` in strict modes
/// (`refuse`), and is recorded in the report in agent mode.
pub(super) fn degrade_or_fail(
    ch: &Sandbox,
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

pub(super) type StageResult<T> = std::result::Result<T, StartFailure>;

pub(super) fn stage<T>(stage: Stage, r: Result<T>) -> StageResult<T> {
    r.map_err(|e| StartFailure::new(stage, e.to_string()))
}

/// Start the workload: a fork, or (unless `full_fork`) a child that shares init's memory until
/// its exec: no fork copy, no copy-on-write faults ([`raw::spawn_shared`]).
/// `meanwhile` runs in init after the clone (see `child_main`'s handshake).
#[allow(unsafe_code)] // raw::fork and raw::spawn_shared: the caller must be single-threaded.
pub(super) fn start_workload(
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
pub(super) struct Handshake {
    pub(super) go: libc::c_int,
}

/// The thread making the sandbox's network namespace, and the pid namespace's `ns_last_pid`.
pub(super) struct NetThread {
    handle: std::thread::JoinHandle<io::Result<OwnedFd>>,
    /// None where the kernel has no ns_last_pid or /proc/sys is read-only: the workload is
    /// then pid 3.
    last_pid: Option<fs::File>,
}

/// A thread that makes the sandbox's network namespace (see [`net_in_thread`]) with its
/// loopback up, and returns it as an fd.
pub(super) fn spawn_netns() -> io::Result<NetThread> {
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
            // It changes this thread's namespace alone.
            raw::unshare(libc::CLONE_NEWNET)?;
            net::loopback_up().map_err(io::Error::other)?;
            raw::open_at(proc.as_fd(), "thread-self/ns/net")
        })?;
    Ok(NetThread { handle, last_pid })
}

/// Enter the namespace the network thread made (once; no-op without one).
pub(super) fn join_netns(t: &mut Option<io::Result<NetThread>>) -> StageResult<()> {
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
pub(super) struct GoFlags {
    sync: bool,
    hold: bool,
    /// Our pid as the host sees it (OCI hooks' state).
    pid: i32,
}

pub(super) fn child_setup(
    plan: &Plan,
    ch: &Sandbox,
    join_files: &[fs::File],
    (etc_view, root_image): (Option<OwnedFd>, Option<OwnedFd>),
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
    let (idmapped, trees, go, assigned) = match ch.recv() {
        Ok(Some(ToChild::Go {
            idmapped,
            prepared,
            sync,
            hold,
            net,
            pid,
        })) if idmapped.iter().chain(&prepared).all(Fd::is_some) => {
            let idmapped: VecDeque<OwnedFd> =
                idmapped.into_iter().filter_map(Fd::into_inner).collect();
            let trees: Vec<Option<OwnedFd>> = prepared.into_iter().map(Fd::into_inner).collect();
            (idmapped, trees, GoFlags { sync, hold, pid }, net)
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
        raw::set_dumpable(true).ctx("prctl", "PR_SET_DUMPABLE"),
    )?;
    // Die with the runtime. Set only now: the kernel clears the parent-death signal whenever
    // credentials change, as the setresuid above just did. If the runtime already died in
    // between, its end of the channel is closed: leave at once. (An OCI container outlives
    // its runtime, which leaves once it is set up.)
    if plan.supervisor.is_nucleus() {
        stage(
            Stage::ParentDeathSignal,
            raw::die_with_parent().ctx("prctl", "PDEATHSIG"),
        )?;
    }
    if raw::poll_read(&[ch.raw()], 0)
        .map(|r| r[0] & libc::POLLHUP != 0)
        .unwrap_or(true)
    {
        raw::exit_now(1);
    }
    if let Some(secs) = plan.namespaces.time_offset_secs {
        // Before /proc is replaced by the sandbox's read-only one. Only children enter the new
        // time namespace, and the workload is forked later.
        if let Err(e) = raw::unshare(libc::CLONE_NEWTIME) {
            return Err(StartFailure::new(Stage::TimeNamespace, e.to_string()));
        }
        let offsets = format!("monotonic {secs} 0\nboottime {secs} 0\n");
        stage(
            Stage::TimeNamespace,
            fs::write("/proc/self/timens_offsets", offsets).ctx("write", "timens_offsets"),
        )?;
    }
    if plan.namespaces.uts && !plan.hostname.is_empty() {
        if plan.hostname.as_bytes().contains(&0) {
            return Err(StartFailure::new(
                Stage::Hostname,
                "NUL in hostname".to_string(),
            ));
        }
        if let Err(e) = rustix::system::sethostname(plan.hostname.as_bytes()) {
            return Err(StartFailure::new(
                Stage::Hostname,
                io::Error::from(e).to_string(),
            ));
        }
    }
    if let Some(d) = &plan.domainname {
        if let Err(e) = rustix::system::setdomainname(d.as_bytes()) {
            return Err(StartFailure::new(
                Stage::Hostname,
                format!("domainname: {}", io::Error::from(e)),
            ));
        }
    }
    if plan.namespaces.net && net_thread.is_none() {
        stage(Stage::Network, net::loopback_up())?;
    }
    for a in &assigned {
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
            ch.send(w.into()).ctx("send", "egress sockets"),
        )?;
    }
    trace::mark_as("sandbox", "hostname, network");
    stage(Stage::Mounts, mount::stage())?;
    let attested = plan.attested.as_ref().map(|a| a.source.as_path());
    let image_mount = match (attested, root_image) {
        (Some(dir), Some(fd)) => Some((dir, fd)),
        (None, None) => None,
        _ => {
            return Err(StartFailure::new(
                Stage::Mounts,
                "no attested image".to_string(),
            ))
        }
    };
    stage(Stage::Mounts, mount::make_root(&plan.root, image_mount))?;
    let image = match plan.root {
        RootSource::Dir { .. } => Some(stage(Stage::Mounts, mount::open_new_root())?),
        _ => None,
    };
    let mut prep = Prepared {
        cgroup: cgroup_view,
        idmapped,
        trees,
        etc_view,
        readonly_trees: Vec::new(),
        image,
        userns: plan.namespaces.user
            || plan.namespaces.inside_user
            || plan.namespaces.join.iter().any(|j| j.kind == NsKind::User),
        attested: attested.map(std::path::Path::to_path_buf),
    };
    for op in &plan.mounts {
        if matches!(op, MountOp::Sysfs { .. } | MountOp::Sysctl { .. })
            || matches!(op, MountOp::Oci { fstype, .. } if fstype == "sysfs")
        {
            // A new sysfs, and net.* sysctls, are the mounter's (writer's) network namespace:
            // be in ours first.
            if matches!(net_thread, Some(Ok(_))) {
                trace::mark_as("sandbox", "mounts before /sys");
                join_netns(&mut net_thread)?;
                trace::mark_as("sandbox", "network thread joined");
            }
            join_netns(&mut net_thread)?;
        }
        stage(Stage::Mounts, mount::apply(op, &mut prep))?;
    }
    join_netns(&mut net_thread)?;
    trace::mark_as("sandbox", "mounts");
    // createContainer: in the container's namespaces, before its root switch.
    if let Some(h) = plan
        .hooks
        .as_ref()
        .filter(|h| !h.create_container.is_empty())
    {
        let state = plan.oci_state("creating", go.pid).to_string();
        // (Staged: the host's file system, where their paths resolve, is under the staging
        // root; each hook is chrooted there.)
        let host = std::path::Path::new(mount::HOST_ROOT_WHILE_STAGED);
        crate::hooks::run_all_in(Some(host), &h.create_container, &state)
            .map_err(|e| StartFailure::new(Stage::Hooks, e))?;
    }
    let switched = stage(
        Stage::SwitchRoot,
        mount::switch_root(plan.allow_chroot_fallback),
    )?;
    trace::mark_as("sandbox", "root switched");
    if let Some(p) = plan.root_propagation {
        stage(Stage::Mounts, mount::set_root_propagation(p))?;
    }
    // The terminal comes from the sandbox's own devpts, so ttyname() works inside; the master
    // goes to the runtime (as with an OCI console socket).
    let slave = if plan.process.tty {
        let pty = stage(Stage::Tty, tty::open_in_sandbox())?;
        stage(
            Stage::Tty,
            ch.send(FromChild::Pty(pty.master.into()))
                .ctx("send", "pty master"),
        )?;
        Some(pty.slave)
    } else {
        None
    };
    // (On v2 the clone itself made the cgroup namespace, inside the cgroup.)
    if !join_files.is_empty() && plan.namespaces.cgroup {
        // We are now in our cgroup (we joined it above).
        if let Err(e) = raw::unshare(libc::CLONE_NEWCGROUP) {
            return Err(StartFailure::new(Stage::CgroupNamespace, e.to_string()));
        }
    }
    trace::mark_as("sandbox", "tty, cgroup namespace");
    Ok((switched, slave, go))
}
