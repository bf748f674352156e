//! Capabilities: all dropped, or what `--caps-policy` keeps; never what would let the
//! workload undo its egress policy.

use super::{cfg_err, Draft, PlanError};
use crate::net::NetPlan;
use crate::policy::CapSets;

/// `--caps-policy`: the sets to keep; unknown names cannot be enforced as written (degraded
/// or refused).
pub(super) fn policy(d: &mut Draft) -> Result<Option<CapSets>, PlanError> {
    let Some((path, text)) = &d.cfg.caps_policy else {
        return Ok(None);
    };
    let flag = "--caps-policy";
    let (sets, unknown) = crate::policy::parse_caps(flag, text)
        .map_err(|e| cfg_err(flag, format!("{}: {}", path.display(), e.message)))?;
    if !unknown.is_empty() {
        let what = format!(
            "{}: unknown capabilities {}",
            path.display(),
            unknown.join(", ")
        );
        d.enforce.degrade(
            flag,
            format!("{what}; strict modes refuse a policy they cannot enforce as written"),
            format!("{flag} {what}: dropped from the policy"),
        )?;
    }
    Ok(Some(sets))
}

/// The egress table lives in the sandbox's own namespace: a workload that kept
/// CAP_NET_ADMIN could delete it, one with CAP_NET_RAW could send around it.
pub(super) fn guard_egress(caps: Option<&CapSets>, net: &NetPlan) -> Result<(), PlanError> {
    let (Some(c), Some(_)) = (caps, &net.egress) else {
        return Ok(());
    };
    let held = c.bounding | c.effective | c.permitted | c.ambient;
    for name in ["CAP_NET_ADMIN", "CAP_NET_RAW"] {
        if CapSets::names(held).contains(&name) {
            return Err(cfg_err(
                "--caps-policy",
                format!("keeps {name}, which would let the workload undo the egress policy; drop it or give no --egress-* rule"),
            ));
        }
    }
    Ok(())
}
