//! HostFacts::detect: read the host into plain data for the planner. Roots are injectable so
//! tests run against fixture trees.

use nucleus_spec::cgroup::{parse_mountinfo, parse_proc_cgroup, CgroupHost, V1Hierarchy};
use nucleus_spec::host::{EntryKind, HostEntry, HostFacts, Wants};
use nucleus_spec::plan::{ETC_ENTRIES, SYSTEM_DIRS};
use std::fs;
use std::path::Path;

fn entry(dir: &Path, rel: &str) -> Option<HostEntry> {
    let md = fs::symlink_metadata(dir.join(rel)).ok()?;
    let kind = if md.file_type().is_symlink() {
        EntryKind::Symlink(fs::read_link(dir.join(rel)).ok()?)
    } else if md.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    Some(HostEntry {
        path: rel.into(),
        kind,
        stamp: stamp(&md),
    })
}

/// What changes when a file is replaced or edited, added to or removed from (a directory):
/// FNV-1a over its identity, size, mode and times (from the stat already made).
fn stamp(md: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let fields = [
        md.dev(),
        md.ino(),
        md.size(),
        u64::from(md.mode()),
        md.mtime() as u64,
        md.mtime_nsec() as u64,
        md.ctime() as u64,
        md.ctime_nsec() as u64,
    ];
    nucleus_spec::host::fnv1a(fields.iter().flat_map(|f| f.to_le_bytes()))
}

/// Detect facts. `host_root` is normally `/`; `rootfs` is `--rootfs` when given.
/// `wants`: the optional facts to find (only the flags that need them ask).
pub fn detect(host_root: &Path, rootfs: Option<&Path>, wants: Wants) -> HostFacts {
    let egid = rustix::process::getegid().as_raw();
    let euid = crate::security::euid();
    let system_dirs = SYSTEM_DIRS
        .iter()
        .filter_map(|d| entry(host_root, d))
        .collect();
    let etc_dir = match rootfs {
        Some(r) => r.join("etc"),
        None => host_root.join("etc"),
    };
    let etc_entries = match rootfs {
        // A rootfs brings its own /etc: take all of it (the planner skips synthetic names).
        Some(_) => fs::read_dir(&etc_dir)
            .map(|rd| {
                let mut v: Vec<HostEntry> = rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| entry(&etc_dir, &e.file_name().to_string_lossy()))
                    .collect();
                v.sort_by(|a, b| a.path.cmp(&b.path));
                v
            })
            .unwrap_or_default(),
        None => ETC_ENTRIES
            .iter()
            .filter_map(|e| entry(&etc_dir, e))
            .collect(),
    };
    let rootfs_entries = rootfs
        .and_then(|r| fs::read_dir(r).ok())
        .map(|rd| {
            let mut v: Vec<HostEntry> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    entry(
                        rootfs.unwrap_or(Path::new("/")),
                        &e.file_name().to_string_lossy(),
                    )
                })
                .collect();
            v.sort_by(|a, b| a.path.cmp(&b.path));
            v
        })
        .unwrap_or_default();
    HostFacts {
        euid,
        egid,
        system_dirs,
        etc_entries,
        rootfs_entries,
        landlock_abi: landlock_abi(),
        time_ns: wants.time_ns && host_root.join("proc/self/ns/time").exists(),
        host_resolv_conf: if wants.resolv_conf {
            fs::read_to_string(host_root.join("etc/resolv.conf")).ok()
        } else {
            None
        },
        cgroup: cgroup_host(host_root),
        host_ca_certs: wants.ca_certs && host_root.join("etc/ssl/certs").is_dir(),
        kernel: if wants.kernel {
            kernel_version()
        } else {
            (0, 0)
        },
        cpus: if wants.cpus { online_cpus() } else { 0 },
    }
}

/// Online CPUs (one sysfs read; std's available_parallelism reads cgroup files too).
fn online_cpus() -> u64 {
    crate::raw::sysconf(libc::_SC_NPROCESSORS_ONLN).max(0) as u64
}

/// The cgroup hierarchies mounted under `host_root` and the caller's cgroup in each.
pub fn cgroup_host(host_root: &Path) -> CgroupHost {
    let read = |p: &str| crate::raw::read_proc(host_root.join(p)).unwrap_or_default();
    let rooted = |m: &Path| host_root.join(m.strip_prefix("/").unwrap_or(m));
    let own = read("proc/self/cgroup");
    // Most hosts are pure v2 at /sys/fs/cgroup: one statfs instead of reading mountinfo; v1
    // and hybrid ones mostly have systemd's layout, checked with a statfs and a stat per
    // hierarchy (see usual_v1); mountinfo decides the rest.
    let unified = host_root.join("sys/fs/cgroup");
    let (v2_mount, v1_mounts) = if is_fs(&unified, libc::CGROUP2_SUPER_MAGIC) {
        (Some(unified), vec![])
    } else if let Some(usual) = usual_v1(&unified, &own) {
        usual
    } else {
        let (v2, v1) = parse_mountinfo(&read("proc/self/mountinfo"));
        (v2.map(|m| rooted(&m)), v1)
    };
    let (v2_own, v1_own) = parse_proc_cgroup(&own);
    let v2_controllers = match (&v2_mount, &v2_own) {
        (Some(m), Some(own)) => {
            let dir = m.join(own.trim_start_matches('/'));
            crate::raw::read_proc(dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect()
        }
        _ => vec![],
    };
    let v1 = v1_mounts
        .into_iter()
        .map(|(controller, m)| {
            let own = v1_own
                .iter()
                .find(|(c, _)| *c == controller)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| "/".into());
            let mount = rooted(&m);
            let has_memsw = controller == "memory"
                && mount
                    .join(own.trim_start_matches('/'))
                    .join("memory.memsw.limit_in_bytes")
                    .exists();
            V1Hierarchy {
                controller,
                mount,
                own,
                has_memsw,
            }
        })
        .collect();
    CgroupHost {
        v2_mount,
        v2_controllers,
        v2_own,
        v1,
    }
}

/// Whether `p` is the root of a file system of type `magic` (statfs; libc's constants, whose
/// type differs between targets).
fn is_fs(p: &Path, magic: impl Into<i64>) -> bool {
    let magic = magic.into();
    crate::raw::fs_magic(p).is_ok_and(|m| m == magic)
}

/// The v1 (or hybrid) layout systemd and most distributions mount, checked without reading
/// mountinfo (a read that formats every mount of the namespace: 0.07 ms with 20 mounts here,
/// more on hosts with hundreds): each hierarchy /proc/self/cgroup lists is a cgroup file system
/// at `base/<its controllers>` (a statfs) holding the caller's own cgroup (a stat: the mount
/// shows the hierarchy from its root, as the caller's paths are given), and the unified
/// hierarchy, if any, is at `base/unified`. None when a hierarchy is elsewhere or shows a
/// subtree (mountinfo decides then).
#[allow(clippy::type_complexity)]
fn usual_v1(
    base: &Path,
    proc_cgroup: &str,
) -> Option<(
    Option<std::path::PathBuf>,
    Vec<(String, std::path::PathBuf)>,
)> {
    let mut v2 = None;
    let mut v1 = Vec::new();
    // ID:CONTROLLERS:PATH, one line a hierarchy.
    for (ctrls, own) in proc_cgroup.lines().filter_map(|l| {
        let mut it = l.splitn(3, ':');
        it.next()?;
        Some((it.next()?, it.next()?))
    }) {
        if ctrls.is_empty() {
            // (Not there: none mounted, as in a namespace that unmounted it.)
            let m = base.join("unified");
            if is_fs(&m, libc::CGROUP2_SUPER_MAGIC) {
                v2 = Some(m);
            }
            continue;
        }
        let known: Vec<&str> = ctrls
            .split(',')
            .filter(|c| nucleus_spec::cgroup::is_v1_controller(c))
            .collect();
        if known.is_empty() {
            continue;
        }
        let m = base.join(ctrls);
        if !is_fs(&m, libc::CGROUP_SUPER_MAGIC) || !m.join(own.trim_start_matches('/')).is_dir() {
            return None;
        }
        v1.extend(known.into_iter().map(|c| (c.to_string(), m.clone())));
    }
    (!v1.is_empty()).then_some((v2, v1))
}

/// The kernel's Landlock ABI version, 0 when Landlock is unavailable.
pub fn landlock_abi() -> u32 {
    crate::raw::landlock_abi()
}

/// (major, minor) of the running kernel, from uname(2).
pub fn kernel_version() -> (u32, u32) {
    let u = rustix::system::uname();
    let rel: String = u.release().to_bytes().iter().map(|c| *c as char).collect();
    let mut p = rel
        .split(|c: char| !c.is_ascii_digit())
        .map(|x| x.parse().unwrap_or(0));
    (p.next().unwrap_or(0), p.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_fixture_tree() {
        let t = crate::TestDir::new("probe-test");
        fs::create_dir_all(t.join("usr/bin")).unwrap();
        fs::create_dir_all(t.join("etc/ssl/certs")).unwrap();
        std::os::unix::fs::symlink("usr/bin", t.join("bin")).unwrap();
        fs::write(t.join("etc/ld.so.cache"), b"x").unwrap();
        fs::write(t.join("etc/resolv.conf"), b"nameserver 10.0.0.1\n").unwrap();
        let wants = Wants {
            resolv_conf: true,
            ..Default::default()
        };
        let f = detect(&t, None, wants);
        let has = |path: &str, kind: EntryKind| {
            f.system_dirs
                .iter()
                .any(|e| e.path == Path::new(path) && e.kind == kind && e.stamp != 0)
        };
        assert!(has("usr", EntryKind::Dir));
        assert!(has("bin", EntryKind::Symlink("usr/bin".into())));
        assert!(!f.system_dirs.iter().any(|e| e.path == Path::new("lib32")));
        assert!(f
            .etc_entries
            .iter()
            .any(|e| e.path == Path::new("ssl/certs")));
        assert!(f
            .etc_entries
            .iter()
            .any(|e| e.path == Path::new("ld.so.cache") && e.kind == EntryKind::File));
        assert_eq!(f.host_resolv_conf.as_deref(), Some("nameserver 10.0.0.1\n"));
    }

    /// On a v1 or hybrid host in systemd's layout (this project's CI host), the shortcut finds
    /// what mountinfo says; elsewhere it must step aside (pure v2: no v1 hierarchy listed).
    #[test]
    fn the_usual_v1_layout_agrees_with_mountinfo() {
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        let base = Path::new("/sys/fs/cgroup");
        let Some((v2, mut v1)) = usual_v1(base, &own) else {
            assert!(
                own.lines().all(|l| l.starts_with("0::"))
                    || crate::raw::fs_magic(base).is_err()
                    || fs::read_to_string("/proc/self/mountinfo")
                        .unwrap()
                        .lines()
                        .any(|l| l.contains(" - cgroup ") && !l.contains(" /sys/fs/cgroup/")),
                "no shortcut, yet every hierarchy is in systemd's layout:\n{own}"
            );
            return;
        };
        let (mv2, mut mv1) = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
        v1.sort();
        mv1.sort();
        mv1.dedup();
        assert_eq!(v1, mv1);
        assert_eq!(v2, mv2.filter(|m| m == &base.join("unified")));
        // A hierarchy elsewhere (or a listed one not mounted where expected): no shortcut.
        let t = crate::TestDir::new("probe-usual");
        assert!(usual_v1(&t, &own).is_none());
        // Directories where the hierarchies should be are not enough: they must be cgroup
        // file systems.
        fs::create_dir_all(t.join("memory/a")).unwrap();
        assert!(usual_v1(&t, "4:memory:/a\n").is_none());
        // A real hierarchy that does not hold the caller's cgroup shows a subtree (or another
        // namespace's view): no shortcut either.
        assert!(usual_v1(base, "4:memory:/not-a-cgroup-of-nucleus-tests\n").is_none());
    }

    #[test]
    fn detects_cgroup_layouts() {
        let t = crate::TestDir::new("probe-cg");
        fs::create_dir_all(t.join("proc/self")).unwrap();
        // Pure v2, caller in a delegated service cgroup.
        fs::write(
            t.join("proc/self/mountinfo"),
            "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
        )
        .unwrap();
        fs::write(t.join("proc/self/cgroup"), "0::/system.slice/a.service\n").unwrap();
        let svc = t.join("sys/fs/cgroup/system.slice/a.service");
        fs::create_dir_all(&svc).unwrap();
        fs::write(svc.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        let h = cgroup_host(&t);
        assert_eq!(h.v2_mount, Some(t.join("sys/fs/cgroup")));
        assert_eq!(h.v2_controllers, vec!["cpu", "io", "memory", "pids"]);
        assert_eq!(h.v2_own.as_deref(), Some("/system.slice/a.service"));
        assert!(h.v1.is_empty());
        // Hybrid: v1 controllers, an empty v2.
        fs::write(
            t.join("proc/self/mountinfo"),
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        fs::write(
            t.join("proc/self/cgroup"),
            "8:pids:/\n4:memory:/p/x\n0::/\n",
        )
        .unwrap();
        let mem = t.join("sys/fs/cgroup/memory/p/x");
        fs::create_dir_all(&mem).unwrap();
        fs::write(mem.join("memory.memsw.limit_in_bytes"), "0").unwrap();
        let h = cgroup_host(&t);
        assert!(h.v2_controllers.is_empty());
        let m = h.v1("memory").unwrap();
        assert_eq!((m.own.as_str(), m.has_memsw), ("/p/x", true));
        assert_eq!(h.v1("pids").unwrap().mount, t.join("sys/fs/cgroup/pids"));
    }
}
