//! Health checks run by the monitor.

use nucleus_spec::Plan;
use nucleus_sys::store::Store;
use std::time::{Duration, Instant};

/// Health checks: `nucleus exec ID -- /bin/sh -c CMD` every interval once the workload runs;
/// `retries` consecutive failures after the start period make the sandbox unhealthy, one
/// success healthy again. Status changes are recorded and emitted as `health` events.
pub(crate) struct Health {
    pub(crate) check: nucleus_spec::config::HealthCheck,
    pub(crate) root: std::path::PathBuf,
    pub(crate) started: Option<Instant>,
    pub(crate) next: Option<Instant>,
    pub(crate) running: Option<(std::process::Child, std::os::fd::OwnedFd, Instant)>,
    pub(crate) state: nucleus_spec::health::HealthState,
}

impl Health {
    /// No more checks; one still running is killed and reaped.
    pub(crate) fn stop(&mut self) {
        self.next = None;
        if let Some((mut c, _, _)) = self.running.take() {
            Self::kill(&c);
            let _ = c.wait();
        }
    }
    /// Kill a check and everything it started: the process `nucleus exec` started in the
    /// sandbox leads a session and group of its own (its children stay in that group), so
    /// that group goes first, then the check's own group.
    pub(crate) fn kill(c: &std::process::Child) {
        if let Some(inner) = nucleus_sys::raw::first_child(c.id() as i32) {
            let _ = nucleus_sys::raw::kill(-inner, libc::SIGKILL);
        }
        let _ = nucleus_sys::raw::kill(-(c.id() as i32), libc::SIGKILL);
    }
    pub(crate) fn new(plan: &Plan, store: &Store) -> Option<Health> {
        plan.health.clone().map(|check| Health {
            state: nucleus_spec::health::HealthState::new(check.retries),
            check,
            root: store.root().to_path_buf(),
            started: None,
            next: None,
            running: None,
        })
    }
    /// A readiness command (`--readiness-exec`), run like a check every `every`.
    pub(crate) fn new_probe(cmd: &str, every: Duration, store: &Store) -> Option<Health> {
        let ms = every.as_millis() as u64;
        Some(Health {
            state: nucleus_spec::health::HealthState::new(1),
            check: nucleus_spec::config::HealthCheck {
                cmd: cmd.to_string(),
                interval_ms: ms,
                timeout_ms: ms * 20,
                retries: 1,
                start_period_ms: 0,
            },
            root: store.root().to_path_buf(),
            started: None,
            next: None,
            running: None,
        })
    }
    pub(crate) fn ms_until(t: Instant) -> i32 {
        // Rounded up: a poll that wakes before the deadline would only spin.
        let d = t.saturating_duration_since(Instant::now());
        (d.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32
    }
    pub(crate) fn next_tick_ms(&self) -> i32 {
        match (&self.running, self.next) {
            (Some((_, _, began)), _) => {
                Self::ms_until(*began + Duration::from_millis(self.check.timeout_ms))
            }
            (None, Some(n)) => Self::ms_until(n),
            (None, None) => -1,
        }
    }
    pub(crate) fn spawn(&mut self, id: &str) {
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(_) => return,
        };
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new(exe)
            .arg("--root")
            .arg(&self.root)
            .args(["exec", id, "--", "/bin/sh", "-c", &self.check.cmd])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // A group of its own: a check that times out is killed with every process of it.
            .process_group(0)
            .spawn();
        if let Ok(c) = child {
            match nucleus_sys::raw::pidfd_open(c.id() as i32) {
                Ok(fd) => self.running = Some((c, fd, Instant::now())),
                Err(_) => {
                    let mut c = c;
                    Self::kill(&c);
                    let _ = c.wait();
                }
            }
        }
    }
    /// The check that ended: (exit code, its first output).
    pub(crate) fn collect(&mut self) -> Option<(i32, String)> {
        let (mut c, _pidfd, began) = self.running.take()?;
        let done = matches!(c.try_wait(), Ok(Some(_)));
        let timed_out = !done && began.elapsed() >= Duration::from_millis(self.check.timeout_ms);
        if timed_out {
            Self::kill(&c);
        }
        let st = match c.wait() {
            Ok(st) => st,
            Err(_) => return Some((125, "the check could not be waited for".into())),
        };
        // What is there now only: a process the check left behind may hold the pipes.
        let out = [read_now(c.stdout.take()), read_now(c.stderr.take())].concat();
        if timed_out {
            return Some((124, format!("timed out after {} ms", self.check.timeout_ms)));
        }
        Some((
            st.code().unwrap_or(128),
            out.trim().chars().take(512).collect(),
        ))
    }
}

/// Up to 512 bytes a pipe holds now, without waiting for more.
pub(crate) fn read_now<P: std::io::Read + std::os::fd::AsFd>(pipe: Option<P>) -> String {
    let Some(mut p) = pipe else {
        return String::new();
    };
    let _ = nucleus_sys::relay::set_nonblocking(p.as_fd());
    let mut b = [0u8; 512];
    let n = p.read(&mut b).unwrap_or(0);
    String::from_utf8_lossy(&b[..n]).into_owned()
}
