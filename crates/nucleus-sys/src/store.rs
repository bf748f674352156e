//! The state store: one directory per sandbox under the state root (`/run/nucleus` for root,
//! `$XDG_RUNTIME_DIR/nucleus` otherwise), holding `state.json` (replaced whole, atomically),
//! `plan.json` (what `exec` needs to join with the same protections), `log` (a detached
//! workload's stdout and stderr) and `ctl` (the monitor's control socket). Names are symlinks
//! `names/NAME -> ID`, created with symlink(2) so two claims of one name cannot both win.
//! `rm` holds an exclusive flock on the sandbox's directory. A sandbox's directory is filled
//! as `.tmp.ID.PID.START` (its maker's pid and start time) and renamed to `ID`, so a directory
//! named by an id always has its `state.json`, and one left by a process killed half-way names
//! its dead maker.

use crate::error::{Context, Result};
use crate::process::{alive, this_process};
use nucleus_spec::state::{ProcId, State};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub struct Store {
    root: PathBuf,
}

/// An exclusive lock on a directory, released on drop.
pub struct Lock {
    _fd: fs::File,
}

fn flock(path: &Path) -> io::Result<Lock> {
    let f = fs::File::open(path)?;
    crate::raw::flock(f.as_fd(), true, true)?;
    Ok(Lock { _fd: f })
}

/// Create `path` (0600, never through a symlink) and write `data` into it.
fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    // A leftover of a dead process with the same pid is replaced.
    let mut f = match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(path);
            open()
        }
        r => r,
    }?;
    f.write_all(data)
}

/// The files of a sandbox directory, and its subdirectories (a gVisor sandbox's bundle:
/// written by the runtime and runsc only; `remove_dir_all` does not follow links).
fn remove_files(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_dir_all(e.path());
            } else {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Remove `dir` after emptying it; a file appended meanwhile (an exec's CPU time, a log line)
/// makes it non-empty again: empty it again, a few times. Idempotent.
fn remove_dir_emptied(dir: &Path) -> io::Result<()> {
    remove_files(dir);
    let mut tries = 0;
    loop {
        match fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 5 => {
                tries += 1;
                remove_files(dir);
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => return Ok(()),
        }
    }
}

fn remove_tree(dir: &Path) {
    remove_files(dir);
    let _ = fs::remove_dir(dir);
}

fn mkdir_private(p: &Path) -> io::Result<()> {
    crate::raw::mkdir_p(p, 0o700).map(drop)
}

pub fn now_ms() -> u64 {
    crate::trace::now_ns() / 1_000_000
}

impl Store {
    /// Open (creating if needed) the state root: one lstat when it exists.
    pub fn open(root: &Path) -> Result<Store> {
        let md = match fs::symlink_metadata(root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = root.parent() {
                    fs::create_dir_all(parent).ctx("create", parent.display())?;
                }
                mkdir_private(root).ctx("create", root.display())?;
                mkdir_private(&root.join("names")).ctx("create", root.display())?;
                fs::symlink_metadata(root)
            }
            r => r,
        }
        .ctx("stat", root.display())?;
        // Refuse a root someone else could write into (records would be forgeable).
        if md.uid() != crate::security::euid() || md.mode() & 0o022 != 0 || !md.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a directory of this user's that only it can write",
            ))
            .ctx("state root", root.display());
        }
        Ok(Store { root: root.into() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the state root is on a read-only mount (nothing can be removed from it).
    pub fn read_only(&self) -> bool {
        rustix::fs::statvfs(&self.root)
            .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Make a new sandbox's directory holding its first record and `files`, published at once
    /// (filled under `.tmp.ID.PID.START`, then renamed), and claim its name. Fails with the
    /// current owner's id when the name is taken by an existing sandbox (nothing is left).
    pub fn create(
        &self,
        id: &str,
        name: Option<&str>,
        first: &State,
        files: &[(&str, &[u8])],
    ) -> Result<()> {
        // The caller has just put its own identity in the record.
        let me = first.monitor.unwrap_or_else(this_process);
        let tmp = self.root.join(format!(".tmp.{id}.{}.{}", me.pid, me.start));
        let dir = self.dir(id);
        let filled = (|| -> Result<()> {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&tmp)
                .ctx("create", tmp.display())?;
            // Nobody reads the directory before the rename: plain writes, no temporaries.
            let state = serde_json::to_vec(first)
                .map_err(io::Error::other)
                .ctx("encode", "state")?;
            write_new(&tmp.join("state.json"), &state).ctx("write", "state.json")?;
            for (n, data) in files {
                write_new(&tmp.join(n), data).ctx("write", n)?;
            }
            fs::rename(&tmp, &dir).ctx("create", dir.display())
        })();
        if let Err(e) = filled {
            remove_tree(&tmp);
            return Err(e);
        }
        if let Some(n) = name {
            if let Err(e) = self.claim_name(n, id) {
                let _ = self.remove(id, None);
                return Err(e);
            }
        }
        Ok(())
    }

    fn claim_name(&self, name: &str, id: &str) -> Result<()> {
        let link = self.root.join("names").join(name);
        for _ in 0..3 {
            match std::os::unix::fs::symlink(id, &link) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Judge and take over a stale name under the names directory's lock, so
                    // two launchers cannot both remove and re-create it.
                    let _names = flock(&self.root.join("names")).ctx("lock", "names")?;
                    let owner = match fs::read_link(&link) {
                        Ok(o) => o,
                        // Its owner's removal took it meanwhile: claim it again.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e).ctx("--name", name),
                    };
                    let o = owner.to_string_lossy();
                    if o.is_empty() || self.dir(&o).exists() {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("already used by sandbox {}", owner.display()),
                        ))
                        .ctx("--name", name);
                    }
                    // A leftover of a sandbox whose directory is gone: take it over.
                    let _ = fs::remove_file(&link);
                }
                // A root made by an older nucleus, without names/.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    mkdir_private(&self.root.join("names")).ctx("create", "names")?;
                }
                Err(e) => return Err(e).ctx("--name", name),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EAGAIN)).ctx("--name", name)
    }

    /// Lock one sandbox's directory (blocking).
    pub fn lock(&self, id: &str) -> Result<Lock> {
        let dir = self.dir(id);
        flock(&dir).ctx("lock", dir.display())
    }

    /// Replace `name` in the sandbox's directory atomically: write a temporary, swap it with
    /// the current file (readers see one or the other, whole), remove the old one.
    ///
    /// Not a rename over the old file: ext4 (auto_da_alloc) starts writing the new file's
    /// data to disk whenever a rename replaces a file, for a record that may be gone in a few
    /// milliseconds (/run is not a tmpfs everywhere; it is ext4 on the benchmark host). A
    /// rename over cost ~80 µs of CPU there plus the I/O; exchange and unlink ~50 µs, no I/O.
    pub fn write_file(&self, id: &str, name: &str, data: &[u8]) -> Result<()> {
        let dir = self.dir(id);
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        let dst = dir.join(name);
        write_new(&tmp, data).ctx("write", tmp.display())?;
        match crate::raw::rename_exchange(&tmp, &dst) {
            Ok(()) => {
                let _ = fs::remove_file(&tmp);
                Ok(())
            }
            // No file yet, a filesystem that cannot exchange (EINVAL), a kernel or filter
            // without renameat2 (ENOSYS, EPERM): a plain rename, which says what is wrong.
            Err(_) => fs::rename(&tmp, &dst).ctx("rename", tmp.display()),
        }
    }

    pub fn write(&self, s: &State) -> Result<()> {
        let data = serde_json::to_vec(s)
            .map_err(io::Error::other)
            .ctx("encode", "state")?;
        self.write_file(&s.id, "state.json", &data)
    }

    pub fn read(&self, id: &str) -> Option<State> {
        let data = fs::read(self.dir(id).join("state.json")).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Remove the half-filled directories (`.tmp.ID.PID.START`) of makers that died (returns
    /// their ids), and retired records (`.gone.ID`) left behind.
    pub fn remove_abandoned(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return vec![];
        };
        let mut out = vec![];
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            // A retired record is garbage whoever deletes it: its helper's work if it died,
            // the same work twice if it is at it now (both idempotent). Not a removal of a
            // record, so not returned (and not audited).
            if n.starts_with(".gone.") {
                let _ = remove_dir_emptied(&e.path());
                continue;
            }
            let Some(rest) = n.strip_prefix(".tmp.") else {
                continue;
            };
            let mut f = rest.rsplitn(3, '.');
            let (Some(start), Some(pid), Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let maker = (pid.parse(), start.parse());
            if let (Ok(pid), Ok(start)) = maker {
                if !alive(&ProcId { pid, start }) {
                    remove_tree(&e.path());
                    out.push(id.to_string());
                }
            }
        }
        out
    }

    /// Every sandbox with a record (published directories).
    pub fn list(&self) -> Vec<State> {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return vec![];
        };
        let mut out: Vec<State> = rd
            .flatten()
            .filter(|e| {
                e.file_name() != "names" && !e.file_name().to_string_lossy().starts_with('.')
            })
            .filter_map(|e| self.read(&e.file_name().to_string_lossy()))
            .collect();
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        out
    }

    /// Take a sandbox's record out of sight in one step (its directory renamed to `.gone.ID`,
    /// which no listing reads) and free its name; [`Store::remove_retired`] deletes it later
    /// (a foreground run that reports first and cleans after). Idempotent.
    pub fn retire(&self, id: &str, name: Option<&str>) -> Result<()> {
        self.unname(id, name);
        match fs::rename(self.dir(id), self.retired_dir(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).ctx("retire", self.dir(id).display())
            }
            _ => Ok(()),
        }
    }

    /// Delete a retired record (see [`Store::retire`]). Idempotent.
    pub fn remove_retired(&self, id: &str) {
        let _ = remove_dir_emptied(&self.retired_dir(id));
    }

    /// Where a retired record is (`.gone.ID`).
    pub fn retired_dir(&self, id: &str) -> PathBuf {
        self.root.join(format!(".gone.{id}"))
    }

    fn unname(&self, id: &str, name: Option<&str>) {
        if let Some(n) = name {
            let link = self.root.join("names").join(n);
            if fs::read_link(&link).is_ok_and(|t| t == Path::new(id)) {
                let _ = fs::remove_file(&link);
            }
        }
    }

    /// Remove a sandbox's directory and its name. Idempotent.
    pub fn remove(&self, id: &str, name: Option<&str>) -> Result<()> {
        let dir = self.dir(id);
        remove_files(&dir);
        self.unname(id, name);
        remove_dir_emptied(&dir).ctx("remove", dir.display())
    }

    /// Remove sandbox directories left without a record (a removal that lost a race with a
    /// late writer): published directories always hold `state.json`, so one without it is
    /// nobody's. Under the directory's lock. Returns their ids.
    pub fn remove_recordless(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(&self.root) else {
            return vec![];
        };
        let mut out = vec![];
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let looks = id.len() == nucleus_spec::state::ID_LEN
                && id.bytes().all(|b| b.is_ascii_hexdigit());
            if !looks || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(_lock) = self.lock(&id) else { continue };
            if !self.dir(&id).join("state.json").exists() {
                remove_tree(&self.dir(&id));
                out.push(id);
            }
        }
        out
    }
}

/// Open a file for appending (created 0600): event and audit logs, a detached workload's log.
/// Let an OCI container that waits on its exec fifo go: one byte written (ENXIO when nobody
/// has it open for reading: its process is gone), then the fifo removed.
pub fn release_fifo(p: &Path) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        p,
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if !rustix::fs::fstat(&fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    }) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a fifo"));
    }
    rustix::io::write(&fd, b"0")?;
    fs::remove_file(p)
}

pub fn open_append(p: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
}

/// The file `f` is open on, opened again for appending without the O_NOFOLLOW it was opened
/// with (through its /proc/self/fd link: the same file, whatever its path is now). For a
/// checkpointable sandbox's logs: CRIU reopens an inherited file with the flags it was dumped
/// with, through that same kind of link, and O_NOFOLLOW makes that fail (ELOOP).
pub fn reopen_append(f: &fs::File) -> io::Result<fs::File> {
    use std::os::fd::AsRawFd;
    fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// A close-on-exec duplicate of descriptor `n` (`--events-fd`), checked to be open.
pub fn dup_fd(n: i32) -> io::Result<fs::File> {
    crate::raw::dup_number(n).map(fs::File::from)
}

/// The monitor's control socket.
pub fn listen(p: &Path) -> Result<OwnedFd> {
    crate::raw::unix_listen(p).ctx("listen on", p.display())
}

/// Send one request line to a monitor's control socket and read its one-line answer.
pub fn request(p: &Path, req: &str) -> io::Result<String> {
    let s = crate::raw::unix_connect(p)?;
    crate::raw::set_timeout(s.as_fd(), 120_000)?;
    crate::raw::write_all(s.as_fd(), format!("{req}\n").as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = crate::raw::read(s.as_fd(), &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.contains(&b'\n') {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out);
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// gc's sweep of published directories left without a record (a removal that lost a race
    /// with a late writer): only those go; a sandbox with its record and the store's own
    /// directories stay.
    #[test]
    fn recordless_directories_are_removed_and_nothing_else() {
        let root = crate::TestDir::new("store-recordless");
        let store = Store::open(&root).unwrap();
        let (lost, kept) = ("0123456789abcdef", "fedcba9876543210");
        fs::create_dir(store.dir(lost)).unwrap();
        fs::write(store.dir(lost).join("exec-cpu"), "12\n").unwrap();
        fs::create_dir(store.dir(kept)).unwrap();
        fs::write(store.dir(kept).join("state.json"), "{}").unwrap();
        fs::create_dir(store.dir("not-an-id")).unwrap();
        assert_eq!(store.remove_recordless(), [lost]);
        assert!(!store.dir(lost).exists());
        assert!(store.dir(kept).join("state.json").exists());
        assert!(store.dir("not-an-id").exists());
    }

    /// A retired record (report first, clean after) is out of every listing at once, its name
    /// free; it is deleted by its remover or, left behind, by gc's sweep (not as a record).
    #[test]
    fn a_retired_record_is_out_of_sight_and_gc_deletes_a_leftover() {
        let root = crate::TestDir::new("store-retire");
        let store = Store::open(&root).unwrap();
        let st = State::new("0123456789abcdef", Some("web".into()), vec!["x".into()], 1);
        store
            .create(&st.id, Some("web"), &st, &[("plan.json", b"{}")])
            .unwrap();
        assert_eq!(store.list().len(), 1);
        store.retire(&st.id, Some("web")).unwrap();
        assert!(store.list().is_empty());
        assert!(!root.join("names").join("web").exists());
        assert!(store.retired_dir(&st.id).join("state.json").exists());
        // Idempotent; a leftover goes with gc's sweep, not counted as a removed record.
        store.retire(&st.id, Some("web")).unwrap();
        assert!(store.remove_abandoned().is_empty());
        assert!(!store.retired_dir(&st.id).exists());
        store.remove_retired(&st.id);
    }

    #[test]
    fn write_file_replaces_whole_and_leaves_no_temporary() {
        let root = crate::TestDir::new("store-test");
        let store = Store::open(&root).unwrap();
        let dir = store.dir("abc");
        fs::create_dir(&dir).unwrap();
        // First write: no file to exchange with (plain rename); then two replacements.
        for data in ["first", "second, longer", "3"] {
            store.write_file("abc", "f.json", data.as_bytes()).unwrap();
            assert_eq!(fs::read_to_string(dir.join("f.json")).unwrap(), data);
            let names: Vec<_> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec!["f.json"]);
        }
    }
}
