//! Seccomp policy: a filter IR (per-rule actions, argument conditions), a compiler to classic
//! BPF, the default allowlist, and the syscall name table.
//!
//! Why not seccompiler: it gives one filter a single match action and a single mismatch action,
//! while OCI profiles (and our default: EPERM for the escape surface, ENOSYS for the unknown)
//! need an action per rule. The compiler here is small, pure and tested with an interpreter.

pub mod bpf;
pub mod default;
pub mod precompiled;
pub mod profile;
pub mod syscalls;

pub use bpf::{compile, SockFilter};

use serde::{Deserialize, Serialize};

/// seccomp(2) SECCOMP_SET_MODE_FILTER flags a profile may ask for.
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 1 << 1;
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// What the kernel does when a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "errno")]
pub enum Action {
    Allow,
    Errno(u16),
    Log,
    Trap,
    /// Notify a ptrace tracer; without one the call fails with ENOSYS. The value is passed
    /// to the tracer.
    Trace(u16),
    KillThread,
    KillProcess,
    UserNotif,
}

impl Action {
    pub fn ret_value(self) -> u32 {
        match self {
            Action::Allow => 0x7fff_0000,
            Action::Errno(e) => 0x0005_0000 | u32::from(e),
            Action::Log => 0x7ffc_0000,
            Action::Trap => 0x0003_0000,
            Action::Trace(d) => 0x7ff0_0000 | u32::from(d),
            Action::KillThread => 0x0000_0000,
            Action::KillProcess => 0x8000_0000,
            Action::UserNotif => 0x7fc0_0000,
        }
    }
}

/// Comparison of one syscall argument with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`
    MaskedEq(u64),
}

/// Width of the compared argument: the kernel reads some arguments as 32-bit `int`s (ioctl
/// request, socket family), so only the low half may be compared or a caller could set high
/// bits to slip past an equality check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgWidth {
    U32,
    U64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgCond {
    pub index: u8,
    pub op: CmpOp,
    pub value: u64,
    pub width: ArgWidth,
}

/// A syscall number with an action; all conditions must hold (AND).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub nr: u32,
    pub action: Action,
    pub conds: Vec<ArgCond>,
}

/// The filter with every ERRNO verdict (default or rule) turned into a user notification,
/// so the runtime can name the syscall before failing it with that errno
/// (`--seccomp-log-denied`).
pub fn notify_denials(f: &Filter) -> Filter {
    let swap = |a: Action| match a {
        Action::Errno(_) => Action::UserNotif,
        other => other,
    };
    Filter {
        default_action: swap(f.default_action),
        rules: f
            .rules
            .iter()
            .map(|r| Rule {
                nr: r.nr,
                action: swap(r.action),
                conds: r.conds.clone(),
            })
            .collect(),
    }
}

/// Every syscall to the runtime, which records it and lets it run (`nucleus seccomp trace`).
pub fn trace_all() -> Filter {
    Filter {
        default_action: Action::UserNotif,
        rules: vec![],
    }
}

/// The whole filter: native arch only; any other arch (i386 via int 0x80, x32) is killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub default_action: Action,
    /// Rules in priority order: for one syscall the first rule whose conditions hold wins.
    pub rules: Vec<Rule>,
}
