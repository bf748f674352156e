//! `Limits`: the parsed resource flags, and the files a v2 or v1 cgroup gets for them.

use super::{CPU_PERIOD_US, DEFAULT_PIDS, MIN_MEMORY};

/// The kernel's bounds on a CFS period, and its smallest quota (µs).
const MIN_CPU_QUOTA_US: u64 = 1_000;
const MAX_CPU_PERIOD_US: u64 = 1_000_000;
use crate::config::{parse_size, ConfigError};
use serde::{Deserialize, Serialize};

/// `--memory-swap`: memory plus swap together (Docker's meaning), or no swap limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapLimit {
    Total(u64),
    Unlimited,
}

impl SwapLimit {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        match s {
            "-1" | "unlimited" | "max" => Ok(Self::Unlimited),
            _ => parse_size("--memory-swap", s).map(Self::Total),
        }
    }
}

/// `--io-limit "MAJ:MIN rbps=N wbps=N riops=N wiops=N"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoLimit {
    pub major: u32,
    pub minor: u32,
    pub rbps: Option<u64>,
    pub wbps: Option<u64>,
    pub riops: Option<u64>,
    pub wiops: Option<u64>,
}

impl IoLimit {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let flag = "--io-limit";
        let err = |m: String| ConfigError::new(flag, m);
        let mut parts = s.split_whitespace();
        let dev = parts.next().ok_or_else(|| {
            err("empty; expected \"MAJ:MIN rbps=N wbps=N riops=N wiops=N\"".into())
        })?;
        let (maj, min) = dev
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(|| {
                err(format!(
                    "{dev:?} is not a block device number MAJ:MIN (see `lsblk -o NAME,MAJ:MIN`)"
                ))
            })?;
        let mut l = IoLimit {
            major: maj,
            minor: min,
            rbps: None,
            wbps: None,
            riops: None,
            wiops: None,
        };
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| err(format!("{kv:?}: expected KEY=VALUE")))?;
            let n = match k {
                "rbps" | "wbps" => parse_size(flag, v)?,
                "riops" | "wiops" => v
                    .parse::<u64>()
                    .map_err(|_| err(format!("{k}={v:?}: not a number")))?,
                _ => {
                    return Err(err(format!(
                        "unknown key {k:?}; allowed: rbps, wbps, riops, wiops"
                    )))
                }
            };
            if n == 0 {
                return Err(err(format!(
                    "{k}=0 would stop all I/O; give a positive rate"
                )));
            }
            let slot = match k {
                "rbps" => &mut l.rbps,
                "wbps" => &mut l.wbps,
                "riops" => &mut l.riops,
                _ => &mut l.wiops,
            };
            *slot = Some(n);
        }
        if l.rbps.is_none() && l.wbps.is_none() && l.riops.is_none() && l.wiops.is_none() {
            return Err(err(format!(
                "{s:?} sets no limit; give at least one of rbps, wbps, riops, wiops"
            )));
        }
        Ok(l)
    }

    fn dev(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

/// Parse `--cpus` (e.g. `1.5`, `0.25`) into thousandths of a CPU.
pub fn parse_cpus(s: &str) -> Result<u64, ConfigError> {
    let err = || {
        ConfigError::new(
            "--cpus",
            format!("{s:?} is not a CPU count (e.g. 0.5, 1, 1.5; at least 0.01)"),
        )
    };
    let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 3
    {
        return Err(err());
    }
    let i: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| err())?
    };
    let f: u64 = format!("{frac:0<3}").parse().map_err(|_| err())?;
    let milli = i.checked_mul(1000).and_then(|x| x.checked_add(f));
    match milli {
        Some(m) if m >= 10 => Ok(m),
        _ => Err(err()),
    }
}

/// `--cpu-weight`: 1..=10000 (cgroup v2 scale; 100 is the default share).
pub fn parse_cpu_weight(s: &str) -> Result<u64, ConfigError> {
    match s.trim().parse::<u64>() {
        Ok(w) if (1..=10_000).contains(&w) => Ok(w),
        _ => Err(ConfigError::new(
            "--cpu-weight",
            format!("{s:?}: must be an integer from 1 to 10000 (default share 100)"),
        )),
    }
}

/// `--pids`: a positive count, or `max`/`unlimited`/`-1` for no limit.
pub fn parse_pids(s: &str) -> Result<Option<u64>, ConfigError> {
    match s.trim() {
        "max" | "unlimited" | "-1" => Ok(None),
        t => match t.parse::<u64>() {
            Ok(n) if n >= 2 => Ok(Some(n)),
            _ => Err(ConfigError::new(
                "--pids",
                format!("{s:?}: must be a count of at least 2 (init and the workload) or max"),
            )),
        },
    }
}

/// Every limit the user asked for, independent of the cgroup version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<u64>,
    pub memory_swap: Option<SwapLimit>,
    /// Thousandths of a CPU.
    pub cpus_milli: Option<u64>,
    /// The CFS period `cpus_milli` is enforced over, in µs (None: 100000, the kernel's
    /// default). OCI bundles and runc's `update --cpu-period` set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period_us: Option<u64>,
    pub cpu_weight: Option<u64>,
    /// None = unlimited.
    pub pids: Option<u64>,
    pub io: Vec<IoLimit>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: None,
            memory_swap: None,
            cpus_milli: None,
            cpu_period_us: None,
            cpu_weight: None,
            pids: Some(DEFAULT_PIDS),
            io: Vec::new(),
        }
    }
}

/// Human form of a size for messages (`256M`).
pub fn human_bytes(n: u64) -> String {
    for (unit, shift) in [("G", 30), ("M", 20), ("K", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// cgroup v1 `cpu.shares` for a v2-scale weight, as systemd maps them, so the defaults meet
/// (weight 100 = 1024 shares).
pub fn weight_to_shares(w: u64) -> u64 {
    (w * 1024 / 100).clamp(2, 262_144)
}

impl Limits {
    /// Check the limits against each other and the host (`cpus` = online CPUs).
    pub fn validate(&self, host_cpus: u64) -> Result<(), ConfigError> {
        if let Some(m) = self.memory {
            if m < MIN_MEMORY {
                return Err(ConfigError::new(
                    "--memory",
                    format!(
                        "{} is too small; at least {}",
                        human_bytes(m),
                        human_bytes(MIN_MEMORY)
                    ),
                ));
            }
        }
        match (self.memory, self.memory_swap) {
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "--memory-swap",
                    "needs --memory (it is memory plus swap together)",
                ))
            }
            (Some(m), Some(SwapLimit::Total(t))) if t < m => {
                return Err(ConfigError::new(
                    "--memory-swap",
                    format!(
                        "{} is below --memory {}; it counts memory plus swap, so it must be at least as large",
                        human_bytes(t),
                        human_bytes(m)
                    ),
                ))
            }
            _ => {}
        }
        if let Some(p) = self.cpu_period_us {
            if !(MIN_CPU_QUOTA_US..=MAX_CPU_PERIOD_US).contains(&p) {
                return Err(ConfigError::new(
                    "--cpu-period",
                    format!("{p} µs: the kernel takes {MIN_CPU_QUOTA_US} to {MAX_CPU_PERIOD_US}"),
                ));
            }
        }
        if let Some(c) = self.cpus_milli {
            if host_cpus > 0 && c > host_cpus * 1000 {
                return Err(ConfigError::new(
                    "--cpus",
                    format!(
                        "{}.{:03} is more than the {host_cpus} CPUs available (0.01 to {host_cpus})",
                        c / 1000,
                        c % 1000
                    ),
                ));
            }
        }
        Ok(())
    }

    fn period(&self) -> u64 {
        self.cpu_period_us.unwrap_or(CPU_PERIOD_US)
    }

    /// The CFS quota in µs per period for `milli` thousandths of a CPU (at least the
    /// kernel's minimum of 1 ms).
    fn quota(&self, milli: u64) -> u64 {
        (milli * self.period() / 1000).max(MIN_CPU_QUOTA_US)
    }

    /// Files for cgroup v2, written in the sandbox's cgroup.
    pub fn v2_writes(&self) -> Vec<(String, String)> {
        let mut w: Vec<(String, String)> = Vec::new();
        let mut put = |f: &str, v: String| w.push((f.to_string(), v));
        if let Some(m) = self.memory {
            put("memory.max", m.to_string());
            match self.memory_swap {
                Some(SwapLimit::Total(t)) => put("memory.swap.max", (t - m).to_string()),
                Some(SwapLimit::Unlimited) => put("memory.swap.max", "max".into()),
                // Docker's default (as much swap as memory) is set by `build` as optional.
                None => {}
            }
        }
        if let Some(c) = self.cpus_milli {
            let p = self.period();
            put("cpu.max", format!("{} {p}", self.quota(c)));
        }
        if let Some(wt) = self.cpu_weight {
            put("cpu.weight", wt.to_string());
        }
        put(
            "pids.max",
            self.pids.map_or("max".to_string(), |n| n.to_string()),
        );
        for l in &self.io {
            let mut s = l.dev();
            for (k, v) in [
                ("rbps", l.rbps),
                ("wbps", l.wbps),
                ("riops", l.riops),
                ("wiops", l.wiops),
            ] {
                if let Some(v) = v {
                    s.push_str(&format!(" {k}={v}"));
                }
            }
            put("io.max", s);
        }
        w
    }

    /// Files for cgroup v1, as (controller, file, value). Memory+swap is written after the
    /// memory limit (the kernel requires memsw ≥ memory at every step).
    pub fn v1_writes(&self, has_memsw: bool) -> Vec<(&'static str, String, String)> {
        let mut w: Vec<(&'static str, String, String)> = Vec::new();
        let mut put = |c: &'static str, f: &str, v: String| w.push((c, f.to_string(), v));
        if let Some(m) = self.memory {
            put("memory", "memory.limit_in_bytes", m.to_string());
            if has_memsw {
                let total = match self.memory_swap {
                    Some(SwapLimit::Total(t)) => t.to_string(),
                    Some(SwapLimit::Unlimited) => "-1".into(),
                    None => (m.saturating_mul(2)).to_string(),
                };
                put("memory", "memory.memsw.limit_in_bytes", total);
            }
        }
        if let Some(c) = self.cpus_milli {
            put("cpu", "cpu.cfs_period_us", self.period().to_string());
            put("cpu", "cpu.cfs_quota_us", self.quota(c).to_string());
        }
        if let Some(wt) = self.cpu_weight {
            put("cpu", "cpu.shares", weight_to_shares(wt).to_string());
        }
        put(
            "pids",
            "pids.max",
            self.pids.map_or("max".to_string(), |n| n.to_string()),
        );
        for l in &self.io {
            for (f, v) in [
                ("blkio.throttle.read_bps_device", l.rbps),
                ("blkio.throttle.write_bps_device", l.wbps),
                ("blkio.throttle.read_iops_device", l.riops),
                ("blkio.throttle.write_iops_device", l.wiops),
            ] {
                if let Some(v) = v {
                    put("blkio", f, format!("{} {v}", l.dev()));
                }
            }
        }
        w
    }

    /// Controllers each limit needs, with the flag that asked for it.
    pub(super) fn needs(&self) -> Vec<(&'static str, &'static str)> {
        // (No pids limit, as an OCI bundle may ask: no pids controller needed.)
        let mut n = Vec::new();
        if self.pids.is_some() {
            n.push(("pids", "--pids"));
        }
        if self.memory.is_some() {
            n.push(("memory", "--memory"));
        }
        if self.cpus_milli.is_some() {
            n.push(("cpu", "--cpus"));
        }
        if self.cpu_weight.is_some() {
            n.push(("cpu", "--cpu-weight"));
        }
        if !self.io.is_empty() {
            n.push(("io", "--io-limit"));
        }
        n
    }
}

/// The flag that sets a cgroup file (v1 or v2): for messages naming it, and for `update`,
/// which writes only the files of the flags it is given.
pub fn flag_of_file(file: &str) -> &'static str {
    match file {
        "memory.swap.max" | "memory.memsw.limit_in_bytes" => "--memory-swap",
        "cpu.weight" | "cpu.shares" => "--cpu-weight",
        "io.max" => "--io-limit",
        f if f.starts_with("blkio.") => "--io-limit",
        f if f.starts_with("memory.") => "--memory",
        f if f.starts_with("pids.") => "--pids",
        _ => "--cpus",
    }
}
