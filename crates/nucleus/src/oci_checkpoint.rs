//! runc's `checkpoint` and `restore` on an OCI container (podman's `container checkpoint` /
//! `container restore`, containerd's checkpoint calls): CRIU's images in `--image-path`, the
//! container made again from its bundle. The decisions are nucleus-spec's
//! `oci::checkpoint`; the restore's syscalls nucleus-sys's `sandbox::restore_oci`.
//! docs/checkpoint.md.

use crate::log::Logger;
use crate::oci::{CheckpointArgs, CriuArgs, OciCli, RestoreArgs};
use crate::records::{effective, resolve, state_root};
use anyhow::{anyhow, bail, Context, Result};
use nucleus_spec::config::ConfigError;
use nucleus_spec::oci::checkpoint::{self as ock, CriuOptions, OciCheckpointInfo};
use nucleus_spec::state::{OciRecord, ProcId, State, Status};
use nucleus_sys::store::{self, Store};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// runc's options that nucleus does not do: one line naming the flag.
fn refuse_unsupported(a: &CriuArgs, more: &[(&str, bool)]) -> Result<()> {
    let given = [
        ("--empty-ns", a.empty_ns.is_some()),
        ("--auto-dedup", a.auto_dedup),
        ("--lazy-pages", a.lazy_pages),
    ];
    if let Some((flag, _)) = given.iter().chain(more).find(|(_, on)| *on) {
        return Err(ConfigError::new(
            *flag,
            "is not supported by nucleus (whole images only: no pre-dumps, lazy pages, page \
             servers or empty namespaces)",
        )
        .into());
    }
    let o = options(a);
    o.check()
        .map_err(|e| ConfigError::new("--manage-cgroups-mode", e))?;
    Ok(())
}

fn options(a: &CriuArgs) -> CriuOptions {
    CriuOptions {
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode: a.manage_cgroups_mode.clone(),
        skip_in_flight: false,
        link_remap: false,
    }
}

/// A directory for CRIU (made 0700 with its parents when missing), absolute.
fn directory(flag: &str, p: &Path) -> Result<std::path::PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| ConfigError::new(flag, format!("{}: {e}", p.display())))?;
    Ok(std::path::absolute(p)?)
}

/// `--work-path`, made when missing.
fn work_dir(a: &CriuArgs) -> Result<Option<std::path::PathBuf>> {
    a.work_path
        .as_deref()
        .map(|w| directory("--work-path", w))
        .transpose()
}

pub(crate) fn checkpoint(cli: &OciCli, a: &CheckpointArgs) -> Result<u8> {
    refuse_unsupported(
        &a.criu,
        &[
            ("--pre-dump", a.pre_dump),
            ("--parent-path", a.parent_path.is_some()),
            ("--page-server", a.page_server.is_some()),
            ("--status-fd", a.status_fd.is_some()),
        ],
    )?;
    let store = Store::open(&state_root(cli.root.as_deref())?)?;
    let s = resolve(&store, &a.id)?;
    if s.oci.is_none() {
        bail!(
            "{}: not an OCI container (nucleus checkpoint -o DIR ID saves a sandbox)",
            a.id
        );
    }
    let status = effective(&s).0;
    if status != Status::Running {
        bail!(
            "{}: is {}: only a running container is checkpointed",
            a.id,
            status.as_str()
        );
    }
    let plan: nucleus_spec::Plan = serde_json::from_slice(
        &fs::read(store.dir(&s.id).join("plan.json"))
            .with_context(|| format!("{}: its plan", a.id))?,
    )?;
    if let Some(why) = ock::refusal(&plan) {
        bail!("{}: cannot be checkpointed: {why}", a.id);
    }
    let pid = s
        .init
        .filter(nucleus_sys::process::alive)
        .ok_or_else(|| anyhow!("{}: its process is gone", a.id))?
        .pid;
    // (What the container has decides before whether CRIU can run here: a refusal of the
    // container holds on any host.)
    // Its standard descriptors as its caller gave them (a record of before they were kept
    // reads them from the process).
    let stdio = match s.oci.as_ref().and_then(|o| o.stdio.clone()) {
        Some(d) => d,
        None => nucleus_sys::checkpoint::oci_stdio(pid)?,
    };
    let criu = crate::commands::checkpoint::criu(cli.criu.as_deref())?;
    let netns_ino = if ock::joins_netns(&plan) {
        use std::os::unix::fs::MetadataExt;
        Some(fs::metadata(format!("/proc/{pid}/ns/net"))?.ino())
    } else {
        None
    };
    // (What this checkpoint makes goes again if it fails.)
    let made_images = !a.criu.image_path.exists();
    let images = directory("--image-path", &a.criu.image_path)?;
    let work = work_dir(&a.criu)?;
    let mut o = options(&a.criu);
    o.skip_in_flight = a.tcp_skip_in_flight;
    o.link_remap = a.link_remap;
    // What the restore needs beside the images, written first: once CRIU has dumped (and
    // ended) the container, nothing may fail that the image depends on.
    let info = OciCheckpointInfo {
        version: ock::VERSION,
        id: s.id.clone(),
        stdio: stdio.clone(),
        netns_external: netns_ino.is_some(),
        dumped_pid: pid,
        options: o.clone(),
    };
    let info_path = images.join(ock::INFO_FILE);
    fs::write(&info_path, serde_json::to_vec_pretty(&info)?)?;
    let argv = ock::dump_argv(
        &criu,
        pid,
        (&images, work.as_deref()),
        &stdio,
        (netns_ino, &ock::bind_mounts(&plan.mounts)),
        a.leave_running,
        &o,
    );
    let log = work
        .as_deref()
        .unwrap_or(&images)
        .join(nucleus_spec::checkpoint::DUMP_LOG);
    // (On failure CRIU lets the container go on as it was.)
    if let Err(e) = nucleus_sys::checkpoint::run_criu(&argv, &log) {
        let _ = fs::remove_file(&info_path);
        if made_images && work.is_some() {
            let _ = fs::remove_dir_all(&images);
        }
        return Err(anyhow!("{}: not checkpointed: {e}", a.id));
    }
    if !a.leave_running {
        // CRIU ended it: stopped, for `delete` (as runc leaves it).
        let mut s = s;
        s.status = Status::Stopped;
        store.write(&s)?;
    }
    Ok(0)
}

pub(crate) fn restore(cli: &OciCli, a: &RestoreArgs, log: &Logger) -> Result<u8> {
    refuse_unsupported(&a.criu, &[])?;
    let images = std::path::absolute(&a.criu.image_path)?;
    let info_path = images.join(ock::INFO_FILE);
    let bad = |e: String| ConfigError::new("--image-path", format!("{}: {e}", info_path.display()));
    let info: OciCheckpointInfo =
        serde_json::from_slice(&fs::read(&info_path).map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    if info.version != ock::VERSION {
        return Err(bad(format!(
            "made by another nucleus (format {}, this one reads {})",
            info.version,
            ock::VERSION
        ))
        .into());
    }
    let criu = crate::commands::checkpoint::criu(cli.criu.as_deref())?;
    let work = work_dir(&a.criu)?;
    if !a.detach {
        nucleus_sys::sandbox::block_forwarded()?;
    }
    let crate::oci::FromBundle {
        store,
        bundle,
        parsed,
        plan,
    } = crate::oci::from_bundle(cli, &a.id, a.bundle.as_deref(), false, log)?;
    if let Some(why) = ock::refusal(&plan) {
        bail!("{}: cannot be restored: {why}", a.id);
    }
    // The checkpointed container itself, stopped and not deleted yet (runc's own `checkpoint`
    // then `restore` of one id): it makes way, as `delete` would.
    if let Some(old) = store.read(&a.id) {
        if old.oci.is_some() && effective(&old).0 == Status::Stopped {
            crate::oci::delete(&store, &old, false, log)?;
        }
    }
    let mut record = State::new(&a.id, None, plan.process.argv.clone(), store::now_ms());
    record.oci = Some(OciRecord {
        bundle,
        annotations: parsed.annotations(),
        stdio: crate::oci::callers_stdio(&plan),
    });
    crate::oci::claim(&store, &a.id, &record, &plan)?;
    // The options the image was saved with (--tcp-established...) hold for its restore too.
    let mut o = options(&a.criu);
    o.tcp_established |= info.options.tcp_established;
    o.ext_unix_sk |= info.options.ext_unix_sk;
    o.shell_job |= info.options.shell_job;
    o.file_locks |= info.options.file_locks;
    let restored = nucleus_sys::sandbox::restore_oci(
        &plan,
        &nucleus_sys::sandbox::OciRestore {
            criu: &criu,
            images: &images,
            work: work.as_deref(),
            info: &info,
            options: &o,
        },
    );
    let created = match restored {
        Ok(c) => c,
        Err(e) => {
            let _ = store.remove(&a.id, None);
            return Err(anyhow!("{}: not restored: {e}", a.id));
        }
    };
    let me = ProcId {
        pid: created.pid,
        start: nucleus_sys::process::start_time(created.pid).unwrap_or(0),
    };
    record.status = Status::Running;
    record.init = Some(me);
    record.workload = Some(me);
    record.cgroups = created.cgroups.clone();
    let kept = store
        .write(&record)
        .map_err(anyhow::Error::from)
        .and_then(|()| match &a.started.pid_file {
            Some(p) => crate::oci::write_pid_file(p, created.pid)
                .with_context(|| format!("--pid-file {}", p.display())),
            None => Ok(()),
        });
    if let Err(e) = kept {
        let _ = nucleus_sys::raw::kill(created.pid, libc::SIGKILL);
        let _ = nucleus_sys::raw::waitpid(created.pid, false);
        let _ = crate::oci::delete(&store, &record, true, log);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let code = nucleus_sys::sandbox::foreground(created.pid, None)?;
    let s = store.read(&record.id).unwrap_or(record);
    crate::oci::delete(&store, &s, true, log)?;
    Ok(code.clamp(0, 255) as u8)
}
