//! Resource limits: one version-agnostic [`Limits`], compiled to the files a cgroup v2 or v1
//! driver writes. Which driver runs is decided from [`CgroupHost`] (probed), never a flag.

use serde::{Deserialize, Serialize};

/// CFS period used for `--cpus` (the kernel's and Docker's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Default `--pids`.
pub const DEFAULT_PIDS: u64 = 512;
/// The smallest `--memory`: init plus a shell need a few MiB; less fails at exec, not clearly.
pub const MIN_MEMORY: u64 = 4 << 20;

mod devices;
mod host;
mod limits;
mod plan;
mod systemd;

pub use devices::{device_program, run as run_device_program, BpfInsn};
pub use host::*;
pub use limits::*;
pub use plan::*;
pub use systemd::*;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// Every file the limits write belongs to the flag that sets it.
    #[test]
    fn files_name_their_flags() {
        let l = Limits {
            memory: Some(1 << 30),
            memory_swap: Some(SwapLimit::Total(2 << 30)),
            cpus_milli: Some(1500),
            cpu_period_us: None,
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

    /// A CFS period other than the default carries into both drivers' files; the quota is
    /// never below the kernel's 1 ms; a period out of the kernel's range is refused by name.
    #[test]
    fn cpu_period() {
        let l = Limits {
            cpus_milli: Some(250),
            cpu_period_us: Some(50_000),
            ..Default::default()
        };
        assert!(l
            .v2_writes()
            .contains(&("cpu.max".into(), "12500 50000".into())));
        let v1 = l.v1_writes(false);
        assert!(v1.contains(&("cpu", "cpu.cfs_period_us".into(), "50000".into())));
        assert!(v1.contains(&("cpu", "cpu.cfs_quota_us".into(), "12500".into())));
        let tiny = Limits {
            cpus_milli: Some(10),
            cpu_period_us: Some(2_000),
            ..Default::default()
        };
        assert!(tiny
            .v2_writes()
            .contains(&("cpu.max".into(), "1000 2000".into())));
        for (p, ok) in [
            (999, false),
            (1_000, true),
            (1_000_000, true),
            (1_000_001, false),
        ] {
            let l = Limits {
                cpu_period_us: Some(p),
                ..Default::default()
            };
            let r = l.validate(2);
            assert_eq!(r.is_ok(), ok, "{p}");
            if let Err(e) = r {
                assert!(e.to_string().contains("--cpu-period"), "{e}");
            }
        }
    }

    #[test]
    fn v2_files() {
        let l = Limits {
            memory: Some(256 << 20),
            memory_swap: Some(SwapLimit::Total(256 << 20)),
            cpus_milli: Some(1500),
            cpu_period_us: None,
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
        // Hierarchies no limit uses are located too (pause's freezer, OCI's devices), once
        // per mount (cpu and cpuacct share one).
        let mut host = hybrid();
        for c in ["freezer", "devices", "cpuacct"] {
            host.v1.push(V1Hierarchy {
                controller: c.into(),
                mount: PathBuf::from("/sys/fs/cgroup").join(if c == "cpuacct" { "cpu" } else { c }),
                own: "/".into(),
                has_memsw: false,
            });
        }
        let p = CgroupPlan::locate(&host, &CgroupParent::Default).unwrap();
        let h: Vec<&str> = p.dirs.iter().map(|d| d.hierarchy.as_str()).collect();
        assert_eq!(
            h,
            vec!["memory", "cpu", "pids", "blkio", "freezer", "devices"]
        );
        assert!(p.remove_empty_parents);
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
        // The controllers OCI resources write beyond nucleus's own: hugetlb, rdma, and
        // net_cls,net_prio mounted together (one directory for both in a plan).
        let mi =
            "33 31 0:30 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio\n\
                  34 31 0:31 / /sys/fs/cgroup/hugetlb rw - cgroup cgroup rw,hugetlb\n\
                  36 31 0:33 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let (_, v1) = parse_mountinfo(mi);
        let names: Vec<&str> = v1.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["net_cls", "net_prio", "hugetlb", "pids"]);
        let host = CgroupHost {
            v2_mount: None,
            v2_controllers: vec![],
            v2_own: None,
            v1: v1
                .into_iter()
                .map(|(c, m)| V1Hierarchy {
                    controller: c,
                    mount: m,
                    own: "/".into(),
                    has_memsw: false,
                })
                .collect(),
        };
        let mut p =
            CgroupPlan::build(&Limits::default(), &host, &CgroupParent::Default, "x").unwrap();
        let w = |f: &str| Writes::All(vec![(f.to_string(), "1".to_string())]);
        for (c, f) in [
            ("net_cls", "net_cls.classid"),
            ("net_prio", "net_prio.ifpriomap"),
            ("hugetlb", "hugetlb.2MB.limit_in_bytes"),
        ] {
            p.add_writes(&host, &CgroupParent::Default, c, w(f))
                .unwrap();
        }
        let net: Vec<_> = p
            .dirs
            .iter()
            .filter(|d| d.mount.ends_with("net_cls,net_prio"))
            .collect();
        assert_eq!(net.len(), 1);
        assert_eq!(net[0].writes.len(), 2);
        assert!(p.dirs.iter().any(|d| d.hierarchy == "hugetlb"));
    }
}
