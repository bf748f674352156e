//! The runtime's side while the sandbox runs: what the sandbox reports (`Collected`), the
//! control socket of a detached sandbox, and `parent_wait` (signals, tty, seccomp
//! notifications, egress reports, `--timeout`, the exit).

use super::parent::fd_path;
use super::{Detach, Observer, Outcome};
use crate::cgroup::Usage;
use crate::channel::{
    ConsoleSocket, ExecSyncRuntime, FromChild, Release, Runtime, SecurityReport, Stage,
    StartFailure, ToChild, START,
};
use crate::error::{Context, Result};
use crate::netwatch;
use crate::notify;
use crate::raw::{self, WaitStatus};
use crate::trace;
use crate::tty;
use nucleus_spec::plan::{Plan, SeccompNotify};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// What the sandbox has told the runtime so far.
#[derive(Default)]
pub(super) struct Collected {
    report: Option<SecurityReport>,
    failure: Option<StartFailure>,
    status: Option<WaitStatus>,
    sync: Option<ExecSyncRuntime>,
    /// The sandbox must die (its terminal could not be handed over).
    kill: bool,
    /// Descriptor number of the workload's seccomp listener, announced before it exists.
    listener_at: Option<i32>,
    pty: Option<OwnedFd>,
    raw_mode: Option<tty::RawMode>,
    /// Egress supervision sockets from the sandbox, not yet served.
    watch: Option<netwatch::WatchSockets>,
    /// The status is reported as soon as it comes (parent_wait's `early`).
    early: bool,
}

impl Collected {
    /// Take one message from the channel; false when the channel is closed.
    fn absorb(
        &mut self,
        ch: &Runtime,
        obs: &mut dyn Observer,
        console: Option<&ConsoleSocket>,
    ) -> bool {
        match ch.recv() {
            Ok(Some(FromChild::Timings(m))) => trace::merge(m),
            Ok(Some(FromChild::Applied(r))) => {
                obs.applied(&r);
                self.report = Some(r);
            }
            Ok(Some(FromChild::Failed(f))) => self.failure = Some(f),
            Ok(Some(FromChild::ExecSync(s))) => self.sync = s.into_inner().map(Into::into),
            Ok(Some(FromChild::Listener(n))) => self.listener_at = Some(n),
            Ok(Some(FromChild::NetWatch {
                udp,
                tcp,
                sets,
                log,
            })) => self.watch = Some(netwatch::WatchSockets::received(udp, tcp, sets, log)),
            Ok(Some(FromChild::Exited(st))) => {
                self.status = Some(st);
                trace::mark("workload exit reported");
                obs.workload_exited(self.early);
            }
            Ok(Some(FromChild::Pty(m))) => {
                let m = m.into_inner();
                if let (Some(m), Some(c)) = (&m, console) {
                    // The receiver owns the terminal from now on; ours closes.
                    if let Err(e) = c.send_master(m.as_fd()) {
                        self.failure = Some(StartFailure::new(Stage::ConsoleSocket, e.to_string()));
                        self.kill = true;
                    }
                } else if let Some(m) = m {
                    tty::copy_window_size(rustix::stdio::stdin(), m.as_fd());
                    self.raw_mode = Some(tty::RawMode::enter());
                    self.pty = Some(m);
                }
            }
            Ok(None) | Err(_) => return false,
        }
        true
    }
}

/// The control socket of a detached sandbox, and who waits for its exec result.
pub(super) struct Control<'a> {
    listener: BorrowedFd<'a>,
    console: Option<&'a ConsoleSocket>,
    hold: bool,
    start_sent: bool,
    waiters: Vec<OwnedFd>,
    /// Once known: None = exec succeeded, Some((exit code, message)) = it failed.
    result: Option<Option<(u8, String)>>,
}

impl<'a> Control<'a> {
    pub(super) fn new(d: &'a Detach) -> Self {
        Self {
            listener: d.control.as_fd(),
            console: d.console.as_ref(),
            hold: d.hold,
            start_sent: false,
            waiters: vec![],
            result: None,
        }
    }

    fn reply(conn: &OwnedFd, result: &Option<(u8, String)>) {
        use nucleus_spec::state::MonitorReport;
        let r = match result {
            None => MonitorReport::Ok,
            Some((code, msg)) => MonitorReport::Error {
                code: *code,
                msg: msg.clone(),
            },
        };
        let line = format!("{}\n", r.encode());
        let _ = raw::write_all(conn.as_fd(), line.as_bytes());
    }

    /// Serve one request: `start` (release a held workload; answered once its exec result is
    /// known).
    fn serve(&mut self, sync: Option<&ExecSyncRuntime>) {
        let Ok(conn) = raw::unix_accept(self.listener, 2000) else {
            return;
        };
        let mut buf = [0u8; 64];
        let n = raw::read(conn.as_fd(), &mut buf).unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        if req != START {
            Self::reply(&conn, &Some((125, format!("unknown request {req:?}"))));
            return;
        }
        if !self.hold {
            Self::reply(
                &conn,
                &Some((125, "the sandbox was already started".into())),
            );
            return;
        }
        if let Some(r) = &self.result {
            if r.is_none() {
                Self::reply(
                    &conn,
                    &Some((125, "the sandbox was already started".into())),
                );
            } else {
                Self::reply(&conn, r);
            }
            return;
        }
        if !self.start_sent {
            match sync {
                Some(s) if s.send(Release::Start).is_ok() => self.start_sent = true,
                _ => {
                    Self::reply(
                        &conn,
                        &Some((125, "the sandbox is not waiting for start".into())),
                    );
                    return;
                }
            }
        }
        self.waiters.push(conn);
    }

    pub(super) fn finish(&mut self, result: Option<(u8, String)>) {
        for w in self.waiters.drain(..) {
            Self::reply(&w, &result);
        }
        self.result = Some(result);
    }
}

/// Wait for a process the runtime forked (and whose channel end it holds): relay signals,
/// proxy its tty, collect its report and exit status.
pub(crate) fn wait(
    plan: &Plan,
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    ch: &Runtime,
    sfd: &OwnedFd,
    obs: &mut dyn Observer,
    relay: crate::relay::Relay,
) -> Result<Outcome> {
    parent_wait(pid, pidfd, ch, sfd, obs, None, plan, relay, false)
}

/// Copy the workload's seccomp listener: descriptor `n` of init's child (the workload) or,
/// for a process `exec` started, of `pid` itself. The workload announced the number before
/// creating it, so wait until it is there and is a seccomp listener.
pub(super) fn fetch_listener(
    pid: libc::pid_t,
    n: i32,
    ch: i32,
) -> std::io::Result<Option<OwnedFd>> {
    let target = raw::first_child(pid).unwrap_or(pid);
    let pidfd = raw::pidfd_open(target)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(fd) = notify::pidfd_getfd(pidfd.as_fd(), n) {
            let link = fs::read_link(fd_path(fd.as_fd())).unwrap_or_default();
            if link.to_string_lossy().contains("seccomp") {
                return Ok(Some(fd));
            }
        }
        // The workload died, or wrote again (it says its filter failed): no listener.
        let r = raw::poll_read(&[pidfd.as_raw_fd(), ch], 0)?;
        if r[0] != 0 || r[1] != 0 {
            return Ok(None);
        }
        if std::time::Instant::now() > deadline {
            return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn parent_wait(
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    ch: &Runtime,
    sfd: &OwnedFd,
    obs: &mut dyn Observer,
    mut control: Option<&mut Control<'_>>,
    plan: &Plan,
    mut relay: crate::relay::Relay,
    early: bool,
) -> Result<Outcome> {
    let seccomp_notify = plan.seccomp_notify.as_ref();
    let resolver = plan.net.resolver.as_ref();
    let mut got = Collected {
        early,
        ..Default::default()
    };
    let mut watcher: Option<netwatch::Watcher> = None;
    let mut ch_open = true;
    let mut pty_relayed = false;
    let console = control.as_ref().and_then(|c| c.console);
    let mut mode = seccomp_notify.and_then(|n| match n {
        SeccompNotify::Trace => Some(notify::Mode::Trace(Default::default())),
        SeccompNotify::LogDenied { decide } => Some(notify::Mode::LogDenied(decide.clone())),
        // An OCI container's agent serves it (an exec'd process's listener goes there too);
        // the runtime answers none of its notifications.
        SeccompNotify::Agent { .. } => None,
    });
    let mut listener: Option<OwnedFd> = None;
    let mut deny_log = notify::DenyLog::default();
    // --timeout: counted from the start (a created sandbox's from `start`).
    let mut deadline: Option<std::time::Instant> = None;
    let mut kill_at: Option<std::time::Instant> = None;
    let mut timed_out = false;
    loop {
        let now = std::time::Instant::now();
        let held = control.as_ref().is_some_and(|c| c.hold && !c.start_sent);
        if let (None, Some(ms), false) = (deadline, plan.timeout_ms, held) {
            deadline = Some(now + std::time::Duration::from_millis(ms));
        }
        for (nr, errno, count) in deny_log.flush(now) {
            obs.denied_again(&syscall_name(nr), errno, count);
        }
        // Over budget: the listener waits (and so does the workload in its syscall).
        let serve_notify = deny_log.may_serve(now);
        if let Some(w) = got.watch.take() {
            watcher = Some(netwatch::Watcher::spawn(resolver.cloned(), w)?);
        }
        if let Some(n) = got.listener_at.take().filter(|n| *n >= 0) {
            // None: the workload said it has no listener after all (its filter failed).
            if let Some(l) = fetch_listener(pid, n, ch.raw()).ctx("take the seccomp listener", n)? {
                match seccomp_notify {
                    Some(SeccompNotify::Agent { .. }) => super::oci::hand_to_agent(plan, pid, l)?,
                    _ => listener = Some(l),
                }
                ch.send(ToChild::ListenerTaken)
                    .ctx("send", "listener taken")?;
            }
        }
        if let (Some(m), false) = (&got.pty, pty_relayed) {
            pty_relayed = true;
            crate::relay::pty(&mut relay, m.as_fd(), true).ctx("relay", "terminal")?;
        }
        let mut fds = vec![
            if ch_open { ch.raw() } else { -1 },
            sfd.as_raw_fd(),
            pidfd.as_raw_fd(),
        ];
        let slot = |fds: &mut Vec<i32>, fd: i32| {
            fds.push(fd);
            fds.len() - 1
        };
        let sync_i = got.sync.as_ref().map(|s| slot(&mut fds, s.raw()));
        let ctl_i = control
            .as_ref()
            .map(|c| slot(&mut fds, c.listener.as_raw_fd()));
        let notify_i = listener
            .as_ref()
            .map(|l| slot(&mut fds, if serve_notify { l.as_raw_fd() } else { -1 }));
        let watch_i = watcher.as_ref().map(|w| slot(&mut fds, w.fd().as_raw_fd()));
        let own = fds.len();
        fds.extend(obs.watched());
        let mut timeout = obs.next_tick_ms();
        let mut sooner = |ms: i32| {
            if ms >= 0 && (timeout < 0 || ms < timeout) {
                timeout = ms;
            }
        };
        sooner(deny_log.ms_to_flush(now));
        for t in [deadline.filter(|_| !timed_out), kill_at]
            .into_iter()
            .flatten()
        {
            // Rounded up: a poll that wakes before the deadline would only spin.
            let ms = t.saturating_duration_since(now).as_micros().div_ceil(1000);
            sooner(ms.min(i32::MAX as u128) as i32);
        }
        if listener.is_some() && !serve_notify {
            sooner(1);
        }
        // Our descriptors and the observer's read; then the relay's streams.
        let mut with: Vec<(i32, i16)> = fds.iter().map(|&f| (f, libc::POLLIN)).collect();
        with.extend(relay.poll_set());
        let all = raw::poll(&with, timeout).ctx("poll", "")?;
        let (rev, relay_rev) = all.split_at(fds.len());
        relay.service(relay_rev);
        let relay_moved = relay_rev.iter().any(|r| *r != 0);
        let ready = |i: Option<usize>| i.is_some_and(|i| rev[i] != 0);
        obs.tick();
        let after = std::time::Instant::now();
        if let (Some(d), false) = (deadline, timed_out) {
            if after >= d {
                timed_out = true;
                obs.timed_out(plan.timeout_ms.unwrap_or(0));
                // Init forwards it to the workload.
                let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGTERM);
                kill_at = Some(
                    after + std::time::Duration::from_millis(nucleus_spec::plan::TIMEOUT_GRACE_MS),
                );
            }
        }
        if kill_at.is_some_and(|k| after >= k) {
            kill_at = None;
            let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        }
        if rev[..own].iter().all(|r| *r == 0) {
            // Only the observer's time or descriptor, or the relay: nothing else is ready.
            let _ = relay_moved;
            continue;
        }
        if let (true, Some(w)) = (ready(watch_i), &watcher) {
            if let Some(r) = w.recv() {
                obs.egress_refused(&r);
            }
        }
        if rev[0] != 0 {
            ch_open = got.absorb(ch, obs, console);
            if std::mem::take(&mut got.kill) {
                let _ = raw::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            }
            // Report first, clean after (`early`: parent_run allows it only where nothing is
            // served to the end: no control socket, seccomp listener, egress watcher or
            // terminal). What the caller's streams still hold is moved now, as it is once
            // init is gone.
            if let (true, Some(status)) = (early, got.status) {
                relay.finish();
                // A signal that came with the report is the ended workload's (it was forwarded
                // or is moot): read, not left pending for the restored mask to deliver to the
                // runtime in place of the status.
                while raw::poll_read(&[sfd.as_raw_fd()], 0).is_ok_and(|r| r[0] != 0) {
                    if raw::read_signal(sfd.as_fd()).is_err() {
                        break;
                    }
                }
                return Ok(Outcome {
                    status,
                    report: got.report,
                    failure: got.failure,
                    usage: Usage::default(),
                    traced: None,
                    timed_out,
                    handed_over: false,
                    init_running: true,
                });
            }
            continue;
        }
        if rev[1] != 0 {
            let sig = raw::read_signal(sfd.as_fd()).ctx("read signal", "")?;
            match (sig, &got.pty) {
                (libc::SIGWINCH, Some(m)) => {
                    tty::copy_window_size(rustix::stdio::stdin(), m.as_fd())
                }
                _ => {
                    let _ = raw::pidfd_send_signal(pidfd.as_fd(), sig);
                }
            }
        }
        if ready(sync_i) {
            // The workload's end closed: its exec succeeded, or it failed and said so first
            // (the report is already queued on the channel).
            while ch_open
                && raw::poll_read(&[ch.raw()], 0)
                    .map(|r| r[0] != 0)
                    .unwrap_or(false)
            {
                ch_open = got.absorb(ch, obs, console);
            }
            let held = control.as_ref().is_some_and(|c| c.hold && !c.start_sent);
            let failed = match &got.failure {
                Some(f) => Some(f.clone()),
                None if held => Some(StartFailure::new(Stage::Start, "killed before start")),
                None => None,
            };
            obs.exec_result(failed.as_ref());
            if let Some(c) = control.as_deref_mut() {
                c.finish(failed.map(|f| (f.exit_code(), f.to_string())));
            }
            got.sync = None;
            continue;
        }
        if let (Some(i), Some(l), Some(m)) = (notify_i, &listener, mode.as_mut()) {
            if rev[i] & libc::POLLIN != 0 {
                deny_log.take();
                if let Ok(seen) = notify::serve(l.as_fd(), m) {
                    if let Some(e) = seen.errno {
                        if deny_log.record(seen.nr, e) {
                            obs.denied(seen.pid, &syscall_name(seen.nr), e);
                        }
                    }
                }
            } else if rev[i] != 0 {
                // No process uses the filter any more.
                listener = None;
            }
        }
        if ready(ctl_i) {
            if let Some(c) = control.as_deref_mut() {
                c.serve(got.sync.as_ref());
            }
        }
        if rev[2] != 0 {
            for (nr, errno, count) in deny_log.flush(now + notify::DenyLog::WINDOW) {
                obs.denied_again(&syscall_name(nr), errno, count);
            }
            // Init is gone: move what its terminal or pipes still hold (without waiting),
            // drain the channel, then reap. Nothing of the caller's stays with the sandbox.
            relay.finish();
            while ch_open {
                ch_open = got.absorb(ch, obs, console);
            }
            let init_status = raw::waitpid(pid, false)
                .ctx("wait", "sandbox init")?
                .map(|(_, s)| s);
            // Its sockets hold the sandbox's network namespace (and so its addresses).
            if let Some(w) = watcher.take() {
                for r in w.stop() {
                    obs.egress_refused(&r);
                }
            }
            let status = got
                .status
                .or(init_status)
                .unwrap_or(WaitStatus::Exited(255));
            if let Some(c) = control.as_deref_mut() {
                if c.result.is_none() {
                    c.finish(Some((
                        status.code().clamp(0, 255) as u8,
                        "the sandbox ended before its workload started".into(),
                    )));
                }
            }
            return Ok(Outcome {
                status,
                report: got.report,
                failure: got.failure,
                usage: Usage::default(),
                traced: match mode {
                    Some(notify::Mode::Trace(t)) => Some(t),
                    _ => None,
                },
                timed_out,
                handed_over: false,
                init_running: false,
            });
        }
    }
}

/// A syscall's name for a report ("numbers this architecture does not define" for the bucket
/// of those).
pub(super) fn syscall_name(nr: u32) -> String {
    match nucleus_spec::seccomp::syscalls::name(nr) {
        Some(n) => n.to_string(),
        None if nr == notify::UNKNOWN_SYSCALLS => {
            "syscalls this architecture does not define".into()
        }
        None => format!("syscall {nr}"),
    }
}
