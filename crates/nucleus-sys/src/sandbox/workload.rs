//! The workload's last steps before exec (also a `nucleus exec` process's): rlimits,
//! session and tty, capabilities, identity, cwd, no_new_privs, Landlock, seccomp, the report,
//! exec.

use super::child::{degrade_or_fail, fail, fail_with, Handshake};
use crate::channel::{
    ExecSyncWorkload, FromChild, Release, Sandbox, SecurityReport, Stage, StartFailure, ToChild,
};
use crate::init;
use crate::mount::Switched;
use crate::notify;
use crate::raw;
use crate::security;
use crate::trace;
use crate::tty;
use nucleus_spec::plan::{IdMapPlan, OnFailure, Plan};
use nucleus_spec::state::{LandlockStatus, RootSwitch, SeccompStatus};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// The workload's last steps (also those of a process `nucleus exec` starts in a sandbox):
/// rlimits, session and tty, capabilities, identity, cwd, no_new_privs, Landlock, seccomp,
/// report, exec.
pub(crate) fn workload_exec(
    plan: &Plan,
    ch: &Sandbox,
    switched: Switched,
    tty_slave: Option<BorrowedFd<'_>>,
    umask: libc::mode_t,
) -> ! {
    child_exec(plan, ch, switched, tty_slave, umask, Hold::None, None)
}

/// `nucleus exec`'s process as the workload of an init of its own (PID 1 of a pid namespace
/// nested in the sandbox's): when it exits, or its init is killed (the exec client's death,
/// a timeout), the kernel kills everything it left behind.
pub(crate) fn workload_exec_under_init(
    plan: &Plan,
    ch: &Sandbox,
    tty_slave: Option<BorrowedFd<'_>>,
    umask: libc::mode_t,
) -> ! {
    let full_fork = plan.namespaces.time_offset_secs.is_some();
    super::child::become_init(plan, ch, full_fork, |hs| {
        child_exec(
            plan,
            ch,
            Switched::PivotRoot,
            tty_slave,
            umask,
            Hold::None,
            Some(hs),
        )
    })
}

/// What the workload waits for, set up, before its exec.
pub(super) enum Hold<'a> {
    /// Nothing: exec at once.
    None,
    /// Detached sandboxes: the ExecSync socket (it closes on exec); with `true` (`create`)
    /// exec only when the runtime sends [`Release::Start`].
    Sync(&'a (ExecSyncWorkload, bool)),
    /// An OCI container: exec when `start` writes to the exec fifo (open read-write, so
    /// opening it did not wait; the read does).
    /// With its pid as the host sees it (for startContainer hooks' state).
    Fifo(std::os::fd::OwnedFd, libc::pid_t),
}

pub(super) fn child_exec(
    plan: &Plan,
    ch: &Sandbox,
    switched: Switched,
    tty_slave: Option<BorrowedFd<'_>>,
    umask: libc::mode_t,
    hold: Hold<'_>,
    init: Option<Handshake>,
) -> ! {
    // Under our init: nothing before `go` (init hardens meanwhile, in the same memory; end of
    // file: init is gone, and so is the sandbox). Signals are blocked here: no EINTR.
    let mut init_failed = None;
    if let Some(hs) = init {
        // The workload's end of the pipe, open (by number) until its exec.
        let Ok(Some(b)) = raw::recv_byte(hs.go) else {
            raw::exit_now(1)
        };
        if b != init::HARDENED {
            let step = usize::from(b.saturating_sub(init::HARDEN_FAILED));
            init_failed = Some(
                init::HARDEN_STEPS
                    .get(step)
                    .copied()
                    .unwrap_or("unknown step"),
            );
        }
    }
    // `nucleus exec` (no init of ours) ends with its runtime; an OCI container's runtime
    // leaves once it is set up.
    let die_with_parent = init.is_none() && plan.supervisor.is_nucleus();
    let p = &plan.process;
    trace::mark_as("workload", "forked");
    raw::reset_signals();
    let umask = p.umask.map_or(umask, |m| m as libc::mode_t);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
    // The workload leads its own session.
    let _ = rustix::process::setsid();
    if let Some(s) = tty_slave {
        if let Err(e) = tty::become_controlling(s) {
            fail(ch, Stage::Tty, &e.to_string());
        }
        if let Some((rows, cols)) = p.tuning.console_size {
            if let Err(e) = tty::set_size(s, rows, cols) {
                fail(ch, Stage::Tty, &format!("process.consoleSize: {e}"));
            }
        }
    }
    let refuse = plan.on_security_failure == OnFailure::Refuse;
    let mut report = SecurityReport {
        landlock_abi: crate::probe::landlock_abi(),
        // (The child attached the sealed image as its root, or failed before this report.)
        rootfs_sha256: plan.attested.as_ref().map(|a| a.sha256.clone()),
        private_ids: matches!(
            plan.idmap,
            nucleus_spec::plan::IdMapPlan::PrivateRange { .. }
        ),
        ..Default::default()
    };
    if let Some(step) = init_failed {
        let what = format!("the sandbox's init could not harden itself ({step})");
        let refusal = format!("{what}; strict modes refuse to start");
        degrade_or_fail(ch, &mut report, refuse, Stage::Init, &refusal, what);
    }
    report.root_switch = match switched {
        Switched::PivotRoot => RootSwitch::PivotRoot,
        Switched::Chroot(e) => {
            report
                .degraded
                .push(format!("pivot_root failed ({e}); chroot used instead"));
            RootSwitch::Chroot
        }
    };
    if let Err(e) = security::set_rlimits(&p.rlimits) {
        fail(ch, Stage::Rlimits, &e.to_string());
    }
    if let Some(domain) = p.personality {
        if let Err(e) = raw::set_personality(domain) {
            fail(ch, Stage::Rlimits, &format!("personality {domain:#x}: {e}"));
        }
    }
    if let Some(m) = &p.tuning.memory_policy {
        if let Err(e) = raw::set_memory_policy(m.mode, &m.nodes) {
            fail(ch, Stage::Rlimits, &format!("linux.memoryPolicy: {e}"));
        }
    }
    if let Some(adj) = p.oom_score_adj {
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj.to_string()) {
            fail(ch, Stage::Rlimits, &format!("oom_score_adj {adj}: {e}"));
        }
    }
    // (Before the capabilities go: a real-time class or policy needs CAP_SYS_NICE or
    // CAP_SYS_ADMIN, which the bundle may not keep; runc sets them at this point too.)
    if let Some(v) = p.tuning.io_priority {
        if let Err(e) = raw::set_io_priority(v) {
            fail(ch, Stage::Rlimits, &format!("process.ioPriority: {e}"));
        }
    }
    if let Some(a) = &p.tuning.scheduler {
        if let Err(e) = raw::set_scheduler(a) {
            fail(ch, Stage::Rlimits, &format!("process.scheduler: {e}"));
        }
    }
    // Without no_new_privs a filter needs CAP_SYS_ADMIN to install: before the capabilities
    // go, as runc does (the filter must then allow the identity and capability calls).
    let early_seccomp = !p.no_new_privs;
    if early_seccomp {
        install_filter(plan, ch, &mut report, refuse);
    }
    let keep = p.caps.clone().unwrap_or_default();
    // Under our init the bounding set is already the workload's plus init's CAP_KILL.
    let dropped = match init {
        Some(_) => security::drop_bounding(init::KEPT_CAPS & !keep.bounding),
        None => security::drop_bounding_except(keep.bounding),
    };
    if let Err(e) = dropped {
        fail(ch, Stage::Capabilities, &e.to_string());
    }
    if keep.permitted != 0 {
        if let Err(e) = security::keep_caps() {
            fail(ch, Stage::Capabilities, &e.to_string());
        }
    }
    // An unprivileged caller's user namespace has setgroups denied (the kernel requires it for
    // such a gid map, and the plan allows no extra groups there): its groups stay.
    let groups = match plan.idmap {
        IdMapPlan::Caller { .. } => None,
        IdMapPlan::PrivateRange { .. } | IdMapPlan::Host | IdMapPlan::Explicit { .. } => {
            Some(&p.additional_gids[..])
        }
    };
    if let Err(e) = security::set_identity(p.uid, p.gid, groups) {
        fail(ch, Stage::Identity, &e.to_string());
    }
    // The kernel raises an ambient capability only if it is permitted and inheritable; an
    // OCI bundle asking for others gets them skipped with a note (runc warns likewise).
    let mut ambient = keep.ambient;
    if !plan.supervisor.is_nucleus() {
        let raisable = keep.permitted & keep.inheritable;
        if ambient & !raisable != 0 {
            report.degraded.push(format!(
                "capabilities: ambient {} not raised (not both permitted and inheritable)",
                nucleus_spec::policy::CapSets::names(ambient & !raisable).join(", ")
            ));
        }
        ambient &= raisable;
    }
    if let Err(e) = security::set_capabilities(keep.effective, keep.permitted, keep.inheritable)
        .and_then(|()| security::raise_ambient(ambient))
    {
        fail(ch, Stage::Capabilities, &e.to_string());
    }
    report.capabilities_dropped = true;
    report.capabilities_kept = nucleus_spec::policy::CapSets::names(keep.bounding)
        .into_iter()
        .map(String::from)
        .collect();
    if let Err(e) = std::env::set_current_dir(&p.cwd) {
        fail(ch, Stage::Workdir, &format!("{}: {e}", p.cwd.display()));
    }
    if p.no_new_privs {
        if let Err(e) = security::set_no_new_privs() {
            fail(ch, Stage::NoNewPrivs, &e.to_string());
        }
        report.no_new_privs = true;
    }
    if die_with_parent {
        // A process `nucleus exec` started ends with it (a health check killed at its timeout,
        // an exec whose runtime was killed): nobody else would reap or report it. Set after
        // the last credential change, which clears it.
        let _ = raw::die_with_parent();
    }
    trace::mark_as("workload", "session, rlimits, capabilities, identity");
    match plan.landlock.as_ref().map(security::apply_landlock) {
        None => {}
        Some(Ok(o)) if o.status != LandlockStatus::NotEnforced => report.landlock = o.status,
        Some(Ok(o)) => {
            report.landlock = o.status;
            degrade_or_fail(
                ch,
                &mut report,
                refuse,
                Stage::Landlock,
                "Landlock is not available on this kernel (strict mode refuses to start)",
                "landlock: not available on this kernel".into(),
            );
        }
        // A policy's `missing = "error"` holds in every mode.
        Some(Err(e)) => {
            report.landlock = LandlockStatus::NotEnforced;
            let what = format!("landlock: {}", e.msg);
            degrade_or_fail(
                ch,
                &mut report,
                refuse || e.required,
                Stage::Landlock,
                &e.msg,
                what,
            );
        }
    }
    // Nothing nucleus inherited (an --events-fd, a --config-fd, the caller's descriptors)
    // reaches the workload: close-on-exec for all but stdio and those the caller asked to
    // pass (OCI --preserve-fds: theirs are 3 .. 3+N, below anything the runtime opened), now,
    // while every syscall still works (a profile may deny close_range).
    let first = 3 + p.preserve_fds;
    let kept = (3..first).try_for_each(|fd| {
        raw::clear_cloexec_number(fd as i32)
            .map_err(|e| format!("--preserve-fds: descriptor {fd}: {e}"))
    });
    if let Err(e) =
        kept.and_then(|()| security::cloexec_from(first as i32).map_err(|e| e.to_string()))
    {
        fail(ch, Stage::Descriptors, &e);
    }
    // The program's CPUs, once set-up is done (its filter may not allow the call).
    if let Some(cpus) = &p.tuning.cpus_final {
        if let Err(e) = raw::set_cpu_affinity(cpus) {
            fail(
                ch,
                Stage::Rlimits,
                &format!("process.execCPUAffinity.final: {e}"),
            );
        }
    }
    if !early_seccomp {
        install_filter(plan, ch, &mut report, refuse);
    }
    if trace::enabled() {
        trace::mark_as("workload", "landlock, seccomp");
        let _ = ch.send(FromChild::Timings(trace::take()));
    }
    let _ = ch.send(FromChild::Applied(report));
    match hold {
        // `create`: fully set up; exec only when the runtime says start. Its end closing
        // first means the sandbox is being removed.
        Hold::Sync((s, true)) => match s.recv() {
            Ok(Some(Release::Start)) => {}
            _ => raw::exit_now(0),
        },
        Hold::Sync(_) | Hold::None => {}
        // The runtime is gone (it left once we reported): `start` writes one byte.
        Hold::Fifo(f, pid) => {
            if !matches!(raw::read(f.as_fd(), &mut [0u8; 1]), Ok(1)) {
                raw::exit_now(1);
            }
            // startContainer: started, before its program; the path is the container's. A
            // failure ends it (nobody reads the channel now): the line goes to its stderr.
            if let Some(h) = plan
                .hooks
                .as_ref()
                .filter(|h| !h.start_container.is_empty())
            {
                let state = plan.oci_state("created", pid).to_string();
                if let Err(e) = crate::hooks::run_all(&h.start_container, &state) {
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!("nucleus: {e}\n").as_bytes(),
                    );
                    raw::exit_now(125);
                }
            }
        }
    }
    exec(ch, &p.argv, &p.env)
}

/// The workload's seccomp filter (none when the plan has none), served by the runtime when
/// the plan says so.
fn install_filter(plan: &Plan, ch: &Sandbox, report: &mut SecurityReport, refuse: bool) {
    if plan.seccomp_bpf.is_empty() && plan.seccomp_notify.is_none() {
        return;
    }
    let installed = if plan.seccomp_notify.is_some() {
        // The runtime serves this filter's notifications: announce where the listener will be.
        match notify::next_fd() {
            Ok(n) if ch.send(FromChild::Listener(n)).is_ok() => {
                match security::install_seccomp_listener(&plan.seccomp_bpf, plan.seccomp_flags) {
                    Ok(l) => {
                        // Wait until the runtime holds its copy (it takes it with pidfd_getfd;
                        // a notified recv is served once it does). Ours closes at exec.
                        let _: io::Result<Option<ToChild>> = ch.recv();
                        drop(l);
                        Ok(())
                    }
                    Err(e) => {
                        // No filter, so this message is not notified: stop the runtime waiting.
                        let _ = ch.send(FromChild::Listener(-1));
                        Err(e)
                    }
                }
            }
            Ok(_) => Err(io::Error::from_raw_os_error(libc::EPIPE)),
            Err(e) => Err(e),
        }
    } else {
        match security::install_seccomp(&plan.seccomp_bpf, plan.seccomp_flags) {
            // A kernel without an optional flag (LOG, SPEC_ALLOW): the filter without them.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && plan.seccomp_flags != 0 => {
                report.degraded.push(format!(
                "seccomp: this kernel refuses the profile's flags {:#x} ({e}); the filter is installed without them",
                plan.seccomp_flags
            ));
                security::install_seccomp(&plan.seccomp_bpf, 0)
            }
            r => r,
        }
    };
    match installed {
        Ok(()) => report.seccomp = SeccompStatus::Enforced,
        Err(e) => {
            if refuse {
                fail(ch, Stage::Seccomp, &e.to_string());
            }
            report.seccomp = SeccompStatus::NotApplied;
            report.degraded.push(format!("seccomp: {e}"));
        }
    }
}

pub(super) fn exec(ch: &Sandbox, argv: &[String], env: &[(String, String)]) -> ! {
    let cargs: Vec<CString> = match argv.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => fail(ch, Stage::Exec, "argument contains a NUL byte"),
    };
    let cenv: Vec<CString> = env
        .iter()
        .filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok())
        .collect();
    let argp = raw::CStrArray::new(&cargs);
    let envp = raw::CStrArray::new(&cenv);
    let prog = &argv[0];
    let candidates: Vec<PathBuf> = if prog.contains('/') {
        vec![PathBuf::from(prog)]
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(prog))
            .collect()
    };
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    let mut saw_eacces = false;
    for c in candidates {
        let Ok(cpath) = CString::new(c.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        last = raw::execve(&cpath, &argp, &envp);
        if last.raw_os_error() == Some(libc::EACCES) {
            saw_eacces = true;
        }
    }
    if saw_eacces {
        fail(ch, Stage::Exec, &format!("{prog}: permission denied"))
    } else if last.raw_os_error() == Some(libc::ENOENT) {
        fail_with(
            ch,
            StartFailure::not_found(format!("{prog}: command not found")),
        )
    } else {
        fail(ch, Stage::Exec, &format!("{prog}: {last}"))
    }
}
