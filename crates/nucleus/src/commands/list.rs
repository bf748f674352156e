//! `nucleus list` (runc's `list`): every container and sandbox of the state root with its OCI
//! state.

use crate::cli::{ListArgs, OutputFormat};
use crate::commands::shown;
use crate::records::effective;
use anyhow::Result;
use nucleus_sys::store::Store;

pub(crate) fn list(store: &Store, a: &ListArgs) -> Result<u8> {
    let owner = owner(store);
    let rows: Vec<serde_json::Value> = store
        .list()
        .iter()
        .map(|s| {
            let (st, _) = effective(s);
            let dir = store.dir(&s.id);
            let mut v = s.oci(st, &dir.to_string_lossy());
            v["status"] = shown(store, s, st).into();
            if let Some(o) = &s.oci {
                v["rootfs"] = o
                    .bundle
                    .join("rootfs")
                    .to_string_lossy()
                    .into_owned()
                    .into();
            }
            v["owner"] = owner.clone().into();
            v
        })
        .collect();
    if a.quiet {
        for r in &rows {
            outln!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    match a.format {
        OutputFormat::Json => outln!("{}", serde_json::Value::Array(rows)),
        OutputFormat::Table => {
            outln!(
                "{:<16}  {:<8}  {:<8}  {:<40}  {:<30}  OWNER",
                "ID",
                "PID",
                "STATUS",
                "BUNDLE",
                "CREATED"
            );
            for r in &rows {
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                outln!(
                    "{:<16}  {:<8}  {:<8}  {:<40}  {:<30}  {}",
                    text("id"),
                    r["pid"].to_string(),
                    text("status"),
                    text("bundle"),
                    text("created"),
                    text("owner")
                );
            }
        }
    }
    Ok(0)
}

/// The state root's owner by name (runc's OWNER column), else its uid.
fn owner(store: &Store) -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(store.root()).map_or(0, |m| m.uid());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}
