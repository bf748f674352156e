//! The workload process: argv, environment, identity, limits of the process itself.

use crate::config::Ulimit;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
