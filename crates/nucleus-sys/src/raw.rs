//! Thin wrappers over syscalls that neither std nor a crate offers in the form needed here
//! (clone3, the new mount API, mount_setattr, pivot_root…). Each returns `io::Result`.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount(2). `None` arguments are passed as NULL.
pub fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let dst = cstr(dst)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are NUL-terminated strings that outlive the call, or NULL.
    check(unsafe {
        libc::mount(
            ptr(&src),
            dst.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    })
    .map(drop)
}

pub fn umount_detach(p: &Path) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: c is a valid C string for the duration of the call.
    check(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

/// Create an empty regular file (a mount point for a file bind): one mknod instead of an open
/// and a close. EEXIST when something is there already.
pub fn make_file(p: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: c is a valid C string for the duration of the call; a regular file needs no dev.
    check(unsafe { libc::mknod(c.as_ptr(), libc::S_IFREG | mode as libc::mode_t, 0) }).map(drop)
}

/// flock(2) on an open descriptor (`LOCK_SH`, `LOCK_EX`, `| LOCK_NB`); the lock goes with the
/// open file (released when its last descriptor closes).
pub fn flock(fd: BorrowedFd<'_>, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor the caller keeps open for the call.
    check(unsafe { libc::flock(fd.as_raw_fd(), op) }).map(drop)
}

/// Swap two existing names atomically (renameat2 RENAME_EXCHANGE, Linux 3.15; EINVAL on a
/// filesystem without it).
pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    const RENAME_EXCHANGE: libc::c_uint = 2;
    let (ca, cb) = (cstr(a)?, cstr(b)?);
    // SAFETY: both are valid C strings for the duration of the call.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            RENAME_EXCHANGE,
        )
    })
    .map(drop)
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let (a, b) = (cstr(new_root)?, cstr(put_old)?);
    // SAFETY: both are valid C strings for the duration of the call.
    check_long(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) }).map(drop)
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
    let c = cstr(path)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    if dirfd.is_some() && path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    let dfd = dirfd.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    // SAFETY: valid C string; the kernel returns a new fd or an error.
    let fd = check_long(unsafe { libc::syscall(libc::SYS_open_tree, dfd, c.as_ptr(), flags) })?;
    Ok(owned(fd))
}

/// Attach a detached mount at `dst`.
pub fn move_mount_to(from: BorrowedFd<'_>, dst: &Path) -> io::Result<()> {
    let empty = cstr("")?;
    let d = cstr(dst)?;
    // SAFETY: valid fd and C strings for the duration of the call.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            d.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// A new detached tmpfs (fsopen/fsconfig/fsmount), not visible at any path.
pub fn detached_tmpfs(options: &[(&str, &str)]) -> io::Result<OwnedFd> {
    let name = cstr("tmpfs")?;
    // SAFETY: valid C string; returns a new fd.
    let fs = owned(check_long(unsafe {
        libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC)
    })?);
    for (k, v) in options {
        let (k, v) = (cstr(k)?, cstr(v)?);
        // SAFETY: fs is a valid fs context fd; key/value are valid C strings.
        check_long(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: fs is a valid fs context fd; NULL key/value are required for CMD_CREATE.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: fs is a configured fs context; returns a new mount fd.
    let m = check_long(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, 0)
    })?;
    Ok(owned(m))
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
    let c = cstr(path)?;
    // SAFETY: c is a valid C string; the fd returned is new and ours.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; unused args are zero.
    check(unsafe {
        libc::prctl(
            option,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map(drop)
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

pub fn waitpid(pid: libc::pid_t, nohang: bool) -> io::Result<Option<(libc::pid_t, WaitStatus)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid out-pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, if nohang { libc::WNOHANG } else { 0 }) };
    match r {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        p => Ok(Some((p, WaitStatus::from_raw(status)))),
    }
}

/// The filesystem type magic of the filesystem holding `p` (statfs f_type).
pub fn fs_magic(p: &Path) -> io::Result<i64> {
    let c = cstr(p)?;
    // SAFETY: statfs is plain data; valid C string and out-pointer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    check(unsafe { libc::statfs(c.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// CPU time (µs) of the reaped children and their reaped descendants.
pub fn children_cpu_usec() -> u64 {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0;
    }
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
    // SAFETY: pidfd_open has no memory arguments; the fd is owned immediately below.
    let r = check_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Join namespaces: of the process behind a pidfd (`flags` selects which, all at once), or the
/// one an nsfd names (`flags` 0).
pub fn setns(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: setns has no memory arguments.
    check(unsafe { libc::setns(fd.as_raw_fd(), flags) }).map(drop)
}

/// A unix socket address: a path, or with `abstract_ns` a name in the abstract namespace
/// (`@name`: a leading NUL, and the length counts only the name).
pub fn unix_addr_of(
    name: &[u8],
    abstract_ns: bool,
) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let off = usize::from(abstract_ns);
    if name.len() + off >= addr.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (i, c) in name.iter().enumerate() {
        addr.sun_path[i + off] = *c as libc::c_char;
    }
    let len = if abstract_ns {
        std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()
    } else {
        std::mem::size_of::<libc::sockaddr_un>()
    };
    Ok((addr, len as libc::socklen_t))
}

fn unix_addr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    unix_addr_of(path.as_os_str().as_encoded_bytes(), false)
}

fn stream_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory arguments; the fd is owned immediately below.
    let fd =
        check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening unix stream socket at `path` (replacing a stale socket file).
pub fn unix_listen(path: &Path) -> io::Result<OwnedFd> {
    let s = stream_socket()?;
    let (addr, len) = unix_addr(path)?;
    let _ = std::fs::remove_file(path);
    // SAFETY: addr is a valid sockaddr_un of `len` bytes.
    check(unsafe {
        libc::bind(
            s.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: plain syscall on an fd we own.
    check(unsafe { libc::listen(s.as_raw_fd(), 16) })?;
    Ok(s)
}

pub fn unix_connect(path: &Path) -> io::Result<OwnedFd> {
    let s = stream_socket()?;
    let (addr, len) = unix_addr(path)?;
    // SAFETY: addr is a valid sockaddr_un of `len` bytes.
    check(unsafe {
        libc::connect(
            s.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(s)
}

/// Accept one connection; replies and requests time out after `timeout_ms`.
pub fn unix_accept(listener: BorrowedFd<'_>, timeout_ms: u64) -> io::Result<OwnedFd> {
    // SAFETY: NULL address out-pointers are allowed.
    let fd = check(unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: accept4 returned a new fd that nobody else owns.
    let s = unsafe { OwnedFd::from_raw_fd(fd) };
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
    let spare = buf.spare_capacity_mut();
    // SAFETY: the spare capacity is valid for writes of its length.
    let n = unsafe { read_raw(fd, spare.as_mut_ptr().cast(), spare.len())? };
    // SAFETY: the kernel initialised the first n bytes.
    unsafe { buf.set_len(n) };
    Ok(n)
}

pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    unsafe { read_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// read(2), retried on EINTR.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn read_raw(fd: BorrowedFd<'_>, ptr: *mut u8, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: the caller's guarantee.
        let r = unsafe { libc::read(fd.as_raw_fd(), ptr.cast(), len) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(r as usize);
    }
}

pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for reads of its length.
        let r = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        buf = &buf[r as usize..];
    }
    Ok(())
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
        // SAFETY: the pointer and length describe the unfilled part of buf.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n <= 0 {
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
        done += n as usize;
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
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both were just returned by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Let a program started next inherit this descriptor (clear close-on-exec).
pub fn inheritable(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller keeps open.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: the kernel writes at most `size` bytes into the set.
    check(unsafe { libc::sched_getaffinity(pid, size, &mut set) })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads the set, checking the index against its size.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Run this thread (and what it forks) on `cpus` only.
pub fn set_cpu_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: CPU_SET checks the index against the set's size.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: the kernel reads `size` bytes of the set.
    check(unsafe { libc::sched_setaffinity(0, size, &set) })?;
    Ok(())
}
