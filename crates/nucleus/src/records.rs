//! Sandbox records in the state store: finding one by reference, its effective status,
//! signalling it, and what goes with it when it is removed.

use crate::log::Logger;
use anyhow::{anyhow, bail, Context, Result};
use nucleus_spec::state::{self, ExitInfo, ProcId, State, Status};
use nucleus_sys::process;
use nucleus_sys::store::{self, Store};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The state root: `--root`, else /run/nucleus for root, else $XDG_RUNTIME_DIR/nucleus.
pub(crate) fn state_root(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(r) = flag {
        return Ok(r.into());
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty());
    // Root of the host: /run/nucleus. uid 0 of a user namespace (rootless podman calls its
    // runtime in one) keeps its state under its user's runtime directory, as runc and crun.
    if nucleus_sys::security::is_root()
        && (xdg.is_none() || !nucleus_sys::security::in_user_namespace())
    {
        return Ok("/run/nucleus".into());
    }
    match xdg {
        Some(x) if !x.is_empty() => Ok(Path::new(&x).join("nucleus")),
        _ => bail!("--root: not given, and XDG_RUNTIME_DIR is not set (where should state go?)"),
    }
}

/// Resolve a reference (name, id or unique id prefix) among the store's sandboxes.
pub(crate) fn resolve(store: &Store, q: &str) -> Result<State> {
    let all = store.list();
    let entries: Vec<(String, Option<String>)> =
        all.iter().map(|s| (s.id.clone(), s.name.clone())).collect();
    let id = state::resolve(q, &entries).map_err(anyhow::Error::new)?;
    all.into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| anyhow!("{q}: no such sandbox"))
}

/// The sandbox's directory lock and its record re-read under it (another `rm`, `restart` or
/// `pause` may have changed or removed it meanwhile); `q` names it in the error.
pub(crate) fn lock_and_read(store: &Store, id: &str, q: &str) -> Result<(store::Lock, State)> {
    let gone = || anyhow!("{q}: no such sandbox (see `nucleus ps -a`)");
    let lock = store.lock(id).map_err(|_| gone())?;
    let s = store.read(id).ok_or_else(gone)?;
    Ok((lock, s))
}

pub(crate) fn monitor_alive(s: &State) -> bool {
    s.monitor.as_ref().is_some_and(process::alive)
}

pub(crate) fn effective(s: &State) -> (Status, Option<ExitInfo>) {
    if s.oci.is_some() {
        // No monitor: the container's process itself (its exit status went to its parent,
        // the OCI caller).
        let alive = s.init.as_ref().is_some_and(process::alive);
        return match (s.status, alive) {
            (Status::Creating, _) => (Status::Creating, None),
            (st, true) => (st, None),
            (_, false) => (Status::Stopped, s.exit.clone()),
        };
    }
    s.effective(monitor_alive(s))
}

/// Wait while the sandbox is still being set up (its pids are not known yet).
pub(crate) fn settled(store: &Store, mut s: State) -> State {
    let deadline = Instant::now() + Duration::from_secs(30);
    while effective(&s).0 == Status::Creating && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        match store.read(&s.id) {
            Some(n) => s = n,
            None => break,
        }
    }
    s
}

/// Wait for the monitor to exit (it has then written the final record); false on timeout.
pub(crate) fn wait_monitor(s: &State, timeout: Duration) -> bool {
    let Some(m) = &s.monitor else { return true };
    match process::pidfd(m) {
        Some(fd) => process::wait_exit(&fd, timeout),
        None => true,
    }
}

/// Whether the sandbox runs on gVisor (its init is ginit, its workload inside gVisor's kernel).
pub(crate) fn is_gvisor(s: &State) -> bool {
    s.protections.as_ref().is_some_and(|p| p.gvisor.is_some())
}

/// Verbs that reach into a sandbox's files from the host (`cp`, `ls`) do not reach a gVisor
/// sandbox's: they are in gVisor's kernel (its /tmp is the sentry's memory), and its init's
/// root is the host's.
pub(crate) fn refuse_gvisor(s: &State, q: &str, verb: &str) -> Result<()> {
    if is_gvisor(s) {
        bail!("{q}: runs on gVisor (--runtime gvisor): `{verb}` does not reach into it");
    }
    Ok(())
}

/// Send `sig` to the sandbox: SIGKILL to its init (the whole pid namespace dies), other
/// signals to the workload (a gVisor sandbox's init relays them to it). False if there was
/// nothing to signal.
pub(crate) fn signal(s: &State, sig: i32) -> Result<bool> {
    let target = if sig == libc::SIGKILL || is_gvisor(s) {
        s.init
    } else {
        s.workload
            .or_else(|| s.init.as_ref().and_then(workload_of))
            .or(s.init)
    };
    let Some(p) = target else { return Ok(false) };
    match process::pidfd(&p) {
        Some(fd) => {
            nucleus_sys::raw::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), sig)
                .with_context(|| format!("signal {}", s.id))?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The processes of a sandbox or container: its cgroup's (each hierarchy's leaf holds them
/// all), else its first process alone.
pub(crate) fn procs(s: &State) -> Vec<i32> {
    for d in &s.cgroups {
        if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
            return t
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
        }
    }
    s.init
        .iter()
        .filter(|p| process::alive(p))
        .map(|p| p.pid)
        .collect()
}

pub(crate) fn workload_of(init: &ProcId) -> Option<ProcId> {
    let pid = nucleus_sys::raw::first_child(init.pid)?;
    Some(ProcId {
        pid,
        start: process::start_time(pid)?,
    })
}

/// A verb over several sandboxes goes through the whole list: each failure is one line, and
/// any failure makes the exit status 125.
pub(crate) fn each(
    ids: &[String],
    log: &Logger,
    mut f: impl FnMut(&str) -> Result<()>,
) -> Result<u8> {
    let mut failed = false;
    for q in ids {
        if let Err(e) = f(q) {
            log.error_of(crate::error_kind(&e), &crate::one_line(&e));
            failed = true;
        }
    }
    Ok(if failed { crate::EXIT_NUCLEUS } else { 0 })
}

/// What a sandbox that lost its monitor (kill -9) left: its cgroups (empty), its address
/// claims and slirp's API socket. (A default parent stays for the next run: `nucleus gc`.)
/// (Its veth went with its network namespace, its NAT table with the monitor's socket.)
///
/// An error names the first cgroup that would not go (still busy after the retries of
/// `cgroup::remove_leaf`); the rest are removed all the same.
pub(crate) fn remove_cgroups(store: &Store, s: &State) -> Result<()> {
    remove_freezer(store, &s.id);
    let net = store.root().join("net");
    nucleus_sys::net::Claim::release_all(&net, &s.id);
    let _ = std::fs::remove_file(net.join(format!("slirp-{}.sock", &s.id[..s.id.len().min(12)])));
    // (The parents stay: a default one is shared and kept, docs/cgroups.md.)
    let mut first = Ok(());
    for c in &s.cgroups {
        if let Err(e) = nucleus_sys::cgroup::remove_leaf(c) {
            if first.is_ok() {
                first = Err(anyhow::Error::new(e).context(format!("{}: remove its cgroup", s.id)));
            }
        }
    }
    first
}

/// Remove a record whose runtime is gone that was to go at exit (a foreground run, `--rm`),
/// or that never got past `creating` (its launcher was killed before the monitor took over:
/// a half-made sandbox, like a staging directory; it may hold a name it never claimed).
/// Under the sandbox's lock, re-read: a monitor's first record write takes the same lock, so
/// a record it has just made its own is never taken from under it.
pub(crate) fn collect_dead(store: &Store, s: &State, by: &str) -> bool {
    let abandoned =
        |s: &State| !monitor_alive(s) && (s.auto_remove || s.status == Status::Creating);
    if !abandoned(s) {
        return false;
    }
    let Ok(_lock) = store.lock(&s.id) else {
        return false;
    };
    match store.read(&s.id) {
        Some(s) if abandoned(&s) => {
            let _ = remove_cgroups(store, &s);
            let gone = store.remove(&s.id, s.name.as_deref()).is_ok();
            if gone {
                crate::events::audit_removal(store, &s.id, by);
            }
            gone
        }
        _ => false,
    }
}

/// A name held by such a record is free: collect that record before claiming the name (a
/// foreground `run --name X` killed with SIGKILL no longer keeps X until `rm`).
pub(crate) fn free_stale_name(store: &Store, name: &str) {
    let link = store.root().join("names").join(name);
    let Ok(owner) = std::fs::read_link(&link) else {
        return;
    };
    if let Some(s) = store.read(&owner.to_string_lossy()) {
        collect_dead(store, &s, "stale name");
    }
}

/// Records of foreground runs (and `--rm` ones) whose runtime died (kill -9): they were to be
/// removed at exit.
pub(crate) fn gc_records(store: &Store) -> Vec<String> {
    // Directories whose maker died while filling them, and published ones left without a
    // record.
    let mut out = store.remove_abandoned();
    out.extend(store.remove_recordless());
    for id in &out {
        crate::events::audit_removal(store, id, "gc");
    }
    for s in store.list() {
        if collect_dead(store, &s, "gc") {
            out.push(s.id);
        }
    }
    out
}

/// The CPU time of the command `exec` ran (and what it reaped), added to the sandbox's record:
/// on cgroup v1 nothing else counts it once it is gone (it was reaped here, outside the
/// sandbox). One line per exec, appended.
pub(crate) fn record_exec_cpu(store: &Store, id: &str) {
    let usec = nucleus_sys::raw::children_cpu_usec();
    if usec == 0 {
        return;
    }
    if let Ok(mut f) = store::open_append(&store.dir(id).join("exec-cpu")) {
        let _ = std::io::Write::write_all(&mut f, format!("{usec}\n").as_bytes());
    }
}

/// The CPU time of every finished exec of the sandbox (see [`record_exec_cpu`]).
pub(crate) fn exec_cpu_usec(store: &Store, id: &str) -> u64 {
    std::fs::read_to_string(store.dir(id).join("exec-cpu"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// How a detached sandbox was made (its `run` flags, as JSON), for `restart`.
pub(crate) const ARGS: &str = "args.json";

/// The marker of a paused sandbox in its record's directory (the monitor owns state.json).
pub(crate) const PAUSED: &str = "paused";

/// The v1 freezer leaf a pause made (removed with the sandbox).
pub(crate) const FREEZER: &str = "freezer";

pub(crate) fn is_paused(store: &Store, id: &str) -> bool {
    store.dir(id).join(PAUSED).exists()
}

/// The v1 freezer leaf a pause of the sandbox made, if any.
pub(crate) fn freezer_of(store: &Store, id: &str) -> Option<PathBuf> {
    freezer_in(&store.dir(id))
}

/// The v1 freezer leaf named in a sandbox's directory `dir` (published or retired).
/// (Records written before session 23 have a second line, whether to remove the shared parent
/// too: the parent is kept now, see docs/cgroups.md.)
pub(crate) fn freezer_in(dir: &std::path::Path) -> Option<PathBuf> {
    let t = std::fs::read_to_string(dir.join(FREEZER)).ok()?;
    t.lines().next().map(PathBuf::from)
}

/// Remove the v1 freezer leaf a pause made, if any.
pub(crate) fn remove_freezer(store: &Store, id: &str) {
    if let Some(f) = freezer_of(store, id) {
        let _ = nucleus_sys::cgroup::remove_leaf(&f);
    }
}
