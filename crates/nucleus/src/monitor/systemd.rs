//! Supervision by systemd: a transient unit runs the monitor.

use crate::cli::{RunArgs, Supervisor};
use anyhow::{bail, Context, Result};
use nucleus_spec::config::ConfigError;
use nucleus_sys::store::Store;
use std::fs::File;
use std::path::Path;

/// Whether systemd runs this machine (sd_booted(3)).
pub(crate) fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The transient unit that will supervise a detached sandbox, or None for a monitor process.
pub(crate) fn supervisor(a: &RunArgs, id: &str) -> Result<Option<String>> {
    let flag = "--supervisor";
    let root = nucleus_sys::security::is_root();
    let usable = || -> Result<(), String> {
        if !systemd_booted() {
            return Err("systemd is not PID 1 here".into());
        }
        if !root {
            return Err("transient units need root (the system manager)".into());
        }
        if a.events_fd.is_some() {
            return Err("--events-fd is a descriptor of the caller's, which a unit cannot inherit (use --events-jsonl)".into());
        }
        if a.console_socket.is_some() {
            return Err("--console-socket is connected once, by the caller's side; use --supervisor monitor".into());
        }
        Ok(())
    };
    match a.supervisor {
        Supervisor::Monitor => Ok(None),
        Supervisor::Auto => Ok(usable().ok().map(|_| format!("nucleus-{id}.service"))),
        Supervisor::Systemd => match usable() {
            Ok(()) => Ok(Some(format!("nucleus-{id}.service"))),
            Err(why) => Err(ConfigError::new(flag, format!("systemd: {why}")).into()),
        },
    }
}

/// Start `nucleus monitor ID` as a transient service and wait for it to connect to the
/// sandbox's `notify` socket; what it says there is read like a forked monitor's pipe.
pub(crate) fn start_unit(store: &Store, id: &str, unit: &str) -> Result<File> {
    let dir = store.dir(id);
    let sock = dir.join("notify");
    let listener = nucleus_sys::raw::unix_listen(&sock)
        .with_context(|| format!("listen on {}", sock.display()))?;
    let exe = std::env::current_exe().context("find the nucleus binary")?;
    let out = std::process::Command::new("systemd-run")
        .arg(format!("--unit={unit}"))
        .arg(format!("--description=nucleus sandbox {id}"))
        .args(["--collect", "--quiet", "--property=KillMode=mixed"])
        // SIGTERM reaches the workload through the monitor; one that ignores it is killed
        // with the unit after this.
        .arg("--property=TimeoutStopSec=10")
        .arg(format!("--setenv=NUCLEUS_ROOT={}", store.root().display()))
        .arg("--")
        .arg(exe)
        .args(["monitor", id])
        .stdin(std::process::Stdio::null())
        .output()
        .context("run systemd-run")?;
    if !out.status.success() {
        bail!(
            "systemd-run: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("failed")
        );
    }
    // The monitor connects once it has read the record; a unit that failed before that never
    // does: stop it rather than leave it behind.
    let ready = nucleus_sys::raw::poll_read(&[std::os::fd::AsRawFd::as_raw_fd(&listener)], 30_000)
        .is_ok_and(|r| r[0] != 0);
    let conn = match ready {
        true => nucleus_sys::raw::unix_accept(std::os::fd::AsFd::as_fd(&listener), 0).ok(),
        false => None,
    };
    let Some(conn) = conn else {
        let _ = std::process::Command::new("systemctl")
            .args(["stop", unit])
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::fs::remove_file(&sock);
        bail!("{unit}: its monitor did not report within 30 s (see `journalctl -u {unit}`)");
    };
    let _ = std::fs::remove_file(&sock);
    Ok(File::from(conn))
}
