//! `nucleus exec`.

use crate::cli::ExecArgs;
use crate::events::Events;
use crate::log::Logger;
use crate::records::{effective, record_exec_cpu, resolve, settled, workload_of};
use anyhow::{anyhow, bail, Context, Result};
use nucleus_spec::config::{ConfigError, EnvVar};
use nucleus_spec::state::{SecurityReport, Status};
use nucleus_spec::Plan;
use nucleus_sys::process;
use nucleus_sys::sandbox::Observer;
use nucleus_sys::store::Store;

pub(crate) struct ExecObserver<'a> {
    log: &'a Logger,
}

impl Observer for ExecObserver<'_> {
    fn denied(&mut self, pid: u32, syscall: &str, errno: i32) {
        self.log.warn(&format!(
            "seccomp: denied {syscall} (errno {errno}) to pid {pid}"
        ));
    }
    fn denied_again(&mut self, syscall: &str, errno: i32, count: u64) {
        self.log.warn(&format!(
            "seccomp: denied {syscall} (errno {errno}) {count} more times"
        ));
    }
    fn applied(&mut self, r: &SecurityReport) {
        for d in &r.degraded {
            self.log.warn(&format!("security degraded: {d}"));
        }
    }
}

/// The OOM kills the sandbox's cgroup has counted so far (0 without a memory controller).
fn oom_kills(plan: &Plan, cgroups: &[std::path::PathBuf]) -> u64 {
    let Some(cp) = &plan.cgroup else { return 0 };
    let leaves: Vec<(String, std::path::PathBuf)> = cp
        .dirs
        .iter()
        .map(|d| d.hierarchy.clone())
        .zip(cgroups.iter().cloned())
        .collect();
    nucleus_sys::cgroup::read_usage(cp.driver, &leaves, false).oom_kills
}

/// `exec -u`: a uid, uid:gid, or a name in the sandbox's /etc/passwd (read inside its root,
/// never following a link out of it).
fn exec_user(u: &str, passwd: impl FnOnce() -> Result<String, String>) -> Result<(u32, u32)> {
    let bad = |m: String| ConfigError::new("--user", m);
    let num = |s: &str| s.parse::<u32>().ok().filter(|n| *n <= 65534);
    if let Some((uid, gid)) = u.split_once(':') {
        return match (num(uid), num(gid)) {
            (Some(uid), Some(gid)) => Ok((uid, gid)),
            _ => Err(bad(format!("{u:?}: give UID:GID (0-65534 each)")).into()),
        };
    }
    if let Some(uid) = num(u) {
        return Ok((uid, uid));
    }
    let passwd = passwd().map_err(|e| bad(format!("{u:?}: the sandbox's /etc/passwd: {e}")))?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == u).then(|| Some((num(f[2])?, num(f[3])?)))?
        })
        .ok_or_else(|| {
            bad(format!(
                "{:?}: not a user of the sandbox (its /etc/passwd), nor a uid",
                nucleus_spec::config::single_line(u)
            ))
            .into()
        })
}

pub(crate) fn exec(store: &Store, a: &ExecArgs, log: &Logger) -> Result<u8> {
    let s = settled(store, resolve(store, &a.id)?);
    let gvisor = crate::records::is_gvisor(&s);
    let (st, _) = effective(&s);
    if st != Status::Running {
        bail!("{}: is {}; exec needs a running sandbox", a.id, st.as_str());
    }
    // (As runc and docker: a new process in a frozen sandbox would hang on cgroup v2, and on
    // v1 run outside the freeze.)
    if crate::records::is_paused(store, &s.id) {
        bail!("{}: is paused; unpause it first", a.id);
    }
    // Join through the workload: it is in every namespace of the sandbox (time included) and,
    // unlike the mini-init, dumpable, so an unprivileged owner may open it too.
    // (A gVisor sandbox's is ginit, in whose namespaces runsc finds its own.)
    let init = match gvisor {
        true => s.init,
        false => s.workload.or_else(|| s.init.as_ref().and_then(workload_of)),
    }
    .ok_or_else(|| anyhow!("{}: its workload is not known", a.id))?;
    let data = std::fs::read(store.dir(&s.id).join("plan.json"))
        .with_context(|| format!("{}: read its plan", a.id))?;
    let mut plan: Plan = serde_json::from_slice(&data).context("decode the sandbox's plan")?;
    if a.command.is_empty() {
        return Err(ConfigError::new("COMMAND", "give the command to run after `--`").into());
    }
    plan.process.argv = a.command.clone();
    // The sandbox's TERM is for its own terminal; exec -t brings one (a run with -t has it).
    if a.tty && !plan.process.env.iter().any(|(k, _)| k == "TERM") {
        plan.process.env.push(("TERM".into(), "xterm".into()));
    }
    for e in &a.env {
        let v = EnvVar::parse("--env", e)?;
        plan.process.env.retain(|(k, _)| *k != v.key);
        plan.process.env.push((v.key, v.value));
    }
    if let Some(w) = &a.workdir {
        if !w.is_absolute() {
            return Err(ConfigError::new(
                "--workdir",
                format!("{}: must be an absolute path", w.display()),
            )
            .into());
        }
        plan.process.cwd = w.clone();
    }
    plan.process.tty = a.tty;
    // The exec's own time limit (never the sandbox's).
    plan.timeout_ms = match &a.timeout {
        None => None,
        Some(t) => match nucleus_spec::config::parse_duration_ms("--timeout", t)? {
            0 => return Err(ConfigError::new("--timeout", "must be more than 0").into()),
            ms => Some(ms),
        },
    };
    if let Some(u) = &a.user {
        let (uid, gid) = exec_user(u, || match gvisor {
            // Its /etc/passwd is the plan's (the view's link to the root's file).
            true => plan
                .mounts
                .iter()
                .find_map(|m| match m {
                    nucleus_spec::mounts::MountOp::File { dst, contents, .. }
                        if dst.ends_with("passwd") =>
                    {
                        Some(contents.clone())
                    }
                    _ => None,
                })
                .ok_or_else(|| "none in its plan".to_string()),
            false => nucleus_sys::resolve::read_in_proc_root(init.pid, "etc/passwd", 1 << 20)
                .map_err(|e| e.to_string()),
        })?;
        // Another user may not enter the workload's home (0700): it starts in / unless -w.
        if uid != plan.process.uid && a.workdir.is_none() {
            plan.process.cwd = std::path::PathBuf::from("/");
        }
        plan.process.uid = uid;
        plan.process.gid = gid;
        plan.process.additional_gids.clear();
    }
    if a.tty && (a.capture || a.stdin_file.is_some()) {
        return Err(ConfigError::new(
            "--tty",
            "not with --capture or --stdin-file (a terminal is the command's input and output)",
        )
        .into());
    }
    if gvisor && a.detach {
        return Err(ConfigError::new(
            "--detach",
            "not in a gVisor sandbox (runsc exec runs the command in the foreground)",
        )
        .into());
    }
    if a.detach {
        let clash = [
            (a.tty, "--tty"),
            (a.json, "--json"),
            (a.timeout.is_some(), "--timeout"),
            (a.stdin_file.is_some(), "--stdin-file"),
        ];
        if let Some((_, f)) = clash.iter().find(|(on, _)| *on) {
            return Err(ConfigError::new(
                "--detach",
                format!("not with {f} (nothing waits for a command in the background)"),
            )
            .into());
        }
        let Some(pidfd) = process::pidfd(&init) else {
            bail!("{}: is not running any more", a.id);
        };
        return match nucleus_sys::join::exec_in_background(
            &plan,
            init.pid,
            std::os::fd::AsFd::as_fd(&pidfd),
            &s.cgroups,
        ) {
            Ok(_) => Ok(0),
            Err(nucleus_sys::sandbox::CreateError::Runtime(e)) => Err(e.into()),
            Err(nucleus_sys::sandbox::CreateError::Failed(f)) => {
                log.error(&f.to_string());
                Ok(f.exit_code())
            }
        };
    }
    let capture_max = nucleus_spec::config::parse_size("--capture-max", &a.capture_max)?;
    let capture = match a.capture {
        true => Some(nucleus_sys::relay::Capture::new(capture_max).context("memfd")?),
        false => None,
    };
    if let Some(f) = &a.stdin_file {
        let file = std::fs::File::open(f)
            .map_err(|e| ConfigError::new("--stdin-file", format!("{}: {e}", f.display())))?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(ConfigError::new(
                "--stdin-file",
                format!("{}: not a regular file", f.display()),
            )
            .into());
        }
        nucleus_sys::relay::stdin_from(&file).context("stdin")?;
    }
    let Some(pidfd) = process::pidfd(&init) else {
        bail!("{}: is not running any more", a.id);
    };
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit(
        "exec",
        &s.id,
        serde_json::json!({ "argv": a.command, "tty": a.tty }),
    );
    let kept = capture.as_ref().map(|c| c.share()).transpose()?;
    let ooms = || oom_kills(&plan, &s.cgroups);
    let ooms_before = ooms();
    let t0 = std::time::Instant::now();
    let out = if gvisor {
        nucleus_sys::sandbox::gvisor_exec(&plan, std::os::fd::AsFd::as_fd(&pidfd), capture)?
    } else {
        nucleus_sys::join::exec(
            &plan,
            init.pid,
            std::os::fd::AsFd::as_fd(&pidfd),
            &s.cgroups,
            &mut ExecObserver { log },
            (true, capture),
        )?
    };
    let duration = t0.elapsed();
    let mut code = out.status.code().clamp(0, 255) as u8;
    if let Some(f) = &out.failure {
        // (runsc said it on the command's stderr already, unless that was captured.)
        if !gvisor || a.capture {
            log.error(&f.to_string());
        }
        code = f.exit_code();
    }
    if out.timed_out {
        code = 124;
    }
    if a.json {
        let signal = match out.status {
            nucleus_sys::raw::WaitStatus::Signaled(s) => Some(s),
            _ => None,
        };
        // This process's only child was the exec's: its tree's CPU time and largest resident
        // set.
        let ru = nucleus_sys::raw::rusage(true);
        let cpu_usec = ru.map(|r| {
            (r.ru_utime.tv_sec as u64 + r.ru_stime.tv_sec as u64) * 1_000_000
                + r.ru_utime.tv_usec as u64
                + r.ru_stime.tv_usec as u64
        });
        let mut v = serde_json::json!({
            "exit_code": code,
            "signal": signal,
            "timed_out": out.timed_out,
            "oom_killed": ooms() > ooms_before,
            "duration_ms": duration.as_secs_f64() * 1000.0,
            "cpu_usec": cpu_usec,
            "peak_memory_bytes": ru.map(|r| r.ru_maxrss as u64 * 1024),
            "error": out.failure.as_ref().map(ToString::to_string),
        });
        if let Some(c) = kept {
            for (name, (b, all)) in ["stdout", "stderr"].into_iter().zip(c.read()?) {
                v[name] = String::from_utf8_lossy(&b).into_owned().into();
                v[format!("{name}_bytes")] = all.into();
                v[format!("{name}_truncated")] = (all > b.len() as u64).into();
            }
        }
        outln!("{v}");
    }
    // (v2 counts it in the sandbox's cpu.stat: nothing to write; nor for gVisor, whose
    // sentry runs it inside the sandbox's cgroup.)
    if !gvisor
        && plan
            .cgroup
            .as_ref()
            .is_some_and(|c| c.driver == nucleus_spec::cgroup::Driver::V1)
    {
        record_exec_cpu(store, &s.id);
    }
    events.emit(
        "exec_exited",
        &s.id,
        serde_json::json!({ "argv": a.command, "status": code }),
    );
    Ok(code)
}
