//! Network bits that run inside the sandbox's own network namespace.

use crate::error::{Context, Result};
use std::io;

/// Bring `lo` up (a fresh network namespace starts with it down).
pub fn loopback_up() -> Result<()> {
    // SAFETY: socket() has no memory arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).ctx("socket", "lo");
    }
    // SAFETY: ifreq is plain data; the name fits in IFNAMSIZ; ioctls read/write the struct.
    let r = unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        let e = io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            Err(e)
        } else {
            Ok(())
        }
    };
    r.ctx("bring up", "lo")
}
