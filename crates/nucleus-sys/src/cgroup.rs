//! The cgroup stage: create a sandbox's cgroup from a [`CgroupPlan`], let the sandbox join it,
//! read its usage, and remove it. One code path for both drivers; they differ only in the plan
//! (one directory on v2, one per controller on v1) and in how the sandbox joins (clone3
//! CLONE_INTO_CGROUP on v2; on v1 the sandbox writes itself to each `tasks` file the runtime
//! opened, before it unshares its cgroup namespace).
//!
//! Liveness: while a run holds its cgroup it also holds the abstract socket
//! `@nucleus/cgroup/<leaf>`; a leaf whose name is free belongs to a runtime that died
//! (`kill -9`), and [`gc`] removes it. Other live sandboxes are never touched.

use crate::error::{Context, Result, SysError};
use crate::idslot::hold_name;
use nucleus_spec::cgroup::{CgroupDir, CgroupPlan, Driver};

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A live sandbox cgroup. Dropping it removes it.
pub struct Cgroup {
    driver: Driver,
    /// (hierarchy, leaf directory).
    leaves: Vec<(String, PathBuf)>,
    /// Parents to remove when they empty: made by this run, and not the shared default (which
    /// is kept for the next run; see [`remove_empty_defaults`]).
    parents: Vec<PathBuf>,
    /// v2: the leaf directory, for CLONE_INTO_CGROUP.
    dir_fd: Option<OwnedFd>,
    _token: Option<OwnedFd>,
    /// systemd's driver: the process that holds the new scope until the container is in it.
    placeholder: Option<libc::pid_t>,
    /// Limits that could not be written (agent mode goes on without them).
    pub failed: Vec<String>,
}

pub use nucleus_spec::cgroup::Usage;

fn token_name(leaf: &str) -> String {
    format!("nucleus/cgroup/{leaf}")
}

/// Move the calling process (single-threaded) into the cgroup directory `dir` of either
/// driver: through `tasks` on v1 (see [`Cgroup::self_join_files`]), `cgroup.procs` on v2,
/// which has no `tasks` file. For `nucleus exec`, which knows the sandbox's cgroup paths only.
pub fn join_self_at(dir: &Path) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).open(dir.join("tasks")) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::write(dir.join("cgroup.procs"), "0"),
        f => join_self(&[f?]),
    }
}

/// Move the calling thread (single-threaded: a fresh clone) into the cgroups whose `tasks`
/// files the runtime opened ([`Cgroup::self_join_files`]).
pub fn join_self(files: &[fs::File]) -> io::Result<()> {
    use std::io::Write;
    for mut f in files {
        f.write_all(b"0")?;
    }
    Ok(())
}

/// Write `value` to an existing cgroup file (never created: a file the kernel has not is
/// ENOENT, where a create on cgroupfs would be EACCES). Also `update`'s writes.
pub fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        // (The unit tests' tempdir stands in for cgroupfs: there the files appear as the
        // kernel would have them.)
        .create(cfg!(test))
        .truncate(cfg!(test))
        .open(dir.join(file))?
        .write_all(value.as_bytes())
}

/// Write the first of `alternatives` whose file `dir` has. Err: the failed write, or that
/// none of the files is there.
fn write_first_of(
    dir: &Path,
    alternatives: &[(String, String)],
) -> std::result::Result<(), String> {
    for (file, value) in alternatives {
        match write(dir, file, value) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{file}={value}: {e}")),
            Ok(()) => return Ok(()),
        }
    }
    let files: Vec<&str> = alternatives.iter().map(|(f, _)| f.as_str()).collect();
    Err(format!("this kernel has none of {}", files.join(", ")))
}

/// Enable `want` controllers in `cgroup.subtree_control` of every directory from the hierarchy
/// root down to `parent` (only those each level offers, only when missing).
fn enable_down_to(mount: &Path, parent: &Path, want: &[String]) -> Result<()> {
    if want.is_empty() {
        return Ok(());
    }
    // Below the root, the levels above `parent` usually pass the controllers down already (the
    // caller's cgroup, a sibling of the default parent, offers them): one write to `parent` is
    // all it takes. At the root's child, or when that write fails, walk from the root and
    // enable what each level lacks.
    if parent.parent().is_some_and(|pp| pp != mount) {
        let all: Vec<String> = want.iter().map(|c| format!("+{c}")).collect();
        if write(parent, "cgroup.subtree_control", &all.join(" ")).is_ok() {
            return Ok(());
        }
    }
    let rel = parent.strip_prefix(mount).unwrap_or(Path::new(""));
    let mut dir = mount.to_path_buf();
    let mut chain = vec![dir.clone()];
    for c in rel.components() {
        dir.push(c);
        chain.push(dir.clone());
    }
    for d in chain {
        let offered = crate::raw::read_proc(d.join("cgroup.controllers")).unwrap_or_default();
        let enabled = crate::raw::read_proc(d.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = want
            .iter()
            .filter(|c| offered.split_whitespace().any(|o| o == c.as_str()))
            .filter(|c| !enabled.split_whitespace().any(|e| e == c.as_str()))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            write(&d, "cgroup.subtree_control", &missing.join(" "))
                .ctx("enable controllers in", d.display())?;
        }
    }
    Ok(())
}

/// A scope property's value as the D-Bus call carries it.
pub fn value(v: &nucleus_spec::cgroup::ScopeValue) -> crate::systemd::Value<'_> {
    match v {
        nucleus_spec::cgroup::ScopeValue::U64(n) => crate::systemd::Value::U64(*n),
        nucleus_spec::cgroup::ScopeValue::Bytes(b) => crate::systemd::Value::Bytes(b),
    }
}

/// systemd's driver: ask systemd for the transient scope, with a placeholder process in it
/// (a scope cannot start empty), and wait until the placeholder is in the scope's cgroup.
/// Returns the placeholder, which goes once the container is in the scope, and the scope's
/// cgroup path (v2's, from the placeholder's /proc/PID/cgroup).
fn start_scope(scope: &nucleus_spec::cgroup::SystemdScope) -> Result<(libc::pid_t, String)> {
    use crate::systemd::Value;
    let pid = crate::raw::fork_placeholder().ctx("fork", "a placeholder for the scope")?;
    let end = |e| {
        let _ = crate::raw::kill(pid, libc::SIGKILL);
        let _ = crate::raw::waitpid(pid, false);
        e
    };
    let pids = [pid as u32];
    let description = format!("nucleus container {}", scope.unit);
    let mut props = vec![
        ("Description", Value::Str(&description)),
        ("Slice", Value::Str(&scope.slice)),
        ("PIDs", Value::Pids(&pids)),
        ("Delegate", Value::Bool(true)),
        ("DefaultDependencies", Value::Bool(false)),
        ("MemoryAccounting", Value::Bool(true)),
        ("CPUAccounting", Value::Bool(true)),
        ("TasksAccounting", Value::Bool(true)),
    ];
    props.extend(scope.properties.iter().map(|(n, v)| (n.as_str(), value(v))));
    crate::systemd::start_unit(&scope.unit, &props).map_err(end)?;
    // The job moves it; on an idle manager within a millisecond or two.
    let want = format!("/{}", scope.unit);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = crate::raw::read_proc(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if let Some(l) = now.lines().find(|l| l.trim_end().ends_with(&want)) {
            let path = l.splitn(3, ':').nth(2).unwrap_or("").trim_end().to_string();
            return Ok((pid, path));
        }
        if Instant::now() > deadline {
            return Err(end(crate::error::other(
                "systemd",
                format!("{} did not start within 5 s", scope.unit),
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A new v1 cpuset directory has no CPUs and no memory nodes, and takes no task (nor a
/// narrower list) until it has: each one from the hierarchy root down to `leaf` that is empty
/// gets its parent's (as runc does), before the bundle's own list is written to the leaf.
fn fill_cpuset(mount: &Path, leaf: &Path) -> io::Result<()> {
    let rel = leaf.strip_prefix(mount).unwrap_or(Path::new(""));
    let mut dir = mount.to_path_buf();
    for c in rel.components() {
        let parent = dir.clone();
        dir.push(c);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = crate::raw::read_proc(dir.join(f))?;
            if mine.trim().is_empty() {
                let theirs = crate::raw::read_proc(parent.join(f))?;
                write(&dir, f, theirs.trim())?;
            }
        }
    }
    Ok(())
}

/// Make `parent` (and what it lacks above it, up to the hierarchy root).
fn make_parent(parent: &Path) -> io::Result<bool> {
    crate::raw::mkdir_p(parent, 0o755)
}

/// Create one leaf under the first usable parent. Returns (leaf, parent-if-removable): a
/// parent this run made, unless it is the `shared` default, which is kept.
fn create_dir(
    dir: &CgroupDir,
    leaf: &str,
    v2: bool,
    shared: bool,
) -> Result<(PathBuf, Option<PathBuf>)> {
    let mut last: Option<SysError> = None;
    for parent in &dir.parents {
        // v1: the parent is there but on a host's first run (it is kept), so the leaf's mkdir
        // comes first and the parent is made only when that says it is missing. (v2 enables
        // the parent's controllers every run, so it goes through the parent anyway.)
        let mut make = v2;
        // `nucleus gc` may remove an empty default parent between our mkdirs: retry.
        for _ in 0..5 {
            let made = match make.then(|| make_parent(parent)) {
                None => false,
                Some(Ok(m)) => {
                    // Searchable whatever the caller's umask: a sandbox mounting its cgroup2
                    // (its root a mapped uid) walks from the hierarchy's root down to its leaf.
                    if m {
                        let _ = fs::set_permissions(parent, fs::Permissions::from_mode(0o755));
                    }
                    m
                }
                Some(Err(e)) => {
                    last = Some(SysError {
                        op: "create cgroup",
                        what: parent.display().to_string(),
                        source: e,
                    });
                    break;
                }
            };
            if v2 {
                if let Err(e) = enable_down_to(&dir.mount, parent, &dir.enable) {
                    last = Some(e);
                    if made {
                        let _ = fs::remove_dir(parent);
                    }
                    break;
                }
            }
            let path = parent.join(leaf);
            match fs::create_dir(&path) {
                Ok(()) => {
                    // Readable by the sandbox, whose root is a mapped uid (it sees its cgroup at
                    // /sys/fs/cgroup), whatever the caller's umask.
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o755));
                    // A parent the user named goes with the run that made it; the shared
                    // default stays for the next run (`nucleus gc` removes it when empty).
                    let removable = (made && !shared).then(|| parent.clone());
                    return Ok((path, removable));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => make = true,
                Err(e) => {
                    last = Some(SysError {
                        op: "create cgroup",
                        what: path.display().to_string(),
                        source: e,
                    });
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| crate::error::other("create cgroup", "no parent to try")))
}

impl Cgroup {
    /// Create the sandbox's cgroup(s) and write the limits. On error nothing is left behind.
    pub fn create(plan: &CgroupPlan) -> Result<Cgroup> {
        let token = hold_name(&token_name(&plan.leaf)).ctx("hold cgroup name", &plan.leaf)?;
        let mut cg = Cgroup {
            driver: plan.driver,
            leaves: Vec::new(),
            parents: Vec::new(),
            dir_fd: None,
            _token: Some(token),
            placeholder: None,
            failed: Vec::new(),
        };
        if let Some(scope) = &plan.systemd {
            let (pid, at) = start_scope(scope)?;
            cg.placeholder = Some(pid);
            // The scope must be where the plan put its leaf (the slice's path), or the
            // container would not be in it.
            let planned = plan.dirs.first().and_then(|d| {
                d.parents
                    .first()
                    .map(|p| (d.mount.clone(), p.join(&plan.leaf)))
            });
            if let Some((mount, leaf)) = planned {
                if plan.driver == Driver::V2 && mount.join(at.trim_start_matches('/')) != leaf {
                    return Err(crate::error::other(
                        "systemd",
                        format!("{} is at {at}, not {}", scope.unit, leaf.display()),
                    ));
                }
            }
        }
        let v2 = plan.driver == Driver::V2;
        for d in &plan.dirs {
            // (systemd made the scope's directory in the hierarchies it drives.)
            let made = plan
                .systemd
                .as_ref()
                .and_then(|_| d.parents.first().map(|p| p.join(&plan.leaf)))
                .filter(|p| p.is_dir());
            let (leaf, parent) = match made {
                Some(p) => (p, None),
                None => create_dir(d, &plan.leaf, v2, plan.remove_empty_parents)?,
            };
            cg.leaves.push((d.hierarchy.clone(), leaf.clone()));
            cg.parents.extend(parent);
            if !v2 && d.hierarchy == "cpuset" {
                fill_cpuset(&d.mount, &leaf).ctx("cpuset", leaf.display())?;
            }
            for (file, value) in &d.writes {
                let mut r = write(&leaf, file, value);
                // v2: `nucleus gc` and another run may have removed and re-created the shared
                // parent between our enabling its controllers and our mkdir, so the leaf lacks
                // the controller's files. Enable again and retry once.
                if v2 && matches!(&r, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                    if let Some(p) = leaf.parent() {
                        let _ = enable_down_to(&d.mount, p, &d.enable);
                        r = write(&leaf, file, value);
                    }
                }
                if let Err(e) = r {
                    cg.failed.push(format!("{file}={value}: {e}"));
                }
            }
            for alternatives in &d.first_of {
                if let Err(e) = write_first_of(&leaf, alternatives) {
                    cg.failed.push(e);
                }
            }
            for (file, value) in &d.optional {
                let _ = write(&leaf, file, value);
            }
        }
        if v2 {
            if let Some((_, leaf)) = cg.leaves.first() {
                let f = fs::File::open(leaf).ctx("open cgroup", leaf.display())?;
                // The device rules, before anything runs in it (an error removes the leaf).
                if !plan.device_program.is_empty() {
                    crate::raw::attach_device_program(f.as_fd(), &plan.device_program)
                        .ctx("device rules", leaf.display())?;
                }
                cg.dir_fd = Some(OwnedFd::from(f));
            }
        }
        Ok(cg)
    }

    /// What the sandbox is shown at /sys/fs/cgroup (`MountOp::Cgroup`).
    /// On v1 each leaf is cloned here as a detached read-only mount the sandbox attaches (it
    /// could neither bind a mount of the host's namespace nor, as a mapped uid, walk the
    /// parents); None when that cannot be done (an unprivileged caller): nothing is shown.
    pub fn view(&self) -> Option<crate::mount::CgroupView> {
        Some(match self.driver {
            Driver::V2 => crate::mount::CgroupView::V2,
            Driver::V1 => crate::mount::CgroupView::V1(
                self.leaves
                    .iter()
                    .map(|(h, leaf)| {
                        let m = crate::raw::open_tree_clone(None, leaf, false).ok()?;
                        crate::raw::mount_setattr(
                            Some(m.as_fd()),
                            Path::new(""),
                            false,
                            crate::mount::bind_attrs(true, true),
                            0,
                            None,
                        )
                        .ok()?;
                        Some((h.clone(), m))
                    })
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// The directory fd for clone3 CLONE_INTO_CGROUP (v2 only).
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        self.dir_fd.as_ref().map(|f| f.as_fd())
    }

    /// v1: each leaf's `tasks` file, opened for writing by the runtime, for the sandbox to
    /// move itself with [`join_self`]. Empty on v2 (clone3 CLONE_INTO_CGROUP).
    ///
    /// Why not the runtime writing the pid to `cgroup.procs`: on v1 that takes the global
    /// threadgroup rwsem for writing, which waits for an RCU grace period (6-17 ms on this
    /// 2-core VM, the largest single item of a cold start). A single thread writing "0" (itself)
    /// to `tasks` takes no such lock (the kernel's cgroup_procs_write_start: "If we migrate a
    /// single thread, we don't care about threadgroup stability"): ~0.1 ms. The permission
    /// check uses the credentials the file was opened with (the runtime's), so the sandbox,
    /// already in its user namespace, may write it.
    pub fn self_join_files(&self) -> Result<Vec<fs::File>> {
        if self.driver != Driver::V1 {
            return Ok(Vec::new());
        }
        self.leaves
            .iter()
            .map(|(_, leaf)| {
                let p = leaf.join("tasks");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .ctx("open", p.display())
            })
            .collect()
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.leaves.iter().map(|(_, l)| l.clone()).collect()
    }

    /// Leave the cgroup in place (an OCI container's, which `delete` removes): its paths.
    /// The container is in it by now: a systemd scope's placeholder goes.
    pub fn keep(mut self) -> Vec<PathBuf> {
        self.end_placeholder();
        let paths = self.paths();
        self.leaves.clear();
        self.parents.clear();
        paths
    }

    /// The descriptors it holds (the leaf's directory, the name's token).
    pub(crate) fn fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.dir_fd
            .iter()
            .chain(&self._token)
            .map(|f| f.as_raw_fd())
            .collect()
    }

    /// Whether it holds a process of its own (the systemd driver's placeholder, this process's
    /// child until the container is in its scope).
    pub fn holds_process(&self) -> bool {
        self.placeholder.is_some()
    }

    /// The OOM killer's kills in the sandbox so far (v2 memory.events, v1 memory.oom_control).
    pub fn oom_kills(&self) -> u64 {
        let leaf = |h: &str| self.leaves.iter().find(|(x, _)| x == h).map(|(_, p)| p);
        match self.driver {
            Driver::V2 => leaf("").and_then(|d| key(d, "memory.events", "oom_kill")),
            Driver::V1 => leaf("memory").and_then(|d| key(d, "memory.oom_control", "oom_kill")),
        }
        .unwrap_or(0)
    }

    /// Usage when the workload's exit is reported, before init is gone: as [`Cgroup::usage`],
    /// with v1's CPU time (no cpuacct counter) from init, which reaped every other task.
    pub fn usage_at_report(&self) -> Usage {
        let mut u = self.usage();
        if u.cpu_usec.is_none() && self.driver == Driver::V1 {
            if let Some((_, d)) = self.leaves.iter().find(|(h, _)| h == "pids") {
                u.cpu_usec = tasks_cpu_usec(d);
            }
        }
        u
    }

    /// Read usage (call after the sandbox has exited, before removal).
    pub fn usage(&self) -> Usage {
        read_usage(self.driver, &self.leaves, false)
    }

    /// Remove the cgroup(s): kill what is left (v2 `cgroup.kill`), then rmdir, retrying while
    /// the kernel finishes tearing down exited tasks.
    pub fn remove(mut self) -> Result<()> {
        self.remove_all()
    }

    fn end_placeholder(&mut self) {
        if let Some(pid) = self.placeholder.take() {
            let _ = crate::raw::kill(pid, libc::SIGKILL);
            let _ = crate::raw::waitpid(pid, false);
        }
    }

    fn remove_all(&mut self) -> Result<()> {
        self.end_placeholder();
        let mut first_err = None;
        for (_, leaf) in std::mem::take(&mut self.leaves) {
            if let Err(e) = remove_leaf(&leaf) {
                first_err.get_or_insert(e);
            }
        }
        for p in std::mem::take(&mut self.parents) {
            // Fails (ENOTEMPTY/EBUSY) while other sandboxes use it: that is fine.
            let _ = fs::remove_dir(p);
        }
        self.dir_fd = None;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.remove_all();
    }
}

/// Remove a sandbox's cgroup directory (its own, one of a sandbox whose runtime is gone, or one
/// made beside it: a v1 freezer leaf), waiting briefly for its last tasks to go. (Its parent
/// stays: see [`remove_empty_defaults`].)
pub fn remove_leaf(leaf: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut killed = false;
    loop {
        match fs::remove_dir(leaf) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                if !killed {
                    // v2: kill what is left. v1: the sandbox's pid namespace went with its init,
                    // unless it was frozen (its monitor died while it was paused): the freezer
                    // leaf is thawed, and the parent-death SIGKILL its init has pending ends it.
                    let _ = write(leaf, "cgroup.kill", "1");
                    let _ = write(leaf, "freezer.state", "THAWED");
                    killed = true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).ctx("remove cgroup", leaf.display()),
        }
    }
}

/// Usage of a sandbox cgroup given its leaf directories as (hierarchy, path). `live` adds what
/// only means something while it runs (current memory and tasks; v1 CPU time from its tasks).
pub fn read_usage(driver: Driver, leaves: &[(String, PathBuf)], live: bool) -> Usage {
    let leaf = |h: &str| {
        leaves
            .iter()
            .find(|(x, _)| x == h)
            .map(|(_, p)| p.as_path())
    };
    let mut u = Usage::default();
    match driver {
        Driver::V2 => {
            let Some(d) = leaf("") else { return u };
            u.oom_kills = key(d, "memory.events", "oom_kill").unwrap_or(0);
            u.memory_peak = num(d, "memory.peak");
            u.cpu_usec = key(d, "cpu.stat", "usage_usec");
            u.pids_peak = num(d, "pids.peak");
            u.pids_limit_hits = key(d, "pids.events", "max");
            if live {
                u.memory_current = num(d, "memory.current");
                u.pids_current = num(d, "pids.current");
            }
        }
        Driver::V1 => {
            if let Some(d) = leaf("memory") {
                u.oom_kills = key(d, "memory.oom_control", "oom_kill").unwrap_or(0);
                u.memory_peak = num(d, "memory.max_usage_in_bytes");
                if live {
                    u.memory_current = num(d, "memory.usage_in_bytes");
                }
            }
            if let Some(d) = leaf("pids") {
                u.pids_peak = num(d, "pids.peak");
                u.pids_limit_hits = key(d, "pids.events", "max");
                if live {
                    u.pids_current = num(d, "pids.current");
                    u.cpu_usec = tasks_cpu_usec(d);
                }
            }
        }
    }
    u
}

/// CPU time of a live v1 sandbox without a cpuacct cgroup: every live task's own time plus
/// what it collected from the children it reaped (init reaps all orphans), so each exited
/// task is counted once, in its reaper. None when the cgroup has no tasks.
fn tasks_cpu_usec(dir: &Path) -> Option<u64> {
    let procs = fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    // (musl answers without a syscall; rustix's clock_ticks_per_second reads the aux vector.)
    let hz = crate::raw::sysconf(libc::_SC_CLK_TCK).max(1) as u64;
    let mut ticks = 0u64;
    let mut any = false;
    for pid in procs.split_whitespace() {
        let Ok(stat) = crate::raw::proc_stat(pid) else {
            continue;
        };
        // From state(3): … utime(14) stime(15) cutime(16) cstime(17).
        for x in stat.split_whitespace().skip(11).take(4) {
            ticks += x.parse::<u64>().unwrap_or(0);
        }
        any = true;
    }
    any.then(|| ticks * 1_000_000 / hz)
}

/// Live sandbox cgroups under the parents of `located` (from `CgroupPlan::locate`): id →
/// its leaf directories as (hierarchy, path). Sorted by id.
pub fn list(located: &CgroupPlan) -> Vec<(String, Vec<(String, PathBuf)>)> {
    let Some(index) = index_dir(located) else {
        return vec![];
    };
    let mut out = Vec::new();
    for id in index.parents.iter().flat_map(|p| ids_under(p)) {
        let mut leaves = Vec::new();
        for d in &located.dirs {
            for p in &d.parents {
                let l = p.join(&id);
                if l.is_dir() {
                    leaves.push((d.hierarchy.clone(), l));
                }
            }
        }
        out.push((id, leaves));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn num(dir: &Path, file: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// A `key value` line of a flat-keyed file (memory.events, cpu.stat, memory.oom_control).
fn key(dir: &Path, file: &str, k: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|l| {
        let (a, b) = l.split_once(' ')?;
        (a == k).then(|| b.trim().parse().ok()).flatten()
    })
}

fn is_sandbox_leaf(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sandbox ids with a leaf directory directly under `parent`.
fn ids_under(parent: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(parent) else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| is_sandbox_leaf(name))
        .collect()
}

/// The hierarchy every sandbox has a leaf in (v2's only one; v1 pids, which every run
/// limits), so one directory read per parent finds every sandbox id.
fn index_dir(plan: &CgroupPlan) -> Option<&CgroupDir> {
    plan.dirs
        .iter()
        .find(|d| d.hierarchy.is_empty() || d.hierarchy == "pids")
        .or(plan.dirs.first())
}

/// Remove cgroups left by runtimes that died, under the parents of `plan` (from
/// `CgroupPlan::locate`, so a dead run's leaves are removed from every hierarchy). Returns
/// the removed paths; leaves held by a live run are skipped.
pub fn gc(plan: &CgroupPlan) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Some(index) = index_dir(plan) else {
        return removed;
    };
    for parent in &index.parents {
        for name in ids_under(parent) {
            // Free name = the run that made it is dead. Hold it while removing. Only empty
            // directories are removed (rmdir fails on a populated cgroup) and nothing is ever
            // killed here: the name is per network namespace, so a run started in another one
            // could look dead from here.
            let Ok(_hold) = hold_name(&token_name(&name)) else {
                continue;
            };
            for d in &plan.dirs {
                for p in &d.parents {
                    let leaf = p.join(&name);
                    if fs::remove_dir(&leaf).is_ok() {
                        removed.push(leaf);
                    }
                }
            }
        }
    }
    removed
}

/// Remove the shared default parents of `plan` (`…/nucleus`, from `CgroupPlan::locate`) that
/// are empty: `nucleus gc`. Runs keep them, as the state root is kept: making and removing
/// them on every run cost each run, on v1, two cgroup mkdirs, two chmods and two rmdirs (on
/// v2 one of each; its controllers are still enabled in the parent on every run). A run that
/// finds its parent removed meanwhile makes it again ([`Cgroup::create`] retries). Returns
/// what was removed.
pub fn remove_empty_defaults(plan: &CgroupPlan) -> Vec<PathBuf> {
    if !plan.remove_empty_parents {
        return Vec::new();
    }
    let mut removed = Vec::new();
    for d in &plan.dirs {
        for p in &d.parents {
            if fs::remove_dir(p).is_ok() {
                removed.push(p.clone());
            }
        }
    }
    removed
}

/// Where a v1 sandbox's freezer leaf is (made by its first pause): the place of its pids leaf
/// under the freezer hierarchy's mount. Known before it is made, so its record can name it
/// first.
pub fn v1_freezer_leaf(
    leaves: &[(String, PathBuf)],
    host: &nucleus_spec::cgroup::CgroupHost,
) -> Result<PathBuf> {
    let mount_of = |c: &str| host.v1.iter().find(|h| h.controller == c).map(|h| &h.mount);
    let mount = mount_of("freezer")
        .ok_or_else(|| crate::error::other("freeze", "no freezer hierarchy is mounted"))?;
    let (_, pids) = leaves
        .iter()
        .find(|(h, _)| h == "pids")
        .ok_or_else(|| crate::error::other("freeze", "no pids cgroup to find it by"))?;
    // The pids leaf's place under its own mount: <parent>/<id>.
    let rel = mount_of("pids")
        .and_then(|m| pids.strip_prefix(m).ok())
        .ok_or_else(|| crate::error::other("freeze", "the pids cgroup is not under its mount"))?;
    Ok(mount.join(rel))
}

/// Freeze (`on`) or thaw a sandbox's cgroup and wait until the kernel says it is done.
///
/// v2: `cgroup.freeze` of its leaf (`leaves[0]`). v1: the freezer hierarchy (`host` says
/// where the hierarchies are mounted), in which sandboxes get no cgroup at start (a start pays for none it does
/// not use): a leaf at the same place as the sandbox's pids leaf (`leaves` holds it) is made
/// on first use and every process of the sandbox moved in, again until none is left out (a
/// fork during the move puts the child where its parent was), then `freezer.state`. Returns
/// that v1 leaf, to be removed with the sandbox.
pub fn set_frozen(
    driver: Driver,
    leaves: &[(String, PathBuf)],
    host: &nucleus_spec::cgroup::CgroupHost,
    on: bool,
) -> Result<Option<PathBuf>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let wait = |done: &dyn Fn() -> bool, what: &'static str| -> Result<()> {
        while !done() {
            if Instant::now() > deadline {
                return Err(crate::error::other(
                    what,
                    "the kernel did not finish in 10 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    };
    match driver {
        Driver::V2 => {
            let leaf = &leaves
                .first()
                .ok_or_else(|| crate::error::other("freeze", "no cgroup"))?
                .1;
            write(leaf, "cgroup.freeze", if on { "1" } else { "0" })
                .ctx("write", leaf.join("cgroup.freeze").display())?;
            let want = if on { "frozen 1" } else { "frozen 0" };
            wait(
                &|| {
                    fs::read_to_string(leaf.join("cgroup.events"))
                        .is_ok_and(|t| t.lines().any(|l| l == want))
                },
                "freeze",
            )?;
            Ok(None)
        }
        Driver::V1 => {
            let leaf = v1_freezer_leaf(leaves, host)?;
            let pids = &leaves
                .iter()
                .find(|(h, _)| h == "pids")
                .ok_or_else(|| crate::error::other("freeze", "no pids cgroup to find it by"))?
                .1;
            if on {
                crate::raw::mkdir_p(&leaf, 0o755).ctx("create cgroup", leaf.display())?;
                // A sandbox that ends meanwhile (its pids leaf goes with it) takes the leaf
                // made for it along: thawed and removed, not left behind.
                let undo = |e| {
                    let _ = write(&leaf, "freezer.state", "THAWED");
                    let _ = fs::remove_dir(&leaf);
                    e
                };
                loop {
                    let inside = fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
                    let all = fs::read_to_string(pids.join("cgroup.procs"))
                        .ctx("read", pids.join("cgroup.procs").display())
                        .map_err(undo)?;
                    let left: Vec<&str> = all
                        .split_whitespace()
                        .filter(|p| !inside.split_whitespace().any(|q| q == *p))
                        .collect();
                    if left.is_empty() {
                        break;
                    }
                    for p in left {
                        // Gone meanwhile: ESRCH.
                        let _ = write(&leaf, "cgroup.procs", p);
                    }
                    if Instant::now() > deadline {
                        return Err(undo(crate::error::other(
                            "freeze",
                            "processes kept appearing",
                        )));
                    }
                }
            }
            write(&leaf, "freezer.state", if on { "FROZEN" } else { "THAWED" })
                .ctx("write", leaf.join("freezer.state").display())?;
            let want = if on { "FROZEN" } else { "THAWED" };
            wait(
                &|| fs::read_to_string(leaf.join("freezer.state")).is_ok_and(|t| t.trim() == want),
                "freeze",
            )?;
            Ok(Some(leaf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nucleus_spec::cgroup::{CgroupHost, CgroupParent, Limits, V1Hierarchy};

    fn tmp(tag: &str) -> crate::TestDir {
        crate::TestDir::new(&format!("cg-{tag}"))
    }

    /// A caller below the root (a service cgroup): its parent already passes the controllers
    /// down, so only the new `nucleus` directory's subtree_control is written.
    #[test]
    fn v2_controllers_for_a_nested_caller_are_one_write() {
        let t = tmp("v2n");
        let m = t.join("cg");
        let svc = m.join("system.slice/app.service");
        fs::create_dir_all(&svc).unwrap();
        fs::write(m.join("cgroup.subtree_control"), "cpu memory pids").unwrap();
        fs::write(
            m.join("system.slice/cgroup.subtree_control"),
            "cpu memory pids",
        )
        .unwrap();
        let host = CgroupHost {
            v2_mount: Some(m.clone()),
            v2_controllers: ["cpu", "memory", "pids"].map(String::from).to_vec(),
            v2_own: Some("/system.slice/app.service".into()),
            v1: vec![],
        };
        let limits = Limits {
            memory: Some(64 << 20),
            ..Default::default()
        };
        let leaf = "00000000000000ab";
        let plan = CgroupPlan::build(&limits, &host, &CgroupParent::Default, leaf).unwrap();
        let cg = Cgroup::create(&plan).unwrap();
        let parent = m.join("system.slice/nucleus");
        assert_eq!(cg.paths(), vec![parent.join(leaf)]);
        let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap();
        assert!(
            enabled.contains("+memory") && enabled.contains("+pids"),
            "{enabled}"
        );
        // The levels above were not rewritten.
        assert_eq!(
            fs::read_to_string(m.join("cgroup.subtree_control")).unwrap(),
            "cpu memory pids"
        );
        drop(cg);
    }

    /// A directory tree that looks like a cgroup v2 mount (plain files, so writes just land).
    #[test]
    fn v2_driver_on_a_tempdir_tree() {
        let t = tmp("v2");
        let m = t.join("cg");
        fs::create_dir_all(&m).unwrap();
        fs::write(m.join("cgroup.procs"), "").unwrap();
        fs::write(m.join("cgroup.controllers"), "cpu io memory pids").unwrap();
        fs::write(m.join("cgroup.subtree_control"), "memory").unwrap();
        let host = CgroupHost {
            v2_mount: Some(m.clone()),
            v2_controllers: ["cpu", "io", "memory", "pids"].map(String::from).to_vec(),
            v2_own: Some("/".into()),
            v1: vec![],
        };
        let limits = Limits {
            memory: Some(64 << 20),
            ..Default::default()
        };
        let leaf = "00000000000000aa";
        let plan = CgroupPlan::build(&limits, &host, &CgroupParent::Default, leaf).unwrap();
        let cg = Cgroup::create(&plan).unwrap();
        // Root got only the missing controllers enabled (a plain file keeps the last write).
        assert_eq!(
            fs::read_to_string(m.join("cgroup.subtree_control")).unwrap(),
            "+cpu +io +pids"
        );
        let d = m.join("nucleus").join(leaf);
        assert_eq!(cg.paths(), vec![d.clone()]);
        assert_eq!(
            fs::read_to_string(d.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(fs::read_to_string(d.join("pids.max")).unwrap(), "512");
        assert!(cg.clone_into().is_some() && cg.self_join_files().unwrap().is_empty());
        // Held: a second create of the same leaf is refused, gc leaves it alone.
        assert!(Cgroup::create(&plan).is_err());
        assert!(gc(&plan).is_empty());
        fs::write(d.join("memory.events"), "low 0\noom 1\noom_kill 1\n").unwrap();
        fs::write(d.join("memory.peak"), "1234\n").unwrap();
        let u = cg.usage();
        assert_eq!((u.oom_kills, u.memory_peak), (1, Some(1234)));
        assert_eq!(cg.oom_kills(), 1);
        // Removal needs an empty directory: real cgroupfs has no removable files, a tempdir has.
        for f in fs::read_dir(&d).unwrap() {
            fs::remove_file(f.unwrap().path()).unwrap();
        }
        cg.remove().unwrap();
        assert!(!d.exists());
        // The shared default parent stays for the next run; `nucleus gc` removes it, empty.
        assert!(m.join("nucleus").is_dir(), "default parent kept");
        let other = m.join("nucleus").join("00000000000000ab");
        fs::create_dir(&other).unwrap();
        assert!(
            remove_empty_defaults(&plan).is_empty(),
            "a parent in use is kept"
        );
        fs::remove_dir(&other).unwrap();
        assert_eq!(remove_empty_defaults(&plan), vec![m.join("nucleus")]);
        assert!(!m.join("nucleus").exists());
        // A parent the user named is theirs: gc leaves it, empty or not.
        let named = CgroupParent::Path("/mine".into());
        fs::create_dir(m.join("mine")).unwrap();
        let mine = CgroupPlan::locate(&host, &named).unwrap();
        assert!(remove_empty_defaults(&mine).is_empty());
        assert!(
            m.join("mine").is_dir(),
            "gc removed a parent the user named"
        );
    }

    #[test]
    fn v1_driver_and_gc_of_dead_runs() {
        let t = tmp("v1");
        let h = |c: &str, own: &str| {
            let mount = t.join(c);
            fs::create_dir_all(mount.join(own.trim_start_matches('/'))).unwrap();
            fs::write(mount.join("cgroup.procs"), "").unwrap();
            V1Hierarchy {
                controller: c.into(),
                mount,
                own: own.into(),
                has_memsw: false,
            }
        };
        let host = CgroupHost {
            v2_mount: None,
            v2_controllers: vec![],
            v2_own: None,
            v1: vec![h("memory", "/svc/x"), h("pids", "/")],
        };
        let limits = Limits {
            memory: Some(32 << 20),
            ..Default::default()
        };
        let leaf = "00000000000000bb";
        let plan = CgroupPlan::build(&limits, &host, &CgroupParent::Default, leaf).unwrap();
        let cg = Cgroup::create(&plan).unwrap();
        let mem = t.join("memory/svc/x/nucleus").join(leaf);
        let pids = t.join("pids/nucleus").join(leaf);
        assert_eq!(cg.paths(), vec![mem.clone(), pids.clone()]);
        assert!(cg.clone_into().is_none());
        assert_eq!(
            fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap(),
            "33554432"
        );
        // The kernel's files; here plain files that keep what is written.
        for d in [&mem, &pids] {
            fs::write(d.join("tasks"), "").unwrap();
        }
        join_self(&cg.self_join_files().unwrap()).unwrap();
        for d in [&mem, &pids] {
            assert_eq!(fs::read_to_string(d.join("tasks")).unwrap(), "0");
        }
        // A run that died: simulate by forgetting the handle's token but keeping dirs.
        for d in [&mem, &pids] {
            for f in fs::read_dir(d).unwrap() {
                fs::remove_file(f.unwrap().path()).unwrap();
            }
        }
        crash(cg);
        // Not a sandbox name: never touched.
        fs::create_dir_all(t.join("pids/nucleus/keep-me")).unwrap();
        // (A child another test thread forks inherits the dead run's name token until it
        // execs or exits, holding the name a moment longer: gc skips it until then.)
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut removed = gc(&plan);
        while removed.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            removed = gc(&plan);
        }
        assert_eq!(removed.len(), 2);
        assert!(!mem.exists() && !pids.exists());
        assert!(t.join("pids/nucleus/keep-me").exists());
    }

    /// What a `kill -9` of the runtime leaves: directories, no holder of the name.
    fn crash(mut cg: Cgroup) {
        cg._token = None;
        cg.leaves.clear();
        cg.parents.clear();
    }
}

/// The device program, loaded into the kernel for real: attached to a v2 cgroup under the
/// test's own (this hybrid host's unified hierarchy has no controllers, but cgroup BPF needs
/// none), a shell moved into it opens /dev/null and is refused /dev/zero and mknod.
#[cfg(test)]
mod device_program_tests {
    use nucleus_spec::cgroup::device_program;
    use std::os::fd::AsFd;
    use std::path::PathBuf;

    /// The cgroup2 mount and the caller's cgroup in it.
    fn v2_own() -> PathBuf {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = mounts
            .lines()
            .find(|l| l.contains(" - cgroup2 "))
            .and_then(|l| l.split(' ').nth(4))
            .expect("a cgroup2 mount (the unified hierarchy) is required");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line in /proc/self/cgroup");
        PathBuf::from(mount).join(own.trim_start_matches('/'))
    }

    #[test]
    fn the_kernel_enforces_the_compiled_device_rules() {
        assert!(
            crate::security::is_root(),
            "needs root (scripts/test.sh runs the tests as root); refusing to skip"
        );
        let leaf = v2_own().join(format!("nucleus-devtest-{}", std::process::id()));
        std::fs::create_dir(&leaf).unwrap();
        let rules: Vec<(String, String)> = [
            ("devices.deny", "a *:* rwm"),
            ("devices.allow", "c 1:3 rw"),
            ("devices.allow", "c 1:5 rwm"),
            ("devices.deny", "c 1:5 r"),
        ]
        .iter()
        .map(|(f, l)| (f.to_string(), l.to_string()))
        .collect();
        let prog = device_program(&rules).unwrap();
        let dir = std::fs::File::open(&leaf).unwrap();
        let attached = crate::raw::attach_device_program(dir.as_fd(), &prog);
        let out = attached.as_ref().ok().map(|_| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "echo $$ > {}/cgroup.procs || exit 9; \
                     (exec 3</dev/null) 2>/dev/null && echo null-read; \
                     (exec 3>/dev/null) 2>/dev/null && echo null-write; \
                     (exec 3</dev/zero) 2>/dev/null || echo zero-read-denied; \
                     (exec 3>/dev/zero) 2>/dev/null && echo zero-write; \
                     (exec 3</dev/full) 2>/dev/null || echo full-denied",
                    leaf.display()
                ))
                .output()
                .unwrap()
        });
        std::fs::remove_dir(&leaf).unwrap();
        attached.unwrap();
        let out = out.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "null-read\nnull-write\nzero-read-denied\nzero-write\nfull-denied\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
