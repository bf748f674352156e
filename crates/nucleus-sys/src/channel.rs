//! The typed channel between the runtime (parent) and the sandbox's init and workload (child):
//! a SOCK_SEQPACKET socketpair, one JSON message per packet, file descriptors by SCM_RIGHTS.

use crate::error::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::raw::WaitStatus;

pub use nucleus_spec::stage::{Stage, StartFailure};
pub use nucleus_spec::state::SecurityReport;

/// Parent → child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// Id maps are written; fds carry the prepared mounts in plan order.
    Go {
        idmapped: usize,
        prepared: usize,
        /// Detached or created sandboxes: the workload tells the runtime whether its exec
        /// succeeded (the ExecSync socket closes on exec).
        sync: bool,
        /// `create`: the workload waits for [`START`] on the ExecSync socket before exec.
        hold: bool,
        /// Bridge mode: the addresses the sandbox configures on eth0.
        net: Option<crate::net::Assigned>,
    },
}

/// The runtime has its copy of the workload's seccomp listener: the workload may go on.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListenerTaken;

/// What the runtime sends the held workload over the ExecSync socket to let it exec.
pub const START: &str = "start";

/// Child → parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// The workload is about to exec with these protections.
    Applied(SecurityReport),
    /// `NUCLEUS_TRACE_TIMINGS`: the sandbox's and the workload's stages, before `Applied`.
    Timings(Vec<crate::trace::Mark>),
    /// Setup failed; nothing ran. The failing process ends with the failure's exit code.
    Failed(StartFailure),
    /// The sandbox's pty master (one fd attached), for `--tty`.
    Pty,
    /// One end of the ExecSync socket (one fd attached): it closes when the workload's exec
    /// succeeds; a failed exec is reported with `Failed` before it closes.
    ExecSync,
    /// The workload is about to install a notifying seccomp filter; its listener will be this
    /// descriptor number in the workload (the runtime copies it with pidfd_getfd).
    Listener(i32),
    /// The workload ended (sent by init).
    Exited(WaitStatus),
    /// Egress supervision sockets made in the sandbox's network namespace (fds attached in
    /// this order, each when true): the resolver's UDP and TCP listeners on loopback port 53,
    /// a nfnetlink socket for the resolver's address sets, and the NFLOG socket of refused
    /// packets.
    NetWatch { resolver: bool, log: bool },
}

pub struct Channel {
    fd: OwnedFd,
}

impl From<OwnedFd> for Channel {
    fn from(fd: OwnedFd) -> Channel {
        Channel { fd }
    }
}

pub fn pair() -> Result<(Channel, Channel)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid out-array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error()).ctx("socketpair", "");
    }
    // SAFETY: both fds were just returned by socketpair and are owned by nobody else.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((Channel { fd: a }, Channel { fd: b }))
}

const MAX_FDS: usize = 64;

impl Channel {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
        self.send_bytes(&data, fds)
    }

    /// Send raw bytes with descriptors (e.g. an OCI console socket: the payload is a name).
    pub fn send_bytes(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if fds.len() > MAX_FDS {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space =
            unsafe { libc::CMSG_SPACE((fds.len() * std::mem::size_of::<RawFd>()) as u32) } as usize;
        let mut cbuf = vec![0u8; space.max(1)];
        // SAFETY: msghdr is plain data; zeroed is valid and fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            // SAFETY: msg_control points at a buffer of CMSG_SPACE(n fds) bytes, so the first
            // header and its data fit; we write exactly n fds.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len =
                    libc::CMSG_LEN((fds.len() * std::mem::size_of::<RawFd>()) as u32) as _;
                let p = libc::CMSG_DATA(c) as *mut RawFd;
                for (i, f) in fds.iter().enumerate() {
                    p.add(i).write_unaligned(f.as_raw_fd());
                }
            }
        }
        // SAFETY: msg references iov/cbuf which outlive the call.
        let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receive one message; `Ok(None)` on EOF (the peer is gone).
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        // Uninitialised: only the pages the kernel writes are touched (see raw::read_into).
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.capacity(),
        };
        // SAFETY: pure size computation.
        let space =
            unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
        let mut cbuf = vec![0u8; space];
        // SAFETY: msghdr is plain data; zeroed is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = loop {
            // SAFETY: msg references buffers that outlive the call.
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            break n as usize;
        };
        let mut fds = Vec::new();
        // SAFETY: iterate the control messages the kernel wrote into cbuf; SCM_RIGHTS data is
        // an array of fds that now belong to us.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                        / std::mem::size_of::<RawFd>();
                    let p = libc::CMSG_DATA(c) as *const RawFd;
                    for i in 0..count {
                        fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if n == 0 {
            return Ok(None);
        }
        // SAFETY: recvmsg wrote the first n bytes (n <= capacity).
        unsafe { buf.set_len(n.min(buf.capacity())) };
        let v = serde_json::from_slice(&buf).map_err(io::Error::other)?;
        Ok(Some((v, fds)))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
