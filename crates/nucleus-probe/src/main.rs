//! nucleus-probe: run INSIDE a sandbox by the end-to-end tests. Reads back isolation state and
//! attempts each escape class, printing one JSON object: {"check": value, ...}. Errno results are
//! reported as "ok" (the call succeeded) or the errno name, so tests assert exact outcomes.
#![allow(clippy::undocumented_unsafe_blocks)] // test tool: every call below is a plain syscall attempt

use serde_json::{json, Map, Value};
use std::ffi::CString;
use std::fs;

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EBADF => "EBADF",
        libc::ESRCH => "ESRCH",
        libc::ENOTTY => "ENOTTY",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EFAULT => "EFAULT",
        libc::EXDEV => "EXDEV",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        _ => return format!("errno {e}"),
    }
    .to_string()
}

fn res(r: i64) -> Value {
    if r < 0 {
        Value::String(errno_name(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Value::String("ok".into())
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn status_field(name: &str) -> Value {
    proc_status_field("self", name)
}

fn proc_status_field(pid: &str, name: &str) -> Value {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| Value::String(v.trim().to_string()))
        })
        .unwrap_or(Value::Null)
}

fn mount_opts(target: &str) -> Value {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The last matching line is the visible (top) mount.
    mi.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(target))
        .map(|l| Value::String(l.split(' ').nth(5).unwrap_or("").to_string()))
        .unwrap_or(Value::Null)
}

fn write_file(p: &str) -> Value {
    match fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(p)
    {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
    }
}

/// Try to fork `n` children that wait; report how many forks succeeded and failed (EAGAIN
/// from the pids limit), then kill and reap them.
fn forks(n: usize) -> Value {
    let mut kids = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        match unsafe { libc::fork() } {
            0 => unsafe {
                libc::pause();
                libc::_exit(0)
            },
            -1 => failed += 1,
            pid => kids.push(pid),
        }
    }
    for &k in &kids {
        unsafe {
            libc::kill(k, libc::SIGKILL);
            libc::waitpid(k, std::ptr::null_mut(), 0);
        }
    }
    json!({"ok": kids.len(), "failed": failed})
}

fn cpu_time_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Busy-loop for `ms` of wall time; report the CPU time it got.
fn spin(ms: u64) -> Value {
    let start = std::time::Instant::now();
    let c0 = cpu_time_ms();
    let mut x = 0u64;
    while start.elapsed() < std::time::Duration::from_millis(ms) {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
    }
    json!({"wall_ms": start.elapsed().as_millis() as u64, "cpu_ms": cpu_time_ms() - c0})
}

/// `PATH:KIB`: write KIB KiB with O_DIRECT|O_SYNC in 64 KiB blocks; report the time taken.
fn direct_write(spec: &str) -> Value {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (path, kib) = spec.rsplit_once(':').unwrap_or((spec, "1024"));
    let kib: usize = kib.parse().unwrap_or(1024);
    // O_DIRECT needs an aligned buffer: carve a 4 KiB-aligned 64 KiB slice out of a larger one.
    let mut backing = vec![0u8; (64 << 10) + 4096];
    let off = backing.as_ptr().align_offset(4096);
    let buf = &mut backing[off..off + (64 << 10)];
    let start = std::time::Instant::now();
    let r = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT | libc::O_SYNC)
        .open(path)
        .and_then(|mut f| {
            for _ in 0..kib / 64 {
                f.write_all(&buf[..])?;
            }
            Ok(())
        });
    match r {
        Ok(()) => json!({"ms": start.elapsed().as_millis() as u64}),
        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
    }
}

/// `tcp_echo=PORT` (alone): a TCP echo server and one client connected to it on
/// 127.0.0.1:PORT, for ever. Every 100 ms the client sends `N` on its one connection and
/// prints what came back (`echo N`); `broken: ...` and exit 1 when the connection fails (the
/// checkpoint tests: `--tcp-established` keeps it across a save and restore).
fn tcp_echo(port: u16) -> ! {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    let fail = |what: &str, e: std::io::Error| -> ! {
        println!("broken: {what}: {e}");
        std::process::exit(1)
    };
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| fail("bind", e));
    std::thread::spawn(move || echo_each(l));
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| fail("connect", e));
    let mut r = BufReader::new(c.try_clone().unwrap_or_else(|e| fail("clone", e)));
    let mut w = c;
    for n in 1u64.. {
        let mut line = String::new();
        match writeln!(w, "{n}").and_then(|()| r.read_line(&mut line)) {
            Ok(k) if k > 0 => println!("echo {}", line.trim()),
            Ok(_) => {
                println!("broken: closed");
                std::process::exit(1)
            }
            Err(e) => {
                println!("broken: {e}");
                std::process::exit(1)
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    unreachable!()
}

/// `tcp_serve=PORT` (alone): a TCP echo server on every address at PORT, for ever: each line a
/// client sends comes back (the bridged checkpoint test's connection from the host).
fn tcp_serve(port: u16) -> ! {
    let l = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| {
        println!("broken: bind: {e}");
        std::process::exit(1)
    });
    println!("serving {port}");
    echo_each(l);
    unreachable!()
}

/// Every connection `l` accepts, on a thread of its own: each line it sends comes back.
fn echo_each(l: std::net::TcpListener) {
    use std::io::{BufRead, BufReader, Write};
    for s in l.incoming().flatten() {
        std::thread::spawn(move || {
            let Ok(mut w) = s.try_clone() else { return };
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if writeln!(w, "{line}").is_err() {
                    break;
                }
            }
        });
    }
}

/// `hold_mib=N` (alone): touch N MiB and stay until killed, probing nothing (the checkpoint
/// benchmark's workload, also run outside any sandbox: the probe proper tries escapes, which
/// succeed there).
fn hold_mib(n: usize) -> ! {
    let v: Vec<Vec<u8>> = (0..n).map(|_| vec![1u8; 1 << 20]).collect();
    println!("holding {} MiB", v.len());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() {
    if let Some(n) = std::env::args()
        .nth(1)
        .and_then(|a| a.strip_prefix("hold_mib=").map(str::to_owned))
    {
        hold_mib(n.parse().unwrap_or(0));
    }
    if let Some(p) = std::env::args()
        .nth(1)
        .and_then(|a| a.strip_prefix("tcp_echo=").map(str::to_owned))
    {
        tcp_echo(p.parse().unwrap_or(7000));
    }
    if let Some(p) = std::env::args()
        .nth(1)
        .and_then(|a| a.strip_prefix("tcp_serve=").map(str::to_owned))
    {
        tcp_serve(p.parse().unwrap_or(7100));
    }
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    // Identity and privileges.
    put("uid", json!(unsafe { libc::getuid() }));
    put("gid", json!(unsafe { libc::getgid() }));
    put(
        "uid_map",
        json!(fs::read_to_string("/proc/self/uid_map")
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()),
    );
    for f in [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ] {
        put(f, status_field(f));
    }
    put("init_Seccomp", proc_status_field("1", "Seccomp"));
    put(
        "init_Seccomp_filters",
        proc_status_field("1", "Seccomp_filters"),
    );
    put("pid", json!(std::process::id()));
    let pids: Vec<u32> = fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    put("visible_pids", json!(pids.len()));
    put(
        "hostname",
        json!(fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()),
    );
    let ifaces: Vec<String> = fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    put("net_ifaces", json!(ifaces));
    put(
        "lo_flags",
        json!(fs::read_to_string("/sys/class/net/lo/flags")
            .unwrap_or_default()
            .trim()),
    );
    for t in [
        "/", "/proc", "/sys", "/tmp", "/usr", "/dev", "/dev/shm", "/etc", "/root",
    ] {
        put(&format!("mount:{t}"), mount_opts(t));
    }
    put(
        "tmp_mode",
        json!(fs::metadata("/tmp")
            .map(|md| format!(
                "{:o}",
                std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777
            ))
            .unwrap_or_default()),
    );
    put(
        "proc1_exe",
        match fs::read_link("/proc/1/exe") {
            Ok(_) => "ok".into(),
            Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
        },
    );
    put(
        "proc1_comm",
        json!(fs::read_to_string("/proc/1/comm")
            .unwrap_or_default()
            .trim()),
    );

    // Escape attempts. Each must fail.
    unsafe {
        put(
            "mount",
            res(libc::mount(
                c("none").as_ptr(),
                c("/tmp").as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                std::ptr::null(),
            ) as i64),
        );
        put(
            "umount",
            res(libc::umount2(c("/proc").as_ptr(), libc::MNT_DETACH) as i64),
        );
        put(
            "unshare_user",
            res(libc::unshare(libc::CLONE_NEWUSER) as i64),
        );
        put(
            "unshare_mount",
            res(libc::unshare(libc::CLONE_NEWNS) as i64),
        );
        put("unshare_net", res(libc::unshare(libc::CLONE_NEWNET) as i64));
        put(
            "clone_newuser",
            res(libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
                0,
                0,
                0,
                0,
            )),
        );
        put(
            "clone3",
            res(libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0)),
        );
        let fd = libc::open(c("/proc/self/ns/mnt").as_ptr(), libc::O_RDONLY);
        put("setns", res(libc::setns(fd, 0) as i64));
        put(
            "ptrace_attach_init",
            res(libc::ptrace(libc::PTRACE_ATTACH, 1, 0, 0)),
        );
        // Its own child: same Landlock domain, same uid, dumpable; only the filter stands.
        let child = libc::fork();
        if child == 0 {
            libc::pause();
            libc::_exit(0);
        }
        put(
            "ptrace_attach_child",
            res(libc::ptrace(libc::PTRACE_ATTACH, child, 0, 0)),
        );
        put(
            "ptrace_seize_child",
            res(libc::ptrace(libc::PTRACE_SEIZE, child, 0, 0)),
        );
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
        put(
            "ptrace_traceme",
            res(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0)),
        );
        put(
            "process_vm_readv",
            res(libc::syscall(libc::SYS_process_vm_readv, 1, 0, 0, 0, 0, 0)),
        );
        put(
            "keyctl",
            res(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0)),
        );
        put(
            "add_key",
            res(libc::syscall(
                libc::SYS_add_key,
                c("user").as_ptr(),
                c("k").as_ptr(),
                c("v").as_ptr(),
                1,
                -2i32,
            )),
        );
        put("bpf", res(libc::syscall(libc::SYS_bpf, 0, 0, 0)));
        put(
            "perf_event_open",
            res(libc::syscall(libc::SYS_perf_event_open, 0, 0, -1, -1, 0)),
        );
        put(
            "kexec_load",
            res(libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0)),
        );
        put(
            "init_module",
            res(libc::syscall(libc::SYS_init_module, 0, 0, 0)),
        );
        put(
            "finit_module",
            res(libc::syscall(libc::SYS_finit_module, -1, 0, 0)),
        );
        put("userfaultfd", res(libc::syscall(libc::SYS_userfaultfd, 0)));
        put(
            "io_uring_setup",
            res(libc::syscall(libc::SYS_io_uring_setup, 1, 0)),
        );
        put(
            "open_by_handle_at",
            res(libc::syscall(libc::SYS_open_by_handle_at, -1, 0, 0)),
        );
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        put(
            "clock_settime",
            res(libc::clock_settime(libc::CLOCK_REALTIME, &ts) as i64),
        );
        put(
            "settimeofday",
            res(libc::syscall(libc::SYS_settimeofday, 0, 0)),
        );
        put(
            "fsopen",
            res(libc::syscall(libc::SYS_fsopen, c("tmpfs").as_ptr(), 0)),
        );
        put(
            "open_tree",
            res(libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                c("/").as_ptr(),
                1,
            )),
        );
        put(
            "move_mount",
            res(libc::syscall(
                libc::SYS_move_mount,
                -1,
                c("").as_ptr(),
                libc::AT_FDCWD,
                c("/tmp").as_ptr(),
                4,
            )),
        );
        put(
            "pivot_root",
            res(libc::syscall(
                libc::SYS_pivot_root,
                c("/tmp").as_ptr(),
                c("/tmp").as_ptr(),
            )),
        );
        put("chroot", res(libc::chroot(c("/tmp").as_ptr()) as i64));
        put(
            "swapon",
            res(libc::syscall(libc::SYS_swapon, c("/tmp/x").as_ptr(), 0)),
        );
        put("reboot", res(libc::syscall(libc::SYS_reboot, 0, 0, 0, 0)));
        put(
            "sethostname",
            res(libc::sethostname(c("x").as_ptr(), 1) as i64),
        );
        put(
            "socket_packet",
            res(libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) as i64),
        );
        put(
            "socket_inet",
            res(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as i64),
        );
        put(
            "socket_inet6",
            res(libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0) as i64),
        );
        put(
            "socket_unix",
            res(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) as i64),
        );
        put(
            "socket_vsock",
            res(libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) as i64),
        );
        put(
            "socket_alg",
            res(libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) as i64),
        );
        put(
            "socket_tipc",
            res(libc::socket(libc::AF_TIPC, libc::SOCK_RDM, 0) as i64),
        );
        put(
            "socket_netlink_route",
            res(libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE) as i64),
        );
        put(
            "socket_netlink_audit",
            res(libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT) as i64),
        );
        put("kill_init", res(libc::kill(1, libc::SIGKILL) as i64));
        // Without Landlock signal scoping (ABI < 6) the kill "succeeds" but the kernel drops
        // it (a pid namespace's init gets no signals it has no handler for from inside).
        std::thread::sleep(std::time::Duration::from_millis(20));
        put("init_alive", json!(fs::metadata("/proc/1/stat").is_ok()));
        put(
            "landlock_abi",
            json!(libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                1u32
            )
            .max(0)),
        );
        // TIOCSTI on a fresh pty master/slave pair.
        let ptm = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        put("open_ptmx", res(ptm as i64));
        if ptm >= 0 {
            libc::grantpt(ptm);
            libc::unlockpt(ptm);
            let ch: libc::c_char = b'x' as libc::c_char;
            put("tiocsti", res(libc::ioctl(ptm, libc::TIOCSTI, &ch) as i64));
            let n_null: libc::c_int = 27;
            put(
                "tiocsetd",
                res(libc::ioctl(ptm, libc::TIOCSETD, &n_null) as i64),
            );
            put("tioccons", res(libc::ioctl(ptm, libc::TIOCCONS, 0) as i64));
            put("tiocvhangup", res(libc::ioctl(ptm, 0x5437, 0) as i64));
            put("kdsetmode", res(libc::ioctl(ptm, 0x4B3A, 0) as i64));
            put("vt_activate", res(libc::ioctl(ptm, 0x5606, 1) as i64));
            let mut ws: libc::winsize = std::mem::zeroed();
            put(
                "tiocgwinsz",
                res(libc::ioctl(ptm, libc::TIOCGWINSZ, &mut ws) as i64),
            );
        }
        put(
            "chmod_setuid",
            res(libc::chmod(c("/tmp").as_ptr(), 0o4777) as i64),
        );
    }

    // Files: read-only trees, masked paths, devices.
    put("write_usr", write_file("/usr/nucleus-probe-test"));
    put("write_root", write_file("/nucleus-probe-test"));
    put("write_etc_passwd", write_file("/etc/passwd"));
    put("write_proc_sys", write_file("/proc/sys/kernel/hostname"));
    put("write_sys", write_file("/sys/kernel/uevent_helper"));
    put("write_tmp", write_file("/tmp/probe-ok"));
    put(
        "kcore_bytes",
        json!(fs::read("/proc/kcore")
            .map(|b| b.len() as i64)
            .unwrap_or(-1)),
    );
    put(
        "keys_bytes",
        json!(fs::read("/proc/keys").map(|b| b.len() as i64).unwrap_or(-1)),
    );
    // Every path the runtime should mask: "absent" here, "masked" (an empty file or directory,
    // or refused), or what it shows.
    let mut masked = Map::new();
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/kallsyms",
        "/proc/sysrq-trigger",
        "/proc/kmsg",
        "/proc/config.gz",
        "/proc/pagetypeinfo",
        "/proc/acpi",
        "/proc/scsi",
        "/proc/asound",
        "/proc/firmware",
        "/proc/driver",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
        "/sys/kernel/security",
        "/sys/kernel/debug",
    ] {
        // Masked: a file is /dev/null bound over it (a character device 1:3); a directory
        // has an empty one mounted over it (another device than its file system's).
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let fs_dev = fs::metadata(if p.starts_with("/proc") {
            "/proc"
        } else {
            "/sys"
        })
        .map(|m| m.dev())
        .unwrap_or(0);
        let v = match fs::symlink_metadata(p) {
            Err(_) => "absent".to_string(),
            Ok(m) if m.is_dir() => {
                let entries = fs::read_dir(p).map(|rd| rd.count()).unwrap_or(0);
                if m.dev() != fs_dev && entries == 0 {
                    "masked".to_string()
                } else {
                    format!("visible ({entries} entries)")
                }
            }
            Ok(m) if m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3) => {
                "masked".to_string()
            }
            Ok(m) => format!("visible (mode {:o})", m.mode()),
        };
        masked.insert(p.to_string(), json!(v));
    }
    put("masked_paths", Value::Object(masked));
    put("write_sysrq_trigger", write_file("/proc/sysrq-trigger"));
    put("write_dev_null", write_file("/dev/null"));
    put(
        "write_dev_full",
        match fs::write("/dev/full", b"x") {
            Ok(()) => "ok".into(),
            Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
        },
    );
    put(
        "read_dev_urandom",
        json!(fs::File::open("/dev/urandom")
            .and_then(|mut f| {
                let mut b = [0u8; 8];
                std::io::Read::read_exact(&mut f, &mut b)
            })
            .is_ok()),
    );
    put(
        "read_dev_zero",
        json!(fs::File::open("/dev/zero")
            .and_then(|mut f| {
                let mut b = [1u8; 8];
                std::io::Read::read_exact(&mut f, &mut b).map(|_| b == [0; 8])
            })
            .unwrap_or(false)),
    );
    put("write_dev_shm", write_file("/dev/shm/probe"));
    put(
        "passwd",
        json!(fs::read_to_string("/etc/passwd").unwrap_or_default()),
    );
    put(
        "resolv_conf_exists",
        json!(fs::metadata("/etc/resolv.conf").is_ok()),
    );
    put(
        "ca_certs",
        json!(fs::read_dir("/etc/ssl/certs")
            .map(|d| d.count())
            .unwrap_or(0)),
    );
    put(
        "cwd",
        json!(std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()),
    );
    put("env_home", json!(std::env::var("HOME").unwrap_or_default()));
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    put("monotonic_secs", json!(ts.tv_sec));
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    put("nofile", json!([rl.rlim_cur, rl.rlim_max]));
    // Extra paths given as arguments: report whether each is writable / executable / readable.
    for a in std::env::args().skip(1) {
        if let Some(p) = a.strip_prefix("write=") {
            put(&a, write_file(p));
        } else if let Some(p) = a.strip_prefix("exec=") {
            let st = std::process::Command::new(p).status();
            put(
                &a,
                match st {
                    Ok(s) => json!(s.code()),
                    Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
                },
            );
        } else if let Some(p) = a.strip_prefix("read=") {
            put(
                &a,
                match fs::read_to_string(p) {
                    Ok(s) => s.into(),
                    Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
                },
            );
        } else if let Some(n) = a.strip_prefix("alloc_mib=") {
            // Allocate and touch N MiB (an OOM kill ends the probe here).
            let n: usize = n.parse().unwrap_or(0);
            let mut v: Vec<Vec<u8>> = Vec::new();
            for _ in 0..n {
                v.push(vec![1u8; 1 << 20]);
            }
            put(&a, json!(v.iter().map(|x| x.len()).sum::<usize>() >> 20));
        } else if let Some(arg) = a.strip_prefix("child=") {
            // The probe again as a child with one argument: its exit code, or the signal that
            // ended it.
            use std::os::unix::process::ExitStatusExt;
            let st = std::process::Command::new("/proc/self/exe")
                .arg(arg)
                .stdout(std::process::Stdio::null())
                .status();
            put(
                &a,
                match st {
                    Ok(s) => match s.signal() {
                        Some(sig) => json!(format!("signal {sig}")),
                        None => json!(s.code()),
                    },
                    Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
                },
            );
        } else if let Some(n) = a.strip_prefix("forks=") {
            put(&a, forks(n.parse().unwrap_or(0)));
        } else if let Some(ms) = a.strip_prefix("spin_ms=") {
            put(&a, spin(ms.parse().unwrap_or(0)));
        } else if let Some(spec) = a.strip_prefix("direct_write=") {
            put(&a, direct_write(spec));
        } else if let Some(p) = a.strip_prefix("stat=") {
            put(
                &a,
                match fs::metadata(p) {
                    Ok(md) => json!([
                        std::os::unix::fs::MetadataExt::uid(&md),
                        std::os::unix::fs::MetadataExt::gid(&md),
                        format!("{:o}", std::os::unix::fs::MetadataExt::mode(&md) & 0o7777)
                    ]),
                    Err(e) => errno_name(e.raw_os_error().unwrap_or(0)).into(),
                },
            );
        }
    }
    println!("{}", Value::Object(m));
    // `exit=N`: end with status N (after the report).
    if let Some(n) = std::env::args().find_map(|a| a.strip_prefix("exit=").map(str::to_owned)) {
        std::process::exit(n.parse().unwrap_or(1));
    }
}
