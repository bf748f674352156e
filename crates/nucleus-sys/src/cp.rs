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

/// A tar stream of one regular file `name` (no directory part) holding `data`, for `cp -`.
pub fn file_tar(name: &str, mode: u32, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_mode(mode & 0o777);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let mut b = tar::Builder::new(Vec::with_capacity(data.len() + 2048));
    b.append_data(&mut h, name, data)?;
    b.into_inner()
}

/// The first entry of a tar stream from `cp ID:PATH -`.
#[derive(Debug, PartialEq)]
pub enum TarHead {
    /// A regular file: its first `max` bytes, and its whole size.
    File {
        data: Vec<u8>,
        size: u64,
    },
    Dir,
    Link(Vec<u8>),
    Other,
}

/// Read the first entry of `input`, keeping at most `max` bytes of a file (the rest of the
/// stream is not read).
pub fn tar_head(input: impl Read, max: u64) -> io::Result<TarHead> {
    let mut ar = tar::Archive::new(input);
    let mut entries = ar.entries()?;
    let entry = entries
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "an empty tar stream"))?;
    let entry = entry?;
    Ok(match entry.header().entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = entry.header().size()?;
            let mut data = Vec::new();
            entry.take(max).read_to_end(&mut data)?;
            TarHead::File { data, size }
        }
        tar::EntryType::Directory => TarHead::Dir,
        tar::EntryType::Symlink => TarHead::Link(
            entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
        ),
        _ => TarHead::Other,
    })
}

/// List `path` (run inside the sandbox): a directory's entries sorted by name, or the entry
/// itself when it is not a directory, as JSON lines to `out`: name, type (file, dir, symlink,
/// other), size, mode, mtime (seconds), uid, gid, and target for links. Entries are never
/// followed (the path itself is, when it names a directory through a link). At most `max`
/// entries, then a line `{"truncated": true}`.
pub fn list(path: &Path, max: usize, mut out: impl Write) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let line = |out: &mut dyn Write, name: &OsStr, at: &Path| -> io::Result<()> {
        let md = std::fs::symlink_metadata(at)?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else {
            "other"
        };
        let mut v = serde_json::json!({
            "name": String::from_utf8_lossy(name.as_bytes()),
            "type": kind,
            "size": md.len(),
            "mode": format!("{:04o}", md.mode() & 0o7777),
            "mtime": md.mtime(),
            "uid": md.uid(),
            "gid": md.gid(),
        });
        if ft.is_symlink() {
            let t = std::fs::read_link(at)?;
            v["target"] = String::from_utf8_lossy(t.as_os_str().as_bytes()).into();
        }
        writeln!(out, "{v}")
    };
    if !std::fs::metadata(path)?.is_dir() {
        let name = path.file_name().unwrap_or(path.as_os_str());
        line(&mut out, name, path)?;
        return out.flush();
    }
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    for d in std::fs::read_dir(path)? {
        names.push(d?.file_name());
        if names.len() > max {
            break;
        }
    }
    names.sort();
    let truncated = names.len() > max;
    for n in names.iter().take(max) {
        match line(&mut out, n, &path.join(n)) {
            // Gone since it was read: left out.
            Err(x) if x.kind() == io::ErrorKind::NotFound => {}
            r => r?,
        }
    }
    if truncated {
        writeln!(out, "{}", serde_json::json!({ "truncated": true }))?;
    }
    out.flush()
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

    #[test]
    fn one_file_tar_reads_back_and_lists() {
        let t = file_tar("a.txt", 0o640, b"hello").unwrap();
        let dir = std::env::temp_dir().join(format!("nucleus-cp-one-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        unpack(&dir, false, &t[..]).unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello");
        assert_eq!(
            tar_head(&t[..], 2).unwrap(),
            TarHead::File {
                data: b"he".to_vec(),
                size: 5
            }
        );
        std::os::unix::fs::symlink("/etc/shadow", dir.join("l")).unwrap();
        let mut out = Vec::new();
        list(&dir, 10, &mut out).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["name"], "a.txt");
        assert_eq!(
            (lines[0]["size"].as_u64(), lines[0]["mode"].as_str()),
            (Some(5), Some("0640"))
        );
        assert_eq!(
            (lines[1]["type"].as_str(), lines[1]["target"].as_str()),
            (Some("symlink"), Some("/etc/shadow"))
        );
        let mut out = Vec::new();
        list(&dir, 1, &mut out).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("{\"truncated\":true}\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
