//! `nucleus ls ID:PATH`: a directory of a running sandbox, listed inside it (its namespaces
//! and cgroup, as its root, like `cp`'s copy out) so that no link is ever resolved on the
//! host; the entries come back through a pipe as JSON lines.

use crate::cli::LsArgs;
use crate::commands::cp::target;
use anyhow::{Context, Result};
use nucleus_spec::config::{single_line, ConfigError};
use nucleus_spec::cp::Side;
use nucleus_sys::store::Store;
use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::Path;

pub(crate) fn ls(store: &Store, a: &LsArgs) -> Result<u8> {
    let is_sandbox = |id: &str| crate::records::resolve(store, id).is_ok();
    let Side::Sandbox { id, path } = Side::parse(&a.target, is_sandbox) else {
        return Err(ConfigError::new(
            "TARGET",
            format!(
                "{}: ID:PATH, a running sandbox's path",
                single_line(&a.target)
            ),
        )
        .into());
    };
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return Err(ConfigError::new(
            "TARGET",
            format!("{}: an absolute path without `..`", single_line(&path)),
        )
        .into());
    }
    let t = target(store, &id)?;
    let (r, w) = nucleus_sys::raw::pipe().context("pipe")?;
    let max = a.max;
    let work = move || nucleus_sys::cp::list(Path::new(&path), max, std::fs::File::from(w));
    let child = if a.as_workload {
        nucleus_sys::join::in_sandbox_as_workload(&t.plan, t.pidfd.as_fd(), &t.cgroups, work)?
    } else {
        nucleus_sys::join::in_sandbox(&t.plan, t.pidfd.as_fd(), &t.cgroups, (0, 0), work)?
    };
    // Printed as it comes (a long listing is not held here).
    let mut failed = None;
    for l in BufReader::new(std::fs::File::from(r)).lines() {
        let l = match l {
            Ok(l) => l,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        if a.json {
            outln!("{l}");
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&l).context("decode the listing")?;
        if v["truncated"] == true {
            outln!("(cut at {max} entries)");
            continue;
        }
        let kind = match v["type"].as_str() {
            Some("dir") => 'd',
            Some("symlink") => 'l',
            Some("file") => '-',
            _ => '?',
        };
        let mode = u32::from_str_radix(v["mode"].as_str().unwrap_or("0"), 8).unwrap_or(0);
        let rwx: String = (0..9)
            .map(|i| match mode & (0o400 >> i) {
                0 => '-',
                _ => ['r', 'w', 'x'][i % 3],
            })
            .collect();
        let mut line = format!(
            "{kind}{rwx} {:>5} {:>5} {:>12} {} {}",
            v["uid"],
            v["gid"],
            v["size"],
            nucleus_spec::state::rfc3339(v["mtime"].as_u64().unwrap_or(0) * 1000),
            single_line(v["name"].as_str().unwrap_or("")),
        );
        if let Some(t) = v["target"].as_str() {
            line.push_str(&format!(" -> {}", single_line(t)));
        }
        outln!("{line}");
    }
    child.wait()?;
    if let Some(e) = failed {
        return Err(e).context("read the listing");
    }
    Ok(0)
}
