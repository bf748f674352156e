//! The plan: every decision for one sandbox, made here once. The executor (`nucleus_sys`)
//! interprets it without branching on the configuration.

mod fixed_mounts;
mod process;
mod rootfs;

pub use fixed_mounts::*;
pub use process::*;
pub use rootfs::*;

use crate::cgroup::CgroupPlan;
use crate::config::{
    ConfigError, ContextMode, NetworkMode, RunConfig, ServiceMode, WorkspaceMode, ID_RANGE,
};
use crate::etc;
use crate::host::{EntryKind, HostFacts};
use crate::landlock::{FsRight, LandlockPlan, LandlockRule};
use crate::mounts::{MountOp, RootSource};
use crate::seccomp::{self, Filter, SockFilter};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Seccomp(String),
}

fn cfg_err(field: &str, msg: impl Into<String>) -> PlanError {
    PlanError::Config(ConfigError::new(field, msg))
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// What the runtime does with the workload's seccomp notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SeccompNotify {
    /// Record every syscall and let it run (the workload has no other filter).
    Trace,
    /// A refused syscall is logged, then failed as `decide` (the filter as written) says.
    LogDenied {
        #[serde(with = "crate::seccomp::bpf::hex")]
        decide: Vec<SockFilter>,
    },
}

/// How ids inside map to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IdMapPlan {
    /// Started as root: container ids 0..width map to a private host range allocated per sandbox,
    /// so container root is an unprivileged host uid distinct from every other sandbox's.
    PrivateRange { width: u32 },
    /// Started unprivileged: container root is the caller (a single mapping).
    Caller { uid: u32, gid: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub user: bool,
    pub pid: bool,
    pub mount: bool,
    pub net: bool,
    pub uts: bool,
    pub ipc: bool,
    pub cgroup: bool,
    /// A time namespace with this many seconds added to CLOCK_MONOTONIC and CLOCK_BOOTTIME.
    pub time_offset_secs: Option<i64>,
}

/// What a protection failing to apply does: agent mode warns (and reports it), strict modes
/// refuse to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Degrade,
    Refuse,
}

/// A detached filesystem the parent prepares before start (it lives only as long as the
/// sandbox: nothing is created on the host's file system).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedTree {
    /// Host directory copied in before start.
    pub src: PathBuf,
    /// Copy the tree back to `src` after the workload exits (copy-in-out workspace).
    pub copy_back: bool,
    /// The tmpfs's size, and the most copy-back writes (`--workspace-max-size`).
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub mode: ServiceMode,
    pub namespaces: Namespaces,
    pub idmap: IdMapPlan,
    pub network: NetworkMode,
    /// Bridge or slirp, egress rules, the runtime's resolver (empty for none and host).
    #[serde(default)]
    pub net: crate::net::NetPlan,
    /// Health checks the supervisor runs inside the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::config::HealthCheck>,
    /// `--timeout`: milliseconds the workload may run from its start; then SIGTERM, and
    /// SIGKILL to the whole sandbox [`TIMEOUT_GRACE_MS`] later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    pub hostname: String,
    pub root: RootSource,
    pub mounts: Vec<MountOp>,
    /// Trees attached by `MountOp::Attach { slot }` (index = slot).
    pub prepared: Vec<PreparedTree>,
    /// The host /etc snapshot `MountOp::EtcView` attaches (tmpfs root, as root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etc_view: Option<EtcView>,
    pub process: ProcessPlan,
    pub landlock: LandlockPlan,
    /// The workload's seccomp filter (default or profile), compiled for this architecture.
    #[serde(with = "crate::seccomp::bpf::hex")]
    pub seccomp_bpf: Vec<SockFilter>,
    /// The mini-init's own filter ([`seccomp::default::init_filter`]): only what init does
    /// once set up. Not the workload's: a user's profile may deny what init needs.
    #[serde(default, with = "crate::seccomp::bpf::hex")]
    pub init_seccomp_bpf: Vec<SockFilter>,
    /// Seccomp notifications the runtime serves (trace, or naming denials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_notify: Option<SeccompNotify>,
    /// seccomp(2) filter flags from the profile (`flags`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seccomp_flags: u32,
    pub on_security_failure: OnFailure,
    /// Whether chroot may replace pivot_root if pivot_root fails (agent mode only, reported).
    pub allow_chroot_fallback: bool,
    /// The sandbox's cgroup and limits; None when the host has no usable cgroup hierarchy
    /// (agent mode only; `warnings` says so).
    pub cgroup: Option<CgroupPlan>,
    /// Protections decided away at plan time (agent mode), reported before start.
    pub warnings: Vec<String>,
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

impl Plan {
    /// Decide everything. `id` is the sandbox id (chosen by the caller).
    pub fn build(cfg: &RunConfig, facts: &HostFacts, id: &str) -> Result<Plan, PlanError> {
        let mode = cfg.service_mode;
        let strict = mode.fail_closed();
        // Policy files must be exactly the pinned ones (and production pins every one).
        for (file, pin, file_flag, pin_flag) in [
            (
                &cfg.seccomp_profile,
                &cfg.seccomp_profile_sha256,
                "--seccomp-profile",
                "--seccomp-profile-sha256",
            ),
            (
                &cfg.caps_policy,
                &cfg.caps_policy_sha256,
                "--caps-policy",
                "--caps-policy-sha256",
            ),
            (
                &cfg.landlock_policy,
                &cfg.landlock_policy_sha256,
                "--landlock-policy",
                "--landlock-policy-sha256",
            ),
        ] {
            match (file, pin) {
                (Some((_, text)), Some(pin)) => {
                    crate::policy::check_pin(pin_flag, text.as_bytes(), pin)?
                }
                (None, Some(_)) => {
                    return Err(cfg_err(
                        pin_flag,
                        format!("there is no {file_flag} to check"),
                    ))
                }
                (Some(_), None) if mode == ServiceMode::Production => {
                    return Err(cfg_err(
                        pin_flag,
                        format!("production mode requires a pin for {file_flag}"),
                    ))
                }
                _ => {}
            }
        }
        if cfg.argv.is_empty() {
            return Err(cfg_err(
                "COMMAND",
                "missing: give the command after `--`, e.g. `nucleus run -- echo hello`",
            ));
        }
        if mode == ServiceMode::Production {
            return Err(cfg_err(
                "--service-mode",
                "production requires enforced --memory and --cpus limits, which this build does not provide yet; use agent or strict-agent",
            ));
        }
        if strict && cfg.network == NetworkMode::Host {
            return Err(cfg_err(
                "--network",
                "host networking is refused in strict-agent and production modes",
            ));
        }
        if let Some(h) = &cfg.hostname {
            RunConfig::validate_hostname(h)?;
        }
        if cfg.network == NetworkMode::Bridge && facts.euid != 0 {
            return Err(cfg_err(
                "--network",
                "bridge networking needs root (it creates host interfaces); use --network slirp",
            ));
        }
        let net = crate::net::NetPlan::build(
            cfg.network,
            &cfg.net,
            mode,
            facts.host_resolv_conf.as_deref(),
            id,
            facts.euid == 0,
        )?;
        cfg.limits.validate(facts.cpus)?;
        // What cannot be applied as asked: agent mode records it, strict modes refuse.
        let mut enforce = crate::enforce::Enforcement::new(mode);
        // An unprivileged caller who asked for no limit (only the default pids cap) is not
        // warned on every run when its cgroup cannot be made (no delegated parent): the cap is
        // kept where it can be. Asking for a limit (or a strict mode) says when it fails.
        let quiet_rootless = facts.euid != 0
            && !strict
            && cfg.limits == crate::cgroup::Limits::default()
            && cfg.cgroup_parent == crate::cgroup::CgroupParent::default();
        let mut cgroup = CgroupPlan::build(&cfg.limits, &facts.cgroup, &cfg.cgroup_parent, id);
        if let Some(c) = &mut cgroup {
            c.quiet_failure = quiet_rootless;
        }
        match &cgroup {
            None if quiet_rootless => {}
            None => enforce.degrade(
                "--pids",
                "no cgroup hierarchy is mounted, so limits cannot be enforced; strict modes refuse to start",
                "resource limits are NOT applied: no cgroup hierarchy is mounted",
            )?,
            Some(c) => {
                for u in &c.unsupported {
                    let (flag, msg) = u.split_once(": ").unwrap_or(("--memory", u));
                    enforce.degrade(
                        flag,
                        format!("{msg}; strict modes refuse to start without it"),
                        format!("limit NOT applied: {u}"),
                    )?;
                }
            }
        }
        if strict && facts.landlock_abi == 0 {
            return Err(cfg_err(
                "--service-mode",
                format!(
                    "Landlock is not available on this kernel; {} mode refuses to start",
                    mode.as_str()
                ),
            ));
        }
        if cfg.time_offset.is_some() && !facts.time_ns {
            return Err(cfg_err(
                "--time-offset",
                "this kernel has no time namespaces",
            ));
        }

        // Identity.
        let rootless = facts.euid != 0;
        let user = cfg.user.clone().unwrap_or(crate::config::UserSpec {
            name: "root".into(),
            uid: 0,
        });
        let gid = cfg.group.as_ref().map(|g| g.gid).unwrap_or(user.uid);
        let group_name = cfg
            .group
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_else(|| user.name.clone());
        if rootless && (user.uid != 0 || gid != 0 || !cfg.additional_groups.is_empty()) {
            return Err(cfg_err(
                "--user",
                "without root only the caller's own id is mapped: the workload runs as uid 0, gid 0 and no extra groups",
            ));
        }
        let idmap = if rootless {
            IdMapPlan::Caller {
                uid: facts.euid,
                gid: facts.egid,
            }
        } else {
            IdMapPlan::PrivateRange { width: ID_RANGE }
        };
        let home = if user.uid == 0 {
            p("/root")
        } else {
            p("/home").join(&user.name)
        };
        let hostname = cfg
            .hostname
            .clone()
            .unwrap_or_else(|| format!("nucleus-{}", &id[..id.len().min(12)]));

        // Root filesystem.
        let mut m: Vec<MountOp> = Vec::new();
        let root = match &cfg.rootfs {
            Some(r) => {
                if !r.is_absolute() {
                    return Err(cfg_err(
                        "--rootfs",
                        format!("{}: must be an absolute path", r.display()),
                    ));
                }
                RootSource::Bind(r.clone())
            }
            None => RootSource::Tmpfs,
        };
        let tmpfs_root = root == RootSource::Tmpfs;
        if tmpfs_root {
            for d in &facts.system_dirs {
                let dst = p("/").join(&d.path);
                match &d.kind {
                    EntryKind::Symlink(t) => m.push(MountOp::Symlink {
                        target: t.clone(),
                        dst,
                    }),
                    _ => m.push(MountOp::Bind {
                        src: p("/").join(&d.path),
                        dst,
                        readonly: true,
                        noexec: false,
                        idmap: false,
                    }),
                }
            }
        }

        // /etc: synthetic identity files plus selected read-only entries.
        let etc_src: PathBuf = match &root {
            RootSource::Tmpfs => p("/etc"),
            RootSource::Bind(r) => r.join("etc"),
        };
        // On the tmpfs root (as root), /etc is one read-only bind of a snapshot the runtime
        // keeps of the host entries (see EtcView); the synthetic files live in /run/nucleus
        // and the snapshot links to them.
        // Not when the user mounts something at or under /etc (the view is read-only; its
        // identity files are links) or over /run/nucleus: then each entry is bound as before.
        let user_dsts = cfg
            .volumes
            .iter()
            .map(|v| v.dst.clone())
            .chain(cfg.tmpfs.iter().map(|t| t.dst.clone()))
            .chain(cfg.provider_configs.iter().map(|pc| home.join(&pc.dst)));
        let clashes = user_dsts.into_iter().any(|d| {
            d.starts_with("/etc")
                || Path::new(ETC_VIEW_LINKS).starts_with(&d)
                || d.starts_with(ETC_VIEW_LINKS)
        });
        let etc_view = match &cfg.etc_views {
            Some(dir) if tmpfs_root && !rootless && !clashes => {
                Some(EtcView::new(dir, &facts.etc_entries))
            }
            _ => None,
        };
        let synthetic_dir = if etc_view.is_some() {
            p(ETC_VIEW_LINKS)
        } else {
            p("/etc")
        };
        if tmpfs_root {
            m.push(MountOp::Mkdir {
                dst: synthetic_dir.clone(),
                mode: 0o755,
            });
        } else {
            m.push(MountOp::Tmpfs {
                dst: p("/etc"),
                mode: 0o755,
                size_bytes: Some(1 << 20),
                noexec: true,
                uid: 0,
                gid: 0,
            });
        }
        let mut extra_groups: Vec<(String, u32)> = Vec::new();
        for g in &cfg.additional_groups {
            extra_groups.push((g.name.clone(), g.gid));
        }
        let resolv = match cfg.network {
            NetworkMode::Host => facts.host_resolv_conf.clone().unwrap_or_default(),
            NetworkMode::None => etc::resolv_conf_offline(),
            NetworkMode::Bridge | NetworkMode::Slirp => net.resolv_conf.clone(),
        };
        let files = [
            (
                "passwd",
                etc::passwd(&user.name, user.uid, gid, &home.to_string_lossy()),
            ),
            ("group", etc::group(&group_name, gid, &extra_groups)),
            ("hosts", etc::hosts(&hostname)),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", resolv),
            ("nsswitch.conf", etc::nsswitch()),
        ];
        for (name, contents) in files {
            m.push(MountOp::File {
                dst: synthetic_dir.join(name),
                contents,
                mode: 0o644,
            });
        }
        // With a view, its entries come with it; otherwise each is bound (or linked) here.
        let entries = match etc_view {
            Some(_) => {
                m.push(MountOp::EtcView { dst: p("/etc") });
                &[][..]
            }
            None => &facts.etc_entries[..],
        };
        for e in entries {
            let name = e.path.to_string_lossy();
            if SYNTHETIC_ETC.contains(&name.as_ref()) {
                continue;
            }
            let dst = p("/etc").join(&e.path);
            if let Some(parent) = e.path.parent().filter(|x| !x.as_os_str().is_empty()) {
                m.push(MountOp::Mkdir {
                    dst: p("/etc").join(parent),
                    mode: 0o755,
                });
            }
            match &e.kind {
                EntryKind::Symlink(t) => m.push(MountOp::Symlink {
                    target: t.clone(),
                    dst,
                }),
                k => m.push(MountOp::BindFromTree {
                    tree: etc_src.clone(),
                    rel: e.path.clone(),
                    dst,
                    dir: matches!(k, EntryKind::Dir),
                }),
            }
        }
        if !tmpfs_root
            && facts.host_ca_certs
            && !facts.etc_entries.iter().any(|e| e.path.starts_with("ssl"))
        {
            // Host CA certificates for a rootfs that brings none.
            m.push(MountOp::Mkdir {
                dst: p("/etc/ssl"),
                mode: 0o755,
            });
            m.push(MountOp::Bind {
                src: p("/etc/ssl/certs"),
                dst: p("/etc/ssl/certs"),
                readonly: true,
                noexec: true,
                idmap: false,
            });
        }

        // /proc
        m.push(MountOp::Proc {
            dst: p("/proc"),
            readonly: !cfg.proc_rw,
        });
        for f in PROC_MASKED_FILES {
            m.push(MountOp::MaskFile {
                dst: p("/proc").join(f),
            });
        }
        for d in PROC_MASKED_DIRS {
            m.push(MountOp::MaskDir {
                dst: p("/proc").join(d),
            });
        }
        if cfg.proc_rw {
            for d in PROC_READONLY {
                m.push(MountOp::ReadonlyIfExists {
                    dst: p("/proc").join(d),
                });
            }
        }
        // /dev
        m.push(MountOp::Tmpfs {
            dst: p("/dev"),
            mode: 0o755,
            size_bytes: Some(64 << 10),
            noexec: true,
            uid: 0,
            gid: 0,
        });
        for d in DEVICES {
            m.push(MountOp::Bind {
                src: p("/dev").join(d),
                dst: p("/dev").join(d),
                readonly: false,
                noexec: false,
                idmap: false,
            });
        }
        m.push(MountOp::Devpts { dst: p("/dev/pts") });
        m.push(MountOp::Symlink {
            target: p("pts/ptmx"),
            dst: p("/dev/ptmx"),
        });
        m.push(MountOp::Tmpfs {
            dst: p("/dev/shm"),
            mode: 0o1777,
            size_bytes: Some(64 << 20),
            noexec: true,
            uid: 0,
            gid: 0,
        });
        m.push(MountOp::Mqueue {
            dst: p("/dev/mqueue"),
        });
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            m.push(MountOp::Symlink {
                target: p(target),
                dst: p("/dev").join(name),
            });
        }
        // /tmp and the private home
        let tmpfs_size = cfg
            .limits
            .memory
            .map_or(DEFAULT_TMPFS_SIZE, |m| m.min(DEFAULT_TMPFS_SIZE));
        m.push(MountOp::Tmpfs {
            dst: p("/tmp"),
            mode: 0o1777,
            size_bytes: Some(tmpfs_size),
            noexec: false,
            uid: 0,
            gid: 0,
        });
        m.push(MountOp::Tmpfs {
            dst: home.clone(),
            mode: 0o700,
            size_bytes: Some(tmpfs_size),
            noexec: false,
            uid: user.uid,
            gid,
        });
        // /sys, last of the fixed mounts: a new sysfs shows the mounter's network namespace,
        // which a thread of the sandbox makes meanwhile (~0.5 ms); placed before /dev the
        // mounts waited ~0.2 ms for it.
        m.push(MountOp::Sysfs { dst: p("/sys") });
        for d in SYS_MASKED_DIRS {
            m.push(MountOp::MaskDir {
                dst: p("/sys").join(d),
            });
        }
        // The sandbox's own cgroup, read-only, where programs look for their limits (the JVM,
        // Go, Node, .NET size heaps and pools from memory.max / cpu.max).
        if cgroup.is_some() {
            m.push(MountOp::Cgroup {
                dst: p("/sys/fs/cgroup"),
            });
        }

        // Landlock: read everywhere, execute only where programs live, write only where the
        // sandbox has its own storage. On the tmpfs root, "where programs live" is said by the
        // mounts: every mount that holds data and no programs is noexec (the root tmpfs with
        // the synthetic /etc files, the /etc entries, /proc, /sys, /dev, /context, provider
        // configs), which also stops mapping its files executable and holds without Landlock.
        // So execute is granted on "/" itself: a rule on the sandbox's own root instead of one
        // on the host's /usr (a host inode shared by every sandbox; that rule cost ~0.2 ms per
        // start, docs/benchmarks.md). On a --rootfs root the image's program trees get it.
        let root_rights = if tmpfs_root {
            FsRight::READ_EXEC
        } else {
            FsRight::READ
        };
        let mut ll: Vec<LandlockRule> = vec![LandlockRule {
            path: p("/"),
            rights: root_rights.to_vec(),
        }];
        if !tmpfs_root {
            for e in &facts.rootfs_entries {
                if NOEXEC_TOP.contains(&e.path.to_string_lossy().as_ref())
                    || matches!(e.kind, EntryKind::File)
                {
                    continue;
                }
                ll.push(LandlockRule {
                    path: p("/").join(&e.path),
                    rights: FsRight::READ_EXEC.to_vec(),
                });
            }
        }
        ll.push(LandlockRule {
            path: p("/dev"),
            rights: FsRight::DEVICE_RW.to_vec(),
        });
        let rw_noexec: Vec<FsRight> = FsRight::READ_WRITE_EXEC
            .iter()
            .copied()
            .filter(|r| *r != FsRight::Execute)
            .collect();
        ll.push(LandlockRule {
            path: p("/dev/shm"),
            rights: rw_noexec,
        });
        ll.push(LandlockRule {
            path: p("/tmp"),
            rights: FsRight::READ_WRITE_EXEC.to_vec(),
        });
        ll.push(LandlockRule {
            path: home.clone(),
            rights: FsRight::READ_WRITE_EXEC.to_vec(),
        });

        // Files in.
        let idmap_user = !rootless;
        let mut prepared = Vec::new();
        let workspace_max = cfg
            .workspace_max_size
            .unwrap_or(crate::config::DEFAULT_WORKSPACE_MAX);
        if let Some(ctx) = &cfg.context {
            abs("--context", ctx)?;
            match cfg.context_mode {
                ContextMode::Copy => {
                    if rootless {
                        return Err(cfg_err(
                            "--context-mode",
                            "copy needs root (the copy goes to a tmpfs the runtime makes on the host); unprivileged, use --context-mode bind (read-only)",
                        ));
                    }
                    prepared.push(PreparedTree {
                        src: ctx.clone(),
                        copy_back: false,
                        max_bytes: workspace_max,
                    });
                    m.push(MountOp::Attach {
                        slot: prepared.len() - 1,
                        dst: p("/context"),
                        readonly: true,
                        noexec: true,
                    });
                }
                ContextMode::Bind => m.push(MountOp::Bind {
                    src: ctx.clone(),
                    dst: p("/context"),
                    readonly: true,
                    noexec: true,
                    idmap: idmap_user,
                }),
            }
            ll.push(LandlockRule {
                path: p("/context"),
                rights: FsRight::READ.to_vec(),
            });
        }
        let mut cwd = home.clone();
        if let Some(ws) = &cfg.workspace {
            abs("--workspace", ws)?;
            let dst = p("/workspace");
            match cfg.workspace_mode {
                WorkspaceMode::BindRw | WorkspaceMode::BindRo => {
                    let ro = cfg.workspace_mode == WorkspaceMode::BindRo;
                    m.push(MountOp::Bind {
                        src: ws.clone(),
                        dst: dst.clone(),
                        readonly: ro,
                        noexec: false,
                        idmap: idmap_user,
                    });
                    let rights = if ro {
                        FsRight::READ_EXEC
                    } else {
                        FsRight::READ_WRITE_EXEC
                    };
                    ll.push(LandlockRule {
                        path: dst.clone(),
                        rights: rights.to_vec(),
                    });
                }
                WorkspaceMode::CopyInOut if rootless => {
                    return Err(cfg_err(
                        "--workspace-mode",
                        "copy-in-out needs root (the copy goes to a tmpfs the runtime makes on the host); unprivileged, use bind-rw or bind-ro",
                    ));
                }
                WorkspaceMode::CopyInOut => {
                    prepared.push(PreparedTree {
                        src: ws.clone(),
                        copy_back: true,
                        max_bytes: workspace_max,
                    });
                    m.push(MountOp::Attach {
                        slot: prepared.len() - 1,
                        dst: dst.clone(),
                        readonly: false,
                        noexec: false,
                    });
                    ll.push(LandlockRule {
                        path: dst.clone(),
                        rights: FsRight::READ_WRITE_EXEC.to_vec(),
                    });
                }
            }
            cwd = dst;
        }
        for v in &cfg.volumes {
            m.push(MountOp::Bind {
                src: v.src.clone(),
                dst: v.dst.clone(),
                readonly: v.readonly,
                noexec: false,
                idmap: idmap_user,
            });
            let rights = if v.readonly {
                FsRight::READ_EXEC
            } else {
                FsRight::READ_WRITE_EXEC
            };
            ll.push(LandlockRule {
                path: v.dst.clone(),
                rights: rights.to_vec(),
            });
        }
        for t in &cfg.tmpfs {
            m.push(MountOp::Tmpfs {
                dst: t.dst.clone(),
                mode: 0o1777,
                size_bytes: Some(t.size_bytes.unwrap_or(tmpfs_size)),
                noexec: false,
                uid: 0,
                gid: 0,
            });
            ll.push(LandlockRule {
                path: t.dst.clone(),
                rights: FsRight::READ_WRITE_EXEC.to_vec(),
            });
        }
        for pc in &cfg.provider_configs {
            let dst = if pc.dst.is_absolute() {
                pc.dst.clone()
            } else {
                home.join(&pc.dst)
            };
            m.push(MountOp::Bind {
                src: pc.src.clone(),
                dst: dst.clone(),
                readonly: true,
                noexec: true,
                idmap: idmap_user,
            });
            ll.push(LandlockRule {
                path: dst,
                rights: FsRight::READ.to_vec(),
            });
        }
        // A --rootfs that lacks a mount point the sandbox needs at its top (a directory with
        // just a static busybox has no /etc, /proc, /tmp…): it cannot be made on the read-only
        // image, so the root becomes a tmpfs with each of the image's top-level entries bound
        // (read-only) or linked on it, as the host's are on the default root.
        let mut root = root;
        if let RootSource::Bind(r) = &root {
            let have: Vec<&Path> = facts
                .rootfs_entries
                .iter()
                .map(|e| e.path.as_path())
                .collect();
            let lacks = m.iter().filter_map(MountOp::creates).any(|d| {
                d.strip_prefix("/")
                    .ok()
                    .and_then(|rel| rel.components().next())
                    .is_some_and(|top| !have.contains(&Path::new(top.as_os_str())))
            });
            if lacks {
                let mut pre = Vec::new();
                for e in &facts.rootfs_entries {
                    let dst = p("/").join(&e.path);
                    match &e.kind {
                        EntryKind::Symlink(t) => pre.push(MountOp::Symlink {
                            target: t.clone(),
                            dst,
                        }),
                        _ => pre.push(MountOp::Bind {
                            src: r.join(&e.path),
                            dst,
                            readonly: true,
                            noexec: false,
                            idmap: false,
                        }),
                    }
                }
                m.splice(0..0, pre);
                m.push(MountOp::RemountRootReadonly);
                root = RootSource::Tmpfs;
            }
        }
        if tmpfs_root {
            m.push(MountOp::RemountRootReadonly);
        }
        if let Some(w) = &cfg.workdir {
            cwd =
                crate::config::container_path("--workdir", &w.to_string_lossy()).or_else(|e| {
                    if w.as_os_str() == "/" {
                        Ok(p("/"))
                    } else {
                        Err(e)
                    }
                })?;
        }

        // Environment: nothing from the host unless asked for.
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            ("HOME".into(), home.to_string_lossy().into_owned()),
            ("HOSTNAME".into(), hostname.clone()),
            ("USER".into(), user.name.clone()),
        ];
        // A terminal needs a type (as docker -t and podman -t set it).
        if cfg.tty {
            env.push(("TERM".into(), "xterm".into()));
        }
        for e in &cfg.env {
            env.retain(|(k, _)| k != &e.key);
            env.push((e.key.clone(), e.value.clone()));
        }

        // --caps-policy: keep lists; unknown names cannot be enforced as written.
        let caps = match &cfg.caps_policy {
            None => None,
            Some((path, text)) => {
                let flag = "--caps-policy";
                let (sets, unknown) = crate::policy::parse_caps(flag, text)
                    .map_err(|e| cfg_err(flag, format!("{}: {}", path.display(), e.message)))?;
                if !unknown.is_empty() {
                    let what = format!(
                        "{}: unknown capabilities {}",
                        path.display(),
                        unknown.join(", ")
                    );
                    enforce.degrade(
                        flag,
                        format!(
                            "{what}; strict modes refuse a policy they cannot enforce as written"
                        ),
                        format!("{flag} {what}: dropped from the policy"),
                    )?;
                }
                Some(sets)
            }
        };
        // The egress table lives in the sandbox's own namespace: a workload that kept
        // CAP_NET_ADMIN could delete it, one with CAP_NET_RAW could send around it.
        if let (Some(c), Some(_)) = (&caps, &net.egress) {
            let held = c.bounding | c.effective | c.permitted | c.ambient;
            for name in ["CAP_NET_ADMIN", "CAP_NET_RAW"] {
                if crate::policy::CapSets::names(held).contains(&name) {
                    return Err(cfg_err(
                        "--caps-policy",
                        format!("keeps {name}, which would let the workload undo the egress policy; drop it or give no --egress-* rule"),
                    ));
                }
            }
        }
        // --landlock-policy: on top of nucleus's rules or alone; its minimum ABI.
        let mut ll_required = vec![];
        if let Some((path, text)) = &cfg.landlock_policy {
            let flag = "--landlock-policy";
            let pol = crate::policy::parse_landlock(flag, text)
                .map_err(|e| cfg_err(flag, format!("{}: {}", path.display(), e.message)))?;
            if facts.landlock_abi < pol.min_abi {
                let what = format!(
                    "{}: needs Landlock ABI {} and this kernel has {}",
                    path.display(),
                    pol.min_abi,
                    facts.landlock_abi
                );
                enforce.degrade(
                    flag,
                    format!("{what}; strict modes refuse to start"),
                    format!(
                        "{flag} {what}: rights newer than ABI {} are not enforced",
                        facts.landlock_abi
                    ),
                )?;
            }
            if pol.base == crate::policy::Base::None {
                ll.clear();
            }
            for r in pol.rules {
                if r.missing == crate::policy::Missing::Error {
                    ll_required.push(r.path.clone());
                }
                ll.push(LandlockRule {
                    path: r.path,
                    rights: r.rights,
                });
            }
        }
        let mut seccomp_flags = 0u32;
        // The default filter as it is, the common case, was compiled ahead of time.
        let precompiled = seccomp::precompiled::default_program().filter(|_| {
            cfg.seccomp_profile.is_none()
                && cfg.seccomp_allow.is_empty()
                && !cfg.seccomp_trace
                && !cfg.seccomp_log_denied
        });
        let compile =
            |f: &Filter| seccomp::compile(f).map_err(|e| PlanError::Seccomp(e.to_string()));
        let (bpf, seccomp_notify) = if let Some(p) = precompiled {
            (p.to_vec(), None)
        } else {
            let filter = match &cfg.seccomp_profile {
                None => seccomp::default::default_filter(&cfg.seccomp_allow)
                    .map_err(|e| PlanError::Seccomp(e.to_string()))?,
                Some((path, text)) => {
                    if !cfg.seccomp_allow.is_empty() {
                        return Err(cfg_err(
                        "--seccomp-allow",
                        "extends the default filter only; with --seccomp-profile, add the syscall to the profile",
                    ));
                    }
                    let bad = |e: seccomp::profile::ProfileError| {
                        cfg_err("--seccomp-profile", format!("{}: {e}", path.display()))
                    };
                    let mut target = seccomp::profile::Target::native(facts.kernel);
                    // Docker/podman rules gated on capabilities follow what --caps-policy keeps.
                    target.caps = caps.as_ref().map_or(0, |c| c.bounding);
                    let c = seccomp::profile::compile(
                        &seccomp::profile::parse(text).map_err(bad)?,
                        &target,
                    )
                    .map_err(bad)?;
                    if !c.unknown.is_empty() {
                        let what = format!(
                        "{}: unknown syscall name(s) {} (not a syscall of any architecture nucleus knows)",
                        path.display(),
                        c.unknown.join(", ")
                    );
                        enforce.degrade(
                            "--seccomp-profile",
                            format!("{what}; strict modes refuse a profile they cannot enforce as written"),
                            format!("--seccomp-profile {what}: rules for them are skipped"),
                        )?;
                    }
                    seccomp_flags = c.flags;
                    c.filter
                }
            };
            if cfg.seccomp_trace {
                (compile(&seccomp::trace_all())?, Some(SeccompNotify::Trace))
            } else if cfg.seccomp_log_denied {
                (
                    compile(&seccomp::notify_denials(&filter))?,
                    Some(SeccompNotify::LogDenied {
                        decide: compile(&filter)?,
                    }),
                )
            } else {
                (compile(&filter)?, None)
            }
        };
        let init_seccomp_bpf = match seccomp::precompiled::init_program() {
            Some(p) => p.to_vec(),
            None => compile(&seccomp::default::init_filter())?,
        };

        Ok(Plan {
            id: id.to_string(),
            mode,
            namespaces: Namespaces {
                user: true,
                pid: true,
                mount: true,
                net: cfg.network != NetworkMode::Host,
                uts: true,
                ipc: true,
                cgroup: true,
                time_offset_secs: cfg.time_offset,
            },
            idmap,
            network: cfg.network,
            net,
            health: cfg.health.clone(),
            timeout_ms: cfg.timeout_ms,
            hostname,
            root,
            mounts: m,
            prepared,
            etc_view,
            process: ProcessPlan {
                argv: cfg.argv.clone(),
                env,
                cwd,
                uid: user.uid,
                gid,
                additional_gids: cfg.additional_groups.iter().map(|g| g.gid).collect(),
                tty: cfg.tty,
                rlimits: cfg.ulimits.clone(),
                caps,
                cpu_count: cfg
                    .limits
                    .cpus_milli
                    .map(|m| m.div_ceil(1000).max(1) as u32),
            },
            landlock: LandlockPlan {
                rules: ll,
                scope_signals_and_sockets: true,
                required: ll_required,
            },
            seccomp_bpf: bpf,
            init_seccomp_bpf,
            seccomp_notify,
            seccomp_flags,
            on_security_failure: if strict {
                OnFailure::Refuse
            } else {
                OnFailure::Degrade
            },
            allow_chroot_fallback: !strict,
            cgroup,
            warnings: enforce.warnings,
        })
    }
}

fn abs(flag: &str, path: &Path) -> Result<(), PlanError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(cfg_err(
            flag,
            format!("{}: must be an absolute path", path.display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_a_window_of_the_allowed_ones() {
        let all = [0, 1, 2, 3, 6, 7];
        assert_eq!(pick_cpus(&all, 2, 0), vec![0, 1]);
        assert_eq!(pick_cpus(&all, 2, 5), vec![0, 7]);
        assert_eq!(pick_cpus(&all, 3, 3), vec![3, 6, 7]);
        assert_eq!(pick_cpus(&all, 6, 1), all.to_vec());
        assert_eq!(pick_cpus(&all, 9, 1), all.to_vec());
        // Different seeds spread single-CPU sandboxes.
        let firsts: std::collections::BTreeSet<usize> =
            (0..6).map(|s| pick_cpus(&all, 1, s)[0]).collect();
        assert_eq!(firsts.len(), 6);
    }
    use crate::host::HostEntry;

    fn facts() -> HostFacts {
        HostFacts {
            euid: 0,
            egid: 0,
            system_dirs: vec![
                HostEntry {
                    path: p("usr"),
                    kind: EntryKind::Dir,
                    stamp: 0,
                },
                HostEntry {
                    path: p("bin"),
                    kind: EntryKind::Symlink(p("usr/bin")),
                    stamp: 0,
                },
            ],
            etc_entries: vec![HostEntry {
                path: p("ld.so.cache"),
                kind: EntryKind::File,
                stamp: 0,
            }],
            landlock_abi: 7,
            time_ns: true,
            cgroup: crate::cgroup::CgroupHost {
                v2_mount: Some(p("/sys/fs/cgroup")),
                v2_controllers: vec!["memory".into(), "pids".into()],
                v2_own: Some("/".into()),
                v1: vec![],
            },
            cpus: 2,
            ..Default::default()
        }
    }

    #[test]
    fn tmpfs_root_grants_execute_on_root_and_mounts_data_noexec() {
        let mut c = cfg(&["true"]);
        c.context = Some(p("/srv/ctx"));
        c.context_mode = ContextMode::Bind;
        c.volumes.push(crate::config::Volume {
            src: p("/srv/tools"),
            dst: p("/tools"),
            readonly: true,
        });
        let plan = Plan::build(&c, &facts(), "id").unwrap();
        let exec: Vec<&Path> = plan
            .landlock
            .rules
            .iter()
            .filter(|r| {
                r.rights.contains(&FsRight::Execute) && !r.rights.contains(&FsRight::WriteFile)
            })
            .map(|r| r.path.as_path())
            .collect();
        // No rule on a host directory (/usr): the root's own rule carries execute.
        assert_eq!(exec, vec![Path::new("/"), Path::new("/tools")]);
        let noexec = |dst: &str| {
            plan.mounts.iter().find_map(|m| match m {
                MountOp::Bind { dst: d, noexec, .. } if d == Path::new(dst) => Some(*noexec),
                _ => None,
            })
        };
        // Data is noexec by mount; programs (system dirs, a read-only volume) are not.
        assert_eq!(noexec("/context"), Some(true));
        assert_eq!(noexec("/usr"), Some(false));
        assert_eq!(noexec("/tools"), Some(false));
        // A --rootfs root holds programs anywhere in the image: "/" is read-only for Landlock
        // and the image's directories (not /etc, /proc, ...) get execute.
        let mut f = facts();
        f.rootfs_entries = vec![
            HostEntry {
                path: p("usr"),
                kind: EntryKind::Dir,
                stamp: 0,
            },
            HostEntry {
                path: p("etc"),
                kind: EntryKind::Dir,
                stamp: 0,
            },
        ];
        let mut c = cfg(&["true"]);
        c.rootfs = Some(p("/srv/rootfs"));
        let plan = Plan::build(&c, &f, "id").unwrap();
        let rights = |path: &str| {
            plan.landlock
                .rules
                .iter()
                .find(|r| r.path == Path::new(path))
                .map(|r| r.rights.contains(&FsRight::Execute))
        };
        assert_eq!(rights("/"), Some(false));
        assert_eq!(rights("/usr"), Some(true));
        assert_eq!(rights("/etc"), None);
    }

    #[test]
    fn etc_is_one_view_of_the_host_entries_keyed_by_their_stamps() {
        let mut c = cfg(&["true"]);
        c.etc_views = Some(p("/run/nucleus/.etc-views"));
        let mut f = facts();
        f.etc_entries.push(HostEntry {
            path: p("passwd"),
            kind: EntryKind::File,
            stamp: 7,
        });
        let plan = Plan::build(&c, &f, "id").unwrap();
        let v = plan.etc_view.clone().unwrap();
        assert_eq!(v.dir(), p("/run/nucleus/.etc-views").join(&v.key));
        // The host's passwd is never taken: the synthetic one is linked instead.
        assert!(v.entries.iter().all(|e| e.path != p("passwd")));
        assert!(plan.mounts.contains(&MountOp::EtcView { dst: p("/etc") }));
        assert!(plan.mounts.iter().any(|m| matches!(m,
            MountOp::File { dst, .. } if dst == &p(ETC_VIEW_LINKS).join("hostname"))));
        assert!(!plan
            .mounts
            .iter()
            .any(|m| matches!(m, MountOp::BindFromTree { .. })));
        // Same entries, same key; an entry changed on the host, a new view.
        let again = Plan::build(&c, &f, "other").unwrap().etc_view.unwrap();
        assert_eq!(again.key, v.key);
        f.etc_entries[0].stamp += 1;
        let changed = Plan::build(&c, &f, "id").unwrap().etc_view.unwrap();
        assert_ne!(changed.key, v.key);
        // A user mount under /etc or over /run/nucleus: one bind per entry, as before.
        for dst in ["/etc/app", "/run", "/run/nucleus/x"] {
            let mut c2 = c.clone();
            c2.volumes.push(crate::config::Volume {
                src: p("/srv/x"),
                dst: p(dst),
                readonly: true,
            });
            assert!(
                Plan::build(&c2, &f, "id").unwrap().etc_view.is_none(),
                "{dst}"
            );
        }
        let mut c2 = c.clone();
        c2.tmpfs.push(crate::config::TmpfsSpec {
            dst: p("/etc/cache"),
            size_bytes: None,
        });
        assert!(Plan::build(&c2, &f, "id").unwrap().etc_view.is_none());
        // Without a place for views, or rootless: one bind per entry, as before.
        c.etc_views = None;
        assert!(Plan::build(&c, &f, "id").unwrap().etc_view.is_none());
        c.etc_views = Some(p("/run/user/1000/nucleus/.etc-views"));
        f.euid = 1000;
        let rootless = Plan::build(&c, &f, "id").unwrap();
        assert!(rootless.etc_view.is_none());
        assert!(rootless
            .mounts
            .iter()
            .any(|m| matches!(m, MountOp::BindFromTree { .. })));
    }

    #[test]
    fn limits_degrade_in_agent_mode_and_refuse_in_strict() {
        let mut c = cfg(&["true"]);
        c.limits.cpus_milli = Some(500);
        // No cpu controller: agent warns, strict names the flag and refuses.
        let plan = Plan::build(&c, &facts(), "id").unwrap();
        assert_eq!(
            plan.warnings,
            vec!["limit NOT applied: --cpus: the cpu controller is not available"]
        );
        assert_eq!(
            plan.cgroup.unwrap().dirs[0].writes.len(),
            1,
            "pids.max only"
        );
        c.service_mode = ServiceMode::StrictAgent;
        let e = Plan::build(&c, &facts(), "id").unwrap_err().to_string();
        assert!(e.starts_with("--cpus: ") && e.contains("refuse"), "{e}");
        // No cgroup hierarchy at all.
        let mut f = facts();
        f.cgroup = Default::default();
        assert!(Plan::build(&c, &f, "id").is_err());
        c.service_mode = ServiceMode::Agent;
        let plan = Plan::build(&c, &f, "id").unwrap();
        assert!(plan.cgroup.is_none());
        assert!(plan.warnings[0].contains("NOT applied"));
        // Over the host's CPUs.
        c.limits.cpus_milli = Some(4000);
        assert!(Plan::build(&c, &facts(), "id")
            .unwrap_err()
            .to_string()
            .contains("2 CPUs"));
    }

    fn cfg(argv: &[&str]) -> RunConfig {
        RunConfig {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn default_plan_shape() {
        let plan = Plan::build(&cfg(&["true"]), &facts(), "0123456789abcdef").unwrap();
        assert!(plan.namespaces.user && plan.namespaces.net && plan.namespaces.pid);
        assert_eq!(plan.idmap, IdMapPlan::PrivateRange { width: 65536 });
        assert_eq!(plan.hostname, "nucleus-0123456789ab");
        assert!(plan.mounts.contains(&MountOp::Symlink {
            target: p("usr/bin"),
            dst: p("/bin")
        }));
        assert!(plan.mounts.contains(&MountOp::Bind {
            src: p("/usr"),
            dst: p("/usr"),
            readonly: true,
            noexec: false,
            idmap: false
        }));
        assert_eq!(plan.mounts.last(), Some(&MountOp::RemountRootReadonly));
        assert_eq!(plan.process.cwd, p("/root"));
        assert!(plan
            .process
            .env
            .iter()
            .any(|(k, v)| k == "PATH" && v == DEFAULT_PATH));
        assert_eq!(plan.on_security_failure, OnFailure::Degrade);
        // Execute comes with the root's rule (data mounts are noexec); no rule names /etc.
        let root = &plan.landlock.rules[0];
        assert_eq!(root.path, p("/"));
        assert!(root.rights.contains(&FsRight::Execute));
        assert!(!plan
            .landlock
            .rules
            .iter()
            .any(|r| r.path.starts_with("/etc")));
    }

    #[test]
    fn strict_refuses_host_network_and_degradation() {
        let mut c = cfg(&["true"]);
        c.service_mode = ServiceMode::StrictAgent;
        assert_eq!(
            Plan::build(&c, &facts(), "id").unwrap().on_security_failure,
            OnFailure::Refuse
        );
        assert!(
            !Plan::build(&c, &facts(), "id")
                .unwrap()
                .allow_chroot_fallback
        );
        c.network = NetworkMode::Host;
        assert!(Plan::build(&c, &facts(), "id")
            .unwrap_err()
            .to_string()
            .starts_with("--network"));
    }

    #[test]
    fn missing_command_and_rootless_user() {
        assert!(Plan::build(&cfg(&[]), &facts(), "id")
            .unwrap_err()
            .to_string()
            .starts_with("COMMAND"));
        let mut f = facts();
        f.euid = 1000;
        let mut c = cfg(&["id"]);
        assert_eq!(
            Plan::build(&c, &f, "id").unwrap().idmap,
            IdMapPlan::Caller { uid: 1000, gid: 0 }
        );
        c.user = Some(crate::config::UserSpec::parse("5").unwrap());
        assert!(Plan::build(&c, &f, "id").is_err());
    }

    #[test]
    fn workspace_modes() {
        let mut c = cfg(&["ls"]);
        c.workspace = Some(p("/src"));
        let plan = Plan::build(&c, &facts(), "id").unwrap();
        assert_eq!(plan.process.cwd, p("/workspace"));
        assert!(plan.mounts.contains(&MountOp::Bind {
            src: p("/src"),
            dst: p("/workspace"),
            readonly: false,
            noexec: false,
            idmap: true
        }));
        c.workspace_mode = WorkspaceMode::CopyInOut;
        let plan = Plan::build(&c, &facts(), "id").unwrap();
        assert_eq!(
            plan.prepared,
            vec![PreparedTree {
                src: p("/src"),
                copy_back: true,
                max_bytes: crate::config::DEFAULT_WORKSPACE_MAX,
            }]
        );
        assert!(plan.mounts.contains(&MountOp::Attach {
            slot: 0,
            dst: p("/workspace"),
            readonly: false,
            noexec: false
        }));
    }

    #[test]
    fn env_overrides_defaults() {
        let mut c = cfg(&["env"]);
        c.env.push(crate::config::EnvVar {
            key: "PATH".into(),
            value: "/x".into(),
        });
        let plan = Plan::build(&c, &facts(), "id").unwrap();
        assert_eq!(
            plan.process.env.iter().filter(|(k, _)| k == "PATH").count(),
            1
        );
        assert!(plan.process.env.contains(&("PATH".into(), "/x".into())));
    }

    #[test]
    fn policies_pins_and_min_abi() {
        let mut c = cfg(&["true"]);
        c.landlock_policy = Some((p("/p.toml"), "min_abi = 5\n".into()));
        let mut f = facts();
        f.landlock_abi = 3;
        // Agent: warns; strict: refuses.
        let plan = Plan::build(&c, &f, "id").unwrap();
        assert!(
            plan.warnings.iter().any(|w| w.contains("ABI 5")),
            "{:?}",
            plan.warnings
        );
        c.service_mode = ServiceMode::StrictAgent;
        let e = Plan::build(&c, &f, "id").unwrap_err().to_string();
        assert!(
            e.contains("--landlock-policy") && e.contains("ABI 5"),
            "{e}"
        );
        // Production needs a pin for every policy file (checked before anything else).
        c.service_mode = ServiceMode::Production;
        let e = Plan::build(&c, &f, "id").unwrap_err().to_string();
        assert!(
            e.contains("--landlock-policy-sha256") && e.contains("production"),
            "{e}"
        );
        c.landlock_policy_sha256 = Some(crate::policy::sha256_hex(b"min_abi = 5\n"));
        let e = Plan::build(&c, &f, "id").unwrap_err().to_string();
        assert!(!e.contains("sha256"), "the pin matches: {e}");
        // Caps policy in the plan.
        let mut c = cfg(&["true"]);
        c.caps_policy = Some((p("/c.toml"), "bounding = [\"CHOWN\"]\n".into()));
        let plan = Plan::build(&c, &facts(), "id").unwrap();
        assert_eq!(plan.process.caps.unwrap().bounding, 1);
    }

    #[test]
    fn strict_modes_refuse_a_kernel_without_landlock_at_plan_time() {
        let mut f = facts();
        f.landlock_abi = 0;
        let mut c = cfg(&["true"]);
        assert!(Plan::build(&c, &f, "id").is_ok(), "agent mode degrades");
        c.service_mode = ServiceMode::StrictAgent;
        let e = Plan::build(&c, &f, "id").unwrap_err().to_string();
        assert!(e.contains("Landlock") && e.contains("strict-agent"), "{e}");
    }
}
