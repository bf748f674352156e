//! Mounts inside an image's root (an OCI bundle's rootfs): every container path is resolved
//! inside the root being built (openat2 RESOLVE_IN_ROOT from a descriptor of it), so a symlink
//! the image ships (`/proc -> /`, `/dev -> ../../etc`) can never lead a mount, a device node or
//! a mask out of it; a mount then goes onto the descriptor, not onto a path resolved again.
//! proc and sysfs refuse any symlink on their way (as runc does since CVE-2019-19921).

use crate::error::{other, Context, Result};
use crate::raw;
use nucleus_spec::mounts::DeviceKind;
use nucleus_spec::oci::options::{self as o, MountOptions};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::mount::{self as rmount, MountFlags, MountPropagationFlags, MoveMountFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What to make when a path is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Make {
    Nothing,
    Dir,
    File,
}

fn rel(p: &Path) -> &Path {
    p.strip_prefix("/").unwrap_or(p)
}

/// An `O_PATH` descriptor of `dst` (a container path) in `root`, made as `make` says when
/// missing (parents as directories, mode 0755; files 0644). `None`: missing and not made.
pub fn open(
    root: BorrowedFd<'_>,
    dst: &Path,
    make: Make,
    no_symlinks: bool,
) -> io::Result<Option<OwnedFd>> {
    let mut how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    if no_symlinks {
        how |= ResolveFlags::NO_SYMLINKS;
    }
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let r = rel(dst);
    if r.as_os_str().is_empty() {
        return rfs::openat2(root, ".", flags, Mode::empty(), how)
            .map(Some)
            .map_err(Into::into);
    }
    match rfs::openat2(root, r, flags, Mode::empty(), how) {
        Ok(fd) => return Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) if make != Make::Nothing => {}
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let (Some(parent), Some(name)) = (r.parent(), r.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let pfd = open(root, &Path::new("/").join(parent), Make::Dir, no_symlinks)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    let made = match make {
        Make::Dir => rfs::mkdirat(&pfd, name, Mode::from_raw_mode(0o755)),
        _ => rfs::mknodat(
            &pfd,
            name,
            FileType::RegularFile,
            Mode::from_raw_mode(0o644),
            0,
        ),
    };
    match made {
        // Made meanwhile, or a dangling symlink (the retry says which).
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    rfs::openat2(root, r, flags, Mode::empty(), how)
        .map(Some)
        .map_err(Into::into)
}

/// The directory `dst` in `root`, open for reading its entries.
fn open_dir(root: BorrowedFd<'_>, dst: &Path) -> Result<OwnedFd> {
    rfs::openat2(
        root,
        rel(dst),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
    .ctx("open", dst.display())
}

/// The path through which a mount call reaches what `fd` names (the host's /proc, still
/// reachable in the staging root, resolves it to the descriptor's own dentry).
fn via(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/oldroot/proc/self/fd/{}", fd.as_raw_fd()))
}

fn is_dir(fd: BorrowedFd<'_>) -> bool {
    rfs::fstat(fd).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// mount_setattr attributes of the per-mount MS_* flags.
fn attrs(flags: u64) -> u64 {
    let mut a = 0;
    for (ms, attr) in [
        (o::MS_RDONLY, o::MOUNT_ATTR_RDONLY),
        (o::MS_NOSUID, o::MOUNT_ATTR_NOSUID),
        (o::MS_NODEV, o::MOUNT_ATTR_NODEV),
        (o::MS_NOEXEC, o::MOUNT_ATTR_NOEXEC),
        (o::MS_NODIRATIME, o::MOUNT_ATTR_NODIRATIME),
        (o::MS_NOSYMFOLLOW, o::MOUNT_ATTR_NOSYMFOLLOW),
        (o::MS_NOATIME, o::MOUNT_ATTR_NOATIME),
        (o::MS_STRICTATIME, o::MOUNT_ATTR_STRICTATIME),
    ] {
        if flags & ms != 0 {
            a |= attr;
        }
    }
    a
}

fn set_propagation(root: BorrowedFd<'_>, dst: &Path, propagation: u64) -> Result<()> {
    if propagation == 0 {
        return Ok(());
    }
    // The new mount's own root, reopened: the descriptor made before names what is under it.
    let fd = open(root, dst, Make::Nothing, false)
        .ctx("open", dst.display())?
        .ok_or_else(|| other("propagation", dst.display()))?;
    let f = MountPropagationFlags::from_bits_retain(propagation as _);
    rmount::mount_change(via(&fd), f)
        .map_err(io::Error::from)
        .ctx("set propagation", dst.display())
}

/// An OCI mount: a bind of the host path `source` (under /oldroot) or a new filesystem.
pub fn mount(
    root: BorrowedFd<'_>,
    source: &Path,
    dst: &Path,
    fstype: &str,
    opts: &MountOptions,
    prepared: Option<OwnedFd>,
) -> Result<()> {
    if opts.is_bind() {
        let recursive = opts.flags & o::MS_REC != 0;
        let tree = match prepared {
            Some(t) => t,
            None => {
                let src = Path::new("/oldroot").join(rel(source));
                raw::open_tree_clone(None, &src, recursive).ctx("bind", source.display())?
            }
        };
        let make = if is_dir(tree.as_fd()) {
            Make::Dir
        } else {
            Make::File
        };
        let target = open(root, dst, make, false)
            .ctx("mount point", dst.display())?
            .ok_or_else(|| other("mount point", dst.display()))?;
        // Only what the options name changes; a source's locked flags stay as they are.
        let set = attrs(opts.flags);
        let clear = attrs(opts.cleared) & !set;
        if set != 0 || clear != 0 {
            let clear = if (set | clear) & ATIME != 0 {
                clear | ATIME
            } else {
                clear
            };
            set_attrs(tree.as_fd(), false, set, clear, "set mount attributes", dst)?;
        }
        rec_attrs(tree.as_fd(), opts, dst)?;
        attach(&tree, &target, "bind", dst)?;
        return set_propagation(root, dst, opts.propagation);
    }
    let strict = matches!(fstype, "proc" | "sysfs");
    let target = open(root, dst, Make::Dir, strict)
        .ctx("mount point", dst.display())?
        .ok_or_else(|| other("mount point", dst.display()))?;
    let keep = o::MS_RDONLY
        | o::MS_NOSUID
        | o::MS_NODEV
        | o::MS_NOEXEC
        | o::MS_SYNCHRONOUS
        | o::MS_MANDLOCK
        | o::MS_DIRSYNC
        | o::MS_NOSYMFOLLOW
        | o::MS_NOATIME
        | o::MS_NODIRATIME
        | o::MS_SILENT
        | o::MS_RELATIME
        | o::MS_STRICTATIME
        | o::MS_LAZYTIME;
    let flags = MountFlags::from_bits_retain((opts.flags & keep) as _);
    let data = (!opts.data.is_empty())
        .then(|| raw::cstr(&opts.data))
        .transpose()
        .ctx("mount options", dst.display())?;
    let src = if source.as_os_str().is_empty() {
        Path::new(fstype)
    } else {
        source
    };
    // crun's tmpcopyup: what the image has there, read before the tmpfs hides it.
    let below = if opts.tmpcopyup {
        Some(open_dir(root, dst)?)
    } else {
        None
    };
    let r = rmount::mount(src, via(&target), fstype, flags, data.as_deref());
    match r {
        Ok(()) => {}
        // A sysfs in a network namespace the sandbox does not own: the host's, read-only.
        Err(rustix::io::Errno::PERM) if fstype == "sysfs" => {
            let tree =
                raw::open_tree_clone(None, Path::new("/oldroot/sys"), true).ctx("bind", "/sys")?;
            set_attrs(
                tree.as_fd(),
                true,
                LOCKED_DOWN,
                0,
                "set mount attributes",
                dst,
            )?;
            attach(&tree, &target, "bind", dst)?;
        }
        Err(e) => {
            return Err(io::Error::from(e)).ctx("mount", format!("{fstype} at {}", dst.display()));
        }
    }
    if let Some(below) = below {
        let top = open_dir(root, dst)?;
        crate::copy::copy_up(below.as_fd(), &top)?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        let fd = open(root, dst, Make::Nothing, strict)
            .ctx("open", dst.display())?
            .ok_or_else(|| other("mount", dst.display()))?;
        set_attrs(
            fd.as_fd(),
            true,
            opts.rec_set,
            opts.rec_clear,
            "set mount attributes",
            dst,
        )?;
    }
    set_propagation(root, dst, opts.propagation)
}

const ATIME: u64 = o::MOUNT_ATTR_ATIME;

/// mount_setattr on a detached mount (or a mount's root) by descriptor.
fn set_attrs(
    tree: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    what: &'static str,
    dst: &Path,
) -> Result<()> {
    raw::mount_setattr(Some(tree), Path::new(""), recursive, set, clear, None)
        .ctx(what, dst.display())
}

/// Attach the detached mount `tree` onto what `target` names.
fn attach(tree: &OwnedFd, target: &OwnedFd, what: &'static str, dst: &Path) -> Result<()> {
    rmount::move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(io::Error::from)
    .ctx(what, dst.display())
}

/// Read-only, nosuid, nodev, noexec.
const LOCKED_DOWN: u64 =
    o::MOUNT_ATTR_RDONLY | o::MOUNT_ATTR_NOSUID | o::MOUNT_ATTR_NODEV | o::MOUNT_ATTR_NOEXEC;

fn rec_attrs(tree: BorrowedFd<'_>, opts: &MountOptions, dst: &Path) -> Result<()> {
    if opts.rec_set == 0 && opts.rec_clear == 0 {
        return Ok(());
    }
    raw::mount_setattr(
        Some(tree),
        Path::new(""),
        true,
        opts.rec_set,
        opts.rec_clear,
        None,
    )
    .ctx("set mount attributes", dst.display())
}

/// A device node at `dst`: made with mknod, or (in a user namespace, where mknod is refused)
/// the host's node of the same path bound onto an empty file.
#[allow(clippy::too_many_arguments)]
pub fn device(
    root: BorrowedFd<'_>,
    dst: &Path,
    kind: DeviceKind,
    major: u32,
    minor: u32,
    mode: u32,
    owner: (u32, u32),
    bind: bool,
) -> Result<()> {
    let r = rel(dst);
    let (Some(parent), Some(name)) = (r.parent(), r.file_name()) else {
        return Err(other("device", dst.display()));
    };
    let pfd = open(root, &Path::new("/").join(parent), Make::Dir, false)
        .ctx("mkdir", parent.display())?
        .ok_or_else(|| other("device", dst.display()))?;
    if bind {
        let target = open(root, dst, Make::File, false)
            .ctx("mount point", dst.display())?
            .ok_or_else(|| other("device", dst.display()))?;
        let host = Path::new("/oldroot").join(r);
        let tree = raw::open_tree_clone(None, &host, false).ctx("bind", host.display())?;
        return attach(&tree, &target, "bind device", dst);
    }
    let ft = match kind {
        DeviceKind::Char => FileType::CharacterDevice,
        DeviceKind::Block => FileType::BlockDevice,
        DeviceKind::Fifo => FileType::Fifo,
    };
    let dev = rfs::makedev(major, minor);
    match rfs::mknodat(&pfd, name, ft, Mode::from_raw_mode(mode & 0o7777), dev) {
        Ok(()) => {}
        // The image's own node (or whatever it has there) stays; nothing is followed.
        Err(rustix::io::Errno::EXIST) => return Ok(()),
        Err(e) => return Err(io::Error::from(e)).ctx("mknod", dst.display()),
    }
    let (uid, gid) = owner;
    if uid != 0 || gid != 0 {
        rfs::chownat(
            &pfd,
            name,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
        .ctx("chown", dst.display())?;
    }
    Ok(())
}

/// Hide `dst` if it exists: /dev/null over a file, an empty read-only tmpfs over a directory.
pub fn mask(root: BorrowedFd<'_>, dst: &Path) -> Result<()> {
    let Some(target) = open(root, dst, Make::Nothing, false).ctx("mask", dst.display())? else {
        return Ok(());
    };
    let dir = is_dir(target.as_fd());
    // A directory: an empty read-only tmpfs of its own (as runc and crun mask one), not a
    // clone of one shared empty directory, whose file system's root is mounted nowhere in
    // the container: CRIU saves no mount without a reachable root, and an OCI container is
    // checkpointed (runc's verb) without having asked for it at its start.
    let tree = if dir {
        let t =
            raw::detached_tmpfs(&[("mode", "0555"), ("size", "4k")]).ctx("mask", dst.display())?;
        set_attrs(t.as_fd(), false, LOCKED_DOWN, 0, "mask", dst)?;
        t
    } else {
        raw::open_tree_clone(None, Path::new("/oldroot/dev/null"), false)
            .ctx("mask", dst.display())?
    };
    attach(&tree, &target, "mask", dst)
}

/// Make `dst` and the mounts under it read-only, if it exists.
pub fn readonly(root: BorrowedFd<'_>, dst: &Path) -> Result<()> {
    let Some(target) = open(root, dst, Make::Nothing, false).ctx("open", dst.display())? else {
        return Ok(());
    };
    let tree = raw::open_tree_clone(Some(target.as_fd()), Path::new(""), true)
        .ctx("bind", dst.display())?;
    set_attrs(
        tree.as_fd(),
        true,
        o::MOUNT_ATTR_RDONLY,
        0,
        "make read-only",
        dst,
    )?;
    attach(&tree, &target, "make read-only", dst)
}

/// Write `data` to the existing file `dst` (no symlink on the way: /proc/sys entries).
pub fn write(root: BorrowedFd<'_>, dst: &Path, data: &[u8]) -> io::Result<()> {
    let fd = rfs::openat2(
        root,
        rel(dst),
        OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    let n = rustix::io::write(&fd, data)?;
    if n != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

/// A symlink at `dst` (its parent made inside the root); an existing entry stays.
pub fn symlink(root: BorrowedFd<'_>, target: &Path, dst: &Path) -> Result<()> {
    let r = rel(dst);
    let (Some(parent), Some(name)) = (r.parent(), r.file_name()) else {
        return Err(other("symlink", dst.display()));
    };
    let pfd = open(root, &Path::new("/").join(parent), Make::Dir, false)
        .ctx("mkdir", parent.display())?
        .ok_or_else(|| other("symlink", dst.display()))?;
    match rfs::symlinkat(target, &pfd, name) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(io::Error::from(e)).ctx("symlink", dst.display()),
    }
}
