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

mod ginit;
mod verbs;

pub use verbs::{exec, ps};

use super::parent::{finish_run, parent_cgroup, parent_etc_view, parent_prepare_trees};
use super::wait::{parent_wait, Control};
use super::{Detach, Observer, Outcome};
use crate::channel::{self, FromChild, ToChild};
use crate::error::{other, Context, Result};
use crate::init;
use crate::raw::{self, Forked};
use nucleus_spec::gvisor::GvisorPlan;
use nucleus_spec::plan::Plan;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};

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
    // (Host network: ginit stays in the host's network namespace, where runsc's sentry uses
    // the host's stack. runsc's control socket, an abstract one in Debian 12's runsc, is then
    // in the host's namespace too: runsc's control server serves its own uid only.)
    let net = if g.host_network {
        0
    } else {
        libc::CLONE_NEWNET
    };
    let flags =
        (libc::CLONE_NEWPID | libc::CLONE_NEWNS | net | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS)
            as u64;
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
            ginit::ginit(plan, g, &bundle.skeleton, &cch, &join_files, &trees, etc)
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
    let mut out = parent_wait(
        pid,
        &pidfd,
        &pch,
        &sfd,
        obs,
        control.as_mut(),
        plan,
        relay,
        false,
    )?;
    drop(host_net);
    finish_run(&mut out, cgroup, &trees, obs)?;
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
