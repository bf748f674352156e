//! config.json → [`Plan`]: what the bundle asks for, nothing of nucleus's agent defaults.

use super::options;
use super::Bundle;
use crate::cgroup::{CgroupParent, CgroupPlan, IoLimit, Limits, ScopeValue, SwapLimit, Writes};
use crate::config::{ConfigError, NetworkMode, RlimitResource, ServiceMode, Ulimit};
use crate::host::HostFacts;
use crate::mounts::{DeviceKind, IdMapping, MountOp, RootSource};
use crate::plan::{
    Hook, Hooks, IdMapPlan, IdRange, MemPolicy, Namespaces, NsJoin, NsKind, OnFailure, Plan,
    PlanError, ProcessPlan, ProcessTuning, SchedAttr, Supervisor,
};
use crate::policy::{cap_number, CapSets};
use oci_spec::runtime::{
    Capabilities, LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, LinuxResources, Spec,
};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// What the command line adds to the bundle.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The container id.
    pub id: &'a str,
    /// The bundle directory (absolute).
    pub bundle: &'a Path,
    /// The exec fifo the process opens before its exec; `start` reads it.
    pub fifo: PathBuf,
    /// `--no-pivot`: chroot instead of pivot_root (ramfs roots).
    pub no_pivot: bool,
    /// `--systemd-cgroup`: cgroupsPath is systemd's `slice:prefix:name`, the cgroup a
    /// transient scope systemd makes.
    pub systemd_cgroup: bool,
    /// The runtime is uid 0 of a user namespace, not the host's root (rootless podman runs
    /// it so): a container that asks for no resources goes without a cgroup where none can
    /// be made, as under runc.
    pub rootless: bool,
    pub facts: &'a HostFacts,
}

fn refuse(field: &str, msg: impl Into<String>) -> PlanError {
    PlanError::Config(ConfigError::new(field, msg))
}

/// Translate. Every property is either honoured or refused naming it.
pub fn plan(b: &Bundle, cx: &Context) -> Result<Plan, PlanError> {
    let spec = &b.spec;
    refuse_unsupported(b)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| refuse("process", "required: the container has nothing to run"))?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| refuse("linux", "required for a Linux container"))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| refuse("root.path", "required"))?;
    let root_path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        cx.bundle.join(root.path())
    };

    let (namespaces, join) = namespaces(spec)?;
    let idmap = if namespaces.user {
        IdMapPlan::Explicit {
            uid: ranges("linux.uidMappings", linux.uid_mappings().as_deref())?,
            gid: ranges("linux.gidMappings", linux.gid_mappings().as_deref())?,
        }
    } else {
        if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(refuse(
                "linux.uidMappings",
                "given without a user namespace in linux.namespaces",
            ));
        }
        IdMapPlan::Host
    };
    let hostname = spec.hostname().clone().unwrap_or_default();
    if !hostname.is_empty() && !namespaces.uts {
        return Err(refuse(
            "hostname",
            "needs a new uts namespace (it would rename the host)",
        ));
    }
    if let Some(d) = spec.domainname() {
        if !d.is_empty() && !namespaces.uts {
            return Err(refuse(
                "domainname",
                "needs a new uts namespace (it would rename the host's domain)",
            ));
        }
    }

    let mut mounts = Vec::new();
    let mut dev_tmpfs = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        // (oci-spec's Mount has no id maps: read from the document.)
        let maps = |k: &str| -> Result<Option<Vec<LinuxIdMapping>>, PlanError> {
            match b.raw["mounts"][i].get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => serde_json::from_value(v.clone())
                    .map(Some)
                    .map_err(|e| refuse(&format!("{field}.{k}"), e.to_string())),
            }
        };
        let (uid_maps, gid_maps) = (maps("uidMappings")?, maps("gidMappings")?);
        let mut op = mount(
            &field,
            m,
            cx.bundle,
            uid_maps.is_some() || gid_maps.is_some(),
        )?;
        if let MountOp::Oci {
            idmap: Some(map), ..
        } = &mut op
        {
            // The mount's own maps, else the container's (runtime-spec): one is needed.
            let own_ranges = |k: &str, v: &Option<Vec<LinuxIdMapping>>| match v {
                Some(v) => ranges(&format!("{field}.{k}"), Some(v)),
                None => Ok(Vec::new()),
            };
            let own = (
                own_ranges("uidMappings", &uid_maps)?,
                own_ranges("gidMappings", &gid_maps)?,
            );
            (map.uid, map.gid) = match (own, &idmap) {
                ((u, g), _) if !u.is_empty() && !g.is_empty() => (u, g),
                ((u, g), IdMapPlan::Explicit { uid, gid }) if u.is_empty() && g.is_empty() => {
                    (uid.clone(), gid.clone())
                }
                _ => {
                    return Err(refuse(
                        &format!("{field}.uidMappings"),
                        "an idmapped mount needs both uidMappings and gidMappings, or a container user namespace whose maps it takes",
                    ))
                }
            };
        }
        if let MountOp::Oci { dst, options, .. } = &op {
            dev_tmpfs |= dst == Path::new("/dev") && !options.is_bind();
        }
        mounts.push(op);
    }
    mounts.extend(devices(
        linux.devices().as_deref().unwrap_or(&[]),
        dev_tmpfs,
    )?);
    // Written once /proc is mounted and before /proc/sys turns read-only (runc's order).
    for (key, value) in sysctl(linux.sysctl().as_ref(), &namespaces, &join)? {
        mounts.push(MountOp::Sysctl { key, value });
    }
    for (i, p) in linux.masked_paths().iter().flatten().enumerate() {
        mounts.push(MountOp::Mask {
            dst: container_path(&format!("linux.maskedPaths[{i}]"), p)?,
        });
    }
    for (i, p) in linux.readonly_paths().iter().flatten().enumerate() {
        mounts.push(MountOp::ReadonlyIfExists {
            dst: container_path(&format!("linux.readonlyPaths[{i}]"), p)?,
        });
    }
    if root.readonly().unwrap_or(false) {
        mounts.push(MountOp::RemountRootReadonly);
    }

    let root_propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => None,
        Some(p) => Some(propagation("linux.rootfsPropagation", p)?),
    };

    let (seccomp_bpf, seccomp_flags, seccomp_notify) = seccomp(b, cx)?;
    let cgroup = cgroup(
        linux.resources().as_ref(),
        linux.cgroups_path().as_deref(),
        &mounts,
        cx,
    )?;

    let mut process = process_plan(process)?;
    process.personality = personality(&b.raw)?;
    process.tuning.memory_policy = memory_policy(linux.memory_policy().as_ref())?;

    Ok(Plan {
        id: cx.id.to_string(),
        mode: ServiceMode::default(),
        namespaces: Namespaces {
            join,
            inside_user: cx.rootless,
            ..namespaces
        },
        idmap,
        network: if namespaces.net {
            NetworkMode::None
        } else {
            NetworkMode::Host
        },
        net: Default::default(),
        health: None,
        timeout_ms: None,
        hostname,
        domainname: spec.domainname().clone().filter(|d| !d.is_empty()),
        root: RootSource::Dir {
            path: root_path,
            readonly: root.readonly().unwrap_or(false),
        },
        root_propagation,
        attested: None,
        readiness: Default::default(),
        notify_socket: None,
        restart: Default::default(),
        health_on_failure: Default::default(),
        mounts,
        prepared: Vec::new(),
        etc_view: None,
        process,
        landlock: None,
        seccomp_bpf,
        init_seccomp_bpf: Vec::new(),
        seccomp_notify,
        seccomp_flags,
        on_security_failure: OnFailure::Refuse,
        allow_chroot_fallback: cx.no_pivot,
        cgroup,
        supervisor: Supervisor::Caller {
            fifo: cx.fifo.clone(),
        },
        checkpointable: false,
        oci: Some(crate::state::OciRecord {
            bundle: cx.bundle.to_path_buf(),
            annotations: b.annotations(),
            stdio: None,
        }),
        hooks: hooks(b)?,
        net_devices: net_devices(linux.net_devices().as_ref(), namespaces.net)?,
        gvisor: None,
        warnings: if b.unknown.is_empty() {
            vec![]
        } else {
            vec![format!(
                "config.json: ignored properties the runtime-spec does not define: {}",
                b.unknown.join(", ")
            )]
        },
    })
}

/// `linux.netDevices`: host interfaces to move into the container's network namespace
/// (its own, made or joined), each under the name it asks for or its own.
fn net_devices(
    d: Option<&std::collections::HashMap<String, oci_spec::runtime::LinuxNetDevice>>,
    own_netns: bool,
) -> Result<Vec<(String, String)>, PlanError> {
    let Some(d) = d.filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    if !own_netns {
        return Err(refuse(
            "linux.netDevices",
            "needs the container's own network namespace (a network entry in linux.namespaces)",
        ));
    }
    // An interface name as the kernel takes it (dev_valid_name).
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() < 16
            && n != "."
            && n != ".."
            && !n.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    };
    let mut out: Vec<(String, String)> = Vec::new();
    let mut keys: Vec<&String> = d.keys().collect();
    keys.sort();
    for host in keys {
        let field = format!("linux.netDevices.{host}");
        if !valid(host) {
            return Err(refuse(
                &field,
                "not an interface name (1 to 15 bytes, no / : or spaces)",
            ));
        }
        let inside = d[host]
            .name()
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or(host.clone());
        if !valid(&inside) {
            return Err(refuse(
                &format!("{field}.name"),
                "not an interface name (1 to 15 bytes, no / : or spaces)",
            ));
        }
        if out.iter().any(|(_, i)| *i == inside) {
            return Err(refuse(
                &format!("{field}.name"),
                format!("{inside:?} is given twice"),
            ));
        }
        out.push((host.clone(), inside));
    }
    Ok(out)
}

/// `linux.memoryPolicy`: set_mempolicy(2)'s mode (with its flags) and nodes, checked as the
/// kernel would.
fn memory_policy(
    m: Option<&oci_spec::runtime::LinuxMemoryPolicy>,
) -> Result<Option<MemPolicy>, PlanError> {
    use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let Some(m) = m else { return Ok(None) };
    let field = "linux.memoryPolicy";
    let (mode, needs_nodes, takes_nodes) = match m.mode() {
        M::MpolDefault => (0, false, false),
        M::MpolPreferred => (1, false, true),
        M::MpolBind => (2, true, true),
        M::MpolInterleave => (3, true, true),
        M::MpolLocal => (4, false, false),
        M::MpolPreferredMany => (5, true, true),
        M::MpolWeightedInterleave => (6, true, true),
    };
    let nodes = match m.nodes().as_deref().filter(|n| !n.is_empty()) {
        Some(n) => crate::plan::parse_cpu_list(n)
            .map_err(|e| refuse(&format!("{field}.nodes"), e.replace("CPU", "node")))?,
        None => Vec::new(),
    };
    if needs_nodes && nodes.is_empty() {
        return Err(refuse(
            &format!("{field}.nodes"),
            "this mode needs nodes (e.g. 0-1)",
        ));
    }
    if !takes_nodes && !nodes.is_empty() {
        return Err(refuse(
            &format!("{field}.nodes"),
            "MPOL_DEFAULT and MPOL_LOCAL take no nodes",
        ));
    }
    let flags: Vec<F> = m.flags().clone().unwrap_or_default();
    if flags.contains(&F::MpolFStaticNodes) && flags.contains(&F::MpolFRelativeNodes) {
        return Err(refuse(
            &format!("{field}.flags"),
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ));
    }
    let bits = flags.iter().fold(0u32, |a, f| {
        a | match f {
            F::MpolFStaticNodes => 1 << 15,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFNumaBalancing => 1 << 13,
        }
    });
    Ok(Some(MemPolicy {
        mode: mode | bits,
        nodes,
    }))
}

/// `linux.personality` (read from the document: oci-spec's type drops unknown domains):
/// LINUX or LINUX32, without flags (runc's rule: the flags have no meaning it applies).
fn personality(raw: &serde_json::Value) -> Result<Option<u32>, PlanError> {
    let Some(p) = raw.get("linux").and_then(|l| l.get("personality")) else {
        return Ok(None);
    };
    if p.is_null() {
        return Ok(None);
    }
    let domain = match p.get("domain").and_then(|d| d.as_str()) {
        Some("LINUX") => 0,
        Some("LINUX32") => 8,
        d => {
            return Err(refuse(
                "linux.personality.domain",
                format!("{d:?}: LINUX or LINUX32"),
            ))
        }
    };
    if p.get("flags")
        .and_then(|f| f.as_array())
        .is_some_and(|f| !f.is_empty())
    {
        return Err(refuse(
            "linux.personality.flags",
            "no personality flags are supported",
        ));
    }
    Ok(Some(domain))
}

/// config.json's `hooks`, None without any. A hook's path must be absolute (runtime-spec); a
/// timeout above 0.
fn hooks(b: &Bundle) -> Result<Option<Hooks>, PlanError> {
    let Some(h) = b.spec.hooks() else {
        return Ok(None);
    };
    let kind = |name: &str, list: &Option<Vec<oci_spec::runtime::Hook>>| {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, h)| {
                let field = format!("hooks.{name}[{i}]");
                if !h.path().is_absolute() {
                    return Err(refuse(
                        &format!("{field}.path"),
                        format!("{}: must be absolute", h.path().display()),
                    ));
                }
                let timeout_secs = match h.timeout() {
                    None => None,
                    Some(t) if t > 0 => Some(t as u64),
                    Some(t) => {
                        return Err(refuse(
                            &format!("{field}.timeout"),
                            format!("{t}: must be above 0"),
                        ))
                    }
                };
                Ok(Hook {
                    field,
                    path: h.path().clone(),
                    args: h.args().clone().unwrap_or_default(),
                    env: h.env().clone().unwrap_or_default(),
                    timeout_secs,
                })
            })
            .collect::<Result<Vec<Hook>, PlanError>>()
    };
    #[allow(deprecated)]
    let prestart = kind("prestart", h.prestart())?;
    let hooks = Hooks {
        prestart,
        create_runtime: kind("createRuntime", h.create_runtime())?,
        create_container: kind("createContainer", h.create_container())?,
        start_container: kind("startContainer", h.start_container())?,
        poststart: kind("poststart", h.poststart())?,
        poststop: kind("poststop", h.poststop())?,
    };
    let none = hooks.prestart.is_empty()
        && hooks.create_runtime.is_empty()
        && hooks.create_container.is_empty()
        && hooks.start_container.is_empty()
        && hooks.poststart.is_empty()
        && hooks.poststop.is_empty();
    Ok((!none).then_some(hooks))
}

/// The process config.json (or `exec --process`'s process.json) describes.
pub(super) fn process_plan(process: &oci_spec::runtime::Process) -> Result<ProcessPlan, PlanError> {
    let user = process.user();
    let argv = process.args().clone().unwrap_or_default();
    if argv.is_empty() {
        return Err(refuse("process.args", "required: at least the program"));
    }
    if process.command_line().is_some() {
        return Err(refuse(
            "process.commandLine",
            "is for Windows; use process.args",
        ));
    }
    let mut env = Vec::new();
    for (i, e) in process.env().iter().flatten().enumerate() {
        let (k, v) = e.split_once('=').ok_or_else(|| {
            refuse(
                &format!("process.env[{i}]"),
                format!("{e:?}: KEY=VALUE expected"),
            )
        })?;
        env.retain(|(key, _): &(String, String)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    let cwd = process.cwd().clone();
    if !cwd.is_absolute() {
        return Err(refuse(
            "process.cwd",
            format!("{}: an absolute path", cwd.display()),
        ));
    }
    let caps = capabilities(process.capabilities().as_ref())?;
    let mut rlimits = Vec::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(|s| s.to_ascii_lowercase()))
            .unwrap_or_default();
        let resource: RlimitResource = serde_json::from_value(serde_json::Value::String(
            name.trim_start_matches("rlimit_").to_string(),
        ))
        .map_err(|_| {
            refuse(
                &format!("process.rlimits[{i}].type"),
                format!("{name}: not a resource this runtime sets"),
            )
        })?;
        if r.soft() > r.hard() {
            return Err(refuse(
                &format!("process.rlimits[{i}]"),
                format!("soft {} is above hard {}", r.soft(), r.hard()),
            ));
        }
        let lim = |v: u64| (v != u64::MAX).then_some(v);
        rlimits.push(Ulimit {
            resource,
            soft: lim(r.soft()),
            hard: lim(r.hard()),
        });
    }

    Ok(ProcessPlan {
        argv,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        tty: process.terminal().unwrap_or(false),
        rlimits,
        caps: Some(caps),
        cpu_count: None,
        umask: user.umask(),
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        oom_score_adj: process.oom_score_adj(),
        personality: None,
        preserve_fds: 0,
        tuning: tuning(process)?,
    })
}

/// `process.ioPriority`, `scheduler`, `execCPUAffinity` and `consoleSize`, checked as the
/// kernel would (so a bad value is one line naming it, not a failed setup).
fn tuning(process: &oci_spec::runtime::Process) -> Result<ProcessTuning, PlanError> {
    use oci_spec::runtime::{IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy};
    let mut t = ProcessTuning::default();
    if let Some(io) = process.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let level = io.priority();
        if !(0..=7).contains(&level) {
            return Err(refuse(
                "process.ioPriority.priority",
                format!("{level}: 0 (highest) to 7"),
            ));
        }
        t.io_priority = Some(class << 13 | level as u32);
    }
    if let Some(s) = process.scheduler() {
        let field = "process.scheduler";
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => 0,
            LinuxSchedulerPolicy::SchedFifo => 1,
            LinuxSchedulerPolicy::SchedRr => 2,
            LinuxSchedulerPolicy::SchedBatch => 3,
            LinuxSchedulerPolicy::SchedIso => {
                return Err(refuse(
                    &format!("{field}.policy"),
                    "SCHED_ISO is not implemented by Linux",
                ))
            }
            LinuxSchedulerPolicy::SchedIdle => 5,
            LinuxSchedulerPolicy::SchedDeadline => 6,
        };
        let nice = s.nice().unwrap_or(0);
        if !(-20..=19).contains(&nice) {
            return Err(refuse(
                &format!("{field}.nice"),
                format!("{nice}: -20 to 19"),
            ));
        }
        let priority = s.priority().unwrap_or(0);
        let realtime = matches!(policy, 1 | 2);
        if (realtime && !(1..=99).contains(&priority)) || (!realtime && priority != 0) {
            return Err(refuse(
                &format!("{field}.priority"),
                format!("{priority}: 1 to 99 for SCHED_FIFO and SCHED_RR, 0 for the others"),
            ));
        }
        let (runtime, deadline, period) = (
            s.runtime().unwrap_or(0),
            s.deadline().unwrap_or(0),
            s.period().unwrap_or(0),
        );
        // (The kernel's own bounds: runtime at least 1024 ns, period at most 2^63 ns.)
        if policy == 6
            && !(runtime >= 1024
                && runtime <= deadline
                && (period == 0 || deadline <= period)
                && deadline < 1 << 63
                && period < 1 << 63)
        {
            return Err(refuse(
                field,
                "SCHED_DEADLINE needs 1024 ns <= runtime <= deadline <= period (period 0: the deadline)",
            ));
        }
        let flags = s
            .flags()
            .iter()
            .flatten()
            .map(|f| match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                // (Refused below: the clamp values they need have no field in runtime-spec.)
                LinuxSchedulerFlag::SchedFlagUtilClampMin
                | LinuxSchedulerFlag::SchedFlagUtilClampMax => 0,
            })
            .fold(0, |a, f| a | f);
        let clamp = s.flags().iter().flatten().any(|f| {
            matches!(
                f,
                LinuxSchedulerFlag::SchedFlagUtilClampMin
                    | LinuxSchedulerFlag::SchedFlagUtilClampMax
            )
        });
        if clamp {
            return Err(refuse(
                &format!("{field}.flags"),
                "SCHED_FLAG_UTIL_CLAMP_MIN/MAX need clamp values runtime-spec has no field for",
            ));
        }
        t.scheduler = Some(SchedAttr {
            policy,
            flags,
            nice,
            priority: priority as u32,
            runtime,
            deadline,
            period,
        });
    }
    console_size(process, &mut t)?;
    // (execCPUAffinity is not for the container's own process: runtime-spec; see
    // [`exec_affinity`] for exec's.)
    Ok(t)
}

/// `execCPUAffinity` of a process `exec` starts: the CPUs it joins on, and its program's.
pub(super) fn exec_affinity(
    process: &oci_spec::runtime::Process,
    t: &mut ProcessTuning,
) -> Result<(), PlanError> {
    if let Some(a) = process.exec_cpu_affinity() {
        let list = |name: &str, v: &Option<String>| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| {
                    crate::plan::parse_cpu_list(v)
                        .map_err(|e| refuse(&format!("process.execCPUAffinity.{name}"), e))
                })
                .transpose()
        };
        t.cpus_initial = list("initial", a.initial())?;
        t.cpus_final = list("final", a.cpu_affinity_final())?;
    }
    Ok(())
}

fn console_size(
    process: &oci_spec::runtime::Process,
    t: &mut ProcessTuning,
) -> Result<(), PlanError> {
    if let Some(c) = process.console_size() {
        let dim = |name: &str, v: u64| {
            u16::try_from(v).map_err(|_| {
                refuse(
                    &format!("process.consoleSize.{name}"),
                    format!("{v}: at most 65535"),
                )
            })
        };
        t.console_size = Some((dim("height", c.height())?, dim("width", c.width())?));
    }
    Ok(())
}

/// Properties of `process` nucleus does not apply yet, in config.json and in `exec`'s
/// process.json alike.
const PROCESS_UNSUPPORTED: [(&str, &str); 2] = [
    (
        "selinuxLabel",
        "SELinux is not available on this runtime's hosts",
    ),
    (
        "apparmorProfile",
        "AppArmor profiles are not applied by this runtime",
    ),
];

/// One line naming the first of [`PROCESS_UNSUPPORTED`] `process` sets.
pub(super) fn refuse_unsupported_process(process: &serde_json::Value) -> Result<(), PlanError> {
    for (k, why) in PROCESS_UNSUPPORTED {
        if process
            .get(k)
            .is_some_and(|v| !(v.is_null() || v.as_str() == Some("")))
        {
            return Err(refuse(&format!("process.{k}"), why));
        }
    }
    Ok(())
}

/// Properties of the runtime-spec nucleus does not apply (yet, or on this kernel): one line
/// naming the first found.
fn refuse_unsupported(b: &Bundle) -> Result<(), PlanError> {
    let has = |path: &[&str]| {
        let mut v = &b.raw;
        for k in path {
            match v.get(k) {
                Some(x) => v = x,
                None => return false,
            }
        }
        !(v.is_null()
            || v.as_str() == Some("")
            || v.as_array().is_some_and(|a| a.is_empty())
            || v.as_object().is_some_and(|o| o.is_empty()))
    };
    for (path, why) in [
        (&["linux", "intelRdt"][..], "Intel RDT is not supported"),
        (
            &["linux", "mountLabel"][..],
            "SELinux is not available on this runtime's hosts",
        ),
    ] {
        if has(path) {
            return Err(refuse(&path.join("."), why));
        }
    }
    refuse_unsupported_process(&b.raw["process"])?;
    Ok(())
}

fn ns_kind(t: LinuxNamespaceType) -> NsKind {
    match t {
        LinuxNamespaceType::Mount => NsKind::Mount,
        LinuxNamespaceType::Cgroup => NsKind::Cgroup,
        LinuxNamespaceType::Uts => NsKind::Uts,
        LinuxNamespaceType::Ipc => NsKind::Ipc,
        LinuxNamespaceType::User => NsKind::User,
        LinuxNamespaceType::Pid => NsKind::Pid,
        LinuxNamespaceType::Network => NsKind::Net,
        LinuxNamespaceType::Time => NsKind::Time,
    }
}

/// `linux.timeOffsets` of a new time namespace (absent: zero offsets).
fn time_offsets(spec: &Spec) -> Result<crate::plan::TimeOffsets, PlanError> {
    let raw = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
        .unwrap_or_default();
    let mut t = crate::plan::TimeOffsets {
        monotonic: (0, 0),
        boottime: (0, 0),
    };
    for (clock, o) in raw {
        let field = format!("linux.timeOffsets.{clock}");
        let v = (o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0));
        if v.1 >= 1_000_000_000 {
            return Err(refuse(&field, "nanosecs: below 1000000000"));
        }
        match clock.as_str() {
            "monotonic" => t.monotonic = v,
            "boottime" => t.boottime = v,
            _ => return Err(refuse(&field, "monotonic or boottime")),
        }
    }
    Ok(t)
}

/// New namespaces (flags) and the ones to join by path.
fn namespaces(spec: &Spec) -> Result<(Namespaces, Vec<NsJoin>), PlanError> {
    let mut n = Namespaces {
        user: false,
        pid: false,
        mount: false,
        net: false,
        uts: false,
        ipc: false,
        cgroup: false,
        time_offset_secs: None,
        time_offsets: None,
        join: Vec::new(),
        inside_user: false,
    };
    let mut join = Vec::new();
    let mut seen = BTreeSet::new();
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for (i, ns) in list.iter().enumerate() {
        let kind = ns_kind(ns.typ());
        if !seen.insert(kind) {
            return Err(refuse(
                &format!("linux.namespaces[{i}]"),
                format!("{kind:?} namespace given twice"),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(refuse(
                    &format!("linux.namespaces[{i}].path"),
                    format!("{}: an absolute path", p.display()),
                ));
            }
            join.push(NsJoin {
                kind,
                path: p.clone(),
            });
            continue;
        }
        match kind {
            NsKind::User => n.user = true,
            NsKind::Pid => n.pid = true,
            NsKind::Mount => n.mount = true,
            NsKind::Net => n.net = true,
            NsKind::Uts => n.uts = true,
            NsKind::Ipc => n.ipc = true,
            NsKind::Cgroup => n.cgroup = true,
            NsKind::Time => n.time_offsets = Some(time_offsets(spec)?),
        }
    }
    if !n.mount {
        return Err(refuse(
            "linux.namespaces",
            "a new mount namespace is required (the container's root is built in it)",
        ));
    }
    let offsets = spec.linux().as_ref().and_then(|l| l.time_offsets().clone());
    if offsets.is_some_and(|o| !o.is_empty()) && n.time_offsets.is_none() {
        return Err(refuse(
            "linux.timeOffsets",
            "needs a new time namespace in linux.namespaces",
        ));
    }
    if join.iter().any(|j| j.kind == NsKind::Mount) {
        return Err(refuse(
            "linux.namespaces",
            "joining an existing mount namespace is not supported",
        ));
    }
    Ok((n, join))
}

fn ranges(field: &str, maps: Option<&[LinuxIdMapping]>) -> Result<Vec<IdRange>, PlanError> {
    let maps = maps.unwrap_or(&[]);
    if maps.is_empty() {
        return Err(refuse(field, "required with a new user namespace"));
    }
    if maps.len() > 340 {
        return Err(refuse(field, "more than 340 ranges (the kernel's limit)"));
    }
    let mut out: Vec<IdRange> = Vec::new();
    for (i, m) in maps.iter().enumerate() {
        let r = IdRange {
            container: m.container_id(),
            host: m.host_id(),
            size: m.size(),
        };
        let end = |start: u32| u64::from(start) + u64::from(r.size);
        if r.size == 0 || end(r.container) > 1 << 32 || end(r.host) > 1 << 32 {
            return Err(refuse(
                &format!("{field}[{i}]"),
                "an empty range, or one past the last id",
            ));
        }
        let overlaps = |a: u32, b: u32, n: u32| {
            u64::from(a) < u64::from(b) + u64::from(n)
                && u64::from(b) < u64::from(a) + u64::from(r.size)
        };
        if out
            .iter()
            .any(|o| overlaps(r.container, o.container, o.size) || overlaps(r.host, o.host, o.size))
        {
            return Err(refuse(
                &format!("{field}[{i}]"),
                "overlaps an earlier range",
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// A path inside the container: absolute (a relative one is taken from `/`, as runc does),
/// no `..`.
fn container_path(field: &str, p: impl AsRef<Path>) -> Result<PathBuf, PlanError> {
    let p = p.as_ref();
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(refuse(
                    field,
                    format!("{}: .. is not allowed in a container path", p.display()),
                ))
            }
        }
    }
    Ok(out)
}

fn mount(
    field: &str,
    m: &oci_spec::runtime::Mount,
    bundle: &Path,
    own_maps: bool,
) -> Result<MountOp, PlanError> {
    let dst = container_path(&format!("{field}.destination"), m.destination())?;
    let fstype = m.typ().clone().unwrap_or_default();
    let options = options::parse(m.options().as_deref().unwrap_or(&[])).map_err(|o| {
        refuse(
            &format!("{field}.options"),
            format!("{o:?}: not a mount option"),
        )
    })?;
    let bind = options.is_bind() || fstype == "bind";
    let mut options = options;
    if bind {
        options.flags |= options::MS_BIND;
    }

    if options.tmpcopyup && (bind || fstype != "tmpfs") {
        return Err(refuse(
            &format!("{field}.options"),
            "tmpcopyup: only on a tmpfs",
        ));
    }
    let source = m.source().clone().unwrap_or_default();
    let source = if bind && source.is_relative() {
        bundle.join(source)
    } else {
        source
    };
    if bind && source.as_os_str().is_empty() {
        return Err(refuse(
            &format!("{field}.source"),
            "a bind mount needs a source",
        ));
    }
    if !bind && fstype.is_empty() {
        return Err(refuse(
            &format!("{field}.type"),
            "required (or a bind option)",
        ));
    }
    // The container's own cgroup, read-only, as nucleus mounts it for every sandbox.
    if matches!(fstype.as_str(), "cgroup" | "cgroup2") && !bind {
        if !options.readonly() {
            return Err(refuse(
                &format!("{field}.options"),
                "a cgroup mount must be read-only (ro) in this runtime",
            ));
        }
        return Ok(MountOp::Cgroup { dst });
    }
    // idmap/ridmap, or maps of its own: an idmapped bind (its maps filled in by `plan`,
    // which knows the container's).
    let idmap = (options.idmap.is_some() || own_maps).then(|| IdMapping {
        uid: Vec::new(),
        gid: Vec::new(),
        recursive: options.idmap == Some(true),
    });
    if idmap.is_some() && !bind {
        return Err(refuse(
            &format!("{field}.options"),
            "idmap: only a bind mount is idmapped here",
        ));
    }
    Ok(MountOp::Oci {
        source,
        dst,
        fstype: if bind { String::new() } else { fstype },
        options,
        idmap,
    })
}

/// The devices runc makes in every container with its own /dev, unless config.json lists them.
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn devices(
    list: &[oci_spec::runtime::LinuxDevice],
    dev_tmpfs: bool,
) -> Result<Vec<MountOp>, PlanError> {
    let mut out = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let dst = container_path(&format!("{field}.path"), d.path())?;
        if !dst.starts_with("/dev") {
            return Err(refuse(&format!("{field}.path"), "devices go under /dev"));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => DeviceKind::Fifo,
            LinuxDeviceType::A => {
                return Err(refuse(
                    &format!("{field}.type"),
                    "a, c, b, u or p; a is for cgroup rules",
                ))
            }
        };
        let num = |v: i64, what: &str| {
            u32::try_from(v)
                .map_err(|_| refuse(&format!("{field}.{what}"), format!("{v}: out of range")))
        };
        out.push(MountOp::Device {
            dst,
            kind,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    if dev_tmpfs {
        for (path, major, minor) in DEFAULT_DEVICES {
            if !out
                .iter()
                .any(|m| matches!(m, MountOp::Device { dst, .. } if dst == Path::new(path)))
            {
                out.push(MountOp::Device {
                    dst: path.into(),
                    kind: DeviceKind::Char,
                    major,
                    minor,
                    mode: 0o666,
                    uid: 0,
                    gid: 0,
                });
            }
        }
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            out.push(MountOp::Symlink {
                target: target.into(),
                dst: link.into(),
            });
        }
    }
    Ok(out)
}

fn propagation(field: &str, p: &str) -> Result<u64, PlanError> {
    let o = options::parse(&[p.to_string()]).map_err(|_| refuse(field, "not a propagation"))?;
    if o.propagation == 0 || o.flags != 0 || !o.data.is_empty() {
        return Err(refuse(
            field,
            format!("{p:?}: shared, slave, private or unbindable (r- forms too)"),
        ));
    }
    Ok(o.propagation)
}

/// Sysctls the container's own namespaces hold; others would change the host.
/// The namespace a sysctl belongs to (what it changes is that namespace's), None for the
/// host-wide ones.
pub fn sysctl_namespace(key: &str) -> Option<NsKind> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(NsKind::Ipc)
    } else if key.starts_with("net.") {
        Some(NsKind::Net)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(NsKind::Uts)
    } else {
        None
    }
}

/// `linux.sysctl`, each in a namespace the container has (made, or joined by path: the
/// runtime then checks the joined one is not its own).
fn sysctl(
    map: Option<&std::collections::HashMap<String, String>>,
    n: &Namespaces,
    join: &[NsJoin],
) -> Result<Vec<(String, String)>, PlanError> {
    let mut out: Vec<(String, String)> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    for (k, _) in &out {
        let field = format!("linux.sysctl.{k}");
        let ok = match sysctl_namespace(k) {
            Some(kind) => {
                let made = match kind {
                    NsKind::Ipc => n.ipc,
                    NsKind::Net => n.net,
                    _ => n.uts,
                };
                made || join.iter().any(|j| j.kind == kind)
            }
            None => false,
        };
        if !ok || k.contains("..") || k.contains('/') || k.is_empty() {
            return Err(refuse(
                &field,
                "not in a namespace of the container's own (it would change the host)",
            ));
        }
    }
    Ok(out)
}

/// The bundle's seccomp filter, its flags, and its agent (listenerPath: an absolute path).
#[allow(clippy::type_complexity)]
fn seccomp(
    b: &Bundle,
    cx: &Context,
) -> Result<
    (
        Vec<crate::seccomp::SockFilter>,
        u32,
        Option<crate::plan::SeccompNotify>,
    ),
    PlanError,
> {
    let facts = cx.facts;
    let raw = &b.raw["linux"]["seccomp"];
    if raw.is_null() {
        return Ok((Vec::new(), 0, None));
    }
    let text = raw.to_string();
    let profile = crate::seccomp::profile::parse(&text)
        .map_err(|e| refuse("linux.seccomp", e.to_string()))?;
    let compiled = crate::seccomp::profile::compile(
        &profile,
        &crate::seccomp::profile::Target::native(facts.kernel),
    )
    .map_err(|e| refuse("linux.seccomp", e.to_string()))?;
    let bpf = crate::seccomp::compile(&compiled.filter)
        .map_err(|e| refuse("linux.seccomp", e.to_string()))?;
    if let Some(name) = compiled.unknown.first() {
        return Err(refuse(
            "linux.seccomp",
            format!("{name}: a syscall this runtime does not know"),
        ));
    }
    let agent = match &profile.listener_path {
        None => None,
        Some(p) if Path::new(p).is_absolute() => Some(crate::plan::SeccompNotify::Agent {
            path: p.into(),
            metadata: profile.listener_metadata.clone().unwrap_or_default(),
        }),
        Some(p) => {
            return Err(refuse(
                "linux.seccomp.listenerPath",
                format!("{p:?}: must be absolute"),
            ))
        }
    };
    Ok((bpf, compiled.flags, agent))
}

fn capabilities(c: Option<&oci_spec::runtime::LinuxCapabilities>) -> Result<CapSets, PlanError> {
    let mask = |field: &str, set: Option<&Capabilities>| -> Result<u64, PlanError> {
        let mut m = 0u64;
        for cap in set.into_iter().flatten() {
            let name = serde_json::to_value(cap)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let n = cap_number(&name)
                .ok_or_else(|| refuse(field, format!("{name}: unknown to this runtime")))?;
            m |= 1 << n;
        }
        Ok(m)
    };
    let Some(c) = c else {
        return Ok(CapSets::default());
    };
    Ok(CapSets {
        bounding: mask("process.capabilities.bounding", c.bounding().as_ref())?,
        effective: mask("process.capabilities.effective", c.effective().as_ref())?,
        permitted: mask("process.capabilities.permitted", c.permitted().as_ref())?,
        inheritable: mask("process.capabilities.inheritable", c.inheritable().as_ref())?,
        ambient: mask("process.capabilities.ambient", c.ambient().as_ref())?,
    })
}

/// The container's cgroup: `linux.cgroupsPath` (absolute from the hierarchy root, relative
/// under nucleus's default parent), the limits of `linux.resources`.
fn cgroup(
    r: Option<&LinuxResources>,
    path: Option<&Path>,
    made: &[MountOp],
    cx: &Context,
) -> Result<Option<CgroupPlan>, PlanError> {
    let field = "linux.cgroupsPath";
    let text = path.map(|p| p.to_string_lossy().into_owned());
    let mut scope = None;
    let (parent, leaf) = match text {
        _ if cx.systemd_cgroup => {
            let (slice, unit) =
                crate::cgroup::parse_scope(text.as_deref(), cx.id).map_err(|e| refuse(field, e))?;
            let at = crate::cgroup::slice_path(&slice).map_err(|e| refuse(field, e))?;
            scope = Some((slice, unit.clone()));
            (CgroupParent::Path(at), unit)
        }
        None => (CgroupParent::Default, cx.id.to_string()),
        Some(p) if p.contains(':') => {
            return Err(refuse(
                field,
                format!("{p:?}: the systemd slice:prefix:name form needs --systemd-cgroup"),
            ))
        }
        Some(p) => {
            let t = p.trim_end_matches('/');
            let (up, leaf) = t.rsplit_once('/').unwrap_or(("", t));
            if leaf.is_empty() || leaf == "." || leaf == ".." {
                return Err(refuse(field, format!("{p:?}: names no cgroup")));
            }
            let parent = if up.is_empty() {
                if t.starts_with('/') {
                    CgroupParent::Path("/".into())
                } else {
                    CgroupParent::Default
                }
            } else {
                CgroupParent::parse(field, up).map_err(PlanError::Config)?
            };
            (parent, leaf.to_string())
        }
    };
    let limits = limits(r)?;
    // A hybrid host (v1 controllers, an empty v2 tree beside them): v1, as runc drives it.
    let mut host = cx.facts.cgroup.clone();
    if !host.v1.is_empty() {
        host.v2_mount = None;
    }
    let mut plan = CgroupPlan::build(&limits, &host, &parent, &leaf)
        .ok_or_else(|| refuse("linux.resources", "this host has no cgroup hierarchy"))?;
    if let Some(u) = plan.unsupported.first() {
        return Err(refuse("linux.resources", u.clone()));
    }
    // Rootless: no cgroup is a container's own unless a delegated one is writable; one that
    // asks for no resource runs without it where it cannot be made (runc ignores the error
    // likewise). One that asks for resources is refused when they cannot be applied.
    plan.quiet_failure = cx.rootless && r.is_none_or(asks_nothing);
    if let Some((slice, unit)) = scope {
        // On v1 systemd tracks a scope's processes in a hierarchy of its own (name=systemd,
        // or the unified one beside v1 controllers), which the container would have to join
        // too; nucleus drives systemd on cgroup v2 only.
        if plan.driver == crate::cgroup::Driver::V1 {
            return Err(PlanError::Config(ConfigError::new(
                "--systemd-cgroup",
                "systemd's cgroup driver needs a cgroup v2 host; on this v1 host leave the flag out (cgroupfs)",
            )));
        }
        // systemd owns the slices: nothing of them is removed by nucleus.
        plan.remove_empty_parents = false;
        let mut properties: Vec<(String, ScopeValue)> = crate::cgroup::scope_properties(&limits)
            .into_iter()
            .map(|(_, n, v)| (n, v))
            .collect();
        properties.extend(scope_extras(r)?);
        plan.systemd = Some(crate::cgroup::SystemdScope {
            unit,
            slice,
            properties,
        });
    }
    for e in extra_writes(r, plan.driver)? {
        plan.add_writes(&host, &parent, e.controller, e.writes)
            .map_err(|m| refuse(&e.field, m))?;
    }
    let mut rules = device_rules(r.and_then(|r| r.devices().as_deref()).unwrap_or(&[]))?;
    if !rules.is_empty() {
        // After the bundle's rules, as runc: the devices every container has, its terminal,
        // and those linux.devices makes.
        let mut allow = vec!["c 5:2 rwm".to_string(), "c 136:* rwm".to_string()];
        allow.extend(
            DEFAULT_DEVICES
                .iter()
                .map(|(_, ma, mi)| format!("c {ma}:{mi} rwm")),
        );
        for op in made {
            if let MountOp::Device {
                kind, major, minor, ..
            } = op
            {
                let k = match kind {
                    DeviceKind::Char => 'c',
                    DeviceKind::Block => 'b',
                    DeviceKind::Fifo => continue,
                };
                allow.push(format!("{k} {major}:{minor} rwm"));
            }
        }
        let mut seen = BTreeSet::new();
        allow.retain(|l| seen.insert(l.clone()));
        rules.extend(allow.into_iter().map(|l| ("devices.allow".to_string(), l)));
    }
    if !rules.is_empty() && !plan.add_v1_writes(&host, &parent, "devices", rules.clone()) {
        // cgroup v2: the same rules as a device program attached to the leaf.
        if plan.driver != crate::cgroup::Driver::V2 {
            return Err(refuse(
                "linux.resources.devices",
                "this host has neither a v1 devices hierarchy nor cgroup v2",
            ));
        }
        plan.device_program = crate::cgroup::device_program(&rules)
            .map_err(|e| refuse("linux.resources.devices", e))?;
    }
    Ok(Some(plan))
}

/// One resource nucleus's own limits do not say: the field that asked for it, its
/// controller, the files written.
#[derive(Debug)]
pub struct Extra {
    pub field: String,
    pub controller: &'static str,
    pub writes: Writes,
}

/// A block I/O weight (10..=1000, blkio's scale) on blk-iocost's 1..=10000 (runc's
/// conversion).
fn io_weight(w: u16) -> u64 {
    1 + (u64::from(w).saturating_sub(10) * 9999) / 990
}

/// The resources beyond nucleus's limits that systemd has unit properties for (the scope's
/// files are written too; these keep systemd from reverting them): memory reservation,
/// the block I/O weight, the cpuset.
fn scope_extras(r: Option<&LinuxResources>) -> Result<Vec<(String, ScopeValue)>, PlanError> {
    let mut p = Vec::new();
    let Some(r) = r else { return Ok(p) };
    if let Some(res) = r
        .memory()
        .as_ref()
        .and_then(|m| m.reservation())
        .filter(|v| *v > 0)
    {
        p.push(("MemoryLow".to_string(), ScopeValue::U64(res as u64)));
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w > 0)
    {
        p.push(("IOWeight".to_string(), ScopeValue::U64(io_weight(w))));
    }
    if let Some(c) = r.cpu() {
        for (name, value) in [("AllowedCPUs", c.cpus()), ("AllowedMemoryNodes", c.mems())] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                let list = crate::plan::parse_cpu_list(v)
                    .map_err(|e| refuse(&format!("linux.resources.cpu.{name}"), e))?;
                p.push((
                    name.to_string(),
                    ScopeValue::Bytes(crate::cgroup::cpu_mask(&list)),
                ));
            }
        }
    }
    Ok(p)
}

/// Whether `linux.resources` sets nothing (`{}`, or only zeros and empty lists, as clients
/// write unset values).
fn asks_nothing(r: &LinuxResources) -> bool {
    serde_json::to_value(r).is_ok_and(|v| is_unset(&v))
}

fn is_unset(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_unset),
        Value::Bool(true) => false,
    }
}

/// The resources nucleus's own limits do not say, as the files of their controller (by
/// driver): memory reservation, swappiness, TCP buffers and the OOM killer; cpuset cpus and
/// mems, CFS burst and idle, real-time budgets; block I/O weights; hugepage limits; v1's
/// net_cls and net_prio; RDMA; v2's `unified` files. What a driver has no file for is
/// refused by name.
fn extra_writes(
    r: Option<&LinuxResources>,
    driver: crate::cgroup::Driver,
) -> Result<Vec<Extra>, PlanError> {
    use crate::cgroup::Driver;
    let mut out = Vec::new();
    let Some(r) = r else { return Ok(out) };
    let v2 = driver == Driver::V2;
    let mut put = |field: &str, controller: &'static str, writes: Writes| {
        out.push(Extra {
            field: field.into(),
            controller,
            writes,
        })
    };
    let one = |f: &str, v: String| Writes::All(vec![(f.to_string(), v)]);
    // A setting only cgroup v1 has a file for.
    let v1_only = |field: &str, why: &str| -> Result<(), PlanError> {
        if v2 {
            Err(refuse(field, format!("cgroup v2 has no {why}")))
        } else {
            Ok(())
        }
    };
    if let Some(m) = r.memory() {
        if let Some(res) = m.reservation().filter(|v| *v > 0) {
            let f = if v2 {
                "memory.low"
            } else {
                "memory.soft_limit_in_bytes"
            };
            put(
                "linux.resources.memory.reservation",
                "memory",
                one(f, res.to_string()),
            );
        }
        if let Some(s) = m.swappiness() {
            let field = "linux.resources.memory.swappiness";
            if s > 100 {
                return Err(refuse(field, format!("{s}: 0 to 100")));
            }
            v1_only(field, "per-cgroup swappiness")?;
            put(field, "memory", one("memory.swappiness", s.to_string()));
        }
        if let Some(t) = m.kernel_tcp().filter(|t| *t != 0) {
            let field = "linux.resources.memory.kernelTCP";
            v1_only(field, "separate TCP buffer limit (memory.max counts them)")?;
            put(
                field,
                "memory",
                one("memory.kmem.tcp.limit_in_bytes", t.to_string()),
            );
        }
        if m.disable_oom_killer() == Some(true) {
            // (Docker writes false: the kernel's default, nothing to apply.)
            let field = "linux.resources.memory.disableOOMKiller";
            v1_only(field, "switch for the OOM killer")?;
            put(field, "memory", one("memory.oom_control", "1".into()));
        }
    }
    if let Some(c) = r.cpu() {
        for (name, value) in [("cpus", c.cpus()), ("mems", c.mems())] {
            let Some(v) = value.as_ref().filter(|v| !v.is_empty()) else {
                continue;
            };
            let field = format!("linux.resources.cpu.{name}");
            if !v
                .chars()
                .all(|ch| ch.is_ascii_digit() || ch == ',' || ch == '-')
            {
                return Err(refuse(&field, format!("{v:?}: a list like 0-3,5")));
            }
            put(&field, "cpuset", one(&format!("cpuset.{name}"), v.clone()));
        }
        if let Some(b) = c.burst() {
            let f = if v2 {
                "cpu.max.burst"
            } else {
                "cpu.cfs_burst_us"
            };
            put("linux.resources.cpu.burst", "cpu", one(f, b.to_string()));
        }
        if let Some(i) = c.idle() {
            let field = "linux.resources.cpu.idle";
            if !(0..=1).contains(&i) {
                return Err(refuse(field, format!("{i}: 0 or 1")));
            }
            put(field, "cpu", one("cpu.idle", i.to_string()));
        }
        // The period before the runtime (the kernel checks runtime <= period).
        for (name, value, file) in [
            (
                "realtimePeriod",
                c.realtime_period().map(|p| p as i64),
                "cpu.rt_period_us",
            ),
            ("realtimeRuntime", c.realtime_runtime(), "cpu.rt_runtime_us"),
        ] {
            if let Some(v) = value.filter(|v| *v != 0) {
                let field = format!("linux.resources.cpu.{name}");
                v1_only(&field, "real-time budgets")?;
                put(&field, "cpu", one(file, v.to_string()));
            }
        }
    }
    if let Some(b) = r.block_io() {
        let field = "linux.resources.blockIO";
        let check = |name: &str, w: u16| {
            if (10..=1000).contains(&w) {
                Ok(())
            } else {
                Err(refuse(
                    &format!("{field}.{name}"),
                    format!("{w}: 10 to 1000"),
                ))
            }
        };
        let weight = |dev: Option<String>, w: u16| {
            let (bfq, plain) = if v2 {
                ("io.bfq.weight", "io.weight")
            } else if dev.is_some() {
                ("blkio.bfq.weight_device", "blkio.weight_device")
            } else {
                ("blkio.bfq.weight", "blkio.weight")
            };
            let on = |v: u64| match &dev {
                Some(d) => format!("{d} {v}"),
                None if v2 => format!("default {v}"),
                None => v.to_string(),
            };
            let w2 = if v2 { io_weight(w) } else { u64::from(w) };
            Writes::FirstOf(vec![(bfq.into(), on(u64::from(w))), (plain.into(), on(w2))])
        };
        let controller = if v2 { "io" } else { "blkio" };
        // (Docker writes a weight of 0: unset.)
        if let Some(w) = b.weight().filter(|w| *w > 0) {
            check("weight", w)?;
            put(&format!("{field}.weight"), controller, weight(None, w));
        }
        let leaf = b.leaf_weight().is_some_and(|w| w > 0)
            || b.weight_device()
                .iter()
                .flatten()
                .any(|d| d.leaf_weight().is_some_and(|w| w > 0));
        if leaf {
            return Err(refuse(
                &format!("{field}.leafWeight"),
                "leaf weights went with the CFQ scheduler (Linux 5.0); set weight only",
            ));
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            let Some(w) = d.weight().filter(|w| *w > 0) else {
                continue;
            };
            let name = format!("weightDevice[{i}].weight");
            check(&name, w)?;
            let dev = format!("{}:{}", d.major(), d.minor());
            put(&format!("{field}.{name}"), controller, weight(Some(dev), w));
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}].pageSize");
        let size = h.page_size();
        let ok = size
            .strip_suffix('B')
            .and_then(|n| n.strip_suffix(['K', 'M', 'G']))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(refuse(&field, format!("{size:?}: a size like 2MB or 1GB")));
        }
        let file = if v2 {
            format!("hugetlb.{size}.max")
        } else {
            format!("hugetlb.{size}.limit_in_bytes")
        };
        put(&field, "hugetlb", one(&file, h.limit().to_string()));
    }
    if let Some(n) = r.network() {
        let field = "linux.resources.network";
        if let Some(id) = n.class_id() {
            v1_only(&format!("{field}.classID"), "net_cls controller")?;
            put(
                &format!("{field}.classID"),
                "net_cls",
                one("net_cls.classid", id.to_string()),
            );
        }
        for (i, p) in n.priorities().iter().flatten().enumerate() {
            let f = format!("{field}.priorities[{i}]");
            v1_only(&f, "net_prio controller")?;
            if p.name().is_empty() || p.name().contains(|c: char| c.is_whitespace()) {
                return Err(refuse(&format!("{f}.name"), "an interface name"));
            }
            put(
                &f,
                "net_prio",
                one(
                    "net_prio.ifpriomap",
                    format!("{} {}", p.name(), p.priority()),
                ),
            );
        }
    }
    let mut rdma: Vec<_> = r.rdma().iter().flatten().collect();
    rdma.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in rdma {
        let field = format!("linux.resources.rdma.{dev}");
        if dev.is_empty() || dev.contains(|c: char| c.is_whitespace() || c == '=') {
            return Err(refuse(&field, "an RDMA device name"));
        }
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        put(&field, "rdma", one("rdma.max", line));
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        if !v2 {
            return Err(refuse(
                "linux.resources.unified",
                "needs cgroup v2 (this host drives v1)",
            ));
        }
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let field = format!("linux.resources.unified.{k}");
            let controller = k.split_once('.').map(|(c, _)| c).unwrap_or("");
            // Files of a controller only: never cgroup.procs, subtree_control and the like,
            // nor a path out of the leaf.
            let known = [
                "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc",
            ];
            let Some(c) = known.iter().find(|c| **c == controller) else {
                return Err(refuse(&field, "not a file of a resource controller"));
            };
            if k.contains('/') || k.contains("..") || v.contains('\n') {
                return Err(refuse(&field, "not a plain file name and one-line value"));
            }
            put(&field, c, one(k, v.clone()));
        }
    }
    Ok(out)
}

/// `linux.resources.devices` as v1 `devices.allow` / `devices.deny` lines, in order.
fn device_rules(
    rules: &[oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<Vec<(String, String)>, PlanError> {
    let mut out = Vec::new();
    for (i, d) in rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let kind = match d.typ() {
            None | Some(LinuxDeviceType::A) => 'a',
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
            Some(LinuxDeviceType::B) => 'b',
            Some(LinuxDeviceType::P) => {
                return Err(refuse(&format!("{field}.type"), "a, c or b"));
            }
        };
        let num = |v: Option<i64>| match v {
            None | Some(-1) => Ok("*".to_string()),
            Some(n) if n >= 0 => Ok(n.to_string()),
            Some(n) => Err(refuse(&field, format!("{n}: not a device number"))),
        };
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err(refuse(
                &format!("{field}.access"),
                format!("{access:?}: r, w and m"),
            ));
        }
        let line = if kind == 'a' {
            format!("a *:* {access}")
        } else {
            format!("{kind} {}:{} {access}", num(d.major())?, num(d.minor())?)
        };
        let file = if d.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        out.push((file.to_string(), line));
    }
    Ok(out)
}

/// What `update --resources` changes.
#[derive(Debug)]
pub struct Update {
    pub limits: Limits,
    /// The `update` flags the limits stand for: only their cgroup files are written.
    pub given: Vec<&'static str>,
    /// The settings beyond nucleus's own limits, as the sandbox's driver writes them.
    pub extras: Vec<Extra>,
    /// `memory.checkBeforeUpdate`: refuse a memory limit below what the container uses now.
    pub check_memory: bool,
}

/// `update --resources`: a `linux.resources` object (runc's update file, containerd's shim
/// writes it on stdin) as the writes it makes on a container of `driver`. Device rules
/// cannot change on a running container.
pub fn update_resources(text: &str, driver: crate::cgroup::Driver) -> Result<Update, PlanError> {
    let r: LinuxResources = serde_json::from_str(text)
        .map_err(|e| refuse("--resources", format!("not a linux.resources object: {e}")))?;
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(refuse(
            "linux.resources.devices",
            "the device cgroup of a running container does not change",
        ));
    }
    // (-1, "no limit", cannot be said by nucleus's limits yet: refused, not ignored.)
    if r.memory()
        .as_ref()
        .and_then(|m| m.limit())
        .is_some_and(|l| l < 0)
    {
        return Err(refuse(
            "linux.resources.memory.limit",
            "a running container's memory cannot be made unlimited (-1) yet; give a limit",
        ));
    }
    if r.cpu()
        .as_ref()
        .and_then(|c| c.quota())
        .is_some_and(|q| q < 0)
    {
        return Err(refuse(
            "linux.resources.cpu.quota",
            "a running container's CPU quota cannot be lifted (-1) yet; give a quota",
        ));
    }
    let limits = limits(Some(&r))?;
    let extras = extra_writes(Some(&r), driver)?;
    let mut given = Vec::new();
    if let Some(m) = r.memory() {
        if m.limit().is_some_and(|l| l > 0) {
            given.push("--memory");
        }
        if m.swap().is_some() {
            given.push("--memory-swap");
        }
    }
    if let Some(c) = r.cpu() {
        if c.quota().is_some_and(|q| q != 0) {
            given.push("--cpus");
        }
        if c.shares().is_some_and(|s| s > 0) {
            given.push("--cpu-weight");
        }
    }
    if r.pids().is_some() {
        given.push("--pids");
    }
    if r.block_io().is_some() && !limits.io.is_empty() {
        given.push("--io-limit");
    }
    let check_memory = r
        .memory()
        .is_some_and(|m| m.check_before_update() == Some(true) && limits.memory.is_some());
    Ok(Update {
        limits,
        given,
        extras,
        check_memory,
    })
}

/// `linux.resources` as nucleus's limits; what they cannot say is refused by name.
fn limits(r: Option<&LinuxResources>) -> Result<Limits, PlanError> {
    let mut l = Limits {
        pids: None,
        ..Default::default()
    };
    let Some(r) = r else {
        return Ok(l);
    };
    if let Some(m) = r.memory() {
        l.memory = m.limit().filter(|v| *v > 0).map(|v| v as u64);
        l.memory_swap = match m.swap() {
            None => None,
            Some(-1) => Some(SwapLimit::Unlimited),
            Some(v) if v > 0 => Some(SwapLimit::Total(v as u64)),
            Some(_) => None,
        };
        if m.kernel().is_some_and(|k| k != 0) {
            return Err(refuse(
                "linux.resources.memory.kernel",
                "kernel memory limits are gone from the kernel (5.16 and later; runc ignores them too): leave it unset",
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(q) = c.quota().filter(|q| *q > 0) {
            let p = c.period().filter(|p| *p > 0).unwrap_or(100_000);
            if !(1_000..=1_000_000).contains(&p) {
                return Err(refuse(
                    "linux.resources.cpu.period",
                    format!("{p} µs: the kernel takes 1000 to 1000000"),
                ));
            }
            l.cpus_milli = Some((q as u64 * 1000 / p).max(1));
            l.cpu_period_us = (p != 100_000).then_some(p);
        }
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            // runc's conversion of v1 shares to a v2 weight.
            l.cpu_weight = Some(1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142);
        }
    }
    if let Some(p) = r.pids() {
        l.pids = (p.limit() > 0).then_some(p.limit() as u64);
    }
    if let Some(b) = r.block_io() {
        let mut io: Vec<IoLimit> = Vec::new();
        for (list, key) in [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ] {
            for d in list.iter().flatten() {
                let (major, minor) = (d.major() as u32, d.minor() as u32);
                let i = match io.iter().position(|x| x.major == major && x.minor == minor) {
                    Some(i) => i,
                    None => {
                        io.push(IoLimit {
                            major,
                            minor,
                            rbps: None,
                            wbps: None,
                            riops: None,
                            wiops: None,
                        });
                        io.len() - 1
                    }
                };
                let v = Some(d.rate());
                match key {
                    "rbps" => io[i].rbps = v,
                    "wbps" => io[i].wbps = v,
                    "riops" => io[i].riops = v,
                    _ => io[i].wiops = v,
                }
            }
        }
        l.io = io;
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{CgroupHost, V1Hierarchy};

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oci");

    /// A hybrid host as this project's CI machine has: v1 memory, pids, devices.
    fn facts() -> HostFacts {
        let v1 = |c: &str| V1Hierarchy {
            controller: c.into(),
            mount: PathBuf::from(format!("/sys/fs/cgroup/{c}")),
            own: "/ci".into(),
            has_memsw: false,
        };
        HostFacts {
            cgroup: CgroupHost {
                v2_mount: None,
                v2_controllers: vec![],
                v2_own: None,
                v1: vec![
                    v1("memory"),
                    v1("pids"),
                    v1("devices"),
                    v1("cpu"),
                    v1("blkio"),
                ],
            },
            kernel: (6, 18),
            cpus: 2,
            ..Default::default()
        }
    }

    fn translate(text: &str) -> Result<Plan, PlanError> {
        translate_on(text, &facts())
    }

    /// config.json's text planned as container c1 of bundle /b on the host `f` describes.
    fn translate_on(text: &str, f: &HostFacts) -> Result<Plan, PlanError> {
        let b = super::super::parse(text).map_err(PlanError::Config)?;
        plan(
            &b,
            &Context {
                id: "c1",
                bundle: Path::new("/b"),
                fifo: "/run/nucleus/c1/exec.fifo".into(),
                no_pivot: false,
                systemd_cgroup: false,
                rootless: false,
                facts: f,
            },
        )
    }

    fn field(r: Result<Plan, PlanError>) -> String {
        match r {
            Err(PlanError::Config(e)) => e.field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn runc_spec() -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{DATA}/runc-spec.json")).unwrap())
            .unwrap()
    }

    /// On a pure cgroup-v2 host the device rules become the leaf's device program, with v1's
    /// meaning: the bundle's rules, then the devices every container has.
    #[test]
    fn device_rules_on_cgroup_v2_are_a_device_program() {
        let mut c = runc_spec();
        c["linux"]["resources"] = serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        ]});
        let mut f = facts();
        f.cgroup = CgroupHost {
            v2_mount: Some("/sys/fs/cgroup".into()),
            v2_controllers: vec!["memory".into(), "pids".into(), "cpu".into()],
            v2_own: Some("/ci".into()),
            v1: vec![],
        };
        let p = translate_on(&c.to_string(), &f).unwrap();
        let cg = p.cgroup.unwrap();
        assert_eq!(cg.driver, crate::cgroup::Driver::V2);
        let prog = &cg.device_program;
        let ask = |ma, mi, a| crate::cgroup::run_device_program(prog, 'c', ma, mi, a).unwrap();
        assert!(ask(1, 3, "rw"), "/dev/null, as every container has it");
        assert!(ask(136, 0, "rw"), "a terminal");
        assert!(ask(10, 200, "rwm"));
        assert!(!ask(10, 229, "r"), "denied by the bundle");
        assert!(!ask(8, 0, "r"), "not allowed");
        assert!(!crate::cgroup::run_device_program(prog, 'b', 8, 0, "r").unwrap());
        // v2's unified files: a controller's file is written to the leaf, its controller
        // enabled; anything else (cgroup.procs would move processes) is refused by name.
        let on_v2 = |res: serde_json::Value| {
            let mut c = runc_spec();
            c["linux"]["resources"] = res;
            translate_on(&c.to_string(), &f)
        };
        let p = on_v2(serde_json::json!({"unified": {"memory.high": "5000000"}})).unwrap();
        let d = &p.cgroup.unwrap().dirs[0];
        assert!(d.writes.contains(&("memory.high".into(), "5000000".into())));
        // A controller the host does not offer (cpuset here) is refused by the field.
        let e = on_v2(serde_json::json!({"cpu": {"cpus": "1"}})).unwrap_err();
        assert!(e.to_string().contains("linux.resources.cpu.cpus"), "{e}");
        for (k, field) in [
            ("cgroup.procs", "linux.resources.unified.cgroup.procs"),
            ("memory.../x", "linux.resources.unified.memory.../x"),
        ] {
            let e = on_v2(serde_json::json!({"unified": {k: "1"}})).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    /// linux.resources beyond nucleus's own limits: each the file its driver has (or the
    /// first of the files the kernel may offer), a setting without a file on the driver or
    /// a controller the host lacks refused by the field.
    #[test]
    fn resources_beyond_the_limits_are_the_drivers_files() {
        use crate::cgroup::Driver;
        use serde_json::json;
        let all = json!({
            "memory": {"limit": 67108864, "kernelTCP": 1048576, "disableOOMKiller": true},
            "cpu": {"quota": 25000, "period": 50000, "burst": 1000, "idle": 1,
                    "realtimePeriod": 1000000, "realtimeRuntime": 950000},
            "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}]},
        });
        let on = |res: &serde_json::Value, f: &HostFacts| {
            let mut c = runc_spec();
            c["linux"]["resources"] = res.clone();
            translate_on(&c.to_string(), f)
        };
        let w = |f: &str, v: &str| (f.to_string(), v.to_string());
        // v1 (this project's CI host).
        let cg = on(&all, &facts()).unwrap().cgroup.unwrap();
        assert_eq!(cg.driver, Driver::V1);
        let dir = |h: &str| cg.dirs.iter().find(|d| d.hierarchy == h).unwrap().clone();
        assert_eq!(
            dir("cpu").writes,
            [
                w("cpu.cfs_period_us", "50000"),
                w("cpu.cfs_quota_us", "25000"),
                w("cpu.cfs_burst_us", "1000"),
                w("cpu.idle", "1"),
                w("cpu.rt_period_us", "1000000"),
                w("cpu.rt_runtime_us", "950000"),
            ]
        );
        assert_eq!(
            dir("memory").writes[1..],
            [
                w("memory.kmem.tcp.limit_in_bytes", "1048576"),
                w("memory.oom_control", "1"),
            ]
        );
        assert_eq!(
            dir("blkio").first_of,
            [
                vec![w("blkio.bfq.weight", "500"), w("blkio.weight", "500")],
                vec![
                    w("blkio.bfq.weight_device", "8:0 300"),
                    w("blkio.weight_device", "8:0 300")
                ],
            ]
        );
        // v2: blk-iocost's weight on its own scale; what v2 has no file for is refused.
        let mut f = facts();
        f.cgroup = CgroupHost {
            v2_mount: Some("/sys/fs/cgroup".into()),
            v2_controllers: ["memory", "pids", "cpu", "io", "hugetlb"]
                .map(String::from)
                .to_vec(),
            v2_own: Some("/ci".into()),
            v1: vec![],
        };
        let mut v2 = all.clone();
        for k in ["kernelTCP", "disableOOMKiller"] {
            v2["memory"].as_object_mut().unwrap().remove(k);
        }
        for k in ["realtimePeriod", "realtimeRuntime"] {
            v2["cpu"].as_object_mut().unwrap().remove(k);
        }
        v2["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
        let cg = on(&v2, &f).unwrap().cgroup.unwrap();
        let d = &cg.dirs[0];
        for x in [
            w("cpu.max", "25000 50000"),
            w("cpu.max.burst", "1000"),
            w("cpu.idle", "1"),
            w("hugetlb.2MB.max", "4194304"),
        ] {
            assert!(d.writes.contains(&x), "{x:?} in {:?}", d.writes);
        }
        assert!(d.enable.contains(&"hugetlb".to_string()));
        assert_eq!(
            d.first_of,
            [
                vec![
                    w("io.bfq.weight", "default 500"),
                    w("io.weight", "default 4950")
                ],
                vec![w("io.bfq.weight", "8:0 300"), w("io.weight", "8:0 2930")],
            ]
        );
        assert_eq!((io_weight(10), io_weight(1000)), (1, 10_000));
        for (res, want) in [
            (
                json!({"memory": {"kernelTCP": 1}}),
                "linux.resources.memory.kernelTCP",
            ),
            (
                json!({"memory": {"disableOOMKiller": true}}),
                "linux.resources.memory.disableOOMKiller",
            ),
            (
                json!({"memory": {"swappiness": 10}}),
                "linux.resources.memory.swappiness",
            ),
            (
                json!({"cpu": {"realtimeRuntime": 5}}),
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                json!({"network": {"classID": 5}}),
                "linux.resources.network.classID",
            ),
        ] {
            assert_eq!(field(on(&res, &f)), want);
        }
        // Refused on either driver: out of the kernel's range, gone from it, not a page size,
        // a controller this host has not.
        for (res, want) in [
            (
                json!({"cpu": {"quota": 5000, "period": 999}}),
                "linux.resources.cpu.period",
            ),
            (
                json!({"cpu": {"quota": 5000, "period": 1000001}}),
                "linux.resources.cpu.period",
            ),
            (json!({"cpu": {"idle": 2}}), "linux.resources.cpu.idle"),
            (
                json!({"blockIO": {"weight": 9}}),
                "linux.resources.blockIO.weight",
            ),
            (
                json!({"blockIO": {"weight": 1001}}),
                "linux.resources.blockIO.weight",
            ),
            (
                json!({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 5}]}}),
                "linux.resources.blockIO.weightDevice[0].weight",
            ),
            (
                json!({"blockIO": {"leafWeight": 100}}),
                "linux.resources.blockIO.leafWeight",
            ),
            (
                json!({"memory": {"kernel": 1048576}}),
                "linux.resources.memory.kernel",
            ),
            (
                json!({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}),
                "linux.resources.hugepageLimits[0].pageSize",
            ),
            (
                json!({"hugepageLimits": [{"pageSize": "MB", "limit": 1}]}),
                "linux.resources.hugepageLimits[0].pageSize",
            ),
            (
                json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}),
                "linux.resources.hugepageLimits[0].pageSize",
            ),
            (
                json!({"network": {"classID": 5}}),
                "linux.resources.network.classID",
            ),
            (
                json!({"rdma": {"mlx4_0": {"hcaHandles": 2}}}),
                "linux.resources.rdma.mlx4_0",
            ),
        ] {
            assert_eq!(field(on(&res, &facts())), want, "{res}");
        }
        // A limit at the edge of the kernel's range is taken.
        for p in [1000, 1_000_000] {
            let res = json!({"cpu": {"quota": 5000, "period": p}});
            assert!(on(&res, &facts()).is_ok(), "{p}");
        }
        // update: the same files for the sandbox's driver.
        let u = update_resources(&all.to_string(), Driver::V1).unwrap();
        assert_eq!(u.limits.cpu_period_us, Some(50_000));
        assert_eq!(u.extras.len(), 8);
        assert!(!u.check_memory);
        let u = update_resources(
            r#"{"memory": {"limit": 67108864, "checkBeforeUpdate": true}}"#,
            Driver::V2,
        )
        .unwrap();
        assert!(u.check_memory && u.given == ["--memory"]);
        let e = update_resources(r#"{"memory": {"swappiness": 1}}"#, Driver::V2).unwrap_err();
        assert!(e.to_string().contains("memory.swappiness"), "{e}");
        for (r, f) in [
            (r#"{"memory": {"limit": -1}}"#, "memory.limit"),
            (r#"{"cpu": {"quota": -1}}"#, "cpu.quota"),
        ] {
            let e = update_resources(r, Driver::V1).unwrap_err();
            assert!(e.to_string().contains(f), "{e}");
        }
        // A zero (a client's unset value) asks for nothing.
        assert!(update_resources(r#"{"memory": {"limit": 0}}"#, Driver::V1)
            .unwrap()
            .given
            .is_empty());
    }

    /// --systemd-cgroup: the container's cgroup is the scope runc's slice:prefix:name path
    /// names, in its slice's cgroup (never removed by nucleus), with the limits as unit
    /// properties; a path not in that form is refused by the field.
    #[test]
    fn the_systemd_driver_makes_the_scope_the_path_names() {
        use serde_json::json;
        let on = |path: serde_json::Value, f: &HostFacts| {
            let mut c = runc_spec();
            c["linux"]["cgroupsPath"] = path;
            c["linux"]["resources"] = json!({"memory": {"limit": 67108864, "reservation": 1048576}, "pids": {"limit": 40}, "cpu": {"cpus": "0-1"}});
            let b = super::super::parse(&c.to_string()).map_err(PlanError::Config)?;
            plan(
                &b,
                &Context {
                    id: "c1",
                    bundle: Path::new("/b"),
                    fifo: "/run/nucleus/c1/exec.fifo".into(),
                    no_pivot: false,
                    systemd_cgroup: true,
                    rootless: false,
                    facts: f,
                },
            )
        };
        let mut f = facts();
        f.cgroup = CgroupHost {
            v2_mount: Some("/sys/fs/cgroup".into()),
            v2_controllers: ["memory", "pids", "cpu", "cpuset"]
                .map(String::from)
                .to_vec(),
            v2_own: Some("/init.scope".into()),
            v1: vec![],
        };
        let v1 = facts();
        let cg = on(json!("kubepods-pod1.slice:cri-containerd:abc"), &f)
            .unwrap()
            .cgroup
            .unwrap();
        assert_eq!(cg.leaf, "cri-containerd-abc.scope");
        assert!(!cg.remove_empty_parents);
        assert_eq!(
            cg.dirs[0].parents,
            [PathBuf::from(
                "/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice"
            )]
        );
        let s = cg.systemd.unwrap();
        assert_eq!(
            (s.slice.as_str(), s.unit.as_str()),
            ("kubepods-pod1.slice", "cri-containerd-abc.scope")
        );
        let u = |n: &str, v| (n.to_string(), ScopeValue::U64(v));
        assert_eq!(
            s.properties,
            [
                u("MemoryMax", 67108864),
                u("MemorySwapMax", 67108864),
                u("TasksMax", 40),
                u("MemoryLow", 1048576),
                ("AllowedCPUs".to_string(), ScopeValue::Bytes(vec![0b11])),
            ]
        );
        let cg = on(serde_json::Value::Null, &f).unwrap().cgroup.unwrap();
        assert_eq!(cg.leaf, "nucleus-c1.scope");
        assert_eq!(field(on(json!("/plain/path"), &f)), "linux.cgroupsPath");
        assert_eq!(
            field(on(json!("system.slice:x:y"), &v1)),
            "--systemd-cgroup"
        );
    }

    /// process.ioPriority, scheduler, execCPUAffinity and consoleSize: the kernel's values,
    /// and what the kernel would refuse refused by the field.
    #[test]
    fn process_tuning_is_the_kernels_values() {
        use serde_json::json;
        let with = |k: &str, v: serde_json::Value| {
            let mut c = runc_spec();
            c["process"][k] = v;
            translate(&c.to_string())
        };
        let t = |k: &str, v: serde_json::Value| with(k, v).unwrap().process.tuning;
        assert_eq!(
            t(
                "ioPriority",
                json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7})
            )
            .io_priority,
            Some(3 << 13 | 7)
        );
        assert_eq!(
            t(
                "ioPriority",
                json!({"class": "IOPRIO_CLASS_RT", "priority": 0})
            )
            .io_priority,
            Some(1 << 13)
        );
        let s = t("scheduler", json!({"policy": "SCHED_BATCH", "nice": 5}))
            .scheduler
            .unwrap();
        assert_eq!((s.policy, s.nice, s.priority), (3, 5, 0));
        let s = t(
            "scheduler",
            json!({"policy": "SCHED_RR", "priority": 10, "flags": ["SCHED_RESET_ON_FORK", "SCHED_FLAG_KEEP_PARAMS"]}),
        )
        .scheduler
        .unwrap();
        assert_eq!((s.policy, s.priority, s.flags), (2, 10, 0x11));
        let s = t(
            "scheduler",
            json!({"policy": "SCHED_DEADLINE", "runtime": 1024, "deadline": 2000, "period": 3000}),
        )
        .scheduler
        .unwrap();
        assert_eq!(
            (s.policy, s.runtime, s.deadline, s.period),
            (6, 1024, 2000, 3000)
        );
        // execCPUAffinity: an exec'd process's, not the container's own (runtime-spec).
        let a = t("execCPUAffinity", json!({"initial": "0", "final": "0-2,1"}));
        assert_eq!((a.cpus_initial, a.cpus_final), (None, None));
        let container = translate(&runc_spec().to_string()).unwrap();
        let exec = |v: serde_json::Value| {
            let mut p = runc_spec()["process"].clone();
            p["execCPUAffinity"] = v;
            super::super::exec_process(&p.to_string(), &container)
        };
        let a = exec(json!({"initial": "0", "final": "0-2,1"}))
            .unwrap()
            .process
            .tuning;
        assert_eq!(
            (a.cpus_initial, a.cpus_final),
            (Some(vec![0]), Some(vec![0, 1, 2]))
        );
        assert!(exec(json!({"final": "1024"})).is_err());
        // The format is oci-spec's regex (on regex-lite here: vendor/regex-on-lite): lists
        // and ranges of ASCII digits, nothing else, Unicode digits included.
        for bad in ["0-", "a", "0,,1", "1 ", "\u{663}", "0-\u{661}"] {
            assert!(
                exec(json!({ "final": bad })).is_err(),
                "execCPUAffinity {bad:?} taken"
            );
        }
        assert!(exec(json!({"initial": "0,1-1"})).is_ok());
        // A Unicode digit is refused by the regex itself, as only regex-lite's \d (ASCII)
        // does (the full crate's would pass it on to the CPU list's parse, which refuses it
        // with another message): the patch applies. And the full crate is not in the lock.
        let e = exec(json!({"final": "\u{663}"})).err().unwrap().to_string();
        assert!(e.contains("Invalid execCPUAffinity format"), "{e}");
        let lock = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock"),
        )
        .unwrap();
        assert!(
            !lock.contains("name = \"regex-automata\""),
            "the full regex crate is back in Cargo.lock: vendor/regex-on-lite no longer applies"
        );
        assert_eq!(
            t("consoleSize", json!({"height": 40, "width": 100})).console_size,
            Some((40, 100))
        );
        assert!(t("cwd", json!("/")).is_empty());
        for (k, v, want) in [
            (
                "ioPriority",
                json!({"class": "IOPRIO_CLASS_BE", "priority": 8}),
                "process.ioPriority.priority",
            ),
            (
                "ioPriority",
                json!({"class": "IOPRIO_CLASS_BE", "priority": -1}),
                "process.ioPriority.priority",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_FIFO"}),
                "process.scheduler.priority",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_FIFO", "priority": 100}),
                "process.scheduler.priority",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_OTHER", "priority": 1}),
                "process.scheduler.priority",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_OTHER", "nice": 20}),
                "process.scheduler.nice",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_OTHER", "nice": -21}),
                "process.scheduler.nice",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_ISO"}),
                "process.scheduler.policy",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_DEADLINE", "runtime": 1023, "deadline": 2000}),
                "process.scheduler",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN"]}),
                "process.scheduler.flags",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_DEADLINE", "runtime": 30, "deadline": 20}),
                "process.scheduler",
            ),
            (
                "scheduler",
                json!({"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 15}),
                "process.scheduler",
            ),
            (
                "consoleSize",
                json!({"height": 70000, "width": 1}),
                "process.consoleSize.height",
            ),
        ] {
            assert_eq!(field(with(k, v.clone())), want, "{k} {v}");
        }
        assert_eq!(
            crate::plan::parse_cpu_list("3-1").unwrap_err(),
            "\"3-1\": a CPU list like 0-3,7 (CPUs 0 to 1023)"
        );
        assert!(crate::plan::parse_cpu_list("1024").is_err());
        assert_eq!(crate::plan::parse_cpu_list("1023").unwrap(), [1023]);
    }

    /// Rootless (the runtime is uid 0 of a user namespace): a container asking for no
    /// resource (none, `{}`, or the zeros clients write for unset values) may go without a
    /// cgroup; one asking for a limit may not. Device nodes are bound, never made.
    #[test]
    fn rootless_containers_without_limits_may_go_without_a_cgroup() {
        use serde_json::json;
        let on = |res: serde_json::Value| {
            let mut c = runc_spec();
            c["linux"]["resources"] = res;
            let b = super::super::parse(&c.to_string()).unwrap();
            let f = facts();
            plan(
                &b,
                &Context {
                    id: "c1",
                    bundle: Path::new("/b"),
                    fifo: "/run/nucleus/c1/exec.fifo".into(),
                    no_pivot: false,
                    systemd_cgroup: false,
                    rootless: true,
                    facts: &f,
                },
            )
            .unwrap()
        };
        for res in [
            serde_json::Value::Null,
            json!({}),
            json!({"memory": {"limit": 0}, "cpu": {"cpus": ""}, "blockIO": {"weight": 0}, "devices": []}),
        ] {
            let p = on(res.clone());
            assert!(p.cgroup.unwrap().quiet_failure, "{res}");
            assert!(p.namespaces.inside_user);
        }
        for res in [
            json!({"memory": {"limit": 67108864}}),
            json!({"pids": {"limit": 5}}),
        ] {
            assert!(!on(res.clone()).cgroup.unwrap().quiet_failure, "{res}");
        }
        assert!(
            !translate(&runc_spec().to_string())
                .unwrap()
                .namespaces
                .inside_user
        );
    }

    /// linux.memoryPolicy: set_mempolicy's mode with its flags and the nodes; what the kernel
    /// would refuse is refused by the field.
    #[test]
    fn memory_policy_is_set_mempolicys_arguments() {
        use serde_json::json;
        let with = |v: serde_json::Value| {
            let mut c = runc_spec();
            c["linux"]["memoryPolicy"] = v;
            translate(&c.to_string())
        };
        let p =
            with(json!({"mode": "MPOL_BIND", "nodes": "0-1,3", "flags": ["MPOL_F_STATIC_NODES"]}))
                .unwrap()
                .process
                .tuning
                .memory_policy
                .unwrap();
        assert_eq!((p.mode, p.nodes), (2 | 1 << 15, vec![0, 1, 3]));
        let p = with(json!({"mode": "MPOL_LOCAL"}))
            .unwrap()
            .process
            .tuning
            .memory_policy;
        assert_eq!(p.map(|p| p.mode), Some(4));
        for (v, f) in [
            (json!({"mode": "MPOL_BIND"}), "linux.memoryPolicy.nodes"),
            (
                json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
                "linux.memoryPolicy.nodes",
            ),
            (
                json!({"mode": "MPOL_INTERLEAVE", "nodes": "0-x"}),
                "linux.memoryPolicy.nodes",
            ),
            (
                json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
                "linux.memoryPolicy.flags",
            ),
        ] {
            assert_eq!(field(with(v.clone())), f, "{v}");
        }
    }

    /// linux.netDevices: (host name, name inside) in a stable order; names the kernel would
    /// refuse, a name given twice and a container without its own network namespace refused.
    #[test]
    fn net_devices_are_moved_by_name() {
        use serde_json::json;
        let with = |v: serde_json::Value, own_net: bool| {
            let mut c = runc_spec();
            c["linux"]["netDevices"] = v;
            if !own_net {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n["type"] != "network");
            }
            translate(&c.to_string())
        };
        let p = with(json!({"eth1": {"name": "ctr0"}, "dummy0": {}}), true).unwrap();
        assert_eq!(
            p.net_devices,
            [
                ("dummy0".to_string(), "dummy0".to_string()),
                ("eth1".into(), "ctr0".into())
            ]
        );
        for (v, own, f) in [
            (json!({"eth1": {}}), false, "linux.netDevices"),
            (json!({"a/b": {}}), true, "linux.netDevices.a/b"),
            (
                json!({"eth1": {"name": "x".repeat(16)}}),
                true,
                "linux.netDevices.eth1.name",
            ),
            (
                json!({"eth1": {"name": "c"}, "eth2": {"name": "c"}}),
                true,
                "linux.netDevices.eth2.name",
            ),
        ] {
            assert_eq!(field(with(v.clone(), own)), f, "{v}");
        }
    }

    #[test]
    fn runc_default_spec_is_a_plan_of_exactly_what_it_says() {
        let p = translate(&runc_spec().to_string()).unwrap();
        let n = &p.namespaces;
        assert!(n.pid && n.mount && n.net && n.uts && n.ipc && !n.user && !n.cgroup);
        assert_eq!(p.idmap, IdMapPlan::Host);
        assert_eq!(p.hostname, "runc");
        assert_eq!(
            p.root,
            RootSource::Dir {
                path: "/b/rootfs".into(),
                readonly: true
            }
        );
        assert_eq!(p.process.argv, vec!["sh"]);
        assert!(p.process.tty && p.process.no_new_privs);
        // No agent defaults: no Landlock, no seccomp filter, no init of ours.
        assert!(p.landlock.is_none() && p.seccomp_bpf.is_empty() && p.init_seccomp_bpf.is_empty());
        assert!(matches!(p.supervisor, Supervisor::Caller { .. }));
        let caps = p.process.caps.unwrap();
        assert_eq!(
            CapSets::names(caps.bounding),
            vec!["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
        );
        assert_eq!(caps.inheritable, 0);
        assert_eq!(p.process.rlimits.len(), 1);
        // proc, /dev tmpfs, devpts, shm, mqueue, sysfs as the bundle writes them; its cgroup
        // mount is the container's own cgroup, read-only.
        let kinds: Vec<String> = p
            .mounts
            .iter()
            .filter_map(|m| match m {
                MountOp::Oci { fstype, dst, .. } => Some(format!("{fstype}:{}", dst.display())),
                MountOp::Cgroup { dst } => Some(format!("cgroup:{}", dst.display())),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "proc:/proc",
                "tmpfs:/dev",
                "devpts:/dev/pts",
                "tmpfs:/dev/shm",
                "mqueue:/dev/mqueue",
                "sysfs:/sys",
                "cgroup:/sys/fs/cgroup"
            ]
        );
        // The default devices in the container's own /dev, its masks, its read-only paths,
        // and the read-only root last.
        let devices = p
            .mounts
            .iter()
            .filter(|m| matches!(m, MountOp::Device { .. }))
            .count();
        assert_eq!(devices, 6);
        assert!(p
            .mounts
            .iter()
            .any(|m| matches!(m, MountOp::Mask { dst } if dst == Path::new("/proc/kcore"))));
        assert!(p.mounts.iter().any(
            |m| matches!(m, MountOp::ReadonlyIfExists { dst } if dst == Path::new("/proc/sys"))
        ));
        assert_eq!(p.mounts.last(), Some(&MountOp::RemountRootReadonly));
        // Its device rule (deny all) is written in the v1 devices hierarchy.
        let cg = p.cgroup.unwrap();
        assert_eq!(cg.leaf, "c1");
        let dev = cg.dirs.iter().find(|d| d.hierarchy == "devices").unwrap();
        let rule = |f: &str, l: &str| (f.to_string(), l.to_string());
        assert_eq!(dev.writes[0], rule("devices.deny", "a *:* rwm"));
        // Then, as runc, what every container's /dev holds (its terminal too), once each.
        assert_eq!(dev.writes.len(), 9, "{:?}", dev.writes);
        for l in ["c 1:3 rwm", "c 5:2 rwm", "c 136:* rwm", "c 5:0 rwm"] {
            assert!(dev.writes.contains(&rule("devices.allow", l)), "{l}");
        }
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        let with = |path: &[&str], v: serde_json::Value| {
            let mut s = runc_spec();
            let mut at = &mut s;
            for k in &path[..path.len() - 1] {
                at = at.get_mut(*k).unwrap();
            }
            at[path[path.len() - 1]] = v;
            translate(&s.to_string())
        };
        use serde_json::json;
        let cases = [
            (
                with(&["hooks"], json!({"poststop": [{"path": "true"}]})),
                "hooks.poststop[0].path",
            ),
            (
                with(
                    &["hooks"],
                    json!({"createRuntime": [{"path": "/bin/true", "timeout": 0}]}),
                ),
                "hooks.createRuntime[0].timeout",
            ),
            (
                with(&["linux", "intelRdt"], json!({"closID": "x"})),
                "linux.intelRdt",
            ),
            (
                with(&["linux", "personality"], json!({"domain": "LINUX64"})),
                "linux.personality.domain",
            ),
            (
                with(&["linux", "timeOffsets"], json!({"monotonic": {"secs": 5}})),
                "linux.timeOffsets",
            ),
            (
                with(
                    &["linux", "resources", "unified"],
                    json!({"memory.high": "1"}),
                ),
                "linux.resources.unified",
            ),
            (
                with(
                    &["linux", "resources", "memory"],
                    json!({"swappiness": 200}),
                ),
                "linux.resources.memory.swappiness",
            ),
            (
                with(&["linux", "sysctl"], json!({"vm.swappiness": "0"})),
                "linux.sysctl.vm.swappiness",
            ),
            (
                with(&["linux", "cgroupsPath"], json!("machine.slice:libpod:c1")),
                "linux.cgroupsPath",
            ),
            (with(&["process", "cwd"], json!("relative")), "process.cwd"),
            (
                with(&["process", "env"], json!(["NOEQUALS"])),
                "process.env[0]",
            ),
            (with(&["process", "args"], json!([])), "process.args"),
            (
                with(
                    &["mounts"],
                    json!([{"destination": "/../x", "type": "tmpfs", "source": "t"}]),
                ),
                "mounts[0].destination",
            ),
            (
                with(
                    &["mounts"],
                    json!([{"destination": "/x", "type": "tmpfs", "options": ["mode=1,uid=0"]}]),
                ),
                "mounts[0].options",
            ),
            (
                with(
                    &["mounts"],
                    json!([{"destination": "/x", "type": "bind", "source": "/s", "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]),
                ),
                "mounts[0].uidMappings",
            ),
            (
                with(&["linux", "namespaces"], json!([{"type": "pid"}])),
                "linux.namespaces",
            ),
            (
                with(
                    &["linux", "namespaces"],
                    json!([{"type": "mount"}, {"type": "mount"}]),
                ),
                "linux.namespaces[1]",
            ),
            (
                with(
                    &["linux", "namespaces"],
                    json!([{"type": "mount"}, {"type": "user"}]),
                ),
                "linux.uidMappings",
            ),
            (
                with(&["linux", "resources", "cpu"], json!({"cpus": "0-1"})),
                "linux.resources.cpu.cpus",
            ),
            (
                with(
                    &["linux", "resources", "devices"],
                    json!([{"allow": true, "type": "c", "access": "rwx"}]),
                ),
                "linux.resources.devices[0].access",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(field(r), want);
        }
        // A hostname needs the container's own uts namespace.
        let r = with(&["linux", "namespaces"], json!([{"type": "mount"}]));
        assert_eq!(field(r), "hostname");
    }

    #[test]
    fn namespaces_with_a_path_are_joined_and_id_maps_checked() {
        use serde_json::json;
        let mut s = runc_spec();
        s["linux"]["namespaces"] = json!([
            {"type": "mount"}, {"type": "pid"}, {"type": "uts"},
            {"type": "network", "path": "/run/netns/cni-1"},
            {"type": "user"}
        ]);
        s["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        s["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let p = translate(&s.to_string()).unwrap();
        assert!(!p.namespaces.net && p.namespaces.user);
        assert_eq!(
            p.namespaces.join,
            vec![NsJoin {
                kind: NsKind::Net,
                path: "/run/netns/cni-1".into()
            }]
        );
        assert_eq!(p.network, NetworkMode::Host);
        assert!(matches!(&p.idmap, IdMapPlan::Explicit { uid, .. } if uid[0].host == 100000));
        s["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 10},
            {"containerID": 5, "hostID": 200000, "size": 10}
        ]);
        assert_eq!(field(translate(&s.to_string())), "linux.uidMappings[1]");
    }

    #[test]
    fn the_bundles_seccomp_profile_is_compiled_by_nucleus() {
        use serde_json::json;
        let mut s = runc_spec();
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        });
        let p = translate(&s.to_string()).unwrap();
        assert!(!p.seccomp_bpf.is_empty());
        s["linux"]["seccomp"]["syscalls"][0]["names"] = json!(["no_such_call"]);
        assert_eq!(field(translate(&s.to_string())), "linux.seccomp");
    }
}
