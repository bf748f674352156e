//! Lifecycle state, as plain data: what `<state root>/<id>/state.json` holds, how an id, an id
//! prefix or a name picks a sandbox, the OCI state view, signal names and the event schema.
//! Reading and writing the files is nucleus-sys's job (`store`).

use crate::cgroup::Usage;
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Version of `state.json`; bumped on incompatible changes.
pub const STATE_VERSION: u32 = 1;
/// Version of the event schema (`"v"` in every event line; docs/lifecycle.md).
pub const EVENTS_VERSION: u32 = 1;

/// What was applied to the workload, reported just before exec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityReport {
    pub root_switch: RootSwitch,
    pub capabilities_dropped: bool,
    /// Capabilities a `--caps-policy` kept in the bounding set (all others are dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_kept: Vec<String>,
    pub no_new_privs: bool,
    pub seccomp: SeccompStatus,
    pub landlock: LandlockStatus,
    pub landlock_abi: u32,
    /// The root is the sealed image of the manifest with this SHA-256 (attested).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_sha256: Option<String>,
    /// The sandbox's user namespace maps its ids to a private range of host ids.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private_ids: bool,
    /// Human-readable list of protections that were not applied (agent mode only).
    pub degraded: Vec<String>,
    /// The runtime when not native (`gvisor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::gvisor::Runtime>,
    /// `--runtime gvisor`: the sandbox runs on gVisor's kernel (its system calls, root and
    /// process protections are gVisor's; see docs/gvisor.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gvisor: Option<GvisorReport>,
}

/// What runs a gVisor sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GvisorReport {
    pub runsc: PathBuf,
    /// `--platform` (runsc's default when not given).
    pub platform: String,
}

/// How the sandbox's root was switched to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSwitch {
    #[default]
    PivotRoot,
    /// pivot_root failed (agent mode only; reported as degraded).
    Chroot,
    /// gVisor's kernel serves the root (its gofer is chrooted to the bundle's).
    Gvisor,
}

/// Whether the workload's seccomp filter is installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompStatus {
    Enforced,
    #[default]
    NotApplied,
    /// gVisor's kernel serves the workload's system calls (runsc filters its own).
    Gvisor,
}

/// How much of the Landlock ruleset the kernel enforces (the rights it knows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LandlockStatus {
    FullyEnforced,
    /// Rights newer than the kernel's ABI are not.
    PartiallyEnforced,
    #[default]
    NotEnforced,
    /// gVisor: the host's Landlock has no say over the sentry's file system.
    NotApplicable,
}

/// OCI runtime-spec container status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The monitor is setting the sandbox up.
    Creating,
    /// Set up and waiting for `nucleus start`.
    Created,
    /// The workload has been exec'd and has not exited.
    Running,
    /// The workload exited (or the sandbox was lost with its monitor).
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// A sandbox's restarts so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarts {
    pub count: u32,
    /// Why the last one: `exit 3`, `signal 9`, `unhealthy`.
    pub reason: String,
    /// While waiting to start again: when it will (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_ms: Option<u64>,
}

/// How the workload ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Shell-style status: the exit code, or 128 + signal; None when unknown (monitor lost).
    pub code: Option<i32>,
    /// The signal that killed the workload, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// Why it ended without running, or how it was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A process identified beyond its pid: the start time (clock ticks after boot, field 22 of
/// /proc/PID/stat) tells a reused pid apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

/// One sandbox's record. Written whole and atomically (write + rename) by its monitor, read by
/// every other verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: Status,
    pub argv: Vec<String>,
    /// The monitor process that supervises the sandbox (None until it has started).
    pub monitor: Option<ProcId>,
    /// The sandbox's init (its pid namespace's PID 1), as seen from the host.
    pub init: Option<ProcId>,
    /// The workload (init's child), as seen from the host.
    pub workload: Option<ProcId>,
    pub cgroups: Vec<PathBuf>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protections: Option<SecurityReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// `--events-jsonl`: where `rm` appends the `removed` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PathBuf>,
    /// `--rm`: the monitor removes the record when the workload exits.
    pub auto_remove: bool,
    /// W3C traceparent of the sandbox's `create` span: later verbs' spans are its children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The systemd transient unit supervising the monitor (its output is in the journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// With `--health-cmd`: starting, healthy or unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// When the service became ready (`--sd-notify`, `--readiness-tcp`, `--readiness-exec`;
    /// or when it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<u64>,
    /// Restarts by the monitor (`--restart`, `--health-on-failure restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<Restarts>,
    /// An OCI container (`create --bundle`): no monitor; its caller supervises it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciRecord>,
}

/// What an OCI container's record adds: where it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciRecord {
    /// The bundle directory (absolute).
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The container process's standard descriptors as its caller gave them at create (or
    /// restore), what a checkpoint names to CRIU (runc's descriptors.json): read then, not
    /// from the process at the checkpoint, whose own redirections move them for a moment.
    /// None: a terminal, or something CRIU cannot be handed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<Vec<crate::oci::checkpoint::Descriptor>>,
}

/// The runtime-spec version of the state nucleus reports.
pub const OCI_STATE_VERSION: &str = "1.2.0";

impl OciRecord {
    /// runtime-spec's state of the container (what `state` prints, what hooks and seccomp
    /// agents read on their input): `pid` as the host sees it, 0 when it has none.
    pub fn state(&self, id: &str, status: &str, pid: i32) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": OCI_STATE_VERSION,
            "id": id,
            "status": status,
            "pid": pid,
            "bundle": self.bundle,
            "annotations": self.annotations,
        })
    }
}

impl State {
    pub fn new(id: &str, name: Option<String>, argv: Vec<String>, now_ms: u64) -> State {
        State {
            version: STATE_VERSION,
            id: id.into(),
            name,
            status: Status::Creating,
            argv,
            monitor: None,
            init: None,
            workload: None,
            cgroups: vec![],
            created_ms: now_ms,
            started_ms: None,
            finished_ms: None,
            protections: None,
            exit: None,
            usage: None,
            events: None,
            auto_remove: false,
            trace: None,
            unit: None,
            health: None,
            ready_ms: None,
            restarts: None,
            oci: None,
        }
    }

    /// The status to show, given whether the monitor still lives: a sandbox whose monitor is
    /// gone died with it (its init has the monitor's death as its parent-death signal).
    pub fn effective(&self, monitor_alive: bool) -> (Status, Option<ExitInfo>) {
        if self.status == Status::Stopped || monitor_alive {
            return (self.status, self.exit.clone());
        }
        (
            Status::Stopped,
            Some(ExitInfo {
                code: None,
                signal: None,
                oom_killed: false,
                error: Some("the monitor process died; the sandbox was killed with it".into()),
            }),
        )
    }

    /// The OCI runtime-spec state (`nucleus state ID`).
    pub fn oci(&self, status: Status, bundle: &str) -> serde_json::Value {
        let pid = match status {
            Status::Created | Status::Running => self.init.map(|p| p.pid).unwrap_or(0),
            _ => 0,
        };
        let mut o = self.oci.clone().unwrap_or_else(|| OciRecord {
            bundle: bundle.into(),
            ..Default::default()
        });
        if let Some(n) = &self.name {
            o.annotations.insert("org.nucleus.name".into(), n.clone());
        }
        if let Some(h) = &self.health {
            o.annotations.insert("org.nucleus.health".into(), h.clone());
        }
        let mut v = o.state(&self.id, status.as_str(), pid);
        v["created"] = rfc3339(self.created_ms).into();
        v
    }
}

/// A sandbox name: 1-64 of [A-Za-z0-9_.-], starting with a letter or digit (as Docker's).
pub fn validate_name(flag: &str, n: &str) -> Result<(), ConfigError> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(ConfigError::new(
            flag,
            format!(
                "{n:?}: a name is 1-64 characters of A-Z a-z 0-9 _ . -, starting with a letter or digit"
            ),
        ));
    }
    if looks_like_id(n) {
        return Err(ConfigError::new(
            flag,
            format!("{n:?} looks like a sandbox id ({ID_LEN} hex digits): choose another name"),
        ));
    }
    Ok(())
}

/// Sandbox ids: this many lowercase hex digits.
pub const ID_LEN: usize = 16;

fn looks_like_id(n: &str) -> bool {
    n.len() == ID_LEN && n.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a sandbox's monitor tells the command that launched it, and a `start` request's
/// answer: one line each (`warn MSG`, `created NS`, then `ok` or `error CODE MSG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorReport {
    /// A protection or limit not applied (agent mode), for the launcher to print.
    Warn(String),
    /// The sandbox exists (nanoseconds since the epoch, for the trace).
    Created(u64),
    /// The workload runs (or waits for `start`).
    Ok,
    /// It could not be started: the exit code for the launcher, and why.
    Error { code: u8, msg: String },
}

impl MonitorReport {
    /// One line, without its newline; `msg` is made one line.
    pub fn encode(&self) -> String {
        match self {
            Self::Warn(m) => format!("warn {}", crate::config::single_line(m)),
            Self::Created(ns) => format!("created {ns}"),
            Self::Ok => "ok".into(),
            Self::Error { code, msg } => {
                format!("error {code} {}", crate::config::single_line(msg))
            }
        }
    }
    /// None for a line that is none of these (ignored by the reader).
    pub fn parse(line: &str) -> Option<Self> {
        if line == "ok" {
            return Some(Self::Ok);
        }
        if let Some(w) = line.strip_prefix("warn ") {
            return Some(Self::Warn(w.into()));
        }
        if let Some(t) = line.strip_prefix("created ") {
            return t.parse().ok().map(Self::Created);
        }
        let e = line.strip_prefix("error ")?;
        let (c, msg) = e.split_once(' ').unwrap_or((e, ""));
        Some(Self::Error {
            code: c.parse().unwrap_or(125),
            msg: msg.into(),
        })
    }
}

/// Why a sandbox reference did not pick exactly one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    NotFound(String),
    Ambiguous(String, usize),
}

impl std::error::Error for ResolveError {}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound(q) => write!(f, "{q}: no such sandbox (see `nucleus ps -a`)"),
            ResolveError::Ambiguous(q, n) => {
                write!(f, "{q}: matches {n} sandboxes; give more of the id")
            }
        }
    }
}

/// Pick one sandbox by exact id, exact name, or unique id prefix (in that order: a name can
/// never hide an id, and names shaped like ids are refused, see [`validate_name`]).
/// `entries` are (id, name) pairs.
pub fn resolve<'a>(
    query: &str,
    entries: &'a [(String, Option<String>)],
) -> Result<&'a str, ResolveError> {
    if let Some((id, _)) = entries.iter().find(|(id, _)| id == query) {
        return Ok(id);
    }
    if let Some((id, _)) = entries.iter().find(|(_, n)| n.as_deref() == Some(query)) {
        return Ok(id);
    }
    let m: Vec<&String> = if query.is_empty() {
        vec![]
    } else {
        entries
            .iter()
            .map(|(id, _)| id)
            .filter(|id| id.starts_with(query))
            .collect()
    };
    match m.len() {
        1 => Ok(m[0]),
        0 => Err(ResolveError::NotFound(query.into())),
        n => Err(ResolveError::Ambiguous(query.into(), n)),
    }
}

/// Linux signal numbers (x86_64 and the generic table arm64, riscv use).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// A signal by name (`TERM`, `SIGTERM`, `sigterm`, `RTMIN+3`) or number (1-64).
pub fn parse_signal(flag: &str, s: &str) -> Result<i32, ConfigError> {
    let bad = || {
        ConfigError::new(
            flag,
            format!("{s:?}: not a signal (a name like TERM, KILL, HUP, RTMIN+N, or 1-64)"),
        )
    };
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(&(_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let n = base + sign * off;
        (34..=64).contains(&n).then_some(n)
    };
    if let Some(r) = name.strip_prefix("RTMIN") {
        return rt(34, r.trim_start_matches('+'), 1).ok_or_else(bad);
    }
    if let Some(r) = name.strip_prefix("RTMAX") {
        return rt(64, r.trim_start_matches('-'), -1).ok_or_else(bad);
    }
    Err(bad())
}

/// One event line (`--events-jsonl`): `{"v":1,"time":…,"event":KIND,"id":…, …fields}`.
pub fn event(kind: &str, id: &str, time_ms: u64, fields: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("v".into(), EVENTS_VERSION.into());
    m.insert("time".into(), rfc3339(time_ms).into());
    m.insert("event".into(), kind.into());
    m.insert("id".into(), id.into());
    if let serde_json::Value::Object(f) = fields {
        m.extend(f);
    }
    serde_json::Value::Object(m)
}

/// UTC RFC 3339 with milliseconds, e.g. 2026-11-23T10:04:05.123Z.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// "3 seconds ago"-style age for tables.
pub fn age(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_435_445_123), "2026-11-23T12:04:05.123Z");
    }

    #[test]
    fn names_ids_prefixes() {
        let e = vec![
            ("abc123".to_string(), Some("web".to_string())),
            ("abd456".to_string(), None),
            ("ff0000".to_string(), Some("abd456x".to_string())),
        ];
        assert_eq!(resolve("web", &e).unwrap(), "abc123");
        assert_eq!(resolve("abc", &e).unwrap(), "abc123");
        assert_eq!(resolve("abd456x", &e).unwrap(), "ff0000");
        assert_eq!(
            resolve("ab", &e),
            Err(ResolveError::Ambiguous("ab".into(), 2))
        );
        assert_eq!(resolve("zz", &e), Err(ResolveError::NotFound("zz".into())));
        assert_eq!(resolve("", &e), Err(ResolveError::NotFound("".into())));
        assert!(validate_name("--name", "a.b-c_1").is_ok());
        for bad in [
            "",
            "-x",
            ".x",
            "a/b",
            "a b",
            &"x".repeat(65),
            "0123456789abcdef",
            "DEADBEEFDEADBEEF",
        ] {
            assert!(validate_name("--name", bad).is_err(), "{bad}");
        }
        assert!(validate_name("--name", "0123456789abcdeg").is_ok());
        assert!(validate_name("--name", "cafe").is_ok());
        // An exact id wins over a name that equals it (made before names like ids were
        // refused); a name wins over an id prefix.
        let e = vec![
            ("0123456789abcdef".to_string(), None),
            (
                "fedcba9876543210".to_string(),
                Some("0123456789abcdef".to_string()),
            ),
            ("cafe000000000000".to_string(), None),
            ("1111111111111111".to_string(), Some("cafe".to_string())),
        ];
        assert_eq!(resolve("0123456789abcdef", &e).unwrap(), "0123456789abcdef");
        assert_eq!(resolve("cafe", &e).unwrap(), "1111111111111111");
        assert_eq!(resolve("cafe0", &e).unwrap(), "cafe000000000000");
    }

    #[test]
    fn monitor_reports_round_trip() {
        for r in [
            MonitorReport::Warn("limit NOT applied".into()),
            MonitorReport::Created(1_795_435_445_123_000_000),
            MonitorReport::Ok,
            MonitorReport::Error {
                code: 127,
                msg: "exec: x: command not found".into(),
            },
        ] {
            assert_eq!(MonitorReport::parse(&r.encode()), Some(r));
        }
        // A message cannot add a line of its own.
        let e = MonitorReport::Error {
            code: 125,
            msg: "a\nok".into(),
        };
        assert!(!e.encode().contains('\n'));
        assert_eq!(MonitorReport::parse("garbage"), None);
        assert_eq!(MonitorReport::parse("created soon"), None);
    }

    #[test]
    fn signals() {
        for (s, n) in [
            ("TERM", 15),
            ("sigkill", 9),
            ("9", 9),
            ("RTMIN", 34),
            ("RTMIN+3", 37),
            ("SIGRTMAX-1", 63),
            ("WINCH", 28),
        ] {
            assert_eq!(parse_signal("SIGNAL", s).unwrap(), n, "{s}");
        }
        for bad in ["0", "65", "FOO", "RTMIN+40", "-1"] {
            assert!(parse_signal("SIGNAL", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lost_monitor_means_stopped() {
        let mut s = State::new("a", None, vec!["true".into()], 0);
        s.status = Status::Running;
        assert_eq!(s.effective(true).0, Status::Running);
        let (st, exit) = s.effective(false);
        assert_eq!(st, Status::Stopped);
        assert!(exit.unwrap().error.unwrap().contains("monitor"));
        assert_eq!(s.oci(Status::Stopped, "/b")["pid"], 0);
    }

    #[test]
    fn events_carry_version_and_kind() {
        let e = event("exited", "x", 0, serde_json::json!({"status": 3}));
        assert_eq!(e["v"], 1);
        assert_eq!(e["event"], "exited");
        assert_eq!(e["status"], 3);
    }
}
