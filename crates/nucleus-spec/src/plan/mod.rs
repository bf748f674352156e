//! The plan: every decision for one sandbox, made here once. The executor (`nucleus_sys`)
//! interprets it without branching on the configuration.

mod admission;
mod capabilities;
mod files_in;
mod fixed_mounts;
mod identity;
mod landlock;
mod process;
mod rootfs;
mod seccomp;

pub use fixed_mounts::*;
pub use process::*;
pub use rootfs::*;

use crate::cgroup::CgroupPlan;
use crate::config::{ConfigError, NetworkMode, RunConfig, ServiceMode};
use crate::enforce::Enforcement;
use crate::host::HostFacts;
use crate::landlock::{FsRight, LandlockPlan, LandlockRule};
use crate::mounts::{MountOp, RootSource};
use crate::seccomp::SockFilter;
use identity::Identity;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// An OCI container's seccomp agent (`linux.seccomp.listenerPath`): the listener goes to
    /// the unix socket at `path` with the container's process state; the agent serves it.
    Agent {
        path: PathBuf,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        metadata: String,
    },
}

/// The offsets of a time namespace: (seconds, nanoseconds) added to CLOCK_MONOTONIC and to
/// CLOCK_BOOTTIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeOffsets {
    pub monotonic: (i64, u32),
    pub boottime: (i64, u32),
}

impl TimeOffsets {
    /// As /proc/PID/timens_offsets takes them.
    pub fn proc_text(&self) -> String {
        format!(
            "monotonic {} {}\nboottime {} {}\n",
            self.monotonic.0, self.monotonic.1, self.boottime.0, self.boottime.1
        )
    }
}

impl Namespaces {
    /// A time namespace of its own (nucleus's --time-offset, or an OCI container's).
    pub fn has_time(&self) -> bool {
        self.time_offset_secs.is_some() || self.time_offsets.is_some()
    }
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
    /// No user namespace: ids are the host's (an OCI bundle without one).
    Host,
    /// The ranges an OCI bundle gives (`linux.uidMappings`, `linux.gidMappings`).
    Explicit {
        uid: Vec<IdRange>,
        gid: Vec<IdRange>,
    },
}

/// `size` ids from `container` inside map to `host` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// A kind of namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsKind {
    User,
    Pid,
    Mount,
    Net,
    Uts,
    Ipc,
    Cgroup,
    Time,
}

/// An existing namespace the sandbox joins (OCI `linux.namespaces[].path`: how CNI and
/// podman's netavark hand over a prepared network namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsJoin {
    pub kind: NsKind,
    pub path: PathBuf,
}

/// Who supervises the sandbox once it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Supervisor {
    /// nucleus: the sandbox's mini-init forwards signals and reaps, the runtime (foreground
    /// or its monitor) waits for it and removes what was the sandbox's.
    #[default]
    Nucleus,
    /// The OCI caller (conmon, containerd's shim): the workload is the sandbox's PID 1, the
    /// runtime leaves once it is set up, and the workload execs only when `start` opens
    /// `fifo` (runc's exec.fifo).
    Caller { fifo: PathBuf },
}

impl Supervisor {
    pub fn is_nucleus(&self) -> bool {
        *self == Supervisor::Nucleus
    }
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
    /// An OCI container's time namespace (`linux.timeOffsets`), made by the runtime before the
    /// clone: the container's process is its first member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_offsets: Option<TimeOffsets>,
    /// Existing namespaces to join instead of making new ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<NsJoin>,
    /// The runtime itself runs in a user namespace that is not the host's (rootless
    /// podman's): device nodes are bound from the host's /dev, never made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inside_user: bool,
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
    /// Not a copy of `src` (empty then) but these secrets: each read by the runtime into the
    /// tmpfs as one file, 0400, owned by the workload (the directory 0500). Only their names
    /// and host paths are here; their contents never are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::config::Secret>,
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
    /// When the service is ready (the supervisor tells the caller's NOTIFY_SOCKET, the record
    /// and the events).
    #[serde(default, skip_serializing_if = "crate::config::Readiness::is_started")]
    pub readiness: crate::config::Readiness,
    /// `--restart`, `--health-on-failure` (the monitor of a detached sandbox acts on them).
    #[serde(default, skip_serializing_if = "crate::config::RestartPolicy::is_no")]
    pub restart: crate::config::RestartPolicy,
    #[serde(
        default,
        skip_serializing_if = "crate::config::HealthOnFailure::is_none"
    )]
    pub health_on_failure: crate::config::HealthOnFailure,
    /// `--sd-notify`: the runtime's socket (bound into the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_socket: Option<PathBuf>,
    /// Health checks the supervisor runs inside the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::config::HealthCheck>,
    /// `--timeout`: milliseconds the workload may run from its start; then SIGTERM, and
    /// SIGKILL to the whole sandbox [`TIMEOUT_GRACE_MS`] later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Set in the sandbox's uts namespace when not empty.
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    pub root: RootSource,
    /// The root is an attested tree: the sandbox mounts its sealed image in place of the
    /// directory (`root` and the binds from it name the directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attested: Option<crate::attest::AttestedRoot>,
    /// The root mount's propagation (MS_SHARED/SLAVE/PRIVATE/UNBINDABLE, MS_REC), set once
    /// the root is switched (OCI `linux.rootfsPropagation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_propagation: Option<u64>,
    pub mounts: Vec<MountOp>,
    /// Trees attached by `MountOp::Attach { slot }` (index = slot).
    pub prepared: Vec<PreparedTree>,
    /// The host /etc snapshot `MountOp::EtcView` attaches (tmpfs root, as root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etc_view: Option<EtcView>,
    pub process: ProcessPlan,
    /// None: no Landlock domain at all (an OCI bundle).
    pub landlock: Option<LandlockPlan>,
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
    #[serde(default, skip_serializing_if = "Supervisor::is_nucleus")]
    pub supervisor: Supervisor,
    /// `--checkpointable`: the workload is the sandbox's PID 1 (no mini-init: CRIU can save
    /// only what lives in the sandbox, and init is a fork of the runtime, mapped from the
    /// host's binary), with no Landlock and masks of their own (docs/checkpoint.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checkpointable: bool,
    /// An OCI container's bundle and annotations: what its state says (for hooks and a
    /// seccomp agent) beside its id, status and pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<crate::state::OciRecord>,
    /// An OCI container's hooks (config.json `hooks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// Host network interfaces moved into the container's network namespace at create, as
    /// (host name, name inside) (OCI `linux.netDevices`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net_devices: Vec<(String, String)>,
    /// `--runtime gvisor`: runsc runs the sandbox (see [`crate::gvisor`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gvisor: Option<crate::gvisor::GvisorPlan>,
    /// Protections decided away at plan time (agent mode), reported before start.
    pub warnings: Vec<String>,
}

/// An OCI container's hooks, each kind run in order at its point of the lifecycle with the
/// container's state (runtime-spec `state`) on its standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// Deprecated by the runtime-spec but what Docker's networking uses: run by the runtime,
    /// in its namespaces, once the container's namespaces exist (before `create` returns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    /// Same point as prestart, after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    /// Run by the container's process in its namespaces, before its root switch (the path
    /// resolves in the runtime's view of the file system).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_container: Vec<Hook>,
    /// Run by the container's process once started, before its program (the path resolves
    /// in the container).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    /// Run by `start` once the program runs; a failure is a warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    /// Run by `delete` once the container is gone; a failure is a warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

/// One hook: runtime-spec `hooks.*[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Its name in messages: `hooks.prestart[0]`.
    pub field: String,
    pub path: PathBuf,
    /// Its argv (argv[0] included); empty: the path alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Its whole environment (nothing of the runtime's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Killed, and failed, after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

impl Plan {
    /// An OCI container's state as hooks and its seccomp agent read it (its bundle and
    /// annotations from config.json; none for nucleus's own sandboxes).
    pub fn oci_state(&self, status: &str, pid: i32) -> serde_json::Value {
        let o = self.oci.clone().unwrap_or_default();
        o.state(&self.id, status, pid)
    }
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

impl Plan {
    /// Decide everything. `id` is the sandbox id (chosen by the caller). One area at a time,
    /// in this order (a later area may read what an earlier one decided; the mounts and the
    /// Landlock rules keep the order they are added in).
    pub fn build(cfg: &RunConfig, facts: &HostFacts, id: &str) -> Result<Plan, PlanError> {
        let gvisor = crate::gvisor::decide(cfg, facts)?;
        let mut d = Draft::new(cfg, facts);
        let admitted = admission::admit(&mut d, id)?;
        let who = Identity::decide(cfg, facts, id)?;
        let root = rootfs::root_source(&mut d)?;
        let etc_view = rootfs::etc(&mut d, &root, &who, &admitted.net);
        fixed_mounts::proc(&mut d);
        fixed_mounts::dev(&mut d);
        fixed_mounts::tmp_and_home(&mut d, &who);
        fixed_mounts::sys(&mut d, admitted.cgroup.is_some());
        landlock::base_rules(&mut d, &root, &who);
        let workspace = files_in::files_in(&mut d, &who)?;
        files_in::secrets(&mut d, &who, &root)?;
        let root = rootfs::seal_root(&mut d, root);
        let cwd = process::cwd(cfg, &who, workspace)?;
        let env = process::env(cfg, &who);
        let caps = capabilities::policy(&mut d)?;
        capabilities::guard_egress(caps.as_ref(), &admitted.net)?;
        let landlock_required = landlock::user_policy(&mut d)?;
        let filters = seccomp::filters(&mut d, caps.as_ref())?;
        let landlock_on = !cfg.checkpointable
            || d.enforce
                .degrade(
                    "--checkpointable",
                    "strict modes keep Landlock, which CRIU cannot save (a restored workload \
                     would run without it); checkpointable sandboxes are agent mode only",
                    "Landlock NOT applied: --checkpointable (CRIU cannot save a Landlock domain)",
                )
                .map(|()| false)?;

        let strict = cfg.service_mode.fail_closed();
        let plan = Plan {
            id: id.to_string(),
            mode: cfg.service_mode,
            namespaces: Namespaces {
                user: true,
                pid: true,
                mount: true,
                net: cfg.network != NetworkMode::Host,
                uts: true,
                ipc: true,
                cgroup: true,
                time_offset_secs: cfg.time_offset,
                time_offsets: None,
                join: Vec::new(),
                inside_user: false,
            },
            idmap: who.idmap,
            network: cfg.network,
            net: admitted.net,
            health: cfg.health.clone(),
            readiness: cfg.readiness.clone(),
            notify_socket: cfg.notify_socket.clone(),
            restart: cfg.restart,
            health_on_failure: cfg.health_on_failure,
            timeout_ms: cfg.timeout_ms,
            hostname: who.hostname.clone(),
            domainname: None,
            root,
            attested: cfg
                .rootfs_attest
                .clone()
                .map(|a| crate::attest::AttestedRoot {
                    source: cfg.rootfs.clone().unwrap_or_default(),
                    ..a
                }),
            root_propagation: None,
            mounts: d.mounts,
            prepared: d.prepared,
            etc_view,
            process: ProcessPlan {
                argv: cfg.argv.clone(),
                env,
                cwd,
                uid: who.user.uid,
                gid: who.gid,
                additional_gids: cfg.additional_groups.iter().map(|g| g.gid).collect(),
                tty: cfg.tty,
                rlimits: cfg.ulimits.clone(),
                caps,
                cpu_count: cfg
                    .limits
                    .cpus_milli
                    .map(|m| m.div_ceil(1000).max(1) as u32),
                umask: None,
                no_new_privs: true,
                oom_score_adj: None,
                personality: None,
                preserve_fds: 0,
                tuning: Default::default(),
            },
            landlock: landlock_on.then_some(LandlockPlan {
                rules: d.rules,
                scope_signals_and_sockets: true,
                required: landlock_required.paths,
                min_abi: landlock_required.min_abi,
            }),
            seccomp_bpf: filters.workload,
            init_seccomp_bpf: filters.init,
            seccomp_notify: filters.notify,
            seccomp_flags: filters.flags,
            on_security_failure: if strict {
                OnFailure::Refuse
            } else {
                OnFailure::Degrade
            },
            allow_chroot_fallback: !strict,
            cgroup: admitted.cgroup,
            supervisor: Supervisor::Nucleus,
            checkpointable: cfg.checkpointable,
            oci: None,
            hooks: None,
            net_devices: Vec::new(),
            gvisor: None,
            warnings: d.enforce.warnings,
        };
        Ok(match gvisor {
            Some(g) => crate::gvisor::apply(plan, g),
            None => plan,
        })
    }
}

/// The plan while it is built: the inputs, the mounts and Landlock rules so far (in order),
/// the trees to prepare, and what could not be applied as asked.
struct Draft<'a> {
    cfg: &'a RunConfig,
    facts: &'a HostFacts,
    mounts: Vec<MountOp>,
    rules: Vec<LandlockRule>,
    prepared: Vec<PreparedTree>,
    enforce: Enforcement,
}

impl<'a> Draft<'a> {
    fn new(cfg: &'a RunConfig, facts: &'a HostFacts) -> Self {
        Self {
            cfg,
            facts,
            mounts: Vec::new(),
            rules: Vec::new(),
            prepared: Vec::new(),
            enforce: Enforcement::new(cfg.service_mode),
        }
    }

    fn mount(&mut self, op: MountOp) {
        self.mounts.push(op);
    }

    fn rule(&mut self, path: PathBuf, rights: &[FsRight]) {
        self.rules.push(LandlockRule {
            path,
            rights: rights.to_vec(),
        });
    }

    /// A mount and the Landlock rights on what it mounts, always together.
    fn grant(&mut self, op: MountOp, rights: &[FsRight]) {
        if let Some(dst) = op.creates() {
            self.rule(dst.to_path_buf(), rights);
        }
        self.mount(op);
    }

    /// A tree to copy in before start; its slot for `MountOp::Attach`.
    fn prepare(&mut self, tree: PreparedTree) -> usize {
        self.prepared.push(tree);
        self.prepared.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ContextMode, WorkspaceMode};
    use crate::host::EntryKind;
    use std::path::Path;

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
            .as_ref()
            .unwrap()
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
                .as_ref()
                .unwrap()
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
        let root = &plan.landlock.as_ref().unwrap().rules[0];
        assert_eq!(root.path, p("/"));
        assert!(root.rights.contains(&FsRight::Execute));
        assert!(!plan
            .landlock
            .as_ref()
            .unwrap()
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
                secrets: Vec::new(),
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
