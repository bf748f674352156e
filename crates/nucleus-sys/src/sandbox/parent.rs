//! The runtime's side before the sandbox runs: prepared trees, the /etc view, id maps,
//! idmapped mounts, the cgroup, and `parent_run` (clone3 into the namespaces, "go").

use super::child::child_main;
use super::teardown;
use super::wait::{parent_wait, Control};
use super::{net_in_thread, ns_flags, Detach, Observer, Outcome};
use crate::cgroup::Cgroup;
use crate::channel::{self, FromChild, ToChild};
use crate::copy;
use crate::error::{other, Context, Result};
use crate::idslot::{IdSlot, WIDTH};
use crate::init;
use crate::mount;
use crate::net;
use crate::raw::{self, Forked, MOUNT_ATTR_IDMAP};
use crate::trace;
use nucleus_spec::mounts::MountOp;
use nucleus_spec::plan::{IdMapPlan, OnFailure, Plan};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(super) struct Tree {
    /// The parent's own (not idmapped) view, for copying back.
    pub(super) view: OwnedFd,
    src: PathBuf,
    copy_back: bool,
    max_bytes: u64,
}

/// Once the sandbox is gone: its usage (the cgroup's counters, else the reaped children's CPU
/// time), its cgroup removed, and the copy-in-out workspace copied back if the workload ran.
pub(super) fn finish_run(
    out: &mut Outcome,
    cgroup: Option<Cgroup>,
    trees: &[Tree],
    obs: &mut dyn Observer,
) -> Result<()> {
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
    Ok(())
}

pub(super) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub(super) fn parent_prepare_trees(plan: &Plan) -> Result<Vec<Tree>> {
    let mut out = Vec::new();
    for t in &plan.prepared {
        if !t.secrets.is_empty() {
            out.push(Tree {
                view: secrets_tmpfs(t, plan.process.uid, plan.process.gid)?,
                src: PathBuf::from("/run/secrets"),
                copy_back: false,
                max_bytes: t.max_bytes,
            });
            continue;
        }
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

/// The secrets' tmpfs: each secret read (by the runtime, root) from its host file, never
/// following a link someone else planted (`resolve`), into a file of its own, 0400, owned by
/// the workload (ids as the sandbox sees them: the attached clone is idmapped); the directory
/// 0500.
fn secrets_tmpfs(t: &nucleus_spec::plan::PreparedTree, uid: u32, gid: u32) -> Result<OwnedFd> {
    use std::io::Read;
    let (size, uid_s, gid_s) = (t.max_bytes.to_string(), uid.to_string(), gid.to_string());
    let m = raw::detached_tmpfs(&[
        ("mode", "0500"),
        ("size", &size),
        ("uid", &uid_s),
        ("gid", &gid_s),
    ])
    .ctx("create tmpfs for", "secrets")?;
    let max = nucleus_spec::config::MAX_SECRET_BYTES;
    for s in &t.secrets {
        let what = || format!("{} ({})", s.name, s.src.display());
        let at = crate::resolve::open_trusted(&s.src).ctx("secret", what())?;
        // (Its type first: opening a fifo would wait.)
        let st = rustix::fs::fstat(&at)
            .map_err(std::io::Error::from)
            .ctx("secret", what())?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(other("secret", format!("{}: not a regular file", what())));
        }
        let f = fs::File::open(fd_path(at.as_fd())).ctx("secret", what())?;
        let md = f.metadata().ctx("secret", what())?;
        if md.len() > max {
            return Err(other(
                "secret",
                format!("{}: larger than {} KiB", what(), max >> 10),
            ));
        }
        let mut bytes = Vec::with_capacity(md.len() as usize);
        f.take(max + 1)
            .read_to_end(&mut bytes)
            .ctx("read secret", what())?;
        let out = rustix::fs::openat(
            &m,
            s.name.as_str(),
            rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::EXCL
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o400),
        )
        .map_err(std::io::Error::from)
        .ctx("write secret", &s.name)?;
        rustix::fs::fchown(
            &out,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
        )
        .map_err(std::io::Error::from)
        .ctx("chown secret", &s.name)?;
        std::io::Write::write_all(&mut fs::File::from(out), &bytes).ctx("write secret", &s.name)?;
        // (The buffer is dropped here; the value lives only in the tmpfs.)
        bytes.fill(0);
    }
    Ok(m)
}

/// Hold the plan's /etc view (made when missing) and clone it detached: read-only, noexec,
/// nosuid, nodev. The clone is made here, not by the sandbox: the view lies under the state
/// root, which only the runtime may search.
pub(super) fn parent_etc_view(v: &nucleus_spec::plan::EtcView) -> Result<(fs::File, OwnedFd)> {
    let held = crate::etcview::hold(v, Path::new("/etc"))?;
    let m = raw::open_tree_clone(Some(held.as_fd()), Path::new(""), false)
        .ctx("clone", v.dir().display())?;
    setattr_maybe_idmapped(m.as_fd(), mount::bind_attrs(true, true), None)
        .ctx("make read-only", v.dir().display())?;
    trace::mark("etc view");
    Ok((held, m))
}

pub(super) fn parent_write_maps(
    pid: libc::pid_t,
    idmap: &IdMapPlan,
    slot: Option<&IdSlot>,
) -> Result<()> {
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
        (IdMapPlan::Host, _) => return Ok(()),
        (IdMapPlan::Explicit { uid, gid }, _) => {
            let lines = |r: &[nucleus_spec::plan::IdRange]| {
                r.iter()
                    .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
                    .collect::<String>()
            };
            (lines(uid), lines(gid))
        }
        _ => return Err(other("id map", "no id range reserved")),
    };
    fs::write(format!("/proc/{pid}/uid_map"), uid_map).ctx("write", "uid_map")?;
    fs::write(format!("/proc/{pid}/gid_map"), gid_map).ctx("write", "gid_map")
}

/// Set mount attributes on a detached clone, idmapped to `userns` when given. A filesystem or
/// kernel without idmapped-mount support (tmpfs before Linux 6.3) answers EINVAL: the clone is
/// then used without the idmap. Returns whether the idmap was applied.
pub(super) fn setattr_maybe_idmapped(
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
pub(super) fn parent_idmapped_mounts(
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

pub(super) fn seed() -> u32 {
    let mut b = [0u8; 4];
    raw::fill_random(&mut b);
    u32::from_ne_bytes(b)
}

/// Create the sandbox's cgroup. Strict modes refuse when it or a limit cannot be applied;
/// agent mode reports it and goes on.
pub(super) fn parent_cgroup(plan: &Plan, obs: &mut dyn Observer) -> Result<Option<Cgroup>> {
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
        // (Quiet: nobody asked for a limit, and the caller may have no cgroup to make one in.)
        Err(_) if cp.quiet_failure => Ok(None),
        Err(e) if refuse => Err(other(
            "cgroup",
            format!("{e}; strict modes refuse to start without resource limits"),
        )),
        Err(e) => {
            obs.degraded(&format!("resource limits are NOT applied: {e}"));
            Ok(None)
        }
    }
}

pub(super) fn parent_run(
    plan: &Plan,
    obs: &mut dyn Observer,
    detach: Option<&Detach>,
) -> Result<Outcome> {
    let sfd = raw::signalfd(init::FORWARDED).ctx("signalfd", "")?;
    let slot = match plan.idmap {
        IdMapPlan::PrivateRange { .. } => Some(IdSlot::acquire(seed())?),
        IdMapPlan::Caller { .. } | IdMapPlan::Host | IdMapPlan::Explicit { .. } => None,
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
    // An attested root: its sealed image, checked against its verdict once more (the binary
    // verified or found it just before) and mounted detached; the child attaches it.
    let root_image = match &plan.attested {
        Some(a) => Some(crate::attest::root_mount(
            &a.cache,
            &a.sha256,
            &a.source,
            &a.manifest,
        )?),
        None => None,
    };
    trace::mark("attested root");
    let (pch, cch) = channel::pair::<ToChild, FromChild>()?;
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
            let etc_mount = etc_view.map(|(_, m)| m);
            child_main(
                plan,
                cch,
                &join_files,
                etc_mount,
                cgroup_view,
                None,
                root_image,
            )
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
    let host_net = plan
        .net
        .bridge
        .iter()
        .chain(&plan.net.attached)
        .map(|b| net::bridge_host_side(b, &plan.id, pid))
        .collect::<Result<Vec<_>>>()
        .map_err(kill_child)?;
    let slirp = match &plan.net.slirp {
        Some(s) => Some(net::Slirp::start(s, pid).map_err(kill_child)?),
        None => None,
    };
    let host_base = slot.as_ref().map(|s| s.host_base());
    let (binds, prepared) =
        parent_idmapped_mounts(plan, pid, &trees, host_base, obs).map_err(kill_child)?;
    // Ours close once sent.
    pch.send(ToChild::Go {
        idmapped: binds.into_iter().map(Into::into).collect(),
        prepared: prepared.into_iter().map(Into::into).collect(),
        sync: detach.is_some(),
        hold: detach.is_some_and(|d| d.hold),
        net: host_net.iter().map(|h| h.assigned.clone()).collect(),
        pid: 0,
    })
    .ctx("send", "go")
    .map_err(kill_child)?;
    // The record's pid (the record is listed already) is written at the lowest priority: on
    // 2 CPUs that write would otherwise take a CPU from the sandbox's mounts and its network
    // thread, the start's critical path (docs/benchmarks.md, session 22). Only where it may
    // come back (lowering is free, raising back needs CAP_SYS_NICE in the host's namespace).
    let nice = crate::security::may_raise_priority()
        .then(|| rustix::process::getpriority_process(None).ok())
        .flatten()
        .filter(|_| rustix::process::setpriority_process(None, 19).is_ok());
    obs.started(pid, &cgroup.as_ref().map(|c| c.paths()).unwrap_or_default());
    if let Some(n) = nice {
        let _ = rustix::process::setpriority_process(None, n);
    }

    let mut control = detach.map(Control::new);
    // Report first, clean after (a foreground run that needs nothing from the sandbox after
    // its exit): a helper forked now, while the sandbox sets itself up, finishes the teardown
    // (sandbox/teardown.rs). Not with host-side network state (a claim is taken over once its
    // holder, this process, is gone), a process of the cgroup driver's, a tree to copy back,
    // or anything served until the end (a terminal, a seccomp listener, egress supervision).
    let early = detach.is_none()
        && obs.report_early()
        && slirp.is_none()
        && host_net.is_empty()
        && cgroup.as_ref().is_some_and(|c| !c.holds_process())
        && trees.iter().all(|t| !t.copy_back)
        && !plan.process.tty
        && plan.seccomp_notify.is_none()
        && plan.net.egress.is_none()
        && plan.net.resolver.is_none();
    let hand_over = match early.then(teardown::fork) {
        Some(Ok(teardown::Side::Helper(rx))) => {
            // Not the runtime's streams, channel or signals: a copy of the workload's stdin
            // pipe here would keep EOF (Ctrl-D) from it, one of the channel would hide the
            // runtime's death from the sandbox's check after "go".
            drop(relay);
            drop(pch);
            drop(sfd);
            let held = teardown::Held {
                pidfd,
                cgroup,
                slot,
                etc_view: _etc_view_held,
                trees,
            };
            teardown::helper_main(rx, held, plan, obs)
        }
        Some(Ok(teardown::Side::Runtime(h))) => Some(h),
        Some(Err(_)) | None => None,
    };
    trace::mark("helper forked");
    let out = parent_wait(
        pid,
        &pidfd,
        &pch,
        &sfd,
        obs,
        control.as_mut(),
        plan,
        relay,
        hand_over.is_some(),
    );
    let mut out = match (out, hand_over) {
        (Ok(mut out), Some(h)) if out.init_running => {
            // (The OOM kills alone when nobody reads the rest: one file on the way.)
            out.usage = match (&cgroup, obs.wants_usage()) {
                (Some(c), true) => c.usage_at_report(),
                (Some(c), false) => crate::cgroup::Usage {
                    oom_kills: c.oom_kills(),
                    ..Default::default()
                },
                (None, _) => Default::default(),
            };
            if out.usage.cpu_usec.is_none() && obs.wants_usage() {
                out.usage.cpu_usec = Some(raw::children_cpu_usec());
            }
            h.early();
            out.handed_over = true;
            // The helper holds and releases all of it; nothing is released on this side.
            std::mem::forget((cgroup, slot, _etc_view_held, trees, pidfd));
            return Ok(out);
        }
        (out, h) => {
            if let Some(h) = h {
                h.sync();
            }
            out?
        }
    };
    drop(slirp);
    drop(host_net);
    finish_run(&mut out, cgroup, &trees, obs)?;
    drop(slot);
    Ok(out)
}
