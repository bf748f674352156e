//! The typed channel between the runtime (parent) and the sandbox's init and workload (child):
//! a SOCK_SEQPACKET socketpair, one JSON message per packet, the descriptors a message carries
//! by SCM_RIGHTS. Each end is typed by what it sends and what it receives, and each message
//! names its descriptors ([`Fd`] slots): the receiver gets them in their slots, never as a loose
//! list, and a packet whose descriptors do not match its slots is refused (and they are closed).

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::{self, IoSlice, IoSliceMut};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::error::{Context, Result};
use crate::raw::WaitStatus;

pub use nucleus_spec::stage::{Stage, StartFailure};
pub use nucleus_spec::state::SecurityReport;

/// A descriptor slot in a message. In the packet it is `true` (a descriptor follows, in slot
/// order) or `false` (none); the descriptor itself travels by SCM_RIGHTS.
#[derive(Debug, Default)]
pub struct Fd {
    fd: Option<OwnedFd>,
    /// Decoded from a packet: whether a descriptor belongs here ([`Channel::recv`] fills it).
    wanted: bool,
}

impl Fd {
    pub fn take(&mut self) -> Option<OwnedFd> {
        self.fd.take()
    }
    pub fn into_inner(self) -> Option<OwnedFd> {
        self.fd
    }
    pub fn is_some(&self) -> bool {
        self.fd.is_some()
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Fd {
        Some(fd).into()
    }
}

impl From<Option<OwnedFd>> for Fd {
    fn from(fd: Option<OwnedFd>) -> Fd {
        Fd { fd, wanted: false }
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bool(self.fd.is_some())
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Fd {
            fd: None,
            wanted: bool::deserialize(d)?,
        })
    }
}

/// A message of the channel: what it is and which descriptors it carries, in order.
pub trait Message: Serialize + DeserializeOwned {
    /// The descriptor slots, in the order they travel.
    fn slots(&mut self) -> Vec<&mut Fd> {
        vec![]
    }
}

/// Parent → child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// Id maps are written; the prepared mounts in plan order: the id-mapped binds, then the
    /// detached trees.
    Go {
        idmapped: Vec<Fd>,
        prepared: Vec<Fd>,
        /// Detached or created sandboxes: the workload tells the runtime whether its exec
        /// succeeded (the ExecSync socket closes on exec).
        sync: bool,
        /// `create`: the workload waits for [`Release::Start`] on the ExecSync socket.
        hold: bool,
        /// Bridge mode: the addresses the sandbox configures on eth0.
        /// Per bridge (eth0 first), what the sandbox configures.
        net: Vec<crate::net::Assigned>,
        /// Its pid as the host sees it (the state OCI hooks read); 0 when not needed.
        #[serde(default)]
        pid: i32,
    },
    /// The runtime has its copy of the workload's seccomp listener: the workload may go on.
    ListenerTaken,
}

impl Message for ToChild {
    fn slots(&mut self) -> Vec<&mut Fd> {
        match self {
            ToChild::Go {
                idmapped, prepared, ..
            } => idmapped.iter_mut().chain(prepared.iter_mut()).collect(),
            ToChild::ListenerTaken => vec![],
        }
    }
}

/// What the runtime sends a held workload over the ExecSync socket.
#[derive(Debug, Serialize, Deserialize)]
pub enum Release {
    /// `nucleus start`: exec now.
    Start,
}
impl Message for Release {}

/// Nothing: the workload only closes its ExecSync end (on exec) or fails on the main channel.
#[derive(Debug, Serialize, Deserialize)]
pub enum Nothing {}
impl Message for Nothing {}

/// The control-socket request of `nucleus start`.
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
    /// The sandbox's pty master, for `--tty`.
    Pty(Fd),
    /// The runtime's end of the ExecSync socket: it closes when the workload's exec succeeds;
    /// a failed exec is reported with `Failed` before it closes.
    ExecSync(Fd),
    /// The workload is about to install a notifying seccomp filter; its listener will be this
    /// descriptor number in the workload (the runtime copies it with pidfd_getfd).
    Listener(i32),
    /// The workload ended (sent by init).
    Exited(WaitStatus),
    /// Egress supervision sockets made in the sandbox's network namespace: the resolver's
    /// UDP and TCP listeners on loopback port 53 and a nfnetlink socket for its address sets,
    /// and the NFLOG socket of refused packets.
    NetWatch { udp: Fd, tcp: Fd, sets: Fd, log: Fd },
}

impl Message for FromChild {
    fn slots(&mut self) -> Vec<&mut Fd> {
        match self {
            FromChild::Pty(f) | FromChild::ExecSync(f) => vec![f],
            FromChild::NetWatch {
                udp,
                tcp,
                sets,
                log,
            } => vec![udp, tcp, sets, log],
            FromChild::Applied(_)
            | FromChild::Timings(_)
            | FromChild::Failed(_)
            | FromChild::Listener(_)
            | FromChild::Exited(_) => vec![],
        }
    }
}

/// One end of a channel: sends `Out`, receives `In`.
pub struct Channel<Out, In> {
    fd: OwnedFd,
    _types: PhantomData<fn(Out) -> In>,
}

/// The runtime's end of the main channel.
pub type Runtime = Channel<ToChild, FromChild>;
/// The sandbox's end (its setup process, init and the workload).
pub type Sandbox = Channel<FromChild, ToChild>;
/// The runtime's end of the ExecSync socket.
pub type ExecSyncRuntime = Channel<Release, Nothing>;
/// The workload's end of the ExecSync socket.
pub type ExecSyncWorkload = Channel<Nothing, Release>;

impl<Out, In> From<OwnedFd> for Channel<Out, In> {
    fn from(fd: OwnedFd) -> Self {
        Channel {
            fd,
            _types: PhantomData,
        }
    }
}

/// A connected pair: the first end sends `A` and receives `B`, the second the reverse.
pub fn pair<A, B>() -> Result<(Channel<A, B>, Channel<B, A>)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
    .ctx("socketpair", "")?;
    Ok((a.into(), b.into()))
}

/// The most descriptors one packet carries (a plan's prepared mounts are bounded below this).
const MAX_FDS: usize = 64;
/// The largest packet (a security report or a trace's marks are a few KiB).
const MAX_PACKET: usize = 64 * 1024;

/// Send `data` with descriptors on a connected socket.
fn send_packet(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    retry(|| {
        rustix::net::sendmsg(
            sock,
            &[IoSlice::new(data)],
            &mut control,
            SendFlags::NOSIGNAL,
        )
    })?;
    Ok(())
}

/// A socket call, again when a signal interrupted it.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

/// Send `data` with descriptors over a connected socket (a seccomp agent's).
/// Receive one descriptor sent with SCM_RIGHTS on a stream socket (an OCI console socket's
/// pty master), whatever the payload.
pub fn recv_one_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    retry(|| {
        rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
    })?;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut r) = m {
            if let Some(fd) = r.next() {
                return Ok(fd);
            }
        }
    }
    Err(invalid("no descriptor"))
}

pub fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    send_packet(sock, data, fds)
}

/// An OCI console socket (`--console-socket`): the pty master goes to whoever listens on it,
/// with the payload "/dev/ptmx" (what runc and crun send).
pub struct ConsoleSocket(OwnedFd);

impl From<OwnedFd> for ConsoleSocket {
    fn from(fd: OwnedFd) -> Self {
        ConsoleSocket(fd)
    }
}

impl ConsoleSocket {
    pub fn send_master(&self, master: BorrowedFd<'_>) -> io::Result<()> {
        send_packet(self.0.as_fd(), b"/dev/ptmx", &[master])
    }
}

impl<Out: Message, In: Message> Channel<Out, In> {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Send a message and the descriptors in its slots (ours close once they are sent).
    pub fn send(&self, mut msg: Out) -> io::Result<()> {
        let data = serde_json::to_vec(&msg).map_err(io::Error::other)?;
        let owned: Vec<OwnedFd> = msg.slots().into_iter().filter_map(Fd::take).collect();
        let fds: Vec<BorrowedFd<'_>> = owned.iter().map(|f| f.as_fd()).collect();
        send_packet(self.fd.as_fd(), &data, &fds)
    }

    /// Receive one message with its descriptors in their slots; `Ok(None)` on EOF (the peer is
    /// gone). A truncated packet, or descriptors that do not match the message's slots, is an
    /// error (and the descriptors that came are closed).
    pub fn recv(&self) -> io::Result<Option<In>> {
        // The packet's size first, so only that much is zeroed; an oversized packet is read
        // into the largest buffer allowed, comes back truncated, and is refused.
        let size = retry(|| {
            rustix::net::recvmsg(
                self.fd.as_fd(),
                &mut [],
                &mut RecvAncillaryBuffer::default(),
                RecvFlags::PEEK | RecvFlags::TRUNC,
            )
        })?
        .bytes;
        let mut buf = vec![0u8; size.min(MAX_PACKET)];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = retry(|| {
            rustix::net::recvmsg(
                self.fd.as_fd(),
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
        })?;
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(r) = m {
                fds.extend(r);
            }
        }
        if got
            .flags
            .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
        {
            return Err(invalid("a truncated message"));
        }
        if got.bytes == 0 {
            return Ok(None);
        }
        let mut msg = serde_json::from_slice::<In>(&buf[..got.bytes]).map_err(io::Error::other)?;
        let mut slots = msg.slots();
        if slots.iter().filter(|s| s.wanted).count() != fds.len() {
            return Err(invalid("descriptors that do not match the message"));
        }
        let mut fds = fds.into_iter();
        for slot in slots.iter_mut().filter(|s| s.wanted) {
            slot.fd = fds.next();
        }
        drop(slots);
        Ok(Some(msg))
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("channel: {what}"))
}

impl<Out, In> From<Channel<Out, In>> for OwnedFd {
    fn from(c: Channel<Out, In>) -> OwnedFd {
        c.fd
    }
}

impl<Out, In> AsFd for Channel<Out, In> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn descriptors_arrive_in_their_slots() {
        let (rt, sb) = pair::<ToChild, FromChild>().unwrap();
        let log = devnull();
        let log_ino = std::fs::File::from(log.try_clone().unwrap())
            .metadata()
            .unwrap();
        sb.send(FromChild::NetWatch {
            udp: Fd::default(),
            tcp: Fd::default(),
            sets: Fd::default(),
            log: log.into(),
        })
        .unwrap();
        match rt.recv().unwrap() {
            Some(FromChild::NetWatch {
                mut udp,
                mut tcp,
                mut sets,
                mut log,
            }) => {
                assert!(udp.take().is_none() && tcp.take().is_none() && sets.take().is_none());
                let got = std::fs::File::from(log.take().unwrap()).metadata().unwrap();
                use std::os::unix::fs::MetadataExt;
                assert_eq!(got.ino(), log_ino.ino());
            }
            other => panic!("{other:?}"),
        }
        sb.send(FromChild::Listener(7)).unwrap();
        assert!(matches!(rt.recv().unwrap(), Some(FromChild::Listener(7))));
        rt.send(ToChild::Go {
            idmapped: vec![devnull().into()],
            prepared: vec![devnull().into(), devnull().into()],
            sync: true,
            hold: false,
            net: vec![],
            pid: 0,
        })
        .unwrap();
        match sb.recv().unwrap() {
            Some(ToChild::Go {
                idmapped, prepared, ..
            }) => {
                assert_eq!(idmapped.len(), 1);
                assert_eq!(prepared.len(), 2);
                assert!(idmapped
                    .into_iter()
                    .chain(prepared)
                    .all(|f| f.into_inner().is_some()));
            }
            other => panic!("{other:?}"),
        }
        drop(sb);
        assert!(rt.recv().unwrap().is_none());
    }

    #[test]
    fn descriptors_that_do_not_match_are_refused_and_closed() {
        let (rt, sb) = pair::<ToChild, FromChild>().unwrap();
        // A hostile sandbox: a message with no slots and a descriptor anyway.
        let extra = devnull();
        send_packet(
            sb.as_fd(),
            &serde_json::to_vec(&FromChild::Listener(3)).unwrap(),
            &[extra.as_fd()],
        )
        .unwrap();
        assert_eq!(rt.recv().unwrap_err().kind(), io::ErrorKind::InvalidData);
        // A slot that says a descriptor follows, and none does.
        send_packet(sb.as_fd(), br#"{"Pty":true}"#, &[]).unwrap();
        assert_eq!(rt.recv().unwrap_err().kind(), io::ErrorKind::InvalidData);
        // More than the packet may carry.
        let many: Vec<OwnedFd> = (0..MAX_FDS + 1).map(|_| devnull()).collect();
        let b: Vec<BorrowedFd<'_>> = many.iter().map(|f| f.as_fd()).collect();
        assert!(send_packet(sb.as_fd(), b"{}", &b).is_err());
        // Oversized: refused, not cut and parsed.
        send_packet(sb.as_fd(), &vec![b' '; MAX_PACKET + 1], &[]).unwrap();
        assert_eq!(rt.recv().unwrap_err().kind(), io::ErrorKind::InvalidData);
        // The channel still works after each refusal.
        sb.send(FromChild::Listener(-1)).unwrap();
        assert!(matches!(rt.recv().unwrap(), Some(FromChild::Listener(-1))));
    }

    fn valid_messages() -> Vec<Vec<u8>> {
        [
            FromChild::Listener(3),
            FromChild::NetWatch {
                udp: Fd::default(),
                tcp: Fd::default(),
                sets: Fd::default(),
                log: Fd::default(),
            },
        ]
        .iter()
        .map(|m| serde_json::to_vec(m).unwrap())
        .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]
        /// Whatever a sandbox's side puts on the channel (any bytes, mutated messages, up to
        /// two descriptors): a message or an error, never a panic; the channel goes on.
        #[test]
        fn any_packet_from_the_sandbox(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
            which in 0usize..3,
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..4),
            nfds in 0usize..3,
        ) {
            let (rt, sb) = pair::<ToChild, FromChild>().unwrap();
            let mut b = if which < 2 { valid_messages()[which].clone() } else { raw };
            for (i, v) in &edits {
                let i = i.index(b.len());
                b[i] = *v;
            }
            let fds: Vec<OwnedFd> = (0..nfds).map(|_| devnull()).collect();
            let bf: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
            send_packet(sb.as_fd(), &b, &bf).unwrap();
            let _ = rt.recv();
            sb.send(FromChild::Listener(9)).unwrap();
            proptest::prop_assert!(matches!(rt.recv().unwrap(), Some(FromChild::Listener(9))));
        }
    }
}
