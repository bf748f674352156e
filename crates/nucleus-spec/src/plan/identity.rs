//! Identity: who the workload is inside (user, groups, home, hostname) and how its ids map
//! to the host.

use super::{cfg_err, p, IdMapPlan, PlanError};
use crate::config::{RunConfig, UserSpec, ID_RANGE};
use crate::host::HostFacts;
use std::path::PathBuf;

pub(super) struct Identity {
    /// Started without root: only the caller's own id is mapped.
    pub rootless: bool,
    pub user: UserSpec,
    pub gid: u32,
    pub group_name: String,
    pub idmap: IdMapPlan,
    pub home: PathBuf,
    pub hostname: String,
}

impl Identity {
    pub(super) fn decide(
        cfg: &RunConfig,
        facts: &HostFacts,
        id: &str,
    ) -> Result<Identity, PlanError> {
        let rootless = facts.euid != 0;
        let user = cfg.user.clone().unwrap_or(UserSpec {
            name: "root".into(),
            uid: 0,
        });
        let gid = cfg.group.as_ref().map(|g| g.gid).unwrap_or(user.uid);
        let group_name = cfg
            .group
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_else(|| user.name.clone());
        if rootless && (user.uid != 0 || gid != 0 || !cfg.additional_groups.is_empty()) {
            return Err(cfg_err(
                "--user",
                "without root only the caller's own id is mapped: the workload runs as uid 0, gid 0 and no extra groups",
            ));
        }
        let idmap = if rootless {
            IdMapPlan::Caller {
                uid: facts.euid,
                gid: facts.egid,
            }
        } else {
            IdMapPlan::PrivateRange { width: ID_RANGE }
        };
        let home = if user.uid == 0 {
            p("/root")
        } else {
            p("/home").join(&user.name)
        };
        let hostname = cfg
            .hostname
            .clone()
            .unwrap_or_else(|| format!("nucleus-{}", &id[..id.len().min(12)]));
        Ok(Identity {
            rootless,
            user,
            gid,
            group_name,
            idmap,
            home,
            hostname,
        })
    }
}
