//! Seccomp: the workload's filter (the default, precompiled when used as it is; or a
//! Docker/podman profile), the notifications the runtime serves, and the mini-init's own
//! filter.

use super::{cfg_err, Draft, PlanError, SeccompNotify};
use crate::policy::CapSets;
use crate::seccomp::{self, profile, Filter, SockFilter};

pub(super) struct Filters {
    pub workload: Vec<SockFilter>,
    pub notify: Option<SeccompNotify>,
    /// seccomp(2) flags from the profile.
    pub flags: u32,
    pub init: Vec<SockFilter>,
}

pub(super) fn filters(d: &mut Draft, caps: Option<&CapSets>) -> Result<Filters, PlanError> {
    let cfg = d.cfg;
    let mut flags = 0u32;
    // The default filter as it is, the common case, was compiled ahead of time.
    let precompiled = seccomp::precompiled::default_program().filter(|_| {
        cfg.seccomp_profile.is_none()
            && cfg.seccomp_allow.is_empty()
            && !cfg.seccomp_trace
            && !cfg.seccomp_log_denied
    });
    let (workload, notify) = if let Some(p) = precompiled {
        (p.to_vec(), None)
    } else {
        let filter = match &cfg.seccomp_profile {
            None => seccomp::default::default_filter(&cfg.seccomp_allow)
                .map_err(|e| PlanError::Seccomp(e.to_string()))?,
            Some((path, text)) => {
                if !cfg.seccomp_allow.is_empty() {
                    return Err(cfg_err(
                        "--seccomp-allow",
                        "extends the default filter only; with --seccomp-profile, add the syscall to the profile",
                    ));
                }
                let bad = |e: profile::ProfileError| {
                    cfg_err("--seccomp-profile", format!("{}: {e}", path.display()))
                };
                let mut target = profile::Target::native(d.facts.kernel);
                // Docker/podman rules gated on capabilities follow what --caps-policy keeps.
                target.caps = caps.map_or(0, |c| c.bounding);
                let parsed = profile::parse(text).map_err(bad)?;
                if parsed.listener_path.is_some() {
                    return Err(cfg_err(
                        "--seccomp-profile",
                        format!("{}: listenerPath: a seccomp agent serves OCI containers only (nucleus run serves its own notifications)", path.display()),
                    ));
                }
                let c = profile::compile(&parsed, &target).map_err(bad)?;
                if !c.unknown.is_empty() {
                    let what = format!(
                        "{}: unknown syscall name(s) {} (not a syscall of any architecture nucleus knows)",
                        path.display(),
                        c.unknown.join(", ")
                    );
                    d.enforce.degrade(
                        "--seccomp-profile",
                        format!(
                            "{what}; strict modes refuse a profile they cannot enforce as written"
                        ),
                        format!("--seccomp-profile {what}: rules for them are skipped"),
                    )?;
                }
                flags = c.flags;
                c.filter
            }
        };
        if cfg.seccomp_trace {
            (compile(&seccomp::trace_all())?, Some(SeccompNotify::Trace))
        } else if cfg.seccomp_log_denied {
            (
                compile(&seccomp::notify_denials(&filter))?,
                Some(SeccompNotify::LogDenied {
                    decide: compile(&filter)?,
                }),
            )
        } else {
            (compile(&filter)?, None)
        }
    };
    let init = match seccomp::precompiled::init_program() {
        Some(p) => p.to_vec(),
        None => compile(&seccomp::default::init_filter())?,
    };
    Ok(Filters {
        workload,
        notify,
        flags,
        init,
    })
}

fn compile(f: &Filter) -> Result<Vec<SockFilter>, PlanError> {
    seccomp::compile(f).map_err(|e| PlanError::Seccomp(e.to_string()))
}
