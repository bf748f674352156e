//! End-to-end: workloads that attack the runtime (the hostile-workload review). Each test
//! attacks the way the reviewer did and checks the host side.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A workspace owned by 1000:1000 with an existing file, copied in and out. The workload
/// rewrites the file and makes it setuid, creates a setgid file, a link to a root-only host
/// file, a sparse 1 GiB file with 50 hard links. On the host: owners kept (never root), no
/// setuid/setgid bit, the link a link, the sparse file sparse and linked, not 51 GiB.
#[test]
fn copy_back_of_a_hostile_tree() {
    let _g = serial();
    let t = TempDir::new("hostile-copy");
    std::fs::write(t.path().join("tool"), "old").unwrap();
    std::os::unix::fs::chown(t.path(), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(t.path().join("tool"), Some(1000), Some(1000)).unwrap();
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--workspace",
            &t.s(),
            "--workspace-mode",
            "copy-in-out",
            "--",
            "sh",
            "-c",
            "cp /bin/true tool && chmod 4755 tool && echo n > new && chmod 2755 new && \
             ln -s /etc/shadow secret && truncate -s 1G sparse && echo data >> sparse && \
             for i in $(seq 50); do ln sparse l$i || exit 1; done",
        ])
    });
    assert!(o.status.success(), "{}", stderr(&o));
    let md = |n: &str| std::fs::symlink_metadata(t.path().join(n)).unwrap();
    assert_eq!((md("tool").uid(), md("tool").gid()), (1000, 1000));
    assert_eq!(md("tool").mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read(t.path().join("tool")).unwrap(),
        std::fs::read("/bin/true").unwrap()
    );
    assert_eq!((md("new").uid(), md("new").gid()), (1000, 1000));
    assert_eq!(md("new").mode() & 0o7777, 0o755);
    assert!(md("secret").file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(t.path().join("secret")).unwrap(),
        std::path::Path::new("/etc/shadow")
    );
    let sparse = md("sparse");
    assert_eq!(sparse.len(), (1 << 30) + 5);
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "{} bytes",
        sparse.blocks() * 512
    );
    assert_eq!(sparse.nlink(), 51);
    assert_eq!(md("l17").ino(), sparse.ino());
}

/// A copied workspace is bounded by --workspace-max-size: the workload cannot write more, and
/// a tree larger than the bound is refused at copy-in with one line naming the flag.
#[test]
fn copied_workspace_is_bounded() {
    let _g = serial();
    let t = TempDir::new("ws-max");
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--workspace",
            &t.s(),
            "--workspace-mode",
            "copy-in-out",
            "--workspace-max-size",
            "2m",
            "--",
            "sh",
            "-c",
            "head -c 8000000 /dev/zero > big; echo rc=$?",
        ])
    });
    assert!(
        stdout(&o).starts_with("rc=1"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(std::fs::metadata(t.path().join("big")).unwrap().len() <= 2 << 20);
    std::fs::write(t.path().join("big"), vec![1u8; 3 << 20]).unwrap();
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--workspace",
            &t.s(),
            "--workspace-mode",
            "copy-in-out",
            "--workspace-max-size",
            "2m",
            "--",
            "true",
        ])
    });
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("--workspace-max-size") && e.lines().count() == 1,
        "{e}"
    );
}

/// A second sandbox with the same workspace bound read-write swaps a directory for a symlink
/// to a host directory (renameat2 RENAME_EXCHANGE, in a loop) while copy-in-out sandboxes copy
/// thousands of files into that directory and remove one. Nothing outside the workspace is
/// written or removed.
#[test]
fn copy_race_from_a_second_sandbox_cannot_escape() {
    let _g = serial();
    let ws = TempDir::new("race-ws");
    let outside = TempDir::new("race-outside");
    std::fs::write(outside.path().join("victim"), "keep").unwrap();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(ws.path().join("d")).unwrap();
    std::fs::write(ws.path().join("d/victim"), "in the workspace").unwrap();
    let racer_src = format!(
        "import ctypes, os, time\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         os.symlink({:?}, '/workspace/l')\n\
         print('ready', flush=True)\n\
         end = time.time() + 12\n\
         n = 0\n\
         while time.time() < end:\n\
         \x20   if libc.renameat2(-100, b'/workspace/d', -100, b'/workspace/l', 2) == 0: n += 1\n\
         print(n, flush=True)\n",
        outside.s()
    );
    let racer = nucleus(&[
        "run",
        "--workspace",
        &ws.s(),
        "--",
        "python3",
        "-c",
        &racer_src,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let started = Instant::now();
    while !ws.path().join("l").exists() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let _ = run(&[
            "run", "--workspace", &ws.s(), "--workspace-mode", "copy-in-out", "--", "sh", "-c",
            "mkdir -p d && rm -f d/victim && i=0; while [ $i -lt 1500 ]; do : > d/f$i; i=$((i+1)); done",
        ]);
        rounds += 1;
    }
    let o = racer.wait_with_output().unwrap();
    let swaps: u64 = stdout(&o)
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(
        swaps > 1000,
        "the racer swapped {swaps} times: {}",
        stderr(&o)
    );
    assert!(rounds >= 2, "only {rounds} copy rounds");
    let left: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        left,
        vec!["victim".to_string()],
        "written outside the workspace"
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("victim")).unwrap(),
        "keep"
    );
}

/// Start, under state root `r`, a detached workload that writes 200 MB (40 lines of 5 MB)
/// then END, with a 1 MiB log limit: its id.
fn start_chatty(r: &str) -> String {
    let o = run(&[
        "--root", r, "run", "-d", "--log-max-size", "1m", "--", "sh", "-c",
        "i=0; while [ $i -lt 40 ]; do head -c 5000000 /dev/zero | tr '\\0' x; echo; i=$((i+1)); sleep 0.05; done; echo END; sleep 1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

/// A chatty detached workload (200 MB of output) cannot fill the state root: its log stays
/// near --log-max-size (moved aside to log.1 once, the current one started again), and
/// `nucleus logs` still shows the end of the output.
#[test]
fn a_chatty_detached_workload_keeps_its_log_bounded() {
    let _g = serial();
    let root = TempDir::new("state-chatty");
    let r = root.s();
    let id = start_chatty(&r);
    let _sweep = RmOnDrop(r.clone(), id.clone());
    let dir = root.path().join(&id);
    let size = |n: &str| std::fs::metadata(dir.join(n)).map_or(0, |m| m.len());
    let started = Instant::now();
    let mut most = 0;
    loop {
        most = most.max(size("log") + size("log.1"));
        let tail = run(&["--root", &r, "logs", "-n", "1", &id]);
        if stdout(&tail) == "END\n" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no END in the log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // 200 MB written; on disk at most the two files of about 1 MB each, plus what the
    // workload wrote between two checks.
    assert!(most < 40 << 20, "the log reached {most} bytes");
    assert!(size("log.1") > 0, "never moved aside");
    let all = run(&["--root", &r, "logs", &id]);
    assert!(stdout(&all).ends_with("END\n"));
    assert!(all.stdout.len() < 40 << 20);
    let _ = run(&["--root", &r, "rm", "-f", &id]);
    assert!(!dir.exists(), "rm left the sandbox's directory");
}

/// `nucleus logs` never loses the end of the log to a cut made while it prints. A log past
/// four times its size is cut even while a reader holds its lock (a stalled reader must not
/// unbound it, below), so `logs` takes both parts before it prints. Here `logs` is held while
/// it prints (its stdout a 4 KiB pipe nobody reads yet), the log is pushed past four times its
/// size and cut, and what `logs` printed must still end with the workload's last line (it
/// printed the cut, emptied log after the old part: CI saw the END line missing).
#[test]
fn a_cut_during_logs_loses_none_of_what_it_prints() {
    use std::io::{Read, Write};
    let _g = serial();
    let root = TempDir::new("state-cutread");
    let r = root.s();
    let o = run(&[
        "--root",
        &r,
        "run",
        "-d",
        "--log-max-size",
        "64k",
        "--",
        "sh",
        "-c",
        "sleep 0.5; head -c 100000 /dev/zero | tr '\\0' x; echo; echo END; sleep 1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let _sweep = RmOnDrop(r.clone(), id.clone());
    let dir = root.path().join(&id);
    let log = dir.join("log");
    // The monitor may not cut the log (between one and four times its size) while we hold
    // the readers' lock: END stays in the current part.
    let held = std::fs::File::open(&log).unwrap();
    // SAFETY: flock on a descriptor we own.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_SH) };
    assert_eq!(locked, 0);
    let started = Instant::now();
    while std::fs::metadata(&log).map_or(0, |m| m.len()) < 100_005 {
        assert!(started.elapsed() < Duration::from_secs(20), "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = nucleus(&["--root", &r, "logs", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = c.stdout.take().unwrap();
    // SAFETY: fcntl on the pipe's descriptor we hold.
    unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&out),
            libc::F_SETPIPE_SZ,
            4096,
        )
    };
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    // Past four times the size: cut now, whoever reads.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&vec![b'y'; 300_000]).unwrap();
    let cut = dir.join("log.1");
    while !cut.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "never cut");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut printed = Vec::new();
    out.read_to_end(&mut printed).unwrap();
    assert!(c.wait().unwrap().success());
    let tail = String::from_utf8_lossy(&printed[printed.len().saturating_sub(20)..]).into_owned();
    assert!(
        printed.ends_with(b"x\nEND\n"),
        "{} bytes, ending {tail:?}",
        printed.len()
    );
}

/// A reader of the log that stalls (`nucleus logs` piped to something that never reads holds
/// the log's shared lock) cannot let a chatty workload's log grow without bound: past four
/// times --log-max-size the monitor cuts it all the same.
#[test]
fn a_stalled_log_reader_does_not_unbound_the_log() {
    let _g = serial();
    let root = TempDir::new("state-stalled");
    let r = root.s();
    let id = start_chatty(&r);
    let _sweep = RmOnDrop(r.clone(), id.clone());
    let log = root.path().join(&id).join("log");
    // The stalled reader: the shared lock `nucleus logs` takes, never let go.
    let held = std::fs::File::open(&log).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&held);
    // SAFETY: flock on a descriptor we own.
    let locked = unsafe { libc::flock(fd, libc::LOCK_SH) };
    assert_eq!(locked, 0);
    let started = Instant::now();
    let mut most = 0;
    while started.elapsed() < Duration::from_secs(60) {
        most = most.max(std::fs::metadata(&log).map_or(0, |m| m.len()));
        // (`logs` takes the shared lock too: it reads beside the stalled reader.)
        if stdout(&run(&["--root", &r, "logs", "-n", "1", &id])) == "END\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "no END in the log"
    );
    // 200 MB written; the log is cut at four times its size, plus what one check lets in.
    assert!(
        most < 40 << 20,
        "the log reached {most} bytes with a reader stalled"
    );
    let _ = run(&["--root", &r, "rm", "-f", &id]);
}

/// Every writable tmpfs has a bounded size (the kernel default is half the host's RAM each),
/// no larger than --memory, and what the sandbox writes there counts against its own memory
/// cgroup (one exists without --memory too), so `stats` shows it.
#[test]
fn tmpfs_memory_is_bounded_and_counted_against_the_sandbox() {
    let _g = serial();
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--tmpfs",
            "/scratch",
            "--",
            "df",
            "-B1",
            "--output=size,target",
            "/tmp",
            "/root",
            "/scratch",
            "/dev/shm",
        ])
    });
    assert!(o.status.success(), "{}", stderr(&o));
    let sizes: Vec<u64> = stdout(&o)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        sizes,
        vec![1 << 30, 1 << 30, 1 << 30, 64 << 20],
        "{}",
        stdout(&o)
    );
    // Under --memory the tmpfs is no larger than the limit: a fill stops there.
    let o = leaves_nothing(|| {
        run(&["run", "--memory", "32m", "--", "sh", "-c", "df -B1 --output=size /tmp | tail -1; head -c 100000000 /dev/zero > /tmp/fill; echo rc=$?"])
    });
    let out = stdout(&o);
    assert!(
        out.trim_start().starts_with(&format!("{}\n", 32 << 20)),
        "{out}{}",
        stderr(&o)
    );
    assert!(!out.contains("rc=0"), "{out}");
    // Counted against the sandbox: 100 MB in /tmp show as its memory.
    let root = TempDir::new("state-tmpfs");
    let r = root.s();
    let id = stdout(&run(&[
        "--root",
        &r,
        "run",
        "-d",
        "--",
        "sh",
        "-c",
        "head -c 100000000 /dev/zero > /tmp/x && touch /tmp/done; sleep 1000",
    ]))
    .trim()
    .to_string();
    let started = Instant::now();
    while run(&["--root", &r, "exec", &id, "--", "test", "-e", "/tmp/done"])
        .status
        .code()
        != Some(0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the fill did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = run(&["--root", &r, "stats", "--json", &id]);
    let v: serde_json::Value = serde_json::from_str(stdout(&st).lines().next().unwrap()).unwrap();
    let _ = run(&["--root", &r, "rm", "-f", &id]);
    let mem = v["usage"]["memory_current"].as_u64();
    assert!(mem.is_some_and(|m| m >= 95_000_000), "{v}");
}

/// A `--network host` sandbox binds every abstract name the runtime once used to claim host id
/// ranges (`@nucleus/idrange/N`); new sandboxes still start, each with a range of its own.
#[test]
fn id_range_claims_cannot_be_squatted() {
    let _g = serial();
    let root = TempDir::new("state-squat");
    let r = root.s();
    let squatter = stdout(&run(&[
        "--root",
        &r,
        "run",
        "-d",
        "--network",
        "host",
        "--",
        "python3",
        "-c",
        "import socket, time\n\
         held = []\n\
         for i in range(8192):\n\
         \x20   s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         \x20   try:\n\
         \x20       s.bind('\\0nucleus/idrange/%d' % i); held.append(s)\n\
         \x20   except OSError:\n\
         \x20       pass\n\
         open('/tmp/held', 'w').write(str(len(held)))\n\
         time.sleep(1000)\n",
    ]))
    .trim()
    .to_string();
    let started = Instant::now();
    let held = loop {
        let o = run(&["--root", &r, "exec", &squatter, "--", "cat", "/tmp/held"]);
        if o.status.success() {
            break stdout(&o);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the squatter did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(held.parse::<u32>().unwrap() > 8000, "squatted {held}");
    let map = |id: &str| {
        let o = run(&["--root", &r, "exec", id, "--", "cat", "/proc/self/uid_map"]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).split_whitespace().nth(1).unwrap().to_string()
    };
    let a = stdout(&run(&["--root", &r, "run", "-d", "--", "sleep", "1000"]))
        .trim()
        .to_string();
    let b = stdout(&run(&["--root", &r, "run", "-d", "--", "sleep", "1000"]))
        .trim()
        .to_string();
    assert!(!a.is_empty() && !b.is_empty(), "a sandbox did not start");
    let (ms, ma, mb) = (map(&squatter), map(&a), map(&b));
    let _ = run(&["--root", &r, "rm", "-f", &squatter, &a, &b]);
    assert!(
        ms != ma && ma != mb && ms != mb,
        "shared ranges: {ms} {ma} {mb}"
    );
}

/// A sandbox with a workspace bound read-write replaces a directory in it with a symlink to a
/// root-only directory. A later run naming a path through that link (`-v`, `--workspace`,
/// `--context`, a copied workspace) is refused with one line naming the link: the runtime,
/// which is root, never opens the link's target for the sandbox.
#[test]
fn a_planted_symlink_is_not_followed_by_a_later_run() {
    let _g = serial();
    let ws = TempDir::new("planted-ws");
    let secret = TempDir::new("planted-secret");
    std::fs::write(secret.path().join("key"), "root only").unwrap();
    std::fs::set_permissions(secret.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(ws.path().join("cache")).unwrap();
    let o = run(&[
        "run",
        "--workspace",
        &ws.s(),
        "--",
        "sh",
        "-c",
        &format!("rm -r cache && ln -s {} cache", secret.s()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let via = format!("{}/cache", ws.s());
    let vol = format!("{via}:/cache");
    for args in [
        vec!["run", "-v", vol.as_str(), "--", "cat", "/cache/key"],
        vec!["run", "--workspace", via.as_str(), "--", "cat", "key"],
        vec![
            "run",
            "--workspace",
            via.as_str(),
            "--workspace-mode",
            "copy-in-out",
            "--",
            "cat",
            "key",
        ],
        vec![
            "run",
            "--context",
            via.as_str(),
            "--",
            "cat",
            "/context/key",
        ],
        vec![
            "run",
            "--context",
            via.as_str(),
            "--context-mode",
            "bind",
            "--",
            "cat",
            "/context/key",
        ],
    ] {
        let o = leaves_nothing(|| run(&args));
        assert_eq!(
            o.status.code(),
            Some(125),
            "{args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(!stdout(&o).contains("root only"), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("/cache is a symlink") && e.lines().count() == 1,
            "{args:?}: {e}"
        );
    }
    // The path it points to, given as such, is the caller's choice.
    let direct = format!("{}:/cache", secret.s());
    let o = run(&["run", "-v", &direct, "--", "cat", "/cache/key"]);
    assert_eq!(stdout(&o), "root only", "{}", stderr(&o));
}

/// `seccomp trace` of a workload making 100,000 distinct syscall numbers the architecture does
/// not define keeps one count for all of them, not an entry each (2 million made a 575 MB
/// runtime).
#[test]
fn a_trace_of_bogus_syscall_numbers_stays_small() {
    let _g = serial();
    let d = TempDir::new("trace-bogus");
    let trace = d.path().join("t.json");
    let o = run(&[
        "seccomp", "trace", "-o", trace.to_str().unwrap(), "--", "python3", "-c",
        "import ctypes\nlibc = ctypes.CDLL(None)\nfor i in range(100000): libc.syscall(1000000 + i)\nprint('done')",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "done\n");
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let calls = t["syscalls"].as_object().unwrap();
    assert!(calls.len() < 200, "{} entries", calls.len());
    let bogus = calls["(numbers this architecture does not define)"]
        .as_u64()
        .unwrap();
    assert!(bogus >= 100000, "{bogus}");
    assert!(calls.contains_key("execve"));
}

/// A flood of refused syscalls under --seccomp-log-denied: the runtime reports the first at once
/// and the rest as one count (a handful of lines, not one per refusal), and serves at most a
/// bounded rate of notifications (the workload waits, not the runtime's CPU).
#[test]
fn a_deny_flood_is_aggregated_and_throttled() {
    let _g = serial();
    let started = Instant::now();
    let o = leaves_nothing(|| {
        run(&[
            "run", "--seccomp-log-denied", "--", "python3", "-c",
            "import ctypes\nlibc = ctypes.CDLL(None)\nfor i in range(6000): libc.syscall(250, 0, 0, 0)\nprint('done')",
        ])
    });
    let took = started.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "done\n");
    let err = stderr(&o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("denied keyctl"))
        .collect();
    assert!(!lines.is_empty() && lines.len() <= 4, "{err}");
    assert!(err.contains("more times"), "{err}");
    // 6000 notifications at 2000 a second after a burst of 2000: at least about 2 s.
    assert!(
        took >= Duration::from_millis(1500),
        "served too fast: {took:?}"
    );
}

/// `nucleus exec` without -t from a terminal: the workload plants a background process that
/// keeps its stdin (as a planted ~/.bashrc did) and reads later. After exec returns, what is
/// typed at the caller's terminal never reaches it: the sandbox got a pipe, not the terminal,
/// and the planted process does not outlive the exec (its pid namespace ends with it).
#[test]
fn exec_never_lends_the_callers_terminal() {
    let _g = serial();
    let root = TempDir::new("state-tty-lend");
    let r = root.s();
    let id = stdout(&run(&["--root", &r, "run", "-d", "--", "sleep", "1000"]))
        .trim()
        .to_string();
    let driver = format!(
        r#"
import os, pty, time
pid, fd = pty.fork()
if pid == 0:
    os.execv({bin:?}, [{bin:?}, "--root", {r:?}, "exec", {id:?}, "--", "sh", "-c",
        "(sleep 1; cat > /tmp/stolen; echo eof >> /tmp/stolen) & echo started"])
out = b""
while True:
    done, _ = os.waitpid(pid, os.WNOHANG)
    try:
        out += os.read(fd, 1024)
    except OSError:
        pass
    if done:
        break
    time.sleep(0.01)
print("exec said:", out.decode(errors="replace").strip())
os.write(fd, b"hunter2\n")
time.sleep(2.5)
"#,
        bin = bin().display().to_string(),
    );
    let o = std::process::Command::new("python3")
        .args(["-c", &driver])
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("exec said: started"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let stolen = run(&["--root", &r, "exec", &id, "--", "cat", "/tmp/stolen"]);
    let _ = run(&["--root", &r, "rm", "-f", &id]);
    assert!(
        !stdout(&stolen).contains("hunter2"),
        "read from the caller's terminal"
    );
    // The planted reader did not outlive the exec (it ran in the exec's own pid namespace,
    // which ended with its command): it never wrote anything.
    assert!(
        stdout(&stolen).is_empty() && stderr(&stolen).contains("No such file"),
        "{}{}",
        stdout(&stolen),
        stderr(&stolen)
    );
}

/// A --tty workload that never reads its terminal while the caller's input keeps coming: the
/// runtime stops reading the caller (bounded buffer) instead of blocking in a write, and still
/// forwards SIGTERM at once.
#[test]
fn a_tty_workload_that_stops_reading_cannot_make_the_runtime_deaf() {
    let _g = serial();
    let mut c = nucleus(&["run", "-t", "--", "sleep", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let flood = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![b'y'; 65536];
        for _ in 0..200 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let sent = Instant::now();
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break Some(st);
        }
        if sent.elapsed() > Duration::from_secs(3) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(c.stdout.take());
    let _ = flood.join();
    let status = status.expect("the runtime did not act on SIGTERM within 3 s");
    assert_eq!(status.code(), Some(143), "{status:?}");
}
