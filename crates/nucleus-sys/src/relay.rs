//! The runtime's side of a sandbox's terminal I/O: streams copied between the caller's
//! descriptors and the sandbox's (a pty master, or pipes in place of the caller's terminal),
//! non-blocking, through bounded buffers, inside the runtime's one poll loop. A workload that
//! stops reading its input only stops the runtime reading the caller's; signals, control
//! requests and seccomp notifications are never behind I/O.
//!
//! A caller's terminal is never handed to a sandbox as such: without `--tty`, each of the
//! caller's standard descriptors that is a terminal is replaced, for the workload, by a pipe
//! the runtime relays ([`Stdio`]). When the workload ends the runtime closes its ends, so a
//! process left behind in the sandbox holds nothing of the caller's (it could otherwise read
//! what the caller types at the host prompt, or change the terminal's settings for good).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Most bytes one stream holds between a read and the write it waits for.
const BUF: usize = 64 * 1024;

/// Reads and writes on `fd` return EAGAIN instead of waiting.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let fl = fcntl_getfl(fd)?;
    Ok(fcntl_setfl(fd, fl | OFlags::NONBLOCK)?)
}

/// The caller's standard descriptor `fd` (0, 1 or 2).
fn standard(fd: RawFd) -> BorrowedFd<'static> {
    match fd {
        0 => rustix::stdio::stdin(),
        1 => rustix::stdio::stdout(),
        _ => rustix::stdio::stderr(),
    }
}

/// Whether the caller's standard descriptor `fd` (0, 1 or 2) is a terminal.
pub fn isatty(fd: RawFd) -> bool {
    rustix::termios::isatty(standard(fd))
}

/// A descriptor of the caller's for the runtime's own use, non-blocking without touching the
/// caller's open file (which its shell shares): a terminal is opened again (a new open file of
/// the same terminal); anything else is duplicated and stays blocking (a read follows poll's
/// word; a write to a full pipe or file may wait, as before). `fd`: 0, 1 or 2.
pub fn caller_end(fd: RawFd, write: bool) -> io::Result<OwnedFd> {
    let std_fd = standard(fd);
    if rustix::termios::isatty(std_fd) {
        use rustix::fs::OFlags;
        let mode = if write {
            OFlags::WRONLY
        } else {
            OFlags::RDONLY
        };
        let flags = mode | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let path = format!("/proc/self/fd/{fd}");
        if let Ok(f) = rustix::fs::open(path.as_str(), flags, rustix::fs::Mode::empty()) {
            return Ok(f);
        }
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(std_fd, 3)?)
}

struct Stream {
    src: Option<OwnedFd>,
    dst: Option<OwnedFd>,
    buf: Vec<u8>,
    /// A capture: at most this many bytes go to `dst`; the rest is read and counted in
    /// `dropped` (the writer never blocks on it, nothing more is kept).
    cap: Option<(u64, std::rc::Rc<std::cell::Cell<u64>>)>,
    kept: u64,
    /// `dst` does not block (ours, or a terminal opened again); otherwise (a caller's pipe or
    /// file, whose open file the caller shares) each write after poll's word is at most
    /// PIPE_BUF bytes, which a pipe with room takes without waiting.
    dst_nonblocking: bool,
}

fn is_nonblocking(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_getfl(fd).is_ok_and(|fl| fl.contains(rustix::fs::OFlags::NONBLOCK))
}

fn ready(fd: &OwnedFd, events: i16) -> bool {
    crate::raw::poll(&[(fd.as_raw_fd(), events)], 0).is_ok_and(|r| r[0] != 0)
}

/// Several one-way streams served by the caller's poll loop.
#[derive(Default)]
pub struct Relay {
    streams: Vec<Stream>,
}

impl Relay {
    /// Copy `src` to `dst`. `dst` is closed once `src` ends and everything read was written.
    pub fn push(&mut self, src: OwnedFd, dst: OwnedFd) {
        let dst_nonblocking = is_nonblocking(dst.as_fd());
        self.streams.push(Stream {
            src: Some(src),
            dst: Some(dst),
            buf: Vec::with_capacity(BUF),
            dst_nonblocking,
            cap: None,
            kept: 0,
        });
    }

    /// Copy at most `cap` bytes of `src` to `dst` (a file of the caller's); count the rest in
    /// `dropped`, read and discarded.
    pub fn push_capped(
        &mut self,
        src: OwnedFd,
        dst: OwnedFd,
        cap: u64,
        dropped: std::rc::Rc<std::cell::Cell<u64>>,
    ) {
        self.push(src, dst);
        if let Some(s) = self.streams.last_mut() {
            s.cap = Some((cap, dropped));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Descriptors and events to poll: each source while its buffer has room, each
    /// destination while its buffer holds something.
    pub fn poll_set(&self) -> Vec<(RawFd, i16)> {
        let mut out = vec![];
        for s in &self.streams {
            out.push(match &s.src {
                Some(f) if s.buf.len() < BUF && s.dst.is_some() => (f.as_raw_fd(), libc::POLLIN),
                _ => (-1, 0),
            });
            out.push(match &s.dst {
                Some(f) if !s.buf.is_empty() => (f.as_raw_fd(), libc::POLLOUT),
                _ => (-1, 0),
            });
        }
        out
    }

    /// Serve what `poll_set` asked and poll answered (`rev`, in the same order).
    pub fn service(&mut self, rev: &[i16]) {
        for (i, s) in self.streams.iter_mut().enumerate() {
            let (r, w) = (
                rev.get(2 * i).copied().unwrap_or(0),
                rev.get(2 * i + 1).copied().unwrap_or(0),
            );
            if r != 0 {
                s.fill();
            }
            if w != 0 {
                s.flush();
            }
            s.close_done();
        }
    }

    /// At the end: move what can be moved now without waiting (what the sandbox wrote before
    /// it ended), then close every stream.
    pub fn finish(&mut self) {
        for s in &mut self.streams {
            // A bounded number of rounds: a writer that keeps writing cannot hold the end.
            for _ in 0..64 {
                let before = s.buf.len();
                if s.buf.len() < BUF && s.src.as_ref().is_some_and(|f| ready(f, libc::POLLIN)) {
                    s.fill();
                }
                if s.dst.as_ref().is_some_and(|f| ready(f, libc::POLLOUT)) {
                    s.flush();
                }
                if s.buf.len() == before {
                    break;
                }
            }
        }
        self.streams.clear();
    }
}

impl Stream {
    fn fill(&mut self) {
        let Some(src) = &self.src else { return };
        let room = BUF - self.buf.len();
        let len = self.buf.len();
        self.buf.resize(len + room, 0);
        let r = rustix::io::read(src, &mut self.buf[len..]);
        if let Ok(n @ 1..) = r {
            let keep = match &self.cap {
                Some((cap, dropped)) => {
                    let keep = n.min(cap.saturating_sub(self.kept) as usize);
                    dropped.set(dropped.get() + (n - keep) as u64);
                    keep
                }
                None => n,
            };
            self.kept += keep as u64;
            self.buf.truncate(len + keep);
            return;
        }
        self.buf.truncate(len);
        let again = matches!(r, Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR));
        if !again {
            // End of file, or the source is gone (a closed pty reads EIO).
            self.src = None;
        }
    }

    fn flush(&mut self) {
        let Some(dst) = &self.dst else {
            self.buf.clear();
            return;
        };
        while !self.buf.is_empty() {
            let len = if self.dst_nonblocking {
                self.buf.len()
            } else {
                self.buf.len().min(libc::PIPE_BUF)
            };
            let r = rustix::io::write(dst, &self.buf[..len]);
            if let Ok(n @ 1..) = r {
                self.buf.drain(..n);
                if !self.dst_nonblocking {
                    // One write per readiness: the next may wait.
                    return;
                }
                continue;
            }
            if r == Err(rustix::io::Errno::INTR) {
                continue;
            }
            if r != Err(rustix::io::Errno::AGAIN) {
                // The reader is gone: nothing more goes this way.
                self.dst = None;
                self.src = None;
                self.buf.clear();
            }
            return;
        }
    }

    fn close_done(&mut self) {
        if self.src.is_none() && self.buf.is_empty() {
            self.dst = None;
        }
    }
}

/// Without `--tty`: pipes in place of the caller's standard descriptors that are terminals.
/// The child ends go to the workload ([`Stdio::install`] in the child); the runtime relays the
/// others ([`Stdio::into_relay`]).
#[derive(Default)]
pub struct Stdio {
    /// Per standard descriptor: (the workload's end, the runtime's end).
    pipes: [Option<(OwnedFd, OwnedFd)>; 3],
    /// The caller's terminal input is not ours to read (the runtime is not in the terminal's
    /// foreground process group: started with `&` from an interactive shell): the workload's
    /// input ends at once, as a background job's would, instead of the runtime being stopped
    /// by SIGTTIN on its first read.
    stdin_eof: bool,
    /// Output captured (`exec --capture`): where stdout and stderr go instead of the caller's.
    capture: Option<Capture>,
}

/// Where `exec --capture` keeps a process's output: a file each for stdout and stderr (at most
/// `cap` bytes each), and how much more came and was dropped.
pub struct Capture {
    pub cap: u64,
    pub files: [OwnedFd; 2],
    pub dropped: [std::rc::Rc<std::cell::Cell<u64>>; 2],
}

impl Capture {
    /// Two in-memory files, for at most `cap` bytes each.
    pub fn new(cap: u64) -> io::Result<Capture> {
        let file = |name: &str| {
            rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC).map_err(io::Error::from)
        };
        Ok(Capture {
            cap,
            files: [file("stdout")?, file("stderr")?],
            dropped: Default::default(),
        })
    }

    /// Another handle on the same files and counts (one goes to the relay).
    pub fn share(&self) -> io::Result<Capture> {
        Ok(Capture {
            cap: self.cap,
            files: [self.files[0].try_clone()?, self.files[1].try_clone()?],
            dropped: self.dropped.clone(),
        })
    }

    /// What was kept of stdout and stderr, each with how many bytes came in all.
    pub fn read(&self) -> io::Result<[(Vec<u8>, u64); 2]> {
        use std::io::{Read, Seek};
        let one = |i: usize| -> io::Result<(Vec<u8>, u64)> {
            let mut f = std::fs::File::from(self.files[i].try_clone()?);
            f.seek(io::SeekFrom::Start(0))?;
            let mut b = Vec::new();
            f.take(self.cap).read_to_end(&mut b)?;
            let all = b.len() as u64 + self.dropped[i].get();
            Ok((b, all))
        };
        Ok([one(0)?, one(1)?])
    }
}

/// This process's standard input becomes `f` (what a command it starts reads).
pub fn stdin_from(f: &std::fs::File) -> io::Result<()> {
    Ok(rustix::stdio::dup2_stdin(f)?)
}

impl Stdio {
    /// Pipes for those of 0, 1, 2 that are terminals (none when none is).
    pub fn for_terminals() -> io::Result<Stdio> {
        let mut s = Stdio::default();
        for fd in 0..3 {
            if !isatty(fd) {
                continue;
            }
            let (r, w) = crate::raw::pipe()?;
            s.pipes[fd as usize] = Some(if fd == 0 { (r, w) } else { (w, r) });
        }
        if s.pipes[0].is_some() {
            // (An error, or no foreground group, counts as another's.)
            let fg = rustix::termios::tcgetpgrp(rustix::stdio::stdin()).ok();
            s.stdin_eof = fg != Some(rustix::process::getpgrp());
        }
        Ok(s)
    }

    /// As [`Stdio::for_terminals`], and pipes for stdout and stderr when they are regular files
    /// opened without O_APPEND: gVisor writes to a host file at an offset of its own (from 0,
    /// over what the file held), where a native workload shares the caller's.
    pub fn for_gvisor() -> io::Result<Stdio> {
        let mut s = Stdio::for_terminals()?;
        for fd in 1..3 {
            let f = if fd == 1 {
                rustix::stdio::stdout()
            } else {
                rustix::stdio::stderr()
            };
            let overwrites = rustix::fs::fstat(f)
                .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
                && rustix::fs::fcntl_getfl(f)
                    .is_ok_and(|fl| !fl.contains(rustix::fs::OFlags::APPEND));
            if s.pipes[fd].is_none() && overwrites {
                let (r, w) = crate::raw::pipe()?;
                s.pipes[fd] = Some((w, r));
            }
        }
        Ok(s)
    }

    /// As [`Stdio::for_terminals`] for input; stdout and stderr always piped, into `capture`.
    pub fn capturing(capture: Capture) -> io::Result<Stdio> {
        let mut s = Stdio::for_terminals()?;
        for fd in 1..3 {
            if s.pipes[fd].is_none() {
                let (r, w) = crate::raw::pipe()?;
                s.pipes[fd] = Some((w, r));
            }
        }
        s.capture = Some(capture);
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.pipes.iter().all(Option::is_none)
    }

    /// In the child: the workload's ends become its standard descriptors.
    pub fn install(&self) -> io::Result<()> {
        use rustix::stdio::{dup2_stderr, dup2_stdin, dup2_stdout};
        for (fd, p) in self.pipes.iter().enumerate() {
            if let Some((theirs, _)) = p {
                match fd {
                    0 => dup2_stdin(theirs)?,
                    1 => dup2_stdout(theirs)?,
                    _ => dup2_stderr(theirs)?,
                }
            }
        }
        Ok(())
    }

    /// In the runtime: the workload's ends closed, the runtime's made non-blocking and paired
    /// with the caller's descriptors.
    pub fn into_relay(self, relay: &mut Relay) -> io::Result<()> {
        let stdin_eof = self.stdin_eof;
        for (fd, p) in self.pipes.into_iter().enumerate() {
            let Some((theirs, ours)) = p else { continue };
            drop(theirs);
            set_nonblocking(ours.as_fd())?;
            match (fd, &self.capture) {
                (0, _) if stdin_eof => {}
                (0, _) => relay.push(caller_end(0, false)?, ours),
                (_, Some(c)) => relay.push_capped(
                    ours,
                    c.files[fd - 1].try_clone()?,
                    c.cap,
                    c.dropped[fd - 1].clone(),
                ),
                _ => relay.push(ours, caller_end(fd as RawFd, true)?),
            }
        }
        Ok(())
    }
}

/// The pty of a `--tty` run: the caller's input to the master, the master's output to the
/// caller's output, both without blocking the runtime.
pub fn pty(relay: &mut Relay, master: BorrowedFd<'_>, stdin_open: bool) -> io::Result<()> {
    set_nonblocking(master)?;
    let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned();
    if stdin_open {
        relay.push(caller_end(0, false)?, dup(master)?);
    }
    relay.push(dup(master)?, caller_end(1, true)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(relay: &mut Relay) {
        let set = relay.poll_set();
        let rev = crate::raw::poll(&set, 0).unwrap();
        relay.service(&rev);
    }

    fn write_some(fd: &OwnedFd, data: &[u8]) -> usize {
        rustix::io::write(fd, data).unwrap_or(0)
    }

    /// A reader that stops reading does not block the relay: its buffer fills, the source is
    /// no longer polled, and another stream still moves.
    #[test]
    fn a_stalled_stream_does_not_block_others() {
        let (a_r, a_w) = crate::raw::pipe().unwrap();
        let (b_r, b_w) = crate::raw::pipe().unwrap();
        let (c_r, c_w) = crate::raw::pipe().unwrap();
        let (d_r, d_w) = crate::raw::pipe().unwrap();
        for f in [&a_r, &a_w, &b_w, &c_r, &d_w] {
            set_nonblocking(f.as_fd()).unwrap();
        }
        let mut relay = Relay::default();
        relay.push(a_r, b_w); // a -> b: nobody reads b
        relay.push(c_r, d_w); // c -> d
        let chunk = vec![7u8; 65536];
        let mut written = 0;
        for _ in 0..64 {
            written += write_some(&a_w, &chunk);
            round(&mut relay);
        }
        assert!(written > BUF);
        // Stalled: the a -> b source is not polled any more.
        assert_eq!(relay.poll_set()[0], (-1, 0));
        // The other stream moves.
        assert_eq!(write_some(&c_w, b"hello"), 5);
        round(&mut relay);
        round(&mut relay);
        let mut got = [0u8; 5];
        assert_eq!(crate::raw::read(d_r.as_fd(), &mut got).unwrap(), 5);
        assert_eq!(&got, b"hello");
        drop(b_r);
    }
}
