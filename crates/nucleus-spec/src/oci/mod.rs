//! OCI bundles: config.json (runtime-spec 1.x, Linux) read with the `oci-spec` crate and
//! translated into the [`Plan`] the executor runs. OCI mode follows the bundle, not nucleus's
//! agent defaults: no user namespace, Landlock or seccomp filter unless config.json asks.
//! A property nucleus cannot honour is refused with one line naming it; properties the
//! runtime-spec does not define are ignored (as it requires) and listed in
//! [`Bundle::unknown`] for one warning.

pub mod checkpoint;
pub mod options;
mod translate;

pub use translate::{plan, sysctl_namespace, update_resources, Context, Extra, Update};

use crate::config::ConfigError;
use oci_spec::runtime::Spec;
use serde_json::Value;

/// The runtime-spec versions this runtime reads: 1.0.0 up to 1.2.x (runc 1.2's range).
pub const OCI_VERSION: &str = "1.2.1";

/// A parsed config.json.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub spec: Spec,
    /// The document as written (what `oci-spec` does not model is read from it: the seccomp
    /// profile for nucleus's own compiler, mount id maps).
    pub raw: Value,
    /// Properties the runtime-spec does not define, as JSON paths (`linux.foo`).
    pub unknown: Vec<String>,
}

impl Bundle {
    /// config.json's annotations, ordered (the record, hooks' and agents' state show them).
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

fn err(field: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(field, msg)
}

/// Read config.json's text.
pub fn parse(text: &str) -> Result<Bundle, ConfigError> {
    let raw: Value =
        serde_json::from_str(text).map_err(|e| err("config.json", format!("not JSON: {e}")))?;
    if !raw.is_object() {
        return Err(err("config.json", "must be a JSON object"));
    }
    let version = raw
        .get("ociVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| err("ociVersion", "required (e.g. \"1.2.0\")"))?;
    check_version(version)?;
    let spec: Spec = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let path = e.path().to_string();
        err(&path, e.into_inner().to_string())
    })?;
    let back = serde_json::to_value(&spec).map_err(|e| err("config.json", e.to_string()))?;
    let mut unknown = Vec::new();
    unknown_keys(&raw, &back, "", &mut unknown);
    Ok(Bundle { spec, raw, unknown })
}

/// `nucleus spec`: the runtime-spec's default config.json (runc's), pretty-printed.
pub fn default_config() -> String {
    serde_json::to_string_pretty(&Spec::default()).unwrap_or_default()
}

/// `nucleus features`: what this runtime implements, as runtime-spec's features.md describes
/// (checked against its JSON Schema in the tests).
pub fn features() -> Value {
    use serde_json::json;
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": options::KNOWN,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": crate::policy::CAPS,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                    "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                // Only the native architecture is filtered (profile.rs).
                "archs": [if cfg!(target_arch = "aarch64") { "SCMP_ARCH_AARCH64" } else { "SCMP_ARCH_X86_64" }],
                "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_TSYNC"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_TSYNC"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "org.nucleus.oci.process-model": "no runtime process after create; the container's process is PID 1"
        }
    })
}

/// `exec --process FILE`: a process to start in a running container (process.json, the
/// `process` object of config.json), as the container's plan with its process replaced.
pub fn exec_process(
    text: &str,
    container: &crate::plan::Plan,
) -> Result<crate::plan::Plan, crate::plan::PlanError> {
    let raw: Value =
        serde_json::from_str(text).map_err(|e| err("--process", format!("not JSON: {e}")))?;
    translate::refuse_unsupported_process(&raw)?;
    let p: oci_spec::runtime::Process = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let path = format!("process.{}", e.path());
        err(&path, e.into_inner().to_string())
    })?;
    let mut plan = container.clone();
    plan.process = translate::process_plan(&p)?;
    translate::exec_affinity(&p, &mut plan.process.tuning)?;
    Ok(plan)
}

/// `1.0.0` ≤ version < `1.3`: later minor versions may add properties that change meaning.
fn check_version(v: &str) -> Result<(), ConfigError> {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<Option<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [Some(1), Some(minor), Some(_)] if *minor <= 2 => Ok(()),
        _ => Err(err(
            "ociVersion",
            format!("{v:?} is not a runtime-spec version this runtime reads (1.0.0 to 1.2.x)"),
        )),
    }
}

/// Keys of `raw` that did not survive the round trip through the typed spec.
fn unknown_keys(raw: &Value, typed: &Value, at: &str, out: &mut Vec<String>) {
    match (raw, typed) {
        (Value::Object(r), Value::Object(t)) => {
            for (k, v) in r {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match t.get(k) {
                    Some(tv) => unknown_keys(v, tv, &path, out),
                    // `null` and defaults the typed form leaves out are not unknown.
                    None if v.is_null() || is_empty(v) => {}
                    None => out.push(path),
                }
            }
        }
        (Value::Array(r), Value::Array(t)) if r.len() == t.len() => {
            for (i, (rv, tv)) in r.iter().zip(t).enumerate() {
                unknown_keys(rv, tv, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oci");

    #[test]
    fn versions_outside_1_0_to_1_2_are_refused() {
        for ok in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1+dev"] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["0.9.0", "1.3.0", "2.0.0", "1.2", "", "x"] {
            let e = check_version(bad).unwrap_err();
            assert_eq!(e.field, "ociVersion", "{bad}");
        }
    }

    #[test]
    fn the_field_that_does_not_parse_is_named() {
        let e =
            parse(r#"{"ociVersion":"1.2.0","process":{"cwd":"/","user":{"uid":"root","gid":0}}}"#)
                .unwrap_err();
        assert_eq!(e.field, "process.user.uid", "{e:?}");
        let e = parse("{").unwrap_err();
        assert_eq!(e.field, "config.json");
        let e = parse(r#"{"process":{}}"#).unwrap_err();
        assert_eq!(e.field, "ociVersion");
    }

    #[test]
    fn unknown_properties_are_listed_not_fatal() {
        let b = parse(
            r#"{"ociVersion":"1.2.0","shiny":1,"root":{"path":"rootfs","sparkle":true},
                "linux":{"namespaces":[{"type":"pid","colour":"red"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            b.unknown,
            vec!["linux.namespaces[0].colour", "root.sparkle", "shiny"]
        );
    }

    #[test]
    fn the_runtime_spec_examples_parse_with_nothing_unknown() {
        for f in [
            "runc-spec.json",
            "crun-spec.json",
            "spec-example.json",
            "minimal.json",
        ] {
            let text = std::fs::read_to_string(format!("{DATA}/{f}")).unwrap();
            // The upstream vectors carry the schema's development version.
            let text = text.replace("\"0.5.0-dev\"", "\"1.2.0\"");
            let b = parse(&text).unwrap_or_else(|e| panic!("{f}: {e:?}"));
            // The example is of a pre-1.0 draft, whose resources had an oomScoreAdj.
            let expected: &[&str] = if f == "spec-example.json" {
                &["linux.resources.oomScoreAdj"]
            } else {
                &[]
            };
            assert_eq!(b.unknown, expected, "{f}");
        }
    }
}
