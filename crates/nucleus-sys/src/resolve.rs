//! Opening the host paths a caller names (bind sources, workspaces, contexts) without being
//! led elsewhere by a symlink someone else planted.
//!
//! The runtime runs as root; the directories it is pointed at are often writable by others (a
//! workspace that an earlier sandbox had read-write, a user's home). A symlink placed there by
//! a sandbox or by an unprivileged user would otherwise make root open, bind or copy whatever
//! it points at. Ownership does not tell such a link apart: a sandbox writing through an
//! idmapped bind of a root-owned workspace creates root-owned links. So, for a root caller, a
//! path is resolved one component at a time from `/`, by file descriptor, and a symlink is
//! followed only where the system keeps its own (owned by root, directly in `/`, `/etc`,
//! `/usr` or `/var`: `/var/run`, `/lib`, `/etc/resolv.conf`); any other refuses the path,
//! naming the link, and the caller gives the path it points to if that is meant. A caller
//! that is not root gains nothing from a link it could open itself: its paths are resolved
//! as the kernel does. The result is an `O_PATH` descriptor of what the path names, used as
//! it is (open_tree, openat), so nothing is resolved twice.

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// At most this many symlinks on one path (the kernel's own limit).
const MAX_LINKS: usize = 40;

fn e(err: rustix::io::Errno) -> io::Error {
    io::Error::from(err)
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn root() -> io::Result<OwnedFd> {
    rfs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e)
}

/// Directories whose root-owned symlinks a root caller's paths may cross.
pub const SYSTEM_LINK_DIRS: &[&str] = &["/", "/etc", "/usr", "/var"];

/// An `O_PATH` descriptor of `path` (absolute), following only the symlinks the module's rule
/// allows.
pub fn open_trusted(path: &Path) -> io::Result<OwnedFd> {
    let caller = rustix::process::getuid().as_raw();
    open_trusting(path, |uid, dir| {
        caller != 0 || (uid == 0 && SYSTEM_LINK_DIRS.iter().any(|d| Path::new(d) == dir))
    })
}

fn open_trusting(path: &Path, trusted: impl Fn(u32, &Path) -> bool) -> io::Result<OwnedFd> {
    if !path.is_absolute() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut todo = components(path);
    let mut cur = root()?;
    let mut at = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        let name: &OsStr = &c;
        let st = rfs::statat(&cur, name, AtFlags::SYMLINK_NOFOLLOW).map_err(e)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            let link = at.join(name);
            if !trusted(st.st_uid, &at) {
                return Err(io::Error::other(format!(
                    "{} is a symlink (owned by uid {}); the runtime follows only the system's own links in {} (give the path it points to, if that is meant)",
                    link.display(),
                    st.st_uid,
                    SYSTEM_LINK_DIRS.join(", ")
                )));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = rfs::readlinkat(&cur, name, Vec::new()).map_err(e)?;
            let target = Path::new(OsStr::from_bytes(target.to_bytes()));
            if target.is_absolute() {
                cur = root()?;
                at = PathBuf::from("/");
            }
            for t in components(target).into_iter().rev() {
                todo.push_front(t);
            }
            continue;
        }
        let next = rfs::openat(
            &cur,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(e)?;
        // Swapped for a symlink since the stat: refused rather than looked at again.
        let now = rfs::fstat(&next).map_err(e)?;
        if FileType::from_raw_mode(now.st_mode) == FileType::Symlink {
            return Err(io::Error::other(format!(
                "{} changed while it was resolved",
                at.join(name).display()
            )));
        }
        cur = next;
        if name == ".." {
            at.pop();
        } else {
            at.push(name);
        }
    }
    Ok(cur)
}

/// Read at most `max` bytes of `rel` inside the root filesystem `root` (a trusted path), with
/// every symlink resolved inside it (an image's `/etc/passwd -> /etc/shadow` stays the image's).
pub fn read_in_root(root: &Path, rel: &str, max: u64) -> io::Result<String> {
    read_within(open_dir_trusted(root)?.as_fd(), rel, max)
}

/// Read `rel` inside the root of process `pid` (its mount namespace's view, as
/// /proc/PID/root shows it), resolved within that root (symlinks included: they cannot lead
/// out of it), at most `max` bytes, a regular file only.
pub fn read_in_proc_root(pid: i32, rel: &str, max: u64) -> io::Result<String> {
    let r = rfs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e)?;
    read_within(r.as_fd(), rel, max)
}

/// What `path` is inside the root of process `pid` (resolved within it; `follow`: through a
/// final symlink too): None when there is nothing.
pub fn kind_in_proc_root(pid: i32, path: &str, follow: bool) -> io::Result<Option<FileType>> {
    let r = rfs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e)?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    match rfs::openat2(
        r.as_fd(),
        rel,
        flags,
        Mode::empty(),
        rfs::ResolveFlags::IN_ROOT | rfs::ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(f) => Ok(Some(FileType::from_raw_mode(
            rfs::fstat(&f).map_err(e)?.st_mode,
        ))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(x) => Err(e(x)),
    }
}

/// A regular file `rel` resolved inside the directory `r` (as its root), at most `max` bytes.
fn read_within(r: std::os::fd::BorrowedFd<'_>, rel: &str, max: u64) -> io::Result<String> {
    use std::io::Read;
    let f = rfs::openat2(
        r,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        rfs::ResolveFlags::IN_ROOT | rfs::ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(e)?;
    if !rfs::fstat(&f).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut s = String::new();
    std::fs::File::from(f).take(max).read_to_string(&mut s)?;
    Ok(s)
}

/// Open the directory a trusted resolution of `path` names, for reading its entries.
pub fn open_dir_trusted(path: &Path) -> io::Result<OwnedFd> {
    let p = open_trusted(path)?;
    rfs::openat(
        p.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino(fd: &OwnedFd) -> u64 {
        rfs::fstat(fd).unwrap().st_ino
    }

    #[test]
    fn follows_system_links_and_refuses_others() {
        let t = crate::TestDir::new("resolve");
        std::fs::create_dir_all(t.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(t.join("real"), t.join("abs")).unwrap();
        std::os::unix::fs::symlink("real/sub", t.join("rel")).unwrap();
        let want = std::fs::metadata(t.join("real/sub")).unwrap().ino();
        // No link: resolved; `..` too.
        assert_eq!(ino(&open_trusted(&t.join("real/sub")).unwrap()), want);
        assert_eq!(
            ino(&open_trusted(&t.join("real/sub/../sub")).unwrap()),
            want
        );
        // A root-owned link outside the system's directories (a workspace, say, where a
        // sandbox writing through an idmapped bind makes root-owned links) is refused.
        let err = open_trusted(&t.join("abs/sub")).unwrap_err().to_string();
        assert!(
            err.contains("/abs is a symlink") && err.contains("uid 0"),
            "{err}"
        );
        assert!(open_trusted(&t.join("rel")).is_err());
        // Where links are trusted, absolute and relative ones are followed.
        let all = |_: u32, _: &Path| true;
        assert_eq!(ino(&open_trusting(&t.join("abs/sub"), all).unwrap()), want);
        assert_eq!(ino(&open_trusting(&t.join("rel"), all).unwrap()), want);
        // The system's own links are followed (/var/run, /lib or /bin on every current
        // distribution).
        let system: Vec<&str> = ["/var/run", "/lib", "/bin"]
            .into_iter()
            .filter(|l| std::fs::symlink_metadata(l).is_ok_and(|m| m.is_symlink()))
            .collect();
        assert!(!system.is_empty());
        for l in system {
            let got = ino(&open_trusted(Path::new(l)).unwrap());
            assert_eq!(got, std::fs::metadata(l).unwrap().ino(), "{l}");
        }
        // Loops end.
        std::os::unix::fs::symlink("loop", t.join("loop")).unwrap();
        assert_eq!(
            open_trusting(&t.join("loop"), all)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ELOOP)
        );
    }
}
