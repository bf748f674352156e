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
use rustix::process::{Resource, Rlimit};
use rustix::thread::{remove_capability_from_bounding_set, CapabilitySet};
use std::io;

/// Drop every bounding capability not in `keep` (a bit mask) and clear the ambient set.
pub fn drop_bounding_except(keep: u64) -> Result<()> {
    // The kernel answers EINVAL past its last capability, which ends the loop.
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        match remove_capability_from_bounding_set(capability(cap)) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => return Err(io::Error::from(e)).ctx("drop bounding capability", cap),
        }
    }
    rustix::thread::clear_ambient_capability_set()
        .map_err(io::Error::from)
        .ctx("clear ambient capabilities", "")
}

/// Capability number `cap` as rustix takes it (a set of one; numbers it has no name for
/// too).
fn capability(cap: u32) -> CapabilitySet {
    CapabilitySet::from_bits_retain(1 << cap)
}

/// The calling thread's bounding set, as a mask.
#[cfg(test)]
pub(crate) fn bounding_set() -> u64 {
    (0..64u32)
        .filter(|&c| rustix::thread::capability_is_in_bounding_set(capability(c)).unwrap_or(false))
        .fold(0, |m, c| m | 1 << c)
}

/// Drop exactly the bounding capabilities in `mask`: for a process whose bounding set was
/// already cut down to a known set, and its ambient set cleared, by [`drop_bounding_except`]
/// before it was started (the sandbox does, once, for init and the workload; each drop
/// replaces the credentials: a copy, a commit, an RCU free).
pub fn drop_bounding(mask: u64) -> Result<()> {
    for cap in (0..64u32).filter(|c| mask & (1 << c) != 0) {
        remove_capability_from_bounding_set(capability(cap))
            .map_err(io::Error::from)
            .ctx("drop bounding capability", cap)?;
    }
    Ok(())
}

/// Raise each capability of `mask` in the ambient set (it must be permitted and inheritable).
pub fn raise_ambient(mask: u64) -> Result<()> {
    for cap in 0..64u32 {
        if mask & (1 << cap) == 0 {
            continue;
        }
        rustix::thread::configure_capability_in_ambient_set(capability(cap), true)
            .map_err(io::Error::from)
            .ctx("raise ambient capability", cap)?;
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
    // capset(2), _LINUX_CAPABILITY_VERSION_3, this thread (pid 0).
    let sets = rustix::thread::CapabilitySets {
        effective: CapabilitySet::from_bits_retain(effective),
        permitted: CapabilitySet::from_bits_retain(permitted),
        inheritable: CapabilitySet::from_bits_retain(inheritable),
    };
    if let Err(e) = rustix::thread::set_capabilities(None, sets) {
        return Err(io::Error::from(e)).ctx(
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
    use rustix::thread::{set_thread_res_gid, set_thread_res_uid};
    if let Some(groups) = groups {
        raw::set_thread_groups(groups).ctx("setgroups", format!("{groups:?}"))?;
    }
    let g = rustix::process::Gid::from_raw(gid);
    set_thread_res_gid(g, g, g)
        .map_err(io::Error::from)
        .ctx("setresgid", gid)?;
    let u = rustix::process::Uid::from_raw(uid);
    set_thread_res_uid(u, u, u)
        .map_err(io::Error::from)
        .ctx("setresuid", uid)?;
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true)
        .map_err(io::Error::from)
        .ctx("prctl", "PR_SET_NO_NEW_PRIVS")
}

fn resource(r: RlimitResource) -> Resource {
    match r {
        RlimitResource::As => Resource::As,
        RlimitResource::Core => Resource::Core,
        RlimitResource::Cpu => Resource::Cpu,
        RlimitResource::Data => Resource::Data,
        RlimitResource::Fsize => Resource::Fsize,
        RlimitResource::Locks => Resource::Locks,
        RlimitResource::Memlock => Resource::Memlock,
        RlimitResource::Msgqueue => Resource::Msgqueue,
        RlimitResource::Nice => Resource::Nice,
        RlimitResource::Nofile => Resource::Nofile,
        RlimitResource::Nproc => Resource::Nproc,
        RlimitResource::Rss => Resource::Rss,
        RlimitResource::Rtprio => Resource::Rtprio,
        RlimitResource::Rttime => Resource::Rttime,
        RlimitResource::Sigpending => Resource::Sigpending,
        RlimitResource::Stack => Resource::Stack,
    }
}

pub fn set_rlimits(limits: &[Ulimit]) -> Result<()> {
    for l in limits {
        // None: RLIM_INFINITY. (prlimit64(0, …), as musl's setrlimit does.)
        let lim = Rlimit {
            current: l.soft,
            maximum: l.hard,
        };
        if let Err(e) = rustix::process::setrlimit(resource(l.resource), lim) {
            return Err(io::Error::from(e))
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
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
    })
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
    raw::seccomp_filter(prog, flags.into())
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
    raw::seccomp_filter_listener(prog, (base | FLAG_WAIT_KILLABLE_RECV).into())
        .or_else(|_| raw::seccomp_filter_listener(prog, base.into()))
}

pub fn is_root() -> bool {
    euid() == 0
}

/// Whether this process may raise its priority again after lowering it: CAP_SYS_NICE counted
/// in the host's user namespace (the only one setpriority asks), i.e. effective here and no
/// user namespace of ours in between (a container's root without it, e.g. Docker's default,
/// could lower and never come back).
pub fn may_raise_priority() -> bool {
    let nice = rustix::thread::CapabilitySet::SYS_NICE;
    rustix::thread::capabilities(None).is_ok_and(|c| c.effective.contains(nice))
        && !in_user_namespace()
}

/// Whether this process is in a user namespace other than the host's (rootless podman runs
/// its OCI runtime as uid 0 of one): its uid map is not the whole identity.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        let f: Vec<&str> = m.split_whitespace().collect();
        f != ["0", "0", "4294967295"]
    })
}

pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub fn real_uid() -> u32 {
    rustix::process::getuid().as_raw()
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
        // A closed one (the read_dir's own) is skipped.
        raw::set_cloexec_number(fd)?;
    }
    Ok(())
}

#[cfg(test)]
mod bounding_tests {
    use super::*;

    fn bounding() -> u64 {
        bounding_set()
    }

    /// In forked children (the cut is for good): the bounding set keeps exactly `keep`, and a
    /// cut that cannot be made (no CAP_SETPCAP left) is an error, not a silent stop.
    #[test]
    fn drop_bounding_except_keeps_exactly_the_mask_and_reports_failure() {
        let run = |f: fn() -> i32| raw::in_child(f);
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
    use crate::raw::in_child;

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
