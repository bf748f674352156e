//! The sandbox's cgroup: where it goes (parent), which hierarchies, and what is written.

use super::{CgroupHost, IoLimit, Limits, MIN_MEMORY};
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// Settings the kernel offers under one of several files (a block I/O weight is BFQ's
    /// `io.bfq.weight` or blk-iocost's `io.weight`): of each list the first file the leaf
    /// has is written; none of them there is a failed write. After `writes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_of: Vec<Vec<(String, String)>>,
}

impl CgroupDir {
    /// The directory of v1 hierarchy `h` (of `controller`), nothing written yet.
    fn v1(controller: &str, h: &super::V1Hierarchy, parent: &CgroupParent) -> Self {
        CgroupDir {
            hierarchy: controller.into(),
            mount: h.mount.clone(),
            parents: parents(parent, &h.mount, &h.own, false),
            enable: vec![],
            writes: vec![],
            optional: vec![],
            first_of: vec![],
        }
    }
}

/// Files a cgroup stage writes for one setting beyond nucleus's own limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writes {
    /// Each file, in order.
    All(Vec<(String, String)>),
    /// The first of these files the kernel has.
    FirstOf(Vec<(String, String)>),
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
    /// The parents are shared defaults (`…/nucleus`): kept from run to run, as the state root
    /// is; `nucleus gc` removes them when empty. A parent the user named is removed by the run
    /// that created it.
    pub remove_empty_parents: bool,
    /// The cgroup is not made without a word only when nobody asked for a limit (an
    /// unprivileged caller's default pids cap): agent mode then runs without it quietly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quiet_failure: bool,
    /// cgroup v2: the device rules as a BPF_PROG_TYPE_CGROUP_DEVICE program, attached to the
    /// leaf before anything runs in it (v1 writes `devices.allow`/`devices.deny` instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_program: Vec<super::BpfInsn>,
    /// systemd's driver: the leaf is this transient scope, which systemd makes (and removes
    /// when it empties) in the parents, the slice's cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<super::SystemdScope>,
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
            // No pids limit and no pids controller: nothing to say "max" to.
            if limits.pids.is_none() && !host.v2_controllers.iter().any(|x| x == "pids") {
                writes.retain(|(f, _)| f != "pids.max");
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
                    first_of: vec![],
                }],
                unsupported,
                remove_empty_parents: *parent == CgroupParent::Default,
                quiet_failure: false,
                device_program: Vec::new(),
                systemd: None,
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
                    writes: vec![(file, value)],
                    ..CgroupDir::v1(ctrl, h, parent)
                }),
            }
        }
        // A memory cgroup of its own even without --memory (as on v2, where the controller is
        // enabled for every sandbox): what the sandbox allocates, the pages it writes to its
        // tmpfs mounts included, is counted against it and shows in `stats`, not the caller's.
        if let Some(h) = host.v1("memory") {
            if !dirs.iter().any(|d| d.hierarchy == "memory") {
                dirs.push(CgroupDir::v1("memory", h, parent));
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
            device_program: Vec::new(),
            systemd: None,
        })
    }
}

impl CgroupPlan {
    /// Add `writes` of `controller`'s files (OCI resources beyond nucleus's own limits): on v2
    /// to the leaf, the controller enabled down to it; on v1 in its hierarchy. Err: the
    /// controller is not there.
    pub fn add_writes(
        &mut self,
        host: &CgroupHost,
        parent: &CgroupParent,
        controller: &str,
        writes: Writes,
    ) -> Result<(), String> {
        let d = match self.driver {
            Driver::V2 => {
                if !host.v2_controllers.iter().any(|c| c == controller) {
                    return Err(format!("the {controller} controller is not available"));
                }
                let Some(d) = self.dirs.first_mut() else {
                    return Err("no cgroup v2 directory".into());
                };
                if !d.enable.iter().any(|c| c == controller) {
                    d.enable.push(controller.into());
                }
                d
            }
            Driver::V1 => self
                .v1_dir(host, parent, controller)
                .ok_or_else(|| format!("the {controller} hierarchy is not mounted"))?,
        };
        match writes {
            Writes::All(w) => d.writes.extend(w),
            Writes::FirstOf(w) => d.first_of.push(w),
        }
        Ok(())
    }

    /// Files written in a v1 hierarchy's directory beside the others (e.g. an OCI bundle's
    /// device rules in `devices`). False when the plan is not v1 or the host has no such
    /// hierarchy: the caller decides what that means.
    pub fn add_v1_writes(
        &mut self,
        host: &CgroupHost,
        parent: &CgroupParent,
        controller: &str,
        writes: Vec<(String, String)>,
    ) -> bool {
        match self.v1_dir(host, parent, controller) {
            Some(d) => {
                d.writes.extend(writes);
                true
            }
            None => false,
        }
    }

    /// The directory of `controller`'s v1 hierarchy, added when the plan has none yet. None
    /// when the plan is not v1 or the host has no such hierarchy.
    fn v1_dir(
        &mut self,
        host: &CgroupHost,
        parent: &CgroupParent,
        controller: &str,
    ) -> Option<&mut CgroupDir> {
        let (Driver::V1, Some(h)) = (self.driver, host.v1(controller)) else {
            return None;
        };
        // (Controllers mounted together, as net_cls,net_prio often are, share one directory.)
        let i = match self
            .dirs
            .iter()
            .position(|d| d.hierarchy == controller || d.mount == h.mount)
        {
            Some(i) => i,
            None => {
                self.dirs.push(CgroupDir::v1(controller, h, parent));
                self.dirs.len() - 1
            }
        };
        self.dirs.get_mut(i)
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
        // v1: every mounted hierarchy, not only the limits' (a pause's freezer leaf, an OCI
        // bundle's devices or cpuset leaf, and their default parents, live in others).
        if p.driver == Driver::V1 {
            for h in &host.v1 {
                if !p.dirs.iter().any(|d| d.mount == h.mount) {
                    p.dirs.push(CgroupDir::v1(&h.controller, h, parent));
                }
            }
        }
        p.unsupported.clear();
        Some(p)
    }
}
