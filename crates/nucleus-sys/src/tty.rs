//! `--tty`: a pseudo-terminal whose slave becomes the workload's controlling terminal and whose
//! master the runtime proxies to its own stdin/stdout.

use crate::error::{Context, Result};
use rustix::pty::OpenptFlags;
use rustix::termios::{self, OptionalActions, Termios};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a pty pair from the calling process's /dev/ptmx (inside the sandbox after pivot_root).
/// It starts with the size of the caller's terminal when standard input is one (still the
/// caller's here): set before the workload exists, so its first `stty size` or TIOCGWINSZ
/// never sees 0x0 (the runtime's copy when it receives the master comes too late for that).
pub fn open_in_sandbox() -> Result<Pty> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    // open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), relative to our root.
    let master = rustix::pty::openpt(flags)
        .map_err(io::Error::from)
        .ctx("open", "/dev/ptmx")?;
    // TIOCSPTLCK 0.
    rustix::pty::unlockpt(&master)
        .map_err(io::Error::from)
        .ctx("unlock", "pty")?;
    // TIOCGPTPEER: the slave of this master, whatever /dev/pts shows.
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)
        .map_err(io::Error::from)
        .ctx("open", "pty slave")?;
    copy_window_size(rustix::stdio::stdin(), slave.as_fd());
    Ok(Pty { master, slave })
}

pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    if let Ok(ws) = termios::tcgetwinsize(from) {
        let _ = termios::tcsetwinsize(to, ws);
    }
}

/// Set the terminal's size (OCI `process.consoleSize`) unless it has one already (the caller's
/// terminal's, from [`open_in_sandbox`]: consoleSize is for where no caller's terminal gives one).
pub fn set_size(tty: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    if termios::tcgetwinsize(tty).is_ok_and(|w| w.ws_row != 0 || w.ws_col != 0) {
        return Ok(());
    }
    let ws = termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    Ok(termios::tcsetwinsize(tty, ws)?)
}

/// Make `slave` the controlling terminal and stdio of the calling (new-session) process.
pub fn become_controlling(slave: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::stdio::{dup2_stderr, dup2_stdin, dup2_stdout};
    rustix::process::ioctl_tiocsctty(slave)?;
    dup2_stdin(slave)?;
    dup2_stdout(slave)?;
    dup2_stderr(slave)?;
    Ok(())
}

/// Host terminal in raw mode while the guard lives (when stdin is a terminal).
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = rustix::stdio::stdin();
        if !termios::isatty(stdin) {
            return RawMode { saved: None };
        }
        let Ok(t) = termios::tcgetattr(stdin) else {
            return RawMode { saved: None };
        };
        let mut r = t.clone();
        r.make_raw();
        let _ = termios::tcsetattr(stdin, OptionalActions::Now, &r);
        RawMode { saved: Some(t) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // Restoring the attributes read in enter().
            let _ = termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, t);
        }
    }
}
