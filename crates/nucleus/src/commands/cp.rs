//! `nucleus cp`: files and directories into and out of a running sandbox (docker cp's rules),
//! or a tar stream with `-`. The sandbox's half runs inside the sandbox (its namespaces and
//! cgroup, as its workload user when copying in, as its root when copying out), the host's
//! in the runtime; between them, a tar stream through a pipe. Links are copied as links on
//! both sides and never followed out of either tree.

use crate::cli::CpArgs;
use crate::records::{effective, resolve, settled, workload_of};
use anyhow::{anyhow, bail, Context, Result};
use nucleus_spec::config::ConfigError;
use nucleus_spec::cp::{landing, DstKind, Side, SrcKind};
use nucleus_spec::state::Status;
use nucleus_spec::Plan;
use nucleus_sys::store::Store;
use std::os::fd::AsFd;
use std::path::Path;

/// A running sandbox to copy to or from.
pub(crate) struct Target {
    pub(crate) plan: Plan,
    pub(crate) pid: i32,
    pub(crate) pidfd: std::os::fd::OwnedFd,
    pub(crate) cgroups: Vec<std::path::PathBuf>,
}

pub(crate) fn target(store: &Store, id: &str) -> Result<Target> {
    let s = settled(store, resolve(store, id)?);
    crate::records::refuse_gvisor(&s, id, "cp, ls")?;
    if effective(&s).0 != Status::Running {
        bail!(
            "{id}: is {}; copying and listing need a running sandbox",
            effective(&s).0.as_str()
        );
    }
    let w = s
        .workload
        .or_else(|| s.init.as_ref().and_then(workload_of))
        .ok_or_else(|| anyhow!("{id}: its workload is not known"))?;
    let data = std::fs::read(store.dir(&s.id).join("plan.json"))
        .with_context(|| format!("{id}: read its plan"))?;
    let plan: Plan = serde_json::from_slice(&data).context("decode the sandbox's plan")?;
    let pidfd =
        nucleus_sys::process::pidfd(&w).ok_or_else(|| anyhow!("{id}: is not running any more"))?;
    Ok(Target {
        plan,
        pid: w.pid,
        pidfd,
        cgroups: s.cgroups,
    })
}

fn src_kind(t: Kind) -> SrcKind {
    match t {
        Kind::Dir => SrcKind::Dir,
        _ => SrcKind::File,
    }
}

/// What a path names, as far as cp's rules care.
enum Kind {
    Dir,
    Other,
}

fn in_sandbox_kind(t: &Target, path: &str, follow: bool) -> Result<Option<Kind>> {
    let k = nucleus_sys::resolve::kind_in_proc_root(t.pid, path, follow)
        .with_context(|| format!("{path} in the sandbox"))?;
    Ok(k.map(|k| if k.is_dir() { Kind::Dir } else { Kind::Other }))
}

fn dst_kind(k: Option<Kind>) -> DstKind {
    match k {
        None => DstKind::Missing,
        Some(Kind::Dir) => DstKind::Dir,
        Some(_) => DstKind::File,
    }
}

/// The sandbox's half: as `who`, or (`as_w`) as the workload under its Landlock rules.
fn half(
    t: &Target,
    who: (u32, u32),
    as_w: bool,
    work: impl FnOnce() -> std::io::Result<()>,
) -> Result<nucleus_sys::join::InSandbox> {
    Ok(if as_w {
        nucleus_sys::join::in_sandbox_as_workload(&t.plan, t.pidfd.as_fd(), &t.cgroups, work)?
    } else {
        nucleus_sys::join::in_sandbox(&t.plan, t.pidfd.as_fd(), &t.cgroups, who, work)?
    })
}

/// `nucleus cp SRC DST`.
pub(crate) fn cp(store: &Store, a: &CpArgs) -> Result<u8> {
    let is_sandbox = |id: &str| resolve(store, id).is_ok();
    let (src, dst) = (
        Side::parse(&a.src, is_sandbox),
        Side::parse(&a.dst, is_sandbox),
    );
    for (side, flag) in [(&src, "SRC"), (&dst, "DST")] {
        if let Side::Sandbox { path, .. } = side {
            if path.split('/').any(|c| c == "..") {
                return Err(ConfigError::new(
                    flag,
                    format!(
                        "{}: a sandbox path without `..` (it could only name the sandbox's own root)",
                        nucleus_spec::config::single_line(path)
                    ),
                )
                .into());
            }
        }
    }
    match (src, dst) {
        (Side::Host(s), Side::Sandbox { id, path }) => {
            into(store, Some(&s), &id, &path, a.as_workload)
        }
        (Side::Stream, Side::Sandbox { id, path }) => into(store, None, &id, &path, a.as_workload),
        (Side::Sandbox { id, path }, Side::Host(d)) => {
            out(store, &id, &path, Some(&d), a.as_workload)
        }
        (Side::Sandbox { id, path }, Side::Stream) => out(store, &id, &path, None, a.as_workload),
        _ => Err(ConfigError::new(
            "SRC",
            "one side is ID:PATH (a running sandbox's), the other a host path or - (a tar stream)",
        )
        .into()),
    }
}

/// Host `src` (None: a tar stream on stdin) into the sandbox's `dst`, as its workload user.
fn into(store: &Store, src: Option<&str>, id: &str, dst: &str, as_w: bool) -> Result<u8> {
    let t = target(store, id)?;
    let dk = dst_kind(in_sandbox_kind(&t, dst, true)?);
    let land = match src {
        Some(s) => {
            let md = std::fs::symlink_metadata(s)
                .map_err(|e| ConfigError::new("SRC", format!("{s}: {e}")))?;
            let k = if md.is_dir() { Kind::Dir } else { Kind::Other };
            landing(s, src_kind(k), dst, dk)?
        }
        None if dk == DstKind::Dir => nucleus_spec::cp::Landing {
            dir: dst.to_string(),
            name: None,
            make_dir: false,
        },
        None => {
            return Err(ConfigError::new(
                "DST",
                format!(
                "{dst}: a tar stream is extracted into a directory of the sandbox; there is none"
            ),
            )
            .into())
        }
    };
    let who = (t.plan.process.uid, t.plan.process.gid);
    let (dir, make) = (land.dir.clone(), land.make_dir);
    let child = match src {
        Some(s) => {
            let (r, w) = nucleus_sys::raw::pipe().context("pipe")?;
            let child = half(&t, who, as_w, move || {
                nucleus_sys::cp::unpack(Path::new(&dir), make, std::fs::File::from(r)).map(drop)
            })?;
            let packed =
                nucleus_sys::cp::pack(Path::new(s), land.name.as_deref(), std::fs::File::from(w));
            let waited = child.wait();
            waited?;
            packed.with_context(|| format!("read {s}"))?;
            return Ok(0);
        }
        None => half(&t, who, as_w, move || {
            nucleus_sys::cp::unpack(Path::new(&dir), make, std::io::stdin()).map(drop)
        })?,
    };
    child.wait()?;
    Ok(0)
}

/// The sandbox's `src` (as its root) to host `dst` (None: a tar stream on stdout).
fn out(store: &Store, id: &str, src: &str, dst: Option<&str>, as_w: bool) -> Result<u8> {
    let t = target(store, id)?;
    let sk = in_sandbox_kind(&t, src, false)?.ok_or_else(|| {
        ConfigError::new("SRC", format!("{src}: no such file or directory in {id}"))
    })?;
    let (src_path, sk) = (src.trim_end_matches("/.").to_string(), src_kind(sk));
    let src_path = if src_path.is_empty() {
        "/".to_string()
    } else {
        src_path
    };
    let Some(dst) = dst else {
        let name = Path::new(&src_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        let child = half(&t, (0, 0), as_w, move || {
            nucleus_sys::cp::pack(Path::new(&src_path), Some(&name), std::io::stdout())
        })?;
        child.wait()?;
        return Ok(0);
    };
    let dk = match std::fs::metadata(dst) {
        Ok(m) if m.is_dir() => DstKind::Dir,
        Ok(_) => DstKind::File,
        Err(_) => DstKind::Missing,
    };
    let land = landing(src, sk, dst, dk)?;
    let name = land.name.clone();
    let (r, w) = nucleus_sys::raw::pipe().context("pipe")?;
    let child = half(&t, (0, 0), as_w, move || {
        nucleus_sys::cp::pack(
            Path::new(&src_path),
            name.as_deref(),
            std::fs::File::from(w),
        )
    })?;
    let unpacked =
        nucleus_sys::cp::unpack(Path::new(&land.dir), land.make_dir, std::fs::File::from(r));
    child.wait()?;
    unpacked.with_context(|| format!("write into {}", land.dir))?;
    Ok(0)
}
