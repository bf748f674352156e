//! `nucleus checkpoint` and `nucleus restore`: a running sandbox saved with CRIU and started
//! again from what was saved (docs/checkpoint.md; the recipe and its reasons in
//! docs/checkpoint-design.md). The decisions are nucleus-spec's `checkpoint`, the syscalls
//! nucleus-sys's `checkpoint` and `sandbox::Restore`.

use crate::cli::{CheckpointArgs, RestoreArgs, RunArgs};
use crate::events::Events;
use crate::log::Logger;
use crate::records::{effective, is_paused, lock_and_read, remove_cgroups, resolve, ARGS};
use anyhow::{anyhow, bail, Context, Result};
use nucleus_spec::checkpoint::{self as ck, CheckpointInfo};
use nucleus_spec::config::ConfigError;
use nucleus_spec::state::Status;
use nucleus_spec::Plan;
use nucleus_sys::checkpoint as sys;
use nucleus_sys::process;
use nucleus_sys::store::{now_ms, Store};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// CRIU as given (--criu, NUCLEUS_CRIU) or found, checked against this kernel.
pub(crate) fn criu(given: Option<&Path>) -> Result<PathBuf> {
    let criu = sys::find_criu(given)?;
    let version = sys::criu_version(&criu)?;
    ck::criu_supported(&version, &sys::kernel_release())
        .map_err(|e| ConfigError::new("--criu", e))?;
    Ok(criu)
}

/// The output directory: made 0700, or an existing empty directory made 0700 (it holds the
/// sandbox's memory). Whether it was made.
fn output_dir(p: &Path) -> Result<bool> {
    match fs::DirBuilder::new().mode(0o700).create(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let empty = fs::read_dir(p)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty || fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()) {
                return Err(ConfigError::new(
                    "--output",
                    format!("{}: exists and is not an empty directory", p.display()),
                )
                .into());
            }
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(p, fs::Permissions::from_mode(0o700))
                .map_err(|e| ConfigError::new("--output", format!("{}: {e}", p.display())))?;
            Ok(false)
        }
        Err(e) => Err(ConfigError::new("--output", format!("{}: {e}", p.display())).into()),
    }
}

/// A failed checkpoint's CRIU log, in the sandbox's directory.
const CHECKPOINT_LOG: &str = "checkpoint.log";

/// The last 256 KiB of CRIU's `log`, written to `to` (0600, replacing it; never through a link).
fn keep_tail(log: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    const KEEP: u64 = 256 << 10;
    let mut f = fs::File::open(log)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(KEEP)))?;
    let mut tail = Vec::new();
    f.take(KEEP).read_to_end(&mut tail)?;
    let _ = fs::remove_file(to);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?
        .write_all(&tail)
}

pub(crate) fn checkpoint(store: &Store, a: &CheckpointArgs) -> Result<u8> {
    let s = resolve(store, &a.id)?;
    let status = effective(&s).0;
    if status != Status::Running {
        bail!(
            "{}: is {}: only a running sandbox is checkpointed",
            a.id,
            status.as_str()
        );
    }
    if is_paused(store, &s.id) {
        bail!("{}: is paused: unpause it first", a.id);
    }
    let dir = store.dir(&s.id);
    let plan: Plan = serde_json::from_slice(
        &fs::read(dir.join("plan.json")).with_context(|| format!("{}: its plan", a.id))?,
    )?;
    if let Some(why) = ck::refusal(&plan) {
        bail!("{}: cannot be checkpointed: {why}", a.id);
    }
    let args: serde_json::Value = match fs::read(dir.join(ARGS)) {
        Ok(b) => serde_json::from_slice(&b)?,
        Err(_) => bail!(
            "{}: cannot be checkpointed: only detached sandboxes (run -d) are",
            a.id
        ),
    };
    let criu = criu(a.criu.as_deref())?;
    let init = s
        .init
        .filter(process::alive)
        .ok_or_else(|| anyhow!("{}: its process is gone", a.id))?;
    // Its standard descriptors, as `run -d` gave them: the host's /dev/null and its logs.
    let [out_log, err_log] = crate::monitor::LOG_STREAMS.map(|n| dir.join(n));
    let externals = sys::externals(&[
        (ck::Stdio::Stdin, "/dev/null".into()),
        (ck::Stdio::Stdout, out_log),
        (ck::Stdio::Stderr, err_log),
    ])?;
    let uid_base = sys::uid_base(init.pid)?;
    // Its address slot on each bridge (the runtime that watches it holds them).
    let bridge_slots = ck::bridges(&plan)
        .map(|b| {
            nucleus_sys::net::Claim::held_by(&b.claims_dir, &s.id).ok_or_else(|| {
                anyhow!(
                    "{}: its address on bridge {} is not held (is its runtime gone?)",
                    a.id,
                    b.name
                )
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    let made = output_dir(&a.output)?;
    let out = std::path::absolute(&a.output)?;
    let images = out.join(ck::IMAGES);
    let undo = |e: anyhow::Error| {
        if made {
            let _ = fs::remove_dir_all(&out);
        } else {
            let _ = fs::remove_dir_all(&images);
            let _ = fs::remove_file(out.join(ck::INFO_FILE));
        }
        e
    };
    // (0711: restored tasks open some images through criu's descriptor of it; the directory
    // above, 0700, keeps everyone else out.)
    fs::DirBuilder::new()
        .mode(0o711)
        .create(&images)
        .map_err(|e| undo(e.into()))?;
    // The sandbox ends with the dump: the mark keeps a --restart policy from starting it again.
    let stop_mark = dir.join(crate::monitor::STOP_MARK);
    if !a.leave_running {
        fs::write(&stop_mark, b"").map_err(|e| undo(e.into()))?;
    }
    let argv = ck::dump_argv(
        &criu,
        init.pid,
        &images,
        &externals,
        a.leave_running,
        a.tcp_established,
    );
    let log = images.join(ck::DUMP_LOG);
    if let Err(e) = sys::run_criu(&argv, &log) {
        if !a.leave_running {
            let _ = fs::remove_file(&stop_mark);
        }
        // (On failure CRIU lets the sandbox go on as it was.) Its log says why: its end is
        // kept with the sandbox's record (replaced by the next failure, gone with the
        // sandbox), and DIR is left as it was.
        let kept = dir.join(CHECKPOINT_LOG);
        let mut e = e.to_string();
        if keep_tail(&log, &kept).is_ok() {
            e = e.replace(&log.display().to_string(), &kept.display().to_string());
        }
        let e = undo(anyhow!("{}: not checkpointed: {e}", a.id));
        return Err(e);
    }
    let info = CheckpointInfo {
        version: ck::VERSION,
        id: s.id.clone(),
        name: s.name.clone(),
        plan,
        args,
        dumped_pid: init.pid,
        uid_base,
        externals,
        created_ms: now_ms(),
        protections: s.protections.clone(),
        tcp_established: a.tcp_established,
        bridge_slots,
    };
    let write_info = || -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out.join(ck::INFO_FILE))?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec_pretty(&info)?)?;
        Ok(())
    };
    write_info().map_err(undo)?;
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit(
        "checkpointed",
        &s.id,
        serde_json::json!({ "dir": out, "leave_running": a.leave_running }),
    );
    if !a.leave_running {
        // CRIU killed it: its monitor records the end; then it goes as `rm` removes it (it
        // lives on in the image).
        crate::records::wait_monitor(&s, Duration::from_secs(10));
        // (A --rm sandbox's monitor removed it already.)
        if let Ok((_lock, s)) = lock_and_read(store, &s.id, &a.id) {
            let _ = remove_cgroups(store, &s);
            store.remove(&s.id, s.name.as_deref())?;
            crate::events::audit_removal(store, &s.id, "checkpoint");
        }
    }
    println!("{}", s.id);
    Ok(0)
}

pub(crate) fn restore(root: Option<&Path>, a: &RestoreArgs, log: &Logger, t0: u64) -> Result<u8> {
    let info_path = a.input.join(ck::INFO_FILE);
    let info: CheckpointInfo = serde_json::from_slice(
        &fs::read(&info_path)
            .map_err(|e| ConfigError::new("--input", format!("{}: {e}", info_path.display())))?,
    )
    .map_err(|e| ConfigError::new("--input", format!("{}: {e}", info_path.display())))?;
    if info.version != ck::VERSION {
        return Err(ConfigError::new(
            "--input",
            format!(
                "{}: made by another nucleus (format {}, this one reads {})",
                a.input.display(),
                info.version,
                ck::VERSION
            ),
        )
        .into());
    }
    let criu = criu(a.criu.as_deref())?;
    let store = Store::open(&crate::records::state_root(root)?)?;
    // The saved sandbox still there (saved with --leave-running, or restored already): this one
    // is a copy, with an id, a cgroup and a host id range of its own.
    let copy = store.read(&info.id).is_some();
    if copy
        && a.name
            .as_ref()
            .is_none_or(|n| info.name.as_ref() == Some(n))
    {
        return Err(ConfigError::new(
            "--name",
            format!(
                "{} still exists (saved with --leave-running, or restored already): give the copy a name of its own",
                info.name.as_deref().unwrap_or(&info.id)
            ),
        )
        .into());
    }
    // A bridged sandbox's interfaces come back with the image's addresses, its source's.
    if copy && !info.bridge_slots.is_empty() {
        return Err(ConfigError::new(
            "--name",
            format!(
                "{} still exists and a copy of a bridged sandbox would take its addresses: \
                 restore it once the source is gone",
                info.name.as_deref().unwrap_or(&info.id)
            ),
        )
        .into());
    }
    // What the images hold now (as saved, or as a restore of a copy moved them): read from
    // them, not kept beside them.
    let images = Images::read(&a.input)?;
    let slot = if copy {
        let mut seed = [0u8; 4];
        nucleus_sys::raw::fill_random(&mut seed);
        nucleus_sys::idslot::IdSlot::acquire(u32::from_ne_bytes(seed))?
    } else {
        nucleus_sys::idslot::IdSlot::acquire_base(images.uid_base)?
    };
    let id = if copy {
        crate::run::new_id()
    } else {
        info.id.clone()
    };
    images.retarget(slot.host_base(), &id)?;
    let mut args: RunArgs =
        serde_json::from_value(info.args.clone()).context("decode how the sandbox was made")?;
    args.detach = true;
    if let Some(n) = &a.name {
        nucleus_spec::state::validate_name("--name", n)?;
        args.name = Some(n.clone());
    } else {
        args.name = info.name.clone();
    }
    let cfg = crate::run::config(&args)?;
    let facts = nucleus_sys::probe::detect(
        Path::new("/"),
        cfg.rootfs.as_deref(),
        nucleus_spec::host::Wants::for_config(&cfg),
    );
    let mut plan = info.plan.clone();
    plan.id = id;
    if let Some(c) = plan.cgroup.as_mut() {
        c.leaf = plan.id.clone();
    }
    let restore = nucleus_sys::sandbox::Restore {
        dir: std::path::absolute(&a.input)?,
        criu,
        info,
        state_root: store.root().to_path_buf(),
        slot,
        foreground: !a.detach,
    };
    let events = Events::open(args.events_jsonl.as_deref(), None)?;
    let dir = restore.dir.clone();
    let mut tracer = crate::telemetry::Tracer::from_env(None)?;
    let r = crate::monitor::launch(
        &args,
        (&plan, &facts.cgroup, &cfg.cgroup_parent),
        &store,
        log,
        events,
        false,
        (&mut tracer, t0),
        Some(restore),
    );
    crate::events::audit(&store, "restore", &plan.id, &r);
    if matches!(r, Ok(0)) {
        let mut events = Events::open(args.events_jsonl.as_deref(), None).unwrap_or_default();
        events.emit(
            "restored",
            &plan.id,
            serde_json::json!({ "dir": dir, "copy": copy }),
        );
        if !a.detach {
            return follow_to_end(&store, &plan.id, log);
        }
    }
    r
}

/// `restore` without -d: as a foreground run, the sandbox's output here (its logs followed),
/// INT, TERM, HUP and QUIT passed on to it, its exit status ours, its record removed at the end.
fn follow_to_end(store: &Store, id: &str, log: &Logger) -> Result<u8> {
    let sigs = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];
    nucleus_sys::raw::block_signals(&sigs)?;
    let sfd = nucleus_sys::raw::signalfd(&sigs)?;
    let (root, who) = (store.root().to_path_buf(), id.to_string());
    std::thread::spawn(move || {
        while let Ok(sig) = nucleus_sys::raw::read_signal(std::os::fd::AsFd::as_fd(&sfd)) {
            if let Some(s) = Store::open(&root).ok().and_then(|st| st.read(&who)) {
                let _ = crate::records::signal(&s, sig);
            }
        }
    });
    crate::commands::logs(
        store,
        &crate::cli::LogsArgs {
            follow: true,
            tail: None,
            id: id.to_string(),
        },
    )?;
    let code = store
        .read(id)
        .and_then(|s| s.exit)
        .and_then(|e| e.code)
        .unwrap_or(255)
        .clamp(0, 255) as u8;
    crate::commands::rm_one(store, id, true, log)?;
    Ok(code)
}

/// The images' ids that a copy changes: the user namespace's host range and the sandbox id
/// of the cgroup paths, as the image files say them now.
struct Images {
    dir: PathBuf,
    userns: Vec<String>,
    uid_base: u32,
    id: String,
}

impl Images {
    fn read(dir: &Path) -> Result<Images> {
        let dir = dir.join(ck::IMAGES);
        let bad =
            |p: &Path, e: String| ConfigError::new("--input", format!("{}: {e}", p.display()));
        let mut userns: Vec<String> = fs::read_dir(&dir)
            .map_err(|e| bad(&dir, e.to_string()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("userns-") && n.ends_with(".img"))
            .collect();
        userns.sort();
        let first = dir.join(
            userns
                .first()
                .ok_or_else(|| bad(&dir, "no userns image".into()))?,
        );
        let uid_base = ck::userns_base(&fs::read(&first).map_err(|e| bad(&first, e.to_string()))?)
            .map_err(|e| bad(&first, e))?;
        let cg = dir.join("cgroup.img");
        let id = ck::cgroup_sandbox_id(&fs::read(&cg).map_err(|e| bad(&cg, e.to_string()))?)
            .map_err(|e| bad(&cg, e))?;
        Ok(Images {
            dir,
            userns,
            uid_base,
            id,
        })
    }

    /// Make the images say host id range `base` and sandbox id `id` (a copy's, or the saved
    /// ones again). Each file written whole: another file, then renamed over it.
    fn retarget(&self, base: u32, id: &str) -> Result<()> {
        let rewrite = |name: &str, f: &Rewrite<'_>| -> Result<()> {
            let p = self.dir.join(name);
            let bytes = fs::read(&p).with_context(|| format!("{}", p.display()))?;
            let out = f(&bytes).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            let tmp = self.dir.join(format!(".{name}.new"));
            fs::write(&tmp, out)?;
            fs::rename(&tmp, &p)?;
            Ok(())
        };
        if self.uid_base != base {
            for name in &self.userns {
                rewrite(name, &|b| ck::remap_userns(b, self.uid_base, base))?;
            }
        }
        if self.id != id {
            rewrite("cgroup.img", &|b| ck::rename_in_cgroups(b, &self.id, id))?;
        }
        Ok(())
    }
}

/// A rewrite of one image file's bytes.
type Rewrite<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + 'a;
