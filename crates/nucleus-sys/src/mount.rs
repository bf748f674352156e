//! Build the sandbox's root from the plan's mount list, then switch into it.
//!
//! Layout (after bubblewrap): in the new mount namespace a private tmpfs is mounted over /tmp
//! and pivot_root'ed into, holding `newroot` (the sandbox root being built) and `oldroot` (the
//! host, where bind sources are read from). At the end the host is detached and
//! `pivot_root(".", ".")` + `umount2(".", MNT_DETACH)` leaves only the new root: no path of the
//! host stays reachable.

use crate::error::{other, Context, Result};
use crate::raw::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use nucleus_spec::mounts::{MountOp, RootSource};
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const BASE: &str = "/tmp";
const NEW: &str = "/newroot";
const OLD: &str = "/oldroot";
/// Where the host's root is while the container's is built (createContainer hooks run there).
pub const HOST_ROOT_WHILE_STAGED: &str = OLD;
/// An empty directory of the staging tmpfs, bound read-only over masked directories: one
/// superblock for every mask instead of a tmpfs each (each costs to make and, at the
/// sandbox's exit, to tear down).
const MASK: &str = "/mask";
/// Where an attested root's sealed image is attached in the staging root: every bind from the
/// attested directory is made from here instead (see [`host`]).
const ATTESTED: &str = "/attested";

const MS_NOSUID: libc::c_ulong = libc::MS_NOSUID;
const MS_NODEV: libc::c_ulong = libc::MS_NODEV;
const MS_NOEXEC: libc::c_ulong = libc::MS_NOEXEC;

/// Where `p` (absolute inside the sandbox or on the host) lives under `base`.
fn under(base: &str, p: &Path) -> PathBuf {
    Path::new(base).join(p.strip_prefix("/").unwrap_or(p))
}

/// Where a host path is read from while the root is built: under the host's root, or, for a
/// path in the attested directory, in its sealed image.
fn host(p: &Path, attested: Option<&Path>) -> PathBuf {
    match attested.and_then(|dir| p.strip_prefix(dir).ok()) {
        Some(rel) => Path::new(ATTESTED).join(rel),
        None => under(OLD, p),
    }
}

/// mkdir -p, costing one mkdir when the parent exists (the usual case): the recursive builder
/// would stat after every EEXIST.
fn mkdir_p(p: &Path, mode: u32) -> io::Result<()> {
    raw::mkdir_p(p, mode).map(drop)
}

/// Create a mount point of the same kind as the source.
fn mountpoint(dst: &Path, is_dir: bool) -> Result<()> {
    if is_dir {
        return mkdir_p(dst, 0o755).ctx("mkdir", dst.display());
    }
    let create = || match raw::make_file(dst, 0o644) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    };
    // The parent usually exists: make it only when the create says it does not.
    let made = match create() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dst.parent() {
                mkdir_p(parent, 0o755).ctx("mkdir", parent.display())?;
            }
            create()
        }
        r => r,
    };
    match made {
        Ok(_) => Ok(()),
        // The mount point exists as a read-only file already (e.g. in a rootfs).
        Err(e) if e.raw_os_error() == Some(libc::EROFS) && dst.exists() => Ok(()),
        Err(e) => Err(e).ctx("create mount point", dst.display()),
    }
}

fn fd_is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
    })
}

/// Mount fds prepared by the parent (idmapped binds and detached trees), consumed in plan order.
/// The sandbox's cgroup as `MountOp::Cgroup` shows it: a fresh cgroup2 mount (v2, in the
/// sandbox's cgroup namespace), or its leaf in each v1 hierarchy as (hierarchy, a detached
/// read-only clone the runtime made).
#[derive(Debug)]
pub enum CgroupView {
    V2,
    V1(Vec<(String, OwnedFd)>),
}

pub struct Prepared {
    /// None: the sandbox has no cgroup of its own (`MountOp::Cgroup` shows nothing).
    pub cgroup: Option<CgroupView>,
    pub idmapped: VecDeque<OwnedFd>,
    pub trees: Vec<Option<OwnedFd>>,
    /// Host trees bound read-only in the staging root (see [`MountOp::BindFromTree`]): each
    /// tree and where it is.
    pub readonly_trees: Vec<(PathBuf, PathBuf)>,
    /// The /etc view's detached clone (`MountOp::EtcView`), made by the parent before the fork.
    pub etc_view: Option<OwnedFd>,
    /// An image root (`RootSource::Dir`): its descriptor, through which every container path
    /// is resolved inside it (see `inroot`). None for nucleus's own roots, whose every entry
    /// nucleus made.
    pub image: Option<OwnedFd>,
    /// The sandbox has a user namespace: device nodes are bound from the host, not made.
    pub userns: bool,
    /// The attested directory whose sealed image is at [`ATTESTED`].
    pub attested: Option<PathBuf>,
}

impl Prepared {
    fn image(&self, what: &Path) -> Result<BorrowedFd<'_>> {
        self.image
            .as_ref()
            .map(|f| f.as_fd())
            .ok_or_else(|| other("mount", format!("{}: needs an image root", what.display())))
    }
}

impl Prepared {
    /// Where `tree` (a host path) is bound read-only in the staging root; bound on first use.
    fn readonly_tree(&mut self, tree: &Path) -> Result<PathBuf> {
        if let Some((_, at)) = self.readonly_trees.iter().find(|(t, _)| t == tree) {
            return Ok(at.clone());
        }
        let at = PathBuf::from(format!("/ro-tree-{}", self.readonly_trees.len()));
        fs::create_dir(&at).ctx("mkdir", at.display())?;
        // /etc entries: data, never programs (noexec; its links into /usr still run).
        bind(
            &host(tree, self.attested.as_deref()),
            &at,
            tree,
            Some(bind_attrs(true, true)),
        )?;
        self.readonly_trees.push((tree.to_path_buf(), at.clone()));
        Ok(at)
    }
}

pub enum Switched {
    PivotRoot,
    /// pivot_root failed and the plan allowed the agent-mode fallback; the error is kept for the
    /// report.
    Chroot(String),
}

/// Enter the private staging root.
pub fn stage() -> Result<()> {
    raw::make_private(Path::new("/")).ctx("make mounts private", "/")?;
    raw::mount_fs(
        "tmpfs",
        Path::new(BASE),
        MS_NOSUID | MS_NODEV,
        Some("mode=0755,size=64k"),
    )
    .ctx("mount staging tmpfs", BASE)?;
    for d in [NEW, OLD] {
        let p = under(BASE, Path::new(d));
        fs::create_dir(&p).ctx("mkdir", p.display())?;
    }
    let p = under(BASE, Path::new(MASK));
    fs::DirBuilder::new()
        .mode(0o555)
        .create(&p)
        .ctx("mkdir", p.display())?;
    raw::pivot_root(Path::new(BASE), &under(BASE, Path::new(OLD)))
        .ctx("pivot_root into staging", BASE)?;
    std::env::set_current_dir("/").ctx("chdir", "/")
}

/// The root: a tmpfs, or a directory bound (an attested one from its sealed image, `image`:
/// the directory and the image's detached mount, attached at [`ATTESTED`] first).
pub fn make_root(root: &RootSource, image: Option<(&Path, OwnedFd)>) -> Result<()> {
    let new = Path::new(NEW);
    let attested = match image {
        Some((dir, fd)) => {
            fs::create_dir(ATTESTED).ctx("mkdir", ATTESTED)?;
            raw::move_mount_to(fd.as_fd(), Path::new(ATTESTED))
                .ctx("attach the attested image of", dir.display())?;
            Some(dir)
        }
        None => None,
    };
    match root {
        // noexec: the root holds mount points, links and the synthetic /etc files; programs
        // come from the binds on it (the plan's Landlock rule grants execute on "/").
        RootSource::Tmpfs => raw::mount_fs(
            "tmpfs",
            new,
            MS_NOSUID | MS_NODEV | MS_NOEXEC,
            // Mount points, links and a few small files (read-only once set up).
            Some("mode=0755,size=4m"),
        )
        .ctx("mount root tmpfs", NEW),
        RootSource::Bind(dir) => bind(
            &host(dir, attested),
            new,
            dir,
            Some(bind_attrs(true, false)),
        ),
        // Writable as the bundle says; made read-only after the mounts (RemountRootReadonly).
        RootSource::Dir { path, .. } => bind(&under(OLD, path), new, path, None),
    }
}

/// The new root, for resolving paths inside an image root (`Prepared::image`).
pub fn open_new_root() -> Result<OwnedFd> {
    rustix::fs::open(
        NEW,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(io::Error::from)
    .ctx("open", NEW)
}

fn tmpfs_opts(mode: u32, size: Option<u64>, uid: u32, gid: u32) -> String {
    let mut o = format!("mode={mode:o}");
    if let Some(s) = size {
        o.push_str(&format!(",size={s}"));
    }
    if uid != 0 || gid != 0 {
        o.push_str(&format!(",uid={uid},gid={gid}"));
    }
    o
}

/// Recursive bind of `src` at `dst`; with `attrs`, set on the whole subtree (a plain bind
/// keeps the source's flags: the devices must not become nodev).
fn bind(src: &Path, dst: &Path, what: &Path, attrs: Option<u64>) -> Result<()> {
    raw::bind(src, dst, true).ctx("bind", what.display())?;
    match attrs {
        Some(set) => raw::mount_setattr(None, dst, true, set, 0, None)
            .ctx("set mount attributes", what.display()),
        None => Ok(()),
    }
}

/// The attributes of a bind or prepared tree: always nosuid and nodev.
pub fn bind_attrs(readonly: bool, noexec: bool) -> u64 {
    let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if readonly {
        set |= MOUNT_ATTR_RDONLY;
    }
    if noexec {
        set |= MOUNT_ATTR_NOEXEC;
    }
    set
}

/// A mount onto a target the sandbox lacks (this kernel has no such /proc or /sys entry):
/// nothing to do. Asked of the mount itself, not of a stat before it.
fn unless_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Run one mount op. Container paths resolve under /newroot, host paths under /oldroot.
pub fn apply(op: &MountOp, prep: &mut Prepared) -> Result<()> {
    match op {
        MountOp::Mkdir { dst, mode } => {
            let d = under(NEW, dst);
            mkdir_p(&d, *mode).ctx("mkdir", dst.display())
        }
        MountOp::Symlink { target, dst } if prep.image.is_some() => {
            crate::inroot::symlink(prep.image(dst)?, target, dst)
        }
        MountOp::Symlink { target, dst } => {
            let d = under(NEW, dst);
            match std::os::unix::fs::symlink(target, &d) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                r => r.ctx("symlink", dst.display()),
            }
        }
        MountOp::File {
            dst,
            contents,
            mode,
        } => {
            // Created with its mode directly: setup runs with umask 0 (see sandbox::child::child_main).
            let d = under(NEW, dst);
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(&d)
                .and_then(|mut f| f.write_all(contents.as_bytes()))
                .ctx("write", dst.display())
        }
        MountOp::Tmpfs {
            dst,
            mode,
            size_bytes,
            noexec,
            uid,
            gid,
        } => {
            let d = under(NEW, dst);
            mountpoint(&d, true)?;
            let flags = MS_NOSUID | MS_NODEV | if *noexec { MS_NOEXEC } else { 0 };
            raw::mount_fs(
                "tmpfs",
                &d,
                flags,
                Some(&tmpfs_opts(*mode, *size_bytes, *uid, *gid)),
            )
            .ctx("mount tmpfs", dst.display())
        }
        MountOp::Bind {
            src,
            dst,
            readonly,
            noexec,
            idmap,
        } => {
            let d = under(NEW, dst);
            if *idmap {
                let fd = prep
                    .idmapped
                    .pop_front()
                    .ok_or_else(|| other("bind", "missing idmapped mount"))?;
                mountpoint(&d, fd_is_dir(&fd))?;
                return raw::move_mount_to(fd.as_fd(), &d)
                    .ctx("attach idmapped bind", dst.display());
            }
            let s = host(src, prep.attested.as_deref());
            let md = fs::metadata(&s).ctx("bind", src.display())?;
            mountpoint(&d, md.is_dir())?;
            let attrs = (*readonly || *noexec).then(|| bind_attrs(*readonly, *noexec));
            bind(&s, &d, src, attrs)
        }
        MountOp::BindFromTree {
            tree,
            rel,
            dst,
            dir,
        } => {
            let from = prep.readonly_tree(tree)?.join(rel);
            let d = under(NEW, dst);
            mountpoint(&d, *dir)?;
            raw::bind(&from, &d, true).ctx("bind", tree.join(rel).display())
        }
        MountOp::Attach { slot, dst, .. } => {
            // Read-only-ness and noexec were set by the parent on the detached mount.
            let d = under(NEW, dst);
            let fd = prep
                .trees
                .get_mut(*slot)
                .and_then(Option::take)
                .ok_or_else(|| other("attach", format!("missing prepared tree {slot}")))?;
            mountpoint(&d, true)?;
            raw::move_mount_to(fd.as_fd(), &d).ctx("attach", dst.display())
        }
        MountOp::EtcView { dst } => {
            let d = under(NEW, dst);
            let fd = prep
                .etc_view
                .take()
                .ok_or_else(|| other("attach", "missing /etc view"))?;
            mountpoint(&d, true)?;
            raw::move_mount_to(fd.as_fd(), &d).ctx("attach", dst.display())
        }
        MountOp::Proc { dst, readonly } => {
            let d = under(NEW, dst);
            mountpoint(&d, true)?;
            let ro = if *readonly { libc::MS_RDONLY } else { 0 };
            raw::mount_fs("proc", &d, MS_NOSUID | MS_NODEV | MS_NOEXEC | ro, None)
                .ctx("mount proc", dst.display())
        }
        MountOp::Sysfs { dst } => {
            let d = under(NEW, dst);
            mountpoint(&d, true)?;
            let flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | libc::MS_RDONLY;
            match raw::mount_fs("sysfs", &d, flags, None) {
                Ok(()) => Ok(()),
                // Without a network namespace of our own the kernel refuses a new sysfs.
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    let sys = Path::new("/sys");
                    bind(&under(OLD, sys), &d, dst, Some(bind_attrs(true, true)))
                }
                Err(e) => Err(e).ctx("mount sysfs", dst.display()),
            }
        }
        MountOp::Cgroup { dst } => {
            let d = under(NEW, dst);
            let ro = MS_NOSUID | MS_NODEV | MS_NOEXEC | libc::MS_RDONLY;
            match &prep.cgroup {
                None => Ok(()),
                Some(CgroupView::V2) => {
                    raw::mount_fs("cgroup2", &d, ro, None).ctx("mount cgroup2", dst.display())
                }
                Some(CgroupView::V1(leaves)) => {
                    raw::mount_fs(
                        "tmpfs",
                        &d,
                        MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        Some("mode=0755,size=64k"),
                    )
                    .ctx("mount tmpfs", dst.display())?;
                    for (h, m) in leaves {
                        let t = d.join(h);
                        fs::create_dir(&t).ctx("mkdir", t.display())?;
                        raw::move_mount_to(m.as_fd(), &t).ctx("attach cgroup", t.display())?;
                    }
                    raw::mount_setattr(None, &d, false, bind_attrs(true, true), 0, None)
                        .ctx("set mount attributes", dst.display())
                }
            }
        }
        MountOp::Devpts { dst } => {
            let d = under(NEW, dst);
            mountpoint(&d, true)?;
            raw::mount_fs(
                "devpts",
                &d,
                MS_NOSUID | MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620"),
            )
            .ctx("mount devpts", dst.display())
        }
        MountOp::Mqueue { dst } => {
            let d = under(NEW, dst);
            mountpoint(&d, true)?;
            raw::mount_fs("mqueue", &d, MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
                .ctx("mount mqueue", dst.display())
        }
        MountOp::MaskFile { dst } => {
            let d = under(NEW, dst);
            unless_missing(raw::bind(&under(OLD, Path::new("/dev/null")), &d, false))
                .ctx("mask", dst.display())
        }
        MountOp::MaskDir { dst, own: true } => {
            let d = under(NEW, dst);
            let flags = libc::MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
            unless_missing(raw::mount_fs("tmpfs", &d, flags, Some("mode=0555,size=4k")))
                .ctx("mask", dst.display())
        }
        MountOp::MaskDir { dst, own: false } => {
            let d = under(NEW, dst);
            match raw::bind(Path::new(MASK), &d, false) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                r => r.ctx("mask", dst.display())?,
            }
            raw::mount_setattr(None, &d, false, bind_attrs(true, true), 0, None)
                .ctx("mask", dst.display())
        }
        MountOp::ReadonlyIfExists { dst } if prep.image.is_some() => {
            crate::inroot::readonly(prep.image(dst)?, dst)
        }
        MountOp::ReadonlyIfExists { dst } => {
            let d = under(NEW, dst);
            match raw::bind(&d, &d, true) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                r => r.ctx("bind", dst.display())?,
            }
            raw::mount_setattr(None, &d, true, MOUNT_ATTR_RDONLY, 0, None)
                .ctx("make read-only", dst.display())
        }
        MountOp::Oci {
            source,
            dst,
            fstype,
            options,
            idmap,
        } => {
            // An idmapped bind comes ready from the runtime (idmapping needs its privilege).
            let tree = match idmap {
                Some(_) => Some(
                    prep.idmapped
                        .pop_front()
                        .ok_or_else(|| other("bind", "missing idmapped mount"))?,
                ),
                None => None,
            };
            crate::inroot::mount(prep.image(dst)?, source, dst, fstype, options, tree)
        }
        MountOp::Device {
            dst,
            kind,
            major,
            minor,
            mode,
            uid,
            gid,
        } => crate::inroot::device(
            prep.image(dst)?,
            dst,
            *kind,
            *major,
            *minor,
            *mode,
            (*uid, *gid),
            prep.userns,
        ),
        MountOp::Mask { dst } => crate::inroot::mask(prep.image(dst)?, dst),
        MountOp::Sysctl { key, value } => {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            crate::inroot::write(prep.image(&path)?, &path, value.as_bytes()).ctx("sysctl", key)
        }
        MountOp::RemountRootReadonly => {
            raw::mount_setattr(None, Path::new(NEW), false, MOUNT_ATTR_RDONLY, 0, None)
                .ctx("make root read-only", "/")
        }
    }
}

/// The root mount's propagation (MS_SHARED/SLAVE/PRIVATE/UNBINDABLE, MS_REC), once it is `/`.
pub fn set_root_propagation(flags: u64) -> Result<()> {
    let f = rustix::mount::MountPropagationFlags::from_bits_retain(flags as _);
    rustix::mount::mount_change("/", f)
        .map_err(io::Error::from)
        .ctx("set propagation", "/")
}

/// Detach the host and make the new root `/`.
pub fn switch_root(allow_chroot: bool) -> Result<Switched> {
    std::env::set_current_dir(NEW).ctx("chdir", NEW)?;
    match raw::pivot_root(Path::new("."), Path::new(".")) {
        Ok(()) => {
            // The old root (our staging tmpfs, the host's tree under it) is now stacked on top
            // of "/": one lazy unmount detaches both (one RCU grace period, not two).
            raw::umount_detach(Path::new(".")).ctx("detach staging root", "")?;
            std::env::set_current_dir("/").ctx("chdir", "/")?;
            Ok(Switched::PivotRoot)
        }
        Err(e) if allow_chroot => {
            raw::umount_detach(Path::new(OLD)).ctx("detach host root", OLD)?;
            rustix::process::chroot(".")
                .map_err(io::Error::from)
                .ctx("chroot", NEW)?;
            std::env::set_current_dir("/").ctx("chdir", "/")?;
            Ok(Switched::Chroot(e.to_string()))
        }
        Err(e) => Err(e).ctx("pivot_root", NEW),
    }
}
