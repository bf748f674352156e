//! `--runtime gvisor`: the same plan, run by gVisor's runsc (a user-space kernel between the
//! workload and the host). What is decided here: which options gVisor cannot honour (refused,
//! one line each), the OCI bundle a plan becomes (`config.json` and the skeleton of its root),
//! and every runsc command line. The executor (nucleus-sys `sandbox::gvisor`) only runs them.
//!
//! The root: a tmpfs the sandbox's own init ("ginit", PID 1 of a pid namespace that holds
//! runsc's processes) fills with the plan's directories, links and synthetic files, read-only
//! in the bundle; everything else is an OCI mount runsc's gofer serves. gVisor brings its own
//! /proc, /sys and /dev, so the plan's mounts of those (and their masks) have no counterpart.

use crate::config::{ConfigError, NetworkMode, Readiness, RunConfig};
use crate::mounts::{MountOp, RootSource};
use crate::plan::Plan;
use oci_spec::runtime as oci;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which runtime runs the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum, schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// Namespaces, seccomp and Landlock on the host kernel.
    #[default]
    Native,
    /// gVisor's runsc: the workload's system calls are served by a user-space kernel.
    Gvisor,
}

/// How gVisor's sentry intercepts the workload's system calls (`runsc --platform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum, schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum GvisorPlatform {
    /// seccomp traps (runsc since 2023; its default there).
    Systrap,
    /// ptrace: works everywhere, slowest.
    Ptrace,
    /// Hardware virtualization (needs /dev/kvm).
    Kvm,
}

impl GvisorPlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            GvisorPlatform::Systrap => "systrap",
            GvisorPlatform::Ptrace => "ptrace",
            GvisorPlatform::Kvm => "kvm",
        }
    }
}

/// What the executor needs beside the plan to run it under gVisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GvisorPlan {
    /// The runsc binary (absolute; checked by the binary).
    pub runsc: PathBuf,
    /// None: runsc's default.
    pub platform: Option<GvisorPlatform>,
    /// The bundle's directory (`<record>/gv`; set by the binary, which knows the store).
    pub dir: PathBuf,
    /// `--network bridge`: runsc's netstack takes the inner link's interface (see
    /// [`ROUTER_ADDR`]); else the sandbox has loopback only.
    #[serde(default)]
    pub bridged: bool,
    /// `--network host`: the sentry uses the host's network stack (runsc's hostinet), from
    /// the host's network namespace.
    #[serde(default)]
    pub host_network: bool,
}

/// `--network bridge` under gVisor: ginit's network namespace is the router, with the bridge's
/// interface (eth0, the sandbox's claimed address, as a native sandbox's) and the inner link
/// `gv0` ([`ROUTER_ADDR`], [`ROUTER_ADDR6`] when the bridge has IPv6); the sandbox's namespace
/// has only the inner link's other end (eth0, [`SANDBOX_ADDR`], [`SANDBOX_ADDR6`]), which
/// runsc's netstack takes. The router forwards: what arrives for the claimed addresses goes to
/// the sandbox, what the sandbox sends leaves as them.
pub const ROUTER_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 77, 1);
pub const SANDBOX_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 77, 2);
pub const LINK_PREFIX: u8 = 30;
/// The inner link's IPv6 ends (a unique-local /64 of nucleus's), when the bridge has IPv6.
pub const ROUTER_ADDR6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0xfdff, 0x6e75, 0x636c, 0x7667, 0, 0, 0, 1);
pub const SANDBOX_ADDR6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0xfdff, 0x6e75, 0x636c, 0x7667, 0, 0, 0, 2);
pub const LINK_PREFIX6: u8 = 64;
/// The router's end of the inner link.
pub const ROUTER_IFACE: &str = "gv0";
/// The router's nftables table (forwarding to and from the sandbox).
pub const LINK_TABLE: &str = "nucleus-gv";

/// The name of the bundle's directory in a sandbox's record directory.
pub const BUNDLE_DIR: &str = "gv";

impl GvisorPlan {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// runsc's `--root`: its state, lock and log files.
    pub fn state(&self) -> PathBuf {
        self.dir.join("runsc")
    }
    pub fn log(&self) -> PathBuf {
        self.state().join("runsc.log")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.state().join("pid")
    }
    /// Where ginit attaches the prepared tree of `slot` (a detached tmpfs of the runtime's).
    pub fn slot(&self, slot: usize) -> PathBuf {
        self.dir.join("mnt").join(slot.to_string())
    }
    /// Where ginit attaches the /etc view.
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// Where ginit binds the sandbox's network namespace (bridged).
    pub fn netns(&self) -> PathBuf {
        self.dir.join("netns")
    }

    /// runsc's global flags, the same on every call (Go flags end at the verb). Only flags
    /// every runsc release since 2021 has.
    pub fn argv(&self, verb: &[&str]) -> Vec<String> {
        self.argv_logging_to(&self.log(), verb)
    }

    /// As [`GvisorPlan::argv`], its errors into `log`.
    fn argv_logging_to(&self, log: &Path, verb: &[&str]) -> Vec<String> {
        let mut a = vec![
            self.runsc.display().to_string(),
            format!("--root={}", self.state().display()),
            format!("--log={}", log.display()),
            "--log-format=json".into(),
            // Bridged: the namespace ginit prepared (config.json names it); else runsc's own,
            // with loopback only.
            match (self.bridged, self.host_network) {
                (true, _) => "--network=sandbox",
                (false, true) => "--network=host",
                (false, false) => "--network=none",
            }
            .into(),
            // nucleus makes the sandbox's cgroups (runsc runs in them already).
            "--ignore-cgroups".into(),
        ];
        if let Some(p) = self.platform {
            a.push(format!("--platform={}", p.as_str()));
        }
        a.extend(verb.iter().map(|s| s.to_string()));
        a
    }

    /// `runsc exec` of the process in `file`, its errors into `log` (its own: the sandbox's
    /// log is shared by every call).
    /// `ipid`: where runsc writes the process's pid inside the sandbox.
    pub fn exec_argv(&self, id: &str, file: &Path, ipid: &Path, log: &Path) -> Vec<String> {
        let file = file.display().to_string();
        let ipid = format!("--internal-pid-file={}", ipid.display());
        self.argv_logging_to(log, &["exec", "--process", &file, &ipid, id])
    }

    /// `runsc create`, with the bundle and the pid file, and with a terminal the socket runsc
    /// sends its master to; `start` too: `runsc run --detach` (one runsc process instead of
    /// two: a sandbox that does not wait for `nucleus start`).
    pub fn create_argv(&self, id: &str, tty: bool, start: bool) -> Vec<String> {
        let bundle = self.dir.display().to_string();
        let pid = self.pid_file().display().to_string();
        let console = self.console_socket().display().to_string();
        let mut verb = match start {
            true => vec!["run", "--detach"],
            false => vec!["create"],
        };
        verb.extend(["--bundle", &bundle, "--pid-file", &pid]);
        if tty {
            verb.extend(["--console-socket", &console]);
        }
        verb.push(id);
        self.argv(&verb)
    }
    /// Where ginit listens for the terminal's master (`-t`).
    pub fn console_socket(&self) -> PathBuf {
        self.dir.join("console.sock")
    }
}

/// What a failed runsc call said: the last error line of its `--log` (JSON lines, the
/// newest without a newline), its message only.
pub fn last_error(log: &str) -> Option<String> {
    log.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
        (v["level"] == "error" || v["level"] == "fatal")
            .then(|| v["msg"].as_str().map(crate::config::single_line))
            .flatten()
    })
}

/// The exit status of a start runsc refused: 127 when the program does not exist, 126 when
/// it may not be run, else 125 (the runtime's). runsc says it as "failed to load PATH: ERR".
pub fn start_failure_code(msg: &str) -> u8 {
    if msg.contains("failed to load") && msg.contains("no such file or directory") {
        127
    } else if msg.contains("failed to load") && msg.contains("permission denied") {
        126
    } else {
        125
    }
}

fn refuse(flag: &str, why: &str) -> ConfigError {
    ConfigError::new(flag, format!("not with --runtime gvisor: {why}"))
}

/// Options gVisor cannot honour: refused (never dropped silently).
pub fn check(cfg: &RunConfig) -> Result<(), ConfigError> {
    match cfg.network {
        NetworkMode::None | NetworkMode::Bridge | NetworkMode::Host => {}
        NetworkMode::Slirp => {
            return Err(refuse(
                "--network",
                "none, bridge or host (slirp4netns serves a native sandbox's namespace)",
            ))
        }
    }
    let n = &cfg.net;
    if !n.attach.is_empty() {
        return Err(refuse("--attach", "one bridge per gVisor sandbox"));
    }
    let link = crate::net::Cidr {
        addr: std::net::IpAddr::V4(ROUTER_ADDR),
        prefix: LINK_PREFIX,
    };
    if cfg.network == NetworkMode::Bridge
        && (n.subnet4.contains(&link.addr) || link.contains(&n.subnet4.addr))
    {
        return Err(refuse(
            "--subnet",
            "169.254.77.0/30 is the gVisor sandbox's inner link",
        ));
    }
    let seccomp = "the workload's system calls go to gVisor's kernel, not the host's";
    if cfg.seccomp_profile.is_some() {
        return Err(refuse("--seccomp-profile", seccomp));
    }
    if !cfg.seccomp_allow.is_empty() {
        return Err(refuse("--seccomp-allow", seccomp));
    }
    if cfg.seccomp_log_denied {
        return Err(refuse("--seccomp-log-denied", seccomp));
    }
    if cfg.seccomp_trace {
        return Err(refuse("seccomp trace", seccomp));
    }
    if cfg.landlock_policy.is_some() {
        return Err(refuse(
            "--landlock-policy",
            "Landlock is the host kernel's; gVisor's gofer decides which host files are reached",
        ));
    }
    if cfg.time_offset.is_some() {
        return Err(refuse("--time-offset", "gVisor keeps its own clocks"));
    }
    if cfg.rootfs_attest.is_some() {
        return Err(refuse(
            "--rootfs-manifest",
            "an attested image is mounted by the native sandbox",
        ));
    }
    if cfg.rootfs.is_some() {
        return Err(refuse(
            "--rootfs",
            "gVisor runs on the default root (the host's /usr, read-only)",
        ));
    }
    match cfg.readiness {
        Readiness::Notify => {
            return Err(refuse(
                "--sd-notify",
                "a host socket cannot be reached from gVisor",
            ))
        }
        Readiness::Tcp(_) => {
            return Err(refuse(
                "--readiness-tcp",
                "the sandbox's loopback is gVisor's, out of the runtime's reach",
            ))
        }
        // (Both run through `nucleus exec`: `runsc exec`.)
        Readiness::Exec(_) | Readiness::Started => {}
    }
    Ok(())
}

/// `--runtime` and its flags: the gVisor plan to apply once the plan is built, or None for a
/// native sandbox (refusing gVisor's flags without it, and what gVisor cannot honour).
pub fn decide(
    cfg: &RunConfig,
    facts: &crate::host::HostFacts,
) -> Result<Option<GvisorPlan>, ConfigError> {
    if cfg.runtime == Runtime::Native {
        if cfg.gvisor_platform.is_some() {
            return Err(ConfigError::new(
                "--gvisor-platform",
                "only with --runtime gvisor",
            ));
        }
        if cfg.runsc.is_some() {
            return Err(ConfigError::new("--runsc", "only with --runtime gvisor"));
        }
        return Ok(None);
    }
    if facts.euid != 0 {
        return Err(ConfigError::new(
            "--runtime",
            "gvisor needs root (runsc makes its sandbox as root; rootless runsc is not supported)",
        ));
    }
    check(cfg)?;
    Ok(Some(GvisorPlan {
        runsc: cfg.runsc.clone().unwrap_or_default(),
        platform: cfg.gvisor_platform,
        dir: PathBuf::new(),
        bridged: cfg.network == NetworkMode::Bridge,
        host_network: cfg.network == NetworkMode::Host,
    }))
}

/// A built plan as gVisor runs it: no host seccomp filter, Landlock domain or user namespace
/// of nucleus's (gVisor's kernel serves the workload's system calls; the sentry runs as
/// nobody in a user namespace of its own), and ids as the sentry's.
pub fn apply(mut plan: Plan, g: GvisorPlan) -> Plan {
    plan.landlock = None;
    plan.seccomp_bpf.clear();
    plan.init_seccomp_bpf.clear();
    plan.seccomp_notify = None;
    plan.seccomp_flags = 0;
    plan.idmap = crate::plan::IdMapPlan::Host;
    plan.namespaces.user = false;
    plan.namespaces.cgroup = false;
    // The runtime's resolver listens on the router's end of the inner link (the sentry's
    // loopback is its own).
    if plan.net.resolver.is_some() {
        let (lo, router) = ("nameserver 127.0.0.1", format!("nameserver {ROUTER_ADDR}"));
        plan.net.resolv_conf = plan.net.resolv_conf.replace(lo, &router);
        for m in &mut plan.mounts {
            if let MountOp::File { dst, contents, .. } = m {
                if dst.ends_with("resolv.conf") {
                    *contents = contents.replace(lo, &router);
                }
            }
        }
    }
    plan.gvisor = Some(g);
    plan
}

/// One entry of the root's skeleton, made by ginit in the root tmpfs before `runsc create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Skeleton {
    Dir {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
        path: PathBuf,
    },
    File {
        path: PathBuf,
        contents: String,
        mode: u32,
    },
    /// A mount point for a bind of `like`: a directory or an empty file as `like` is.
    MountPoint {
        path: PathBuf,
        like: PathBuf,
    },
}

/// A plan as an OCI bundle for runsc.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub spec: oci::Spec,
    /// Made in the root tmpfs, in order (parents first).
    pub skeleton: Vec<Skeleton>,
}

impl Bundle {
    /// config.json's bytes.
    pub fn config_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.spec).unwrap_or_default()
    }
}

fn mount(dst: &Path, typ: &str, source: &Path, options: Vec<String>) -> Result<oci::Mount, String> {
    oci::MountBuilder::default()
        .destination(dst)
        .typ(typ)
        .source(source)
        .options(options)
        .build()
        .map_err(|e| e.to_string())
}

fn bind_options(readonly: bool, noexec: bool) -> Vec<String> {
    let mut o = vec![
        "rbind".to_string(),
        if readonly { "ro" } else { "rw" }.into(),
        "nosuid".into(),
        "nodev".into(),
    ];
    if noexec {
        o.push("noexec".into());
    }
    o
}

/// The bundle of a plan whose `gvisor` is set.
pub fn bundle(plan: &Plan) -> Result<Bundle, String> {
    let g = plan.gvisor.as_ref().ok_or("internal: not a gVisor plan")?;
    let mut skeleton = Vec::new();
    let mut mounts = Vec::new();
    let bind_at = |dst: &Path, src: &Path, ro: bool, noexec: bool, sk: &mut Vec<Skeleton>| {
        sk.push(Skeleton::MountPoint {
            path: dst.into(),
            like: src.into(),
        });
        mount(dst, "bind", src, bind_options(ro, noexec))
    };
    let root = match &plan.root {
        RootSource::Tmpfs => g.rootfs(),
        RootSource::Bind(p) => p.clone(),
        RootSource::Dir { .. } => return Err("an OCI bundle's root is not run by gVisor".into()),
    };
    let in_tmpfs_root = matches!(plan.root, RootSource::Tmpfs);
    // gVisor brings its own /proc, /sys and /dev (they show no host data): the plan's mounts
    // of those, and what it hides or binds in them, have no counterpart (but /dev/shm's size).
    let under_dev = |p: &Path| p.starts_with("/dev") && p != Path::new("/dev/shm");
    for op in &plan.mounts {
        match op {
            MountOp::Tmpfs { dst, .. }
            | MountOp::Bind { dst, .. }
            | MountOp::Symlink { dst, .. }
                if under_dev(dst) => {}
            MountOp::Mkdir { dst, mode } if in_tmpfs_root => skeleton.push(Skeleton::Dir {
                path: dst.clone(),
                mode: *mode,
            }),
            MountOp::Symlink { target, dst } if in_tmpfs_root => skeleton.push(Skeleton::Symlink {
                target: target.clone(),
                path: dst.clone(),
            }),
            MountOp::File {
                dst,
                contents,
                mode,
            } if in_tmpfs_root => skeleton.push(Skeleton::File {
                path: dst.clone(),
                contents: contents.clone(),
                mode: *mode,
            }),
            // An image root (--rootfs, refused by `check`): read-only, it has no room for
            // the plan's directories, links and synthetic files.
            MountOp::Mkdir { .. } | MountOp::Symlink { .. } | MountOp::File { .. } => {
                return Err(
                    "--rootfs: an image root is not run by gVisor (use the default root)".into(),
                )
            }
            MountOp::Tmpfs {
                dst,
                mode,
                size_bytes,
                noexec,
                uid,
                gid,
            } => {
                let mut o = vec!["nosuid".to_string(), "nodev".into()];
                if *noexec {
                    o.push("noexec".into());
                }
                o.push(format!("mode={mode:o}"));
                if let Some(s) = size_bytes {
                    o.push(format!("size={s}"));
                }
                o.push(format!("uid={uid}"));
                o.push(format!("gid={gid}"));
                if in_tmpfs_root {
                    skeleton.push(Skeleton::Dir {
                        path: dst.clone(),
                        mode: 0o755,
                    });
                }
                mounts.push(mount(dst, "tmpfs", Path::new("tmpfs"), o)?);
            }
            MountOp::Bind {
                src,
                dst,
                readonly,
                noexec,
                idmap: _,
            } => mounts.push(bind_at(dst, src, *readonly, *noexec, &mut skeleton)?),
            MountOp::BindFromTree { tree, rel, dst, .. } => {
                mounts.push(bind_at(dst, &tree.join(rel), true, true, &mut skeleton)?)
            }
            MountOp::EtcView { dst } => {
                mounts.push(bind_at(dst, &g.etc(), true, true, &mut skeleton)?)
            }
            MountOp::Attach {
                slot,
                dst,
                readonly,
                noexec,
            } => mounts.push(bind_at(
                dst,
                &g.slot(*slot),
                *readonly,
                *noexec,
                &mut skeleton,
            )?),
            MountOp::RemountRootReadonly => {}
            MountOp::Proc { .. }
            | MountOp::Sysfs { .. }
            | MountOp::Devpts { .. }
            | MountOp::Mqueue { .. }
            | MountOp::Cgroup { .. }
            | MountOp::MaskFile { .. }
            | MountOp::MaskDir { .. }
            | MountOp::ReadonlyIfExists { .. } => {}
            MountOp::Oci { .. }
            | MountOp::Device { .. }
            | MountOp::Mask { .. }
            | MountOp::Sysctl { .. } => {
                return Err("an OCI bundle's mounts are not run by gVisor".into())
            }
        }
    }
    if !in_tmpfs_root {
        skeleton.clear();
    }
    let process = process(&plan.process)?;
    let ns = |t| {
        oci::LinuxNamespaceBuilder::default()
            .typ(t)
            .build()
            .map_err(|e| e.to_string())
    };
    let mut namespaces = vec![
        ns(oci::LinuxNamespaceType::Pid)?,
        ns(oci::LinuxNamespaceType::Ipc)?,
        ns(oci::LinuxNamespaceType::Uts)?,
        ns(oci::LinuxNamespaceType::Mount)?,
    ];
    // (Host network: none of its own, the caller's, which is the host's.)
    match (g.bridged, g.host_network) {
        (true, _) => namespaces.push(
            oci::LinuxNamespaceBuilder::default()
                .typ(oci::LinuxNamespaceType::Network)
                .path(g.netns())
                .build()
                .map_err(|e| e.to_string())?,
        ),
        (false, true) => {}
        (false, false) => namespaces.push(ns(oci::LinuxNamespaceType::Network)?),
    }
    let linux = oci::LinuxBuilder::default()
        .namespaces(namespaces)
        .build()
        .map_err(|e| e.to_string())?;
    let spec = oci::SpecBuilder::default()
        .version("1.0.2")
        .root(
            oci::RootBuilder::default()
                .path(root)
                .readonly(true)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .hostname(plan.hostname.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Bundle { spec, skeleton })
}

/// The OCI process of a plan's process (the workload's; an exec's with its changes).
fn process(p: &crate::plan::ProcessPlan) -> Result<oci::Process, String> {
    let caps = |mask: u64| -> Result<oci::Capabilities, String> {
        crate::policy::CapSets::names(mask)
            .into_iter()
            .map(|n| serde_json::from_value(serde_json::json!(n)).map_err(|e| format!("{n}: {e}")))
            .collect()
    };
    let c = p.caps.clone().unwrap_or_default();
    let capabilities = oci::LinuxCapabilitiesBuilder::default()
        .bounding(caps(c.bounding)?)
        .effective(caps(c.effective)?)
        .permitted(caps(c.permitted)?)
        .inheritable(caps(c.inheritable)?)
        .ambient(caps(c.ambient)?)
        .build()
        .map_err(|e| e.to_string())?;
    let rlimits = p
        .rlimits
        .iter()
        .map(|u| {
            let name = serde_json::to_value(u.resource)
                .ok()
                .and_then(|v| v.as_str().map(|s| format!("RLIMIT_{}", s.to_uppercase())))
                .unwrap_or_default();
            let typ: oci::PosixRlimitType =
                serde_json::from_value(serde_json::json!(name)).map_err(|e| e.to_string())?;
            oci::PosixRlimitBuilder::default()
                .typ(typ)
                .soft(u.soft.unwrap_or(u64::MAX))
                .hard(u.hard.unwrap_or(u64::MAX))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    let user = oci::UserBuilder::default()
        .uid(p.uid)
        .gid(p.gid)
        .additional_gids(p.additional_gids.clone())
        .build()
        .map_err(|e| e.to_string())?;
    oci::ProcessBuilder::default()
        .terminal(p.tty)
        .user(user)
        .args(p.argv.clone())
        .env(
            p.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(p.cwd.clone())
        .capabilities(capabilities)
        .rlimits(rlimits)
        .no_new_privileges(p.no_new_privs)
        .build()
        .map_err(|e| e.to_string())
}

/// `nucleus exec` in a gVisor sandbox: the process file for `runsc exec --process` (0600: it
/// holds the environment, which never goes on a command line).
pub fn exec_process(p: &crate::plan::ProcessPlan) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&process(p)?).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runsc_errors_and_exit_codes() {
        let log = "{\"msg\":\"x\",\"level\":\"info\"}\n{\"msg\":\"starting container: failed to load /nope: no such file or directory\",\"level\":\"error\",\"time\":\"t\"}";
        let m = last_error(log).unwrap();
        assert!(m.ends_with("no such file or directory"), "{m}");
        assert_eq!(start_failure_code(&m), 127);
        assert_eq!(
            start_failure_code("failed to load /etc/passwd: permission denied"),
            126
        );
        assert_eq!(start_failure_code("sandbox is not running"), 125);
        assert_eq!(
            last_error("garbage\n{\"level\":\"info\",\"msg\":\"m\"}"),
            None
        );
        // A message carrying control characters stays one line.
        let l = last_error("{\"msg\":\"a\\nb\\u001b[31m\",\"level\":\"error\"}").unwrap();
        assert!(!l.contains('\n') && !l.contains('\u{1b}'), "{l:?}");
    }

    #[test]
    fn what_gvisor_cannot_honour_is_refused_naming_the_flag() {
        let gv = RunConfig {
            runtime: Runtime::Gvisor,
            ..Default::default()
        };
        assert!(decide(&gv, &Default::default()).unwrap().is_some());
        let cases: Vec<(RunConfig, &str)> = vec![
            (
                RunConfig {
                    network: NetworkMode::Slirp,
                    ..gv.clone()
                },
                "--network",
            ),
            (
                RunConfig {
                    network: NetworkMode::Bridge,
                    net: crate::net::NetConfig {
                        subnet4: crate::net::Cidr::parse("169.254.0.0/16", "--subnet").unwrap(),
                        ..Default::default()
                    },
                    ..gv.clone()
                },
                "--subnet",
            ),
            (
                RunConfig {
                    seccomp_allow: vec!["ptrace".into()],
                    ..gv.clone()
                },
                "--seccomp-allow",
            ),
            (
                RunConfig {
                    rootfs: Some("/img".into()),
                    ..gv.clone()
                },
                "--rootfs",
            ),
            (
                RunConfig {
                    readiness: Readiness::Tcp(80),
                    ..gv.clone()
                },
                "--readiness-tcp",
            ),
            (
                RunConfig {
                    gvisor_platform: Some(GvisorPlatform::Ptrace),
                    ..Default::default()
                },
                "--gvisor-platform",
            ),
        ];
        let user = crate::host::HostFacts {
            euid: 1000,
            ..Default::default()
        };
        assert_eq!(decide(&gv, &user).unwrap_err().field, "--runtime");
        for (cfg, flag) in cases {
            let e = decide(&cfg, &Default::default()).unwrap_err();
            assert_eq!(e.field, flag, "{e}");
        }
    }

    #[test]
    fn every_call_has_the_same_global_flags_before_its_verb() {
        let g = GvisorPlan {
            runsc: "/usr/bin/runsc".into(),
            platform: Some(GvisorPlatform::Ptrace),
            dir: "/run/nucleus/abc/gv".into(),
            bridged: false,
            host_network: false,
        };
        assert_eq!(
            g.create_argv("abc", false, false),
            [
                "/usr/bin/runsc",
                "--root=/run/nucleus/abc/gv/runsc",
                "--log=/run/nucleus/abc/gv/runsc/runsc.log",
                "--log-format=json",
                "--network=none",
                "--ignore-cgroups",
                "--platform=ptrace",
                "create",
                "--bundle",
                "/run/nucleus/abc/gv",
                "--pid-file",
                "/run/nucleus/abc/gv/runsc/pid",
                "abc"
            ]
        );
        // exec: its own log (the sandbox's is every call's), the pid file inside.
        let e = g.exec_argv(
            "abc",
            Path::new("/g/exec-1.json"),
            Path::new("/g/exec-1.pid"),
            Path::new("/g/exec-1.log"),
        );
        assert_eq!(e[2], "--log=/g/exec-1.log");
        assert!(e.ends_with(&[
            "exec".into(),
            "--process".into(),
            "/g/exec-1.json".into(),
            "--internal-pid-file=/g/exec-1.pid".into(),
            "abc".into()
        ]));
        let run = g.create_argv("abc", true, true);
        assert_eq!(run[7..9], ["run", "--detach"]);
        assert!(run.ends_with(&[
            "--console-socket".into(),
            "/run/nucleus/abc/gv/console.sock".into(),
            "abc".into()
        ]));
        let none = GvisorPlan {
            platform: None,
            ..g
        };
        assert!(!none
            .argv(&["start", "abc"])
            .iter()
            .any(|a| a.starts_with("--platform")));
    }
}
