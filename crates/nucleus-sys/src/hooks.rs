//! OCI hooks: a program run at a point of a container's lifecycle with the container's state
//! on its standard input, its own argv and environment (nothing of the runtime's), killed at
//! its timeout. Its output is kept (the last few KiB) for the error that names it.

use nucleus_spec::plan::Hook;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most of a hook's output a failure quotes.
const KEPT: usize = 2048;

/// Run `hooks` in order with `state` on their stdin; the first failure is the error, one line
/// naming the hook (`hooks.prestart[0] /path: exit status 1: …`), and the later ones do not
/// run.
pub fn run_all(hooks: &[Hook], state: &str) -> Result<(), String> {
    run_all_in(None, hooks, state)
}

/// [`run_all`], each hook chrooted into `root` first (when given).
pub fn run_all_in(root: Option<&Path>, hooks: &[Hook], state: &str) -> Result<(), String> {
    for h in hooks {
        run(root, h, state.as_bytes())
            .map_err(|e| format!("{} {}: {e}", h.field, h.path.display()))?;
    }
    Ok(())
}

/// Run each of `hooks` whatever the others did; each failure as one line.
pub fn run_each(hooks: &[Hook], state: &str) -> Vec<String> {
    hooks
        .iter()
        .filter_map(|h| {
            run(None, h, state.as_bytes())
                .err()
                .map(|e| format!("{} {}: {e}", h.field, h.path.display()))
        })
        .collect()
}

fn run(root: Option<&Path>, h: &Hook, state: &[u8]) -> Result<(), String> {
    let mut c = Command::new(&h.path);
    if let Some(r) = root {
        crate::raw::chroot_before_exec(&mut c, r).map_err(|e| e.to_string())?;
    }
    if let Some((first, rest)) = h.args.split_first() {
        c.arg0(first).args(rest);
    }
    c.env_clear();
    for e in &h.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => c.env(k, v),
            _ => return Err(format!("env {e:?}: not KEY=VALUE")),
        };
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    let deadline = h
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs(s));
    let ended = serve(&mut child, state, deadline)
        .and_then(|said| wait(&mut child, deadline).map(|st| (st, said)));
    let (status, said) = match ended {
        Ok(x) => x,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    if status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&said);
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    Err(if said.is_empty() {
        status.to_string()
    } else {
        // Escaped: the hook's words are shown, never its control characters.
        format!("{status}: {}", said.escape_debug())
    })
}

/// Give the state, read what it writes until both its outputs close; what it wrote last (at
/// most KEPT bytes of each, stderr first). Err at the deadline.
fn serve(
    child: &mut std::process::Child,
    state: &[u8],
    deadline: Option<Instant>,
) -> Result<Vec<u8>, String> {
    let mut stdin = child.stdin.take();
    if let Some(i) = &stdin {
        crate::relay::set_nonblocking(i.as_fd()).map_err(|e| e.to_string())?;
    }
    let mut written = 0;
    let mut kept: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    loop {
        if written == state.len() {
            stdin = None;
        }
        let outs = [
            child.stdout.as_ref().map(|p| p.as_raw_fd()),
            child.stderr.as_ref().map(|p| p.as_raw_fd()),
        ];
        if stdin.is_none() && outs.iter().all(Option::is_none) {
            let [out, mut err] = kept;
            err.extend_from_slice(&out);
            return Ok(err);
        }
        let mut set = vec![(stdin.as_ref().map_or(-1, |i| i.as_raw_fd()), libc::POLLOUT)];
        set.extend(outs.iter().map(|o| (o.unwrap_or(-1), libc::POLLIN)));
        let wait = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(TIMED_OUT.into());
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
        };
        let rev = crate::raw::poll(&set, wait).map_err(|e| e.to_string())?;
        if rev[0] != 0 {
            match stdin.as_mut().map(|i| i.write(&state[written..])) {
                Some(Ok(n)) => written += n,
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                // It closed its stdin without reading all: that is its business.
                _ => written = state.len(),
            }
        }
        for (k, r) in rev[1..].iter().enumerate() {
            if *r == 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            let n = match k {
                0 => child.stdout.as_mut().map(|p| p.read(&mut buf)),
                _ => child.stderr.as_mut().map(|p| p.read(&mut buf)),
            };
            match n {
                Some(Ok(n)) if n > 0 => {
                    kept[k].extend_from_slice(&buf[..n]);
                    let over = kept[k].len().saturating_sub(KEPT);
                    kept[k].drain(..over);
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                _ if k == 0 => child.stdout = None,
                _ => child.stderr = None,
            }
        }
    }
}

const TIMED_OUT: &str = "timed out (killed)";

/// Wait for its end, or kill it at the deadline.
fn wait(
    child: &mut std::process::Child,
    deadline: Option<Instant>,
) -> Result<std::process::ExitStatus, String> {
    let Some(d) = deadline else {
        return child.wait().map_err(|e| e.to_string());
    };
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(s);
        }
        if Instant::now() >= d {
            return Err(TIMED_OUT.into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
