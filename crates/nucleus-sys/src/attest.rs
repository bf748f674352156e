//! Root filesystem attestation, the mechanism (the format and the image layout are
//! `nucleus_spec::attest`'s).
//!
//! - [`manifest`] walks a tree by file descriptor (never following a symlink, never leaving
//!   the tree's mount) and describes every entry, with each file's SHA-256.
//! - [`seal`] checks a tree against a manifest, entry by entry and byte by byte, and writes
//!   what it read, as it hashes it, into a read-only EROFS image in the runtime's private
//!   cache; a verdict next to it records the image's identity and this boot. The image holds
//!   only what the manifest lists: what differs is refused, naming the path.
//! - [`open_sealed`] is each later start's check: the verdict, this boot, the image's inode and
//!   change time, the source's identity; a few system calls, whatever the tree's size.
//! - [`mount_image`] mounts the image (detached, read-only) for the sandbox to attach as its
//!   root: the sandbox runs on the bytes that were verified, not on the directory, which may
//!   change after (`nucleus rootfs verify` checks it again).

use crate::error::{other, Context, Result};
use nucleus_spec::attest::{erofs, Entry, Kind, Manifest, Mismatch, Source};
use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use rustix::mount::{self as rmount, FsMountFlags, FsOpenFlags, MountAttrFlags};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A file's status as read (a manifest's, for its verdict).
pub type Stat = rfs::Stat;

/// Within the tree only, no symlink anywhere on the way, no other mount.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Bump when the image layout or the verdict changes: older verdicts are then not trusted.
const VERDICT_FORMAT: &str = "nucleus-rootfs-verdict 1";

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

fn open_in(dir: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let rel: &OsStr = if rel.is_empty() {
        OsStr::new(".")
    } else {
        OsStr::from_bytes(rel)
    };
    rfs::openat2(
        dir,
        rel,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .map_err(errno)
}

/// A tree's top, for reading.
fn open_top(dir: &Path) -> Result<OwnedFd> {
    rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
    .ctx("open", dir.display())
}

/// What an entry is on disk (symlink targets read separately).
fn kind_of(st: &rfs::Stat) -> Option<Kind> {
    let (major, minor) = (rfs::major(st.st_rdev), rfs::minor(st.st_rdev));
    Some(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File {
            size: st.st_size as u64,
            sha256: [0; 32],
        },
        FileType::Symlink => Kind::Symlink(Vec::new()),
        FileType::CharacterDevice => Kind::Char { major, minor },
        FileType::BlockDevice => Kind::Block { major, minor },
        FileType::Fifo => Kind::Fifo,
        _ => return None,
    })
}

/// Names in a directory (not `.` and `..`), sorted.
fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let d = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let mut out = Vec::new();
    for ent in rfs::Dir::read_from(&d).map_err(errno)? {
        let ent = ent.map_err(errno)?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    out.sort();
    Ok(out)
}

fn readlink(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    Ok(rfs::readlinkat(fd, "", Vec::new())
        .map_err(errno)?
        .into_bytes())
}

/// Hash an open file, also writing its bytes at `out` (when given) from `offset`; returns
/// the digest and the byte count.
fn hash_file(f: OwnedFd, mut out: Option<(&std::fs::File, u64)>) -> io::Result<([u8; 32], u64)> {
    let mut f = std::fs::File::from(f);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let got = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..got]);
        if let Some((img, at)) = &mut out {
            img.write_all_at(&buf[..got], *at)?;
            *at += got as u64;
        }
        n += got as u64;
    }
    Ok((h.finalize().into(), n))
}

/// Describe the tree at `dir`: every entry, sorted, with each file's SHA-256. Refuses what a
/// manifest cannot hold (sockets, a mount inside the tree).
pub fn manifest(dir: &Path) -> Result<Manifest> {
    let top = open_top(dir)?;
    let mut entries = Vec::new();
    walk(top.as_fd(), Vec::new(), (dir, b""), &mut entries)?;
    let mut m = Manifest {
        entries,
        closure: false,
    };
    m.sort();
    Ok(m)
}

/// Describe the Nix store path `dir` as a root with its closure (`store_paths`, all in
/// /nix/store, `dir`'s own included) at nix/store/ (see `nucleus_spec::attest`).
pub fn manifest_closure(dir: &Path, store_paths: &[PathBuf]) -> Result<Manifest> {
    let store = Path::new(nucleus_spec::attest::STORE_ON_HOST);
    let top = open_top(dir)?;
    let store_fd = open_top(store)?;
    let mut entries = Vec::new();
    walk(top.as_fd(), Vec::new(), (dir, b""), &mut entries)?;
    for synthetic in [&b"nix"[..], nucleus_spec::attest::STORE_IN_TREE] {
        entries.push(Entry {
            path: synthetic.to_vec(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        });
    }
    let mut names: Vec<Vec<u8>> = Vec::new();
    for p in store_paths {
        let name = p
            .strip_prefix(store)
            .ok()
            .map(|n| n.as_os_str().as_bytes().to_vec())
            .filter(|n| nucleus_spec::attest::valid_path(n) && !n.contains(&b'/'))
            .ok_or_else(|| {
                other(
                    "rootfs manifest",
                    format!("{}: not a path in {}", p.display(), store.display()),
                )
            })?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        walk(store_fd.as_fd(), name, (store, b"nix/store/"), &mut entries)?;
    }
    // The store's owner is the installation's: not attested; the image's entries are root's.
    for e in &mut entries {
        (e.uid, e.gid) = (0, 0);
    }
    let mut m = Manifest {
        entries,
        closure: true,
    };
    m.sort();
    Ok(m)
}

/// Walk the entry `rel` of the tree at `top` (`dir` on the host) and everything below it; the
/// manifest paths are `prefix` + `rel`.
fn walk(
    top: BorrowedFd<'_>,
    rel: Vec<u8>,
    (dir, prefix): (&Path, &[u8]),
    out: &mut Vec<Entry>,
) -> Result<()> {
    let shown = || dir.join(OsStr::from_bytes(&rel)).display().to_string();
    let fd = open_in(top, &rel, OFlags::PATH).ctx("open", shown())?;
    let st = rfs::fstat(&fd).map_err(errno).ctx("stat", shown())?;
    let Some(mut kind) = kind_of(&st) else {
        return Err(other(
            "rootfs manifest",
            format!("{}: a socket cannot be attested; remove it", shown()),
        ));
    };
    match &mut kind {
        Kind::File { size, sha256 } => {
            let f = open_in(top, &rel, OFlags::RDONLY | OFlags::NONBLOCK).ctx("open", shown())?;
            let again = rfs::fstat(&f).map_err(errno).ctx("stat", shown())?;
            if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
                return Err(other(
                    "rootfs manifest",
                    format!("{}: replaced while read", shown()),
                ));
            }
            let (h, n) = hash_file(f, None).ctx("read", shown())?;
            (*size, *sha256) = (n, h);
        }
        Kind::Symlink(t) => *t = readlink(fd.as_fd()).ctx("readlink", shown())?,
        _ => {}
    }
    let is_dir = kind == Kind::Dir;
    out.push(Entry {
        path: [prefix, &rel].concat(),
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    });
    if is_dir {
        for name in names(fd.as_fd()).ctx("read directory", shown())? {
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend(name);
            walk(top, child, (dir, prefix), out)?;
        }
    }
    Ok(())
}

/// Why a tree was not sealed.
#[derive(Debug)]
pub enum SealError {
    /// The tree differs from the manifest: the one line to print.
    Differs(String),
    Sys(crate::error::SysError),
}

impl From<crate::error::SysError> for SealError {
    fn from(e: crate::error::SysError) -> Self {
        SealError::Sys(e)
    }
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::Differs(l) => f.write_str(l),
            SealError::Sys(e) => write!(f, "{e}"),
        }
    }
}

/// Where sealed images live: a directory owned by us and closed to everyone else.
fn open_cache(cache: &Path) -> Result<OwnedFd> {
    crate::raw::mkdir_p(cache, 0o700).ctx("mkdir", cache.display())?;
    let fd = rfs::open(
        cache,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
    .ctx("open", cache.display())?;
    let st = rfs::fstat(&fd)
        .map_err(errno)
        .ctx("stat", cache.display())?;
    if st.st_uid != rustix::process::geteuid().as_raw() || st.st_mode & 0o077 != 0 {
        return Err(other(
            "rootfs cache",
            format!(
                "{}: must be owned by the runtime's user and closed to others (mode 0700)",
                cache.display()
            ),
        ));
    }
    Ok(fd)
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A file's identity as a verdict records it: any write, chmod, chown, link or rename moves
/// its change time; a replacement is another inode.
fn stamp(st: &rfs::Stat) -> String {
    format!(
        "{} {} {} {}.{} {}.{}",
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_ctime,
        st.st_ctime_nsec,
        st.st_mtime,
        st.st_mtime_nsec
    )
}

/// What a verdict pins: this boot, the image file, the source directory (the same tree, not
/// a copy never verified) and the manifest file (unchanged since its digest was checked: a
/// later start reads neither it nor the tree).
fn identity(img: &rfs::Stat, source: (&rfs::Stat, &Path), manifest: (&rfs::Stat, &Path)) -> String {
    let path = |p: &Path| nucleus_spec::attest::shown(p.as_os_str().as_bytes());
    format!(
        "{VERDICT_FORMAT}\nboot {}\nimage {}\nsource {} {} {}\nmanifest {} {}\n",
        boot_id(),
        stamp(img),
        source.0.st_dev,
        source.0.st_ino,
        path(source.1),
        stamp(manifest.0),
        path(manifest.1),
    )
}

fn names_for(digest: &str) -> (String, String) {
    (format!("{digest}.erofs"), format!("{digest}.verdict"))
}

/// Check `dir` against `m` (read from `manifest`, whose digest is `digest`, as `manifest_st`
/// found it) and seal it into an image in `cache`. Returns the image, open. Nothing is left
/// on failure.
pub fn seal(
    dir: &Path,
    (m, manifest, manifest_st): (&Manifest, &Path, &rfs::Stat),
    digest: &str,
    cache: &Path,
) -> std::result::Result<OwnedFd, SealError> {
    let cache_fd = open_cache(cache)?;
    let mut uuid = [0u8; 16];
    for (i, b) in uuid.iter_mut().enumerate() {
        *b = u8::from_str_radix(digest.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    let layout = erofs::layout(m, uuid).map_err(|e| other("rootfs image", e))?;
    let (image_name, verdict_name) = names_for(digest);
    let tmp = format!("{image_name}.tmp-{}", std::process::id());
    let img_fd = rfs::openat(
        &cache_fd,
        tmp.as_str(),
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(errno)
    .ctx("create", cache.join(&tmp).display())?;
    let img = std::fs::File::from(img_fd);
    let result = (|| {
        img.set_len(layout.len)
            .ctx("write", cache.join(&tmp).display())?;
        img.write_all_at(&layout.meta, 0)
            .ctx("write", cache.join(&tmp).display())?;
        let top = open_top(dir)?;
        check_tree(top.as_fd(), m, &layout.files, Some(&img))?;
        img.sync_all().ctx("sync", cache.join(&tmp).display())?;
        let _ = rfs::unlinkat(&cache_fd, verdict_name.as_str(), rfs::AtFlags::empty());
        // The old image's shared mount goes with it (sandboxes on it keep their clones).
        let (shared, record) = shared_names(digest);
        let _ = rfs::unlinkat(&cache_fd, record.as_str(), rfs::AtFlags::empty());
        let at = cache.join(&shared);
        while rmount::unmount(
            &at,
            rmount::UnmountFlags::DETACH | rmount::UnmountFlags::NOFOLLOW,
        )
        .is_ok()
        {}
        rfs::renameat(&cache_fd, tmp.as_str(), &cache_fd, image_name.as_str())
            .map_err(errno)
            .ctx("rename", cache.join(&image_name).display())?;
        let st = rfs::fstat(&img).map_err(errno).ctx("stat", &image_name)?;
        let src = rfs::fstat(&top).map_err(errno).ctx("stat", dir.display())?;
        let id = identity(&st, (&src, dir), (manifest_st, manifest)) + &top_lines(m);
        write_verdict(&cache_fd, &verdict_name, &id)
            .ctx("write", cache.join(&verdict_name).display())?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(OwnedFd::from(img)),
        Err(e) => {
            let _ = rfs::unlinkat(&cache_fd, tmp.as_str(), rfs::AtFlags::empty());
            Err(e)
        }
    }
}

fn write_verdict(cache: &OwnedFd, name: &str, text: &str) -> io::Result<()> {
    let tmp = format!("{name}.tmp-{}", std::process::id());
    let fd = rfs::openat(
        cache,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(errno)?;
    let f = std::fs::File::from(fd);
    f.write_all_at(text.as_bytes(), 0)?;
    rfs::renameat(cache, tmp.as_str(), cache, name).map_err(errno)
}

/// Every entry of the manifest, in order, against the tree; file contents are hashed and
/// written into the image at their place as they are read.
fn check_tree(
    top: BorrowedFd<'_>,
    m: &Manifest,
    files: &[(usize, u64)],
    img: Option<&std::fs::File>,
) -> std::result::Result<(), SealError> {
    let (_, children) = m.tree().map_err(|e| other("rootfs manifest", e))?;
    let mut offsets = files.iter().peekable();
    let store = match m.closure {
        true => Some(open_top(Path::new(nucleus_spec::attest::STORE_ON_HOST))?),
        false => None,
    };
    for (i, e) in m.entries.iter().enumerate() {
        let differs = |x: Mismatch| SealError::Differs(x.line(&e.path));
        let shown = e.shown();
        // Where the entry is read from (a closure's store paths: the host's store).
        let (top, rel) = match (m.source(&e.path), &store) {
            (Source::Synthetic, _) => continue,
            (Source::Store(rest), Some(s)) => (s.as_fd(), rest),
            _ => (top, &e.path[..]),
        };
        let fd = match open_in(top, rel, OFlags::PATH) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                return Err(differs(Mismatch::Missing))
            }
            // A symlink or a mount where a directory of the manifest was.
            Err(err) if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::EXDEV)) => {
                return Err(SealError::Differs(format!(
                    "{shown}: reached through a symlink or another mount, not the manifest's directories"
                )))
            }
            Err(err) => return Err(SealError::Sys(crate::error::SysError {
                op: "open",
                what: shown,
                source: err,
            })),
        };
        let st = rfs::fstat(&fd).map_err(errno).ctx("stat", &shown)?;
        let have = kind_of(&st);
        let same_type = matches!(
            (&e.kind, &have),
            (Kind::Dir, Some(Kind::Dir))
                | (Kind::File { .. }, Some(Kind::File { .. }))
                | (Kind::Symlink(_), Some(Kind::Symlink(_)))
                | (Kind::Char { .. }, Some(Kind::Char { .. }))
                | (Kind::Block { .. }, Some(Kind::Block { .. }))
                | (Kind::Fifo, Some(Kind::Fifo))
        );
        if !same_type {
            return Err(differs(Mismatch::Kind {
                want: e.kind.noun(),
                have: have.as_ref().map(Kind::noun).unwrap_or("a socket"),
            }));
        }
        if st.st_mode & 0o7777 != e.mode && !matches!(e.kind, Kind::Symlink(_)) {
            return Err(differs(Mismatch::Mode {
                want: e.mode,
                have: st.st_mode & 0o7777,
            }));
        }
        if !m.closure && (st.st_uid, st.st_gid) != (e.uid, e.gid) {
            return Err(differs(Mismatch::Owner {
                want: (e.uid, e.gid),
                have: (st.st_uid, st.st_gid),
            }));
        }
        match (&e.kind, have) {
            (Kind::File { size, sha256 }, _) => {
                if st.st_size as u64 != *size {
                    return Err(differs(Mismatch::Size {
                        want: *size,
                        have: st.st_size as u64,
                    }));
                }
                let f = open_in(top, rel, OFlags::RDONLY | OFlags::NONBLOCK).ctx("open", &shown)?;
                let again = rfs::fstat(&f).map_err(errno).ctx("stat", &shown)?;
                if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
                    return Err(SealError::Differs(format!(
                        "{shown}: replaced while verified"
                    )));
                }
                let at = match (offsets.peek(), img) {
                    (Some(&&(idx, at)), Some(img)) if idx == i => {
                        offsets.next();
                        Some((img, at))
                    }
                    _ => None,
                };
                let (h, n) = hash_file(f, at).ctx("read", &shown)?;
                if n != *size {
                    return Err(differs(Mismatch::Size {
                        want: *size,
                        have: n,
                    }));
                }
                if h != *sha256 {
                    return Err(differs(Mismatch::Content));
                }
            }
            (Kind::Symlink(t), _) if readlink(fd.as_fd()).ctx("readlink", &shown)? != *t => {
                return Err(differs(Mismatch::Target));
            }
            (want @ (Kind::Char { .. } | Kind::Block { .. }), Some(have)) if *want != have => {
                return Err(differs(Mismatch::Device));
            }
            (Kind::Dir, _) => {
                let want: Vec<&[u8]> = children[i].iter().map(|&c| m.entries[c].name()).collect();
                for name in names(fd.as_fd()).ctx("read directory", &shown)? {
                    if !want.contains(&name.as_slice()) {
                        let mut p = e.path.clone();
                        if !p.is_empty() {
                            p.push(b'/');
                        }
                        p.extend(name);
                        return Err(SealError::Differs(Mismatch::Added.line(&p)));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The sealed image of `digest` for the tree at `source`, when its verdict still holds (this
/// boot, this image inode unchanged, this source directory): open. None: verify again.
pub fn open_sealed(cache: &Path, digest: &str, source: &Path, manifest: &Path) -> Option<OwnedFd> {
    sealed(cache, digest, source, manifest).map(|(img, _)| img)
}

/// The top-level entries of the sealed image (the root's: a plan lends them, on a tmpfs root,
/// and grants execute on them), as its verdict lists them, when the verdict holds.
pub fn sealed_top(
    cache: &Path,
    digest: &str,
    source: &Path,
    manifest: &Path,
) -> Option<Vec<nucleus_spec::host::HostEntry>> {
    let (_, text) = sealed(cache, digest, source, manifest)?;
    let mut out = Vec::new();
    for l in text.lines().filter_map(|l| l.strip_prefix("top ")) {
        let mut f = l.split(' ');
        let (Some(name), Some(kind)) = (f.next(), f.next()) else {
            return None;
        };
        let name = unescape_path(name)?;
        let kind = match kind {
            "d" => nucleus_spec::host::EntryKind::Dir,
            "f" => nucleus_spec::host::EntryKind::File,
            "l" => nucleus_spec::host::EntryKind::Symlink(unescape_path(f.next()?)?),
            _ => return None,
        };
        out.push(nucleus_spec::host::HostEntry {
            path: name,
            kind,
            stamp: 0,
        });
    }
    Some(out)
}

fn unescape_path(s: &str) -> Option<PathBuf> {
    nucleus_spec::attest::unescape(s).map(|b| PathBuf::from(OsStr::from_bytes(&b)))
}

/// The top-level entries of `m` as a verdict lists them.
fn top_lines(m: &Manifest) -> String {
    let mut s = String::new();
    for e in m.entries.iter().filter(|e| e.parent() == Some(&[][..])) {
        let name = nucleus_spec::attest::shown(&e.path);
        match &e.kind {
            Kind::Dir => s.push_str(&format!("top {name} d\n")),
            Kind::Symlink(t) => s.push_str(&format!(
                "top {name} l {}\n",
                nucleus_spec::attest::shown(t)
            )),
            _ => s.push_str(&format!("top {name} f\n")),
        }
    }
    s
}

/// The image and the verdict's text, when the verdict holds.
fn sealed(cache: &Path, digest: &str, source: &Path, manifest: &Path) -> Option<(OwnedFd, String)> {
    let cache_fd = open_cache(cache).ok()?;
    let (image_name, verdict_name) = names_for(digest);
    let verdict = rfs::openat(
        &cache_fd,
        verdict_name.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut text = String::new();
    std::fs::File::from(verdict)
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    let img = rfs::openat(
        &cache_fd,
        image_name.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = rfs::fstat(&img).ok()?;
    let src = rfs::stat(source).ok()?;
    let man = rfs::stat(manifest).ok()?;
    (st.st_uid == rustix::process::geteuid().as_raw()
        && st.st_mode & 0o077 == 0
        && text.starts_with(&identity(&st, (&src, source), (&man, manifest))))
    .then_some((img, text))
}

/// A manifest file, read (bounded) with its identity as it was read.
pub fn read_manifest(path: &Path) -> io::Result<(Vec<u8>, rfs::Stat)> {
    let f = rfs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let st = rfs::fstat(&f).map_err(errno)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let max = nucleus_spec::attest::MAX_MANIFEST_BYTES;
    if st.st_size as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than {} MiB", max >> 20),
        ));
    }
    let mut text = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(f)
        .take(max + 1)
        .read_to_end(&mut text)?;
    Ok((text, st))
}

/// Check `dir` against `m` without sealing (`nucleus rootfs verify`).
pub fn verify(dir: &Path, m: &Manifest) -> std::result::Result<(), SealError> {
    let top = open_top(dir)?;
    check_tree(top.as_fd(), m, &[], None)
}

/// Mount an image (open, e.g. from [`open_sealed`]) detached: read-only, nosuid, nodev; for
/// the sandbox to attach as its root.
pub fn mount_image(img: BorrowedFd<'_>) -> Result<OwnedFd> {
    let fs = rmount::fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(errno)
        .ctx("fsopen", "erofs")?;
    let src = format!("/proc/self/fd/{}", img.as_raw_fd());
    let made = rmount::fsconfig_set_string(&fs, "source", src.as_str())
        .and_then(|()| rmount::fsconfig_create(&fs))
        .map_err(errno);
    made.map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTBLK) {
            io::Error::other(
                "this kernel cannot mount an EROFS image from a file (it needs 6.12 or later)",
            )
        } else {
            e
        }
    })
    .ctx("mount", "the attested root image")?;
    rmount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(errno)
    .ctx("fsmount", "the attested root image")
}

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8): a mount's id, never reused while the system runs.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    let st = rfs::statx(
        fd,
        "",
        rfs::AtFlags::EMPTY_PATH,
        rfs::StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE),
    )
    .ok()?;
    (st.stx_mask & STATX_MNT_ID_UNIQUE != 0).then_some(st.stx_mnt_id)
}

/// The caller's mount namespace (its inode).
fn mount_ns() -> Option<u64> {
    rfs::stat("/proc/self/ns/mnt").ok().map(|s| s.st_ino)
}

/// The mount of a sealed image that every sandbox on it shares (`DIGEST.mnt` in the cache),
/// and the file recording, per mount namespace, which mount nucleus put there.
fn shared_names(digest: &str) -> (String, String) {
    (format!("{digest}.mnt"), format!("{digest}.mount"))
}

/// A clone of the image's shared mount in this mount namespace, if it is the one nucleus
/// mounted (its unique id as recorded): one superblock for every sandbox on the image, so
/// its page cache is shared and warm, and a start neither builds nor tears one down.
fn shared_clone(cache: &OwnedFd, digest: &str, ns: u64) -> Option<OwnedFd> {
    let (dir, record) = shared_names(digest);
    let text = read_small(cache, &record)?;
    let want: u64 = text.lines().find_map(|l| {
        let (n, id) = l.split_once(' ')?;
        (n.parse::<u64>().ok()? == ns).then(|| id.parse().ok())?
    })?;
    let at = rfs::openat(
        cache,
        dir.as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    if mount_id(at.as_fd())? != want {
        return None;
    }
    crate::raw::open_tree_clone(Some(at.as_fd()), Path::new(""), false).ok()
}

fn read_small(dir: &OwnedFd, name: &str) -> Option<String> {
    let f = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut text = String::new();
    std::fs::File::from(f)
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The attested root for one sandbox, detached (read-only, nosuid, nodev): a clone of the
/// sealed image's shared mount, mounted first when this mount namespace has none. Fails when
/// the image's verdict no longer holds (it changed since it was verified).
pub fn root_mount(cache: &Path, digest: &str, source: &Path, manifest: &Path) -> Result<OwnedFd> {
    let img = open_sealed(cache, digest, source, manifest).ok_or_else(|| {
        other(
            "rootfs",
            format!(
                "{}: its sealed image changed since it was verified; start again to verify it anew",
                source.display()
            ),
        )
    })?;
    let cache_fd = open_cache(cache)?;
    let Some(ns) = mount_ns() else {
        return mount_image(img.as_fd());
    };
    if let Some(m) = shared_clone(&cache_fd, digest, ns) {
        return Ok(m);
    }
    // Mount it, once: starts that race here wait for the first.
    rfs::flock(&cache_fd, rfs::FlockOperation::LockExclusive)
        .map_err(errno)
        .ctx("lock", cache.display())?;
    if let Some(m) = shared_clone(&cache_fd, digest, ns) {
        return Ok(m);
    }
    let m = mount_image(img.as_fd())?;
    let (dir, record) = shared_names(digest);
    let at = cache.join(&dir);
    match rfs::mkdirat(&cache_fd, dir.as_str(), Mode::from_raw_mode(0o700)) {
        Err(rustix::io::Errno::EXIST) | Ok(()) => {}
        Err(e) => return Err(errno(e)).ctx("mkdir", at.display()),
    }
    // What an earlier mount namespace or a lost record left there, in this namespace.
    while rmount::unmount(
        &at,
        rmount::UnmountFlags::DETACH | rmount::UnmountFlags::NOFOLLOW,
    )
    .is_ok()
    {}
    rmount::move_mount(
        m.as_fd(),
        "",
        &cache_fd,
        dir.as_str(),
        rmount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(errno)
    .ctx("mount the sealed image at", at.display())?;
    let shared = rfs::openat(
        &cache_fd,
        dir.as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
    .ctx("open", at.display())?;
    let Some(id) = mount_id(shared.as_fd()) else {
        // No unique mount ids (before Linux 6.8): nothing to recognize it by; a mount per
        // sandbox instead.
        let _ = rmount::unmount(
            &at,
            rmount::UnmountFlags::DETACH | rmount::UnmountFlags::NOFOLLOW,
        );
        return mount_image(img.as_fd());
    };
    // One line per mount namespace that mounted it (the last few), ours replaced.
    let mut lines: Vec<String> = read_small(&cache_fd, &record)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with(&format!("{ns} ")))
        .map(str::to_string)
        .collect();
    let keep = lines.len().saturating_sub(15);
    lines.drain(..keep);
    lines.push(format!("{ns} {id}"));
    write_verdict(&cache_fd, &record, &(lines.join("\n") + "\n"))
        .ctx("write", cache.join(&record).display())?;
    crate::raw::open_tree_clone(Some(shared.as_fd()), Path::new(""), false)
        .ctx("clone the sealed image's mount", at.display())
}

/// Remove every sealed image in `cache`: its shared mount (detached: running sandboxes keep
/// their own clones), image, verdict and record. The next start on each verifies again.
/// Returns how many images were removed.
pub fn forget_all(cache: &Path) -> Result<usize> {
    let cache_fd = match open_cache(cache) {
        Ok(fd) => fd,
        Err(e) if e.source.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    rfs::flock(&cache_fd, rfs::FlockOperation::LockExclusive)
        .map_err(errno)
        .ctx("lock", cache.display())?;
    let mut n = 0;
    for name in names(cache_fd.as_fd()).ctx("read directory", cache.display())? {
        let name = String::from_utf8_lossy(&name).into_owned();
        let at = cache.join(&name);
        if name.ends_with(".mnt") {
            while rmount::unmount(
                &at,
                rmount::UnmountFlags::DETACH | rmount::UnmountFlags::NOFOLLOW,
            )
            .is_ok()
            {}
            rfs::unlinkat(&cache_fd, name.as_str(), rfs::AtFlags::REMOVEDIR)
                .map_err(errno)
                .ctx("remove", at.display())?;
        } else {
            n += usize::from(name.ends_with(".erofs"));
            rfs::unlinkat(&cache_fd, name.as_str(), rfs::AtFlags::empty())
                .map_err(errno)
                .ctx("remove", at.display())?;
        }
    }
    Ok(n)
}

/// Where an image's sealed copy of `digest` is (for messages and cleanup).
pub fn image_path(cache: &Path, digest: &str) -> PathBuf {
    cache.join(names_for(digest).0)
}
