//! The typed launch configuration. Closed sets are enums parsed once at the edge; every parse
//! error names the flag and what is allowed.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// An error in user input: which flag (or config key) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The security tier (SPEC.md "Service modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum, schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ServiceMode {
    /// Default: degrade with a `security_degraded` report when a protection cannot be applied.
    #[default]
    Agent,
    /// Fail closed wherever agent mode would degrade.
    StrictAgent,
    /// Fail closed, and require a rootfs, limits and pinned policies.
    Production,
}

impl ServiceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::StrictAgent => "strict-agent",
            Self::Production => "production",
        }
    }
    /// True when a protection that cannot be applied must stop the start.
    pub fn fail_closed(self) -> bool {
        !matches!(self, Self::Agent)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum, schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// A fresh network namespace with only `lo`, up.
    #[default]
    None,
    /// The host's network namespace (explicit opt-in; refused in strict modes).
    Host,
    /// A veth pair to a host bridge, an address from the bridge's subnet, NAT outwards.
    Bridge,
    /// slirp4netns: a user-mode network stack (works without privileges).
    Slirp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum, schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum WorkspaceMode {
    /// The host directory is bound read-write at /workspace.
    #[default]
    BindRw,
    /// The host directory is bound read-only at /workspace.
    BindRo,
    /// The directory is copied into a private tmpfs before start and copied back after exit.
    CopyInOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum, schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ContextMode {
    /// Files are copied into a tmpfs at /context (the sandbox cannot change the host copy).
    #[default]
    Copy,
    /// The directory is bound read-only at /context.
    Bind,
}

/// `--volume SRC:DST[:ro|:rw]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub readonly: bool,
}

impl Volume {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let err = |m: &str| {
            ConfigError::new(
                "--volume",
                format!("{s:?}: {m} (expected SRC:DST[:ro|:rw])"),
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, readonly) = match parts.as_slice() {
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            [_, _, opt] => return Err(err(&format!("unknown option {opt:?}"))),
            _ => return Err(err("wrong number of fields")),
        };
        if !src.starts_with('/') {
            return Err(err("SRC must be an absolute host path"));
        }
        Ok(Self {
            src: src.into(),
            dst: container_path("--volume", dst)?,
            readonly,
        })
    }
}

/// `--tmpfs DST[:SIZE]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsSpec {
    pub dst: PathBuf,
    pub size_bytes: Option<u64>,
}

impl TmpfsSpec {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let (dst, size) = match s.split_once(':') {
            Some((d, z)) => (d, Some(parse_size("--tmpfs", z)?)),
            None => (s, None),
        };
        Ok(Self {
            dst: container_path("--tmpfs", dst)?,
            size_bytes: size,
        })
    }
}

/// `--provider-config-ro SRC:DST`; DST relative (or `~/…`) means inside the private home.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub src: PathBuf,
    /// Absolute, or relative to the workload's home.
    pub dst: PathBuf,
}

impl ProviderConfig {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let flag = "--provider-config-ro";
        let Some((src, dst)) = s.split_once(':') else {
            return Err(ConfigError::new(flag, format!("{s:?}: expected SRC:DST")));
        };
        if !src.starts_with('/') {
            return Err(ConfigError::new(
                flag,
                format!("{s:?}: SRC must be an absolute host path"),
            ));
        }
        let dst = dst.strip_prefix("~/").unwrap_or(dst);
        if dst.is_empty() || dst.split('/').any(|c| c == "..") {
            return Err(ConfigError::new(
                flag,
                format!("{s:?}: DST must be a path without '..'"),
            ));
        }
        Ok(Self {
            src: src.into(),
            dst: dst.into(),
        })
    }
}

/// When a service is ready (for the caller's NOTIFY_SOCKET, the `ready` event and the record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// As soon as the workload runs.
    #[default]
    Started,
    /// `--sd-notify`: when the workload says READY=1 on the socket in $NOTIFY_SOCKET.
    Notify,
    /// `--readiness-tcp PORT`: when 127.0.0.1:PORT in the sandbox accepts a connection.
    Tcp(u16),
    /// `--readiness-exec CMD`: when CMD, run in the sandbox, exits 0.
    Exec(String),
}

impl Readiness {
    pub fn is_started(&self) -> bool {
        *self == Readiness::Started
    }
}

/// `--restart`: when the monitor of a detached sandbox starts it again after its workload
/// exited (with exponential back-off, see [`RestartPolicy::delay_ms`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    #[default]
    No,
    /// On a non-zero exit, at most `max` times (None: no limit).
    OnFailure {
        max: Option<u32>,
    },
    Always,
}

impl RestartPolicy {
    pub fn is_no(&self) -> bool {
        *self == RestartPolicy::No
    }

    /// `no`, `on-failure`, `on-failure:MAX`, `always` (docker's and podman's words;
    /// `unless-stopped` is `always`: a stopped sandbox is never restarted).
    pub fn parse(flag: &str, s: &str) -> Result<Self, ConfigError> {
        Ok(match s {
            "no" => RestartPolicy::No,
            "always" | "unless-stopped" => RestartPolicy::Always,
            "on-failure" => RestartPolicy::OnFailure { max: None },
            _ => match s.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(max)) if max > 0 => RestartPolicy::OnFailure { max: Some(max) },
                _ => {
                    return Err(ConfigError::new(
                        flag,
                        format!(
                            "{:?}: no, on-failure, on-failure:MAX (MAX at least 1) or always",
                            single_line(s)
                        ),
                    ))
                }
            },
        })
    }

    /// Whether a workload that exited with `code` is started again, after `restarts` restarts.
    pub fn wants(&self, code: i32, restarts: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure { max } => code != 0 && max.is_none_or(|m| restarts < m),
        }
    }

    /// The wait before a restart: 100 ms after the first quick failure, doubling with each
    /// failure in a row that ran less than [`RESTART_RESET_MS`], at most 30 s.
    pub fn delay_ms(quick_failures: u32) -> u64 {
        (100u64 << quick_failures.min(9)).min(30_000)
    }
}

/// A run this long resets the back-off.
pub const RESTART_RESET_MS: u64 = 10_000;

/// `--health-on-failure`: what an unhealthy sandbox gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthOnFailure {
    /// Reported (record, `health` event) only.
    #[default]
    None,
    /// Killed and started again (whatever `--restart` says).
    Restart,
}

impl HealthOnFailure {
    pub fn is_none(&self) -> bool {
        *self == HealthOnFailure::None
    }
}

/// Where the workload's end of `--sd-notify` is (its $NOTIFY_SOCKET).
pub const NOTIFY_SOCKET_IN_SANDBOX: &str = "/run/notify";

/// A secret for the workload: the host file `src`, as /run/secrets/`name` (`--secret SRC[:NAME]`,
/// `--systemd-credential NAME[:DST]`). Its contents are read by the runtime at start into an
/// in-memory tmpfs; no record, event or log holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub name: String,
    pub src: PathBuf,
}

/// The largest secret (systemd's limit for a credential).
pub const MAX_SECRET_BYTES: u64 = 1 << 20;

impl Secret {
    /// A file name in /run/secrets: letters, digits, `.`, `_`, `-`; not `.` or `..`.
    pub fn check_name(flag: &str, name: &str) -> Result<(), ConfigError> {
        let ok = !name.is_empty()
            && name.len() <= 255
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(
                flag,
                format!(
                    "{:?}: a secret's name is letters, digits, '.', '_' and '-' (not . or ..)",
                    single_line(name)
                ),
            ))
        }
    }

    /// `--secret SRC[:NAME]` (NAME defaults to SRC's file name).
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let flag = "--secret";
        let (src, name) = match s.rsplit_once(':') {
            Some((src, name)) if !name.contains('/') => (src, name.to_string()),
            _ => (
                s,
                Path::new(s)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        };
        if !src.starts_with('/') {
            return Err(ConfigError::new(
                flag,
                format!("{:?}: SRC must be an absolute host path", single_line(s)),
            ));
        }
        Self::check_name(flag, &name)?;
        Ok(Self {
            name,
            src: src.into(),
        })
    }

    /// Refuse two secrets of one name.
    pub fn check_unique(all: &[Secret]) -> Result<(), ConfigError> {
        for (i, s) in all.iter().enumerate() {
            if all[..i].iter().any(|o| o.name == s.name) {
                return Err(ConfigError::new(
                    "--secret",
                    format!("two secrets are named {:?}", s.name),
                ));
            }
        }
        Ok(())
    }
}

/// `-e K=V` or `-e K` (value taken from the caller's environment by the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

impl EnvVar {
    pub fn parse(flag: &str, s: &str) -> Result<Self, ConfigError> {
        let Some((k, v)) = s.split_once('=') else {
            return Err(ConfigError::new(flag, format!("{s:?}: expected KEY=VALUE")));
        };
        Self::validate_key(flag, k)?;
        if v.contains('\0') {
            return Err(ConfigError::new(
                flag,
                format!("{k}: value contains a NUL byte"),
            ));
        }
        Ok(Self {
            key: k.into(),
            value: v.into(),
        })
    }
    pub fn validate_key(flag: &str, k: &str) -> Result<(), ConfigError> {
        let ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(
                flag,
                format!(
                    "{k:?}: variable names are letters, digits and '_', not starting with a digit"
                ),
            ))
        }
    }
}

/// Resource names for `--ulimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RlimitResource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl RlimitResource {
    const ALL: [(&'static str, Self); 16] = [
        ("as", Self::As),
        ("core", Self::Core),
        ("cpu", Self::Cpu),
        ("data", Self::Data),
        ("fsize", Self::Fsize),
        ("locks", Self::Locks),
        ("memlock", Self::Memlock),
        ("msgqueue", Self::Msgqueue),
        ("nice", Self::Nice),
        ("nofile", Self::Nofile),
        ("nproc", Self::Nproc),
        ("rss", Self::Rss),
        ("rtprio", Self::Rtprio),
        ("rttime", Self::Rttime),
        ("sigpending", Self::Sigpending),
        ("stack", Self::Stack),
    ];
}

/// `--ulimit NAME=SOFT[:HARD]`; values are numbers or `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub resource: RlimitResource,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

impl Ulimit {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let flag = "--ulimit";
        let Some((name, vals)) = s.split_once('=') else {
            return Err(ConfigError::new(
                flag,
                format!("{s:?}: expected NAME=SOFT[:HARD]"),
            ));
        };
        let name_l = name.to_ascii_lowercase();
        let name_l = name_l.strip_prefix("rlimit_").unwrap_or(&name_l);
        let Some((_, resource)) = RlimitResource::ALL.iter().find(|(n, _)| *n == name_l) else {
            let names: Vec<&str> = RlimitResource::ALL.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::new(
                flag,
                format!("unknown resource {name:?} (allowed: {})", names.join(", ")),
            ));
        };
        let num = |v: &str| -> Result<Option<u64>, ConfigError> {
            if v == "unlimited" || v == "-1" {
                return Ok(None);
            }
            v.parse::<u64>().map(Some).map_err(|_| {
                ConfigError::new(
                    flag,
                    format!("{name}: {v:?} is not a number or 'unlimited'"),
                )
            })
        };
        let (soft, hard) = match vals.split_once(':') {
            Some((s1, h1)) => (num(s1)?, num(h1)?),
            None => {
                let v = num(vals)?;
                (v, v)
            }
        };
        let le = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x <= y,
        };
        if !le(soft, hard) {
            return Err(ConfigError::new(
                flag,
                format!("{name}: soft limit is above the hard limit"),
            ));
        }
        Ok(Self {
            resource: *resource,
            soft,
            hard,
        })
    }
}

/// `--user NAME|UID`: the workload's identity inside the sandbox's user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    pub name: String,
    pub uid: u32,
}

/// Container ids are mapped into a 65536-wide range, so workload ids must lie below it.
pub const ID_RANGE: u32 = 65536;

impl UserSpec {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        if let Ok(uid) = s.parse::<u32>() {
            if uid >= ID_RANGE - 1 {
                return Err(ConfigError::new(
                    "--user",
                    format!("uid {uid} is outside 0..65534"),
                ));
            }
            let name = if uid == 0 {
                "root".to_string()
            } else {
                format!("user{uid}")
            };
            return Ok(Self { name, uid });
        }
        validate_name("--user", s)?;
        let uid = if s == "root" { 0 } else { 1000 };
        Ok(Self {
            name: s.to_string(),
            uid,
        })
    }
}

/// `--group NAME|GID` and `--additional-group NAME|GID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    pub name: String,
    pub gid: u32,
}

impl GroupSpec {
    pub fn parse(flag: &str, s: &str) -> Result<Self, ConfigError> {
        if let Ok(gid) = s.parse::<u32>() {
            if gid >= ID_RANGE - 1 {
                return Err(ConfigError::new(
                    flag,
                    format!("gid {gid} is outside 0..65534"),
                ));
            }
            let name = if gid == 0 {
                "root".to_string()
            } else {
                format!("group{gid}")
            };
            return Ok(Self { name, gid });
        }
        validate_name(flag, s)?;
        Err(ConfigError::new(
            flag,
            format!(
                "{s:?}: group names cannot be resolved in a synthetic /etc; give a numeric gid"
            ),
        ))
    }
}

fn validate_name(flag: &str, s: &str) -> Result<(), ConfigError> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            flag,
            format!("{s:?} is not a valid name ([a-z_][a-z0-9_-]*, at most 32)"),
        ))
    }
}

/// A path inside the sandbox: absolute, normalized, no `..`, not the root itself.
pub fn container_path(flag: &str, s: &str) -> Result<PathBuf, ConfigError> {
    if !s.starts_with('/') {
        return Err(ConfigError::new(
            flag,
            format!("{s:?}: container paths must be absolute"),
        ));
    }
    let mut out = PathBuf::from("/");
    for c in s.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err(ConfigError::new(
                flag,
                format!("{s:?}: '..' is not allowed"),
            ));
        }
        out.push(c);
    }
    if out.as_os_str() == "/" {
        return Err(ConfigError::new(
            flag,
            format!("{s:?}: cannot mount over the root"),
        ));
    }
    Ok(out)
}

/// Durations like `30s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration_ms(flag: &str, s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let mult = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => f64::NAN,
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && mult.is_finite() && v * mult < 1e12 => {
            Ok((v * mult) as u64)
        }
        _ => Err(ConfigError::new(
            flag,
            format!("{s:?} is not a duration (e.g. 30s, 500ms, 2m, 1h)"),
        )),
    }
}

/// `--health-cmd` and its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Run with `/bin/sh -c` inside the sandbox, like `nucleus exec`.
    pub cmd: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failures that make the sandbox unhealthy.
    pub retries: u32,
    /// Failures in this first period after start do not count.
    pub start_period_ms: u64,
}

/// Sizes like `64M`, `1g`, `4096`, `512k`.
pub fn parse_size(flag: &str, s: &str) -> Result<u64, ConfigError> {
    let err = || {
        ConfigError::new(
            flag,
            format!("{s:?} is not a size (e.g. 4096, 512k, 64M, 1G)"),
        )
    };
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1u64 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                'b' => 1,
                _ => return Err(err()),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| err())?;
    n.checked_mul(mult).ok_or_else(err)
}

/// `--workspace-max-size`'s default: 4 GiB.
pub const DEFAULT_WORKSPACE_MAX: u64 = 4 << 30;

/// Everything `nucleus run` was asked to do, validated field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    pub argv: Vec<String>,
    pub service_mode: ServiceMode,
    pub network: NetworkMode,
    /// Ports, DNS, egress rules, bridge and subnets.
    pub net: crate::net::NetConfig,
    /// `--health-cmd` (with its interval, timeout, retries, start period).
    pub health: Option<HealthCheck>,
    /// `--timeout`: the workload's time limit in milliseconds (SIGTERM, then SIGKILL after
    /// [`crate::plan::TIMEOUT_GRACE_MS`]).
    pub timeout_ms: Option<u64>,
    pub rootfs: Option<PathBuf>,
    /// `--rootfs-manifest` with its pin and the image cache (the source is `rootfs`, filled
    /// in by the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_attest: Option<crate::attest::AttestedRoot>,
    /// When the service is ready; with `Notify`, the host socket (the runtime's, bound into
    /// the sandbox at [`NOTIFY_SOCKET_IN_SANDBOX`]).
    #[serde(default, skip_serializing_if = "Readiness::is_started")]
    pub readiness: Readiness,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_socket: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "RestartPolicy::is_no")]
    pub restart: RestartPolicy,
    #[serde(default, skip_serializing_if = "HealthOnFailure::is_none")]
    pub health_on_failure: HealthOnFailure,
    /// `--secret`, `--systemd-credential`: files in /run/secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    pub hostname: Option<String>,
    pub workdir: Option<PathBuf>,
    pub env: Vec<EnvVar>,
    pub user: Option<UserSpec>,
    pub group: Option<GroupSpec>,
    pub additional_groups: Vec<GroupSpec>,
    pub ulimits: Vec<Ulimit>,
    /// Seconds added to CLOCK_MONOTONIC and CLOCK_BOOTTIME inside the sandbox.
    pub time_offset: Option<i64>,
    pub context: Option<PathBuf>,
    pub context_mode: ContextMode,
    pub workspace: Option<PathBuf>,
    pub workspace_mode: WorkspaceMode,
    /// `--workspace-max-size`: bytes a copied workspace or context may hold (its tmpfs size and
    /// copy-back's bound); None: [`DEFAULT_WORKSPACE_MAX`].
    #[serde(default)]
    pub workspace_max_size: Option<u64>,
    pub volumes: Vec<Volume>,
    pub tmpfs: Vec<TmpfsSpec>,
    pub provider_configs: Vec<ProviderConfig>,
    pub tty: bool,
    /// Mount /proc read-write (default read-only).
    pub proc_rw: bool,
    /// `--checkpointable`: made to be saved and restored with `nucleus checkpoint` (CRIU):
    /// no Landlock on the workload (CRIU cannot save a Landlock domain; a restored workload
    /// would run without it), masks of their own (docs/checkpoint.md).
    #[serde(default)]
    pub checkpointable: bool,
    /// Extra syscalls allowed on top of the default filter (`--seccomp-allow`).
    pub seccomp_allow: Vec<String>,
    /// `--seccomp-profile`: an OCI seccomp profile (path, text) replacing the default filter.
    pub seccomp_profile: Option<(PathBuf, String)>,
    /// `--caps-policy`: capability keep lists (path, TOML text).
    pub caps_policy: Option<(PathBuf, String)>,
    /// `--landlock-policy`: Landlock rules (path, TOML text).
    pub landlock_policy: Option<(PathBuf, String)>,
    /// `--seccomp-profile-sha256`, `--caps-policy-sha256`, `--landlock-policy-sha256`.
    pub seccomp_profile_sha256: Option<String>,
    pub caps_policy_sha256: Option<String>,
    pub landlock_policy_sha256: Option<String>,
    /// `--seccomp-log-denied`: name each syscall the filter refuses with an errno.
    pub seccomp_log_denied: bool,
    /// `nucleus seccomp trace`: no filter for the workload; every syscall is recorded.
    pub seccomp_trace: bool,
    /// cgroup limits (`--memory`, `--cpus`, `--pids`…).
    pub limits: crate::cgroup::Limits,
    /// Where sandbox cgroups go (`--cgroup-parent`, `NUCLEUS_CGROUP_ROOT`).
    pub cgroup_parent: crate::cgroup::CgroupParent,
    /// Where the runtime keeps its snapshots of the host /etc entries (set from the state root
    /// by the binary; None: every entry is bound on its own). See [`crate::plan::EtcView`].
    #[serde(default)]
    pub etc_views: Option<PathBuf>,
    /// `--runtime`, `--gvisor-platform`, `--runsc` (located and checked by the binary).
    #[serde(default)]
    pub runtime: crate::gvisor::Runtime,
    #[serde(default)]
    pub gvisor_platform: Option<crate::gvisor::GvisorPlatform>,
    #[serde(default)]
    pub runsc: Option<PathBuf>,
}

impl RunConfig {
    pub fn validate_hostname(s: &str) -> Result<(), ConfigError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(
                "--hostname",
                format!("{s:?} is not a valid hostname (letters, digits, '-', '.', at most 64)"),
            ))
        }
    }
}

/// One line for a TOML error: where, what, and the offending line.
pub fn toml_error(flag: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let msg = single_line(e.message().trim());
    match e.span() {
        Some(sp) => {
            let line_no = text[..sp.start.min(text.len())].matches('\n').count() + 1;
            let line = single_line(text.lines().nth(line_no - 1).unwrap_or("").trim());
            ConfigError::new(flag, format!("line {line_no}: {msg} (in `{line}`)"))
        }
        None => ConfigError::new(flag, msg),
    }
}

/// Text from a parser's error (which may quote the input) made safe for one log line: control
/// characters escaped.
pub fn single_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_forms() {
        let v = Volume::parse("/data:/mnt/data:ro").unwrap();
        assert_eq!(
            v,
            Volume {
                src: "/data".into(),
                dst: "/mnt/data".into(),
                readonly: true
            }
        );
        assert!(!Volume::parse("/a:/b").unwrap().readonly);
        assert!(Volume::parse("rel:/b")
            .unwrap_err()
            .message
            .contains("absolute"));
        assert!(Volume::parse("/a:/b:xx")
            .unwrap_err()
            .message
            .contains("unknown option"));
        assert!(Volume::parse("/a:/../etc").is_err());
        assert!(Volume::parse("/a:/").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("x", "4096").unwrap(), 4096);
        assert_eq!(parse_size("x", "1g").unwrap(), 1 << 30);
        assert!(parse_size("x", "12q").is_err());
        assert!(parse_size("x", "").is_err());
    }

    #[test]
    fn ulimits() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!(
            (u.resource, u.soft, u.hard),
            (RlimitResource::Nofile, Some(1024), Some(2048))
        );
        let u = Ulimit::parse("RLIMIT_CORE=unlimited").unwrap();
        assert_eq!((u.soft, u.hard), (None, None));
        assert!(Ulimit::parse("nofile=10:5")
            .unwrap_err()
            .message
            .contains("above"));
        assert!(Ulimit::parse("bogus=1")
            .unwrap_err()
            .message
            .contains("allowed"));
    }

    #[test]
    fn env_and_names() {
        assert_eq!(EnvVar::parse("-e", "A=b=c").unwrap().value, "b=c");
        assert!(EnvVar::parse("-e", "1A=b").is_err());
        assert!(EnvVar::parse("-e", "noeq").is_err());
        assert_eq!(UserSpec::parse("1000").unwrap().uid, 1000);
        assert_eq!(
            UserSpec::parse("agent").unwrap(),
            UserSpec {
                name: "agent".into(),
                uid: 1000
            }
        );
        assert!(UserSpec::parse("70000").is_err());
        assert!(UserSpec::parse("Bad Name").is_err());
        assert!(RunConfig::validate_hostname("box-1.local").is_ok());
        assert!(RunConfig::validate_hostname("-x").is_err());
    }

    /// Configuration files (serde) name the modes as the command line does.
    #[test]
    fn mode_names() {
        for m in [
            ServiceMode::Agent,
            ServiceMode::StrictAgent,
            ServiceMode::Production,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert_eq!(
            serde_json::to_value(WorkspaceMode::CopyInOut).unwrap(),
            "copy-in-out"
        );
        assert!(serde_json::from_str::<NetworkMode>("\"bogus\"").is_err());
    }
}
