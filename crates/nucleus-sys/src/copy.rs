//! Copying trees between the host and a detached sandbox tmpfs (context copies, copy-in-out
//! workspaces).
//!
//! Copy-back treats the sandbox's tree as hostile: by then every sandbox process is dead (no
//! races), symlinks are copied as symlinks and never followed, host entries whose type changed
//! are replaced rather than written through, and setuid/setgid bits are stripped so a sandbox
//! cannot plant a privileged program on the host.

use crate::error::{Context, Result};
use std::fs;
use std::io;
use std::os::unix::fs::{chown, lchown, MetadataExt, PermissionsExt};
use std::path::Path;

fn set_times(p: &Path, md: &fs::Metadata) -> io::Result<()> {
    let c = crate::raw::cstr(p)?;
    let ts = [
        libc::timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec(),
        },
        libc::timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec(),
        },
    ];
    // SAFETY: valid C string and a two-element timespec array.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copy `src` (host) into the existing directory `dst`, owning everything by `uid:gid`.
pub fn copy_in(src: &Path, dst: &Path, uid: u32, gid: u32) -> Result<()> {
    let md = fs::metadata(src).ctx("read", src.display())?;
    if !md.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR)).ctx("copy", src.display());
    }
    copy_dir(src, dst, Some((uid, gid)), false)?;
    chown(dst, Some(uid), Some(gid)).ctx("chown", dst.display())?;
    fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o777))
        .ctx("chmod", dst.display())
}

/// Copy the host directory `src` into the existing directory `dst` as it is (modes and times
/// kept, owned by the caller, symlinks as symlinks; devices, sockets and fifos left out).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    copy_dir(src, dst, None, false)
}

/// Add `base` to the owner of every entry under `root` (symlinks not followed): for kernels or
/// filesystems without idmapped mounts, files are owned by the sandbox's host ids directly.
pub fn shift_owners(root: &Path, base: u32) -> Result<()> {
    let md = fs::symlink_metadata(root).ctx("stat", root.display())?;
    lchown(root, Some(md.uid() + base), Some(md.gid() + base)).ctx("chown", root.display())?;
    if md.is_dir() {
        for e in fs::read_dir(root).ctx("read directory", root.display())? {
            let e = e.ctx("read directory", root.display())?;
            shift_owners(&e.path(), base)?;
        }
    }
    Ok(())
}

/// Make `dst` (host) equal to `src` (the sandbox's copy): new and changed entries are written,
/// entries missing from `src` are removed. New entries are owned like the `dst` root.
pub fn copy_back(src: &Path, dst: &Path) -> Result<()> {
    let owner = fs::metadata(dst).ctx("read", dst.display())?;
    copy_dir(src, dst, Some((owner.uid(), owner.gid())), true)
}

fn copy_dir(src: &Path, dst: &Path, owner: Option<(u32, u32)>, mirror: bool) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for e in fs::read_dir(src).ctx("read directory", src.display())? {
        let e = e.ctx("read directory", src.display())?;
        let name = e.file_name();
        let (s, d) = (src.join(&name), dst.join(&name));
        let md = fs::symlink_metadata(&s).ctx("stat", s.display())?;
        let ft = md.file_type();
        // A host entry of the same kind (directory, regular file) is updated in place; one of
        // another kind (or a symlink) is replaced, never written through.
        let mut existing = fs::symlink_metadata(&d).ok();
        if let Some(x) = &existing {
            let same = (ft.is_dir() && x.is_dir()) || (ft.is_file() && x.file_type().is_file());
            if !same {
                remove(&d, x.is_dir())?;
                existing = None;
            }
        }
        seen.insert(name);
        let fresh = existing.is_none();
        let mode = md.mode() & if mirror { 0o1777 } else { 0o7777 };
        if ft.is_dir() {
            if fresh {
                fs::create_dir(&d).ctx("mkdir", d.display())?;
            }
            copy_dir(&s, &d, owner, mirror)?;
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).ctx("chmod", d.display())?;
        } else if ft.is_symlink() {
            let t = fs::read_link(&s).ctx("readlink", s.display())?;
            std::os::unix::fs::symlink(&t, &d).ctx("symlink", d.display())?;
        } else if ft.is_file() {
            let unchanged = existing.as_ref().is_some_and(|x| {
                x.len() == md.len() && x.mtime() == md.mtime() && x.mtime_nsec() == md.mtime_nsec()
            });
            if !unchanged {
                if !fresh {
                    // Never write through an existing file that might be hard-linked elsewhere.
                    remove(&d, false)?;
                }
                fs::copy(&s, &d).ctx("copy", d.display())?;
                fs::set_permissions(&d, fs::Permissions::from_mode(mode))
                    .ctx("chmod", d.display())?;
            }
        } else {
            // Devices, sockets and fifos are not copied.
            continue;
        }
        if let Some((u, g)) = owner.filter(|_| fresh || !mirror) {
            lchown(&d, Some(u), Some(g)).ctx("chown", d.display())?;
        }
        if !ft.is_symlink() {
            let _ = set_times(&d, &md);
        }
    }
    if mirror {
        for e in fs::read_dir(dst).ctx("read directory", dst.display())? {
            let e = e.ctx("read directory", dst.display())?;
            if !seen.contains(&e.file_name()) {
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                remove(&e.path(), is_dir)?;
            }
        }
    }
    Ok(())
}

fn remove(p: &Path, is_dir: bool) -> Result<()> {
    if is_dir {
        fs::remove_dir_all(p).ctx("remove", p.display())
    } else {
        fs::remove_file(p).ctx("remove", p.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        copy_back(&sb, &host).unwrap();
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
    }
}
