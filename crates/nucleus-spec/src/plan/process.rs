//! The workload process: argv, environment, working directory, identity, limits of the
//! process itself.

use super::{p, Identity, PlanError};
use crate::config::{RunConfig, Ulimit};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The workload's directory: `--workdir`, else the workspace, else its home.
pub(super) fn cwd(
    cfg: &RunConfig,
    who: &Identity,
    workspace: Option<PathBuf>,
) -> Result<PathBuf, PlanError> {
    let Some(w) = &cfg.workdir else {
        return Ok(workspace.unwrap_or_else(|| who.home.clone()));
    };
    Ok(
        crate::config::container_path("--workdir", &w.to_string_lossy()).or_else(|e| {
            if w.as_os_str() == "/" {
                Ok(p("/"))
            } else {
                Err(e)
            }
        })?,
    )
}

/// The environment: nothing from the host unless asked for.
pub(super) fn env(cfg: &RunConfig, who: &Identity) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), who.home.to_string_lossy().into_owned()),
        ("HOSTNAME".into(), who.hostname.clone()),
        ("USER".into(), who.user.name.clone()),
    ];
    // A terminal needs a type (as docker -t and podman -t set it).
    if cfg.tty {
        env.push(("TERM".into(), "xterm".into()));
    }
    for e in &cfg.env {
        env.retain(|(k, _)| k != &e.key);
        env.push((e.key.clone(), e.value.clone()));
    }
    if cfg.readiness == crate::config::Readiness::Notify {
        env.retain(|(k, _)| k != "NOTIFY_SOCKET");
        env.push((
            "NOTIFY_SOCKET".into(),
            crate::config::NOTIFY_SOCKET_IN_SANDBOX.into(),
        ));
    }
    env
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPlan {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub rlimits: Vec<Ulimit>,
    /// `--caps-policy`: capabilities kept (None: all dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<crate::policy::CapSets>,
    /// `--cpus N`: the sandbox runs on this many of the CPUs it may use (N rounded up), so
    /// `nproc`, `os.cpu_count()`-style counts and runtimes that size their pools by the CPUs
    /// they can run on match the quota. None: every CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<u32>,
    /// The workload's umask (None: the caller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    /// no_new_privs before exec (always for nucleus's own sandboxes; as an OCI bundle says).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub no_new_privs: bool,
    /// Written to /proc/self/oom_score_adj before exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The execution domain set with personality(2) before exec (OCI `linux.personality`:
    /// 0 PER_LINUX, 8 PER_LINUX32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<u32>,
    /// Descriptors 3 .. 3+N the caller passed that reach the program open (OCI
    /// `--preserve-fds N`); every other one past stdio is closed at exec.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub preserve_fds: u32,
    /// OCI process settings: I/O priority, scheduling policy, CPU affinity, terminal size.
    #[serde(default, skip_serializing_if = "ProcessTuning::is_empty")]
    pub tuning: ProcessTuning,
}

/// An OCI process's I/O priority, scheduling policy, CPU affinity and terminal size
/// (`process.ioPriority`, `scheduler`, `execCPUAffinity`, `consoleSize`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTuning {
    /// ioprio_set(2)'s value: class << 13 | level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<u32>,
    /// sched_setattr(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedAttr>,
    /// The CPUs an exec'd process runs on while it joins the container
    /// (`execCPUAffinity.initial`: set before it enters the container's cgroup). Not for
    /// the container's own process (runtime-spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_initial: Option<Vec<usize>>,
    /// The CPUs an exec'd process's program runs on (`execCPUAffinity.final`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_final: Option<Vec<usize>>,
    /// The terminal's rows and columns (`consoleSize`), before the program starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<(u16, u16)>,
    /// The NUMA memory policy (`linux.memoryPolicy`), set with set_mempolicy(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<MemPolicy>,
}

/// set_mempolicy(2)'s arguments: the mode with its flags, and the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemPolicy {
    pub mode: u32,
    pub nodes: Vec<usize>,
}

impl ProcessTuning {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// sched_setattr(2)'s attributes (the kernel's `struct sched_attr` fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedAttr {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// The largest CPU number an affinity mask here holds (the libc's cpu_set_t: 1024 CPUs).
pub const MAX_CPU: usize = 1023;

/// A CPU list like `0-3,7` (cpuset's form), CPUs 0 to [`MAX_CPU`]. Err: not one.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("{s:?}: a CPU list like 0-3,7");
    let mut cpus = Vec::new();
    for part in s.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a > b || b > MAX_CPU {
            return Err(format!(
                "{s:?}: a CPU list like 0-3,7 (CPUs 0 to {MAX_CPU})"
            ));
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `count` of the `allowed` CPUs, a window starting at a place `seed` picks (sandboxes with
/// `--cpus 1` spread over the CPUs instead of all sharing the first). All of them when
/// `count` is not fewer.
pub fn pick_cpus(allowed: &[usize], count: u32, seed: u64) -> Vec<usize> {
    let n = allowed.len();
    let count = count as usize;
    if count == 0 || count >= n {
        return allowed.to_vec();
    }
    let start = (seed % n as u64) as usize;
    let mut v: Vec<usize> = (0..count).map(|i| allowed[(start + i) % n]).collect();
    v.sort_unstable();
    v
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a workload past its `--timeout` gets between SIGTERM and SIGKILL (as `docker stop`).
pub const TIMEOUT_GRACE_MS: u64 = 10_000;
