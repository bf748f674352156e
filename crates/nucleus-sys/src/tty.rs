//! `--tty`: a pseudo-terminal whose slave becomes the workload's controlling terminal and whose
//! master the runtime proxies to its own stdin/stdout.

use crate::error::{Context, Result};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a pty pair from the calling process's /dev/ptmx (inside the sandbox after pivot_root).
pub fn open_in_sandbox() -> Result<Pty> {
    let ptmx = crate::raw::cstr("/dev/ptmx").map_err(|e| crate::error::other("open", e))?;
    // SAFETY: valid C string; returns a new fd or -1.
    let m = unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if m < 0 {
        return Err(io::Error::last_os_error()).ctx("open", "/dev/ptmx");
    }
    // SAFETY: m was just returned by open and is owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int; TIOCGPTPEER returns a new fd for the slave.
    let s = unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(io::Error::last_os_error()).ctx("unlock", "pty");
        }
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(io::Error::last_os_error()).ctx("open", "pty slave");
    }
    // SAFETY: s was just returned by the kernel and is owned by nobody else.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    Ok(Pty { master, slave })
}

pub fn window_size(fd: RawFd) -> Option<libc::winsize> {
    // SAFETY: winsize is plain data; TIOCGWINSZ writes into it.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }
}

pub fn copy_window_size(from: RawFd, to: RawFd) {
    if let Some(ws) = window_size(from) {
        // SAFETY: ws is a valid winsize.
        unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws) };
    }
}

/// Make `slave` the controlling terminal and stdio of the calling (new-session) process.
pub fn become_controlling(slave: RawFd) -> io::Result<()> {
    // SAFETY: ioctl/dup2 on valid fds.
    unsafe {
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in 0..3 {
            if libc::dup2(slave, fd) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Host terminal in raw mode while the guard lives (when stdin is a terminal).
pub struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        // SAFETY: termios is plain data; tcgetattr fills it; cfmakeraw edits a copy.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawMode { saved: None };
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode { saved: None };
            }
            let mut r = t;
            libc::cfmakeraw(&mut r);
            libc::tcsetattr(0, libc::TCSANOW, &r);
            RawMode { saved: Some(t) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restoring the attributes read in enter().
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}
