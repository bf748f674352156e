//! Thin wrappers over syscalls that neither std nor a crate offers in the form needed here
//! (clone3, the new mount API, mount_setattr, pivot_root…). Each returns `io::Result`.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode};
use rustix::mount::{
    self as rmount, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags,
    MoveMountFlags, OpenTreeFlags, UnmountFlags,
};
use rustix::process as rproc;

use nucleus_spec::seccomp::SockFilter;

pub fn cstr(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn check_long(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: callers pass a file descriptor the kernel just returned to us, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A new filesystem of type `fstype` (also its source name) at `dst`.
pub fn mount_fs(
    fstype: &str,
    dst: &Path,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let data = data.map(cstr).transpose()?;
    let flags = MountFlags::from_bits_retain(flags as libc::c_uint);
    Ok(rmount::mount(fstype, dst, fstype, flags, data.as_deref())?)
}

/// Bind `src` at `dst` (with the mounts under it when `recursive`).
pub fn bind(src: &Path, dst: &Path, recursive: bool) -> io::Result<()> {
    let r = if recursive {
        rmount::mount_bind_recursive(src, dst)
    } else {
        rmount::mount_bind(src, dst)
    };
    Ok(r?)
}

/// Mount events stop propagating to and from `dst` and the mounts under it.
pub fn make_private(dst: &Path) -> io::Result<()> {
    let f = MountPropagationFlags::PRIVATE | MountPropagationFlags::REC;
    Ok(rmount::mount_change(dst, f)?)
}

pub fn umount_detach(p: &Path) -> io::Result<()> {
    Ok(rmount::unmount(p, UnmountFlags::DETACH)?)
}

/// Create an empty regular file (a mount point for a file bind): one mknod instead of an open
/// and a close. EEXIST when something is there already.
pub fn make_file(p: &Path, mode: u32) -> io::Result<()> {
    let mode = Mode::from_raw_mode(mode as libc::mode_t);
    Ok(rfs::mknodat(rfs::CWD, p, FileType::RegularFile, mode, 0)?)
}

/// flock(2) on an open descriptor, shared or exclusive, waiting or not (EWOULDBLOCK); the
/// lock goes with the open file (released when its last descriptor closes).
pub fn flock(fd: BorrowedFd<'_>, exclusive: bool, wait: bool) -> io::Result<()> {
    use rfs::FlockOperation as Op;
    let op = match (exclusive, wait) {
        (true, true) => Op::LockExclusive,
        (true, false) => Op::NonBlockingLockExclusive,
        (false, true) => Op::LockShared,
        (false, false) => Op::NonBlockingLockShared,
    };
    Ok(rfs::flock(fd, op)?)
}

/// Swap two existing names atomically (renameat2 RENAME_EXCHANGE, Linux 3.15; EINVAL on a
/// filesystem without it).
pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    Ok(rfs::renameat_with(
        rfs::CWD,
        a,
        rfs::CWD,
        b,
        rfs::RenameFlags::EXCHANGE,
    )?)
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    Ok(rustix::process::pivot_root(new_root, put_old)?)
}

/// Change mount attributes of `path` (relative to `dirfd`, or the fd itself with an empty path).
pub fn mount_setattr(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    recursive: bool,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let c = cstr(path)?;
    let mut flags: libc::c_uint = if recursive { AT_RECURSIVE } else { 0 };
    if dirfd.is_some() && path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |f| f.as_raw_fd() as u64),
    };
    let dfd = dirfd.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    // SAFETY: `attr` is a properly laid out struct mount_attr that lives across the call; its
    // size is passed; the path is a valid C string.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dfd,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// A detached copy of the mount at `path` (`open_tree(OPEN_TREE_CLONE)`).
pub fn open_tree_clone(
    dirfd: Option<BorrowedFd<'_>>,
    path: &Path,
    recursive: bool,
) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    if dirfd.is_some() && path.as_os_str().is_empty() {
        flags |= OpenTreeFlags::AT_EMPTY_PATH;
    }
    Ok(rmount::open_tree(dirfd.unwrap_or(rfs::CWD), path, flags)?)
}

/// Attach a detached mount at `dst`.
pub fn move_mount_to(from: BorrowedFd<'_>, dst: &Path) -> io::Result<()> {
    Ok(rmount::move_mount(
        from,
        "",
        rfs::CWD,
        dst,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?)
}

/// A new detached tmpfs (fsopen/fsconfig/fsmount), not visible at any path.
pub fn detached_tmpfs(options: &[(&str, &str)]) -> io::Result<OwnedFd> {
    let fs = rmount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (k, v) in options {
        rmount::fsconfig_set_string(&fs, *k, *v)?;
    }
    rmount::fsconfig_create(&fs)?;
    Ok(rmount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )?)
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What `fork_into` returns on each side.
pub enum Forked {
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    Child,
}

/// clone3 with fork semantics (no new stack) into new namespaces, returning a pidfd.
///
/// # Safety
/// The process must be single-threaded, as after fork(): the child continues on a copy of the
/// caller's stack and may only use state that is valid in a forked copy.
pub unsafe fn fork_into(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    /// Start the child in the cgroup given by `clone_args.cgroup` (Linux 5.7).
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: ns_flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size passed; with stack = 0 the child
    // resumes here on a copy-on-write copy of our stack, like fork(); the caller guarantees
    // the process is single-threaded.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match r {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
            pidfd: owned(libc::c_long::from(pidfd)),
        }),
    }
}

/// Plain fork().
///
/// # Safety
/// As for [`fork_into`]: single-threaded caller.
pub unsafe fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the caller guarantees a single-threaded process.
    match unsafe { libc::fork() } {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// A child that only waits to be killed, and dies with its parent: a process systemd can
/// move into a new scope before the container's own exists (a scope cannot start empty).
pub fn fork_placeholder() -> io::Result<libc::pid_t> {
    // SAFETY: getpid takes nothing.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child makes only async-signal-safe system calls and never returns, so it
    // is sound whatever threads the parent has.
    match unsafe { libc::fork() } {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: plain system calls with constant arguments.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // (The parent gone before the death signal was armed.)
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
        }
        pid => Ok(pid),
    }
}

/// Start `child` in a process that shares our memory (`CLONE_VM`, as posix_spawn does, but
/// without `CLONE_VFORK`) on a stack of its own, then run `meanwhile` here. Unlike fork,
/// nothing is copied: no page tables, and no copy-on-write faults in either process for the
/// pages the child writes before its exec (tens of faults). Returns the child's pid.
///
/// # Safety
/// The process must be single-threaded. `child` must end in exec or `_exit` (never return or
/// unwind); it runs in our address space, with our thread-local storage, so it may allocate
/// (what it leaves allocated stays with us) but must not take locks we hold. `meanwhile` must
/// take turns with it (never both using the heap or thread-local state at once) and return
/// only once the child has exec'd or exited.
pub unsafe fn spawn_shared<F: FnOnce() -> std::convert::Infallible, G: FnOnce()>(
    child: F,
    meanwhile: G,
) -> io::Result<libc::pid_t> {
    const STACK: usize = 1 << 20;
    extern "C" fn trampoline<F: FnOnce() -> std::convert::Infallible>(
        arg: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: arg is the Option<F> below, alive (our parent is suspended) and taken once.
        let f = unsafe { &mut *(arg as *mut Option<F>) };
        match f.take() {
            // `f` ends in exec or _exit: its result is uninhabited.
            #[allow(unreachable_code)]
            Some(f) => match f() {},
            None => exit_now(127),
        }
    }
    // SAFETY: an anonymous private mapping; only the pages the child touches are populated.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // A guard page at the low end: an overflow faults instead of writing into our memory.
    // SAFETY: the first page of the mapping we own.
    unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) };
    let mut slot = Some(child);
    // SAFETY: the stack top is the end of the mapping (16-byte aligned); `meanwhile` returns
    // only once the child no longer uses `slot` and the mapping.
    let pid = unsafe {
        libc::clone(
            trampoline::<F>,
            stack.cast::<u8>().add(STACK).cast(),
            libc::CLONE_VM | libc::SIGCHLD,
            (&mut slot as *mut Option<F>).cast(),
        )
    };
    let err = io::Error::last_os_error();
    if pid > 0 {
        meanwhile();
    }
    // SAFETY: the child has exec'd or exited: the mapping is ours alone again.
    unsafe { libc::munmap(stack, STACK) };
    if pid < 0 {
        return Err(err);
    }
    Ok(pid)
}

/// Open `path` relative to the directory `dir`, read-only.
pub fn open_at(dir: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    let flags = rfs::OFlags::RDONLY | rfs::OFlags::CLOEXEC;
    Ok(rfs::openat(dir, path, flags, Mode::empty())?)
}

/// Whether this process's /proc files and core dumps are its own (true) or root's.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    let b = if dumpable {
        rproc::DumpableBehavior::Dumpable
    } else {
        rproc::DumpableBehavior::NotDumpable
    };
    Ok(rproc::set_dumpable_behavior(b)?)
}

/// SIGKILL when the parent thread exits (cleared by the kernel on credential changes).
pub fn die_with_parent() -> io::Result<()> {
    Ok(rproc::set_parent_process_death_signal(Some(
        rustix::process::Signal::KILL,
    ))?)
}

pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    // SAFETY: close_range only changes fd flags; CLOSE_RANGE_CLOEXEC closes nothing now.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: closes fds in a range the caller no longer uses (checked by the caller).
    check_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(drop)
}

/// Block `sigs` and return the previous mask.
pub fn block_signals(sigs: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        check(libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old))?;
        Ok(old)
    }
}

pub fn signalfd(sigs: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: the set is initialised by sigemptyset; signalfd returns a new fd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        let fd = check(libc::signalfd(-1, &set, libc::SFD_CLOEXEC))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Read one signal number from a signalfd.
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    loop {
        // SAFETY: signalfd_siginfo is plain data; we read exactly its size into it.
        let r = unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let n = libc::read(
                fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            );
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(info.ssi_signo as libc::c_int)
            }
        };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => return r,
        }
    }
}

/// Unblock every signal and restore default dispositions (for the workload before exec).
pub fn reset_signals() {
    // SAFETY: plain signal-mask and disposition calls on valid arguments.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for s in 1..32 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
    }
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory arguments.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: valid pidfd; NULL siginfo means "like kill()".
    check_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })
    .map(drop)
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

impl WaitStatus {
    pub fn from_raw(status: libc::c_int) -> Self {
        if libc::WIFSIGNALED(status) {
            WaitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            WaitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }
    /// The shell convention: the exit code, or 128+N when killed by signal N.
    pub fn code(self) -> i32 {
        match self {
            WaitStatus::Exited(c) => c,
            WaitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Wait for the child `pid` (-1: any child); None when `nohang` and none has ended.
pub fn waitpid(pid: libc::pid_t, nohang: bool) -> io::Result<Option<(libc::pid_t, WaitStatus)>> {
    let opts = if nohang {
        rproc::WaitOptions::NOHANG
    } else {
        rproc::WaitOptions::empty()
    };
    // (rustix's waitpid(None) is waitpid(0): the caller's process group only.)
    let r = match pid {
        -1 => rproc::wait(opts)?,
        p if p > 0 => rproc::waitpid(rproc::Pid::from_raw(p), opts)?,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    Ok(r.map(|(p, st)| (p.as_raw_nonzero().get(), WaitStatus::from_raw(st.as_raw()))))
}

/// The filesystem type magic of the filesystem holding `p` (statfs f_type).
pub fn fs_magic(p: &Path) -> io::Result<i64> {
    Ok(rfs::statfs(p)?.f_type as i64)
}

/// CPU time (µs) of the reaped children and their reaped descendants.
pub fn children_cpu_usec() -> u64 {
    let Some(ru) = rusage(true) else { return 0 };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// poll(2) on fds for readability; returns the revents per fd.
pub fn poll_read(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let with: Vec<(RawFd, i16)> = fds.iter().map(|&fd| (fd, libc::POLLIN)).collect();
    poll(&with, timeout_ms)
}

/// poll(2) for these descriptors and events (a negative descriptor is skipped); the revents
/// in the same order. EINTR is retried.
pub fn poll(fds: &[(RawFd, i16)], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: p is a valid array of pollfd of the given length.
        let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(p.iter().map(|x| x.revents).collect());
    }
}

pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and skips atexit handlers, which is what a forked child wants.
    unsafe { libc::_exit(code) }
}

/// A pidfd for `pid` (which may be reused: check the process's identity after opening).
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    let pid = (pid > 0)
        .then(|| rproc::Pid::from_raw(pid))
        .flatten()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rproc::pidfd_open(pid, rproc::PidfdFlags::empty())?)
}

/// Join namespaces: of the process behind a pidfd (`flags` selects which, all at once), or the
/// one an nsfd names (`flags` 0).
pub fn setns(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    let types = rustix::thread::ThreadNameSpaceType::from_bits_retain(flags as _);
    Ok(rustix::thread::move_into_thread_name_spaces(fd, types)?)
}

/// A unix socket address for `path` (ENAMETOOLONG unless it fits with its NUL).
fn unix_addr(path: &Path) -> io::Result<rustix::net::SocketAddrUnix> {
    const SUN_PATH: usize = 108;
    if path.as_os_str().len() >= SUN_PATH {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(rustix::net::SocketAddrUnix::new(path)?)
}

fn stream_socket() -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A listening unix stream socket at `path` (replacing a stale socket file).
pub fn unix_listen(path: &Path) -> io::Result<OwnedFd> {
    let s = stream_socket()?;
    let addr = unix_addr(path)?;
    let _ = std::fs::remove_file(path);
    rustix::net::bind(&s, &addr)?;
    rustix::net::listen(&s, 16)?;
    Ok(s)
}

pub fn unix_connect(path: &Path) -> io::Result<OwnedFd> {
    let s = stream_socket()?;
    let addr = unix_addr(path)?;
    rustix::net::connect(&s, &addr)?;
    Ok(s)
}

/// Accept one connection; replies and requests time out after `timeout_ms`.
pub fn unix_accept(listener: BorrowedFd<'_>, timeout_ms: u64) -> io::Result<OwnedFd> {
    let s = rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC)?;
    set_timeout(s.as_fd(), timeout_ms)?;
    Ok(s)
}

pub fn set_timeout(fd: BorrowedFd<'_>, ms: u64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: (ms / 1000) as _,
        tv_usec: ((ms % 1000) * 1000) as _,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: tv is a valid timeval of the given size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// Read into `buf`'s spare capacity (replacing its contents): a large receive buffer costs no
/// page faults for the pages the kernel does not write (a zeroed one touches every page).
pub fn read_into(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.clear();
    let n = retry(|| rustix::io::read(fd, rustix::buffer::spare_capacity(&mut *buf)))?;
    Ok(n)
}

/// read(2), retried on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| rustix::io::read(fd, &mut *buf))
}

/// Send all of `buf` on a socket (no SIGPIPE: EPIPE instead), retried on EINTR.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| rustix::net::send(fd, buf, rustix::net::SendFlags::NOSIGNAL))?;
        buf = &buf[n..];
    }
    Ok(())
}

/// A call retried while it fails with EINTR.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Replace what `/proc/self/cmdline` (and so `ps`) shows: the original argument area is
/// overwritten in place, as setproctitle does. A long-lived process forked from a command
/// line must not keep showing it (it may carry `-e KEY=VALUE`). Call only after the
/// arguments were parsed: nothing may read argv afterwards.
pub fn set_cmdline(title: &str) -> io::Result<()> {
    // Fields 48 and 49 (arg_start, arg_end); the list starts at field 3.
    let stat = proc_stat("self")?;
    let f: Vec<&str> = stat.split_whitespace().collect();
    let num = |i: usize| -> io::Result<usize> {
        f.get(i)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (start, end) = (num(45)?, num(46)?);
    if start == 0 || end <= start {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let len = end - start;
    let t = title.as_bytes();
    let n = t.len().min(len - 1);
    // SAFETY: [start, end) is this process's argument area as the kernel reports it: mapped,
    // writable (the initial stack) and owned by the process; the caller guarantees nothing reads
    // argv afterwards. The area is left NUL-terminated.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, len);
        std::ptr::copy_nonoverlapping(t.as_ptr(), start as *mut u8, n);
    }
    Ok(())
}

/// Fill `buf` from the kernel's random pool (ids, trace and span ids).
pub fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let n = rustix::rand::getrandom(&mut buf[done..], rustix::rand::GetRandomFlags::empty())
            .unwrap_or(0);
        if n == 0 {
            // Not expected after boot; fall back to something unique enough for an id.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                ^ u128::from(std::process::id());
            for (i, b) in buf[done..].iter_mut().enumerate() {
                *b = (t >> ((i % 16) * 8)) as u8;
            }
            return;
        }
        done += n;
    }
}

/// Read a small kernel file (/proc, cgroupfs) in one read: such files report size 0, for which
/// `fs::read_to_string` starts with a tiny buffer and reads many times.
pub fn read_proc(path: impl AsRef<Path>) -> io::Result<String> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(4096);
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The fields of /proc/PID/stat (`self` for this process) from field 3 (state) on, split at
/// spaces: the command name before them may hold spaces and parentheses.
pub fn proc_stat(pid: impl std::fmt::Display) -> io::Result<String> {
    let mut s = read_proc(format!("/proc/{pid}/stat"))?;
    let i = s
        .rfind(')')
        .filter(|i| s.len() >= i + 2)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    s.drain(..i + 2);
    Ok(s)
}

/// The first child of `pid`'s main thread (for a sandbox's init: its workload).
pub fn first_child(pid: libc::pid_t) -> Option<libc::pid_t> {
    read_proc(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Write one byte to `fd` (a handshake), retrying on EINTR.
pub fn send_byte(fd: libc::c_int, b: u8) -> io::Result<()> {
    loop {
        // SAFETY: a one-byte write from a local.
        match unsafe { libc::write(fd, [b].as_ptr().cast(), 1) } {
            1 => return Ok(()),
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => return Err(io::Error::last_os_error()),
        }
    }
}

/// A pipe (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Let a program started next inherit this descriptor (clear close-on-exec).
pub fn inheritable(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?)
}

/// mkdir with `mode`, its missing parents too; Ok(false) when it existed already. One mkdir
/// in the common cases (made, or there).
pub fn mkdir_p(p: &Path, mode: u32) -> io::Result<bool> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(mode).create(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(p)
            .map(|()| true),
        Err(e) => Err(e),
    }
}

/// The CPUs `pid` (0: this thread) may run on.
pub fn cpu_affinity(pid: libc::pid_t) -> io::Result<Vec<usize>> {
    if pid < 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let set = rustix::thread::sched_getaffinity(rproc::Pid::from_raw(pid))?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect())
}

/// Run this thread (and what it forks) on `cpus` only.
pub fn set_cpu_affinity(cpus: &[usize]) -> io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

/// ioprio_set(2) for the calling process (`value`: class << 13 | level).
pub fn set_io_priority(value: u32) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_set takes three integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            libc::c_long::from(value),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// set_mempolicy(2) for the calling thread: `mode` (with its flags) over `nodes`.
pub fn set_memory_policy(mode: u32, nodes: &[usize]) -> io::Result<()> {
    const BITS: usize = libc::c_ulong::BITS as usize;
    let mut mask: Vec<libc::c_ulong> = vec![0; nodes.iter().max().map_or(0, |n| n / BITS + 1)];
    for n in nodes {
        mask[n / BITS] |= 1 << (n % BITS);
    }
    // (The kernel reads maxnode - 1 bits: a historical off-by-one every caller adds to.)
    let maxnode = (mask.len() * BITS + 1) as libc::c_ulong;
    let ptr = if mask.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: `mask` holds the (maxnode - 1) bits the kernel reads, alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            libc::c_long::from(mode as i32),
            ptr,
            if mask.is_empty() { 0 } else { maxnode },
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// sched_setattr(2) for the calling thread.
pub fn set_scheduler(a: &nucleus_spec::plan::SchedAttr) -> io::Result<()> {
    /// The kernel's `struct sched_attr` (SCHED_ATTR_SIZE_VER0: 48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: a.policy,
        flags: a.flags,
        nice: a.nice,
        priority: a.priority,
        runtime: a.runtime,
        deadline: a.deadline,
        period: a.period,
    };
    // SAFETY: `attr` is a valid sched_attr of the size it states, alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::c_long,
            &attr,
            0 as libc::c_long,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restore a signal mask saved by [`block_signals`].
pub fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: `mask` is an initialised sigset_t; the old mask is not asked for.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// unshare(2) for namespace flags (CLONE_NEW*). Refuses CLONE_FILES, CLONE_FS and CLONE_VM
/// with EINVAL: they change what the process's other threads share, which is what makes
/// rustix's `unshare_unsafe` unsafe.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    const SHARING: libc::c_int = libc::CLONE_FILES | libc::CLONE_FS | libc::CLONE_VM;
    if flags & SHARING != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = rustix::thread::UnshareFlags::from_bits_retain(flags as u32);
    // SAFETY: namespace flags only (checked above): no descriptor table or memory stops being
    // shared with another thread.
    Ok(unsafe { rustix::thread::unshare_unsafe(flags) }?)
}

/// sysconf(3) (the C library's answer: some names need no syscall, e.g. _SC_CLK_TCK).
pub fn sysconf(name: libc::c_int) -> libc::c_long {
    // SAFETY: sysconf has no memory arguments.
    unsafe { libc::sysconf(name) }
}

/// getrusage(2) of this process (`children`: of its reaped children); None on failure.
pub fn rusage(children: bool) -> Option<libc::rusage> {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: rusage is plain data (all zeroes is a valid value); getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    (unsafe { libc::getrusage(who, &mut ru) } == 0).then_some(ru)
}

/// The kernel's Landlock ABI version, 0 when Landlock is unavailable.
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag and NULL attr/size 0 the call only returns a number.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as u32
    }
}

/// Set IFF_UP on the interface `name` (SIOCGIFFLAGS, then SIOCSIFFLAGS), through a socket of
/// the caller's network namespace opened for it.
pub fn link_up(name: &[u8]) -> io::Result<()> {
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (i, b) in name.iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    let s = socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // SAFETY: both ioctls read or write the ifreq we own; the name is NUL-terminated.
    unsafe {
        check(libc::ioctl(
            s.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut ifr,
        ))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS as _, &ifr))?;
    }
    Ok(())
}

/// Take a write lock on byte `at` of the open file description behind `fd` (F_OFD_SETLK, not
/// waiting): Ok(false) when another open file description holds it. (rustix's `fcntl_lock`
/// locks the whole file.)
pub fn ofd_lock_byte(fd: BorrowedFd<'_>, at: u64) -> io::Result<bool> {
    // SAFETY: a zeroed flock is a valid value; its fields are set below.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = libc::F_WRLCK as _;
    l.l_whence = libc::SEEK_SET as _;
    l.l_start = at as _;
    l.l_len = 1;
    // SAFETY: F_OFD_SETLK with a valid flock; l_pid must be 0 for OFD locks (zeroed).
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &l) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Set close-on-exec on descriptor number `fd`, which may have been closed meanwhile (EBADF
/// on F_GETFD: nothing to do). For numbers the caller found but does not own (a
/// /proc/self/fd listing).
pub fn set_cloexec_number(fd: RawFd) -> io::Result<()> {
    match cloexec_number(fd, true) {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(()),
        r => r,
    }
}

/// Whether descriptor number `fd` is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: fcntl F_GETFD on a descriptor number; no memory arguments.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Close descriptor number `fd`, found in a /proc/self/fd listing and owned by no object of
/// this process (a forked helper dropping what it inherited from the runtime's caller).
pub fn close_number(fd: RawFd) {
    // SAFETY: closes a number no Rust object of this process owns (the caller's contract).
    unsafe { libc::close(fd) };
}

/// Clear close-on-exec on descriptor number `fd` (OCI --preserve-fds: the caller passed it to
/// the container). EBADF when it is not open: the caller promised N descriptors.
pub fn clear_cloexec_number(fd: RawFd) -> io::Result<()> {
    cloexec_number(fd, false)
}

/// Close-on-exec on (`on`) or off for descriptor number `fd`.
fn cloexec_number(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; no memory arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let want = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, want) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A close-on-exec duplicate (at 3 or above) of descriptor number `fd`, which the caller was
/// given by number (a command-line `--events-fd`, the caller's standard descriptors). EBADF
/// when it is not open.
pub fn dup_number(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_DUPFD_CLOEXEC has no memory arguments; fails with EBADF for a closed fd.
    let r = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) })?;
    Ok(owned(r.into()))
}

/// Read one byte from descriptor number `fd`, retrying on EINTR; None at end of file. For a
/// handshake across a fork or [`spawn_shared`], where the child has the number (open in its
/// copy of the descriptor table) and its parent the owner.
pub fn recv_byte(fd: libc::c_int) -> io::Result<Option<u8>> {
    let mut b = 0u8;
    loop {
        // SAFETY: a one-byte read into a local.
        match unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) } {
            1 => return Ok(Some(b)),
            0 => return Ok(None),
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => return Err(io::Error::last_os_error()),
        }
    }
}

/// setgroups(2) for the calling task only (the raw syscall: libc's changes every thread's,
/// see `security::set_identity`), from the plan's gids without a copy.
pub fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: groups is a valid array of its length (gid_t is u32).
    check_long(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
        .map(drop)
}

/// Install a seccomp program (SECCOMP_SET_MODE_FILTER; no_new_privs must be set) with
/// SECCOMP_FILTER_FLAG_* `flags`; the syscall's return value (a listener fd with
/// NEW_LISTENER, see [`seccomp_filter_listener`]).
fn seccomp_filter_raw(prog: &[SockFilter], flags: libc::c_ulong) -> io::Result<libc::c_long> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const SockFilter,
    }
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: SockFilter is repr(C) and identical to struct sock_filter; fprog points at the
    // program, which outlives the call (the kernel copies it).
    check_long(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    })
}

/// Install a seccomp program; `flags` without SECCOMP_FILTER_FLAG_NEW_LISTENER.
pub fn seccomp_filter(prog: &[SockFilter], flags: libc::c_ulong) -> io::Result<()> {
    if flags & FLAG_NEW_LISTENER != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    seccomp_filter_raw(prog, flags).map(drop)
}

/// Install a seccomp program whose notifications go to the listener returned;
/// SECCOMP_FILTER_FLAG_NEW_LISTENER is added to `flags`.
pub fn seccomp_filter_listener(prog: &[SockFilter], flags: libc::c_ulong) -> io::Result<OwnedFd> {
    let fd = seccomp_filter_raw(prog, flags | FLAG_NEW_LISTENER)?;
    Ok(owned(fd))
}

const FLAG_NEW_LISTENER: libc::c_ulong = nucleus_spec::seccomp::FLAG_NEW_LISTENER as _;

/// `struct seccomp_data`: the syscall a notification is about.
#[repr(C)]
#[derive(Default)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Default)]
pub struct SeccompNotif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
pub struct SeccompNotifResp {
    pub id: u64,
    pub val: i64,
    pub error: i32,
    pub flags: u32,
}

/// Receive one notification from a seccomp listener (SECCOMP_IOCTL_NOTIF_RECV).
pub fn seccomp_notif_recv(listener: BorrowedFd<'_>) -> io::Result<SeccompNotif> {
    /// _IOWR('!', 0, struct seccomp_notif).
    const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
    let mut n = SeccompNotif::default();
    // SAFETY: n is a zeroed seccomp_notif of the size the ioctl encodes.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            NOTIF_RECV as _,
            &mut n as *mut SeccompNotif,
        )
    })?;
    Ok(n)
}

/// Answer a notification (SECCOMP_IOCTL_NOTIF_SEND).
pub fn seccomp_notif_send(listener: BorrowedFd<'_>, mut r: SeccompNotifResp) -> io::Result<()> {
    /// _IOWR('!', 1, struct seccomp_notif_resp).
    const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
    // SAFETY: r is a seccomp_notif_resp of the size the ioctl encodes.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            NOTIF_SEND as _,
            &mut r as *mut SeccompNotifResp,
        )
    })
    .map(drop)
}

/// NULL-terminated arrays of pointers to C strings, as execve takes its arguments and
/// environment; the strings are borrowed for as long as the array lives.
pub struct CStrArray<'a> {
    ptrs: Vec<*const libc::c_char>,
    _strings: std::marker::PhantomData<&'a CString>,
}

impl<'a> CStrArray<'a> {
    pub fn new(strings: &'a [CString]) -> Self {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStrArray {
            ptrs,
            _strings: std::marker::PhantomData,
        }
    }
}

/// execve(2); returns only on failure, with the error.
pub fn execve(path: &std::ffi::CStr, argv: &CStrArray<'_>, envp: &CStrArray<'_>) -> io::Error {
    // SAFETY: path is a C string; argv and envp are NULL-terminated arrays of pointers to C
    // strings they borrow (alive across the call).
    unsafe { libc::execve(path.as_ptr(), argv.ptrs.as_ptr(), envp.ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Fork in a test, run `f` in the child and exit with its result; the child's exit code (128
/// + N when killed by signal N).
#[cfg(test)]
pub(crate) fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: test children only run `f` (plain syscalls and checks, no locks other test
    // threads could hold) and exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        exit_now(f());
    }
    assert!(pid > 0, "fork: {}", io::Error::last_os_error());
    let (_, st) = waitpid(pid, false)
        .expect("waitpid")
        .expect("a child that ended");
    st.code()
}

/// Make `cmd`'s process chroot into `dir` (and chdir to its /) before its exec: a hook run from
/// inside a container under construction sees the host's file system where the runtime's
/// staging put it.
pub fn chroot_before_exec(cmd: &mut std::process::Command, dir: &Path) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the closure runs between fork and exec and calls only chroot and chdir
    // (async-signal-safe) on a string made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chroot(c.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// Before `cmd`'s exec: the process gets `sig` when the thread that spawns it exits (at once
/// if this process is already gone), and, when given, descriptor `fd.0` becomes `fd.1`,
/// inherited across the exec. The caller keeps `fd.0` open until the spawn returns.
pub fn before_exec_deathsig_and_fd(
    cmd: &mut std::process::Command,
    sig: i32,
    fd: Option<(std::os::fd::RawFd, std::os::fd::RawFd)>,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and calls only prctl, getppid, kill,
    // getpid, dup2 and fcntl (async-signal-safe) on plain integers.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), sig);
            }
            if let Some((from, to)) = fd {
                if from == to {
                    let fl = libc::fcntl(to, libc::F_GETFD);
                    if fl < 0 || libc::fcntl(to, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(from, to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Load `insns` as a BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to the cgroup `dir`
/// (a v2 directory's descriptor): from then on the kernel asks it about every device node a
/// task of that cgroup (or below) opens or makes. The attachment holds the program; the
/// returned descriptor may be closed. The verifier's log comes back in the error.
pub fn attach_device_program(
    dir: BorrowedFd<'_>,
    insns: &[nucleus_spec::cgroup::BpfInsn],
) -> io::Result<OwnedFd> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const BPF_CGROUP_DEVICE: u32 = 6;
    const BPF_F_ALLOW_MULTI: u32 = 2;
    // The leading fields of union bpf_attr for BPF_PROG_LOAD, zero-padded to the size the
    // kernel accepts (fields it does not know must be zero).
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
        _pad: [u8; 64],
    }
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
        _pad: [u8; 44],
    }
    let raw: Vec<u64> = insns
        .iter()
        .map(|i| {
            u64::from(i.code)
                | (u64::from(i.regs) << 8)
                | (u64::from(i.off as u16) << 16)
                | (u64::from(i.imm as u32) << 32)
        })
        .collect();
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 4096];
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"nucleus_devcgr");
    let load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: raw.len() as u32,
        insns: raw.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: 0,
        _pad: [0; 64],
    };
    // SAFETY: bpf(2) with a fully initialised attribute of its declared size; the pointers in
    // it (instructions, license, log buffer) outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &load as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let said = String::from_utf8_lossy(&log[..end]);
        let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
        return Err(io::Error::new(
            e.kind(),
            format!(
                "load the device program: {e}{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(" ({said})")
                }
            ),
        ));
    }
    // SAFETY: bpf returned a new descriptor we now own.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attach = ProgAttach {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
        _pad: [0; 44],
    };
    // SAFETY: as above, with descriptors that are open for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("attach the device program: {e}"),
        ));
    }
    Ok(prog)
}

/// personality(2): the calling process's execution domain (kept across exec).
pub fn set_personality(domain: u32) -> io::Result<()> {
    // SAFETY: personality takes a plain integer.
    let r = unsafe { libc::personality(libc::c_ulong::from(domain)) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wait_status_follows_the_shell() {
        assert_eq!(WaitStatus::from_raw(3 << 8), WaitStatus::Exited(3));
        assert_eq!(WaitStatus::from_raw(libc::SIGKILL), WaitStatus::Signaled(9));
        assert_eq!(WaitStatus::Exited(3).code(), 3);
        assert_eq!(WaitStatus::Signaled(9).code(), 137);
    }

    /// The reap loop of init: any child (not only the caller's process group), and an error
    /// (not a hang or a panic) when there is none. In a child of its own, where the only
    /// children are the test's (other tests run threads of this process).
    #[test]
    fn waitpid_any_child_and_none() {
        // SAFETY: the child runs single-threaded code and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: as above.
            let g = unsafe { libc::fork() };
            if g == 0 {
                // Its own session: a wait limited to the caller's process group misses it.
                // SAFETY: plain syscall.
                unsafe { libc::setsid() };
                exit_now(7);
            }
            let reaped =
                matches!(waitpid(-1, false), Ok(Some((p, WaitStatus::Exited(7)))) if p == g);
            let none =
                matches!(waitpid(-1, true), Err(e) if e.raw_os_error() == Some(libc::ECHILD));
            exit_now(if reaped && none { 0 } else { 1 });
        }
        let (_, st) = waitpid(pid, false).unwrap().unwrap();
        assert_eq!(st, WaitStatus::Exited(0), "any child reaped, then ECHILD");
        assert!(
            waitpid(-5, true).is_err(),
            "process groups are refused, not waited for"
        );
        assert!(pidfd_open(-1).is_err() && pidfd_open(0).is_err());
    }

    #[test]
    fn unix_sockets_connect_and_refuse_long_paths() {
        let d = crate::TestDir::new("raw-unix");
        let path = d.join("s");
        let l = unix_listen(&path).unwrap();
        let c = unix_connect(&path).unwrap();
        let a = unix_accept(l.as_fd(), 1000).unwrap();
        write_all(c.as_fd(), b"hi").unwrap();
        let mut b = [0u8; 2];
        assert_eq!(read(a.as_fd(), &mut b).unwrap(), 2);
        assert_eq!(&b, b"hi");
        let long = d.join("a".repeat(120));
        let e = unix_listen(&long).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    #[test]
    fn pipes_and_reads() {
        let (r, w) = pipe().unwrap();
        send_byte(w.as_raw_fd(), b'x').unwrap();
        let mut b = [0u8; 4];
        assert_eq!(read(r.as_fd(), &mut b).unwrap(), 1);
        assert_eq!(b[0], b'x');
        let (a, z) = std::os::unix::net::UnixStream::pair().unwrap();
        write_all(a.as_fd(), b"hello").unwrap();
        let mut v = Vec::with_capacity(64);
        assert_eq!(read_into(z.as_fd(), &mut v).unwrap(), 5);
        assert_eq!(v, b"hello");
        drop(z);
        // A peer gone is EPIPE, not a SIGPIPE that kills the runtime.
        assert_eq!(
            write_all(a.as_fd(), b"x").unwrap_err().raw_os_error(),
            Some(libc::EPIPE)
        );
    }

    #[test]
    fn files_locks_and_renames() {
        let d = crate::TestDir::new("raw-files");
        let nested = d.join("a/b/c");
        assert!(mkdir_p(&nested, 0o750).unwrap());
        assert!(!mkdir_p(&nested, 0o750).unwrap());
        make_file(&d.join("f"), 0o600).unwrap();
        assert_eq!(
            make_file(&d.join("f"), 0o600).unwrap_err().raw_os_error(),
            Some(libc::EEXIST)
        );
        std::fs::write(d.join("x"), "x").unwrap();
        std::fs::write(d.join("y"), "y").unwrap();
        rename_exchange(&d.join("x"), &d.join("y")).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("x")).unwrap(), "y");
        // An exclusive lock excludes another open file description, shared or not.
        let one = std::fs::File::open(d.join("x")).unwrap();
        let two = std::fs::File::open(d.join("x")).unwrap();
        flock(one.as_fd(), true, true).unwrap();
        let e = flock(two.as_fd(), false, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EWOULDBLOCK));
        drop(one);
        flock(two.as_fd(), true, false).unwrap();
        assert_eq!(fs_magic(&d).map(|m| m != 0).ok(), Some(true));
    }

    #[test]
    fn affinity_round_trip_and_randomness() {
        let all = cpu_affinity(0).unwrap();
        assert!(!all.is_empty());
        let first = all[0];
        // Per thread: change a scratch thread's, not the test runner's.
        let seen = std::thread::spawn(move || {
            set_cpu_affinity(&[first]).unwrap();
            cpu_affinity(0).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![first]);
        assert!(cpu_affinity(-1).is_err());
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        fill_random(&mut a);
        fill_random(&mut b);
        assert_ne!(a, b);
    }
}
