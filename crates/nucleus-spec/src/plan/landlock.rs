//! Landlock: read everywhere, execute only where programs live, write only where the sandbox
//! has its own storage; then `--landlock-policy` on top (or alone). The files-in area adds
//! the rule of each mount it makes with the mount ([`Draft::grant`]).

use super::{cfg_err, p, Draft, Identity, NOEXEC_TOP};
use crate::host::EntryKind;
use crate::landlock::FsRight;
use crate::mounts::RootSource;
use crate::policy::{Base, Missing};
use std::path::PathBuf;

/// The rules for the root and the fixed mounts. On the tmpfs root, "where programs live" is
/// said by the mounts: every mount that holds data and no programs is noexec (the root tmpfs
/// with the synthetic /etc files, the /etc entries, /proc, /sys, /dev, /context, provider
/// configs), which also stops mapping its files executable and holds without Landlock. So
/// execute is granted on "/" itself: a rule on the sandbox's own root instead of one on the
/// host's /usr (a host inode shared by every sandbox; that rule cost ~0.2 ms per start,
/// docs/benchmarks.md). On a --rootfs root the image's program trees get it.
pub(super) fn base_rules(d: &mut Draft, root: &RootSource, who: &Identity) {
    let tmpfs_root = *root == RootSource::Tmpfs;
    d.rule(
        p("/"),
        if tmpfs_root {
            FsRight::READ_EXEC
        } else {
            FsRight::READ
        },
    );
    if !tmpfs_root {
        for e in &d.facts.rootfs_entries {
            if NOEXEC_TOP.contains(&e.path.to_string_lossy().as_ref())
                || matches!(e.kind, EntryKind::File)
            {
                continue;
            }
            d.rule(p("/").join(&e.path), FsRight::READ_EXEC);
        }
    }
    d.rule(p("/dev"), FsRight::DEVICE_RW);
    let rw_noexec: Vec<FsRight> = FsRight::READ_WRITE_EXEC
        .iter()
        .copied()
        .filter(|r| *r != FsRight::Execute)
        .collect();
    d.rule(p("/dev/shm"), &rw_noexec);
    d.rule(p("/tmp"), FsRight::READ_WRITE_EXEC);
    d.rule(who.home.clone(), FsRight::READ_WRITE_EXEC);
}

/// What the runtime must hold the kernel to.
pub(super) struct Required {
    /// Paths that must exist (a policy's `missing = "error"`).
    pub paths: Vec<PathBuf>,
    /// See [`crate::landlock::LandlockPlan::min_abi`].
    pub min_abi: u32,
}

/// `--landlock-policy`: its rules on top of nucleus's (or instead, with `base = "none"`); a
/// kernel older than its minimum ABI is degraded or refused.
pub(super) fn user_policy(d: &mut Draft) -> Result<Required, super::PlanError> {
    let strict = d.cfg.service_mode.fail_closed();
    let mut required = Required {
        paths: vec![],
        min_abi: u32::from(strict),
    };
    let Some((path, text)) = &d.cfg.landlock_policy else {
        return Ok(required);
    };
    let flag = "--landlock-policy";
    let abi = d.facts.landlock_abi;
    let pol = crate::policy::parse_landlock(flag, text)
        .map_err(|e| cfg_err(flag, format!("{}: {}", path.display(), e.message)))?;
    if abi < pol.min_abi {
        let what = format!(
            "{}: needs Landlock ABI {} and this kernel has {abi}",
            path.display(),
            pol.min_abi,
        );
        d.enforce.degrade(
            flag,
            format!("{what}; strict modes refuse to start"),
            format!("{flag} {what}: rights newer than ABI {abi} are not enforced"),
        )?;
    }
    if strict {
        required.min_abi = required.min_abi.max(pol.min_abi);
    }
    if pol.base == Base::None {
        d.rules.clear();
    }
    for r in pol.rules {
        if r.missing == Missing::Error {
            required.paths.push(r.path.clone());
        }
        d.rule(r.path, &r.rights);
    }
    Ok(required)
}
