//! The snapshot of the host /etc entries a sandbox's /etc is bound from (the plan's
//! [`EtcView`]): made once per state of those entries under the state root
//! (`.etc-views/KEY`), then shared read-only by every sandbox.
//!
//! A process using a view holds a shared flock on its directory for as long as its sandbox
//! may (the runtime of a foreground run, the monitor of a detached one); a view is removed
//! only under an exclusive lock taken without waiting, so never while a sandbox uses it. A
//! process that finds the view removed while it waited for its lock makes it again.

use crate::error::{other, Context, Result};
use crate::raw;
use nucleus_spec::host::EntryKind;
use nucleus_spec::plan::{EtcView, ETC_VIEW_LINKS, SYNTHETIC_ETC};
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Open `view` (making it from `host_etc` when missing) with a shared lock held while the
/// returned directory stays open.
pub fn hold(view: &EtcView, host_etc: &Path) -> Result<fs::File> {
    let dir = view.dir();
    let mut last = None;
    for _ in 0..3 {
        match fs::File::open(&dir) {
            Ok(f) => {
                raw::flock(f.as_fd(), false, true).ctx("lock", dir.display())?;
                // Removed (or taken away to be removed) while we waited for the lock: the path
                // no longer names what we opened. Make it again.
                let held = f.metadata().ctx("stat", dir.display())?;
                let named = fs::metadata(&dir).ok();
                if named.is_some_and(|n| (n.dev(), n.ino()) == (held.dev(), held.ino())) {
                    return Ok(f);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match build(view, &dir, host_etc) {
                Ok(()) => remove_unused(&view.views, Some(&view.key)),
                // E.g. a host entry replaced while we copied it: once more.
                Err(e) => last = Some(e),
            },
            Err(e) => return Err(e).ctx("open", dir.display()),
        }
    }
    Err(last.unwrap_or_else(|| {
        other(
            "etc view",
            format!("{}: removed as fast as it was made", dir.display()),
        )
    }))
}

/// `nucleus gc`: remove every view no sandbox holds (the next run makes its own afresh, e.g.
/// after a host file inside /etc/ssl/certs was edited in place, which the stamps do not see).
pub fn remove_unheld(views: &Path) {
    remove_unused(views, None);
}

/// Fill a temporary directory and rename it into place (a concurrent maker may win: then its
/// view is used and ours dropped).
fn build(view: &EtcView, dir: &Path, host_etc: &Path) -> Result<()> {
    let views = &view.views;
    raw::mkdir_p(views, 0o700).ctx("create", views.display())?;
    let tmp = views.join(format!(".tmp.{}.{}", view.key, std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    // Every directory gets its mode set explicitly after it is made (the umask would mask
    // the mode given to mkdir; files and links are copied with theirs by copy and copy_tree).
    let mkdir = |d: &Path, mode: u32| -> Result<()> {
        fs::create_dir(d).ctx("create", d.display())?;
        fs::set_permissions(d, fs::Permissions::from_mode(mode)).ctx("chmod", d.display())
    };
    let made = (|| -> Result<()> {
        mkdir(&tmp, 0o755)?;
        for e in &view.entries {
            let (src, dst) = (host_etc.join(&e.path), tmp.join(&e.path));
            // Parents of a nested entry (`ssl` of `ssl/certs`), outermost first.
            let mut parents: Vec<&Path> = dst
                .ancestors()
                .skip(1)
                .take_while(|p| *p != tmp.as_path())
                .collect();
            parents.reverse();
            for p in parents.into_iter().filter(|p| !p.exists()) {
                mkdir(p, 0o755)?;
            }
            match &e.kind {
                EntryKind::Symlink(t) => {
                    std::os::unix::fs::symlink(t, &dst).ctx("symlink", dst.display())?
                }
                EntryKind::Dir => {
                    let md = fs::metadata(&src).ctx("stat", src.display())?;
                    mkdir(&dst, md.mode() & 0o7777)?;
                    crate::copy::copy_tree(&src, &dst)?;
                }
                // Gone since the probe: left out (its stamp changes the next run's key).
                EntryKind::File => match fs::copy(&src, &dst) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    r => drop(r.ctx("copy", src.display())?),
                },
            }
        }
        for name in SYNTHETIC_ETC {
            let l = tmp.join(name);
            std::os::unix::fs::symlink(Path::new(ETC_VIEW_LINKS).join(name), &l)
                .ctx("symlink", l.display())?;
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if fs::rename(&tmp, dir).is_err() {
        // Made meanwhile by another run (the rename refuses a non-empty target).
        let _ = fs::remove_dir_all(&tmp);
        if !dir.exists() {
            return Err(other("make /etc view", dir.display()));
        }
    }
    Ok(())
}

/// Remove the views nobody holds but `keep`, and temporaries of makers that died. A view is
/// first renamed out of the way (under its exclusive lock), so a remover that dies half-way
/// leaves a temporary, never a half-emptied view under its name.
fn remove_unused(views: &Path, keep: Option<&str>) {
    let Ok(rd) = fs::read_dir(views) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if Some(name.as_str()) == keep {
            continue;
        }
        if let Some(rest) = name.strip_prefix(".tmp.") {
            let pid: Option<i32> = rest.rsplit('.').next().and_then(|p| p.parse().ok());
            // Signal 0 only checks that the process exists.
            if pid.is_some_and(|p| raw::kill(p, 0).is_err()) {
                let _ = fs::remove_dir_all(e.path());
            }
            continue;
        }
        if let Ok(f) = fs::File::open(e.path()) {
            if raw::flock(f.as_fd(), true, false).is_ok() {
                let gone = views.join(format!(".tmp.gc.{name}.{}", std::process::id()));
                if fs::rename(e.path(), &gone).is_ok() {
                    let _ = fs::remove_dir_all(&gone);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nucleus_spec::host::HostEntry;

    #[test]
    fn a_view_copies_entries_links_synthetic_names_and_replaces_unused_ones() {
        let t = crate::TestDir::new("etcview");
        let etc = t.join("etc");
        fs::create_dir_all(etc.join("ssl/certs")).unwrap();
        fs::write(etc.join("services"), "http 80/tcp\n").unwrap();
        fs::write(etc.join("ssl/certs/ca.pem"), "CERT").unwrap();
        std::os::unix::fs::symlink("ca.pem", etc.join("ssl/certs/hash.0")).unwrap();
        let entry = |path: &str, kind: EntryKind| HostEntry {
            path: path.into(),
            kind,
            stamp: 0,
        };
        let view = |key: &str| EtcView {
            views: t.join("views"),
            key: key.into(),
            entries: vec![
                entry("services", EntryKind::File),
                entry("ssl/certs", EntryKind::Dir),
                entry(
                    "localtime",
                    EntryKind::Symlink("/usr/share/zoneinfo/UTC".into()),
                ),
            ],
        };
        let a = view("a");
        let held = hold(&a, &etc).unwrap();
        let d = &a.dir();
        assert_eq!(
            fs::read_to_string(d.join("services")).unwrap(),
            "http 80/tcp\n"
        );
        assert_eq!(
            fs::read_to_string(d.join("ssl/certs/hash.0")).unwrap(),
            "CERT"
        );
        assert_eq!(
            fs::read_link(d.join("ssl/certs/hash.0")).unwrap(),
            Path::new("ca.pem")
        );
        assert_eq!(
            fs::read_link(d.join("localtime")).unwrap(),
            Path::new("/usr/share/zoneinfo/UTC")
        );
        assert_eq!(
            fs::read_link(d.join("passwd")).unwrap(),
            Path::new(ETC_VIEW_LINKS).join("passwd")
        );
        assert_eq!(fs::metadata(d).unwrap().mode() & 0o777, 0o755);
        assert_eq!(fs::metadata(d.join("ssl")).unwrap().mode() & 0o777, 0o755);
        // A second view while the first is held: the first stays.
        let b = view("b");
        let held_b = hold(&b, &etc).unwrap();
        assert!(a.dir().exists() && b.dir().exists());
        // Released, it goes when the next view is made.
        drop(held);
        let c = view("c");
        let _held_c = hold(&c, &etc).unwrap();
        assert!(!a.dir().exists() && b.dir().exists() && c.dir().exists());
        // gc: every view nobody holds goes.
        drop(held_b);
        remove_unheld(&t.join("views"));
        assert!(!b.dir().exists() && c.dir().exists());
        drop(_held_c);
        remove_unheld(&t.join("views"));
        assert!(!c.dir().exists());
        assert_eq!(fs::read_dir(t.join("views")).unwrap().count(), 0);
    }
}
