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

pub(crate) fn exec(store: &Store, a: &ExecArgs, log: &Logger) -> Result<u8> {
    let s = settled(store, resolve(store, &a.id)?);
    let (st, _) = effective(&s);
    if st != Status::Running {
        bail!("{}: is {}; exec needs a running sandbox", a.id, st.as_str());
    }
    // Join through the workload: it is in every namespace of the sandbox (time included) and,
    // unlike the mini-init, dumpable, so an unprivileged owner may open it too.
    let init = s
        .workload
        .or_else(|| s.init.as_ref().and_then(workload_of))
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
    let Some(pidfd) = process::pidfd(&init) else {
        bail!("{}: is not running any more", a.id);
    };
    let mut events = Events::open(s.events.as_deref(), None).unwrap_or_default();
    events.emit(
        "exec",
        &s.id,
        serde_json::json!({ "argv": a.command, "tty": a.tty }),
    );
    let out = nucleus_sys::join::exec(
        &plan,
        init.pid,
        std::os::fd::AsFd::as_fd(&pidfd),
        &s.cgroups,
        &mut ExecObserver { log },
    )?;
    let mut code = out.status.code().clamp(0, 255) as u8;
    if let Some(f) = &out.failure {
        log.error(&f.to_string());
        code = f.exit_code();
    }
    // (v2 counts it in the sandbox's cpu.stat: nothing to write.)
    if plan
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
