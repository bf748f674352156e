//! Readiness: when a service is ready, and telling the caller's service manager.
//!
//! Ready is: the workload started (default), or it said READY=1 on its $NOTIFY_SOCKET
//! (`--sd-notify`), or 127.0.0.1:PORT in its network namespace accepts a connection
//! (`--readiness-tcp`), or a command run in it exits 0 (`--readiness-exec`). Then the record
//! says `ready_ms`, a `ready` event is written and, for a foreground run under a service
//! manager (NOTIFY_SOCKET in the runtime's environment, as systemd sets it for Type=notify),
//! READY=1 is sent there.
//!
//! With `--sd-notify` the workload's messages are untrusted: only READY=1, RELOADING=1,
//! STOPPING=1, WATCHDOG=1, STATUS= (one line, at most 256 characters) and ERRNO= (digits) are
//! relayed; anything else (MAINPID=, FDSTORE=, a BARRIER, descriptors) is dropped. Datagrams
//! are read at most 4 KiB at a time and 64 per wake-up.

use crate::monitor::Health;
use nucleus_spec::config::Readiness;
use nucleus_spec::Plan;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often a TCP readiness probe is tried.
const TCP_EVERY: Duration = Duration::from_millis(100);
/// How often a readiness command is run (its timeout too).
const EXEC_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct Ready {
    pub(crate) how: Readiness,
    /// The workload started: probing began.
    pub(crate) begun: bool,
    pub(crate) done: bool,
    /// `--sd-notify`: the socket the workload sends to (bound by the runtime at `path`).
    inner: Option<(UnixDatagram, PathBuf)>,
    /// The caller's NOTIFY_SOCKET (a foreground run under a service manager).
    upstream: Option<(UnixDatagram, SocketAddr)>,
    /// `--readiness-exec`: the command, run like a health check.
    probe: Option<Health>,
    next: Option<Instant>,
}

impl Ready {
    /// For a foreground run (`upstream`: relay to the caller's NOTIFY_SOCKET) or a monitor.
    pub(crate) fn new(
        plan: &Plan,
        store: &nucleus_sys::store::Store,
        upstream: bool,
    ) -> anyhow::Result<Ready> {
        let inner = match (&plan.readiness, &plan.notify_socket) {
            (Readiness::Notify, Some(path)) => {
                if let Some(dir) = path.parent() {
                    nucleus_sys::raw::mkdir_p(dir, 0o700)?;
                }
                let _ = std::fs::remove_file(path);
                let s = UnixDatagram::bind(path)?;
                // Any user of the sandbox may send (its directory is the runtime's alone).
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
                s.set_nonblocking(true)?;
                Some((s, path.clone()))
            }
            _ => None,
        };
        let probe = match &plan.readiness {
            Readiness::Exec(cmd) => Health::new_probe(cmd, EXEC_EVERY, store),
            _ => None,
        };
        Ok(Ready {
            how: plan.readiness.clone(),
            begun: false,
            done: false,
            inner,
            upstream: if upstream { caller_socket() } else { None },
            probe,
            next: None,
        })
    }

    /// The workload runs: ready now, or probing starts.
    pub(crate) fn begin(&mut self) -> bool {
        self.begun = true;
        match self.how {
            Readiness::Started => self.set_ready(),
            _ => {
                let now = Instant::now();
                self.next = Some(now);
                if let Some(p) = &mut self.probe {
                    p.next = Some(now);
                }
                false
            }
        }
    }

    fn set_ready(&mut self) -> bool {
        if self.done {
            return false;
        }
        self.done = true;
        self.next = None;
        if let Some(p) = &mut self.probe {
            p.stop();
        }
        self.up("READY=1");
        true
    }

    fn up(&self, msg: &str) {
        if let Some((s, addr)) = &self.upstream {
            let _ = s.send_to_addr(msg.as_bytes(), addr);
        }
    }

    pub(crate) fn next_tick_ms(&self) -> i32 {
        if self.done || !self.begun {
            return -1;
        }
        match &self.probe {
            Some(p) => p.next_tick_ms(),
            None if matches!(self.how, Readiness::Tcp(_)) => self.next.map_or(-1, Health::ms_until),
            None => -1,
        }
    }

    pub(crate) fn watched(&self) -> Vec<i32> {
        use std::os::fd::AsRawFd;
        let mut v = Vec::new();
        if let Some((s, _)) = &self.inner {
            v.push(s.as_raw_fd());
        }
        if let Some((_, fd, _)) = self.probe.as_ref().and_then(|p| p.running.as_ref()) {
            v.push(fd.as_raw_fd());
        }
        v
    }

    /// Relay what the workload said, run a probe that is due; true when it became ready now.
    pub(crate) fn tick(&mut self, id: &str, init: Option<nucleus_spec::state::ProcId>) -> bool {
        let mut became = false;
        if let Some((s, _)) = &self.inner {
            let mut buf = [0u8; 4096];
            let mut relay = Vec::new();
            for _ in 0..64 {
                let Ok(n) = s.recv(&mut buf) else { break };
                relay.extend(filter(&buf[..n]));
            }
            for line in relay {
                if line == "READY=1" {
                    became |= self.set_ready();
                } else {
                    self.up(&line);
                }
            }
        }
        if self.done || !self.begun {
            return became;
        }
        let now = Instant::now();
        match &self.how {
            Readiness::Tcp(port) if self.next.is_some_and(|n| now >= n) => {
                if init.as_ref().is_some_and(|p| tcp_accepts(p, *port)) {
                    became |= self.set_ready();
                } else {
                    self.next = Some(now + TCP_EVERY);
                }
            }
            Readiness::Exec(_) => {
                let Some(p) = &mut self.probe else {
                    return became;
                };
                if p.running.is_some() {
                    let done = p
                        .running
                        .as_mut()
                        .is_some_and(|(c, _, _)| matches!(c.try_wait(), Ok(Some(_))));
                    let late = p
                        .running
                        .as_ref()
                        .is_some_and(|(_, _, began)| now >= *began + EXEC_EVERY * 20);
                    if done || late {
                        let ok = p.collect().is_some_and(|(code, _)| code == 0);
                        p.next = Some(now + EXEC_EVERY);
                        if ok {
                            became |= self.set_ready();
                        }
                    }
                } else if p.next.is_some_and(|n| now >= n) {
                    p.next = None;
                    p.spawn(id);
                    if p.running.is_none() {
                        p.next = Some(now + EXEC_EVERY);
                    }
                }
            }
            _ => {}
        }
        became
    }

    /// The service is stopping (the workload exited): tell the service manager.
    pub(crate) fn stopping(&mut self) {
        if let Some(p) = &mut self.probe {
            p.stop();
        }
        self.up("STOPPING=1");
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.inner {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The caller's NOTIFY_SOCKET: a path, or `@name` in the abstract namespace.
fn caller_socket() -> Option<(UnixDatagram, SocketAddr)> {
    let v = std::env::var_os("NOTIFY_SOCKET")?;
    let b = std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec();
    let addr = match b.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name).ok()?,
        None => SocketAddr::from_pathname(PathBuf::from(v)).ok()?,
    };
    let s = UnixDatagram::unbound().ok()?;
    Some((s, addr))
}

/// The lines of a workload's datagram that may be relayed.
pub(crate) fn filter(msg: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(msg);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let ok = match line.split_once('=') {
            Some(("READY" | "RELOADING" | "STOPPING" | "WATCHDOG", "1")) => true,
            Some(("ERRNO", v)) => {
                !v.is_empty() && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit())
            }
            Some(("STATUS", v)) => {
                let v: String = v.chars().filter(|c| !c.is_control()).take(256).collect();
                out.push(format!("STATUS={v}"));
                false
            }
            _ => false,
        };
        if ok {
            out.push(line.to_string());
        }
    }
    out
}

/// Whether 127.0.0.1:`port` in the network namespace of the sandbox's init accepts a
/// connection: the socket is made by a thread that entered that namespace (a socket stays in
/// the namespace it was made in) through the init's pidfd (checked against its start time:
/// never another process that took its pid); the connect is on loopback, answered at once.
fn tcp_accepts(init: &nucleus_spec::state::ProcId, port: u16) -> bool {
    let Some(ns) = nucleus_sys::process::pidfd(init) else {
        return false;
    };
    std::thread::spawn(move || {
        use std::os::fd::AsFd;
        if nucleus_sys::raw::setns(ns.as_fd(), libc::CLONE_NEWNET).is_err() {
            return false;
        }
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(500),
        )
        .is_ok()
    })
    .join()
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_harmless_lines_are_relayed() {
        let got = filter(
            b"READY=1\nMAINPID=1\nSTATUS=serving \x1b[31mred\nFDSTORE=1\nWATCHDOG=1\nERRNO=12\nERRNO=x\nBARRIER=1\nREADY=0",
        );
        assert_eq!(
            got,
            vec![
                "READY=1",
                "STATUS=serving [31mred",
                "WATCHDOG=1",
                "ERRNO=12"
            ]
        );
        let long = format!("STATUS={}", "x".repeat(1000));
        assert_eq!(filter(long.as_bytes())[0].len(), "STATUS=".len() + 256);
    }
}
