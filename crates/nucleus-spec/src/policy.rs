//! Policy files: capability keep lists (`--caps-policy FILE.toml`), Landlock rules
//! (`--landlock-policy FILE.toml`), and the digest pins (`--*-sha256`) that make a policy file
//! exactly the reviewed one.

use crate::config::ConfigError;
use crate::landlock::FsRight;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Linux capability names, by number (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40).
pub const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability number by name, with or without `CAP_`, any case.
pub fn cap_number(name: &str) -> Option<u8> {
    let u = name.to_ascii_uppercase();
    let full = if u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    };
    CAPS.iter().position(|c| *c == full).map(|i| i as u8)
}

/// The five capability sets the workload keeps (bit masks); everything else is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapSets {
    pub fn names(mask: u64) -> Vec<&'static str> {
        CAPS.iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapsFile {
    #[serde(default)]
    bounding: Vec<String>,
    #[serde(default)]
    effective: Vec<String>,
    #[serde(default)]
    permitted: Vec<String>,
    #[serde(default)]
    inheritable: Vec<String>,
    #[serde(default)]
    ambient: Vec<String>,
}

/// A parsed caps policy and the names it had that no kernel capability has.
pub fn parse_caps(flag: &str, text: &str) -> Result<(CapSets, Vec<String>), ConfigError> {
    let f: CapsFile =
        toml::from_str(text).map_err(|e| crate::config::toml_error(flag, text, &e))?;
    let mut unknown = vec![];
    let mut mask = |names: &[String]| -> u64 {
        let mut m = 0u64;
        for n in names {
            match cap_number(n) {
                Some(b) => m |= 1 << b,
                None => unknown.push(n.clone()),
            }
        }
        m
    };
    let s = CapSets {
        bounding: mask(&f.bounding),
        effective: mask(&f.effective),
        permitted: mask(&f.permitted),
        inheritable: mask(&f.inheritable),
        ambient: mask(&f.ambient),
    };
    let extra = |a: u64, b: u64| CapSets::names(a & !b).join(", ");
    if s.effective & !s.permitted != 0 {
        return Err(ConfigError::new(
            flag,
            format!(
                "effective: {} not in permitted (effective must be a subset of permitted)",
                extra(s.effective, s.permitted)
            ),
        ));
    }
    if s.ambient & !(s.permitted & s.inheritable) != 0 {
        return Err(ConfigError::new(
            flag,
            format!(
                "ambient: {} not in both permitted and inheritable (the kernel requires both)",
                extra(s.ambient, s.permitted & s.inheritable)
            ),
        ));
    }
    if s.inheritable & !s.bounding != 0 {
        return Err(ConfigError::new(
            flag,
            format!(
                "inheritable: {} not in bounding (the kernel refuses inheritable capabilities outside the bounding set)",
                extra(s.inheritable, s.bounding)
            ),
        ));
    }
    if s.permitted & !s.bounding != 0 {
        return Err(ConfigError::new(
            flag,
            format!(
                "permitted: {} not in bounding (a dropped bounding capability cannot be kept)",
                extra(s.permitted, s.bounding)
            ),
        ));
    }
    Ok((s, unknown))
}

/// What a rule's path missing in the sandbox means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    #[default]
    Error,
    Skip,
}

/// Whether the policy's rules come on top of nucleus's own or stand alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// nucleus's rules (read everywhere, execute where programs live, write in /tmp, home,
    /// workspace and volumes) plus the policy's.
    #[default]
    Default,
    /// Only the policy's rules (it must grant what the workload needs, exec included).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockPolicyRule {
    pub path: PathBuf,
    pub rights: Vec<FsRight>,
    #[serde(default)]
    pub missing: Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockPolicy {
    /// The lowest Landlock ABI that enforces the policy as written.
    #[serde(default)]
    pub min_abi: u32,
    #[serde(default)]
    pub base: Base,
    #[serde(default, rename = "rule")]
    pub rules: Vec<LandlockPolicyRule>,
}

pub fn parse_landlock(flag: &str, text: &str) -> Result<LandlockPolicy, ConfigError> {
    let p: LandlockPolicy =
        toml::from_str(text).map_err(|e| crate::config::toml_error(flag, text, &e))?;
    for (i, r) in p.rules.iter().enumerate() {
        if !r.path.is_absolute() {
            return Err(ConfigError::new(
                flag,
                format!(
                    "rule[{i}].path: {} must be an absolute path inside the sandbox",
                    r.path.display()
                ),
            ));
        }
        if r.rights.is_empty() {
            return Err(ConfigError::new(
                flag,
                format!("rule[{i}].rights: give at least one right"),
            ));
        }
    }
    if p.min_abi > 7 {
        return Err(ConfigError::new(
            flag,
            format!("min_abi: {} is not a Landlock ABI (1-7)", p.min_abi),
        ));
    }
    Ok(p)
}

pub fn sha256_hex(data: &[u8]) -> String {
    crate::hex(&Sha256::digest(data))
}

/// Check a file's digest against its pin (`--…-sha256`).
pub fn check_pin(flag: &str, data: &[u8], pin: &str) -> Result<(), ConfigError> {
    let want = pin.trim().to_ascii_lowercase();
    let want = want.strip_prefix("sha256:").unwrap_or(&want);
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::new(
            flag,
            format!("{pin:?}: give 64 hex digits (sha256sum's output)"),
        ));
    }
    let have = sha256_hex(data);
    if have != want {
        return Err(ConfigError::new(
            flag,
            format!("digest mismatch: the file's sha256 is {have}, the pin is {want}; nothing was started"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn caps_names_and_sets() {
        assert_eq!(cap_number("net_bind_service"), Some(10));
        assert_eq!(cap_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(cap_number("CAP_NOPE"), None);
        let (s, unknown) = parse_caps(
            "--caps-policy",
            r#"bounding = ["NET_BIND_SERVICE", "CAP_CHOWN", "cap_frobnicate"]
               permitted = ["NET_BIND_SERVICE"]
               effective = ["NET_BIND_SERVICE"]
               inheritable = ["NET_BIND_SERVICE"]
               ambient = ["NET_BIND_SERVICE"]"#,
        )
        .unwrap();
        assert_eq!(s.bounding, (1 << 10) | 1);
        assert_eq!(s.ambient, 1 << 10);
        assert_eq!(unknown, ["cap_frobnicate"]);
        for (bad, field) in [
            ("effective = [\"CHOWN\"]", "effective"),
            (
                "permitted = [\"CHOWN\"]\ninheritable = [\"CHOWN\"]\nambient = [\"CHOWN\"]",
                "inheritable",
            ),
            ("permitted = [\"CHOWN\"]", "permitted"),
            (
                "bounding=[\"CHOWN\"]\npermitted = [\"CHOWN\"]\nambient = [\"CHOWN\"]",
                "ambient",
            ),
            ("effectiv = []", "effectiv"),
            ("bounding = \"CHOWN\"", "bounding"),
        ] {
            let e = parse_caps("--caps-policy", bad).unwrap_err().to_string();
            assert!(e.contains(field) && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn landlock_policies() {
        let p = parse_landlock(
            "--landlock-policy",
            r#"min_abi = 3
               base = "none"
               [[rule]]
               path = "/data"
               rights = ["read_file", "read_dir", "write_file"]
               missing = "skip"
               [[rule]]
               path = "/usr"
               rights = ["read_file", "read_dir", "execute"]"#,
        )
        .unwrap();
        assert_eq!(p.min_abi, 3);
        assert_eq!(p.base, Base::None);
        assert_eq!(p.rules[0].missing, Missing::Skip);
        assert_eq!(p.rules[1].missing, Missing::Error);
        for (bad, field) in [
            (
                "[[rule]]\npath = \"data\"\nrights = [\"read_file\"]",
                "rule[0].path",
            ),
            ("[[rule]]\npath = \"/d\"\nrights = []", "rule[0].rights"),
            ("[[rule]]\npath = \"/d\"\nrights = [\"fly\"]", "fly"),
            ("min_abi = 9", "min_abi"),
            ("base = \"some\"", "some"),
            ("[[rules]]\npath = \"/d\"", "rules"),
        ] {
            let e = parse_landlock("--landlock-policy", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(field) && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn pins() {
        let d = b"abc";
        let h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(d), h);
        assert!(check_pin("--x-sha256", d, h).is_ok());
        assert!(check_pin("--x-sha256", d, &format!("sha256:{}", h.to_uppercase())).is_ok());
        let e = check_pin("--x-sha256", b"abd", h).unwrap_err().to_string();
        assert!(e.contains("mismatch") && e.contains("--x-sha256"), "{e}");
        assert!(check_pin("--x-sha256", d, "abc").is_err());
    }
}
