//! `nucleus run`: flags → RunConfig → Plan → sandbox.

use crate::cli::RunArgs;
use crate::events::{self, Events};
use crate::log::Logger;
use crate::telemetry::{self, Tracer};
use crate::{monitor, records};
use anyhow::{Context, Result};
use nucleus_spec::cgroup::{
    parse_cpu_weight, parse_cpus, parse_pids, CgroupParent, CgroupPlan, IoLimit, Limits, SwapLimit,
};
use nucleus_spec::config::{
    parse_size, ConfigError, EnvVar, GroupSpec, HealthOnFailure, ProviderConfig, Readiness,
    RestartPolicy, Secret, TmpfsSpec, Ulimit, UserSpec, Volume,
};
use nucleus_spec::net::NetConfig;
use nucleus_spec::state::validate_name;
use nucleus_spec::{Plan, RunConfig};
use nucleus_sys::sandbox;
use nucleus_sys::store::Store;
use std::path::{Path, PathBuf};

fn env_from(flag: &str, s: &str) -> Result<EnvVar, ConfigError> {
    if s.contains('=') {
        return EnvVar::parse(flag, s);
    }
    EnvVar::validate_key(flag, s)?;
    match std::env::var(s) {
        Ok(v) => Ok(EnvVar {
            key: s.into(),
            value: v,
        }),
        Err(_) => Err(ConfigError::new(
            flag,
            format!("{s}: not set in the caller's environment"),
        )),
    }
}

/// The runsc binary `--runtime gvisor` runs as root: `--runsc` / NUCLEUS_RUNSC, else runsc in
/// PATH; an absolute path to a regular, executable file owned by root that nobody else may
/// write (it is run with every privilege). Never a fallback to the native runtime.
fn runsc(given: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let flag = if given.is_some() {
        "--runsc"
    } else {
        "--runtime"
    };
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("runsc"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                ConfigError::new(
                    "--runtime",
                    "gvisor: runsc not found in PATH (install gVisor's runsc, or give --runsc PATH or NUCLEUS_RUNSC)",
                )
            })?,
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    let bad = |why: &str| ConfigError::new(flag, format!("{}: {why}", path.display()));
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&path).map_err(|e| bad(&e.to_string()))?;
    if !md.is_file() || md.mode() & 0o111 == 0 {
        return Err(bad("not an executable file"));
    }
    if md.uid() != 0 || md.mode() & 0o022 != 0 {
        return Err(bad(
            "must be owned by root and writable by nobody else (it runs as root)",
        ));
    }
    Ok(path)
}

fn env_file(path: &Path) -> Result<Vec<EnvVar>, ConfigError> {
    let flag = "--env-file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(flag, format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        out.push(env_from(flag, l).map_err(|e| {
            ConfigError::new(flag, format!("{}:{}: {}", path.display(), i + 1, e.message))
        })?);
    }
    Ok(out)
}

pub(crate) fn config(a: &RunArgs) -> Result<RunConfig, ConfigError> {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(env_file(f)?);
    }
    for e in &a.env {
        env.push(env_from("--env", e)?);
    }
    let (user, group) = user_and_group(a)?;
    Ok(RunConfig {
        argv: a.command.clone(),
        service_mode: a.service_mode,
        network: a.network,
        net: net_config(a)?,
        health: health(a)?,
        timeout_ms: match &a.timeout {
            None => None,
            Some(t) => match nucleus_spec::config::parse_duration_ms("--timeout", t)? {
                0 => return Err(ConfigError::new("--timeout", "must be more than 0")),
                ms => Some(ms),
            },
        },
        rootfs: a.rootfs.clone(),
        rootfs_attest: match (&a.rootfs_manifest, &a.rootfs_sha256) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "--rootfs-sha256",
                    "there is no --rootfs-manifest to check",
                ))
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "--rootfs-sha256",
                    "missing: pin the digest --rootfs-manifest must have",
                ))
            }
            (Some(m), Some(pin)) => Some(nucleus_spec::attest::AttestedRoot {
                source: Default::default(),
                manifest: m.clone(),
                sha256: nucleus_spec::attest::parse_pin("--rootfs-sha256", pin)?,
                cache: a.rootfs_cache.clone(),
            }),
        },
        secrets: secrets(a)?,
        readiness: match (a.sd_notify, a.readiness_tcp, &a.readiness_exec) {
            (false, None, None) => Readiness::Started,
            (true, None, None) => Readiness::Notify,
            (false, Some(0), None) => {
                return Err(ConfigError::new(
                    "--readiness-tcp",
                    "a port from 1 to 65535",
                ))
            }
            (false, Some(p), None) => Readiness::Tcp(p),
            (false, None, Some(c)) if c.trim().is_empty() => {
                return Err(ConfigError::new("--readiness-exec", "empty command"))
            }
            (false, None, Some(c)) => Readiness::Exec(c.clone()),
            _ => {
                return Err(ConfigError::new(
                    "--sd-notify",
                    "give one of --sd-notify, --readiness-tcp and --readiness-exec",
                ))
            }
        },
        notify_socket: None,
        restart: RestartPolicy::parse("--restart", &a.restart)?,
        health_on_failure: match a.health_on_failure.as_str() {
            "none" => HealthOnFailure::None,
            "restart" => HealthOnFailure::Restart,
            o => {
                return Err(ConfigError::new(
                    "--health-on-failure",
                    format!(
                        "{:?}: none or restart",
                        nucleus_spec::config::single_line(o)
                    ),
                ))
            }
        },
        hostname: a.hostname.clone(),
        workdir: a.workdir.clone(),
        env,
        user,
        group,
        additional_groups: a
            .additional_group
            .iter()
            .map(|g| GroupSpec::parse("--additional-group", g))
            .collect::<Result<_, _>>()?,
        ulimits: a
            .ulimit
            .iter()
            .map(|u| Ulimit::parse(u))
            .collect::<Result<_, _>>()?,
        time_offset: a.time_offset,
        context: a.context.clone(),
        context_mode: a.context_mode,
        workspace: a.workspace.clone(),
        workspace_mode: a.workspace_mode,
        workspace_max_size: Some(
            parse_size("--workspace-max-size", &a.workspace_max_size).and_then(|n| {
                if n < 1 << 20 {
                    Err(ConfigError::new(
                        "--workspace-max-size",
                        "must be at least 1M",
                    ))
                } else {
                    Ok(n)
                }
            })?,
        ),
        volumes: a
            .volume
            .iter()
            .map(|v| Volume::parse(v))
            .collect::<Result<_, _>>()?,
        tmpfs: a
            .tmpfs
            .iter()
            .map(|t| TmpfsSpec::parse(t))
            .collect::<Result<_, _>>()?,
        provider_configs: a
            .provider_config_ro
            .iter()
            .map(|p| ProviderConfig::parse(p))
            .collect::<Result<_, _>>()?,
        tty: a.tty,
        proc_rw: a.proc_rw,
        checkpointable: a.checkpointable,
        seccomp_allow: a.seccomp_allow.clone(),
        seccomp_profile: read_policy("--seccomp-profile", a.seccomp_profile.as_deref())?,
        caps_policy: read_policy("--caps-policy", a.caps_policy.as_deref())?,
        landlock_policy: read_policy("--landlock-policy", a.landlock_policy.as_deref())?,
        seccomp_profile_sha256: a.seccomp_profile_sha256.clone(),
        caps_policy_sha256: a.caps_policy_sha256.clone(),
        landlock_policy_sha256: a.landlock_policy_sha256.clone(),
        seccomp_log_denied: a.seccomp_log_denied,
        seccomp_trace: false,
        limits: Limits {
            pids: parse_pids(&a.pids)?,
            io: a
                .io_limit
                .iter()
                .map(|s| IoLimit::parse(s))
                .collect::<Result<_, _>>()?,
            ..limits(
                a.memory.as_deref(),
                a.memory_swap.as_deref(),
                a.cpus.as_deref(),
                a.cpu_weight.as_deref(),
            )?
        },
        cgroup_parent: cgroup_parent(a.cgroup_parent.as_deref())?,
        etc_views: None,
        runtime: a.runtime,
        gvisor_platform: match a.gvisor_platform {
            Some(nucleus_spec::gvisor::GvisorPlatform::Kvm) if !Path::new("/dev/kvm").exists() => {
                return Err(ConfigError::new(
                    "--gvisor-platform",
                    "kvm needs /dev/kvm, which this host has not (ptrace works everywhere)",
                ))
            }
            p => p,
        },
        runsc: match a.runtime {
            nucleus_spec::gvisor::Runtime::Gvisor => Some(runsc(a.runsc.as_deref())?),
            // (NUCLEUS_RUNSC may be set for every run: only gVisor's read it.)
            nucleus_spec::gvisor::Runtime::Native => None,
        },
    })
}

/// `--secret` and `--systemd-credential` (from $CREDENTIALS_DIRECTORY, which systemd sets for
/// a unit with LoadCredential=).
fn secrets(a: &RunArgs) -> Result<Vec<Secret>, ConfigError> {
    let mut out: Vec<Secret> = a
        .secret
        .iter()
        .map(|s| Secret::parse(s))
        .collect::<Result<_, _>>()?;
    const F: &str = "--systemd-credential";
    for c in &a.systemd_credential {
        let (name, dst) = c.split_once(':').unwrap_or((c, c));
        Secret::check_name(F, name)?;
        Secret::check_name(F, dst)?;
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
            ConfigError::new(
                F,
                "$CREDENTIALS_DIRECTORY is not set (systemd sets it in a unit with LoadCredential=)",
            )
        })?;
        let src = Path::new(&dir).join(name);
        if !src.is_file() {
            return Err(ConfigError::new(
                F,
                format!(
                    "{name:?}: no such credential in $CREDENTIALS_DIRECTORY ({})",
                    Path::new(&dir).display()
                ),
            ));
        }
        out.push(Secret {
            name: dst.to_string(),
            src,
        });
    }
    Secret::check_unique(&out)?;
    Ok(out)
}

/// The limits `run` and `update` take alike (`pids` and `io` left to the caller: none here).
pub(crate) fn limits(
    memory: Option<&str>,
    memory_swap: Option<&str>,
    cpus: Option<&str>,
    cpu_weight: Option<&str>,
) -> Result<Limits, ConfigError> {
    Ok(Limits {
        memory: memory.map(|m| parse_size("--memory", m)).transpose()?,
        memory_swap: memory_swap.map(SwapLimit::parse).transpose()?,
        cpus_milli: cpus.map(parse_cpus).transpose()?,
        cpu_period_us: None,
        cpu_weight: cpu_weight.map(parse_cpu_weight).transpose()?,
        pids: None,
        io: vec![],
    })
}

/// `--user` and `--group`. A user name given with `--rootfs` must be one of the image's
/// (its /etc/passwd names the uid, and the primary group unless `--group` says); on the
/// default root, whose /etc nucleus writes, `root` is 0 and any other name is made uid 1000.
fn user_and_group(a: &RunArgs) -> Result<(Option<UserSpec>, Option<GroupSpec>), ConfigError> {
    let mut group = a
        .group
        .as_deref()
        .map(|g| GroupSpec::parse("--group", g))
        .transpose()?;
    let Some(u) = a.user.as_deref() else {
        return Ok((None, group));
    };
    let mut user = UserSpec::parse(u)?;
    let named = u.parse::<u32>().is_err() && u != "root";
    if let (true, Some(rootfs)) = (named, &a.rootfs) {
        let passwd =
            nucleus_sys::resolve::read_in_root(rootfs, "etc/passwd", 1 << 20).unwrap_or_default();
        let entry = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == u)
                .then(|| (f[2].parse::<u32>().ok(), f[3].parse::<u32>().ok()))
        });
        match entry {
            Some((Some(uid), gid)) if uid < nucleus_spec::config::ID_RANGE - 1 => {
                user.uid = uid;
                if let (None, Some(gid)) = (&group, gid) {
                    group = Some(GroupSpec {
                        name: u.to_string(),
                        gid,
                    });
                }
            }
            _ => {
                return Err(ConfigError::new(
                    "--user",
                    format!(
                    "{u:?}: no such user in {}/etc/passwd (give a uid, or a user the image has)",
                    rootfs.display()
                ),
                ))
            }
        }
    }
    Ok((Some(user), group))
}

fn health(a: &RunArgs) -> Result<Option<nucleus_spec::config::HealthCheck>, ConfigError> {
    use nucleus_spec::config::{parse_duration_ms, HealthCheck};
    let Some(cmd) = &a.health_cmd else {
        return Ok(None);
    };
    if cmd.trim().is_empty() {
        return Err(ConfigError::new("--health-cmd", "is empty"));
    }
    let interval_ms = parse_duration_ms("--health-interval", &a.health_interval)?;
    if interval_ms < 100 {
        return Err(ConfigError::new(
            "--health-interval",
            "must be at least 100ms",
        ));
    }
    let timeout_ms = parse_duration_ms("--health-timeout", &a.health_timeout)?;
    if timeout_ms == 0 {
        return Err(ConfigError::new("--health-timeout", "must be more than 0"));
    }
    if a.health_retries == 0 {
        return Err(ConfigError::new("--health-retries", "must be at least 1"));
    }
    Ok(Some(HealthCheck {
        cmd: cmd.clone(),
        interval_ms,
        timeout_ms,
        retries: a.health_retries,
        start_period_ms: parse_duration_ms("--health-start-period", &a.health_start_period)?,
    }))
}

fn net_config(a: &RunArgs) -> Result<NetConfig, ConfigError> {
    use nucleus_spec::net::{validate_ifname, Attachment, Cidr, DomainRule, EgressConfig, PortMap};
    let ports = |flag: &str, v: &[String]| -> Result<Vec<u16>, ConfigError> {
        v.iter()
            .map(|p| EgressConfig::parse_port(p, flag))
            .collect()
    };
    validate_ifname(&a.bridge)?;
    Ok(NetConfig {
        publish: a
            .publish
            .iter()
            .map(|p| PortMap::parse(p))
            .collect::<Result<_, _>>()?,
        dns: a
            .dns
            .iter()
            .map(|d| {
                d.parse().map_err(|_| {
                    ConfigError::new("--dns", format!("{d:?} is not an IPv4 or IPv6 address"))
                })
            })
            .collect::<Result<_, _>>()?,
        egress: EgressConfig {
            allow: a
                .egress_allow
                .iter()
                .map(|c| Cidr::parse(c, "--egress-allow"))
                .collect::<Result<_, _>>()?,
            domains: a
                .egress_domain
                .iter()
                .map(|d| DomainRule::parse(d))
                .collect::<Result<_, _>>()?,
            tcp_ports: ports("--egress-tcp-port", &a.egress_tcp_port)?,
            udp_ports: ports("--egress-udp-port", &a.egress_udp_port)?,
        },
        bridge: a.bridge.clone(),
        subnet4: Cidr::parse(&a.subnet, "--subnet")?,
        subnet6: match a.subnet6.as_str() {
            "none" => None,
            s => Some(Cidr::parse(s, "--subnet6")?),
        },
        names: a
            .names_file
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        attach: a
            .attach
            .iter()
            .map(|s| {
                let mut at = Attachment::parse(s)?;
                at.names = at.names.map(|p| std::path::absolute(&p).unwrap_or(p));
                Ok(at)
            })
            .collect::<Result<_, ConfigError>>()?,
        // Decided with the state root (run::main).
        ..NetConfig::default()
    })
}

/// A policy file's path and text (read here, at the edge; decided on in the plan).
fn read_policy(flag: &str, p: Option<&Path>) -> Result<Option<(PathBuf, String)>, ConfigError> {
    p.map(|p| {
        std::fs::read_to_string(p)
            .map(|t| (p.to_path_buf(), t))
            .map_err(|e| ConfigError::new(flag, format!("{}: {e}", p.display())))
    })
    .transpose()
}

pub(crate) fn cgroup_parent(s: Option<&str>) -> Result<CgroupParent, ConfigError> {
    match s {
        None | Some("") => Ok(CgroupParent::Default),
        Some(p) => CgroupParent::parse("--cgroup-parent", p),
    }
}

/// Host paths named by the user must exist before anything starts (checked by the binary, the
/// edge that may touch the file system, so the error names the flag).
fn check_paths(c: &RunConfig) -> Result<(), ConfigError> {
    let dir = |flag: &str, p: &Path| -> Result<(), ConfigError> {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(ConfigError::new(
                flag,
                format!("{}: not a directory", p.display()),
            )),
            Err(e) => Err(ConfigError::new(flag, format!("{}: {e}", p.display()))),
        }
    };
    let any = |flag: &str, p: &Path| -> Result<(), ConfigError> {
        std::fs::metadata(p)
            .map(drop)
            .map_err(|e| ConfigError::new(flag, format!("{}: {e}", p.display())))
    };
    if let Some(r) = &c.rootfs {
        dir("--rootfs", r)?;
    }
    if let Some(w) = &c.workspace {
        dir("--workspace", w)?;
    }
    if let Some(x) = &c.context {
        dir("--context", x)?;
    }
    for v in &c.volumes {
        any("--volume", &v.src)?;
    }
    for p in &c.provider_configs {
        any("--provider-config-ro", &p.src)?;
    }
    for s in &c.secrets {
        match std::fs::metadata(&s.src) {
            Ok(m) if m.is_file() && m.len() <= nucleus_spec::config::MAX_SECRET_BYTES => {}
            Ok(m) if m.is_file() => {
                return Err(ConfigError::new(
                    "--secret",
                    format!("{}: larger than 1 MiB", s.src.display()),
                ))
            }
            Ok(_) => {
                return Err(ConfigError::new(
                    "--secret",
                    format!("{}: not a regular file", s.src.display()),
                ))
            }
            Err(e) => {
                return Err(ConfigError::new(
                    "--secret",
                    format!("{}: {e}", s.src.display()),
                ))
            }
        }
    }
    for l in &c.limits.io {
        let dev = format!("/sys/dev/block/{}:{}", l.major, l.minor);
        if Path::new(&dev).join("partition").exists() {
            // The kernel throttles whole disks only (ENODEV for a partition).
            let disk = std::fs::read_to_string(Path::new(&dev).join("../dev")).unwrap_or_default();
            return Err(ConfigError::new(
                "--io-limit",
                format!(
                    "{}:{} is a partition; I/O limits apply to whole disks (use {})",
                    l.major,
                    l.minor,
                    disk.trim()
                ),
            ));
        }
        if !Path::new(&dev).exists() {
            return Err(ConfigError::new(
                "--io-limit",
                format!(
                    "{}:{} is not a block device on this host (see `lsblk -o NAME,MAJ:MIN`)",
                    l.major, l.minor
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn new_id() -> String {
    let mut b = [0u8; 8];
    nucleus_sys::raw::fill_random(&mut b);
    nucleus_spec::hex(&b)
}

pub(crate) fn main(
    a: RunArgs,
    root: Option<&Path>,
    create: bool,
    log: &Logger,
    t0: u64,
    trace_out: Option<&Path>,
    // `restart`: the sandbox's own id again.
    id: Option<String>,
) -> Result<u8> {
    let mut cfg = config(&a)?;
    if let Some(t) = trace_out {
        if a.detach || create || cfg.seccomp_profile.is_some() || a.seccomp_log_denied {
            return Err(ConfigError::new(
                "seccomp trace",
                "traces a foreground run without a filter (no -d, --seccomp-profile or --seccomp-log-denied)",
            )
            .into());
        }
        // Fail before running anything if the trace cannot be written.
        std::fs::write(t, b"")
            .map_err(|e| ConfigError::new("--output", format!("{}: {e}", t.display())))?;
        cfg.seccomp_trace = true;
    }
    let mut tracer = Tracer::from_env(None)?;
    if let Some(n) = &a.name {
        validate_name("--name", n)?;
    }
    let detached = a.detach || create;
    if !detached && !cfg.restart.is_no() {
        return Err(ConfigError::new(
            "--restart",
            "restarts are the monitor's: give -d (under systemd, the unit's Restart= restarts a foreground run)",
        )
        .into());
    }
    if a.rm && !cfg.restart.is_no() {
        return Err(ConfigError::new(
            "--restart",
            "not with --rm (a restarted sandbox keeps its record)",
        )
        .into());
    }
    if !cfg.health_on_failure.is_none() && (!detached || cfg.health.is_none()) {
        return Err(
            ConfigError::new("--health-on-failure", "restart needs -d and --health-cmd").into(),
        );
    }
    if detached && a.tty && a.console_socket.is_none() {
        return Err(ConfigError::new(
            "--tty",
            "a detached sandbox has no terminal to attach: give --console-socket PATH to hand it over (or use `nucleus exec --tty`)",
        )
        .into());
    }
    if a.console_socket.is_some() && !(detached && a.tty) {
        return Err(ConfigError::new(
            "--console-socket",
            "only with --tty and -d or create (a foreground run keeps its terminal)",
        )
        .into());
    }
    crate::timing::mark("config");
    let mut facts = nucleus_sys::probe::detect(
        Path::new("/"),
        cfg.rootfs.as_deref(),
        nucleus_spec::host::Wants::for_config(&cfg),
    );
    crate::timing::mark("probe host");
    let id = id.unwrap_or_else(new_id);
    // (A dry run needs no state root; a real one fails below when there is none.)
    let state_root = records::state_root(root);
    if let Ok(r) = &state_root {
        cfg.net.state_dir = r.join("net");
        cfg.etc_views = Some(r.join(".etc-views"));
        if cfg.readiness == Readiness::Notify {
            cfg.notify_socket = Some(r.join(".notify").join(&id));
        }
    }
    let mut plan = Plan::build(&cfg, &facts, &id)?;
    if let (Some(g), Ok(r)) = (plan.gvisor.as_mut(), &state_root) {
        g.dir = r.join(&id).join(nucleus_spec::gvisor::BUNDLE_DIR);
    }
    crate::timing::mark("plan");
    if a.dry_run {
        outln!(
            "{}",
            serde_json::to_string_pretty(&plan).context("serialize plan")?
        );
        return Ok(0);
    }
    check_paths(&cfg)?;
    if let Some(at) = plan.attested.clone() {
        // The root's top-level entries are the image's (a Nix closure's nix/ is in the image
        // only): when the tree's differ, the plan is made again with the image's.
        let top = Some(crate::commands::rootfs::prepare(&at, log)?);
        let same = |a: &[nucleus_spec::host::HostEntry], b: &[nucleus_spec::host::HostEntry]| {
            let key = |v: &[nucleus_spec::host::HostEntry]| {
                let mut k: Vec<_> = v.iter().map(|e| (e.path.clone(), e.kind.clone())).collect();
                k.sort_by(|x, y| x.0.cmp(&y.0));
                k
            };
            key(a) == key(b)
        };
        if let Some(top) = top.filter(|t| !same(t, &facts.rootfs_entries)) {
            facts.rootfs_entries = top;
            plan = Plan::build(&cfg, &facts, &id)?;
        }
        crate::timing::mark("attested root");
    }
    let events = Events::open(a.events_jsonl.as_deref(), a.events_fd)?;
    let store = Store::open(&state_root?)?;
    crate::timing::mark("check paths, open store");
    for w in &plan.warnings {
        log.warn(w);
    }
    if a.detach || create {
        let r = monitor::launch(
            &a,
            (&plan, &facts.cgroup, &cfg.cgroup_parent),
            &store,
            log,
            events,
            create,
            (&mut tracer, t0),
            None,
        );
        events::audit(&store, if create { "create" } else { "run" }, &id, &r);
        return r;
    }
    let (run_span, trace) = tracer.sandbox_span();
    let mut t = monitor::foreground(&store, &plan, &a, log, events)?;
    t.state.trace = trace;
    // Report first, clean after (docs/lifecycle.md), unless told otherwise or the sandbox's
    // end is still needed here (a syscall trace to write, spans to export; nucleus-sys keeps
    // the other cases synchronous).
    t.report_early = !a.sync_cleanup && trace_out.is_none() && !tracer.enabled();
    crate::timing::mark("prepare record");
    let out = match sandbox::run(&plan, &mut t) {
        Ok(o) => o,
        Err(e) => {
            let _ = store.remove(&id, a.name.as_deref());
            let e: anyhow::Error = e.into();
            tracer.record_as(
                run_span,
                tracer.parent,
                "nucleus.run",
                t0,
                telemetry::now_ns(),
                vec![("sandbox.id", telemetry::s(&id))],
                Some(crate::one_line(&e)),
            );
            tracer.flush(log);
            return Err(e);
        }
    };
    if out.handed_over {
        crate::timing::mark("status reported, clean-up handed over");
    } else {
        crate::timing::mark("sandbox exited");
        collect_cgroups(&facts.cgroup, &cfg.cgroup_parent);
        crate::timing::mark("cgroup gc");
    }
    if let Some(f) = out.failure.as_ref().filter(|f| !f.said) {
        log.error(&f.to_string());
    }
    let code = monitor::finish(&mut t, &out, cfg.limits.memory);
    crate::timing::mark("remove record");
    log.exited(&id, code, &out.usage);
    if let (Some(path), Some(traced)) = (trace_out, &out.traced) {
        let calls: std::collections::BTreeMap<String, u64> = traced
            .iter()
            .map(|(nr, n)| {
                let name = match nucleus_spec::seccomp::syscalls::name(*nr) {
                    Some(n) => n.to_string(),
                    None if *nr == nucleus_sys::notify::UNKNOWN_SYSCALLS => {
                        "(numbers this architecture does not define)".to_string()
                    }
                    None => format!("syscall_{nr}"),
                };
                (name, *n)
            })
            .collect();
        let doc = serde_json::json!({
            "v": 1,
            "arch": nucleus_spec::seccomp::profile::Target::native((0, 0)).arch,
            "command": plan.process.argv,
            "status": code,
            "syscalls": calls,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("write {}", path.display()))?;
        log.info(&format!(
            "{} syscalls recorded in {}",
            calls.len(),
            path.display()
        ));
    }
    if tracer.enabled() {
        let attrs = || {
            vec![
                ("sandbox.id", telemetry::s(&id)),
                (
                    "nucleus.service_mode",
                    telemetry::s(a.service_mode.as_str()),
                ),
                (
                    "process.executable.name",
                    telemetry::s(plan.process.argv.first().cloned().unwrap_or_default()),
                ),
            ]
        };
        let failure = out.failure.as_ref().map(ToString::to_string);
        if let Some(applied) = t.applied_ns {
            tracer.record_as(
                telemetry::span_id(),
                Some(run_span),
                "nucleus.create",
                t0,
                applied,
                attrs(),
                None,
            );
        }
        let mut attrs = attrs();
        attrs.push((
            "process.exit.code",
            nucleus_spec::otlp::Attr::Int(i64::from(code)),
        ));
        attrs.push((
            "nucleus.oom_killed",
            nucleus_spec::otlp::Attr::Bool(out.usage.oom_kills > 0),
        ));
        let parent = tracer.parent;
        tracer.record_as(
            run_span,
            parent,
            "nucleus.run",
            t0,
            telemetry::now_ns(),
            attrs,
            failure,
        );
        tracer.flush(log);
    }
    Ok(code)
}

/// Collect what runs killed with SIGKILL left (cheap: one directory read per hierarchy).
/// (The host's cgroup facts come from the probe the plan was built from: no second probe.)
pub(crate) fn collect_cgroups(host: &nucleus_spec::cgroup::CgroupHost, parent: &CgroupParent) {
    if let Some(located) = CgroupPlan::locate(host, parent) {
        nucleus_sys::cgroup::gc(&located);
    }
}

pub(crate) fn located(parent: Option<&str>) -> Result<Option<CgroupPlan>> {
    let parent = cgroup_parent(parent)?;
    let host = nucleus_sys::probe::cgroup_host(Path::new("/"));
    Ok(CgroupPlan::locate(&host, &parent))
}
