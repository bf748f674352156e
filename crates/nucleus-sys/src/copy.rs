//! Copying trees between the host and a detached sandbox tmpfs (context copies, copy-in-out
//! workspaces, the /etc view).
//!
//! Both trees are walked by file descriptor only: every step opens one name relative to the
//! directory descriptor it was read from, with `O_NOFOLLOW` (a directory with `O_DIRECTORY`),
//! and every change on the destination is made relative to its directory descriptor
//! (`*at` calls). A second writer that swaps a directory for a symlink during the copy (another
//! sandbox with the same workspace bound read-write, or the workspace's unprivileged owner)
//! makes the step fail; it cannot redirect a read or a write outside the two trees.
//!
//! Files are written under a temporary name and renamed into place, so an existing host file is
//! never written through (it may be hard-linked elsewhere) and is replaced whole. Sparse files
//! stay sparse (only data extents are copied) and hard links within a tree stay hard links, so
//! the bytes written are what the source really holds. Copy-back treats the sandbox's tree as
//! hostile: symlinks are copied as symlinks and never followed, setuid/setgid bits are stripped,
//! files keep the owner the host copy had (new ones get the workspace root's owner), and the
//! copy is refused before anything is written when the tree holds more than the allowed bytes.

use crate::error::{Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Deeper trees are refused: each level holds two open descriptors and a stack frame.
const MAX_DEPTH: usize = 256;

fn too_deep() -> io::Error {
    io::Error::other(format!("more than {MAX_DEPTH} directory levels"))
}

fn e(err: Errno) -> io::Error {
    io::Error::from(err)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Open the directory `p` (the runtime's own path, e.g. a detached tree's /proc/self/fd/N)
/// as the root of a walk.
fn open_root(p: &Path) -> Result<OwnedFd> {
    rfs::open(p, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
        .map_err(e)
        .ctx("open directory", p.display())
}

/// Open the host directory `p` a caller named as the root of a walk, following only symlinks
/// owned by root or the caller ([`crate::resolve`]).
fn open_host_root(p: &Path) -> Result<OwnedFd> {
    crate::resolve::open_dir_trusted(p).ctx("open directory", p.display())
}

/// Open the directory `name` in `dir`, never through a symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    rfs::openat(dir, name, DIR_FLAGS, Mode::empty()).map_err(e)
}

fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(e)
}

/// (dev, ino): an inode's identity.
fn id(st: &Stat) -> (u64, u64) {
    #[allow(clippy::unnecessary_cast)] // c_ulong on other architectures
    (st.st_dev as u64, st.st_ino as u64)
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The names in a directory, without `.` and `..`.
fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let mut out = Vec::new();
    for ent in rfs::Dir::read_from(dir).map_err(e)? {
        let ent = ent.map_err(e)?;
        let n = ent.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

fn show(rel: &Path, name: &CStr) -> String {
    rel.join(OsStr::from_bytes(name.to_bytes()))
        .display()
        .to_string()
}

fn times(st: &Stat) -> rfs::Timestamps {
    rfs::Timestamps {
        last_access: rfs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rfs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// What a walk does besides copying.
struct Copier {
    /// Owner of new entries (`None`: the runtime's own, or the source's with `keep_owners`).
    owner: Option<(u32, u32)>,
    /// New entries keep their source's owner (an image's tree copied up into a tmpfs).
    keep_owners: bool,
    /// Copy-back: remove host entries the source lacks, strip setuid/setgid, keep the owners
    /// of entries the host already had, skip unchanged files.
    mirror: bool,
    /// The destination's root, for re-opening a hard link's first copy beneath it.
    dst_root: OwnedFd,
    /// Source inode (dev, ino) with more than one link → the first copy: its path beneath the
    /// destination root and its (dev, ino).
    links: HashMap<(u64, u64), (PathBuf, (u64, u64))>,
    /// A counter for temporary names.
    tmp: u64,
}

impl Copier {
    fn tmp_name(&mut self) -> CString {
        self.tmp += 1;
        // Cannot fail: no interior NUL.
        CString::new(format!(".nucleus-copy-{}-{}", std::process::id(), self.tmp))
            .unwrap_or_default()
    }

    fn copy_dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(too_deep()).ctx("copy", rel.display());
        }
        let mut seen = HashSet::new();
        for name in names(src).ctx("read directory", rel.display())? {
            let st = stat_at(src, &name).ctx("stat", show(rel, &name))?;
            let ft = kind(&st);
            seen.insert(name.clone());
            if !matches!(
                ft,
                FileType::Directory | FileType::RegularFile | FileType::Symlink
            ) {
                // Devices, sockets and fifos are not copied.
                continue;
            }
            // A destination entry of the same kind (directory, regular file) is updated; one
            // of another kind (or a symlink) is removed first, never written through.
            let mut existing = match stat_at(dst, &name) {
                Ok(x) => Some(x),
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => None,
                Err(err) => return Err(err).ctx("stat", show(rel, &name)),
            };
            if let Some(x) = &existing {
                let xt = kind(x);
                let same = ft == xt && ft != FileType::Symlink;
                if !same {
                    remove_at(dst, &name, depth).ctx("remove", show(rel, &name))?;
                    existing = None;
                }
            }
            match ft {
                FileType::Directory => self.dir(src, dst, rel, &name, &st, existing, depth)?,
                FileType::RegularFile => self.file(src, dst, rel, &name, &st, existing)?,
                _ => self.symlink(src, dst, rel, &name, &st)?,
            }
        }
        if self.mirror {
            for name in names(dst).ctx("read directory", rel.display())? {
                if !seen.contains(&name) {
                    remove_at(dst, &name, depth).ctx("remove", show(rel, &name))?;
                }
            }
        }
        Ok(())
    }

    /// The owner an entry gets: the one the destination's entry had (only copy-back meets
    /// existing entries: the other copies fill fresh trees), else the walk's.
    fn owner_for(&self, existing: Option<&Stat>, src: &Stat) -> Option<(u32, u32)> {
        existing
            .map(|x| (x.st_uid, x.st_gid))
            .or(self.owner)
            .or(self.keep_owners.then_some((src.st_uid, src.st_gid)))
    }

    fn mode_of(&self, st: &Stat) -> Mode {
        let keep = if self.mirror { 0o1777 } else { 0o7777 };
        Mode::from_raw_mode(st.st_mode & keep)
    }

    #[allow(clippy::too_many_arguments)]
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
        name: &CStr,
        st: &Stat,
        existing: Option<Stat>,
        depth: usize,
    ) -> Result<()> {
        let path = show(rel, name);
        if existing.is_none() {
            rfs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
                .map_err(e)
                .ctx("mkdir", &path)?;
        }
        let s = open_dir(src, name).ctx("open", &path)?;
        let d = open_dir(dst, name).ctx("open", &path)?;
        let sub = rel.join(OsStr::from_bytes(name.to_bytes()));
        self.copy_dir(s.as_fd(), d.as_fd(), &sub, depth + 1)?;
        self.set_meta(d.as_fd(), st, existing.as_ref())
            .ctx("set owner and mode", &path)
    }

    /// Owner, then mode (after the chown, which clears setuid/setgid), then times.
    fn set_meta(&self, fd: BorrowedFd<'_>, st: &Stat, existing: Option<&Stat>) -> io::Result<()> {
        if let Some((u, g)) = self.owner_for(existing, st) {
            chown_fd(fd, u, g)?;
        }
        rfs::fchmod(fd, self.mode_of(st)).map_err(e)?;
        let _ = rfs::futimens(fd, &times(st));
        Ok(())
    }

    fn file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
        name: &CStr,
        st: &Stat,
        existing: Option<Stat>,
    ) -> Result<()> {
        let path = show(rel, name);
        let sf = rfs::openat(
            src,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(e)
        .ctx("open", &path)?;
        // What is copied is what the descriptor holds (the name may have changed since).
        let st_now = rfs::fstat(&sf).map_err(e).ctx("stat", &path)?;
        if kind(&st_now) != FileType::RegularFile {
            return Err(io::Error::other("changed type during the copy")).ctx("copy", &path);
        }
        let st = if st_now.st_ino == st.st_ino {
            st
        } else {
            &st_now
        };
        if let Some(x) = &existing {
            let unchanged = x.st_size == st.st_size
                && x.st_mtime == st.st_mtime
                && x.st_mtime_nsec == st.st_mtime_nsec;
            if self.mirror && unchanged {
                return Ok(());
            }
        }
        let key = id(st);
        let tmp = self.tmp_name();
        let linked = st.st_nlink > 1 && self.link_first(key, dst, &tmp);
        if !linked {
            let r = self.write_file(&sf, st, dst, &tmp, existing.as_ref());
            if let Err(err) = r {
                let _ = rfs::unlinkat(dst, &tmp, AtFlags::empty());
                return Err(err).ctx("copy", &path);
            }
        }
        if let Err(err) = rfs::renameat(dst, &tmp, dst, name) {
            let _ = rfs::unlinkat(dst, &tmp, AtFlags::empty());
            return Err(e(err)).ctx("rename into place", &path);
        }
        if st.st_nlink > 1 && !linked {
            if let Ok(d) = stat_at(dst, name) {
                let at = rel.join(OsStr::from_bytes(name.to_bytes()));
                self.links.insert(key, (at, id(&d)));
            }
        }
        Ok(())
    }

    /// Link the first copy of a multiply-linked source inode as `tmp` in `dst`. The first copy
    /// is found beneath the destination root without crossing any symlink, and the new link
    /// must be that very inode; anything else leaves nothing behind and reports false.
    fn link_first(&self, key: (u64, u64), dst: BorrowedFd<'_>, tmp: &CStr) -> bool {
        let Some((at, want)) = self.links.get(&key) else {
            return false;
        };
        let (Some(parent), Some(file)) = (at.parent(), at.file_name()) else {
            return false;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let Ok(pd) = rfs::openat2(
            &self.dst_root,
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) else {
            return false;
        };
        if rfs::linkat(&pd, file, dst, tmp, AtFlags::empty()).is_err() {
            return false;
        }
        match stat_at(dst, tmp) {
            Ok(s) if kind(&s) == FileType::RegularFile && id(&s) == *want => true,
            _ => {
                let _ = rfs::unlinkat(dst, tmp, AtFlags::empty());
                false
            }
        }
    }

    fn write_file(
        &self,
        sf: &OwnedFd,
        st: &Stat,
        dst: BorrowedFd<'_>,
        tmp: &CStr,
        existing: Option<&Stat>,
    ) -> io::Result<()> {
        let df = rfs::openat(
            dst,
            tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(e)?;
        copy_data(sf, &df, st.st_size as u64)?;
        self.set_meta(df.as_fd(), st, existing)
    }

    fn symlink(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
        name: &CStr,
        st: &Stat,
    ) -> Result<()> {
        let path = show(rel, name);
        let target = rfs::readlinkat(src, name, Vec::new())
            .map_err(e)
            .ctx("readlink", &path)?;
        let tmp = self.tmp_name();
        rfs::symlinkat(&target, dst, &tmp)
            .map_err(e)
            .ctx("symlink", &path)?;
        let r = (|| {
            if let Some((u, g)) = self.owner_for(None, st) {
                rfs::chownat(
                    dst,
                    &tmp,
                    Some(rfs::Uid::from_raw(u)),
                    Some(rfs::Gid::from_raw(g)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            let _ = rfs::utimensat(dst, &tmp, &times(st), AtFlags::SYMLINK_NOFOLLOW);
            rfs::renameat(dst, &tmp, dst, name)
        })();
        if let Err(err) = r {
            let _ = rfs::unlinkat(dst, &tmp, AtFlags::empty());
            return Err(e(err)).ctx("symlink", &path);
        }
        Ok(())
    }
}

fn chown_fd(fd: BorrowedFd<'_>, u: u32, g: u32) -> io::Result<()> {
    rfs::fchown(fd, Some(rfs::Uid::from_raw(u)), Some(rfs::Gid::from_raw(g))).map_err(e)
}

/// Copy a file's data extents only: holes stay holes, so a sparse file costs what it holds.
fn copy_data(src: &OwnedFd, dst: &OwnedFd, len: u64) -> io::Result<()> {
    let (s, d) = (File::from(src.try_clone()?), File::from(dst.try_clone()?));
    let mut buf = vec![0u8; 128 * 1024];
    let mut off = 0u64;
    while off < len {
        let data = match rfs::seek(src, rfs::SeekFrom::Data(off)) {
            Ok(x) if x >= len => break,
            Ok(x) => x,
            // No data past `off`: the rest is a hole.
            Err(Errno::NXIO) => break,
            // No SEEK_DATA here: all of it is data.
            Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => off,
            Err(err) => return Err(e(err)),
        };
        let hole = match rfs::seek(src, rfs::SeekFrom::Hole(data)) {
            Ok(x) => x.clamp(data + 1, len),
            Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => len,
            Err(err) => return Err(e(err)),
        };
        let mut at = data;
        while at < hole {
            let want = ((hole - at) as usize).min(buf.len());
            let n = s.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break;
            }
            d.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        off = hole;
    }
    d.set_len(len)
}

/// Remove `name` in `dir` and, for a directory, everything beneath it, without following any
/// symlink: a directory swapped for a link meanwhile is removed as the link.
fn remove_at(dir: BorrowedFd<'_>, name: &CStr, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match open_dir(dir, name) {
        Ok(d) => {
            for n in names(d.as_fd())? {
                remove_at(d.as_fd(), &n, depth + 1)?;
            }
            rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(e)
        }
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
            rfs::unlinkat(dir, name, AtFlags::empty()).map_err(e)
        }
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Bytes a tree holds: the allocated blocks of each regular file, counted once per inode.
fn usage(dir: BorrowedFd<'_>, seen: &mut HashSet<(u64, u64)>, depth: usize) -> io::Result<u64> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let mut total = 0u64;
    for name in names(dir)? {
        let st = stat_at(dir, &name)?;
        match kind(&st) {
            FileType::Directory => {
                let d = open_dir(dir, &name)?;
                total = total.saturating_add(usage(d.as_fd(), seen, depth + 1)?);
            }
            FileType::RegularFile if seen.insert(id(&st)) => {
                total = total.saturating_add(st.st_blocks as u64 * 512);
            }
            _ => {}
        }
    }
    Ok(total)
}

fn copier(dst: &OwnedFd, owner: Option<(u32, u32)>, mirror: bool) -> Result<Copier> {
    Ok(Copier {
        owner,
        keep_owners: false,
        mirror,
        dst_root: dst.try_clone().ctx("dup", "destination")?,
        links: HashMap::new(),
        tmp: 0,
    })
}

/// Copy `src` (host) into the existing directory `dst`, owning everything by `uid:gid`.
pub fn copy_in(src: &Path, dst: &Path, uid: u32, gid: u32) -> Result<()> {
    let s = open_host_root(src)?;
    let d = open_root(dst)?;
    let st = rfs::fstat(&s).map_err(e).ctx("stat", src.display())?;
    let mut c = copier(&d, Some((uid, gid)), false)?;
    c.copy_dir(s.as_fd(), d.as_fd(), Path::new(""), 0)
        .map_err(|err| with_root(err, src))?;
    chown_fd(d.as_fd(), uid, gid).ctx("chown", dst.display())?;
    rfs::fchmod(&d, Mode::from_raw_mode(st.st_mode & 0o777))
        .map_err(e)
        .ctx("chmod", dst.display())
}

/// Copy the host directory `src` into the existing directory `dst` as it is (modes and times
/// kept, owned by the caller, symlinks as symlinks; devices, sockets and fifos left out).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let s = open_host_root(src)?;
    let d = open_root(dst)?;
    let mut c = copier(&d, None, false)?;
    c.copy_dir(s.as_fd(), d.as_fd(), Path::new(""), 0)
        .map_err(|err| with_root(err, src))
}

/// Copy the directory `src` into the empty directory `dst` as it is, owners included (crun's
/// `tmpcopyup`: a tmpfs over an image's directory starts with what the image had there). Both
/// by descriptor; devices, sockets and fifos left out.
pub fn copy_up(src: BorrowedFd<'_>, dst: &OwnedFd) -> Result<()> {
    let mut c = copier(dst, None, false)?;
    c.keep_owners = true;
    c.copy_dir(src, dst.as_fd(), Path::new(""), 0)
}

/// Add `base` to the owner of every entry under `root` (symlinks not followed): for kernels or
/// filesystems without idmapped mounts, files are owned by the sandbox's host ids directly.
pub fn shift_owners(root: &Path, base: u32) -> Result<()> {
    let r = open_root(root)?;
    let st = rfs::fstat(&r).map_err(e).ctx("stat", root.display())?;
    chown_fd(r.as_fd(), st.st_uid + base, st.st_gid + base).ctx("chown", root.display())?;
    shift_below(r.as_fd(), base, 0).ctx("chown", root.display())
}

fn shift_below(dir: BorrowedFd<'_>, base: u32, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    for name in names(dir)? {
        let st = stat_at(dir, &name)?;
        rfs::chownat(
            dir,
            &name,
            Some(rfs::Uid::from_raw(st.st_uid + base)),
            Some(rfs::Gid::from_raw(st.st_gid + base)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(e)?;
        if kind(&st) == FileType::Directory {
            let d = open_dir(dir, &name)?;
            shift_below(d.as_fd(), base, depth + 1)?;
        }
    }
    Ok(())
}

/// Make `dst` (host) equal to `src` (the sandbox's copy): new and changed entries are written,
/// entries missing from `src` are removed. New entries are owned like the `dst` root; entries
/// the host had keep their owner. Refused, with nothing written, when `src` holds more than
/// `max_bytes`.
pub fn copy_back(src: &Path, dst: &Path, max_bytes: u64) -> Result<()> {
    let s = open_root(src)?;
    let held = usage(s.as_fd(), &mut HashSet::new(), 0).ctx("measure", src.display())?;
    if held > max_bytes {
        return Err(crate::error::other(
            "copy back",
            format!(
                "{}: the sandbox's copy holds {held} bytes, more than --workspace-max-size ({max_bytes} bytes); the host copy was left as it was",
                dst.display()
            ),
        ));
    }
    let d = open_host_root(dst)?;
    let owner = rfs::fstat(&d).map_err(e).ctx("stat", dst.display())?;
    let mut c = copier(&d, Some((owner.st_uid, owner.st_gid)), true)?;
    c.copy_dir(s.as_fd(), d.as_fd(), Path::new(""), 0)
        .map_err(|err| with_root(err, dst))
}

/// Name the tree's root in an error about a path beneath it.
fn with_root(mut err: crate::error::SysError, root: &Path) -> crate::error::SysError {
    err.what = root
        .join(OsString::from_vec(
            std::mem::take(&mut err.what).into_bytes(),
        ))
        .display()
        .to_string();
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn round_trip_mirror() {
        let t = crate::TestDir::new("copy-test");
        let (host, sb) = (t.join("host"), t.join("sb"));
        fs::create_dir_all(host.join("sub")).unwrap();
        fs::create_dir_all(&sb).unwrap();
        fs::write(host.join("a.txt"), "a").unwrap();
        fs::write(host.join("sub/b.txt"), "b").unwrap();
        fs::write(host.join("gone.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", host.join("link")).unwrap();
        let (uid, gid) = (
            fs::metadata(&host).unwrap().uid(),
            fs::metadata(&host).unwrap().gid(),
        );
        copy_in(&host, &sb, uid, gid).unwrap();
        assert_eq!(fs::read_to_string(sb.join("sub/b.txt")).unwrap(), "b");
        assert_eq!(fs::read_link(sb.join("link")).unwrap(), Path::new("/etc"));
        // The sandbox edits: change a, delete gone, replace the symlink by a dir, add setuid file.
        fs::write(sb.join("a.txt"), "changed").unwrap();
        fs::remove_file(sb.join("gone.txt")).unwrap();
        fs::remove_file(sb.join("link")).unwrap();
        fs::create_dir(sb.join("link")).unwrap();
        fs::write(sb.join("link/passwd"), "not /etc/passwd").unwrap();
        fs::write(sb.join("suid"), "x").unwrap();
        fs::set_permissions(sb.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
        copy_back(&sb, &host, u64::MAX).unwrap();
        assert_eq!(fs::read_to_string(host.join("a.txt")).unwrap(), "changed");
        assert!(!host.join("gone.txt").exists());
        assert!(fs::symlink_metadata(host.join("link")).unwrap().is_dir());
        assert_eq!(
            fs::read_to_string(host.join("link/passwd")).unwrap(),
            "not /etc/passwd"
        );
        assert_eq!(
            fs::metadata(host.join("suid")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_ne!(
            fs::read_to_string("/etc/passwd").unwrap(),
            "not /etc/passwd"
        );
        // No temporary names left behind.
        for e in fs::read_dir(&host).unwrap() {
            let n = e.unwrap().file_name();
            assert!(!n.to_string_lossy().starts_with(".nucleus-copy"), "{n:?}");
        }
    }

    /// A workspace owned by 1000:1000 with an existing file: the workload rewrites that file and
    /// makes it setuid, creates a setgid file and a link to a root-only host file. The link comes
    /// back as a link, no setuid/setgid bit anywhere, owners kept (never root's).
    #[test]
    fn copy_back_keeps_owners_and_strips_privilege() {
        let t = crate::TestDir::new("copy-owner");
        let (host, sb) = (t.join("host"), t.join("sb"));
        fs::create_dir_all(&host).unwrap();
        fs::create_dir_all(&sb).unwrap();
        fs::write(host.join("tool"), "old").unwrap();
        rfs::chown(
            &host,
            Some(rfs::Uid::from_raw(1000)),
            Some(rfs::Gid::from_raw(1000)),
        )
        .unwrap();
        rfs::chown(
            host.join("tool"),
            Some(rfs::Uid::from_raw(1000)),
            Some(rfs::Gid::from_raw(1000)),
        )
        .unwrap();
        // A file of another user in the workspace keeps its owner too.
        fs::write(host.join("theirs"), "old").unwrap();
        rfs::chown(
            host.join("theirs"),
            Some(rfs::Uid::from_raw(1001)),
            Some(rfs::Gid::from_raw(1002)),
        )
        .unwrap();
        copy_in(&host, &sb, 0, 0).unwrap();
        fs::write(sb.join("tool"), "rewritten, longer").unwrap();
        fs::write(sb.join("theirs"), "rewritten too").unwrap();
        fs::set_permissions(sb.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::write(sb.join("new"), "n").unwrap();
        fs::set_permissions(sb.join("new"), fs::Permissions::from_mode(0o2755)).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", sb.join("secret")).unwrap();
        copy_back(&sb, &host, u64::MAX).unwrap();
        let tool = fs::metadata(host.join("tool")).unwrap();
        assert_eq!(
            fs::read_to_string(host.join("tool")).unwrap(),
            "rewritten, longer"
        );
        assert_eq!((tool.uid(), tool.gid()), (1000, 1000));
        assert_eq!(tool.mode() & 0o7777, 0o755);
        let theirs = fs::metadata(host.join("theirs")).unwrap();
        assert_eq!(
            fs::read_to_string(host.join("theirs")).unwrap(),
            "rewritten too"
        );
        assert_eq!((theirs.uid(), theirs.gid()), (1001, 1002));
        let new = fs::metadata(host.join("new")).unwrap();
        assert_eq!((new.uid(), new.gid()), (1000, 1000));
        assert_eq!(new.mode() & 0o7777, 0o755);
        let secret = fs::symlink_metadata(host.join("secret")).unwrap();
        assert!(secret.file_type().is_symlink());
        assert_eq!(
            fs::read_link(host.join("secret")).unwrap(),
            Path::new("/etc/shadow")
        );
    }

    /// Sparse files stay sparse and hard links stay links: 1 GiB apparent with 50 links costs a
    /// few KiB on the host; a limit below what the tree holds refuses before writing anything.
    #[test]
    fn copy_back_keeps_sparseness_and_links_and_is_bounded() {
        let t = crate::TestDir::new("copy-amplify");
        let (host, sb) = (t.join("host"), t.join("sb"));
        fs::create_dir_all(&host).unwrap();
        fs::create_dir_all(sb.join("links")).unwrap();
        let f = File::create(sb.join("sparse")).unwrap();
        f.set_len(1 << 30).unwrap();
        f.write_all_at(b"data in the middle", 1 << 29).unwrap();
        drop(f);
        for i in 0..50 {
            fs::hard_link(sb.join("sparse"), sb.join(format!("links/l{i}"))).unwrap();
        }
        fs::write(sb.join("big"), vec![7u8; 256 * 1024]).unwrap();
        // Refused below what the tree holds; nothing written.
        let r = copy_back(&sb, &host, 64 * 1024);
        assert!(r.unwrap_err().to_string().contains("--workspace-max-size"));
        assert_eq!(fs::read_dir(&host).unwrap().count(), 0);
        copy_back(&sb, &host, 16 << 20).unwrap();
        let s = fs::metadata(host.join("sparse")).unwrap();
        assert_eq!(s.len(), 1 << 30);
        assert!(
            s.blocks() * 512 < 1 << 20,
            "sparse copy allocated {}",
            s.blocks() * 512
        );
        assert_eq!(s.nlink(), 51);
        assert_eq!(fs::metadata(host.join("links/l7")).unwrap().ino(), s.ino());
        let mut buf = [0u8; 18];
        File::open(host.join("links/l3"))
            .unwrap()
            .read_exact_at(&mut buf, 1 << 29)
            .unwrap();
        assert_eq!(&buf, b"data in the middle");
        assert_eq!(fs::read(host.join("big")).unwrap(), vec![7u8; 256 * 1024]);
    }

    /// A second writer to the host tree swaps a directory for a symlink to an outside directory
    /// with RENAME_EXCHANGE, over and over, while copy-back writes files into that directory and
    /// removes one. Nothing is ever written or removed outside the tree.
    #[test]
    fn copy_back_races_cannot_escape() {
        let t = crate::TestDir::new("copy-race");
        let (host, sb, outside) = (t.join("host"), t.join("sb"), t.join("outside"));
        fs::create_dir_all(host.join("d")).unwrap();
        fs::create_dir_all(sb.join("d")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "keep").unwrap();
        fs::write(host.join("d/victim"), "host copy").unwrap();
        for i in 0..300 {
            fs::write(sb.join(format!("d/f{i}")), "x").unwrap();
        }
        std::os::unix::fs::symlink(&outside, host.join("l")).unwrap();
        // The sandbox's copy has the link too, so each round puts it back.
        std::os::unix::fs::symlink(&outside, sb.join("l")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = {
            let (stop, host) = (stop.clone(), host.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if crate::raw::rename_exchange(&host.join("d"), &host.join("l")).is_ok() {
                        swaps += 1;
                    }
                }
                swaps
            })
        };
        for _ in 0..20 {
            let _ = copy_back(&sb, &host, u64::MAX);
            // The exchange leaves either name as the directory: put the sandbox's view back
            // into a state where the next round writes again.
            for i in 0..300 {
                let _ = fs::remove_file(sb.join(format!("d/f{i}")));
                fs::write(sb.join(format!("d/f{i}")), "x").unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let swaps = racer.join().unwrap();
        assert!(swaps > 100, "the racer swapped only {swaps} times");
        let left: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![OsString::from("victim")],
            "written outside: {left:?}"
        );
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "keep");
    }

    /// Copy-in from a host tree whose directory is swapped for a symlink to a secret directory
    /// (with files of the same names) during the copy never copies a secret.
    #[test]
    fn copy_in_races_cannot_read_outside() {
        let t = crate::TestDir::new("copy-in-race");
        let (host, outside) = (t.join("host"), t.join("outside"));
        fs::create_dir_all(host.join("d")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        for i in 0..200 {
            fs::write(host.join(format!("d/f{i}")), "x").unwrap();
            fs::write(outside.join(format!("f{i}")), "host secret").unwrap();
        }
        std::os::unix::fs::symlink(&outside, host.join("l")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = {
            let (stop, host) = (stop.clone(), host.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = crate::raw::rename_exchange(&host.join("d"), &host.join("l"));
                }
            })
        };
        let mut copied = 0;
        for round in 0..25 {
            let sb = t.join(format!("sb{round}"));
            fs::create_dir_all(&sb).unwrap();
            let _ = copy_in(&host, &sb, 0, 0);
            for d in ["d", "l"] {
                let Ok(rd) = fs::read_dir(sb.join(d)) else {
                    continue;
                };
                if fs::symlink_metadata(sb.join(d)).unwrap().is_symlink() {
                    continue;
                }
                for e in rd {
                    let body = fs::read_to_string(e.unwrap().path()).unwrap();
                    assert_ne!(body, "host secret", "round {round}: a secret was copied in");
                    copied += 1;
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        racer.join().unwrap();
        assert!(copied > 0, "no round copied anything");
    }
}
