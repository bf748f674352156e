//! OCI runtime-spec seccomp profiles (`linux.seccomp` of config.json, and the files Docker and
//! podman publish, which add `includes`/`excludes`, `archMap` and `comment`) compiled to the
//! filter IR.
//!
//! Semantics, as runc and crun give them with libseccomp:
//! - `defaultAction` for every syscall no rule matches; `SCMP_ACT_ERRNO` returns
//!   `defaultErrnoRet` (EPERM when absent), a rule's `errnoRet` likewise.
//! - A rule applies its `action` to each of its `names` when all its `args` hold (AND);
//!   `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`. Comparisons are on 64 bits.
//! - For one syscall, rules with argument conditions are tried before unconditional ones, in
//!   file order: the specific case wins over the general.
//! - Names of syscalls this architecture does not have (32-bit, ARM, s390 names in the
//!   published profiles) are skipped; names no architecture has are reported (agent mode goes
//!   on without them, strict modes refuse).
//! - Docker/podman `includes`/`excludes`: `caps` against the capabilities the workload keeps
//!   (none, in nucleus), `arches` against this one, `minKernel` against the running kernel.
//! - Only the native architecture is filtered (others are killed by the filter's arch check):
//!   `architectures` must include it when given.

use super::syscalls;
use super::{Action, ArgCond, ArgWidth, CmpOp, Filter, Rule};
use serde::Deserialize;
use std::collections::BTreeMap;

const EPERM: u16 = 1;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// podman's older spelling of `defaultErrnoRet`.
    #[serde(default)]
    pub default_errno: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub listener_path: Option<String>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyscallRule {
    #[serde(default)]
    pub names: Vec<String>,
    /// Docker's old single-name form.
    #[serde(default)]
    pub name: Option<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// podman: errno by name (e.g. "ENOSYS"), where errnoRet is absent.
    #[serde(default)]
    pub errno: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Option<Filter2>,
    #[serde(default)]
    pub excludes: Option<Filter2>,
}

/// Docker/podman rule conditions.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter2 {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// What the profile is compiled against.
#[derive(Debug, Clone)]
pub struct Target {
    /// libseccomp's name of this architecture, e.g. SCMP_ARCH_X86_64.
    pub arch: &'static str,
    /// Docker's short name, e.g. amd64.
    pub arch_short: &'static str,
    /// Running kernel (major, minor).
    pub kernel: (u32, u32),
    /// Capabilities the workload keeps (bit mask, as `policy::CapSets`).
    pub caps: u64,
}

impl Target {
    pub fn native(kernel: (u32, u32)) -> Target {
        Target {
            arch: if cfg!(target_arch = "aarch64") {
                "SCMP_ARCH_AARCH64"
            } else {
                "SCMP_ARCH_X86_64"
            },
            arch_short: if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "amd64"
            },
            kernel,
            caps: 0,
        }
    }
}

/// A compiled profile and what was left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub filter: Filter,
    /// Names no architecture nucleus knows has (typos, or newer than this build).
    pub unknown: Vec<String>,
    /// Names of other architectures, skipped.
    pub other_arch: usize,
    /// Rules left out by includes/excludes.
    pub excluded_rules: usize,
    /// seccomp(2) filter flags (SECCOMP_FILTER_FLAG_*) to install with.
    pub flags: u32,
}

/// Why a profile cannot be compiled; the message names the JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError(pub String);

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(path: &str, msg: impl std::fmt::Display) -> ProfileError {
    ProfileError(format!("{path}: {msg}"))
}

/// Errno names podman uses in `errno`/`defaultErrno`.
fn errno_by_name(n: &str) -> Option<u16> {
    Some(match n {
        "EPERM" => 1,
        "ENOENT" => 2,
        "EINTR" => 4,
        "EIO" => 5,
        "EBADF" => 9,
        "EAGAIN" => 11,
        "ENOMEM" => 12,
        "EACCES" => 13,
        "EFAULT" => 14,
        "EBUSY" => 16,
        "EEXIST" => 17,
        "EINVAL" => 22,
        "ENOSPC" => 28,
        "EROFS" => 30,
        "ENOSYS" => 38,
        "ENOTSUP" | "EOPNOTSUPP" => 95,
        _ => return None,
    })
}

fn errno(
    path: &str,
    ret: Option<u32>,
    name: Option<&str>,
    default: u16,
) -> Result<u16, ProfileError> {
    match (ret, name) {
        (Some(r), _) => u16::try_from(r)
            .ok()
            .filter(|e| *e <= 4095)
            .ok_or_else(|| err(path, format!("errno {r} is out of range (0-4095)"))),
        (None, Some(n)) => {
            errno_by_name(n).ok_or_else(|| err(path, format!("unknown errno name {n:?}")))
        }
        (None, None) => Ok(default),
    }
}

fn action(path: &str, a: &str, errno: u16) -> Result<Action, ProfileError> {
    Ok(match a {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(errno),
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        // Without a tracer attached the kernel fails the call with ENOSYS.
        "SCMP_ACT_TRACE" => Action::Trace(errno),
        // The calls go to a seccomp agent, the listener's holder (OCI listenerPath): checked
        // by `compile` (no listener, no notify).
        "SCMP_ACT_NOTIFY" => Action::UserNotif,
        other => {
            return Err(err(
                path,
                format!("unknown action {other:?} (SCMP_ACT_ALLOW, ERRNO, LOG, TRAP, TRACE, KILL, KILL_THREAD, KILL_PROCESS)"),
            ))
        }
    })
}

fn op(path: &str, a: &Arg) -> Result<(CmpOp, u64), ProfileError> {
    Ok(match a.op.as_str() {
        "SCMP_CMP_EQ" => (CmpOp::Eq, a.value),
        "SCMP_CMP_NE" => (CmpOp::Ne, a.value),
        "SCMP_CMP_LT" => (CmpOp::Lt, a.value),
        "SCMP_CMP_LE" => (CmpOp::Le, a.value),
        "SCMP_CMP_GT" => (CmpOp::Gt, a.value),
        "SCMP_CMP_GE" => (CmpOp::Ge, a.value),
        "SCMP_CMP_MASKED_EQ" => (CmpOp::MaskedEq(a.value), a.value_two),
        other => {
            return Err(err(
                path,
                format!("unknown op {other:?} (SCMP_CMP_EQ, NE, LT, LE, GT, GE, MASKED_EQ)"),
            ))
        }
    })
}

fn kernel_at_least(have: (u32, u32), want: &str) -> bool {
    let mut p = want.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
    let w = (p.next().unwrap_or(0), p.next().unwrap_or(0));
    have >= w
}

/// Whether a Docker/podman rule applies on this target.
fn applies(r: &SyscallRule, t: &Target) -> bool {
    let arch_ok = |a: &str| a == t.arch_short || a == t.arch;
    let has_cap =
        |c: &String| crate::policy::cap_number(c).is_some_and(|n| t.caps & (1u64 << n) != 0);
    if let Some(i) = &r.includes {
        if !i.arches.is_empty() && !i.arches.iter().any(|a| arch_ok(a)) {
            return false;
        }
        if !i.caps.is_empty() && !i.caps.iter().all(has_cap) {
            return false;
        }
        if let Some(k) = &i.min_kernel {
            if !kernel_at_least(t.kernel, k) {
                return false;
            }
        }
    }
    if let Some(e) = &r.excludes {
        if e.arches.iter().any(|a| arch_ok(a)) || e.caps.iter().any(has_cap) {
            return false;
        }
    }
    true
}

pub fn parse(json: &str) -> Result<Profile, ProfileError> {
    serde_json::from_str(json).map_err(|e| ProfileError(crate::config::single_line(&e.to_string())))
}

/// Compile a parsed profile for `t`.
pub fn compile(p: &Profile, t: &Target) -> Result<Compiled, ProfileError> {
    let default_errno = errno(
        "defaultErrnoRet",
        p.default_errno_ret,
        p.default_errno.as_deref(),
        EPERM,
    )?;
    let default_action = action("defaultAction", &p.default_action, default_errno)?;
    if !p.architectures.is_empty() && !p.architectures.iter().any(|a| a == t.arch) {
        return Err(err(
            "architectures",
            format!(
                "{:?} does not include this machine's {}",
                p.architectures, t.arch
            ),
        ));
    }
    // SCMP_ACT_NOTIFY only with a listener to hand its calls to (the kernel would fail them
    // with ENOSYS): the first place that asks names the error.
    let mut notify_at = (default_action == Action::UserNotif).then(|| "defaultAction".to_string());
    let mut flags = 0u32;
    for f in &p.flags {
        flags |= match f.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => super::FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_LOG" => super::FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => super::FLAG_SPEC_ALLOW,
            // Only meaningful with a notification listener (the kernel refuses it otherwise):
            // nucleus adds it when it serves notifications.
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => 0,
            _ => return Err(err("flags", format!("unknown flag {f:?}"))),
        };
    }
    let mut conditional: BTreeMap<usize, Vec<Rule>> = BTreeMap::new();
    let mut plain: Vec<Rule> = vec![];
    let mut unknown = vec![];
    let mut other_arch = 0;
    let mut excluded_rules = 0;
    for (i, r) in p.syscalls.iter().enumerate() {
        let path = format!("syscalls[{i}]");
        let e = errno(
            &format!("{path}.errnoRet"),
            r.errno_ret,
            r.errno.as_deref(),
            EPERM,
        )?;
        let act = action(&format!("{path}.action"), &r.action, e)?;
        if act == Action::UserNotif && notify_at.is_none() {
            notify_at = Some(format!("{path}.action"));
        }
        let mut conds = vec![];
        for (j, a) in r.args.iter().flatten().enumerate() {
            let apath = format!("{path}.args[{j}]");
            if a.index > 5 {
                return Err(err(
                    &apath,
                    format!("index {} is not an argument (0-5)", a.index),
                ));
            }
            let (o, value) = op(&apath, a)?;
            conds.push(ArgCond {
                index: a.index as u8,
                op: o,
                value,
                width: ArgWidth::U64,
            });
        }
        if !applies(r, t) {
            excluded_rules += 1;
            continue;
        }
        let names = r.names.iter().chain(r.name.iter());
        for n in names {
            match syscalls::number(n) {
                Some(nr) => {
                    let rule = Rule {
                        nr,
                        action: act,
                        conds: conds.clone(),
                    };
                    if conds.is_empty() {
                        plain.push(rule);
                    } else {
                        conditional.entry(i).or_default().push(rule);
                    }
                }
                None if syscalls::OTHER_ARCH.contains(&n.as_str()) => other_arch += 1,
                None => unknown.push(n.clone()),
            }
        }
    }
    if let (Some(at), None) = (&notify_at, &p.listener_path) {
        return Err(err(
            at,
            "SCMP_ACT_NOTIFY needs a seccomp agent: listenerPath names its socket",
        ));
    }
    let mut rules: Vec<Rule> = conditional.into_values().flatten().collect();
    rules.extend(plain);
    Ok(Compiled {
        filter: Filter {
            default_action,
            rules,
        },
        unknown,
        other_arch,
        excluded_rules,
        flags,
    })
}

/// A profile made from a trace, and what it means next to the default filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The OCI seccomp profile (JSON).
    pub profile: serde_json::Value,
    /// Traced syscalls the default filter refuses, refused here too (not in the profile).
    pub kept_refused: Vec<String>,
    /// Traced syscalls the default filter refuses that the profile allows, as asked.
    pub loosened: Vec<String>,
}

fn arg_json(c: &ArgCond) -> serde_json::Value {
    let (op, value, two) = match c.op {
        CmpOp::Eq => ("SCMP_CMP_EQ", c.value, 0),
        CmpOp::Ne => ("SCMP_CMP_NE", c.value, 0),
        CmpOp::Lt => ("SCMP_CMP_LT", c.value, 0),
        CmpOp::Le => ("SCMP_CMP_LE", c.value, 0),
        CmpOp::Gt => ("SCMP_CMP_GT", c.value, 0),
        CmpOp::Ge => ("SCMP_CMP_GE", c.value, 0),
        CmpOp::MaskedEq(m) => ("SCMP_CMP_MASKED_EQ", m, c.value),
    };
    serde_json::json!({ "index": c.index, "value": value, "valueTwo": two, "op": op })
}

fn errno_rule(name: &str, errno: u16, args: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno, "args": args,
    })
}

/// The default filter's rules for one syscall as profile entries, or None when the default
/// refuses it. Argument rules are kept: "allow when every condition holds" as it is; "allow
/// when the argument is none of these" (ioctl's TIOCSTI, TIOCLINUX) as one refusal per value
/// (compared on the argument's width, so high bits cannot slip past) and an allow. A fallback
/// refusal after conditional allows is left to the profile's default action (EPERM): under
/// libseccomp's precedence an unconditional refusal would override the allows.
fn default_entries(name: &str, rules: &[&Rule]) -> Option<Vec<serde_json::Value>> {
    let allows = rules.iter().any(|r| r.action == Action::Allow);
    if !allows {
        // Refused (EPERM), or a plain errno the default gives (clone3: ENOSYS, so libc falls
        // back to clone, whose flags are checked).
        return match rules {
            [r] if r.conds.is_empty() => match r.action {
                Action::Errno(e) if e != EPERM => Some(vec![errno_rule(name, e, vec![])]),
                _ => None,
            },
            _ => None,
        };
    }
    let mut out = vec![];
    for r in rules {
        match r.action {
            Action::Allow if r.conds.is_empty() => {
                out.push(serde_json::json!({ "names": [name], "action": "SCMP_ACT_ALLOW" }));
            }
            Action::Allow if r.conds.iter().all(|c| c.op == CmpOp::Ne) => {
                for c in &r.conds {
                    let mask = match c.width {
                        ArgWidth::U32 => 0xffff_ffff,
                        ArgWidth::U64 => u64::MAX,
                    };
                    let eq = ArgCond {
                        op: CmpOp::MaskedEq(mask),
                        ..*c
                    };
                    out.push(errno_rule(name, EPERM, vec![arg_json(&eq)]));
                }
                out.push(serde_json::json!({ "names": [name], "action": "SCMP_ACT_ALLOW" }));
            }
            Action::Allow if r.conds.iter().all(|c| c.op != CmpOp::Ne) => {
                let args: Vec<_> = r.conds.iter().map(arg_json).collect();
                out.push(serde_json::json!({
                    "names": [name], "action": "SCMP_ACT_ALLOW", "args": args,
                }));
            }
            Action::Errno(_) if r.conds.is_empty() => {}
            Action::Errno(e) if r.conds.iter().all(|c| c.op != CmpOp::Ne) => {
                out.push(errno_rule(name, e, r.conds.iter().map(arg_json).collect()));
            }
            // A shape this conversion does not know: refused rather than loosened.
            _ => return None,
        }
    }
    Some(out)
}

/// A minimal profile allowing the syscalls of a trace (`names`) on `arch`, with the default
/// filter's argument rules and refusals kept: a traced syscall the default filter refuses
/// (namespace creation by `unshare`, say) stays refused unless it is in `allow_denied`, and is
/// reported either way. Everything else fails with EPERM.
pub fn from_trace(arch: &str, names: &[String], allow_denied: &[String]) -> Generated {
    let clone = "clone".to_string();
    let mut names: Vec<&String> = names.iter().collect();
    // clone3 gets ENOSYS here as under the default filter, so libc falls back to clone (with
    // its flags checked): a trace that only saw clone3 needs clone too.
    if names.iter().any(|n| *n == "clone3") {
        names.push(&clone);
    }
    names.sort();
    names.dedup();
    let default = super::default::default_filter(&[]).unwrap_or(Filter {
        default_action: Action::Errno(EPERM),
        rules: vec![],
    });
    let mut plain: Vec<&str> = vec![];
    let mut entries: Vec<serde_json::Value> = vec![];
    let (mut kept_refused, mut loosened) = (vec![], vec![]);
    for n in names {
        let Some(nr) = syscalls::number(n) else {
            continue;
        };
        let rules: Vec<&Rule> = default.rules.iter().filter(|r| r.nr == nr).collect();
        match default_entries(n, &rules) {
            Some(e)
                if e.len() == 1
                    && e[0].get("args").is_none()
                    && e[0]["action"] == "SCMP_ACT_ALLOW" =>
            {
                plain.push(n)
            }
            Some(e) => entries.extend(e),
            None if allow_denied.contains(n) => {
                loosened.push(n.clone());
                entries.push(serde_json::json!({
                    "names": [n], "action": "SCMP_ACT_ALLOW",
                    "comment": "refused by nucleus's default filter; allowed by --allow-denied",
                }));
            }
            None => kept_refused.push(n.clone()),
        }
    }
    let mut syscalls = vec![serde_json::json!({ "names": plain, "action": "SCMP_ACT_ALLOW" })];
    syscalls.extend(entries);
    Generated {
        profile: serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": EPERM,
            "architectures": [arch],
            "syscalls": syscalls,
        }),
        kept_refused,
        loosened,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::seccomp::bpf::{compile_for, interpret, native_arch};

    fn verdict(c: &Compiled, name: &str, args: [u64; 6]) -> u32 {
        let prog = compile_for(&c.filter, native_arch()).unwrap();
        interpret(&prog, native_arch(), syscalls::number(name).unwrap(), args)
    }

    fn t() -> Target {
        Target::native((6, 1))
    }

    /// A trace of `unshare -Ur id` holds unshare and namespace clones: the generated profile
    /// still refuses them (unless asked, and then says so), and keeps the default filter's
    /// argument rules for ioctl, socket, clone and personality.
    #[test]
    fn generated_profiles_keep_the_default_refusals_and_argument_rules() {
        let names: Vec<String> = [
            "read",
            "write",
            "unshare",
            "ioctl",
            "socket",
            "clone",
            "clone3",
            "personality",
            "mount",
            "execve",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = from_trace("SCMP_ARCH_X86_64", &names, &[]);
        assert_eq!(g.kept_refused, ["mount", "unshare"]);
        assert!(g.loosened.is_empty());
        let c = compile(&parse(&g.profile.to_string()).unwrap(), &t()).unwrap();
        let allow = Action::Allow.ret_value();
        let eperm = Action::Errno(EPERM).ret_value();
        let z = [0; 6];
        assert_eq!(verdict(&c, "read", z), allow);
        assert_eq!(verdict(&c, "execve", z), allow);
        assert_eq!(verdict(&c, "unshare", [0x1000_0000, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(verdict(&c, "mount", z), eperm);
        assert_eq!(verdict(&c, "ioctl", [0, 0x5412, 0, 0, 0, 0]), eperm);
        assert_eq!(
            verdict(&c, "ioctl", [0, 0xdead_0000_5412, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(verdict(&c, "ioctl", [0, 0x541C, 0, 0, 0, 0]), eperm);
        assert_eq!(verdict(&c, "ioctl", [0, 0x5401, 0, 0, 0, 0]), allow);
        assert_eq!(verdict(&c, "socket", [2, 1, 0, 0, 0, 0]), allow);
        assert_eq!(verdict(&c, "socket", [16, 3, 0, 0, 0, 0]), allow);
        assert_ne!(verdict(&c, "socket", [40, 1, 0, 0, 0, 0]), allow);
        assert_ne!(verdict(&c, "socket", [16, 3, 9, 0, 0, 0]), allow);
        assert_eq!(verdict(&c, "clone", [0x01200011, 0, 0, 0, 0, 0]), allow);
        assert_ne!(verdict(&c, "clone", [0x1000_0011, 0, 0, 0, 0, 0]), allow);
        assert_eq!(verdict(&c, "clone3", z), Action::Errno(38).ret_value());
        assert_eq!(verdict(&c, "personality", [8, 0, 0, 0, 0, 0]), allow);
        assert_ne!(
            verdict(&c, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
            allow
        );
        // Asked for: allowed, and said.
        let g = from_trace("SCMP_ARCH_X86_64", &names, &["unshare".to_string()]);
        assert_eq!(g.loosened, ["unshare"]);
        assert_eq!(g.kept_refused, ["mount"]);
        let c = compile(&parse(&g.profile.to_string()).unwrap(), &t()).unwrap();
        assert_eq!(verdict(&c, "unshare", [0x1000_0000, 0, 0, 0, 0, 0]), allow);
    }

    #[test]
    fn actions_errnos_and_args() {
        let p = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[
              {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
              {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":42},
              {"names":["getpid"],"action":"SCMP_ACT_KILL_PROCESS"},
              {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
              {"names":["personality"],"action":"SCMP_ACT_LOG"},
              {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[
                 {"index":0,"value":2,"op":"SCMP_CMP_EQ"},{"index":1,"value":15,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]},
              {"names":["kill"],"action":"SCMP_ACT_TRAP","args":[{"index":1,"value":9,"op":"SCMP_CMP_GE"}]},
              {"names":["no_such_call","socketcall"],"action":"SCMP_ACT_ALLOW"}
            ]}"#,
        )
        .unwrap();
        let c = compile(&p, &t()).unwrap();
        assert_eq!(c.unknown, ["no_such_call"]);
        assert_eq!(c.other_arch, 1);
        let z = [0; 6];
        assert_eq!(verdict(&c, "read", z), Action::Allow.ret_value());
        assert_eq!(verdict(&c, "mkdir", z), Action::Errno(42).ret_value());
        assert_eq!(verdict(&c, "open", z), Action::Errno(38).ret_value());
        assert_eq!(verdict(&c, "getpid", z), Action::KillProcess.ret_value());
        // Conditional before unconditional for one syscall.
        assert_eq!(
            verdict(&c, "personality", [8, 0, 0, 0, 0, 0]),
            Action::Allow.ret_value()
        );
        assert_eq!(
            verdict(&c, "personality", [9, 0, 0, 0, 0, 0]),
            Action::Log.ret_value()
        );
        // Several args: all must hold; masked_eq is (arg & value) == valueTwo.
        assert_eq!(
            verdict(&c, "socket", [2, 0x11, 0, 0, 0, 0]),
            Action::Allow.ret_value()
        );
        assert_eq!(
            verdict(&c, "socket", [2, 0x12, 0, 0, 0, 0]),
            Action::Errno(38).ret_value()
        );
        assert_eq!(
            verdict(&c, "socket", [10, 0x11, 0, 0, 0, 0]),
            Action::Errno(38).ret_value()
        );
        assert_eq!(
            verdict(&c, "kill", [0, 9, 0, 0, 0, 0]),
            Action::Trap.ret_value()
        );
        assert_eq!(
            verdict(&c, "kill", [0, 8, 0, 0, 0, 0]),
            Action::Errno(38).ret_value()
        );
        // 64-bit comparison: a high bit is not ignored.
        assert_eq!(
            verdict(&c, "personality", [8 | (1 << 32), 0, 0, 0, 0, 0]),
            Action::Log.ret_value()
        );
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let bad = [
            (r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "defaultAction"),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
                "syscalls[0].errnoRet",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
                "syscalls[0].args[0]",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#,
                "syscalls[0].args[0]",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_PPC64"]}"#,
                "architectures",
            ),
            (r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#, "defaultAction"),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_X"]}"#,
                "flags",
            ),
        ];
        for (j, want) in bad {
            let e = compile(&parse(j).unwrap(), &t()).unwrap_err();
            assert!(e.0.starts_with(want), "{j}: {e}");
        }
        assert!(parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","bogus":1}"#)
            .unwrap_err()
            .0
            .contains("bogus"));
    }

    #[test]
    fn docker_and_podman_defaults_compile() {
        for f in ["docker-default.json", "podman-containers-common.json"] {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("testdata/seccomp")
                    .join(f),
            )
            .unwrap();
            let c = compile(&parse(&text).unwrap(), &t()).unwrap();
            assert!(c.unknown.is_empty(), "{f}: {:?}", c.unknown);
            assert!(c.filter.rules.len() > 250, "{f}: {}", c.filter.rules.len());
            // Without CAP_SYS_ADMIN: bpf is refused (Docker's refuses mount too; podman's
            // leaves that to capabilities), read is allowed.
            let z = [0; 6];
            assert_eq!(verdict(&c, "read", z), Action::Allow.ret_value(), "{f}");
            assert_eq!(verdict(&c, "bpf", z), Action::Errno(1).ret_value(), "{f}");
            if f.starts_with("docker") {
                assert_eq!(verdict(&c, "mount", z), Action::Errno(1).ret_value());
            }
            // clone without namespace flags is allowed; Docker's refuses CLONE_NEWUSER
            // (podman's allows namespaces, for nested rootless containers).
            assert_eq!(
                verdict(&c, "clone", [0x11, 0, 0, 0, 0, 0]),
                Action::Allow.ret_value(),
                "{f}"
            );
            if f.starts_with("docker") {
                assert_ne!(
                    verdict(&c, "clone", [0x1000_0000, 0, 0, 0, 0, 0]),
                    Action::Allow.ret_value()
                );
            }
        }
    }
}
