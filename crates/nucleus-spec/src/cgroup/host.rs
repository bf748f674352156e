//! What the host's cgroups look like: the caller's place in each hierarchy (from
//! /proc/self/cgroup and mountinfo).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

/// A v1 controller nucleus knows (named hierarchies such as `name=systemd` are not).
pub fn is_v1_controller(name: &str) -> bool {
    matches!(
        name,
        "memory"
            | "pids"
            | "cpu"
            | "cpuacct"
            | "blkio"
            | "cpuset"
            | "freezer"
            | "devices"
            | "hugetlb"
            | "net_cls"
            | "net_prio"
            | "rdma"
    )
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
                for o in opts.split(',').filter(|o| is_v1_controller(o)) {
                    v1.push((o.to_string(), PathBuf::from(mount)));
                }
            }
            _ => {}
        }
    }
    (v2, v1)
}
