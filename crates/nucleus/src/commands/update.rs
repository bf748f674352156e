//! `nucleus update`.

use crate::events::Events;
use crate::records::{effective, resolve, settled};
use anyhow::{bail, Context, Result};
use nucleus_spec::cgroup::{flag_of_file, Driver, Limits, Writes};
use nucleus_spec::config::ConfigError;
use nucleus_spec::oci::Update;
use nucleus_spec::state::Status;
use nucleus_spec::Plan;
use nucleus_sys::store::Store;

/// `nucleus update`: write new limits into a running sandbox's cgroup, and into its plan (so
/// `inspect` shows them). Only limits whose controller the sandbox has: on v1 the hierarchies
/// are chosen at start (a sandbox started without --memory has no memory cgroup to change).
pub(crate) fn update(store: &Store, a: &crate::cli::UpdateArgs) -> Result<u8> {
    // Flags are checked before the sandbox is looked up; a resources file is read for the
    // sandbox's cgroup driver.
    let flags = match &a.resources {
        Some(f) => Err(f),
        None => Ok(from_flags(a)?),
    };
    let s = settled(store, resolve(store, &a.id)?);
    if !matches!(effective(&s).0, Status::Running | Status::Created) {
        bail!(
            "{}: is {}; only a running sandbox's limits change",
            a.id,
            effective(&s).0.as_str()
        );
    }
    let dir = store.dir(&s.id);
    let data =
        std::fs::read(dir.join("plan.json")).with_context(|| format!("{}: read its plan", a.id))?;
    let mut plan: Plan = serde_json::from_slice(&data).context("decode the sandbox's plan")?;
    let Some(cp) = plan.cgroup.as_mut() else {
        bail!(
            "{}: has no cgroup (no cgroup hierarchy was usable when it started)",
            a.id
        );
    };
    let u = match flags {
        Ok((limits, given)) => Update {
            limits,
            given,
            extras: Vec::new(),
            check_memory: false,
        },
        Err(f) => from_resources(f, a, cp.driver)?,
    };
    let (l, given) = (&u.limits, &u.given);
    let host_cpus = nucleus_sys::raw::cpu_affinity(0).map_or(0, |c| c.len() as u64);
    l.validate(host_cpus)?;
    // Only the files of the flags given are written.
    // (Memory+swap follows a new --memory too: on v1 it defaults to twice the memory, and
    // must never be below it.)
    let wanted = |f: &str| {
        let flag = flag_of_file(f);
        given.contains(&flag) || (flag == "--memory-swap" && given.contains(&"--memory"))
    };
    // (index of the cgroup directory, file, value, the flag or field that asked for it)
    let mut writes: Vec<(usize, String, String, String)> = Vec::new();
    let dir_of = |c: &str| match cp.driver {
        Driver::V2 => Some(0),
        Driver::V1 => cp.dirs.iter().position(|d| d.hierarchy == c),
    };
    let no_dir = |what: &str, c: &str, flag: &str| -> anyhow::Error {
        ConfigError::new(
            what,
            format!("the sandbox has no {c} cgroup (on cgroup v1 it gets one only when started with {flag})"),
        )
        .into()
    };
    match cp.driver {
        Driver::V2 => {
            for (f, v) in l.v2_writes() {
                if wanted(&f) {
                    writes.push((0, f.clone(), v, flag_of_file(&f).into()));
                }
            }
        }
        Driver::V1 => {
            let memsw = dir_of("memory")
                .and_then(|i| s.cgroups.get(i))
                .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
            for (c, f, v) in l.v1_writes(memsw) {
                if !wanted(&f) {
                    continue;
                }
                let flag = flag_of_file(&f);
                let i = dir_of(c).ok_or_else(|| no_dir(flag, c, flag))?;
                writes.push((i, f, v, flag.into()));
            }
        }
    }
    for e in &u.extras {
        let i = dir_of(e.controller).ok_or_else(|| no_dir(&e.field, e.controller, &e.field))?;
        let leaf = s.cgroups.get(i);
        match &e.writes {
            Writes::All(w) => writes.extend(
                w.iter()
                    .map(|(f, v)| (i, f.clone(), v.clone(), e.field.clone())),
            ),
            Writes::FirstOf(w) => {
                let Some((f, v)) = w
                    .iter()
                    .find(|(f, _)| leaf.is_some_and(|d| d.join(f).exists()))
                else {
                    let files: Vec<&str> = w.iter().map(|(f, _)| f.as_str()).collect();
                    return Err(ConfigError::new(
                        &e.field,
                        format!("this kernel has none of {}", files.join(", ")),
                    )
                    .into());
                };
                writes.push((i, f.clone(), v.clone(), e.field.clone()));
            }
        }
    }
    if u.check_memory {
        check_memory_use(
            l,
            cp.driver,
            dir_of("memory").and_then(|i| s.cgroups.get(i)),
        )?;
    }
    // systemd's driver: the unit's properties first (systemd writes the scope's attributes
    // from them; the files below would otherwise be reverted on its next pass).
    if let Some(scope) = &cp.systemd {
        let props: Vec<_> = nucleus_spec::cgroup::scope_properties(l)
            .into_iter()
            .filter(|(flag, _, _)| given.contains(flag))
            .collect();
        let values: Vec<(&str, nucleus_sys::systemd::Value<'_>)> = props
            .iter()
            .map(|(_, n, v)| (n.as_str(), nucleus_sys::cgroup::value(v)))
            .collect();
        if !values.is_empty() {
            nucleus_sys::systemd::set_properties(&scope.unit, &values)?;
        }
    }
    // Memory and memory+swap constrain each other at every step (v1): what fails is tried
    // again once the others are written.
    let mut pending = writes.clone();
    for round in 0..2 {
        let mut failed = Vec::new();
        for (i, f, v, what) in pending {
            let Some(leaf) = s.cgroups.get(i) else {
                bail!("{}: its cgroup is not known", a.id);
            };
            if let Err(e) = nucleus_sys::cgroup::write(leaf, &f, &v) {
                if round == 1 {
                    return Err(ConfigError::new(&what, format!("{f} = {v}: {e}")).into());
                }
                failed.push((i, f, v, what));
            }
        }
        if failed.is_empty() {
            break;
        }
        pending = failed;
    }
    for (i, f, v, _) in &writes {
        if let Some(d) = cp.dirs.get_mut(*i) {
            match d.writes.iter_mut().find(|(x, _)| x == f) {
                Some(w) => w.1 = v.clone(),
                None => d.writes.push((f.clone(), v.clone())),
            }
        }
    }
    if let Some(c) = l.cpus_milli {
        plan.process.cpu_count = Some(c.div_ceil(1000).max(1) as u32);
    }
    store.write_file(&s.id, "plan.json", &serde_json::to_vec(&plan)?)?;
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit(
        "updated",
        &s.id,
        serde_json::json!({ "files": writes.iter().map(|(_, f, v, _)| (f.clone(), v.clone())).collect::<std::collections::BTreeMap<_, _>>() }),
    );
    Ok(0)
}

/// `memory.checkBeforeUpdate`: a new memory limit below what the sandbox uses now is
/// refused (runc's meaning), not left to the OOM killer.
fn check_memory_use(l: &Limits, driver: Driver, dir: Option<&std::path::PathBuf>) -> Result<()> {
    let (Some(limit), Some(dir)) = (l.memory, dir) else {
        return Ok(());
    };
    let file = match driver {
        Driver::V2 => "memory.current",
        Driver::V1 => "memory.usage_in_bytes",
    };
    let used: u64 = std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .with_context(|| format!("read {file}"))?;
    if used > limit {
        return Err(ConfigError::new(
            "linux.resources.memory.limit",
            format!("{limit} is below the {used} bytes the container uses now (checkBeforeUpdate)"),
        )
        .into());
    }
    Ok(())
}

/// The limits of update's own flags (runc's names among them), and which were given.
fn from_flags(a: &crate::cli::UpdateArgs) -> Result<(Limits, Vec<&'static str>)> {
    use nucleus_spec::cgroup::parse_pids;
    if a.cpu_period.is_some() && a.cpus.is_none() && a.cpu_quota.is_none() {
        return Err(ConfigError::new(
            "--cpu-period",
            "give it with --cpu-quota or --cpus (the period they are enforced over)",
        )
        .into());
    }
    // runc's --cpu-quota (µs per --cpu-period, default 100000) as thousandths of a CPU.
    let quota_milli = match (a.cpu_quota, a.cpu_period.unwrap_or(100_000)) {
        (Some(_), 0) => return Err(ConfigError::new("--cpu-period", "must be above 0").into()),
        (Some(q), p) if q > 0 => Some((q as u64 * 1000 / p).max(1)),
        (Some(_), _) => {
            return Err(ConfigError::new("--cpu-quota", "must be above 0 (µs per period)").into())
        }
        (None, _) => None,
    };
    // runc's --cpu-shares as a weight (its v1-to-v2 conversion).
    let weight = match (&a.cpu_weight, a.cpu_shares) {
        (Some(w), _) => Some(w.clone()),
        (None, Some(s)) => Some((1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142).to_string()),
        (None, None) => None,
    };
    let given: Vec<&'static str> = [
        ("--memory", a.memory.is_some()),
        ("--memory-swap", a.memory_swap.is_some()),
        ("--cpus", a.cpus.is_some() || quota_milli.is_some()),
        ("--cpu-weight", weight.is_some()),
        ("--pids", a.pids.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        return Err(ConfigError::new(
            "--memory",
            "give a limit to change: --memory, --memory-swap, --cpus, --cpu-weight, --pids or --resources",
        )
        .into());
    }
    let mut l = Limits {
        pids: match &a.pids {
            Some(p) => parse_pids(p)?,
            None => None,
        },
        ..crate::run::limits(
            a.memory.as_deref(),
            a.memory_swap.as_deref(),
            a.cpus.as_deref(),
            weight.as_deref(),
        )?
    };
    if quota_milli.is_some() && a.cpus.is_none() {
        l.cpus_milli = quota_milli;
    }
    l.cpu_period_us = a.cpu_period.filter(|p| *p != 100_000);
    Ok((l, given))
}

/// `--resources FILE` (`-`: stdin): a runc update file, a `linux.resources` object.
fn from_resources(
    f: &std::path::Path,
    a: &crate::cli::UpdateArgs,
    driver: Driver,
) -> Result<Update> {
    use std::io::Read;
    if a.memory.is_some()
        || a.memory_swap.is_some()
        || a.cpus.is_some()
        || a.cpu_weight.is_some()
        || a.pids.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_shares.is_some()
    {
        return Err(ConfigError::new(
            "--resources",
            "give the limits either in the file or as flags, not both",
        )
        .into());
    }
    let mut text = String::new();
    let read = if f == std::path::Path::new("-") {
        std::io::stdin().take(1 << 20).read_to_string(&mut text)
    } else {
        std::fs::File::open(f).and_then(|h| h.take(1 << 20).read_to_string(&mut text))
    };
    read.map_err(|e| ConfigError::new("--resources", format!("{}: {e}", f.display())))?;
    let u = nucleus_spec::oci::update_resources(&text, driver)?;
    if u.given.is_empty() && u.extras.is_empty() {
        return Err(ConfigError::new("--resources", "the file changes no limit").into());
    }
    Ok(u)
}
