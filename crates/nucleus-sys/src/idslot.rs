//! Per-sandbox host id ranges. Each concurrent sandbox started by root gets its own 65536-wide
//! range of host uids/gids, so two sandboxes never share an unprivileged host identity (one
//! sandbox's root cannot signal, ptrace or read the files of another's).
//!
//! A range is held by an open-file-description lock (F_OFD_SETLK) on its byte of one
//! root-only file, [`CLAIMS`]. The kernel releases the lock when the holder dies, however it
//! dies (kill -9 included). The file is the same for every runtime on the host, whatever its
//! state root, mount or network namespace, and no sandbox can reach it (an abstract socket
//! name, used before, lives in a network namespace: a `--network host` sandbox could bind all
//! of them, and runtimes in two network namespaces could hand out the same range).

use crate::error::{Context, Result};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// First host id handed out. systemd-nspawn's dynamic range is 0x80000..0x6FFFFFFF; we use its
/// upper part, far from regular users and from subuid ranges handed to people.
pub const BASE: u32 = 0x4000_0000;
pub const WIDTH: u32 = 65536;
pub const SLOTS: u32 = 8192;
/// The claims file: byte N locked = range N held.
pub const CLAIMS: &str = "/run/nucleus-idranges";

pub struct IdSlot {
    pub index: u32,
    _hold: File,
}

impl IdSlot {
    /// The descriptor whose lock holds the range.
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self._hold)
    }

    pub fn host_base(&self) -> u32 {
        BASE + self.index * WIDTH
    }

    /// Take a free range, starting the search at a pseudo-random slot.
    pub fn acquire(seed: u32) -> Result<IdSlot> {
        Self::acquire_in(Path::new(CLAIMS), seed)
    }

    /// Take the range that starts at host id `base` (a restored sandbox's: its image holds
    /// those ids); EBUSY when another holds it.
    pub fn acquire_base(base: u32) -> Result<IdSlot> {
        let index = base
            .checked_sub(BASE)
            .filter(|d| d % WIDTH == 0 && d / WIDTH < SLOTS)
            .map(|d| d / WIDTH)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
            .ctx("reserve uid range", base)?;
        let f = Self::claims(Path::new(CLAIMS))?;
        if lock_byte(&f, index.into()).ctx("reserve uid range", index)? {
            return Ok(IdSlot { index, _hold: f });
        }
        Err(io::Error::from_raw_os_error(libc::EBUSY)).ctx(
            "reserve uid range",
            format!(
                "{base}: held by a running sandbox (the one checkpointed with --leave-running?)"
            ),
        )
    }

    fn claims(claims: &Path) -> Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(claims)
            .ctx("open", claims.display())
    }

    fn acquire_in(claims: &Path, seed: u32) -> Result<IdSlot> {
        let f = Self::claims(claims)?;
        for i in 0..SLOTS {
            let index = (seed.wrapping_add(i)) % SLOTS;
            if lock_byte(&f, index.into()).ctx("reserve uid range", index)? {
                return Ok(IdSlot { index, _hold: f });
            }
        }
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
            .ctx("reserve uid range", "all ranges in use")
    }
}

/// Lock byte `at` of `f` for this open file description: false when another holds it.
fn lock_byte(f: &File, at: u64) -> io::Result<bool> {
    crate::raw::ofd_lock_byte(f.as_fd(), at)
}

/// Bind the abstract unix socket `@name`: EADDRINUSE while someone else holds it. The name is
/// released when the returned fd is closed (also by the holder's death).
pub fn hold_name(name: &str) -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new_abstract_name(name.as_bytes())?;
    rustix::net::bind(&sock, &addr)?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_and_released() {
        let t = crate::TestDir::new("idslot");
        let claims = t.join("claims");
        let seed = 4000 + (std::process::id() % 1000);
        let a = IdSlot::acquire_in(&claims, seed).unwrap();
        let b = IdSlot::acquire_in(&claims, seed).unwrap();
        assert_ne!(a.index, b.index);
        assert_eq!(b.host_base() - a.host_base(), WIDTH * (b.index - a.index));
        let idx = a.index;
        drop(a);
        let c = IdSlot::acquire_in(&claims, idx).unwrap();
        assert_eq!(c.index, idx);
        // Held across a fork by another process (the lock belongs to the open file, not to a
        // network namespace or a process): a child in a new network namespace sees it taken.
        let code = crate::raw::in_child(|| {
            let _ = crate::raw::unshare(libc::CLONE_NEWNET);
            let d = IdSlot::acquire_in(&claims, idx).unwrap();
            if d.index == idx {
                1
            } else {
                0
            }
        });
        assert_eq!(
            code, 0,
            "a range held in another namespace was handed out again"
        );
    }
}
