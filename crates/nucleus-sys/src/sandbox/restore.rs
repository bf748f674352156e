//! `nucleus restore`: a detached sandbox started from a CRIU image instead of a clone. The
//! monitor makes what the sandbox had from the runtime (its id range, its cgroup with its
//! limits, its /etc view, its logs), runs `criu restore` in that cgroup, and then watches the
//! restored PID 1, its own child, as it watches a sandbox it started (`parent_wait`).
//! docs/checkpoint-design.md has the recipe and why each step is there.

use super::parent::{finish_run, parent_cgroup};
use super::wait::{parent_wait, Control};
use super::{Detach, Observer, Outcome};
use crate::channel::{self, FromChild, ToChild};
use crate::checkpoint::failure_of;
use crate::error::{other, Context, Result};
use crate::idslot::IdSlot;
use crate::init;
use crate::raw::{self, Forked};
use nucleus_spec::checkpoint::{self as ck, CheckpointInfo, RootEntry, Stdio};
use nucleus_spec::plan::Plan;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a restore starts from.
pub struct Restore {
    /// The image directory (CRIU's images in [`ck::IMAGES`]).
    pub dir: PathBuf,
    pub criu: PathBuf,
    pub info: CheckpointInfo,
    /// The state root (it holds the /etc views, 0700).
    pub state_root: PathBuf,
    /// The host id range the images say now (the caller took it, or moved them to one it
    /// took: a copy beside its running source), held until the restored sandbox is gone.
    pub slot: IdSlot,
    /// The caller stays and relays the sandbox's output (`restore` without -d): no id printed.
    pub foreground: bool,
}

/// Descriptor numbers the restored files are handed to CRIU at (`--inherit-fd`): above
/// CRIU's standard ones and the images' ([`IMAGES_FD`]), below its service descriptors.
const INHERIT_BASE: i32 = 5;
/// criu's images directory, open at this number (`-D /proc/self/fd/4`: the state root, where
/// an image directory may be, is overmounted in its mount namespace).
const IMAGES_FD: i32 = 4;

pub(super) fn restore_run(
    plan: &Plan,
    obs: &mut dyn Observer,
    detach: &Detach,
    r: &Restore,
) -> Result<Outcome> {
    let sfd = raw::signalfd(init::FORWARDED).ctx("signalfd", "")?;
    let base = r.slot.host_base();
    let cgroup = parent_cgroup(plan, obs)?;
    let join_files = match &cgroup {
        Some(c) => c.self_join_files()?,
        None => Vec::new(),
    };
    // Bridge networking: the saved slots again (the image's addresses and MACs are theirs),
    // the bridge, the guard's entries and the published ports, held until the sandbox is
    // gone; CRIU makes each veth pair and attaches its host end.
    let bridged = ck::veth_externals(plan, &r.info.bridge_slots)
        .map_err(|e| other("restore", e))
        .and_then(|veths| {
            let held = ck::bridges(plan)
                .zip(&r.info.bridge_slots)
                .map(|(b, i)| crate::net::bridge_restore_side(b, &plan.id, *i))
                .collect::<Result<Vec<_>>>()?;
            Ok((veths, held))
        });
    let (veths, host_net) = match bridged {
        Ok(v) => v,
        Err(e) => {
            if let Some(c) = cgroup {
                let _ = c.remove();
            }
            return Err(e);
        }
    };
    let etc_held = match &plan.etc_view {
        Some(v) => Some((crate::etcview::hold(v, Path::new("/etc"))?, v.dir())),
        None => None,
    };
    // CRIU reopens the inherited logs (our standard output and error, as a `run -d` workload
    // has them) as the restored task, and checks they have the mode they were saved with.
    let (uid, gid) = (
        Some(rustix::fs::Uid::from_raw(base)),
        Some(rustix::fs::Gid::from_raw(base)),
    );
    for s in [rustix::stdio::stdout(), rustix::stdio::stderr()] {
        rustix::fs::fchown(s, uid, gid)
            .map_err(std::io::Error::from)
            .ctx("chown", "the logs")?;
        rustix::fs::fchmod(s, rustix::fs::Mode::from_raw_mode(0o600))
            .map_err(std::io::Error::from)
            .ctx("chmod", "the logs")?;
    }
    let images_dir = r.dir.join(ck::IMAGES);
    open_images(&images_dir)?;
    let null = fs::OpenOptions::new()
        .read(true)
        .open("/dev/null")
        .ctx("open", "/dev/null")?;
    // Each external file once, at its descriptor.
    let mut inherit: Vec<(i32, String, Stdio)> = Vec::new();
    for e in &r.info.externals {
        if !inherit.iter().any(|(_, k, _)| *k == e.key()) {
            inherit.push((INHERIT_BASE + inherit.len() as i32, e.key(), e.stdio));
        }
    }
    let root = r.state_root.join(".criu-root");
    let images_at = PathBuf::from(format!("/proc/self/fd/{IMAGES_FD}"));
    let pairs: Vec<(i32, String)> = inherit.iter().map(|(n, k, _)| (*n, k.clone())).collect();
    let argv = ck::restore_argv(
        &r.criu,
        &images_at,
        &root,
        &pairs,
        r.info.tcp_established,
        &veths,
    );
    let argv = crate::checkpoint::c_argv(&argv)?;
    let entries = ck::root_entries(plan, &|p| p.is_dir());
    let setup = CriuSetup {
        state_root: &r.state_root,
        etc_view: etc_held.as_ref().map(|(f, dir)| (f, dir.as_path())),
        root: &root,
        uid_base: base,
        entries: &entries,
        images: &images_dir,
        seal: plan
            .mounts
            .iter()
            .any(|m| matches!(m, nucleus_spec::mounts::MountOp::RemountRootReadonly)),
        null: &null,
        inherit: &inherit,
    };
    let (said, st) = run_criu(cgroup.as_ref(), join_files, || setup.run(&argv))?;
    let ok = matches!(st, Some((_, raw::WaitStatus::Exited(0))));
    let fail = |cgroup: Option<crate::cgroup::Cgroup>, msg: String| {
        if let Some(c) = cgroup {
            let _ = c.remove();
        }
        other("criu", format!("restore: {msg}"))
    };
    if !ok {
        let msg = failure(said, st, &images_dir.join(ck::RESTORE_LOG));
        return Err(fail(cgroup, msg));
    }
    let pidfile = images_dir.join(ck::PIDFILE);
    let Some(pid) = take_pid(&pidfile) else {
        return Err(fail(cgroup, format!("no pid in {}", pidfile.display())));
    };
    let pidfd = raw::pidfd_open(pid).ctx("pidfd_open", pid)?;
    // CRIU 3.17 names its network lock after the restored PID 1 when it removes it, but
    // after the dumped one when it makes it: the dumped one's table is left, dropping every
    // packet of the sandbox's network namespace. The egress supervision's sockets (the
    // resolver's, the refusal log's) were the saved sandbox's runtime's, not in the image:
    // made again in the restored namespace (its egress rules came back with it).
    let watch = match in_netns(pidfd.as_fd(), || {
        let watch = (plan.net.egress.is_some() || plan.net.resolver.is_some())
            .then(|| {
                crate::netwatch::WatchSockets::open(
                    plan.net.resolver.is_some(),
                    plan.net.egress.is_some(),
                )
            })
            .transpose();
        crate::net::delete_inet_table(&format!("CRIU-{}", r.info.dumped_pid))?;
        watch
    }) {
        Ok(w) => w,
        Err(e) => {
            let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = raw::waitpid(pid, false);
            return Err(fail(cgroup, e.to_string()));
        }
    };
    obs.started(pid, &cgroup.as_ref().map(|c| c.paths()).unwrap_or_default());
    let report = r.info.protections.clone().unwrap_or_default();
    obs.applied(&report);
    obs.exec_result(None);
    let mut control = Control::new(detach);
    control.finish(None);
    // Nothing in the restored sandbox holds a channel of ours (the workload's exec closed it):
    // the wait sees it closed and watches the process.
    let (pch, cch) = channel::pair::<ToChild, FromChild>()?;
    if let Some(w) = watch {
        cch.send(w.into()).ctx("hand over", "egress sockets")?;
    }
    drop(cch);
    let mut out = parent_wait(
        pid,
        &pidfd,
        &pch,
        &sfd,
        obs,
        Some(&mut control),
        plan,
        crate::relay::Relay::default(),
        false,
    )?;
    // (It ran: the end is the workload's, recorded as any other's.)
    out.report.get_or_insert(report);
    finish_run(&mut out, cgroup, &[], obs)?;
    drop(host_net);
    drop(etc_held);
    Ok(out)
}

/// How long a restore's CRIU may take (a 100 MiB workload takes 2.4 s under the test VM's
/// emulated CPU): CRIU is an outside program, and one that hangs (seen once in the test VM
/// on a failing restore) must not hold the restore, its caller and the id range for ever.
const CRIU_RESTORE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// CRIU's status, or None when it ran past [`CRIU_RESTORE_LIMIT`] and was killed (what it
/// restored so far is in the sandbox's cgroup, killed with it by the caller).
fn wait_bounded(pid: libc::pid_t) -> Result<Option<(libc::pid_t, raw::WaitStatus)>> {
    let end = std::time::Instant::now() + CRIU_RESTORE_LIMIT;
    loop {
        if let Some(st) = raw::waitpid(pid, true).ctx("wait", "criu")? {
            return Ok(Some(st));
        }
        if std::time::Instant::now() > end {
            let _ = raw::kill(pid, libc::SIGKILL);
            let _ = raw::waitpid(pid, false);
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Fork, join the sandbox's cgroup (`into` on v2 at the fork, `join_files` on v1), and run
/// `exec` there (it execs CRIU, returning only its failure, which comes back here); then wait
/// for CRIU, bounded. What the child said on failure, and CRIU's status (None: killed).
fn run_criu(
    cgroup: Option<&crate::cgroup::Cgroup>,
    join_files: Vec<fs::File>,
    exec: impl FnOnce() -> crate::error::SysError,
) -> Result<(String, Option<(libc::pid_t, raw::WaitStatus)>)> {
    let (err_r, low) = raw::pipe().ctx("pipe", "restore")?;
    // (Above the numbers the child sets up for CRIU, which it closes first: its failure
    // still comes back. The low copy goes now: a writer left open here, the read below would
    // wait for ever.)
    let err_w = rustix::io::fcntl_dupfd_cloexec(&low, 20)
        .map_err(std::io::Error::from)
        .ctx("dup", "restore pipe")?;
    drop(low);
    let into = cgroup.and_then(|c| c.clone_into());
    #[allow(unsafe_code)] // raw::fork_into: the caller must be single-threaded.
    // SAFETY: restores run single-threaded (the monitor before its wait, `nucleus restore`).
    let forked = unsafe { raw::fork_into(0, into) }.ctx("fork", "criu")?;
    let criu_pid = match forked {
        Forked::Child => {
            drop(err_r);
            // CRIU as any program starts: no signal blocked (the monitor and a foreground
            // restore block the ones they relay), every disposition the default. (CRIU
            // learns of a restored task's death by SIGCHLD: blocked, a failing restore would
            // wait for ever.)
            raw::reset_signals();
            let e = match crate::cgroup::join_self(&join_files) {
                Ok(()) => exec(),
                Err(e) => other("join cgroup", e),
            };
            let _ = rustix::io::write(&err_w, e.to_string().as_bytes());
            raw::exit_now(125)
        }
        Forked::Parent { pid, .. } => pid,
    };
    drop(err_w);
    drop(join_files);
    let mut said = String::new();
    let _ = std::io::Read::read_to_string(&mut fs::File::from(err_r), &mut said);
    Ok((said, wait_bounded(criu_pid)?))
}

/// The restored process's host pid from CRIU's pid file, which goes (never 0, 1 or negative:
/// kill and waitpid read those as groups).
fn take_pid(pidfile: &Path) -> Option<libc::pid_t> {
    let pid = fs::read_to_string(pidfile).ok()?.trim().parse().ok();
    let _ = fs::remove_file(pidfile);
    pid.filter(|p: &libc::pid_t| *p > 1)
}

/// Exec CRIU (`argv`) with the caller's PATH only: it runs ip, iptables-restore and tar from
/// it (the operator's). Returns only on failure.
fn exec_criu(argv: &[CString]) -> crate::error::SysError {
    let argv_c = raw::CStrArray::new(argv);
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let env = [CString::new(format!("PATH={path}")).unwrap_or_default()];
    let env_c = raw::CStrArray::new(&env);
    other("exec", raw::execve(&argv[0], &argv_c, &env_c))
}

/// A failed restore in one line: what the child said before CRIU, CRIU's timeout, or the last
/// error of its `log`.
fn failure(said: String, st: Option<(libc::pid_t, raw::WaitStatus)>, log: &Path) -> String {
    if !said.is_empty() {
        return said;
    }
    let last = failure_of(log);
    match st {
        None => format!(
            "criu did not finish within {} s and was killed{}",
            CRIU_RESTORE_LIMIT.as_secs(),
            last.map(|l| format!(" (its last error: {l})"))
                .unwrap_or_default()
        ),
        Some(st) => last.unwrap_or_else(|| format!("it failed ({st:?})")),
    }
}

/// Restored tasks read some images themselves, through criu's descriptor of the directory,
/// some before their user namespace has its map (they have no uid then, so no owner would
/// do: seen as a rare EACCES on timens-0.img): the directory is searchable by all (0711).
/// The image directory above it stays 0700 (`checkpoint` makes it so): nobody else reaches
/// the files.
fn open_images(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).ctx("chmod", dir.display())
}

/// `f` in the network namespace of the process `pidfd` names, then back in ours. (setns
/// through the pidfd: no /proc path of the sandbox's.)
fn in_netns<T>(pidfd: std::os::fd::BorrowedFd<'_>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let ours = fs::File::open("/proc/self/ns/net").ctx("open", "network namespace")?;
    raw::setns(pidfd, libc::CLONE_NEWNET).ctx("setns", "the sandbox's netns")?;
    let r = f();
    raw::setns(ours.as_fd(), libc::CLONE_NEWNET).ctx("setns", "back")?;
    r
}

/// What the criu child sets up before its exec.
struct CriuSetup<'a> {
    state_root: &'a Path,
    etc_view: Option<(&'a fs::File, &'a Path)>,
    root: &'a Path,
    uid_base: u32,
    entries: &'a [RootEntry],
    images: &'a Path,
    /// The plan sealed the root read-only.
    seal: bool,
    null: &'a fs::File,
    inherit: &'a [(i32, String, Stdio)],
}

impl CriuSetup<'_> {
    /// In the child: a mount namespace of its own where the state root is a 0711 tmpfs with
    /// the /etc view at its old path (the restored task, the sandbox's root, opens the
    /// external binds itself) and the restored root's own content on a tmpfs beside it; the
    /// inherited files at their numbers; then exec criu. Returns only on failure.
    fn run(&self, argv: &[CString]) -> crate::error::SysError {
        match self.prepare() {
            Ok(()) => {}
            Err(e) => return e,
        }
        exec_criu(argv)
    }

    fn prepare(&self) -> Result<()> {
        raw::unshare(libc::CLONE_NEWNS).ctx("unshare", "mount namespace")?;
        raw::make_private(Path::new("/")).ctx("make mounts private", "/")?;
        // (Opened in this mount namespace, before the overmount: criu works in it, and mounts
        // there; an image directory may be under the state root.)
        let images = fs::File::open(self.images).ctx("open", self.images.display())?;
        // (Opened in this mount namespace, held across the overmount: the view is bound from
        // its descriptor. A descriptor opened before the unshare names a mount of the old
        // namespace, which cannot be bound here.)
        let view_fd = self
            .etc_view
            .map(|(_, dir)| fs::File::open(dir))
            .transpose()
            .ctx("open", "etc view")?;
        raw::mount_fs(
            "tmpfs",
            self.state_root,
            libc::MS_NOSUID | libc::MS_NODEV,
            Some("mode=0711,size=64k"),
        )
        .ctx("mount tmpfs", self.state_root.display())?;
        if let (Some((_, dir)), Some(fd)) = (self.etc_view, &view_fd) {
            raw::mkdir_p(dir, 0o755).ctx("mkdir", dir.display())?;
            let from = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            raw::bind(&from, dir, false).ctx("bind", dir.display())?;
        }
        // (Closed now: the close_range below must leave no owned descriptor behind, whose
        // drop would find its number closed.)
        drop(view_fd);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(self.root)
            .ctx("mkdir", self.root.display())?;
        let opts = format!("mode=0755,size=4m,uid={0},gid={0}", self.uid_base);
        raw::mount_fs(
            "tmpfs",
            self.root,
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(&opts),
        )
        .ctx("mount tmpfs", self.root.display())?;
        for e in self.entries {
            let at = self
                .root
                .join(e.path().strip_prefix("/").unwrap_or(e.path()));
            match e {
                RootEntry::Dir { mode, .. } => {
                    fs::DirBuilder::new()
                        .mode(*mode)
                        .create(&at)
                        .ctx("mkdir", at.display())?;
                    fs::set_permissions(&at, fs::Permissions::from_mode(*mode))
                        .ctx("chmod", at.display())?;
                }
                RootEntry::File { contents, mode, .. } => {
                    let mut f = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(*mode)
                        .open(&at)
                        .ctx("create", at.display())?;
                    f.write_all(contents.as_bytes())
                        .ctx("write", at.display())?;
                    f.set_permissions(fs::Permissions::from_mode(*mode))
                        .ctx("chmod", at.display())?;
                }
                RootEntry::Symlink { target, .. } => {
                    std::os::unix::fs::symlink(target, &at).ctx("symlink", at.display())?;
                }
            }
        }
        // Sealed as the saved root was (read-only: everything writable is a mount of its own);
        // CRIU mounts the rest on it as it finds it.
        if self.seal {
            raw::mount_setattr(None, self.root, false, raw::MOUNT_ATTR_RDONLY, 0, None)
                .ctx("make root read-only", self.root.display())?;
        }
        // The inherited files at their numbers (every other descriptor above them first).
        let high = |f: &fs::File| -> Result<OwnedFd> {
            rustix::io::fcntl_dupfd_cloexec(f, 20)
                .map_err(std::io::Error::from)
                .ctx("dup", "inherited file")
        };
        let images = {
            let hi = high(&images)?;
            drop(images);
            hi
        };
        let null = high(self.null)?;
        let out = rustix::stdio::stdout();
        let err = rustix::stdio::stderr();
        let mut sources = Vec::new();
        for (n, _, stdio) in self.inherit {
            let src = match stdio {
                Stdio::Stdin => high(self.null)?,
                Stdio::Stdout => rustix::io::fcntl_dupfd_cloexec(out, 20)
                    .map_err(std::io::Error::from)
                    .ctx("dup", "stdout")?,
                Stdio::Stderr => rustix::io::fcntl_dupfd_cloexec(err, 20)
                    .map_err(std::io::Error::from)
                    .ctx("dup", "stderr")?,
            };
            sources.push((*n, src));
        }
        raw::close_range(3, 19).ctx("close", "descriptors")?;
        sources.push((IMAGES_FD, images));
        for (n, src) in sources {
            let d = rustix::io::fcntl_dupfd_cloexec(&src, n)
                .map_err(std::io::Error::from)
                .ctx("dup", n)?;
            if d.as_raw_fd() != n {
                return Err(other("dup", format!("descriptor {n} is taken")));
            }
            raw::clear_cloexec_number(n).ctx("inherit", n)?;
            let _ = d.into_raw_fd();
        }
        // Whatever else is open (not close-on-exec) stays out of CRIU.
        raw::close_range_cloexec((INHERIT_BASE + self.inherit.len() as i32) as u32)
            .ctx("close", "descriptors")?;
        // criu's own output: nowhere (it logs to its file in the images).
        use rustix::stdio::{dup2_stderr, dup2_stdin, dup2_stdout};
        for dup in [
            dup2_stdin::<&OwnedFd>,
            dup2_stdout::<&OwnedFd>,
            dup2_stderr::<&OwnedFd>,
        ] {
            dup(&null)
                .map_err(std::io::Error::from)
                .ctx("dup", "/dev/null")?;
        }
        Ok(())
    }
}

/// What `restore` of an OCI container (runc's verb) starts from.
pub struct OciRestore<'a> {
    pub criu: &'a Path,
    /// CRIU's images (`--image-path`), and where its log and pid file go (`--work-path`).
    pub images: &'a Path,
    pub work: Option<&'a Path>,
    pub info: &'a nucleus_spec::oci::checkpoint::OciCheckpointInfo,
    pub options: &'a nucleus_spec::oci::checkpoint::CriuOptions,
}

/// The descriptor number the joined network namespace is handed to CRIU at (above the
/// standard ones, which are the caller's, handed on as the saved ones).
const NETNS_FD: i32 = 3;

/// `restore` of an OCI container: its cgroup made again from config.json (with its limits),
/// CRIU's images restored onto the bundle's root in a mount namespace of CRIU's own, the
/// saved standard descriptors replaced by the caller's of the same numbers (as runc does:
/// conmon's new pipes), a joined network namespace handed over as config.json names it. The
/// restored process is the caller's child; on failure nothing is left.
pub fn restore_oci(plan: &Plan, r: &OciRestore<'_>) -> Result<super::Created> {
    use nucleus_spec::mounts::RootSource;
    use nucleus_spec::oci::checkpoint as ock;
    let RootSource::Dir {
        path: root,
        readonly,
    } = &plan.root
    else {
        return Err(other("restore", "not an OCI plan"));
    };
    let netns = plan
        .namespaces
        .join
        .iter()
        .find(|j| j.kind == nucleus_spec::plan::NsKind::Net)
        .map(|j| fs::File::open(&j.path).ctx("open", j.path.display()))
        .transpose()?;
    if netns.is_some() != r.info.netns_external {
        return Err(other(
            "restore",
            if r.info.netns_external {
                "the saved container had joined a network namespace: config.json must name one \
                 (linux.namespaces, network with a path)"
            } else {
                "config.json joins a network namespace; the saved container had its own, which \
                 is in the image"
            },
        ));
    }
    let logs = r.work.unwrap_or(r.images);
    let pidfile = logs.join(ck::PIDFILE);
    let _ = fs::remove_file(&pidfile);
    let argv = ock::restore_argv(
        r.criu,
        (r.images, r.work),
        (root, &pidfile),
        &r.info.stdio,
        (
            netns.as_ref().map(|_| NETNS_FD),
            &ock::bind_mounts(&plan.mounts),
        ),
        r.options,
    );
    let argv = crate::checkpoint::c_argv(&argv)?;
    let cgroup = parent_cgroup(plan, &mut super::NoObserver)?;
    let join_files = match &cgroup {
        Some(c) => c.self_join_files()?,
        None => Vec::new(),
    };
    let (said, st) = run_criu(cgroup.as_ref(), join_files, || {
        oci_criu(&argv, root, *readonly, netns.as_ref())
    })?;
    drop(netns);
    let fail = |cgroup: Option<crate::cgroup::Cgroup>, msg: String| {
        if let Some(c) = cgroup {
            let _ = c.remove();
        }
        other("criu", format!("restore: {msg}"))
    };
    if !matches!(st, Some((_, raw::WaitStatus::Exited(0)))) {
        let msg = failure(said, st, &logs.join(ck::RESTORE_LOG));
        return Err(fail(cgroup, msg));
    }
    let Some(pid) = take_pid(&pidfile) else {
        return Err(fail(cgroup, format!("no pid in {}", pidfile.display())));
    };
    // (As for a native restore: CRIU 3.17 leaves its lock table, named after the dumped
    // process, in the process's network namespace: its own, or the joined one.)
    let dropped = raw::pidfd_open(pid).ctx("pidfd_open", pid).and_then(|fd| {
        in_netns(fd.as_fd(), || {
            crate::net::delete_inet_table(&format!("CRIU-{}", r.info.dumped_pid))
        })
    });
    if let Err(e) = dropped {
        let _ = raw::kill(pid, libc::SIGKILL);
        let _ = raw::waitpid(pid, false);
        return Err(fail(cgroup, e.to_string()));
    }
    Ok(super::Created {
        pid,
        cgroups: cgroup.map(|c| c.keep()).unwrap_or_default(),
        report: Default::default(),
        master: None,
    })
}

/// In the child, as root of the host: a mount namespace of its own where the bundle's root is
/// a mount (bound onto itself; read-only when config.json says so), the joined network
/// namespace at [`NETNS_FD`], every other descriptor but the standard ones closed at the
/// exec; then exec criu. Returns only on failure.
fn oci_criu(
    argv: &[CString],
    root: &Path,
    readonly: bool,
    netns: Option<&fs::File>,
) -> crate::error::SysError {
    let prepared = (|| -> Result<()> {
        raw::unshare(libc::CLONE_NEWNS).ctx("unshare", "mount namespace")?;
        raw::make_private(Path::new("/")).ctx("make mounts private", "/")?;
        raw::bind(root, root, false).ctx("bind", root.display())?;
        if readonly {
            raw::mount_setattr(None, root, false, raw::MOUNT_ATTR_RDONLY, 0, None)
                .ctx("make root read-only", root.display())?;
        }
        let first_closed = match netns {
            Some(n) => {
                let hi = rustix::io::fcntl_dupfd_cloexec(n, 20)
                    .map_err(std::io::Error::from)
                    .ctx("dup", "network namespace")?;
                raw::close_range(3, 19).ctx("close", "descriptors")?;
                let d = rustix::io::fcntl_dupfd_cloexec(&hi, NETNS_FD)
                    .map_err(std::io::Error::from)
                    .ctx("dup", "network namespace")?;
                if d.as_raw_fd() != NETNS_FD {
                    return Err(other("dup", format!("descriptor {NETNS_FD} is taken")));
                }
                raw::clear_cloexec_number(NETNS_FD).ctx("inherit", NETNS_FD)?;
                let _ = d.into_raw_fd();
                NETNS_FD + 1
            }
            None => 3,
        };
        // Whatever else the caller left open (not close-on-exec) stays out of CRIU.
        raw::close_range_cloexec(first_closed as u32).ctx("close", "descriptors")?;
        Ok(())
    })();
    match prepared {
        Ok(()) => exec_criu(argv),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// CRIU's pid file names the restored process, never a group: 0, 1 and negative numbers
    /// (which kill and waitpid read as "every process", "this group") are refused, and the
    /// file goes either way.
    #[test]
    fn a_pid_file_names_one_process_or_nothing() {
        let d = std::env::temp_dir().join(format!("nucleus-pidfile-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let f = d.join("restored.pid");
        for (text, want) in [
            ("4242\n", Some(4242)),
            ("2", Some(2)),
            ("1\n", None),
            ("0", None),
            ("-1", None),
            ("-4242", None),
            ("", None),
            ("42x", None),
        ] {
            fs::write(&f, text).unwrap();
            assert_eq!(take_pid(&f), want, "{text:?}");
            assert!(!f.exists(), "{text:?}: the file goes");
        }
        assert_eq!(take_pid(&f), None, "no file");
        fs::remove_dir_all(&d).unwrap();
    }
}
