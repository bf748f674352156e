//! Admission: what is refused before anything else is decided (pins, a missing command,
//! modes a configuration cannot meet), and the decisions every later area depends on: the
//! network plan and the cgroup plan, with the limits that cannot be applied as asked.

use super::{cfg_err, Draft, PlanError};
use crate::cgroup::{CgroupParent, CgroupPlan, Limits};
use crate::config::{NetworkMode, RunConfig, ServiceMode};
use crate::net::NetPlan;

/// What admission decided.
pub(super) struct Admitted {
    pub net: NetPlan,
    pub cgroup: Option<CgroupPlan>,
}

pub(super) fn admit(d: &mut Draft, id: &str) -> Result<Admitted, PlanError> {
    let (cfg, facts) = (d.cfg, d.facts);
    let mode = cfg.service_mode;
    let strict = mode.fail_closed();
    check_pins(cfg)?;
    if cfg.argv.is_empty() {
        return Err(cfg_err(
            "COMMAND",
            "missing: give the command after `--`, e.g. `nucleus run -- echo hello`",
        ));
    }
    production(cfg, facts.euid)?;
    if strict && cfg.network == NetworkMode::Host {
        return Err(cfg_err(
            "--network",
            "host networking is refused in strict-agent and production modes",
        ));
    }
    if let Some(h) = &cfg.hostname {
        RunConfig::validate_hostname(h)?;
    }
    if cfg.network == NetworkMode::Bridge && facts.euid != 0 {
        return Err(cfg_err(
            "--network",
            "bridge networking needs root (it creates host interfaces); use --network slirp",
        ));
    }
    let net = NetPlan::build(
        cfg.network,
        &cfg.net,
        mode,
        facts.host_resolv_conf.as_deref(),
        id,
        facts.euid == 0,
    )?;
    cfg.limits.validate(facts.cpus)?;
    let cgroup = cgroup(d, id)?;
    if strict && facts.landlock_abi == 0 {
        return Err(cfg_err(
            "--service-mode",
            format!(
                "Landlock is not available on this kernel; {} mode refuses to start",
                mode.as_str()
            ),
        ));
    }
    if cfg.time_offset.is_some() && !facts.time_ns {
        return Err(cfg_err(
            "--time-offset",
            "this kernel has no time namespaces",
        ));
    }
    Ok(Admitted { net, cgroup })
}

/// What production mode requires beyond the strict modes (SPEC.md, "Service modes"), and
/// what an attested root needs in any mode.
fn production(cfg: &RunConfig, euid: u32) -> Result<(), PlanError> {
    if cfg.rootfs_attest.is_some() {
        if cfg.rootfs.is_none() {
            return Err(cfg_err(
                "--rootfs-manifest",
                "needs --rootfs DIR: the tree the manifest describes",
            ));
        }
        if euid != 0 {
            return Err(cfg_err(
                "--rootfs-manifest",
                "an attested root needs root: its sealed image is mounted (EROFS)",
            ));
        }
    }
    if cfg.service_mode != ServiceMode::Production {
        return Ok(());
    }
    let refuse = |flag: &str, what: &str| {
        Err(cfg_err(
            flag,
            format!("production mode requires {what}; nothing was started"),
        ))
    };
    if euid != 0 {
        return refuse(
            "--service-mode",
            "root (its root filesystem is an attested image mounted by the runtime)",
        );
    }
    if cfg.rootfs.is_none() {
        return refuse(
            "--rootfs",
            "a root filesystem (a Nix closure or any directory with a manifest)",
        );
    }
    if cfg.rootfs_attest.is_none() {
        return refuse(
            "--rootfs-manifest",
            "an attested root: `nucleus rootfs manifest DIR -o FILE` writes the manifest and prints the digest to pin with --rootfs-sha256",
        );
    }
    if cfg.limits.memory.is_none() {
        return refuse("--memory", "a memory limit");
    }
    if cfg.limits.cpus_milli.is_none() {
        return refuse("--cpus", "a CPU limit");
    }
    Ok(())
}

/// Policy files must be exactly the pinned ones (and production pins every one).
fn check_pins(cfg: &RunConfig) -> Result<(), PlanError> {
    for (file, pin, file_flag, pin_flag) in [
        (
            &cfg.seccomp_profile,
            &cfg.seccomp_profile_sha256,
            "--seccomp-profile",
            "--seccomp-profile-sha256",
        ),
        (
            &cfg.caps_policy,
            &cfg.caps_policy_sha256,
            "--caps-policy",
            "--caps-policy-sha256",
        ),
        (
            &cfg.landlock_policy,
            &cfg.landlock_policy_sha256,
            "--landlock-policy",
            "--landlock-policy-sha256",
        ),
    ] {
        match (file, pin) {
            (Some((_, text)), Some(pin)) => {
                crate::policy::check_pin(pin_flag, text.as_bytes(), pin)?
            }
            (None, Some(_)) => {
                return Err(cfg_err(
                    pin_flag,
                    format!("there is no {file_flag} to check"),
                ))
            }
            (Some(_), None) if cfg.service_mode == ServiceMode::Production => {
                return Err(cfg_err(
                    pin_flag,
                    format!("production mode requires a pin for {file_flag}"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The sandbox's cgroup; a limit that cannot be applied is degraded (agent) or refused.
fn cgroup(d: &mut Draft, id: &str) -> Result<Option<CgroupPlan>, PlanError> {
    let (cfg, facts) = (d.cfg, d.facts);
    // An unprivileged caller who asked for no limit (only the default pids cap) is not
    // warned on every run when its cgroup cannot be made (no delegated parent): the cap is
    // kept where it can be. Asking for a limit (or a strict mode) says when it fails.
    let quiet_rootless = facts.euid != 0
        && !cfg.service_mode.fail_closed()
        && cfg.limits == Limits::default()
        && cfg.cgroup_parent == CgroupParent::default();
    let mut cgroup = CgroupPlan::build(&cfg.limits, &facts.cgroup, &cfg.cgroup_parent, id);
    if let Some(c) = &mut cgroup {
        c.quiet_failure = quiet_rootless;
    }
    match &cgroup {
        None if quiet_rootless => {}
        None => d.enforce.degrade(
            "--pids",
            "no cgroup hierarchy is mounted, so limits cannot be enforced; strict modes refuse to start",
            "resource limits are NOT applied: no cgroup hierarchy is mounted",
        )?,
        Some(c) => {
            for u in &c.unsupported {
                let (flag, msg) = u.split_once(": ").unwrap_or(("--memory", u));
                d.enforce.degrade(
                    flag,
                    format!("{msg}; strict modes refuse to start without it"),
                    format!("limit NOT applied: {u}"),
                )?;
            }
        }
    }
    Ok(cgroup)
}
