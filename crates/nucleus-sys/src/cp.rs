//! `nucleus cp`'s two halves: a tar stream of a tree ([`pack`]: links stored as links, never
//! followed) and its extraction into a directory ([`unpack`]: every entry made by descriptor
//! beneath that directory, `openat2` RESOLVE_BENEATH | NO_SYMLINKS for its parents, the entry
//! itself never followed if it is a link; no `..`, no absolute name; set-id bits dropped; hard
//! links and device nodes refused). The sandbox's half runs inside the sandbox
//! (`join::in_sandbox`), the host's half in the runtime.

use nucleus_spec::cp::entry_ok;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn e(err: rustix::io::Errno) -> io::Error {
    io::Error::from(err)
}

/// A tar stream of `src` to `out`: named `name` (its contents only when None: `src` is then a
/// directory). Symlinks are stored as links; sockets are left out.
pub fn pack(src: &Path, name: Option<&str>, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    match name {
        Some(n) => {
            let md = std::fs::symlink_metadata(src)?;
            if md.is_dir() {
                b.append_dir_all(n, src)?;
            } else {
                b.append_path_with_name(src, n)?;
            }
        }
        None => b.append_dir_all(".", src)?,
    }
    b.into_inner()?.flush()
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// The directory `rel` beneath `top` (made, one component at a time, where missing).
fn dir_beneath(top: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    let mut cur = rfs::openat(
        top,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e)?;
    for c in rel
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let name = OsStr::from_bytes(c);
        match rfs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(x) => return Err(e(x)),
        }
        cur = rfs::openat2(
            &cur,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        )
        .map_err(e)?;
    }
    Ok(cur)
}

/// Remove what is at `name` in `dir` unless it is a directory (a copy replaces files and
/// links, as cp does; it never writes through one).
fn clear(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory => {
            rfs::unlinkat(dir, name, AtFlags::empty()).map_err(e)
        }
        _ => Ok(()),
    }
}

/// What an extraction made.
#[derive(Debug, Default)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
}

/// Extract the tar stream `input` into `dir` (made first when `make_dir`: its parent must
/// exist). Directories get their modes once everything in them is written.
pub fn unpack(dir: &Path, make_dir: bool, input: impl Read) -> io::Result<Unpacked> {
    if make_dir {
        match std::fs::create_dir(dir) {
            Err(x) if x.kind() != io::ErrorKind::AlreadyExists => return Err(x),
            _ => {}
        }
    }
    let top = rfs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e)?;
    let mut ar = tar::Archive::new(input);
    let mut done = Unpacked::default();
    let mut dir_modes: Vec<(Vec<u8>, u32)> = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let path: Vec<u8> = raw.strip_prefix(b"./").unwrap_or(&raw).to_vec();
        let path: Vec<u8> = path.strip_suffix(b"/").unwrap_or(&path).to_vec();
        if path.is_empty() || path == b"." {
            continue;
        }
        if !entry_ok(&path) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: a name outside the destination",
                    String::from_utf8_lossy(&raw)
                ),
            ));
        }
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], &path[..]),
        };
        let name = OsStr::from_bytes(name);
        let pfd = dir_beneath(top.as_fd(), parent)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let shown = || String::from_utf8_lossy(&path).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                match rfs::mkdirat(&pfd, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(x) => return Err(e(x)),
                }
                dir_modes.push((path.clone(), mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                clear(pfd.as_fd(), name)?;
                let f = rfs::openat(
                    &pfd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(e)?;
                let mut f = std::fs::File::from(f);
                done.bytes += io::copy(&mut entry, &mut f)?;
                rfs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(e)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: a link without a target", shown()),
                    )
                })?;
                clear(pfd.as_fd(), name)?;
                rfs::symlinkat(OsStr::from_bytes(&target), &pfd, name).map_err(e)?;
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                    "{}: {other:?} entries are not copied (only files, directories and symlinks)",
                    shown()
                ),
                ))
            }
        }
        done.entries += 1;
    }
    // Deepest first: a directory made read-only after what is in it.
    dir_modes.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
    for (p, mode) in dir_modes {
        let d = rfs::openat2(
            &top,
            OsStr::from_bytes(&p),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        )
        .map_err(e)?;
        rfs::fchmod(&d, Mode::from_raw_mode(mode)).map_err(e)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_tree_round_trips_with_links_as_links() {
        let base = std::env::temp_dir().join(format!("nucleus-cp-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let src = base.join("src");
        std::fs::create_dir_all(src.join("d/e")).unwrap();
        std::fs::write(src.join("d/e/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", src.join("d/link")).unwrap();
        let mut buf = Vec::new();
        pack(&src, Some("copy"), &mut buf).unwrap();
        let dst = base.join("dst");
        std::fs::create_dir(&dst).unwrap();
        let u = unpack(&dst, false, &buf[..]).unwrap();
        assert_eq!(u.bytes, 5);
        assert_eq!(std::fs::read(dst.join("copy/d/e/f")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_link(dst.join("copy/d/link")).unwrap(),
            Path::new("/etc/shadow")
        );
        // A planted link where a directory of the archive goes: refused, nothing through it.
        let evil = base.join("evil");
        std::fs::create_dir(&evil).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), evil.join("copy")).unwrap();
        std::fs::create_dir(base.join("outside")).unwrap();
        assert!(unpack(&evil, false, &buf[..]).is_err());
        assert!(std::fs::read_dir(base.join("outside"))
            .unwrap()
            .next()
            .is_none());
        // `..` in a name (written raw: the builder refuses to): refused.
        let mut h = tar::Header::new_old();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_old_mut().name[..10].copy_from_slice(b"a/../../x\0");
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let err = unpack(&dst, false, &bytes[..]).unwrap_err();
        assert!(err.to_string().contains("outside the destination"), "{err}");
        assert!(!base.join("x").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
