//! The verbs that reach into a running gVisor sandbox from the host: `exec` and `ps`, each a
//! runsc call in ginit's pid, mount and network namespaces (where runsc finds its sandbox's
//! processes, state and control socket).

use crate::error::{other, Context, Result};
use crate::raw::{self, WaitStatus};
use crate::sandbox::Outcome;
use nucleus_spec::gvisor::GvisorPlan;
use nucleus_spec::plan::Plan;
use nucleus_spec::stage::{Stage, StartFailure};
use std::fs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::{Command, Stdio};

/// The namespaces of ginit a runsc call joins.
const GINIT_NS: i32 = libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWPID;

/// Run `argv` (a runsc call, no input, its stderr dropped, its stdout `stdout`) in ginit's
/// namespaces from a child of this process, and wait for it: true when it succeeded.
fn runsc_in_ginit(ginit: BorrowedFd<'_>, argv: &[String], stdout: Stdio) -> Result<bool> {
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: `nucleus exec` and `ps` are single-threaded; the child joins namespaces, runs
    // runsc (its child is in ginit's pid namespace) and exits.
    match unsafe { raw::fork() }.ctx("fork", "runsc")? {
        None => {
            if raw::setns(ginit, GINIT_NS).is_err() {
                raw::exit_now(125);
            }
            let ok = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            raw::exit_now(if ok { 0 } else { 1 })
        }
        Some(pid) => {
            drop(stdout);
            Ok(matches!(
                raw::waitpid(pid, false).ctx("wait", "runsc")?,
                Some((_, WaitStatus::Exited(0)))
            ))
        }
    }
}

/// `nucleus exec` in a gVisor sandbox: `runsc exec` of `plan.process` (its process file 0600
/// beside the bundle: the environment never goes on a command line) in ginit's pid, mount and
/// network namespaces, where runsc finds its sandbox's processes, state and control socket,
/// with this process's stdio (`capture`: into it; `-t`: a pty of ours). `plan.timeout_ms`:
/// then SIGTERM to the process inside (`runsc kill --pid`), SIGKILL after the grace period.
/// The outcome as native's: the command's status, or runsc's own error (its status is then
/// 128: runsc's cli/main.go) as the failure.
pub fn exec(
    plan: &Plan,
    ginit: BorrowedFd<'_>,
    capture: Option<crate::relay::Capture>,
) -> Result<Outcome> {
    let g = plan
        .gvisor
        .as_ref()
        .ok_or_else(|| other("exec", "not a gVisor sandbox"))?;
    let me = std::process::id();
    let file = g.dir.join(format!("exec-{me}.json"));
    let ipid = g.dir.join(format!("exec-{me}.pid"));
    let log = g.state().join(format!("exec-{me}.log"));
    let json = nucleus_spec::gvisor::exec_process(&plan.process).map_err(|e| other("exec", e))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = fs::remove_file(&file);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&file)
            .and_then(|mut f| f.write_all(&json))
            .ctx("write", file.display())?;
    }
    let gone = || {
        for f in [&file, &ipid, &log] {
            let _ = fs::remove_file(f);
        }
    };
    // `-t`: a foreground `runsc exec` gives the process its own terminal (its stdin, which
    // must be one): a pty of ours, whose master is relayed to the caller's terminal.
    let pty = match plan.process.tty {
        true => Some(crate::tty::open_in_sandbox()?),
        false => None,
    };
    let argv = g.exec_argv(&plan.id, &file, &ipid, &log);
    // (As for the sandbox's own streams: a regular file is written through a pipe.)
    let stdio = match (plan.process.tty, capture) {
        (true, _) => crate::relay::Stdio::default(),
        (false, Some(c)) => crate::relay::Stdio::capturing(c).ctx("pipe", "capture")?,
        (false, None) => crate::relay::Stdio::for_gvisor().ctx("pipe", "standard descriptors")?,
    };
    #[allow(unsafe_code)] // raw::fork: the caller must be single-threaded.
    // SAFETY: `nucleus exec` is single-threaded; the child only joins namespaces, runs runsc
    // and exits.
    let child = unsafe { raw::fork() }.ctx("fork", "exec");
    let (code, timed_out) = match child {
        Ok(None) => {
            let term = pty.as_ref().is_none_or(|p| {
                rustix::process::setsid().is_ok()
                    && crate::tty::become_controlling(p.slave.as_fd()).is_ok()
            });
            if !term || stdio.install().is_err() || raw::setns(ginit, GINIT_NS).is_err() {
                raw::exit_now(125);
            }
            // (Its child is in ginit's pid namespace.)
            let st = Command::new(&argv[0]).args(&argv[1..]).status();
            raw::exit_now(match st {
                Ok(s) => s.code().unwrap_or_else(|| {
                    128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
                }),
                Err(_) => 125,
            })
        }
        Ok(Some(pid)) => {
            let mut relay = crate::relay::Relay::default();
            stdio
                .into_relay(&mut relay)
                .ctx("relay", "standard descriptors")?;
            let pidfd = raw::pidfd_open(pid).ctx("pidfd", "runsc exec")?;
            let _raw = match &pty {
                Some(p) => {
                    crate::tty::copy_window_size(rustix::stdio::stdin(), p.master.as_fd());
                    crate::relay::pty(&mut relay, p.master.as_fd(), true)
                        .ctx("relay", "terminal")?;
                    Some(crate::tty::RawMode::enter())
                }
                None => None,
            };
            // (Ours: the replica is the child's only.)
            let pty = pty.map(|p| p.master);
            let now = std::time::Instant::now;
            let mut deadline = plan
                .timeout_ms
                .map(|ms| now() + std::time::Duration::from_millis(ms));
            let mut kill_at = None;
            let mut timed_out = false;
            loop {
                let wait = [deadline, kill_at]
                    .into_iter()
                    .flatten()
                    .min()
                    .map_or(-1, |t| {
                        t.saturating_duration_since(now()).as_millis().min(1 << 30) as i32 + 1
                    });
                let mut with = vec![(std::os::fd::AsRawFd::as_raw_fd(&pidfd), libc::POLLIN)];
                with.extend(relay.poll_set());
                let rev = raw::poll(&with, wait).ctx("poll", "")?;
                relay.service(&rev[1..]);
                if rev[0] != 0 {
                    break;
                }
                if deadline.is_some_and(|d| now() >= d) {
                    deadline = None;
                    timed_out = true;
                    kill_inside(g, &plan.id, ginit, &ipid, libc::SIGTERM);
                    kill_at = Some(
                        now()
                            + std::time::Duration::from_millis(
                                nucleus_spec::plan::TIMEOUT_GRACE_MS,
                            ),
                    );
                }
                if kill_at.is_some_and(|k| now() >= k) {
                    kill_at = None;
                    kill_inside(g, &plan.id, ginit, &ipid, libc::SIGKILL);
                }
            }
            relay.finish();
            drop(pty);
            let code = raw::waitpid(pid, false)
                .ctx("wait", "runsc exec")?
                .map_or(125, |(_, s)| s.code());
            (code, timed_out)
        }
        Err(e) => {
            gone();
            return Err(e);
        }
    };
    let err = (code == 128)
        .then(|| fs::read_to_string(&log).ok())
        .flatten()
        .and_then(|l| nucleus_spec::gvisor::last_error(&l));
    gone();
    let failure = err.map(|e| match nucleus_spec::gvisor::start_failure_code(&e) {
        127 => StartFailure::not_found(e),
        126 => StartFailure::new(Stage::Exec, e),
        _ => StartFailure::new(Stage::Init, format!("runsc exec: {e}")),
    });
    Ok(Outcome {
        status: WaitStatus::Exited(code),
        report: None,
        failure,
        usage: Default::default(),
        traced: None,
        timed_out,
        handed_over: false,
        init_running: false,
    })
}

/// Signal the process an exec started inside gVisor (`--internal-pid-file`: its pid there),
/// with `runsc kill --pid` in ginit's namespaces.
fn kill_inside(g: &GvisorPlan, id: &str, ginit: BorrowedFd<'_>, ipid: &Path, sig: i32) {
    let Some(inner) = fs::read_to_string(ipid)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    else {
        return;
    };
    let argv = g.argv(&["kill", "--pid", &inner.to_string(), id, &sig.to_string()]);
    let _ = runsc_in_ginit(ginit, &argv, Stdio::null());
}

/// `nucleus ps ID` of a gVisor sandbox: the processes inside gVisor's kernel, as `runsc ps`
/// lists them (its table: the sentry's pids), run in ginit's namespaces. At most 1 MiB.
pub fn ps(plan: &Plan, ginit: BorrowedFd<'_>) -> Result<String> {
    let g = plan
        .gvisor
        .as_ref()
        .ok_or_else(|| other("ps", "not a gVisor sandbox"))?;
    let argv = g.argv(&["ps", &plan.id]);
    // Into a memory file (no reader to keep up with it while runsc writes), read once done.
    let mem = rustix::fs::memfd_create("runsc-ps", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .ctx("memfd", "runsc ps")?;
    let ours = mem.try_clone().ctx("dup", "runsc ps")?;
    if !runsc_in_ginit(ginit, &argv, Stdio::from(mem))? {
        return Err(other("runsc ps", "failed"));
    }
    let mut f = fs::File::from(ours);
    std::io::Seek::rewind(&mut f).ctx("read", "runsc ps")?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, 1 << 20), &mut out)
        .ctx("read", "runsc ps")?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
