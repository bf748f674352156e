//! `nucleus mcp [RUN FLAGS] [-- CMD]`: a Model Context Protocol server over stdio
//! (newline-delimited JSON-RPC). The protocol's decisions are `nucleus_spec::mcp`'s; this is
//! the loop around them and the tools' execution.
//!
//! One sandbox per session (this process's stdin/stdout connection): made at the first tool
//! call by a foreground `nucleus run` child with exactly the operator's flags (passed as a
//! `--config-fd` JSON, the same typed configuration), which gets SIGTERM when this process
//! dies however it dies (PDEATHSIG), so the sandbox never outlives its session. Every tool call
//! is a child `nucleus` command: `exec --json --capture --timeout` (its process tree dies with
//! it), `cp` and `ls`; a cancelled call's child is killed through its pidfd. Tool arguments
//! only ever become arguments of those commands after `--` or as ID:PATH; nothing the model
//! sends can add a flag, a mount or a rule.

use crate::cli::{McpArgs, RunArgs};
use anyhow::{anyhow, Context, Result};
use nucleus_spec::config::{parse_duration_ms, parse_size, single_line, ConfigError};
use nucleus_spec::mcp::{self, Conn, Incoming, Limits, RpcError, ServerInfo, Step, ToolCall};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

const EXE: &str = "/proc/self/exe";

/// What the main loop waits for.
enum Ev {
    Line(Vec<u8>),
    TooLong,
    Eof,
    Done { seq: u64, result: Value },
}

/// The flags `mcp` sets itself.
fn refuse(run: &RunArgs) -> Result<(), ConfigError> {
    let no = |flag: &str, why: &str| Err(ConfigError::new(flag, why.to_string()));
    if run.detach {
        return no(
            "--detach",
            "not with mcp: each session's sandbox lives as long as the session",
        );
    }
    if run.name.is_some() {
        return no(
            "--name",
            "not with mcp: each session's sandbox is named by the server (mcp-…)",
        );
    }
    if run.tty || run.console_socket.is_some() {
        return no("--tty", "not with mcp: tool calls have no terminal");
    }
    if run.dry_run {
        return no("--dry-run", "not with mcp");
    }
    Ok(())
}

pub(crate) fn serve(a: McpArgs, root: Option<&Path>) -> Result<u8> {
    let ms = |flag: &str, v: &str| parse_duration_ms(flag, v);
    let max_timeout_ms = ms("--call-timeout-max", &a.call_timeout_max)?;
    let limits = Limits {
        default_timeout_ms: match &a.call_timeout {
            Some(t) => ms("--call-timeout", t)?,
            None => max_timeout_ms.min(60_000),
        },
        max_timeout_ms,
        max_output: parse_size("--output-max", &a.output_max)?,
        max_input: parse_size("--input-max", &a.input_max)?,
    };
    if limits.default_timeout_ms == 0 || limits.default_timeout_ms > limits.max_timeout_ms {
        return Err(ConfigError::new(
            "--call-timeout",
            "more than 0 and at most --call-timeout-max",
        )
        .into());
    }
    if limits.max_output == 0 || limits.max_input == 0 {
        return Err(ConfigError::new("--output-max", "sizes above 0").into());
    }
    if a.calls_max == 0 {
        return Err(ConfigError::new("--calls-max", "at least 1").into());
    }
    refuse(&a.run)?;
    let mut run = a.run;
    run.config = None;
    run.config_fd = None;
    if run.command.is_empty() {
        run.command = vec!["sleep".into(), "infinity".into()];
    }
    let config = serde_json::to_string(&run).context("encode the run flags")?;
    let root = root.map(Path::to_path_buf);
    // The flags are checked now, not at the first call: a dry run of the session's sandbox.
    let mut dry = nucleus(&root);
    dry.args(["run", "--dry-run", "--config-fd", "0", "--"])
        .args(&run.command)
        .stdout(Stdio::null());
    let st = with_input(dry, config.as_bytes())?;
    if !st.success() {
        // It said why on stderr.
        return Ok(crate::EXIT_NUCLEUS);
    }
    let info = ServerInfo {
        name: "nucleus".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        instructions: "Tools run inside one sandbox kept for this session (made at the first call, removed at its end): files written persist between calls. Paths are absolute paths in the sandbox. Limits, network and egress are fixed by the operator.".into(),
    };
    let mut server = Server {
        conn: Conn::new(info, limits.clone()),
        limits,
        session: Session {
            root: root.clone(),
            config,
            command: run.command,
            name: None,
            child: None,
        },
        running: HashMap::new(),
        next_seq: 0,
        queue: VecDeque::new(),
        calls_max: a.calls_max,
        out: std::io::stdout(),
    };
    // One bounded channel for the client's lines and the workers' results: a client that
    // outruns the server waits (its pipe fills) instead of the server holding its lines.
    let (tx, rx) = mpsc::sync_channel(64);
    let max_line = server
        .limits
        .max_input
        .saturating_mul(2)
        .saturating_add(1 << 20);
    let reader_tx = tx.clone();
    std::thread::spawn(move || read_lines(max_line, &reader_tx));
    let r = server.run(&rx, &tx);
    server.shutdown();
    r.map(|()| 0)
}

/// A child `nucleus` (this binary) with the global flags.
fn nucleus(root: &Option<PathBuf>) -> Command {
    let mut c = Command::new(EXE);
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    c.stdin(Stdio::null());
    c
}

/// Run `c` with `input` on its stdin.
fn with_input(mut c: Command, input: &[u8]) -> Result<std::process::ExitStatus> {
    c.stdin(Stdio::piped());
    let mut child = c.spawn().context("start nucleus")?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input);
    }
    child.wait().context("wait for nucleus")
}

/// stdin, one message per line; a line longer than `max` is skipped and reported.
fn read_lines(max: u64, tx: &mpsc::SyncSender<Ev>) {
    let mut r = BufReader::new(std::io::stdin().lock());
    loop {
        let mut buf = Vec::new();
        match (&mut r).take(max + 1).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Ev::Eof);
                return;
            }
            Ok(_) if buf.last() != Some(&b'\n') && buf.len() as u64 > max => {
                // The rest of the line goes unread into nothing.
                let mut skip = Vec::new();
                loop {
                    skip.clear();
                    match (&mut r).take(1 << 20).read_until(b'\n', &mut skip) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if skip.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
                if tx.send(Ev::TooLong).is_err() {
                    return;
                }
            }
            Ok(_) => {
                if tx.send(Ev::Line(buf)).is_err() {
                    return;
                }
            }
        }
    }
}

/// A call running (its child `nucleus`): its request id, and whether it was cancelled (then it
/// still counts against --calls-max until its worker ends, and nothing is answered for it).
struct Running {
    id: Value,
    pidfd: Option<OwnedFd>,
    cancelled: bool,
}

/// The most calls waiting for a slot, per slot (more are refused).
const QUEUE_PER_SLOT: usize = 4;

struct Server {
    conn: Conn,
    limits: Limits,
    session: Session,
    /// By an internal sequence number: a request id may be reused once its call was cancelled.
    running: HashMap<u64, Running>,
    next_seq: u64,
    queue: VecDeque<(Value, ToolCall)>,
    calls_max: usize,
    out: std::io::Stdout,
}

impl Server {
    fn send(&mut self, line: String) {
        let mut o = self.out.lock();
        let _ = o.write_all(line.as_bytes());
        let _ = o.write_all(b"\n");
        let _ = o.flush();
    }

    fn run(&mut self, rx: &mpsc::Receiver<Ev>, tx: &mpsc::SyncSender<Ev>) -> Result<()> {
        while let Ok(ev) = rx.recv() {
            match ev {
                Ev::Eof => return Ok(()),
                Ev::TooLong => {
                    let e = RpcError::new(
                        mcp::code::INVALID_REQUEST,
                        format!(
                            "a message longer than this server takes ({} bytes)",
                            self.limits.max_input.saturating_mul(2) + (1 << 20)
                        ),
                    );
                    self.send(mcp::response(&Value::Null, Err(e)));
                }
                Ev::Line(l) => self.message(&l, tx),
                Ev::Done { seq, result } => {
                    if let Some(r) = self.running.remove(&seq) {
                        if !r.cancelled {
                            let out = self.conn.result(result);
                            self.send(mcp::response(&r.id, Ok(out)));
                        }
                    }
                    self.next(tx);
                }
            }
        }
        Ok(())
    }

    fn message(&mut self, line: &[u8], tx: &mpsc::SyncSender<Ev>) {
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            return;
        }
        let msg = match mcp::parse(text.trim_end()) {
            Ok(m) => m,
            Err((id, e)) => return self.send(mcp::response(&id, Err(e))),
        };
        let id = match &msg {
            Incoming::Request { id, .. } => Some(id.clone()),
            _ => None,
        };
        match self.conn.handle(msg) {
            Step::Reply(v) => self.send(mcp::response(id.as_ref().unwrap_or(&Value::Null), Ok(v))),
            Step::Fail(e) => self.send(mcp::response(id.as_ref().unwrap_or(&Value::Null), Err(e))),
            Step::Nothing => {}
            Step::Cancel(c) => self.cancel(&c),
            Step::Call(call) => {
                let id = id.unwrap_or(Value::Null);
                let busy = self.running.values().any(|r| !r.cancelled && r.id == id)
                    || self.queue.iter().any(|q| q.0 == id);
                if busy {
                    let e = RpcError::new(
                        mcp::code::INVALID_REQUEST,
                        "a request with this id is running",
                    );
                    return self.send(mcp::response(&id, Err(e)));
                }
                if self.queue.len() >= self.calls_max * QUEUE_PER_SLOT {
                    let e = RpcError::new(
                        mcp::code::INVALID_REQUEST,
                        format!(
                            "too many calls waiting ({} running, {} queued): wait for results",
                            self.running.len(),
                            self.queue.len()
                        ),
                    );
                    return self.send(mcp::response(&id, Err(e)));
                }
                self.queue.push_back((id, call));
                self.next(tx);
            }
        }
    }

    /// Start queued calls while fewer than calls_max run.
    fn next(&mut self, tx: &mpsc::SyncSender<Ev>) {
        while self.running.len() < self.calls_max {
            let Some((id, call)) = self.queue.pop_front() else {
                return;
            };
            let name = match self.session.ensure() {
                Ok(n) => n,
                Err(e) => {
                    let r =
                        mcp::tool_result(format!("the sandbox could not be made: {e}"), None, true);
                    let r = self.conn.result(r);
                    self.send(mcp::response(&id, Ok(r)));
                    continue;
                }
            };
            match start_call(&self.session.root, &name, call, &self.limits) {
                Ok((pidfd, work)) => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.running.insert(
                        seq,
                        Running {
                            id,
                            pidfd,
                            cancelled: false,
                        },
                    );
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        let result = work();
                        let _ = tx.send(Ev::Done { seq, result });
                    });
                }
                Err(e) => {
                    let r = mcp::tool_result(e, None, true);
                    let r = self.conn.result(r);
                    self.send(mcp::response(&id, Ok(r)));
                }
            }
        }
    }

    fn cancel(&mut self, id: &Value) {
        self.queue.retain(|q| q.0 != *id);
        for r in self
            .running
            .values_mut()
            .filter(|r| !r.cancelled && r.id == *id)
        {
            r.cancelled = true;
            // Its `nucleus exec` dies, and with it everything the command started.
            if let Some(p) = &r.pidfd {
                let _ = nucleus_sys::raw::pidfd_send_signal(p.as_fd(), libc::SIGKILL);
            }
        }
    }

    fn shutdown(&mut self) {
        for (_, r) in self.running.drain() {
            if let Some(p) = &r.pidfd {
                let _ = nucleus_sys::raw::pidfd_send_signal(p.as_fd(), libc::SIGKILL);
            }
        }
        self.session.stop();
    }
}

/// The session's sandbox.
struct Session {
    root: Option<PathBuf>,
    config: String,
    command: Vec<String>,
    name: Option<String>,
    child: Option<Child>,
}

impl Session {
    /// The sandbox's name, made now if it is not there yet.
    fn ensure(&mut self) -> Result<String> {
        if let Some(n) = &self.name {
            return Ok(n.clone());
        }
        let mut b = [0u8; 6];
        nucleus_sys::raw::fill_random(&mut b);
        let name = format!("mcp-{}", nucleus_spec::hex(&b));
        let (events_r, events_w) = nucleus_sys::raw::pipe().context("pipe")?;
        let mut c = nucleus(&self.root);
        c.args([
            "run",
            "--name",
            &name,
            "--config-fd",
            "0",
            "--events-fd",
            "3",
            "--",
        ])
        .args(&self.command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        nucleus_sys::raw::before_exec_deathsig_and_fd(
            &mut c,
            libc::SIGTERM,
            Some((events_w.as_raw_fd(), 3)),
        );
        let mut child = c.spawn().context("start nucleus run")?;
        drop(events_w);
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(self.config.as_bytes());
        }
        // Its messages go on to ours; the last one explains a failure.
        let (last_tx, last_rx) = mpsc::channel();
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for l in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("{l}");
                    let _ = last_tx.send(l);
                }
            });
        }
        // Until its `started` event, its failure, or a minute (a start that hangs must not
        // hold the session: the server answers nothing meanwhile).
        let deadline = std::time::Instant::now() + START_DEADLINE;
        let mut started = false;
        let mut events = BufReader::new(std::fs::File::from(events_r));
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if events.buffer().is_empty() {
                let ready = nucleus_sys::raw::poll_read(
                    &[events.get_ref().as_raw_fd()],
                    left.as_millis() as i32,
                )
                .unwrap_or_default();
                if ready.first().is_none_or(|r| *r == 0) {
                    break;
                }
            }
            let mut l = String::new();
            match (&mut events).take(1 << 16).read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let v: Value = serde_json::from_str(&l).unwrap_or(Value::Null);
            match v["event"].as_str() {
                Some("started") => {
                    started = true;
                    break;
                }
                Some("error") => break,
                _ => {}
            }
        }
        if !started {
            // A failed run cleans up and exits by itself; one that hangs is stopped.
            let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < end && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                if let Ok(p) = nucleus_sys::raw::pidfd_open(child.id() as i32) {
                    let _ = nucleus_sys::raw::pidfd_send_signal(p.as_fd(), libc::SIGTERM);
                    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
                    while std::time::Instant::now() < end && matches!(child.try_wait(), Ok(None)) {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    let _ = nucleus_sys::raw::pidfd_send_signal(p.as_fd(), libc::SIGKILL);
                }
            }
            let _ = child.wait();
            let why = last_rx
                .recv_timeout(std::time::Duration::from_millis(200))
                .ok()
                .map(|mut l| {
                    while let Ok(n) = last_rx.try_recv() {
                        l = n;
                    }
                    l
                })
                .unwrap_or_else(|| "nucleus run ended".into());
            return Err(anyhow!("{why}"));
        }
        self.child = Some(child);
        self.name = Some(name.clone());
        Ok(name)
    }

    /// Stop the sandbox: SIGTERM to its `run`, then (5 s on) SIGKILL to everything in it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(p) = nucleus_sys::raw::pidfd_open(child.id() as i32) {
            let _ = nucleus_sys::raw::pidfd_send_signal(p.as_fd(), libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if let Some(n) = &self.name {
            let _ = nucleus(&self.root)
                .args(["kill", n, "KILL"])
                .stdout(Stdio::null())
                .status();
        }
        let _ = child.wait();
    }
}

type Work = Box<dyn FnOnce() -> Value + Send>;

/// How long the session's sandbox may take to start.
const START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Start a tool call: the pidfd of its child `nucleus` (when it starts one now, to cancel it
/// by), and what finishes the call.
fn start_call(
    root: &Option<PathBuf>,
    name: &str,
    call: ToolCall,
    limits: &Limits,
) -> Result<(Option<OwnedFd>, Work), String> {
    match call {
        ToolCall::Invalid(m) => Ok((None, Box::new(move || mcp::tool_result(m, None, true)))),
        ToolCall::Run(r) => {
            let mut c = nucleus(root);
            c.args(["exec", "--json", "--capture"])
                .arg(format!("--capture-max={}", r.max_output))
                .arg(format!("--timeout={}ms", r.timeout_ms));
            if let Some(w) = &r.cwd {
                c.arg(format!("--workdir={w}"));
            }
            for e in &r.env {
                c.arg(format!("--env={e}"));
            }
            c.arg(name).arg("--").args(&r.argv);
            if r.stdin.is_some() {
                c.stdin(Stdio::piped());
            }
            let (pidfd, mut child) = spawn(c)?;
            let input = r.stdin;
            // Escaped output (a control byte is six) and the object around it.
            let bound = r.max_output.saturating_mul(12).saturating_add(1 << 16);
            Ok((
                pidfd,
                Box::new(move || {
                    if let (Some(mut i), Some(data)) = (child.stdin.take(), input) {
                        std::thread::spawn(move || {
                            let _ = i.write_all(&data);
                        });
                    }
                    let (out, err) = collect(&mut child, bound);
                    let last = out
                        .rsplit(|&b| b == b'\n')
                        .find(|l| !l.is_empty())
                        .and_then(|l| serde_json::from_slice::<Value>(l).ok());
                    match last {
                        Some(v) if v.get("exit_code").is_some() => mcp::run_result(&v),
                        _ => mcp::tool_result(failure(&err, "the command"), None, true),
                    }
                }),
            ))
        }
        ToolCall::Read { path, max_bytes } => {
            let (root, name) = (root.clone(), name.to_string());
            Ok((
                None,
                Box::new(move || read_file(&root, &name, path, max_bytes)),
            ))
        }
        ToolCall::Write {
            path,
            content,
            mode,
        } => {
            let (dir, file) = match path.rfind('/') {
                Some(0) => ("/".to_string(), path[1..].to_string()),
                Some(i) => (path[..i].to_string(), path[i + 1..].to_string()),
                None => return Err("path: absolute".into()),
            };
            let tar = nucleus_sys::cp::file_tar(&file, mode, &content)
                .map_err(|e| format!("write_file: {e}"))?;
            let mut c = nucleus(root);
            c.args(["cp", "--as-workload", "-"])
                .arg(format!("{name}:{dir}"));
            c.stdin(Stdio::piped());
            let (pidfd, mut child) = spawn(c)?;
            let n = content.len();
            Ok((
                pidfd,
                Box::new(move || {
                    if let Some(mut i) = child.stdin.take() {
                        let _ = i.write_all(&tar);
                    }
                    let (_, err) = collect(&mut child, 1 << 16);
                    match child.wait() {
                        Ok(s) if s.success() => {
                            mcp::tool_result(format!("wrote {n} bytes to {path}"), None, false)
                        }
                        _ => mcp::tool_result(failure(&err, &path), None, true),
                    }
                }),
            ))
        }
        ToolCall::List { path } => {
            let mut c = nucleus(root);
            // Bounded by --output-max: about 128 bytes an entry, its bytes twice (text and
            // structured).
            let entries = (limits.max_output / 256).clamp(16, 10_000);
            let bound = limits.max_output.saturating_mul(2);
            c.args(["ls", "--as-workload", "--json"])
                .arg(format!("--max={entries}"))
                .arg(format!("{name}:{path}"));
            let (pidfd, mut child) = spawn(c)?;
            Ok((
                pidfd,
                Box::new(move || {
                    let (mut out, err) = collect(&mut child, bound);
                    let cut = out.len() as u64 >= bound;
                    if cut {
                        // Whole entries only.
                        let keep = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                        out.truncate(keep);
                        out.extend_from_slice(b"{\"truncated\":true}\n");
                    } else if !child.wait().is_ok_and(|s| s.success()) {
                        return mcp::tool_result(failure(&err, &path), None, true);
                    }
                    listing(&path, &out)
                }),
            ))
        }
    }
}

/// A tool call's child `nucleus` (stdout and stderr piped, killed if this process dies) and
/// its pidfd, to cancel it by.
fn spawn(mut c: Command) -> Result<(Option<OwnedFd>, Child), String> {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    nucleus_sys::raw::before_exec_deathsig_and_fd(&mut c, libc::SIGKILL, None);
    let child = c.spawn().map_err(|e| format!("start nucleus: {e}"))?;
    // (Our unwaited child: its pid cannot have been reused.)
    let pidfd = nucleus_sys::raw::pidfd_open(child.id() as i32).ok();
    Ok((pidfd, child))
}

/// A child's stderr: its first 4 KiB kept, the rest drained, in a thread of its own.
fn stderr_of(child: &mut Child) -> Option<std::thread::JoinHandle<String>> {
    child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = (&mut e).take(4096).read_to_end(&mut s);
            let _ = std::io::copy(&mut e, &mut std::io::sink());
            String::from_utf8_lossy(&s).into_owned()
        })
    })
}

/// A child's stdout (at most `bound` bytes kept) and stderr (4 KiB), once it closes them.
fn collect(child: &mut Child, bound: u64) -> (Vec<u8>, String) {
    let err = stderr_of(child);
    let mut out = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = (&mut o).take(bound).read_to_end(&mut out);
        let _ = std::io::copy(&mut o, &mut std::io::sink());
    }
    let _ = child.wait();
    let err = err.and_then(|t| t.join().ok()).unwrap_or_default();
    (out, err)
}

/// nucleus's one-line message (the last line of its stderr), for a tool error.
fn failure(stderr: &str, what: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("nucleus: ").to_string());
    match line {
        Some(l) => single_line(&l),
        None => format!("{what}: nucleus failed without a message"),
    }
}

/// A path's link target, resolved against the link's directory (lexically: each hop is
/// resolved again inside the sandbox).
fn follow(path: &str, target: &str) -> String {
    let base = if target.starts_with('/') {
        String::new()
    } else {
        path.rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default()
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in base.split('/').chain(target.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn read_file(root: &Option<PathBuf>, name: &str, mut path: String, max: u64) -> Value {
    let asked = path.clone();
    for _ in 0..16 {
        let mut c = nucleus(root);
        c.args(["cp", "--as-workload"])
            .arg(format!("{name}:{path}"))
            .arg("-");
        let mut child = match spawn(c) {
            Ok((_, c)) => c,
            Err(e) => return mcp::tool_result(e, None, true),
        };
        let err = stderr_of(&mut child);
        let head = child
            .stdout
            .take()
            .map(|o| nucleus_sys::cp::tar_head(o, max));
        use nucleus_sys::cp::TarHead;
        if let Some(Ok(TarHead::File { .. })) = head {
            // The rest of a long file is not wanted.
            let _ = child.kill();
        }
        // (A failed copy is waited for: its message comes after the stream's end.)
        let _ = child.wait();
        let err = err.and_then(|t| t.join().ok()).unwrap_or_default();
        return match head {
            Some(Ok(TarHead::File { data, size })) => file_result(&asked, data, size),
            Some(Ok(TarHead::Dir)) => mcp::tool_result(
                format!("{path} is a directory (list_directory lists it)"),
                None,
                true,
            ),
            Some(Ok(TarHead::Link(t))) => {
                path = follow(&path, &String::from_utf8_lossy(&t));
                continue;
            }
            Some(Ok(TarHead::Other)) => {
                mcp::tool_result(format!("{path} is not a regular file"), None, true)
            }
            _ => mcp::tool_result(failure(&err, &path), None, true),
        };
    }
    mcp::tool_result(
        format!("{asked}: too many levels of symbolic links"),
        None,
        true,
    )
}

fn file_result(path: &str, data: Vec<u8>, size: u64) -> Value {
    let truncated = (data.len() as u64) < size;
    // A cut may split a character: the text ends before it.
    let text = match std::str::from_utf8(&data) {
        Ok(t) => Some(t.to_string()),
        Err(e) if truncated && e.error_len().is_none() => {
            Some(String::from_utf8_lossy(&data[..e.valid_up_to()]).into_owned())
        }
        Err(_) => None,
    };
    let data_len = data.len();
    let note = format!("[{path}: {data_len} of {size} bytes]");
    let mut r = match text {
        Some(t) => {
            let mut r = mcp::tool_result(t, None, false);
            if truncated {
                if let Some(c) = r["content"].as_array_mut() {
                    c.push(json!({ "type": "text", "text": note }));
                }
            }
            r
        }
        None => json!({
            "content": [
                { "type": "text", "text": format!("{path}: binary, {size} bytes ({data_len} in the resource, base64)") },
                { "type": "resource", "resource": {
                    "uri": format!("file://{}", path),
                    "mimeType": "application/octet-stream",
                    "blob": mcp::base64_encode(&data),
                } },
            ],
            "isError": false,
        }),
    };
    r["structuredContent"] =
        json!({ "path": path, "size": size, "returned": data_len, "truncated": truncated });
    r
}

fn listing(path: &str, out: &[u8]) -> Value {
    let mut entries = Vec::new();
    let mut truncated = false;
    let mut text = String::new();
    for l in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<Value>(l) else {
            continue;
        };
        if v["truncated"] == true {
            truncated = true;
            continue;
        }
        let kind = v["type"].as_str().unwrap_or("other");
        let mut line = format!(
            "{kind:<7} {} {:>10} {}",
            v["mode"].as_str().unwrap_or(""),
            v["size"],
            v["name"].as_str().unwrap_or("")
        );
        if let Some(t) = v["target"].as_str() {
            line.push_str(&format!(" -> {t}"));
        }
        text.push_str(&line);
        text.push('\n');
        entries.push(v);
    }
    if truncated {
        text.push_str("[cut: more entries than listed]\n");
    }
    if entries.is_empty() {
        text.push_str(&format!("{path} is empty\n"));
    }
    mcp::tool_result(
        text,
        Some(json!({ "path": path, "entries": entries, "truncated": truncated })),
        false,
    )
}
