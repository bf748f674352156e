//! Resource limits: one version-agnostic [`Limits`], compiled to the files a cgroup v2 or v1
//! driver writes. Which driver runs is decided from [`CgroupHost`] (probed), never a flag.

use crate::config::{parse_size, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// CFS period used for `--cpus` (the kernel's and Docker's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Default `--pids`.
pub const DEFAULT_PIDS: u64 = 512;
/// The smallest `--memory`: init plus a shell need a few MiB; less fails at exec, not clearly.
pub const MIN_MEMORY: u64 = 4 << 20;

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
            cpu_weight: None,
            pids: Some(DEFAULT_PIDS),
            io: Vec::new(),
        }
    }
}

/// The cgroup layout of the host, as probed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CgroupHost {
    /// cgroup2 mount point, if any.
    pub v2_mount: Option<PathBuf>,
    /// Controllers usable in the v2 hierarchy (`cgroup.controllers` of the caller's cgroup).
    pub v2_controllers: Vec<String>,
    /// The caller's cgroup in the v2 hierarchy (`0::PATH` of /proc/self/cgroup).
    pub v2_own: Option<String>,
    /// v1 hierarchies: controller name → (mount point, the caller's cgroup in it).
    pub v1: Vec<V1Hierarchy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Hierarchy {
    pub controller: String,
    pub mount: PathBuf,
    pub own: String,
    /// Files present in the caller's cgroup that only some kernels have (memsw, …).
    pub has_memsw: bool,
}

impl CgroupHost {
    pub fn v1(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.controller == controller)
    }
}

/// Which cgroup driver a sandbox uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    V2,
    V1,
}

/// Where to put sandbox cgroups (`--cgroup-parent`, `NUCLEUS_CGROUP_ROOT`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CgroupParent {
    /// A `nucleus` subtree of the caller's own cgroup, else `/nucleus`.
    #[default]
    Default,
    /// A path from the hierarchy root (`/…`) or, when relative, under the caller's cgroup.
    Path(String),
}

impl CgroupParent {
    pub fn parse(flag: &str, s: &str) -> Result<Self, ConfigError> {
        let t = s.trim_end_matches('/');
        let ok = !t.is_empty()
            && t.split('/')
                .skip(usize::from(t.starts_with('/')))
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'));
        if ok {
            Ok(Self::Path(t.to_string()))
        } else {
            Err(ConfigError::new(
                flag,
                format!(
                    "{s:?}: a cgroup path like /nucleus or nucleus/agents (no . or .. components)"
                ),
            ))
        }
    }
}

/// One directory the driver creates per hierarchy (one on v2, one per controller on v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    /// `""` on v2, the controller name on v1.
    pub hierarchy: String,
    /// Where the hierarchy is mounted (controllers are enabled from here down, on v2).
    pub mount: PathBuf,
    /// Parent directories to try in order (absolute host paths); the first usable one wins.
    pub parents: Vec<PathBuf>,
    /// Controllers to enable in each parent's `cgroup.subtree_control` on the way down (v2).
    pub enable: Vec<String>,
    /// Files written in the sandbox's directory, in order.
    pub writes: Vec<(String, String)>,
    /// Defaults nobody asked for explicitly, written when the kernel has the file (e.g. the
    /// implicit swap limit: no swap accounting, no file, no warning).
    pub optional: Vec<(String, String)>,
}

/// What the cgroup stage does. Compiled from [`Limits`] for the chosen driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlan {
    pub driver: Driver,
    /// Leaf name (the sandbox id) under every parent.
    pub leaf: String,
    pub dirs: Vec<CgroupDir>,
    /// Limits that cannot be applied on this host (agent mode warns; strict modes refused).
    pub unsupported: Vec<String>,
    /// The parents are shared defaults (`…/nucleus`): remove them when they empty, whoever
    /// made them. A parent the user named is removed only by the run that created it.
    pub remove_empty_parents: bool,
    /// The cgroup is not made without a word only when nobody asked for a limit (an
    /// unprivileged caller's default pids cap): agent mode then runs without it quietly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quiet_failure: bool,
}

fn join_cg(mount: &Path, cg: &str) -> PathBuf {
    let rel = cg.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

/// Candidate parents in one hierarchy mounted at `mount`, where the caller is in `own`.
///
/// On v2 a cgroup that holds processes cannot enable controllers for children (the kernel's
/// no-internal-process rule), and the caller's own cgroup always holds the caller. So on v2
/// the default and relative parents go beside the caller's cgroup (in its parent: the
/// delegated unit with systemd's `DelegateSubgroup=`), then at the hierarchy root. A caller
/// above its cgroup-namespace root (`..` in its path) only gets the root.
fn parents(parent: &CgroupParent, mount: &Path, own: &str, v2: bool) -> Vec<PathBuf> {
    let known = !own.split('/').any(|c| c == "..");
    let base = match (known, v2) {
        (false, _) => mount.to_path_buf(),
        (true, false) => join_cg(mount, own),
        (true, true) => join_cg(mount, own.rsplit_once('/').map_or("/", |(up, _)| up)),
    };
    let mut v = match parent {
        CgroupParent::Default => vec![base.join("nucleus"), mount.join("nucleus")],
        CgroupParent::Path(p) if p.starts_with('/') => vec![join_cg(mount, p)],
        CgroupParent::Path(p) => vec![base.join(p)],
    };
    v.dedup();
    v
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
            put(
                "cpu.max",
                format!("{} {CPU_PERIOD_US}", c * CPU_PERIOD_US / 1000),
            );
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
            put("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string());
            put(
                "cpu",
                "cpu.cfs_quota_us",
                (c * CPU_PERIOD_US / 1000).to_string(),
            );
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
    fn needs(&self) -> Vec<(&'static str, &'static str)> {
        let mut n = vec![("pids", "--pids")];
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

impl CgroupPlan {
    /// Compile `limits` for this host. None when the host has no cgroup hierarchy at all
    /// (the caller reports that as an unapplied limit).
    pub fn build(
        limits: &Limits,
        host: &CgroupHost,
        parent: &CgroupParent,
        leaf: &str,
    ) -> Option<CgroupPlan> {
        // v2 when it has the controllers we need (pure v2 hosts, or hybrid with pids there);
        // otherwise v1 when its controllers are mounted.
        let needs = limits.needs();
        let v2_ok = host.v2_mount.is_some()
            && needs
                .iter()
                .all(|(c, _)| host.v2_controllers.iter().any(|x| x == c));
        let has_v1 = host.v1.iter().any(|h| h.controller == "pids");
        if v2_ok || (!has_v1 && host.v2_mount.is_some()) {
            let mount = host.v2_mount.clone()?;
            let own = host.v2_own.clone().unwrap_or_else(|| "/".into());
            let mut unsupported = Vec::new();
            let mut writes = limits.v2_writes();
            let optional = match (limits.memory, limits.memory_swap) {
                (Some(m), None) => vec![("memory.swap.max".to_string(), m.to_string())],
                _ => vec![],
            };
            for (c, flag) in &needs {
                if !host.v2_controllers.iter().any(|x| x == c) {
                    unsupported.push(format!("{flag}: the {c} controller is not available"));
                    writes.retain(|(f, _)| !f.starts_with(&format!("{c}.")));
                }
            }
            let enable = ["cpu", "io", "memory", "pids"]
                .iter()
                .filter(|c| host.v2_controllers.iter().any(|x| x == *c))
                .map(|c| c.to_string())
                .collect();
            return Some(CgroupPlan {
                driver: Driver::V2,
                leaf: leaf.into(),
                dirs: vec![CgroupDir {
                    hierarchy: String::new(),
                    mount: mount.clone(),
                    parents: parents(parent, &mount, &own, true),
                    enable,
                    writes,
                    optional,
                }],
                unsupported,
                remove_empty_parents: *parent == CgroupParent::Default,
                quiet_failure: false,
            });
        }
        if host.v1.is_empty() {
            return None;
        }
        let mut unsupported = Vec::new();
        let mut dirs: Vec<CgroupDir> = Vec::new();
        let memsw = host.v1("memory").is_some_and(|h| h.has_memsw);
        if limits.memory_swap.is_some() && limits.memory.is_some() && !memsw {
            unsupported.push(
                "--memory-swap: swap accounting is off on this host (memsw files missing)".into(),
            );
        }
        for (ctrl, file, value) in limits.v1_writes(memsw) {
            let Some(h) = host.v1(ctrl) else {
                continue;
            };
            match dirs.iter_mut().find(|d| d.hierarchy == ctrl) {
                Some(d) => d.writes.push((file, value)),
                None => dirs.push(CgroupDir {
                    hierarchy: ctrl.into(),
                    mount: h.mount.clone(),
                    parents: parents(parent, &h.mount, &h.own, false),
                    enable: vec![],
                    writes: vec![(file, value)],
                    optional: vec![],
                }),
            }
        }
        // A memory cgroup of its own even without --memory (as on v2, where the controller is
        // enabled for every sandbox): what the sandbox allocates, the pages it writes to its
        // tmpfs mounts included, is counted against it and shows in `stats`, not the caller's.
        if let Some(h) = host.v1("memory") {
            if !dirs.iter().any(|d| d.hierarchy == "memory") {
                dirs.push(CgroupDir {
                    hierarchy: "memory".into(),
                    mount: h.mount.clone(),
                    parents: parents(parent, &h.mount, &h.own, false),
                    enable: vec![],
                    writes: vec![],
                    optional: vec![],
                });
            }
        }
        for (c, flag) in needs {
            let v1name = if c == "io" { "blkio" } else { c };
            if host.v1(v1name).is_none() {
                unsupported.push(format!("{flag}: the {v1name} controller is not mounted"));
            }
        }
        Some(CgroupPlan {
            driver: Driver::V1,
            leaf: leaf.into(),
            dirs,
            unsupported,
            remove_empty_parents: *parent == CgroupParent::Default,
            quiet_failure: false,
        })
    }
}

impl CgroupPlan {
    /// Every directory a sandbox cgroup can have under `parent` on this host, whatever limits
    /// it was started with (for `gc` and `stats`). The leaf is empty and nothing is written.
    pub fn locate(host: &CgroupHost, parent: &CgroupParent) -> Option<CgroupPlan> {
        let every = Limits {
            memory: Some(MIN_MEMORY),
            cpus_milli: Some(10),
            io: vec![IoLimit {
                major: 0,
                minor: 0,
                rbps: Some(1),
                wbps: None,
                riops: None,
                wiops: None,
            }],
            ..Default::default()
        };
        let mut p = CgroupPlan::build(&every, host, parent, "")?;
        for d in &mut p.dirs {
            d.writes.clear();
        }
        p.unsupported.clear();
        Some(p)
    }
}

/// The caller's cgroups from `/proc/self/cgroup` text: (v2 path, [(v1 controller, path)]).
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            v2 = Some(path.to_string());
        } else {
            for c in ctrls.split(',') {
                v1.push((c.to_string(), path.to_string()));
            }
        }
    }
    (v2, v1)
}

/// cgroup mounts from `/proc/self/mountinfo` text: (v2 mount, [(v1 controller, mount)]).
pub fn parse_mountinfo(text: &str) -> (Option<PathBuf>, Vec<(String, PathBuf)>) {
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount = pre.split(' ').nth(4).unwrap_or("");
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let opts = post.next().unwrap_or("");
        match fstype {
            "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(mount)),
            "cgroup" => {
                for o in opts.split(',') {
                    if matches!(
                        o,
                        "memory" | "pids" | "cpu" | "cpuacct" | "blkio" | "cpuset" | "freezer"
                    ) {
                        v1.push((o.to_string(), PathBuf::from(mount)));
                    }
                }
            }
            _ => {}
        }
    }
    (v2, v1)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the limits write belongs to the flag that sets it.
    #[test]
    fn files_name_their_flags() {
        let l = Limits {
            memory: Some(1 << 30),
            memory_swap: Some(SwapLimit::Total(2 << 30)),
            cpus_milli: Some(1500),
            cpu_weight: Some(200),
            pids: Some(64),
            io: vec![],
        };
        let v2: Vec<&str> = l.v2_writes().iter().map(|(f, _)| flag_of_file(f)).collect();
        assert_eq!(
            v2,
            [
                "--memory",
                "--memory-swap",
                "--cpus",
                "--cpu-weight",
                "--pids"
            ]
        );
        let v1: Vec<(&str, &str)> = l
            .v1_writes(true)
            .iter()
            .map(|(c, f, _)| (*c, flag_of_file(f)))
            .collect();
        assert_eq!(
            v1,
            [
                ("memory", "--memory"),
                ("memory", "--memory-swap"),
                ("cpu", "--cpus"),
                ("cpu", "--cpus"),
                ("cpu", "--cpu-weight"),
                ("pids", "--pids"),
            ]
        );
        assert_eq!(flag_of_file("blkio.throttle.read_bps_device"), "--io-limit");
    }

    fn hybrid() -> CgroupHost {
        let h = |c: &str, own: &str| V1Hierarchy {
            controller: c.into(),
            mount: PathBuf::from("/sys/fs/cgroup").join(c),
            own: own.into(),
            has_memsw: true,
        };
        CgroupHost {
            v2_mount: Some("/sys/fs/cgroup/unified".into()),
            v2_controllers: vec![],
            v2_own: Some("/".into()),
            v1: vec![
                h("memory", "/process_api/abc"),
                h("pids", "/"),
                h("cpu", "/"),
                h("blkio", "/"),
            ],
        }
    }

    fn unified(own: &str) -> CgroupHost {
        CgroupHost {
            v2_mount: Some("/sys/fs/cgroup".into()),
            v2_controllers: ["cpuset", "cpu", "io", "memory", "pids"]
                .map(String::from)
                .to_vec(),
            v2_own: Some(own.into()),
            v1: vec![],
        }
    }

    #[test]
    fn parse_flags() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1500);
        assert_eq!(parse_cpus("0.01").unwrap(), 10);
        assert_eq!(parse_cpus("2").unwrap(), 2000);
        assert_eq!(parse_cpus(".5").unwrap(), 500);
        for bad in ["0", "0.001", "abc", "1.2345", "-1", "", "."] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_pids("max").unwrap(), None);
        assert_eq!(parse_pids("128").unwrap(), Some(128));
        assert!(parse_pids("1").is_err());
        assert!(parse_cpu_weight("0").is_err());
        assert!(parse_cpu_weight("10001").is_err());
        assert_eq!(SwapLimit::parse("-1").unwrap(), SwapLimit::Unlimited);
        assert_eq!(SwapLimit::parse("1G").unwrap(), SwapLimit::Total(1 << 30));
        let io = IoLimit::parse("8:0 rbps=1M wiops=100").unwrap();
        assert_eq!(
            (io.major, io.minor, io.rbps, io.wiops, io.wbps),
            (8, 0, Some(1 << 20), Some(100), None)
        );
        assert!(IoLimit::parse("8:0")
            .unwrap_err()
            .message
            .contains("no limit"));
        assert!(IoLimit::parse("sda rbps=1").is_err());
        assert!(IoLimit::parse("8:0 foo=1")
            .unwrap_err()
            .message
            .contains("allowed"));
        assert!(IoLimit::parse("8:0 rbps=0").is_err());
        assert!(CgroupParent::parse("--cgroup-parent", "/a/../b").is_err());
        assert_eq!(
            CgroupParent::parse("--cgroup-parent", "/x/y/").unwrap(),
            CgroupParent::Path("/x/y".into())
        );
    }

    #[test]
    fn validate() {
        let mut l = Limits {
            memory_swap: Some(SwapLimit::Total(1 << 30)),
            ..Default::default()
        };
        assert!(l
            .validate(2)
            .unwrap_err()
            .message
            .contains("needs --memory"));
        l.memory = Some(2 << 30);
        assert!(l.validate(2).unwrap_err().message.contains("below"));
        l.memory = Some(1 << 20);
        assert!(l.validate(2).unwrap_err().message.contains("too small"));
        l.memory = Some(512 << 20);
        l.cpus_milli = Some(2500);
        assert!(l.validate(2).unwrap_err().message.contains("2 CPUs"));
        l.cpus_milli = Some(2000);
        assert!(l.validate(2).is_ok());
    }

    #[test]
    fn v2_files() {
        let l = Limits {
            memory: Some(256 << 20),
            memory_swap: Some(SwapLimit::Total(256 << 20)),
            cpus_milli: Some(1500),
            cpu_weight: Some(100),
            pids: Some(128),
            io: vec![IoLimit::parse("8:0 rbps=1048576 wiops=10").unwrap()],
        };
        let p = CgroupPlan::build(&l, &unified("/"), &CgroupParent::Default, "id1").unwrap();
        assert_eq!(p.driver, Driver::V2);
        assert!(p.unsupported.is_empty());
        let d = &p.dirs[0];
        assert_eq!(d.parents, vec![PathBuf::from("/sys/fs/cgroup/nucleus")]);
        assert_eq!(d.enable, vec!["cpu", "io", "memory", "pids"]);
        let w: Vec<(&str, &str)> = d
            .writes
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            w,
            vec![
                ("memory.max", "268435456"),
                ("memory.swap.max", "0"),
                ("cpu.max", "150000 100000"),
                ("cpu.weight", "100"),
                ("pids.max", "128"),
                ("io.max", "8:0 rbps=1048576 wiops=10"),
            ]
        );
        let p = CgroupPlan::build(
            &Limits::default(),
            &unified("/system.slice/x.service/payload"),
            &CgroupParent::Default,
            "id1",
        )
        .unwrap();
        // Under a delegated service: beside the caller's cgroup (which holds processes, so
        // cannot have controller-enabled children), then the root.
        assert_eq!(
            p.dirs[0].parents,
            vec![
                PathBuf::from("/sys/fs/cgroup/system.slice/x.service/nucleus"),
                PathBuf::from("/sys/fs/cgroup/nucleus")
            ]
        );
        let p = CgroupPlan::build(
            &Limits::default(),
            &unified("/../../elsewhere"),
            &CgroupParent::Path("agents".into()),
            "id1",
        )
        .unwrap();
        assert_eq!(
            p.dirs[0].parents,
            vec![PathBuf::from("/sys/fs/cgroup/agents")]
        );
        assert_eq!(p.dirs[0].writes, vec![("pids.max".into(), "512".into())]);
    }

    #[test]
    fn v1_files_on_hybrid() {
        let l = Limits {
            memory: Some(64 << 20),
            cpus_milli: Some(500),
            pids: None,
            ..Default::default()
        };
        let p =
            CgroupPlan::build(&l, &hybrid(), &CgroupParent::Path("agents".into()), "id1").unwrap();
        assert_eq!(p.driver, Driver::V1);
        let by: Vec<(&str, &Path, usize)> = p
            .dirs
            .iter()
            .map(|d| (d.hierarchy.as_str(), d.parents[0].as_path(), d.writes.len()))
            .collect();
        assert_eq!(
            by,
            vec![
                (
                    "memory",
                    Path::new("/sys/fs/cgroup/memory/process_api/abc/agents"),
                    2
                ),
                ("cpu", Path::new("/sys/fs/cgroup/cpu/agents"), 2),
                ("pids", Path::new("/sys/fs/cgroup/pids/agents"), 1),
            ]
        );
        assert_eq!(
            p.dirs[0].writes[1],
            (
                "memory.memsw.limit_in_bytes".to_string(),
                (128u64 << 20).to_string()
            )
        );
        assert_eq!(p.dirs[2].writes[0].1, "max");
        // Without swap accounting a swap limit cannot be applied: said, not silently dropped.
        let mut h = hybrid();
        h.v1[0].has_memsw = false;
        let l = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(SwapLimit::Unlimited),
            ..Default::default()
        };
        let p = CgroupPlan::build(&l, &h, &CgroupParent::Default, "x").unwrap();
        assert_eq!(p.unsupported.len(), 1);
        assert_eq!(p.dirs[0].writes.len(), 1);
        // Absolute parent.
        let p = CgroupPlan::build(
            &Limits::default(),
            &h,
            &CgroupParent::Path("/ci/nucleus".into()),
            "x",
        )
        .unwrap();
        assert_eq!(
            p.dirs[0].parents,
            vec![PathBuf::from("/sys/fs/cgroup/pids/ci/nucleus")]
        );
    }

    #[test]
    fn missing_controllers_are_reported() {
        let mut h = unified("/");
        h.v2_controllers.retain(|c| c != "io");
        let l = Limits {
            io: vec![IoLimit::parse("8:0 rbps=1M").unwrap()],
            ..Default::default()
        };
        // v2 lacks io and there is no v1: v2 is used, the io limit is reported unsupported.
        let p = CgroupPlan::build(&l, &h, &CgroupParent::Default, "x").unwrap();
        assert_eq!(p.driver, Driver::V2);
        assert_eq!(
            p.unsupported,
            vec!["--io-limit: the io controller is not available"]
        );
        assert!(p.dirs[0].writes.iter().all(|(f, _)| !f.starts_with("io.")));
        assert!(
            CgroupPlan::build(&l, &CgroupHost::default(), &CgroupParent::Default, "x").is_none()
        );
        assert_eq!(weight_to_shares(1), 10);
        assert_eq!(weight_to_shares(10000), 102_400);
        assert_eq!(weight_to_shares(100), 1024);
    }

    #[test]
    fn locate_covers_every_hierarchy() {
        let p = CgroupPlan::locate(&hybrid(), &CgroupParent::Default).unwrap();
        let h: Vec<&str> = p.dirs.iter().map(|d| d.hierarchy.as_str()).collect();
        assert_eq!(h, vec!["memory", "cpu", "pids", "blkio"]);
        assert!(p.dirs.iter().all(|d| d.writes.is_empty()));
        let p = CgroupPlan::locate(&unified("/"), &CgroupParent::Default).unwrap();
        assert_eq!(p.driver, Driver::V2);
        assert_eq!(p.dirs.len(), 1);
    }

    #[test]
    fn parse_host_files() {
        let (v2, v1) = parse_proc_cgroup(
            "9:name=systemd:/\n8:pids:/\n4:memory:/p/x\n2:cpu,cpuacct:/a\n0::/\n",
        );
        assert_eq!(v2.as_deref(), Some("/"));
        assert!(v1.contains(&("memory".into(), "/p/x".into())));
        assert!(v1.contains(&("cpuacct".into(), "/a".into())));
        let mi = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                  35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let (v2, v1) = parse_mountinfo(mi);
        assert_eq!(v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(v1.len(), 2);
    }
}

/// Resource usage read at exit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Processes the kernel's OOM killer killed in the sandbox.
    pub oom_kills: u64,
    /// Peak memory of the whole cgroup, bytes.
    pub memory_peak: Option<u64>,
    /// CPU time of the whole cgroup, microseconds.
    pub cpu_usec: Option<u64>,
    /// Peak number of tasks.
    pub pids_peak: Option<u64>,
    /// Times a fork failed because of the pids limit.
    pub pids_limit_hits: Option<u64>,
    /// Memory in use now (live sandboxes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_current: Option<u64>,
    /// Tasks now (live sandboxes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_current: Option<u64>,
}
