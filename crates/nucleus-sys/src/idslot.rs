//! Per-sandbox host id ranges. Each concurrent sandbox started by root gets its own 65536-wide
//! range of host uids/gids, so two sandboxes never share an unprivileged host identity (one
//! sandbox's root cannot signal, ptrace or read the files of another's).
//!
//! A range is held by binding an abstract unix socket named after it. The kernel releases the
//! name when the holder dies, however it dies (kill -9 included), and no file is ever created,
//! so nothing is left behind.

use crate::error::{Context, Result};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// First host id handed out. systemd-nspawn's dynamic range is 0x80000..0x6FFFFFFF; we use its
/// upper part, far from regular users and from subuid ranges handed to people.
pub const BASE: u32 = 0x4000_0000;
pub const WIDTH: u32 = 65536;
pub const SLOTS: u32 = 8192;

pub struct IdSlot {
    pub index: u32,
    _hold: OwnedFd,
}

impl IdSlot {
    pub fn host_base(&self) -> u32 {
        BASE + self.index * WIDTH
    }

    /// Take a free range, starting the search at a pseudo-random slot.
    pub fn acquire(seed: u32) -> Result<IdSlot> {
        for i in 0..SLOTS {
            let index = (seed.wrapping_add(i)) % SLOTS;
            match hold_name(&format!("nucleus/idrange/{index}")) {
                Ok(fd) => return Ok(IdSlot { index, _hold: fd }),
                Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => continue,
                Err(e) => return Err(e).ctx("reserve uid range", index),
            }
        }
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
            .ctx("reserve uid range", "all ranges in use")
    }
}

/// Bind the abstract unix socket `@name`: EADDRINUSE while someone else holds it. The name is
/// released when the returned fd is closed (also by the holder's death).
pub fn hold_name(name: &str) -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory arguments; the fd is owned immediately below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let (addr, len) = crate::raw::unix_addr_of(name.as_bytes(), true)?;
    // SAFETY: addr is a valid sockaddr_un and len covers the used part of it.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_released() {
        let seed = 4000 + (std::process::id() % 1000);
        let a = IdSlot::acquire(seed).unwrap();
        let b = IdSlot::acquire(seed).unwrap();
        assert_ne!(a.index, b.index);
        assert_eq!(b.host_base() - a.host_base(), WIDTH * (b.index - a.index));
        let idx = a.index;
        drop(a);
        let c = IdSlot::acquire(idx).unwrap();
        assert_eq!(c.index, idx);
    }
}
