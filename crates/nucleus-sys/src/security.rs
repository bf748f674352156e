//! Applying the plan's protections to the calling process: identity, capabilities,
//! no_new_privs, rlimits, Landlock, seccomp. Order matters and is fixed by `sandbox::workload::child_exec`.

use crate::error::{Context, Result};
use crate::raw;
use landlock::{
    Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use nucleus_spec::config::{RlimitResource, Ulimit};
use nucleus_spec::landlock::{FsRight, LandlockPlan};
use nucleus_spec::seccomp::SockFilter;
use nucleus_spec::state::LandlockStatus;
use std::io;

/// Drop every bounding capability not in `keep` (a bit mask) and clear the ambient set.
pub fn drop_bounding_except(keep: u64) -> Result<()> {
    // The kernel answers EINVAL past its last capability, which ends the loop.
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        match raw::prctl(libc::PR_CAPBSET_DROP, cap.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e).ctx("drop bounding capability", cap),
        }
    }
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error()).ctx("clear ambient capabilities", "");
    }
    Ok(())
}

/// Drop exactly the bounding capabilities in `mask`: for a process whose bounding set was
/// already cut down to a known set, and its ambient set cleared, by [`drop_bounding_except`]
/// before it was started (the sandbox does, once, for init and the workload; each drop
/// replaces the credentials: a copy, a commit, an RCU free).
pub fn drop_bounding(mask: u64) -> Result<()> {
    for cap in (0..64u32).filter(|c| mask & (1 << c) != 0) {
        raw::prctl(libc::PR_CAPBSET_DROP, cap.into()).ctx("drop bounding capability", cap)?;
    }
    Ok(())
}

/// Raise each capability of `mask` in the ambient set (it must be permitted and inheritable).
pub fn raise_ambient(mask: u64) -> Result<()> {
    for cap in 0..64u32 {
        if mask & (1 << cap) == 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error()).ctx("raise ambient capability", cap);
        }
    }
    Ok(())
}

/// Keep permitted capabilities across the coming setuid away from root.
pub fn keep_caps() -> Result<()> {
    rustix::thread::set_keep_capabilities(true)
        .map_err(io::Error::from)
        .ctx("prctl", "PR_SET_KEEPCAPS")
}

/// Set the effective, permitted and inheritable sets to exactly these masks.
pub fn set_capabilities(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    }; // _LINUX_CAPABILITY_VERSION_3
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        Data {
            effective: lo(effective),
            permitted: lo(permitted),
            inheritable: lo(inheritable),
        },
        Data {
            effective: hi(effective),
            permitted: hi(permitted),
            inheritable: hi(inheritable),
        },
    ];
    // SAFETY: header and a two-element data array as required by capability version 3.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error()).ctx(
            "capset",
            format!(
                "effective {effective:#x} permitted {permitted:#x} inheritable {inheritable:#x}"
            ),
        );
    }
    Ok(())
}

/// Set gid, uid and (when `groups` is given) the supplementary groups of the calling task.
///
/// Raw syscalls, not libc's: libc changes every thread's ids together (a signal round to each,
/// waiting for each), taking locks in memory this task may share with init (the workload starts
/// as a CLONE_VM child, and init had a network thread once). Callers: the workload and `exec`
/// (single-threaded: the task is the process), and the sandbox while its network thread makes
/// the namespace (that thread needs no ids of its own).
pub fn set_identity(uid: u32, gid: u32, groups: Option<&[u32]>) -> Result<()> {
    if let Some(groups) = groups {
        // SAFETY: groups is a valid array of its length (gid_t is u32).
        if unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error()).ctx("setgroups", format!("{groups:?}"));
        }
    }
    // SAFETY: plain id syscalls.
    if unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) } != 0 {
        return Err(io::Error::last_os_error()).ctx("setresgid", gid);
    }
    // SAFETY: plain id syscall.
    if unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) } != 0 {
        return Err(io::Error::last_os_error()).ctx("setresuid", uid);
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true)
        .map_err(io::Error::from)
        .ctx("prctl", "PR_SET_NO_NEW_PRIVS")
}

/// The type setrlimit takes its resource as: an enum-like unsigned int in glibc, int in musl.
#[cfg(target_env = "gnu")]
type ResourceT = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type ResourceT = libc::c_int;

fn resource(r: RlimitResource) -> ResourceT {
    match r {
        RlimitResource::As => libc::RLIMIT_AS,
        RlimitResource::Core => libc::RLIMIT_CORE,
        RlimitResource::Cpu => libc::RLIMIT_CPU,
        RlimitResource::Data => libc::RLIMIT_DATA,
        RlimitResource::Fsize => libc::RLIMIT_FSIZE,
        RlimitResource::Locks => libc::RLIMIT_LOCKS,
        RlimitResource::Memlock => libc::RLIMIT_MEMLOCK,
        RlimitResource::Msgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitResource::Nice => libc::RLIMIT_NICE,
        RlimitResource::Nofile => libc::RLIMIT_NOFILE,
        RlimitResource::Nproc => libc::RLIMIT_NPROC,
        RlimitResource::Rss => libc::RLIMIT_RSS,
        RlimitResource::Rtprio => libc::RLIMIT_RTPRIO,
        RlimitResource::Rttime => libc::RLIMIT_RTTIME,
        RlimitResource::Sigpending => libc::RLIMIT_SIGPENDING,
        RlimitResource::Stack => libc::RLIMIT_STACK,
    }
}

pub fn set_rlimits(limits: &[Ulimit]) -> Result<()> {
    for l in limits {
        let lim = libc::rlimit {
            rlim_cur: l.soft.unwrap_or(libc::RLIM_INFINITY),
            rlim_max: l.hard.unwrap_or(libc::RLIM_INFINITY),
        };
        // SAFETY: lim is a valid rlimit.
        if unsafe { libc::setrlimit(resource(l.resource), &lim) } != 0 {
            return Err(io::Error::last_os_error())
                .ctx("setrlimit", format!("{:?}", l.resource).to_lowercase());
        }
    }
    Ok(())
}

fn right(r: FsRight) -> AccessFs {
    match r {
        FsRight::Execute => AccessFs::Execute,
        FsRight::WriteFile => AccessFs::WriteFile,
        FsRight::ReadFile => AccessFs::ReadFile,
        FsRight::ReadDir => AccessFs::ReadDir,
        FsRight::RemoveDir => AccessFs::RemoveDir,
        FsRight::RemoveFile => AccessFs::RemoveFile,
        FsRight::MakeChar => AccessFs::MakeChar,
        FsRight::MakeDir => AccessFs::MakeDir,
        FsRight::MakeReg => AccessFs::MakeReg,
        FsRight::MakeSock => AccessFs::MakeSock,
        FsRight::MakeFifo => AccessFs::MakeFifo,
        FsRight::MakeBlock => AccessFs::MakeBlock,
        FsRight::MakeSym => AccessFs::MakeSym,
        FsRight::Refer => AccessFs::Refer,
        FsRight::Truncate => AccessFs::Truncate,
        FsRight::IoctlDev => AccessFs::IoctlDev,
    }
}

/// Outcome of applying Landlock.
pub struct LandlockOutcome {
    pub status: LandlockStatus,
}

/// Apply Landlock rules, negotiated down to the running kernel's ABI (best effort: rights the
/// kernel does not know are dropped and the status says partially enforced).
/// Why Landlock was not applied. `required` errors (a policy's `missing = "error"` path is
/// absent) are not a degradable protection: they stop the start in every mode.
#[derive(Debug)]
pub struct LandlockError {
    pub msg: String,
    pub required: bool,
}

impl From<String> for LandlockError {
    fn from(msg: String) -> Self {
        LandlockError {
            msg,
            required: false,
        }
    }
}

fn is_dir_fd(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    // SAFETY: fstat on a valid fd into a zeroed stat buffer.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut st) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFDIR
    }
}

pub fn apply_landlock(plan: &LandlockPlan) -> std::result::Result<LandlockOutcome, LandlockError> {
    let abi = ABI::V6;
    let mut rs = Ruleset::default();
    if plan.min_abi > 0 {
        // Strict: what the kernel must enforce, through the crate's own compatibility level
        // (an error instead of a silently smaller ruleset); the rest best effort as always.
        let needed = ABI::from(i32::try_from(plan.min_abi).unwrap_or(i32::MAX));
        rs = rs
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(needed))
            .map_err(|e| e.to_string())?
            .set_compatibility(CompatLevel::BestEffort);
    }
    let mut rs = rs
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| e.to_string())?;
    if plan.scope_signals_and_sockets {
        // (One scope per call: the crate adds them up.)
        rs = rs
            .scope(Scope::AbstractUnixSocket)
            .and_then(|rs| rs.scope(Scope::Signal))
            .map_err(|e| e.to_string())?;
    }
    let mut created = rs.create().map_err(|e| e.to_string())?;
    for rule in &plan.rules {
        let fd = match PathFd::new(&rule.path) {
            Ok(fd) => fd,
            Err(e) if plan.required.contains(&rule.path) => {
                return Err(LandlockError {
                    msg: format!(
                        "{}: {e} (the policy says a missing path is an error)",
                        rule.path.display()
                    ),
                    required: true,
                })
            }
            // A rule for a path that does not exist in this sandbox grants nothing.
            Err(_) => continue,
        };
        let mut access = landlock::BitFlags::<AccessFs>::empty();
        for r in &rule.rights {
            access |= right(*r);
        }
        // Directory-only rights on a file are an error: keep only file rights for files.
        if !is_dir_fd(std::os::fd::AsFd::as_fd(&fd)) {
            access &= AccessFs::from_file(abi);
        }
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| format!("{}: {e}", rule.path.display()))?;
    }
    // nucleus sets no_new_privs itself, before (set_no_new_privs): the crate's own call would
    // hide a missing one, which seccomp needs too.
    let st = created
        .no_new_privs(false)
        .restrict_self()
        .map_err(|e| e.to_string())?;
    Ok(LandlockOutcome {
        status: match st.ruleset {
            RulesetStatus::FullyEnforced => LandlockStatus::FullyEnforced,
            RulesetStatus::PartiallyEnforced => LandlockStatus::PartiallyEnforced,
            RulesetStatus::NotEnforced => LandlockStatus::NotEnforced,
        },
    })
}

/// Landlock with no rules at all: no file system access (for the mini-init, which needs none).
pub fn landlock_deny_all() -> std::result::Result<(), String> {
    Ruleset::default()
        .handle_access(AccessFs::from_all(ABI::V6))
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?
        .no_new_privs(false)
        .restrict_self()
        .map_err(|e| e.to_string())
        .and_then(|s| match s.ruleset {
            RulesetStatus::NotEnforced => Err("Landlock is not available".to_string()),
            _ => Ok(()),
        })
}

/// Install a compiled seccomp program (no_new_privs must be set) with SECCOMP_FILTER_FLAG_*
/// flags (0: none).
pub fn install_seccomp(prog: &[SockFilter], flags: u32) -> io::Result<()> {
    install_seccomp_flags(prog, flags.into()).map(drop)
}

/// Install a filter whose notifications go to a new listener fd (SECCOMP_RET_USER_NOTIF).
pub fn install_seccomp_listener(
    prog: &[SockFilter],
    flags: u32,
) -> io::Result<std::os::fd::OwnedFd> {
    use nucleus_spec::seccomp::{FLAG_NEW_LISTENER, FLAG_TSYNC};
    // TSYNC and NEW_LISTENER both want the return value; the workload is single-threaded here
    // (TSYNC has nothing to do), so it is left out.
    use nucleus_spec::seccomp::FLAG_WAIT_KILLABLE_RECV;
    // Kernels before 5.19 do not know WAIT_KILLABLE_RECV: try with it, then without.
    let base = (flags & !FLAG_TSYNC) | FLAG_NEW_LISTENER;
    let fd = install_seccomp_flags(prog, (base | FLAG_WAIT_KILLABLE_RECV).into())
        .or_else(|_| install_seccomp_flags(prog, base.into()))?;
    // SAFETY: with NEW_LISTENER the kernel returns a new fd that nobody else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
}

fn install_seccomp_flags(prog: &[SockFilter], flags: libc::c_ulong) -> io::Result<libc::c_long> {
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
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

pub fn is_root() -> bool {
    euid() == 0
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

pub fn real_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Mark every descriptor from `first` up close-on-exec: close_range(CLOSE_RANGE_CLOEXEC), or
/// on kernels before 5.11 each open descriptor listed in /proc/self/fd.
pub fn cloexec_from(first: i32) -> io::Result<()> {
    if raw::close_range_cloexec(first as u32).is_ok() {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on a descriptor number; a closed one (the read_dir's own) gives EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        // SAFETY: as above.
        if flags >= 0 && unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod bounding_tests {
    use super::*;

    fn bounding() -> u64 {
        let mut set = 0u64;
        for cap in 0..64u64 {
            // SAFETY: PR_CAPBSET_READ with an integer argument.
            if unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) } == 1 {
                set |= 1 << cap;
            }
        }
        set
    }

    /// In forked children (the cut is for good): the bounding set keeps exactly `keep`, and a
    /// cut that cannot be made (no CAP_SETPCAP left) is an error, not a silent stop.
    #[test]
    fn drop_bounding_except_keeps_exactly_the_mask_and_reports_failure() {
        let run = |f: fn() -> i32| {
            // SAFETY: the child only runs `f` and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                raw::exit_now(f());
            }
            raw::waitpid(pid, false).unwrap().unwrap().1.code()
        };
        let kill = 1u64 << 5; // CAP_KILL
        assert_eq!(
            run(|| match drop_bounding_except(1 << 5) {
                Ok(()) if bounding() == 1 << 5 => 0,
                _ => 1,
            }),
            0,
            "bounding set after keeping {kill:#x}"
        );
        assert_eq!(
            run(|| {
                if set_capabilities(0, 0, 0).is_err() {
                    return 2;
                }
                match drop_bounding_except(0) {
                    Err(_) => 0,
                    Ok(()) => 1,
                }
            }),
            0,
            "a cut without CAP_SETPCAP reported success"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nucleus_spec::landlock::LandlockRule;
    use std::path::PathBuf;

    /// Landlock restricts the whole process: apply it in a forked child; its exit code.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child runs `f` (no locks shared with other test threads) and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            raw::exit_now(f());
        }
        let (_, st) = raw::waitpid(pid, false).unwrap().unwrap();
        st.code()
    }

    fn plan(dir: &std::path::Path, required: Vec<PathBuf>) -> LandlockPlan {
        LandlockPlan {
            rules: vec![
                LandlockRule {
                    path: "/".into(),
                    rights: FsRight::READ.to_vec(),
                },
                // A file rule: read rights only (its directory-only rights are dropped).
                LandlockRule {
                    path: dir.join("f"),
                    rights: FsRight::READ.to_vec(),
                },
                LandlockRule {
                    path: dir.join("missing"),
                    rights: FsRight::READ_WRITE_EXEC.to_vec(),
                },
            ],
            scope_signals_and_sockets: false,
            required,
            min_abi: 0,
        }
    }

    /// A rule for a missing path grants nothing and is no error unless the policy requires the
    /// path; a rule on a file keeps to the rights it names (the file stays unwritable).
    #[test]
    fn landlock_rules_grant_what_they_name_and_skip_missing_paths() {
        let dir = crate::TestDir::new("landlock");
        std::fs::write(dir.join("f"), "x").unwrap();
        let p = plan(&dir, vec![]);
        let f = dir.join("f");
        let code = in_child(|| match apply_landlock(&p) {
            Ok(_) => match std::fs::OpenOptions::new().write(true).open(&f) {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    // Files readable, directories listable (a directory rule keeps its
                    // directory rights).
                    if std::fs::read(&f).is_ok() && std::fs::read_dir(&*dir).is_ok() {
                        0
                    } else {
                        4
                    }
                }
                _ => 1,
            },
            Err(_) => 2,
        });
        assert_eq!(
            code, 0,
            "1: writable, 2: refused, 4: unreadable or unlistable"
        );
        let p = plan(&dir, vec![dir.join("missing")]);
        let code = in_child(|| match apply_landlock(&p) {
            Err(e) if e.required && e.msg.contains("missing") => 0,
            _ => 1,
        });
        assert_eq!(code, 0, "a required missing path is an error");
    }

    /// Strict plans hold the kernel to their minimum ABI through the crate's HardRequirement:
    /// a ruleset needing rights this kernel lacks is an error, not a smaller ruleset; one
    /// within the kernel's ABI is enforced in full.
    #[test]
    fn landlock_min_abi_is_a_hard_requirement() {
        let kernel = crate::probe::landlock_abi();
        assert!(kernel >= 1, "these tests need Landlock");
        let dir = crate::TestDir::new("landlock-abi");
        std::fs::write(dir.join("f"), "x").unwrap();
        let mut p = plan(&dir, vec![]);
        p.min_abi = kernel.min(5);
        let code = in_child(|| match apply_landlock(&p) {
            Ok(o) if o.status == LandlockStatus::FullyEnforced => 0,
            Ok(_) => 1,
            Err(_) => 2,
        });
        assert_eq!(code, 0, "1: not fully enforced, 2: refused");
        // ABI 9 adds a right (resolving unix sockets) that kernels before it do not have.
        if kernel < 9 {
            p.min_abi = 9;
            let code = in_child(|| match apply_landlock(&p) {
                Err(e) if !e.required => 0,
                _ => 1,
            });
            assert_eq!(code, 0, "a kernel below the plan's minimum ABI must refuse");
        }
    }
}
