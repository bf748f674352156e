//! The default seccomp filter: an allowlist of ordinary syscalls, the escape surface denied
//! with EPERM, and ENOSYS for everything unlisted.
//!
//! Why ENOSYS for the unlisted rest: glibc and language runtimes probe newer syscalls and fall
//! back on ENOSYS (faccessat2 → faccessat, clone3 → clone, statx → fstatat), but treat EPERM as a
//! real failure. Known-dangerous syscalls get EPERM so that tools report "Operation not
//! permitted" rather than silently taking a fallback path.

use super::syscalls;
use super::{Action, ArgCond, ArgWidth, CmpOp, Filter, Rule};

const EPERM: u16 = 1;
const ENOSYS: u16 = 38;

/// Container-escape and host-tampering surface: each one denied with EPERM.
pub const DENIED: &[&str] = &[
    // Mount table changes, old and new API (CVE-2022-0185 was reached via fsconfig).
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "open_tree_attr",
    "move_mount",
    "mount_setattr",
    "statmount",
    "listmount",
    // Reading or writing other processes' memory.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "kcmp",
    "pidfd_getfd",
    // The kernel keyring is not namespaced.
    "keyctl",
    "add_key",
    "request_key",
    // Large kernel attack surface with a history of privilege escalations.
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // Replacing the kernel or its modules.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    // New namespaces are a way around every other restriction here (clone is filtered by flags).
    "unshare",
    "setns",
    // Shocker (2014): open_by_handle_at reaches files outside the mount namespace.
    "open_by_handle_at",
    "name_to_handle_at",
    // The clock is not namespaced (time namespaces only offset monotonic/boottime).
    "clock_settime",
    "clock_adjtime",
    "settimeofday",
    "adjtimex",
    // Host administration.
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "iopl",
    "ioperm",
    "sethostname",
    "setdomainname",
    "vhangup",
    "fanotify_init",
    "lookup_dcookie",
    "nfsservctl",
    "uselib",
    "_sysctl",
    "move_pages",
    "migrate_pages",
    "lsm_set_self_attr",
];

/// Ordinary syscalls allowed without conditions.
pub const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "file_getattr",
    "file_setattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_mempolicy",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lsm_get_self_attr",
    "lsm_list_modules",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "mbind",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// Every CLONE_NEW* flag that `clone` accepts (CLONE_NEWTIME is clone3/unshare-only).
pub const CLONE_NS_FLAGS: u64 = 0x0002_0000 // NEWNS
    | 0x0200_0000 // NEWCGROUP
    | 0x0400_0000 // NEWUTS
    | 0x0800_0000 // NEWIPC
    | 0x1000_0000 // NEWUSER
    | 0x2000_0000 // NEWPID
    | 0x4000_0000; // NEWNET

const TIOCSTI: u64 = 0x5412; // fake terminal input: CVE-2016-7545 class escapes
const TIOCLINUX: u64 = 0x541C; // same via the Linux console
/// Terminal requests refused besides: fake input (TIOCSTI, TIOCLINUX), a line discipline
/// change (TIOCSETD: N_NULL made a terminal discard everything for good), redirecting the
/// console (TIOCCONS), hanging up the terminal (TIOCVHANGUP). Compared on the low 32 bits
/// (the kernel reads the request as an unsigned int).
const TERMINAL_DENIED: &[u64] = &[TIOCSTI, TIOCLINUX, 0x5423, 0x541D, 0x5437];
/// Old-style request groups refused whole: KD* (0x4Bxx, console keyboard and display) and VT_*
/// (0x56xx, virtual terminals).
const TERMINAL_DENIED_GROUPS: &[u64] = &[0x4B00, 0x5600];
/// Address families a sandbox may create sockets of. Everything else (AF_PACKET raw frames,
/// CVE-2020-14386; AF_VSOCK, which reaches the hypervisor and host services past every network
/// namespace; AF_ALG, the kernel crypto API; AF_BLUETOOTH, AF_RDS, AF_TIPC, AF_KCM, AF_XDP,
/// AF_CAN, AF_SMC and the rest, rarely used and with a history of kernel bugs) fails with
/// EAFNOSUPPORT, as on a kernel built without them. `--seccomp-allow socket` lifts this.
pub const SOCKET_FAMILIES: &[(&str, u64)] = &[("AF_UNIX", 1), ("AF_INET", 2), ("AF_INET6", 10)];
const AF_NETLINK: u64 = 16;
/// Netlink protocols allowed (addresses, routes and links; socket diagnostics for `ss`; generic
/// netlink). Audit, uevents, xfrm, netfilter, connector and the rest: EPROTONOSUPPORT.
pub const NETLINK_PROTOCOLS: &[(&str, u64)] = &[
    ("NETLINK_ROUTE", 0),
    ("NETLINK_SOCK_DIAG", 4),
    ("NETLINK_GENERIC", 16),
];
const EAFNOSUPPORT: u16 = 97;
const EPROTONOSUPPORT: u16 = 93;
/// personality() values Docker allows: query and the common ones.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--seccomp-allow: unknown syscall {0:?} on this architecture")]
pub struct UnknownSyscall(pub String);

fn cond(index: u8, op: CmpOp, value: u64, width: ArgWidth) -> ArgCond {
    ArgCond {
        index,
        op,
        value,
        width,
    }
}

/// The default filter, with `extra_allow` syscalls allowed unconditionally (they may also be
/// names from [`DENIED`]: an explicit `--seccomp-allow` is the user's decision).
pub fn default_filter(extra_allow: &[String]) -> Result<Filter, UnknownSyscall> {
    let nr = |n: &str| syscalls::number(n);
    let mut rules = Vec::new();
    let mut extra = Vec::new();
    for name in extra_allow {
        let n = nr(name).ok_or_else(|| UnknownSyscall(name.clone()))?;
        extra.push(n);
        rules.push(Rule {
            nr: n,
            action: Action::Allow,
            conds: vec![],
        });
    }
    let allow = |n: u32, conds: Vec<ArgCond>| Rule {
        nr: n,
        action: Action::Allow,
        conds,
    };
    // Names absent on this architecture (e.g. `open` on aarch64) are simply not listed.
    for n in ALLOWED.iter().filter_map(|s| nr(s)) {
        rules.push(allow(n, vec![]));
    }
    for n in DENIED
        .iter()
        .filter_map(|s| nr(s))
        .filter(|n| !extra.contains(n))
    {
        rules.push(Rule {
            nr: n,
            action: Action::Errno(EPERM),
            conds: vec![],
        });
    }
    let eperm = |n: u32| Rule {
        nr: n,
        action: Action::Errno(EPERM),
        conds: vec![],
    };
    if let Some(n) = nr("clone") {
        // Allowed when no namespace flag is set; the flags are clone's first argument on x86_64
        // and aarch64.
        rules.push(allow(
            n,
            vec![cond(0, CmpOp::MaskedEq(CLONE_NS_FLAGS), 0, ArgWidth::U64)],
        ));
        rules.push(eperm(n));
    }
    if let Some(n) = nr("clone3") {
        // clone3 passes flags in memory the filter cannot read: ENOSYS makes libc fall back to
        // clone, whose flags are checked above.
        rules.push(Rule {
            nr: n,
            action: Action::Errno(ENOSYS),
            conds: vec![],
        });
    }
    if let Some(n) = nr("ioctl") {
        for &req in TERMINAL_DENIED {
            rules.push(Rule {
                nr: n,
                action: Action::Errno(EPERM),
                conds: vec![cond(1, CmpOp::MaskedEq(0xffff_ffff), req, ArgWidth::U64)],
            });
        }
        for &group in TERMINAL_DENIED_GROUPS {
            rules.push(Rule {
                nr: n,
                action: Action::Errno(EPERM),
                conds: vec![cond(1, CmpOp::MaskedEq(0xffff_ff00), group, ArgWidth::U64)],
            });
        }
        rules.push(allow(n, vec![]));
    }
    if let Some(n) = nr("socket") {
        for &(_, af) in SOCKET_FAMILIES {
            rules.push(allow(n, vec![cond(0, CmpOp::Eq, af, ArgWidth::U32)]));
        }
        for &(_, proto) in NETLINK_PROTOCOLS {
            rules.push(allow(
                n,
                vec![
                    cond(0, CmpOp::Eq, AF_NETLINK, ArgWidth::U32),
                    cond(2, CmpOp::Eq, proto, ArgWidth::U32),
                ],
            ));
        }
        rules.push(Rule {
            nr: n,
            action: Action::Errno(EPROTONOSUPPORT),
            conds: vec![cond(0, CmpOp::Eq, AF_NETLINK, ArgWidth::U32)],
        });
        rules.push(Rule {
            nr: n,
            action: Action::Errno(EAFNOSUPPORT),
            conds: vec![],
        });
    }
    if let Some(n) = nr("personality") {
        for &p in PERSONALITIES {
            rules.push(allow(n, vec![cond(0, CmpOp::Eq, p, ArgWidth::U32)]));
        }
        rules.push(eperm(n));
    }
    // First rule per syscall wins, so an explicit --seccomp-allow (pushed first) overrides the
    // conditional rules above.
    Ok(Filter {
        default_action: Action::Errno(ENOSYS),
        rules,
    })
}

/// What the sandbox's init may still do once it is set up: read its signalfd, forward signals
/// (kill), reap (wait4), report the workload's end over its channel (sendmsg, memory for the
/// message) and exit. Everything else fails with EPERM; memory is never made executable.
/// Installed by init after it forked the workload, so it restricts init alone (the workload
/// gets its own filter). A few dozen instructions: installing it costs a fraction of the
/// default filter's.
pub const INIT_ALLOWED: &[&str] = &[
    "read",
    "write",
    "sendmsg",
    "wait4",
    "kill",
    "exit",
    "exit_group",
    "rt_sigreturn",
    "rt_sigprocmask",
    "restart_syscall",
    "brk",
    "munmap",
    "mremap",
    "madvise",
    "close",
    "getpid",
    "gettid",
    "tgkill",
    "clock_gettime",
];

/// The filter of the sandbox's init ([`INIT_ALLOWED`], mmap without PROT_EXEC).
pub fn init_filter() -> Filter {
    let mut rules: Vec<Rule> = INIT_ALLOWED
        .iter()
        .filter_map(|s| syscalls::number(s))
        .map(|nr| Rule {
            nr,
            action: Action::Allow,
            conds: vec![],
        })
        .collect();
    if let Some(nr) = syscalls::number("mmap") {
        rules.push(Rule {
            nr,
            action: Action::Allow,
            conds: vec![cond(2, CmpOp::MaskedEq(PROT_EXEC), 0, ArgWidth::U32)],
        });
    }
    Filter {
        default_action: Action::Errno(EPERM),
        rules,
    }
}

const PROT_EXEC: u64 = 0x4;

#[cfg(test)]
mod tests {
    use super::super::bpf::{compile_for, interpret, AUDIT_ARCH_X86_64 as A};
    use super::*;

    fn verdict(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
        let p = compile_for(f, A).unwrap();
        interpret(&p, A, syscalls::number(name).unwrap(), args)
    }

    #[test]
    fn init_filter_allows_only_its_list() {
        let f = init_filter();
        for n in INIT_ALLOWED {
            assert_eq!(verdict(&f, n, [0; 6]), Action::Allow.ret_value(), "{n}");
        }
        for n in [
            "execve", "open", "openat", "socket", "ptrace", "mprotect", "clone", "fork",
        ] {
            assert_eq!(
                verdict(&f, n, [0; 6]),
                Action::Errno(EPERM).ret_value(),
                "{n}"
            );
        }
        let rw = 0x3; // PROT_READ | PROT_WRITE
        assert_eq!(
            verdict(&f, "mmap", [0, 4096, rw, 0x22, 0, 0]),
            Action::Allow.ret_value()
        );
        assert_eq!(
            verdict(&f, "mmap", [0, 4096, rw | PROT_EXEC, 0x22, 0, 0]),
            Action::Errno(EPERM).ret_value()
        );
        assert!(compile_for(&f, A).unwrap().len() < 128);
    }

    #[test]
    fn lists_are_known_and_disjoint() {
        for n in ALLOWED.iter().chain(DENIED) {
            assert!(syscalls::number(n).is_some(), "{n} not in the x86_64 table");
        }
        for n in ALLOWED {
            assert!(!DENIED.contains(n), "{n} both allowed and denied");
        }
    }

    #[test]
    fn default_verdicts() {
        let f = default_filter(&[]).unwrap();
        let allow = Action::Allow.ret_value();
        let eperm = Action::Errno(EPERM).ret_value();
        assert_eq!(verdict(&f, "read", [0; 6]), allow);
        assert_eq!(verdict(&f, "mount", [0; 6]), eperm);
        assert_eq!(verdict(&f, "unshare", [0; 6]), eperm);
        assert_eq!(
            verdict(&f, "clone3", [0; 6]),
            Action::Errno(ENOSYS).ret_value()
        );
        // fork-like clone is fine, namespace clone is not
        assert_eq!(verdict(&f, "clone", [0x01200011, 0, 0, 0, 0, 0]), allow);
        assert_eq!(
            verdict(&f, "clone", [0x10000000 | 17, 0, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(verdict(&f, "ioctl", [1, 0x5412, 0, 0, 0, 0]), eperm);
        assert_eq!(
            verdict(&f, "ioctl", [1, 0xdead_0000_5412, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(verdict(&f, "ioctl", [1, 0x5401, 0, 0, 0, 0]), allow);
        // TIOCSETD, TIOCCONS, TIOCVHANGUP, KDSETMODE, VT_ACTIVATE; high bits do not help.
        for req in [0x5423, 0x541D, 0x5437, 0x4B3A, 0x5606, 0x1_0000_5423] {
            assert_eq!(
                verdict(&f, "ioctl", [1, req, 0, 0, 0, 0]),
                eperm,
                "{req:#x}"
            );
        }
        // V4L2's 'V' requests carry size bits: not a VT_ request.
        assert_eq!(verdict(&f, "ioctl", [1, 0x8068_5600, 0, 0, 0, 0]), allow);
        // TIOCGWINSZ, TCGETS, FIONREAD still work.
        for req in [0x5413, 0x5401, 0x541B] {
            assert_eq!(
                verdict(&f, "ioctl", [1, req, 0, 0, 0, 0]),
                allow,
                "{req:#x}"
            );
        }
        let eafnosupport = Action::Errno(EAFNOSUPPORT).ret_value();
        // AF_PACKET, AF_VSOCK, AF_ALG, AF_BLUETOOTH, AF_RDS, AF_TIPC, AF_KCM, AF_XDP, AF_CAN
        for af in [17, 40, 38, 31, 21, 30, 41, 44, 29, 43, 42, 45] {
            assert_eq!(
                verdict(&f, "socket", [af, 1, 0, 0, 0, 0]),
                eafnosupport,
                "{af}"
            );
            assert_eq!(
                verdict(&f, "socket", [af | 1 << 32, 1, 0, 0, 0, 0]),
                eafnosupport
            );
        }
        assert_eq!(verdict(&f, "socket", [2, 1, 0, 0, 0, 0]), allow);
        assert_eq!(verdict(&f, "socket", [10, 0x80002, 0, 0, 0, 0]), allow);
        assert_eq!(verdict(&f, "socket", [1, 1, 0, 0, 0, 0]), allow);
        assert_eq!(verdict(&f, "socket", [16, 3, 0, 0, 0, 0]), allow);
        // netlink audit, uevents
        for proto in [9, 15, 12] {
            assert_eq!(
                verdict(&f, "socket", [16, 3, proto, 0, 0, 0]),
                Action::Errno(EPROTONOSUPPORT).ret_value()
            );
        }
        assert_eq!(
            verdict(&f, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
            allow
        );
        assert_eq!(
            verdict(&f, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
            eperm
        );
        // unlisted: ENOSYS
        assert_eq!(
            verdict(&f, "modify_ldt", [0; 6]),
            Action::Errno(ENOSYS).ret_value()
        );
    }

    #[test]
    fn extra_allow_overrides_deny() {
        let f = default_filter(&["ptrace".to_string()]).unwrap();
        assert_eq!(verdict(&f, "ptrace", [0; 6]), Action::Allow.ret_value());
        // The explicit opt-in for other address families (AF_VSOCK here).
        let f = default_filter(&["socket".to_string()]).unwrap();
        assert_eq!(
            verdict(&f, "socket", [40, 1, 0, 0, 0, 0]),
            Action::Allow.ret_value()
        );
        assert!(default_filter(&["nope".to_string()]).is_err());
    }
}
