//! `--runtime gvisor`: the plan run by gVisor's runsc (nucleus-spec `gvisor` decided the
//! bundle and the command lines).
//!
//! The runtime makes the sandbox's cgroups and prepared trees as for a native sandbox, writes
//! the bundle, and clones "ginit" into new pid, mount, network, ipc and uts namespaces (and
//! the cgroups). ginit speaks the native init's protocol on the channel (`Applied`,
//! `ExecSync`, `Failed`, `Exited`), so the runtime's wait, relay, timeout, control socket and
//! observer are the native ones. ginit:
//! 1. dies with the runtime (PDEATHSIG), waits for `go`;
//! 2. mounts a fresh /proc (runsc finds its processes by pid there), a tmpfs on the bundle's
//!    `rootfs` filled with the plan's skeleton, and attaches the prepared trees and the /etc
//!    view where the bundle binds them: in its own mount namespace only, so nothing of them
//!    is on the host, and nothing is left when it dies;
//! 3. runs `runsc create` with the workload's stdio (runsc's sandbox and gofer stay in
//!    ginit's pid namespace, its children once `create` exits), reports `Applied`, waits for
//!    `start` when held, runs `runsc start`;
//! 4. relays forwarded signals as `runsc kill`, reaps, and when the sandbox process (whose
//!    status is the container's: runsc exits 128+N for a signal) ends, runs `runsc delete`,
//!    reports `Exited` and exits. Killing ginit (SIGKILL: `kill`, the timeout's grace, the
//!    runtime's death) kills its whole pid namespace, runsc's processes with it.
//!
//! Its network namespace keeps runsc's control socket (an abstract unix socket in the 2022
//! runsc) out of the host's.

use super::child::fail_with;
use super::parent::{copy_back_trees, parent_cgroup, parent_etc_view, parent_prepare_trees, Tree};
use super::wait::{parent_wait, Control};
use super::{Detach, Observer, Outcome};
use crate::channel::{self, FromChild, Release, Sandbox, ToChild};
use crate::error::{other, Context, Result};
use crate::init;
use crate::raw::{self, Forked, WaitStatus};
use nucleus_spec::gvisor::{GvisorPlan, Skeleton};
use nucleus_spec::plan::Plan;
use nucleus_spec::stage::{Stage, StartFailure};
use nucleus_spec::state::{
    GvisorReport, LandlockStatus, RootSwitch, SeccompStatus, SecurityReport,
};
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

pub(super) fn run(
    plan: &Plan,
    g: &GvisorPlan,
    obs: &mut dyn Observer,
    detach: Option<&Detach>,
) -> Result<Outcome> {
    let sfd = raw::signalfd(init::FORWARDED).ctx("signalfd", "")?;
    let bundle = nucleus_spec::gvisor::bundle(plan).map_err(|e| other("--runtime gvisor", e))?;
    write_bundle(plan, g, &bundle.config_json())?;
    let cgroup = parent_cgroup(plan, obs)?;
    let join_files = match &cgroup {
        Some(c) => c.self_join_files()?,
        None => Vec::new(),
    };
    let trees = parent_prepare_trees(plan)?;
    let etc_view = match &plan.etc_view {
        Some(v) => Some(parent_etc_view(v)?),
        None => None,
    };
    let (pch, cch) = channel::pair::<ToChild, FromChild>()?;
    // (With a terminal, runsc hands its master over: ginit passes it on, as native's init.)
    let stdio = if plan.process.tty {
        crate::relay::Stdio::default()
    } else {
        crate::relay::Stdio::for_gvisor().ctx("pipe", "standard descriptors")?
    };
    let into = cgroup.as_ref().and_then(|c| c.clone_into());
    let kill = |pid: libc::pid_t, pidfd: &OwnedFd| {
        let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = raw::waitpid(pid, false);
    };
    let flags = (libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS) as u64;
    #[allow(unsafe_code)] // raw::fork_into: the caller must be single-threaded.
    // SAFETY: nucleus is single-threaded here (no threads are ever spawned before a run).
    let forked = unsafe { raw::fork_into(flags, into) }.ctx("clone3", "new namespaces")?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(pch);
            if stdio.install().is_err() {
                raw::exit_now(125);
            }
            drop(stdio);
            let etc = etc_view.map(|(_, m)| m);
            ginit(plan, g, &bundle.skeleton, &cch, &join_files, &trees, etc)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    let mut relay = crate::relay::Relay::default();
    if !stdio.is_empty() {
        stdio
            .into_relay(&mut relay)
            .ctx("relay", "standard descriptors")?;
    }
    let _etc_view_held = etc_view.map(|(held, _)| held);
    drop(cch);
    drop(join_files);
    // The bridge's side, as a native sandbox's: the veth's far end goes to ginit's namespace
    // (the router's).
    let host_net = match &plan.net.bridge {
        Some(b) => Some(
            crate::net::bridge_host_side(b, &plan.id, pid).inspect_err(|_| kill(pid, &pidfd))?,
        ),
        None => None,
    };
    pch.send(ToChild::Go {
        idmapped: vec![],
        prepared: vec![],
        sync: detach.is_some(),
        hold: detach.is_some_and(|d| d.hold),
        net: host_net.iter().map(|h| h.assigned.clone()).collect(),
        pid: 0,
    })
    .ctx("send", "go")
    .inspect_err(|_| kill(pid, &pidfd))?;
    obs.started(pid, &cgroup.as_ref().map(|c| c.paths()).unwrap_or_default());
    let mut control = detach.map(Control::new);
    let mut out = parent_wait(pid, &pidfd, &pch, &sfd, obs, control.as_mut(), plan, relay)?;
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
        copy_back_trees(&trees)?;
    }
    // runsc's state of a sandbox that is gone (its processes died with ginit).
    let _ = fs::remove_dir_all(g.state());
    Ok(out)
}

/// The bundle's directories (empty on the host: ginit mounts on them in its own namespace)
/// and config.json (0600: it holds the environment).
fn write_bundle(plan: &Plan, g: &GvisorPlan, json: &[u8]) -> Result<()> {
    let mut dirs = vec![
        g.dir.clone(),
        g.rootfs(),
        g.state(),
        g.etc(),
        g.dir.join("mnt"),
    ];
    dirs.extend((0..plan.prepared.len()).map(|i| g.slot(i)));
    for d in &dirs {
        raw::mkdir_p(d, 0o700).ctx("create", d.display())?;
    }
    if g.bridged {
        // The mount point of the sandbox's network namespace.
        match raw::make_file(&g.netns(), 0o600) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).ctx("create", g.netns().display())
            }
            _ => {}
        }
    }
    let path = g.config();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|mut f| f.write_all(json))
        .ctx("write", path.display())
}

fn at(root: &Path, p: &Path) -> std::path::PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// The root's skeleton in the tmpfs at `root` (ours: no sandbox has seen it yet).
fn make_skeleton(root: &Path, skeleton: &[Skeleton]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for s in skeleton {
        match s {
            Skeleton::Dir { path, mode } => {
                raw::mkdir_p(&at(root, path), *mode)?;
            }
            Skeleton::Symlink { target, path } => {
                std::os::unix::fs::symlink(target, at(root, path))?;
            }
            Skeleton::File {
                path,
                contents,
                mode,
            } => {
                let p = at(root, path);
                fs::write(&p, contents)?;
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
            }
            Skeleton::MountPoint { path, like } => {
                let p = at(root, path);
                if let Some(parent) = p.parent() {
                    raw::mkdir_p(parent, 0o755)?;
                }
                if fs::metadata(like).is_ok_and(|m| m.is_dir()) {
                    raw::mkdir_p(&p, 0o755)?;
                } else {
                    match raw::make_file(&p, 0o644) {
                        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// ginit's mounts: in its own mount namespace only.
fn ginit_mounts(
    g: &GvisorPlan,
    skeleton: &[Skeleton],
    trees: &[Tree],
    etc: Option<OwnedFd>,
) -> std::io::Result<()> {
    raw::make_private(Path::new("/"))?;
    let nodev_nosuid = (libc::MS_NOSUID | libc::MS_NODEV) as libc::c_ulong;
    raw::mount_fs(
        "proc",
        Path::new("/proc"),
        nodev_nosuid | libc::MS_NOEXEC as libc::c_ulong,
        None,
    )?;
    let root = g.rootfs();
    raw::mount_fs("tmpfs", &root, nodev_nosuid, Some("mode=0755,size=16m"))?;
    make_skeleton(&root, skeleton)?;
    for (i, t) in trees.iter().enumerate() {
        let m = raw::open_tree_clone(Some(t.view.as_fd()), Path::new(""), true)?;
        raw::move_mount_to(m.as_fd(), &g.slot(i))?;
    }
    if let Some(e) = etc {
        raw::move_mount_to(e.as_fd(), &g.etc())?;
    }
    Ok(())
}

/// `--network bridge`: ginit's namespace is the router (eth0 on the bridge, as a native
/// sandbox's; gv0 to the sandbox's namespace; forwarding and NAT), and the sandbox's namespace,
/// held by a child of ginit, has the other end of gv0 as its eth0 (nucleus-spec
/// `gvisor::ROUTER_ADDR`), bound where config.json names it.
fn ginit_network(g: &GvisorPlan, outer: &crate::net::Assigned) -> std::result::Result<(), String> {
    use nucleus_spec::gvisor::{
        LINK_PREFIX, LINK_PREFIX6, ROUTER_ADDR, ROUTER_ADDR6, ROUTER_IFACE, SANDBOX_ADDR,
        SANDBOX_ADDR6,
    };
    // IPv6 inside when the bridge has it.
    let v6 = outer.v6.is_some();
    use std::os::fd::AsRawFd;
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    crate::net::loopback_up().map_err(|e| err("loopback", &e))?;
    crate::net::configure_sandbox(outer).map_err(|e| err("eth0", &e))?;
    let (go_r, go_w) = raw::pipe().map_err(|e| err("pipe", &e))?;
    let (done_r, done_w) = raw::pipe().map_err(|e| err("pipe", &e))?;
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: ginit is single-threaded; the child makes its namespace, configures it, and
    // waits to die with ginit's pid namespace.
    let holder = match unsafe { raw::fork() } {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            drop((go_w, done_r));
            let inner = crate::net::Assigned {
                iface: nucleus_spec::net::SANDBOX_IFACE.into(),
                v4: (SANDBOX_ADDR.into(), LINK_PREFIX, ROUTER_ADDR.into()),
                v6: v6.then_some((SANDBOX_ADDR6.into(), LINK_PREFIX6, ROUTER_ADDR6.into())),
            };
            let step = |ok: bool| {
                if !ok || raw::send_byte(done_w.as_raw_fd(), 1).is_err() {
                    raw::exit_now(1);
                }
            };
            step(raw::unshare(libc::CLONE_NEWNET).is_ok());
            // The link's other end is here once ginit says so.
            step(matches!(raw::recv_byte(go_r.as_raw_fd()), Ok(Some(_))));
            step(
                crate::net::loopback_up().is_ok()
                    && crate::net::configure_sandbox(&inner).is_ok()
                    && hide_net_core().is_ok(),
            );
            // Held until the pid namespace ends.
            let _ = raw::recv_byte(go_r.as_raw_fd());
            raw::exit_now(0)
        }
        Err(e) => return Err(err("fork", &e)),
    };
    drop((go_r, done_w));
    let next = |what: &str| match raw::recv_byte(done_r.as_raw_fd()) {
        Ok(Some(_)) => Ok(()),
        _ => Err(format!(
            "{what}: the sandbox's network namespace was not made"
        )),
    };
    next("unshare")?;
    crate::net::veth_into(ROUTER_IFACE, nucleus_spec::net::SANDBOX_IFACE, holder)
        .map_err(|e| err("inner link", &e))?;
    let router = crate::net::Assigned {
        iface: ROUTER_IFACE.into(),
        v4: (ROUTER_ADDR.into(), LINK_PREFIX, SANDBOX_ADDR.into()),
        v6: v6.then_some((ROUTER_ADDR6.into(), LINK_PREFIX6, SANDBOX_ADDR6.into())),
    };
    crate::net::configure_sandbox(&router).map_err(|e| err(ROUTER_IFACE, &e))?;
    raw::send_byte(go_w.as_raw_fd(), 1).map_err(|e| err("pipe", &e))?;
    next("configure")?;
    // (go_w stays open in the holder's sight: it waits on it until it dies.)
    std::mem::forget(go_w);
    let mut pairs = vec![(outer.v4.0, std::net::IpAddr::from(SANDBOX_ADDR))];
    if let Some((o6, _, _)) = outer.v6 {
        pairs.push((o6, SANDBOX_ADDR6.into()));
    }
    crate::net::gvisor_router(&outer.iface, &pairs).map_err(|e| err("router", &e))?;
    raw::bind(
        Path::new(&format!("/proc/{holder}/ns/net")),
        &g.netns(),
        false,
    )
    .map_err(|e| err("bind the sandbox's network namespace", &e))?;
    hide_net_core().map_err(|e| err("hide /proc/sys/net/core", &e))?;
    Ok(())
}

/// runsc (2022) refuses to run "with network enabled in root network namespace" when
/// /proc/sys/net/core/rmem_default exists, which it does in every namespace on newer kernels:
/// hidden in ginit's mount namespace. /proc/sys/net is per network namespace, so this hides
/// the caller's namespace's: the holder of the sandbox's does it (runsc's sandbox checks
/// there), ginit its own (runsc's other calls run there).
fn hide_net_core() -> std::io::Result<()> {
    raw::mount_fs(
        "tmpfs",
        Path::new("/proc/sys/net/core"),
        (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong,
        Some("size=4k"),
    )
}

/// Run a runsc verb to its end (stdio: none; its errors go to its log); the log's last
/// error line when it fails.
fn runsc(g: &GvisorPlan, argv: &[String]) -> std::result::Result<(), String> {
    let st = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", g.runsc.display()))?;
    if st.success() {
        return Ok(());
    }
    let log = fs::read_to_string(g.log()).unwrap_or_default();
    Err(nucleus_spec::gvisor::last_error(&log).unwrap_or_else(|| format!("exited with {st}")))
}

/// `nucleus exec` in a gVisor sandbox: `runsc exec` of `plan.process` (its process file 0600
/// beside the bundle: the environment never goes on a command line) in ginit's pid, mount and
/// network namespaces, where runsc finds its sandbox's processes, state and control socket,
/// with this process's stdio (`capture`: into it; `-t`: a pty of ours). `plan.timeout_ms`:
/// then SIGTERM to the process inside (`runsc kill --pid`), SIGKILL after the grace period.
/// The outcome as native's: the command's status, or runsc's own error (its status is then
/// 128: runsc's cli/main.go) as the failure.
pub fn exec(
    plan: &Plan,
    ginit: std::os::fd::BorrowedFd<'_>,
    capture: Option<crate::relay::Capture>,
) -> Result<Outcome> {
    let g = plan
        .gvisor
        .as_ref()
        .ok_or_else(|| other("exec", "not a gVisor sandbox"))?;
    let me = std::process::id();
    let file = g.dir.join(format!("exec-{me}.json"));
    let ipid = g.dir.join(format!("exec-{me}.pid"));
    let log = g.state().join(format!("exec-{me}.log"));
    let json = nucleus_spec::gvisor::exec_process(&plan.process).map_err(|e| other("exec", e))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = fs::remove_file(&file);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&file)
            .and_then(|mut f| f.write_all(&json))
            .ctx("write", file.display())?;
    }
    let gone = || {
        for f in [&file, &ipid, &log] {
            let _ = fs::remove_file(f);
        }
    };
    // `-t`: a foreground `runsc exec` gives the process its own terminal (its stdin, which
    // must be one): a pty of ours, whose master is relayed to the caller's terminal.
    let pty = match plan.process.tty {
        true => Some(crate::tty::open_in_sandbox()?),
        false => None,
    };
    let mut argv = g.exec_argv(&plan.id, &file, &log);
    let verb = argv.iter().position(|a| a == "exec").unwrap_or(argv.len());
    argv.insert(verb + 1, format!("--internal-pid-file={}", ipid.display()));
    // (As for the sandbox's own streams: a regular file is written through a pipe.)
    let stdio = match (plan.process.tty, capture) {
        (true, _) => crate::relay::Stdio::default(),
        (false, Some(c)) => crate::relay::Stdio::capturing(c).ctx("pipe", "capture")?,
        (false, None) => crate::relay::Stdio::for_gvisor().ctx("pipe", "standard descriptors")?,
    };
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWPID;
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: `nucleus exec` is single-threaded; the child only joins namespaces, runs runsc
    // and exits.
    let child = unsafe { raw::fork() }.ctx("fork", "exec");
    let (code, timed_out) = match child {
        Ok(None) => {
            let term = pty.as_ref().is_none_or(|p| {
                rustix::process::setsid().is_ok()
                    && crate::tty::become_controlling(p.slave.as_fd()).is_ok()
            });
            if !term || stdio.install().is_err() || raw::setns(ginit, flags).is_err() {
                raw::exit_now(125);
            }
            // (Its child is in ginit's pid namespace.)
            let st = Command::new(&argv[0]).args(&argv[1..]).status();
            raw::exit_now(match st {
                Ok(s) => s.code().unwrap_or_else(|| {
                    128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
                }),
                Err(_) => 125,
            })
        }
        Ok(Some(pid)) => {
            let mut relay = crate::relay::Relay::default();
            stdio
                .into_relay(&mut relay)
                .ctx("relay", "standard descriptors")?;
            let pidfd = raw::pidfd_open(pid).ctx("pidfd", "runsc exec")?;
            let _raw = match &pty {
                Some(p) => {
                    crate::tty::copy_window_size(rustix::stdio::stdin(), p.master.as_fd());
                    crate::relay::pty(&mut relay, p.master.as_fd(), true)
                        .ctx("relay", "terminal")?;
                    Some(crate::tty::RawMode::enter())
                }
                None => None,
            };
            // (Ours: the replica is the child's only.)
            let pty = pty.map(|p| p.master);
            let now = std::time::Instant::now;
            let mut deadline = plan
                .timeout_ms
                .map(|ms| now() + std::time::Duration::from_millis(ms));
            let mut kill_at = None;
            let mut timed_out = false;
            loop {
                let wait = [deadline, kill_at]
                    .into_iter()
                    .flatten()
                    .min()
                    .map_or(-1, |t| {
                        t.saturating_duration_since(now()).as_millis().min(1 << 30) as i32 + 1
                    });
                let mut with = vec![(std::os::fd::AsRawFd::as_raw_fd(&pidfd), libc::POLLIN)];
                with.extend(relay.poll_set());
                let rev = raw::poll(&with, wait).ctx("poll", "")?;
                relay.service(&rev[1..]);
                if rev[0] != 0 {
                    break;
                }
                if deadline.is_some_and(|d| now() >= d) {
                    deadline = None;
                    timed_out = true;
                    kill_inside(g, &plan.id, ginit, &ipid, libc::SIGTERM);
                    kill_at = Some(
                        now()
                            + std::time::Duration::from_millis(
                                nucleus_spec::plan::TIMEOUT_GRACE_MS,
                            ),
                    );
                }
                if kill_at.is_some_and(|k| now() >= k) {
                    kill_at = None;
                    kill_inside(g, &plan.id, ginit, &ipid, libc::SIGKILL);
                }
            }
            relay.finish();
            drop(pty);
            let code = raw::waitpid(pid, false)
                .ctx("wait", "runsc exec")?
                .map_or(125, |(_, s)| s.code());
            (code, timed_out)
        }
        Err(e) => {
            gone();
            return Err(e);
        }
    };
    let err = (code == 128)
        .then(|| fs::read_to_string(&log).ok())
        .flatten()
        .and_then(|l| nucleus_spec::gvisor::last_error(&l));
    gone();
    let failure = err.map(|e| match nucleus_spec::gvisor::start_failure_code(&e) {
        127 => StartFailure::not_found(e),
        126 => StartFailure::new(Stage::Exec, e),
        _ => StartFailure::new(Stage::Init, format!("runsc exec: {e}")),
    });
    Ok(Outcome {
        status: WaitStatus::Exited(code),
        report: None,
        failure,
        usage: Default::default(),
        traced: None,
        timed_out,
    })
}

/// Signal the process an exec started inside gVisor (`--internal-pid-file`: its pid there),
/// with `runsc kill --pid` in ginit's namespaces.
fn kill_inside(
    g: &GvisorPlan,
    id: &str,
    ginit: std::os::fd::BorrowedFd<'_>,
    ipid: &Path,
    sig: i32,
) {
    let Some(inner) = fs::read_to_string(ipid)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    else {
        return;
    };
    let argv = g.argv(&["kill", "--pid", &inner.to_string(), id, &sig.to_string()]);
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: single-threaded `nucleus exec`; the child joins namespaces, runs runsc, exits.
    match unsafe { raw::fork() } {
        Err(_) => {}
        Ok(Some(pid)) => {
            let _ = raw::waitpid(pid, false);
        }
        Ok(None) => {
            let flags = libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWPID;
            if raw::setns(ginit, flags).is_err() {
                raw::exit_now(125);
            }
            let ok = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            raw::exit_now(if ok { 0 } else { 1 })
        }
    }
}

/// `nucleus ps ID` of a gVisor sandbox: the processes inside gVisor's kernel, as `runsc ps`
/// lists them (its table: the sentry's pids), run in ginit's namespaces. At most 1 MiB.
pub fn ps(plan: &Plan, ginit: std::os::fd::BorrowedFd<'_>) -> Result<String> {
    let g = plan
        .gvisor
        .as_ref()
        .ok_or_else(|| other("ps", "not a gVisor sandbox"))?;
    let argv = g.argv(&["ps", &plan.id]);
    let (r, w) = raw::pipe().ctx("pipe", "runsc ps")?;
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: `nucleus ps` is single-threaded; the child only joins namespaces, runs runsc
    // and exits.
    match unsafe { raw::fork() }.ctx("fork", "ps")? {
        None => {
            drop(r);
            let flags = libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWPID;
            if raw::setns(ginit, flags).is_err() {
                raw::exit_now(125);
            }
            let st = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::from(w))
                .stderr(Stdio::null())
                .status();
            raw::exit_now(if st.is_ok_and(|s| s.success()) { 0 } else { 1 })
        }
        Some(pid) => {
            drop(w);
            let mut out = Vec::new();
            let read = std::io::Read::read_to_end(
                &mut std::io::Read::take(fs::File::from(r), 1 << 20),
                &mut out,
            );
            let st = raw::waitpid(pid, false).ctx("wait", "runsc ps")?;
            match (read, st) {
                (Ok(_), Some((_, WaitStatus::Exited(0)))) => {
                    Ok(String::from_utf8_lossy(&out).into_owned())
                }
                _ => Err(other("runsc ps", "failed")),
            }
        }
    }
}

/// `runsc delete --force` of a sandbox that did not run to its end, reaping meanwhile: runsc
/// waits for its sandbox and gofer processes to be gone, and an exited one stays a zombie
/// (alive to runsc's kill(pid, 0)) until its parent, this PID 1, reaps it.
fn delete(g: &GvisorPlan, id: &str) {
    let a = g.argv(&["delete", "--force", id]);
    let Ok(child) = Command::new(&a[0])
        .args(&a[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return;
    };
    let pid = child.id() as libc::pid_t;
    while let Ok(Some((p, _))) = raw::waitpid(-1, false) {
        if p == pid {
            break;
        }
    }
}

/// ginit: PID 1 of the namespaces that hold runsc's processes (see the module's comment).
fn ginit(
    plan: &Plan,
    g: &GvisorPlan,
    skeleton: &[Skeleton],
    ch: &Sandbox,
    join_files: &[fs::File],
    trees: &[Tree],
    etc: Option<OwnedFd>,
) -> ! {
    let fail = |stage, e: String| -> ! { fail_with(ch, StartFailure::new(stage, e)) };
    if let Err(e) = raw::die_with_parent() {
        fail(Stage::ParentDeathSignal, e.to_string());
    }
    let joined = crate::cgroup::join_self(join_files);
    let (sync, hold, net) = match ch.recv() {
        Ok(Some(ToChild::Go {
            sync, hold, net, ..
        })) => (sync, hold, net),
        // The runtime is gone: nothing to report to.
        _ => raw::exit_now(1),
    };
    if let Err(e) = joined {
        fail(Stage::JoinCgroup, e.to_string());
    }
    // The skeleton's modes exactly as planned.
    rustix::process::umask(rustix::fs::Mode::empty());
    if let Err(e) = ginit_mounts(g, skeleton, trees, etc) {
        fail(Stage::Mounts, e.to_string());
    }
    if let (true, Some(outer)) = (g.bridged, net.first()) {
        if let Err(e) = ginit_network(g, outer) {
            fail(Stage::Network, e);
        }
        // Egress rules on what the router forwards from the sandbox, the resolver and the
        // refusals' log in the router's namespace; the runtime serves them as native's.
        if let Some(e) = &plan.net.egress {
            if let Err(e) =
                crate::net::install_egress_at(e, Some(nucleus_spec::gvisor::ROUTER_IFACE))
            {
                fail(Stage::EgressPolicy, e.to_string());
            }
            match crate::netwatch::WatchSockets::open_at(
                nucleus_spec::gvisor::ROUTER_ADDR,
                plan.net.resolver.is_some(),
                true,
            ) {
                Ok(w) => {
                    if ch.send(FromChild::from(w)).is_err() {
                        raw::exit_now(1);
                    }
                }
                Err(e) => fail(Stage::EgressPolicy, e.to_string()),
            }
        }
    }
    let sync = if sync {
        match channel::pair::<Release, channel::Nothing>() {
            Ok((theirs, ours)) => {
                if ch
                    .send(FromChild::ExecSync(OwnedFd::from(theirs).into()))
                    .is_err()
                {
                    raw::exit_now(1);
                }
                Some(ours)
            }
            Err(e) => fail(Stage::ExecSync, e.to_string()),
        }
    } else {
        None
    };
    let id = &plan.id;
    let tty = plan.process.tty;
    let console = match tty {
        true => match raw::unix_listen(&g.console_socket()) {
            Ok(l) => Some(l),
            Err(e) => fail(Stage::Tty, format!("console socket: {e}")),
        },
        false => None,
    };
    // The workload's stdio is runsc create's (without a terminal): the sandbox keeps it.
    let created = Command::new(&g.runsc)
        .args(&g.create_argv(id, tty)[1..])
        .status();
    match created {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let log = fs::read_to_string(g.log()).unwrap_or_default();
            let msg = nucleus_spec::gvisor::last_error(&log)
                .unwrap_or_else(|| format!("exited with {s}"));
            fail(Stage::Init, format!("runsc create: {msg}"))
        }
        Err(e) => fail(Stage::Init, format!("{}: {e}", g.runsc.display())),
    }
    if let Some(l) = console {
        // runsc sent the terminal's master while it made the sandbox (queued on the socket).
        let master =
            raw::unix_accept(l.as_fd(), 5000).and_then(|c| channel::recv_one_fd(c.as_fd()));
        let _ = fs::remove_file(g.console_socket());
        match master {
            Ok(m) => {
                if ch.send(FromChild::Pty(m.into())).is_err() {
                    raw::exit_now(1);
                }
            }
            Err(e) => fail(Stage::Tty, format!("runsc's terminal: {e}")),
        }
    }
    let sandbox_pid: libc::pid_t = match fs::read_to_string(g.pid_file())
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        Some(p) => p,
        None => fail(Stage::Init, "runsc create wrote no pid".into()),
    };
    let caps = plan.process.caps.as_ref();
    let report = SecurityReport {
        root_switch: RootSwitch::Gvisor,
        capabilities_dropped: caps.is_none_or(|c| c.bounding == 0),
        capabilities_kept: caps
            .map(|c| {
                nucleus_spec::policy::CapSets::names(c.bounding)
                    .into_iter()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        no_new_privs: plan.process.no_new_privs,
        seccomp: SeccompStatus::Gvisor,
        landlock: LandlockStatus::NotApplicable,
        landlock_abi: 0,
        rootfs_sha256: None,
        private_ids: false,
        degraded: vec![],
        runtime: Some(nucleus_spec::gvisor::Runtime::Gvisor),
        gvisor: Some(GvisorReport {
            runsc: g.runsc.clone(),
            platform: g.platform.map_or("default", |p| p.as_str()).into(),
        }),
    };
    let _ = ch.send(FromChild::Applied(report));
    if let (Some(s), true) = (&sync, hold) {
        // `create`: set up; `start` says go. Its end closing first: the sandbox goes.
        if !matches!(s.recv(), Ok(Some(Release::Start))) {
            delete(g, id);
            raw::exit_now(0);
        }
    }
    if let Err(msg) = runsc(g, &g.argv(&["start", id])) {
        delete(g, id);
        let f = match nucleus_spec::gvisor::start_failure_code(&msg) {
            127 => StartFailure::not_found(msg),
            126 => StartFailure::new(Stage::Exec, msg),
            _ => StartFailure::new(Stage::Init, format!("runsc start: {msg}")),
        };
        fail_with(ch, f);
    }
    // Started: the runtime's end of the sync socket sees it close.
    drop(sync);
    let status = ginit_wait(g, id, sandbox_pid);
    // (No `runsc delete`: what it would remove, runsc's state files, the runtime removes with
    // the bundle; the gofer and whatever is left die with this pid namespace.)
    let _ = ch.send(FromChild::Exited(status));
    raw::exit_now(status.code())
}

/// Relay the forwarded signals as `runsc kill`, reap everything, until the sandbox process
/// ends: its status is the container's.
fn ginit_wait(g: &GvisorPlan, id: &str, sandbox: libc::pid_t) -> WaitStatus {
    let mut sigs = init::FORWARDED.to_vec();
    sigs.push(libc::SIGCHLD);
    let Ok(sfd) = raw::signalfd(&sigs) else {
        raw::exit_now(125)
    };
    loop {
        // (A child may have ended before the signalfd existed: reap first.)
        while let Ok(Some((pid, st))) = raw::waitpid(-1, true) {
            if pid == sandbox {
                return st;
            }
        }
        match raw::read_signal(sfd.as_fd()) {
            Ok(libc::SIGCHLD) => {}
            Ok(sig) => {
                // Reaped with the others above.
                let a = g.argv(&["kill", id, &sig.to_string()]);
                let _ = Command::new(&a[0])
                    .args(&a[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
            }
            Err(_) => raw::exit_now(125),
        }
    }
}
