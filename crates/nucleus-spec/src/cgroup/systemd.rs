//! systemd's cgroup driver (`--systemd-cgroup`): a container's cgroup is a transient scope
//! unit systemd makes and owns, named by runc's `slice:prefix:name` form of cgroupsPath.
//! This module is the pure part: the names, the path systemd gives the scope's cgroup, and
//! the unit properties that say the limits (so systemd, which rewrites a unit's cgroup
//! attributes from its own view, writes the same values).

use super::{Limits, SwapLimit};
use serde::{Deserialize, Serialize};

/// The scope systemd is asked to make for a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdScope {
    /// `PREFIX-NAME.scope`.
    pub unit: String,
    /// The slice it goes in (`system.slice` when the path names none).
    pub slice: String,
    /// Unit properties that say the container's resources (systemd writes the scope's
    /// cgroup attributes from them, and would revert bare files to its own view).
    pub properties: Vec<(String, ScopeValue)>,
}

/// A unit property's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeValue {
    /// `t` (u64::MAX: "infinity").
    U64(u64),
    /// `ay`: a CPU or memory-node mask, bit N of byte N/8 for CPU N.
    Bytes(Vec<u8>),
}

/// A CPU or memory-node list as systemd's mask.
pub fn cpu_mask(cpus: &[usize]) -> Vec<u8> {
    let mut m = vec![0u8; cpus.iter().max().map_or(0, |c| c / 8 + 1)];
    for c in cpus {
        m[c / 8] |= 1 << (c % 8);
    }
    m
}

/// A unit-name character systemd takes (unit_name_is_valid: `[A-Za-z0-9:_.\-]`, plus `@`
/// for instances, which a container never names).
fn unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-' | '\\')
}

/// runc's `slice:prefix:name` cgroupsPath (`""` slice: `system.slice`), for container `id`
/// when the bundle gives no path (`system.slice:nucleus:ID`). Err: what is wrong with it.
pub fn parse_scope(path: Option<&str>, id: &str) -> Result<(String, String), String> {
    let text = path.unwrap_or("");
    let (slice, prefix, name) = if text.is_empty() {
        ("", "nucleus", id)
    } else {
        let parts: Vec<&str> = text.split(':').collect();
        match parts[..] {
            [s, p, n] => (s, p, n),
            _ => {
                return Err(format!(
                "{text:?}: the systemd form is slice:prefix:name (e.g. system.slice:nucleus:{id})"
            ))
            }
        }
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    slice_path(slice)?;
    if name.is_empty() || name.ends_with(".slice") {
        return Err(format!(
            "{text:?}: the name must be the container's scope (a name ending in .slice makes a slice, which nucleus does not)"
        ));
    }
    let unit = if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if unit.len() > 255 || !unit.chars().all(unit_char) {
        return Err(format!(
            "{unit:?}: not a systemd unit name (letters, digits, : _ . - only, at most 255)"
        ));
    }
    Ok((slice.to_string(), unit))
}

/// The cgroup path of a slice, as systemd nests them: `a-b-c.slice` is
/// `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` the root. Err: not a slice name.
pub fn slice_path(slice: &str) -> Result<String, String> {
    let bad =
        || format!("{slice:?}: not a systemd slice name (like system.slice or machine-app.slice)");
    if slice == "-.slice" {
        return Ok("/".into());
    }
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem.is_empty()
        || stem.starts_with('-')
        || stem.ends_with('-')
        || stem.contains("--")
        || !stem.chars().all(unit_char)
    {
        return Err(bad());
    }
    let mut path = String::new();
    let mut upto = 0;
    for part in stem.split('-') {
        upto += part.len();
        path.push('/');
        path.push_str(&stem[..upto]);
        path.push_str(".slice");
        upto += 1;
    }
    Ok(path)
}

/// The unit properties that say `l` to systemd (its names and units), each with the flag
/// of `l` it comes from (`update` sends those of the flags it is given).
pub fn scope_properties(l: &Limits) -> Vec<(&'static str, String, ScopeValue)> {
    let mut p = Vec::new();
    let mut put = |flag: &'static str, name: &str, v: u64| {
        p.push((flag, name.to_string(), ScopeValue::U64(v)))
    };
    if let Some(m) = l.memory {
        put("--memory", "MemoryMax", m);
        // (As the cgroupfs driver: swap as large as memory unless said otherwise.)
        let swap = match l.memory_swap {
            Some(SwapLimit::Total(t)) => t.saturating_sub(m),
            Some(SwapLimit::Unlimited) => u64::MAX,
            None => m,
        };
        put("--memory-swap", "MemorySwapMax", swap);
    }
    put("--pids", "TasksMax", l.pids.unwrap_or(u64::MAX));
    if let Some(c) = l.cpus_milli {
        // µs of CPU time per second.
        put("--cpus", "CPUQuotaPerSecUSec", c * 1000);
        if let Some(period) = l.cpu_period_us {
            put("--cpus", "CPUQuotaPeriodUSec", period);
        }
    }
    if let Some(w) = l.cpu_weight {
        put("--cpu-weight", "CPUWeight", w);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_paths_name_the_scope_and_its_slice() {
        let ok = |p: Option<&str>| parse_scope(p, "c1").unwrap();
        assert_eq!(
            ok(Some("machine.slice:libpod:abc")),
            ("machine.slice".into(), "libpod-abc.scope".into())
        );
        assert_eq!(
            ok(Some(":cri-containerd:abc")),
            ("system.slice".into(), "cri-containerd-abc.scope".into())
        );
        assert_eq!(
            ok(Some("system.slice::abc")),
            ("system.slice".into(), "abc.scope".into())
        );
        assert_eq!(ok(None), ("system.slice".into(), "nucleus-c1.scope".into()));
        for bad in [
            "/plain/path",
            "a:b",
            "a:b:c:d",
            "system:x:y",
            "system.slice:x:",
            "system.slice:x:pod.slice",
            "system.slice:x:a/b",
            "-a.slice:x:y",
            "a--b.slice:x:y",
            "a-.slice:x:y",
            "system.slice:x:a b",
        ] {
            assert!(parse_scope(Some(bad), "c1").is_err(), "{bad}");
        }
        assert!(parse_scope(Some(&format!("system.slice:p:{}", "x".repeat(250))), "c").is_err());
    }

    #[test]
    fn slices_nest_by_their_dashes() {
        assert_eq!(slice_path("system.slice").unwrap(), "/system.slice");
        assert_eq!(slice_path("-.slice").unwrap(), "/");
        assert_eq!(
            slice_path("kubepods-burstable-pod1.slice").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice"
        );
        assert!(slice_path("system").is_err());
        assert!(slice_path(".slice").is_err());
    }

    #[test]
    fn limits_are_said_as_systemd_properties() {
        let l = Limits {
            memory: Some(64 << 20),
            cpus_milli: Some(500),
            cpu_weight: Some(200),
            pids: Some(99),
            ..Default::default()
        };
        let u = |v| ScopeValue::U64(v);
        let got: Vec<(&str, ScopeValue)> = scope_properties(&l)
            .into_iter()
            .map(|(_, n, v)| {
                (
                    match n.as_str() {
                        "MemoryMax" => "MemoryMax",
                        "MemorySwapMax" => "MemorySwapMax",
                        "TasksMax" => "TasksMax",
                        "CPUQuotaPerSecUSec" => "CPUQuotaPerSecUSec",
                        "CPUWeight" => "CPUWeight",
                        _ => "other",
                    },
                    v,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("MemoryMax", u(64 << 20)),
                ("MemorySwapMax", u(64 << 20)),
                ("TasksMax", u(99)),
                ("CPUQuotaPerSecUSec", u(500_000)),
                ("CPUWeight", u(200)),
            ]
        );
        // No pids limit: infinity, not systemd's default; unlimited swap likewise.
        let none = Limits {
            pids: None,
            memory: Some(1 << 30),
            memory_swap: Some(SwapLimit::Unlimited),
            ..Default::default()
        };
        let p = scope_properties(&none);
        assert!(p.contains(&("--pids", "TasksMax".into(), u(u64::MAX))));
        assert!(p.contains(&("--memory-swap", "MemorySwapMax".into(), u(u64::MAX))));
        assert_eq!(cpu_mask(&[0, 2, 9]), [0b101, 0b10]);
        assert!(cpu_mask(&[]).is_empty());
    }
}
