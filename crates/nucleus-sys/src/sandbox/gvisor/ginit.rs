//! ginit: PID 1 of the namespaces that hold runsc's processes (see the module above).

use crate::channel::{self, FromChild, Release, Sandbox, ToChild};
use crate::init;
use crate::raw::{self, WaitStatus};
use crate::sandbox::child::fail_with;
use crate::sandbox::parent::Tree;
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
pub(super) fn ginit(
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
    // Not held for `nucleus start`: made and started by one runsc process (`run --detach`).
    let one_step = !hold;
    // The workload's stdio is runsc create's (without a terminal): the sandbox keeps it.
    let created = Command::new(&g.runsc)
        .args(&g.create_argv(id, tty, one_step)[1..])
        .status();
    match created {
        Ok(s) if s.success() => {}
        Ok(s) => {
            let log = fs::read_to_string(g.log()).unwrap_or_default();
            let msg = nucleus_spec::gvisor::last_error(&log)
                .unwrap_or_else(|| format!("exited with {s}"));
            if one_step {
                delete(g, id);
                // (runsc run said it on the workload's stderr, which is its own.)
                let f = start_failure(msg, "runsc run");
                fail_with(ch, StartFailure { said: true, ..f });
            }
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
    if !one_step {
        if let Err(msg) = runsc(g, &g.argv(&["start", id])) {
            delete(g, id);
            fail_with(ch, start_failure(msg, "runsc start"));
        }
    }
    // Started: the runtime's end of the sync socket sees it close.
    drop(sync);
    let status = ginit_wait(g, id, sandbox_pid);
    // (No `runsc delete`: what it would remove, runsc's state files, the runtime removes with
    // the bundle; the gofer and whatever is left die with this pid namespace.)
    let _ = ch.send(FromChild::Exited(status));
    raw::exit_now(status.code())
}

/// A start runsc refused, as native's: 127 for a missing program, 126 for one that may not
/// be run, else the runtime's (125) naming the verb.
fn start_failure(msg: String, verb: &str) -> StartFailure {
    match nucleus_spec::gvisor::start_failure_code(&msg) {
        127 => StartFailure::not_found(msg),
        126 => StartFailure::new(Stage::Exec, msg),
        _ => StartFailure::new(Stage::Init, format!("{verb}: {msg}")),
    }
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
