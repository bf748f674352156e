//! Shared helpers for the privileged end-to-end tests: run the real binary as root, read the
//! probe's report from inside, and compare host state from outside.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::new(());

/// Host-state comparisons need sandboxes not to overlap: tests take this lock.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the end-to-end tests need root (run scripts/test.sh as root); refusing to skip silently"
    );
}

pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nucleus"))
}

pub(crate) fn probe() -> PathBuf {
    let p = bin().parent().unwrap().join("nucleus-probe");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build -p nucleus-probe` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The state root the tests' sandboxes use unless a test gives its own `--root`.
pub(crate) fn state_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("state")
}

pub(crate) fn nucleus(args: &[&str]) -> Command {
    require_root();
    let mut c = Command::new(bin());
    c.env("NUCLEUS_ROOT", state_root());
    c.args(args);
    // A test killed (a timeout, mutation testing) takes its runtimes, and so their sandboxes,
    // along instead of leaving them hung for the next tests to trip over.
    // SAFETY: prctl in the forked child before exec; no memory arguments.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    c
}

/// Every command a test runs, and every child it waits for, ends within this: a broken signal
/// path or a hung runtime fails the test in minutes instead of holding the suite.
pub(crate) const DEADLINE: std::time::Duration = std::time::Duration::from_secs(180);

pub(crate) fn run(args: &[&str]) -> Output {
    output_within(nucleus(args).stdin(Stdio::null()), DEADLINE)
}

/// `Command::output`, killing the command (and failing the test) past `limit`.
pub(crate) fn output_within(c: &mut Command, limit: std::time::Duration) -> Output {
    use std::io::Read;
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let what = format!("{c:?}");
    let mut child = c.spawn().unwrap();
    let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let ot = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = o.read_to_end(&mut v);
        v
    });
    let et = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = e.read_to_end(&mut v);
        v
    });
    let status = wait_within(&mut child, limit, &what);
    Output {
        status,
        stdout: ot.join().unwrap(),
        stderr: et.join().unwrap(),
    }
}

/// `Child::wait`, killing the child (and failing the test) past `limit`.
pub(crate) fn wait_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run the probe inside a sandbox: `flags` go before `--`, `probe_args` after the probe path.
pub(crate) fn probe_run(flags: &[&str], probe_args: &[&str]) -> Value {
    let probe = probe();
    let vol = format!("{}:/probe:ro", probe.display());
    let mut args: Vec<&str> = vec!["run", "-v", &vol];
    args.extend_from_slice(flags);
    args.push("--");
    args.push("/probe");
    args.extend_from_slice(probe_args);
    let o = run(&args);
    assert!(
        o.status.success(),
        "probe failed: {:?}\nstderr: {}",
        o.status,
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {}", stdout(&o)))
}

/// What a sandbox could leave behind on the host.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostState {
    mounts: Vec<String>,
    links: Vec<String>,
    id_ranges: usize,
    children: Vec<String>,
    run_dir: Vec<String>,
    tmp_entries: Vec<String>,
    cgroups: Vec<String>,
    cgroup_holds: usize,
}

/// Every cgroup directory on the host whose path mentions nucleus (any hierarchy).
pub(crate) fn nucleus_cgroups() -> Vec<String> {
    fn has_subdir(dir: &Path) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()))
    }
    fn walk(dir: &Path, depth: usize, out: &mut Vec<String>) {
        if depth == 0 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && !ft.is_symlink() {
                let p = e.path();
                // (An empty default parent, `…/nucleus`, is kept from run to run:
                // docs/cgroups.md. One with a leaf in it is listed, and so is the leaf.)
                let kept = e.file_name() == "nucleus" && !has_subdir(&p);
                if p.to_string_lossy().contains("nucleus") && !kept {
                    out.push(p.display().to_string());
                }
                walk(&p, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 7, &mut out);
    out.sort();
    out
}

fn ls(p: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Processes whose parent is this test process.
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for pid in ls("/proc")
        .into_iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let ppid = after.split_whitespace().nth(1).unwrap_or("");
            if ppid == me {
                out.push(format!(
                    "{pid}:{}",
                    stat.split_whitespace().nth(1).unwrap_or("")
                ));
            }
        }
    }
    out
}

pub(crate) fn host_state() -> HostState {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').skip(4).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let unix = std::fs::read_to_string("/proc/net/unix").unwrap();
    // Held id ranges: locks on the claims file (see nucleus-sys idslot).
    let id_ranges = {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata("/run/nucleus-idranges") {
            Ok(m) => std::fs::read_to_string("/proc/locks")
                .unwrap()
                .lines()
                .filter(|l| l.contains("OFDLCK") && l.contains(&format!(":{} ", m.ino())))
                .count(),
            Err(_) => 0,
        }
    };
    let cgroup_holds = unix.matches("@nucleus/cgroup/").count();
    HostState {
        mounts,
        links: ls("/sys/class/net"),
        id_ranges,
        children: children(),
        run_dir: {
            let r = state_root();
            let mut v: Vec<String> = ls(r.to_str().unwrap())
                .into_iter()
                .filter(|e| !store_own(e))
                .collect();
            v.extend(ls(r.join("names").to_str().unwrap()));
            v
        },
        tmp_entries: ls("/tmp")
            .into_iter()
            .filter(|e| e.contains("nucleus") && !e.starts_with("nucleus-test-"))
            .collect(),
        cgroups: nucleus_cgroups(),
        cgroup_holds,
    }
}

/// Entries of a state root that are the store's own, not any sandbox's: the audit log, the
/// name links' directory, the shared /etc views (kept for the next run) and the address claims.
pub(crate) fn store_own(name: &str) -> bool {
    matches!(name, "audit.jsonl" | "names" | ".etc-views" | "net")
}

impl HostState {
    /// What is in `self` and was not in `before`: what the test left behind. Things that went
    /// away meanwhile (a stale record or cgroup of an earlier, killed run that this test's
    /// `gc` removed; another run on the machine ending) are not the test's doing.
    fn added_since(&self, before: &HostState) -> Vec<String> {
        let mut out = vec![];
        let new = |what: &str, a: &[String], b: &[String], out: &mut Vec<String>| {
            for x in a.iter().filter(|x| !b.contains(x)) {
                out.push(format!("{what} {x}"));
            }
        };
        new("mount", &self.mounts, &before.mounts, &mut out);
        new("link", &self.links, &before.links, &mut out);
        new("child", &self.children, &before.children, &mut out);
        new("record", &self.run_dir, &before.run_dir, &mut out);
        new("tmp", &self.tmp_entries, &before.tmp_entries, &mut out);
        new("cgroup", &self.cgroups, &before.cgroups, &mut out);
        if self.id_ranges > before.id_ranges {
            out.push(format!(
                "id ranges {} -> {}",
                before.id_ranges, self.id_ranges
            ));
        }
        if self.cgroup_holds > before.cgroup_holds {
            out.push(format!(
                "cgroup holds {} -> {}",
                before.cgroup_holds, self.cgroup_holds
            ));
        }
        out
    }
}

/// Assert `f` leaves nothing on the host that was not there before.
pub(crate) fn leaves_nothing<T>(f: impl FnOnce() -> T) -> T {
    let before = host_state();
    let r = f();
    // A foreground run's clean-up helper (docs/lifecycle.md) may still be finishing: it is
    // bounded by init's exit, which can wait for the host's init to reap what a killed `exec`
    // left in the sandbox (seconds at worst). Then the kernel's own teardown.
    let helpers = std::time::Instant::now();
    while clean_up_helpers() > 0 && helpers.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut after = host_state();
    for _ in 0..50 {
        if after.added_since(&before).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        after = host_state();
    }
    let added = after.added_since(&before);
    assert!(
        added.is_empty(),
        "left behind: {added:?}\nbefore: {before:?}\nafter: {after:?}"
    );
    r
}

/// A new terminal: its master (the test's side) and its slave (the runtime's), of size `ws`.
pub(crate) fn openpty(ws: Option<&libc::winsize>) -> (std::fs::File, std::os::fd::OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty with valid out-pointers and, when given, a window size.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            ws.map_or(std::ptr::null(), |w| w as *const libc::winsize),
        )
    };
    assert_eq!(r, 0, "openpty");
    // SAFETY: fresh descriptors we own.
    unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    }
}

/// Foreground runs' clean-up helpers alive now (their command line is
/// `nucleus: clean-up of ID`).
pub(crate) fn clean_up_helpers() -> usize {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c.starts_with(b"nucleus: clean-up of "))
        .count()
}

/// Removes a sandbox of a state root when dropped, also when the test fails: declared after the
/// root's TempDir, it goes first (a monitor whose state root vanished would run on, out of
/// reach).
pub(crate) struct RmOnDrop(pub String, pub String);

impl Drop for RmOnDrop {
    fn drop(&mut self) {
        let _ = run(&["--root", &self.0, "rm", "-f", &self.1]);
    }
}

/// A fresh host directory for a test (removed by the guard).
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("nucleus-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
    pub(crate) fn s(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A busybox image for the OCI clients' tests: `rootfs/` in `t` with busybox and the given
/// applets in /bin, root in /etc/passwd and /etc/group, and `rootfs.tar` of it (what
/// `podman import` and `docker import` take).
pub(crate) fn busybox_image_tar(t: &TempDir, applets: &[&str]) -> PathBuf {
    let root = t.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is required (scripts/test.sh installs it)");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for a in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    root
}

/// Write `rootfs.tar` of `t`'s rootfs/.
pub(crate) fn tar_rootfs(t: &TempDir) {
    let o = Command::new("tar")
        .args(["-C", &t.path().join("rootfs").display().to_string(), "-cf"])
        .arg(t.path().join("rootfs.tar"))
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success());
}

/// Remove a cgroup parent a client (podman, dockerd) made at the root of every hierarchy,
/// with the empty leaves it left in it.
pub(crate) fn remove_cgroup_parent(name: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        for dir in [h.path(), PathBuf::from("/sys/fs/cgroup")] {
            let parent = dir.join(name);
            for sub in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                if sub.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(sub.path());
                }
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

/// The value of the `key: value` line of a test script's output.
pub(crate) fn output_line(out: &str, err: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} line\nstdout:\n{out}\nstderr:\n{err}"))
        .to_string()
}

/// A detached sandbox (`sleep`) for a test's calls into it, removed by the guard.
pub(crate) struct Session(pub String);

impl Session {
    pub(crate) fn new(flags: &[&str]) -> Session {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(flags);
        a.extend(["--", "sleep", "100000"]);
        let o = run(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        Session(stdout(&o).trim().to_string())
    }
    /// `exec ID -- sh -c SCRIPT`, which must succeed: its output.
    pub(crate) fn sh(&self, script: &str) -> String {
        let o = run(&["exec", &self.0, "--", "sh", "-c", script]);
        assert!(o.status.success(), "{script}: {}", stderr(&o));
        stdout(&o)
    }
    /// `ID:PATH`.
    pub(crate) fn at(&self, p: &str) -> String {
        format!("{}:{p}", self.0)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = run(&["rm", "-f", &self.0]);
    }
}

/// An OCI-style console socket receiver: accepts one connection, takes the fd, prints the name
/// and then everything read from the terminal until its other side closes.
pub(crate) const CONSOLE_RECEIVER: &str = r#"
import socket, os, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
msg, fds, flags, addr = socket.recv_fds(c, 1024, 1)
print("name", msg.decode(), flush=True)
out = b""
while True:
    try:
        b = os.read(fds[0], 4096)
    except OSError:
        break
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
"#;

/// Run `c` with a new terminal of `rows` x `cols` as its stdin, stdout and stderr (the caller
/// of a runtime at a terminal); what it wrote there and its status, once the terminal's last
/// holder has left (then reading the master gives EIO) and it has exited.
#[allow(dead_code)]
pub(crate) fn run_at_terminal(
    mut c: std::process::Command,
    rows: u16,
    cols: u16,
) -> (std::process::ExitStatus, String) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (master, slave) = openpty(Some(&ws));
    c.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    let what = format!("{c:?}");
    let mut child = c.spawn().unwrap();
    drop(c);
    drop(slave);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = std::io::Read::read(&mut &master, &mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    let st = wait_within(&mut child, std::time::Duration::from_secs(60), &what);
    (st, String::from_utf8_lossy(&out).into_owned())
}

/// The first line a child writes to its piped stdout (the rest stays in the pipe).
pub(crate) fn first_line(c: &mut std::process::Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(c.stdout.as_mut().expect("a piped stdout")),
        &mut line,
    )
    .unwrap();
    line
}
