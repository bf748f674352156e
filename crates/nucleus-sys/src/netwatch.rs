//! Egress supervision: the runtime's DNS resolver for a sandbox and the log of refused packets.
//!
//! The sandbox makes the sockets in its own network namespace (loopback port 53, a nfnetlink
//! socket for its nftables sets, an NFLOG socket) and hands them to the runtime, where one
//! thread serves them: it answers allowed names by forwarding them upstream from the host's
//! side, admits exactly the returned addresses in the sandbox's sets (timeouts from the
//! records' TTLs) before the answer is delivered, answers other names with NXDOMAIN, and turns
//! NFLOG messages into one line per refused destination.

use crate::channel::{Fd, FromChild};
use crate::error::{Context, Result};
use crate::net::Netlink;
use crate::raw;
use nucleus_spec::net::{EgressRefusal, ResolverPlan};
use nucleus_spec::nft::{Batch, LOG_GROUP};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_PAYLOAD: u16 = 9;

/// The sockets, made inside the sandbox's network namespace.
pub struct WatchSockets {
    pub resolver: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    pub log: Option<OwnedFd>,
}

impl WatchSockets {
    pub fn open(resolver: bool, log: bool) -> Result<Self> {
        Self::open_at(std::net::Ipv4Addr::LOCALHOST, resolver, log)
    }

    /// The resolver on `addr` (a gVisor sandbox's: its router's end of the inner link).
    pub fn open_at(addr: std::net::Ipv4Addr, resolver: bool, log: bool) -> Result<Self> {
        let resolver = if resolver {
            let at = SocketAddr::from((addr, 53));
            let udp = UdpSocket::bind(at).ctx("bind", format!("{at}/udp"))?;
            let tcp = TcpListener::bind(at).ctx("bind", format!("{at}/tcp"))?;
            let nft = Netlink::open(libc::NETLINK_NETFILTER).ctx("open", "nfnetlink")?;
            Some((udp.into(), tcp.into(), nft.into_fd()))
        } else {
            None
        };
        let log = if log { Some(nflog_socket()?) } else { None };
        Ok(Self { resolver, log })
    }
}

/// Sent over the channel: each socket in its slot.
impl From<WatchSockets> for FromChild {
    fn from(w: WatchSockets) -> FromChild {
        let (udp, tcp, sets) = match w.resolver {
            Some((u, t, n)) => (u.into(), t.into(), n.into()),
            None => Default::default(),
        };
        FromChild::NetWatch {
            udp,
            tcp,
            sets,
            log: w.log.into(),
        }
    }
}

impl WatchSockets {
    /// As the runtime received them (a resolver needs all three of its sockets).
    pub fn received(udp: Fd, tcp: Fd, sets: Fd, log: Fd) -> WatchSockets {
        let resolver = match (udp.into_inner(), tcp.into_inner(), sets.into_inner()) {
            (Some(u), Some(t), Some(n)) => Some((u, t, n)),
            _ => None,
        };
        WatchSockets {
            resolver,
            log: log.into_inner(),
        }
    }
}

/// An NFLOG socket bound to the egress ruleset's group, copying packet headers.
fn nflog_socket() -> Result<OwnedFd> {
    let mut nl = Netlink::open(libc::NETLINK_NETFILTER).ctx("open", "nflog")?;
    let seq = nl.reserve(3);
    let mut buf = Vec::new();
    let mut msg = |seq: u32, attr_ty: u16, attr: &[u8]| {
        let len = 16 + 4 + 4 + attr.len();
        let padded = (len + 3) & !3;
        buf.extend_from_slice(&(padded as u32).to_ne_bytes());
        buf.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
        buf.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
        buf.extend_from_slice(&LOG_GROUP.to_be_bytes());
        buf.extend_from_slice(&((4 + attr.len()) as u16).to_ne_bytes());
        buf.extend_from_slice(&attr_ty.to_ne_bytes());
        buf.extend_from_slice(attr);
        buf.resize(buf.len() + padded - len, 0);
    };
    // NFULA_CFG_CMD: bind; NFULA_CFG_MODE: copy 80 bytes of each packet (its headers).
    msg(seq, 1, &[1]);
    let mut mode = 80u32.to_be_bytes().to_vec();
    mode.extend_from_slice(&[2, 0]);
    msg(seq + 1, 2, &mode);
    // NFULA_CFG_QTHRESH: deliver each message at once (the default batches up to a second).
    msg(seq + 2, 5, &1u32.to_be_bytes());
    nl.transact(&buf, seq, seq + 2)
        .ctx("bind", format!("nflog group {LOG_GROUP}"))?;
    Ok(nl.into_fd())
}

/// A refused packet's protocol and destination, from its network header.
fn describe(family: u8, p: &[u8]) -> Option<String> {
    let (proto, dst, l4) = match family as i32 {
        libc::AF_INET if p.len() >= 20 => {
            let ihl = usize::from(p[0] & 0xf) * 4;
            let d: [u8; 4] = p[16..20].try_into().ok()?;
            (p[9], IpAddr::from(d), ihl)
        }
        libc::AF_INET6 if p.len() >= 40 => {
            let d: [u8; 16] = p[24..40].try_into().ok()?;
            // Skip a hop-by-hop options header.
            match (p[6], p.get(40), p.get(41)) {
                (0, Some(next), Some(len)) => {
                    (*next, IpAddr::from(d), 40 + (usize::from(*len) + 1) * 8)
                }
                (next, _, _) => (next, IpAddr::from(d), 40),
            }
        }
        _ => return None,
    };
    let port = p
        .get(l4 + 2..l4 + 4)
        .map(|b| u16::from_be_bytes([b[0], b[1]]));
    Some(match (proto, port) {
        (6, Some(pt)) => format!("tcp to {}", SocketAddr::new(dst, pt)),
        (17, Some(pt)) => format!("udp to {}", SocketAddr::new(dst, pt)),
        (1 | 58, _) => format!("icmp to {dst}"),
        (n, _) => format!("protocol {n} to {dst}"),
    })
}

/// How long an upstream that did not answer is skipped.
const UPSTREAM_QUIET_S: u64 = 5;

/// Lines for the NFLOG messages in one datagram.
fn nflog_lines(b: &[u8]) -> Vec<String> {
    let mut out = vec![];
    let mut i = 0;
    while i + 20 <= b.len() {
        let len = u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let ty = u16::from_ne_bytes([b[i + 4], b[i + 5]]);
        if len < 20 || i + len > b.len() {
            break;
        }
        if ty == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
            let family = b[i + 16];
            let mut j = i + 20;
            while j + 4 <= i + len {
                let alen = usize::from(u16::from_ne_bytes([b[j], b[j + 1]]));
                let aty = u16::from_ne_bytes([b[j + 2], b[j + 3]]) & 0x7fff;
                if alen < 4 || j + alen > i + len {
                    break;
                }
                if aty == NFULA_PAYLOAD {
                    if let Some(d) = describe(family, &b[j + 4..j + alen]) {
                        out.push(d);
                    }
                }
                j += (alen + 3) & !3;
            }
        }
        i += (len + 3) & !3;
    }
    out
}

/// The thread serving one sandbox; [`Watcher::stop`] ends it and closes every socket (they
/// hold the sandbox's network namespace).
pub struct Watcher {
    /// Closing it ends the thread.
    stop: OwnedFd,
    thread: JoinHandle<()>,
    /// One datagram per refusal to report ([`Watcher::recv`]).
    reports: UnixDatagram,
}

struct Serve {
    plan: Option<ResolverPlan>,
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    sets: Option<Netlink>,
    log: Option<OwnedFd>,
    out: UnixDatagram,
    /// Addresses in the sets and when they expire there.
    admitted: HashMap<IpAddr, Instant>,
    /// When each refused destination was last reported.
    reported: HashMap<EgressRefusal, Instant>,
    /// Upstreams that did not answer, until when they are skipped (a dead nameserver costs
    /// one timeout, not one per query of every retry).
    silent: HashMap<IpAddr, Instant>,
}

impl Watcher {
    /// Serve the sockets the sandbox sent.
    pub fn spawn(plan: Option<ResolverPlan>, sockets: WatchSockets) -> Result<Self> {
        let log_fd = sockets.log;
        let (udp, tcp, sets) = match (&plan, sockets.resolver) {
            (Some(_), Some((u, t, n))) => (
                Some(UdpSocket::from(u)),
                Some(TcpListener::from(t)),
                Some(Netlink::from_fd(n)),
            ),
            _ => (None, None, None),
        };
        let (stop_rd, stop) = raw::pipe().ctx("pipe", "watcher")?;
        let (out, reports) = UnixDatagram::pair().ctx("socketpair", "watcher")?;
        // Reports are dropped rather than block the thread (a port scan makes many).
        out.set_nonblocking(true).ctx("socketpair", "watcher")?;
        let mut s = Serve {
            plan,
            udp,
            tcp,
            sets,
            log: log_fd,
            out,
            admitted: HashMap::new(),
            reported: HashMap::new(),
            silent: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("nucleus-netwatch".into())
            .spawn(move || s.run(stop_rd))
            .ctx("spawn", "egress watcher")?;
        Ok(Self {
            stop,
            thread,
            reports,
        })
    }
    /// Wait for reports here (readable when one is queued).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.reports.as_fd()
    }

    /// The next queued refusal, if any (the socket must be readable, or nonblocking).
    pub fn recv(&self) -> Option<EgressRefusal> {
        recv_report(&self.reports)
    }

    /// End the thread; the reports it had not delivered yet.
    pub fn stop(self) -> Vec<EgressRefusal> {
        let Watcher {
            stop,
            thread,
            reports,
        } = self;
        drop(stop);
        let _ = thread.join();
        let _ = reports.set_nonblocking(true);
        std::iter::from_fn(|| recv_report(&reports)).collect()
    }
}

fn recv_report(s: &UnixDatagram) -> Option<EgressRefusal> {
    let mut b = [0u8; 1024];
    let n = s.recv(&mut b).ok()?;
    serde_json::from_slice(&b[..n]).ok()
}

impl Serve {
    fn run(&mut self, stop: OwnedFd) {
        loop {
            let fds = [
                stop.as_raw_fd(),
                self.udp.as_ref().map_or(-1, |s| s.as_raw_fd()),
                self.tcp.as_ref().map_or(-1, |s| s.as_raw_fd()),
                self.log.as_ref().map_or(-1, |s| s.as_raw_fd()),
            ];
            let Ok(rev) = raw::poll_read(&fds, -1) else {
                return;
            };
            if rev[0] != 0 {
                // Refusals logged just before the end still count.
                if self.log.is_some() {
                    self.log_packets_nonblocking();
                }
                return;
            }
            if rev[1] != 0 {
                self.udp_query();
            }
            if rev[2] != 0 {
                self.tcp_query();
            }
            if rev[3] != 0 {
                self.log_packets();
            }
        }
    }

    fn report(&mut self, r: EgressRefusal) {
        let now = Instant::now();
        let quiet = Duration::from_secs(10);
        match self.reported.get(&r) {
            Some(t) if now.duration_since(*t) < quiet => {}
            _ => {
                if let Ok(b) = serde_json::to_vec(&r) {
                    let _ = self.out.send(&b);
                }
                if self.reported.len() >= 4096 {
                    self.reported.retain(|_, t| now.duration_since(*t) < quiet);
                }
                if self.reported.len() < 4096 {
                    self.reported.insert(r, now);
                }
            }
        }
    }

    fn log_packets_nonblocking(&mut self) {
        while let Some(l) = &self.log {
            match raw::poll_read(&[l.as_raw_fd()], 0) {
                Ok(r) if r[0] != 0 => self.log_packets(),
                _ => return,
            }
        }
    }

    fn log_packets(&mut self) {
        let mut b = vec![0u8; 64 * 1024];
        let n = match self.log.as_ref().map(|l| raw::read(l.as_fd(), &mut b)) {
            Some(Ok(n)) => n,
            // ENOBUFS (a burst overflowed the socket) loses lines, not the watcher.
            _ => return,
        };
        for l in nflog_lines(&b[..n]) {
            self.report(EgressRefusal::Packet(l));
        }
    }

    fn udp_query(&mut self) {
        let mut b = [0u8; 4096];
        let Some(Ok((n, from))) = self.udp.as_ref().map(|u| u.recv_from(&mut b)) else {
            return;
        };
        if let Some(r) = self.answer(&b[..n], false) {
            if let Some(u) = &self.udp {
                let _ = u.send_to(&r, from);
            }
        }
    }

    fn tcp_query(&mut self) {
        let Some(Ok((mut c, _))) = self.tcp.as_ref().map(|t| t.accept()) else {
            return;
        };
        // One deadline for the whole query: a client trickling bytes must not hold the thread.
        let deadline = Instant::now() + Duration::from_secs(2);
        let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
        let mut len = [0u8; 2];
        if read_by(&mut c, &mut len, deadline).is_err() {
            return;
        }
        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if read_by(&mut c, &mut q, deadline).is_err() {
            return;
        }
        if let Some(r) = self.answer(&q, true) {
            let mut out = (r.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&r);
            let _ = c.write_all(&out);
        }
    }

    /// The answer to one query: NXDOMAIN for a name that is not allowed, else the upstream's
    /// answer, its addresses admitted first. Forwarded over the transport it came by: a
    /// truncated UDP answer goes back as it is, and the client asks again over TCP.
    fn answer(&mut self, q: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let query = match nucleus_spec::dns::parse_query(q) {
            Ok(x) => x,
            Err(e) => {
                self.report(EgressRefusal::Dns(e.why));
                return e.reply;
            }
        };
        let plan = self.plan.as_ref()?;
        // The first of the sandbox's bridges whose names file has the name answers it.
        let name = query.name();
        if let Some(addrs) = plan.names.iter().find_map(|n| local_names(n, &name)) {
            return Some(nucleus_spec::dns::local_answer(&query, &addrs, 2));
        }
        if !plan.allows(&query.labels) {
            self.report(EgressRefusal::Dns(query.name()));
            return Some(nucleus_spec::dns::refusal(&query));
        }
        let q = &query.wire[..];
        let upstreams = plan.upstreams.clone();
        let filtering = plan.domains.is_some();
        for up in upstreams {
            if self.silent.get(&up).is_some_and(|t| *t > Instant::now()) {
                continue;
            }
            let got = if tcp {
                forward_tcp(q, up)
            } else {
                forward_udp(q, up)
            };
            let Ok(r) = got else {
                self.silent
                    .insert(up, Instant::now() + Duration::from_secs(UPSTREAM_QUIET_S));
                continue;
            };
            self.silent.remove(&up);
            let Some(addrs) = nucleus_spec::dns::answers(&r, query.id) else {
                continue;
            };
            if filtering && self.admit(&addrs).is_err() {
                // An answer the sandbox could not use must not be given.
                return None;
            }
            return Some(r);
        }
        // No upstream answered: SERVFAIL at once (the client would otherwise wait out its
        // own timeouts and retries, ~10 s with glibc's defaults, for nothing).
        Some(nucleus_spec::dns::server_failure(&query))
    }

    /// Put the addresses the plan may open in the sets, each for its TTL (at least 5 s, at
    /// most a day). An address already there is refreshed only when its new expiry is later.
    fn admit(&mut self, addrs: &[(IpAddr, u32)]) -> io::Result<()> {
        let now = Instant::now();
        let mut items: Vec<(IpAddr, u64)> = Vec::new();
        let opens = |a: &IpAddr| self.plan.as_ref().is_some_and(|p| p.admits(a));
        for (a, ttl) in addrs.iter().filter(|(a, _)| opens(a)) {
            let ms = u64::from((*ttl).clamp(5, 86_400)) * 1000;
            match items.iter_mut().find(|(b, _)| b == a) {
                Some(it) => it.1 = it.1.max(ms),
                None => items.push((*a, ms)),
            }
        }
        // Keep only what is new or would live longer than it does now.
        items.retain(|(a, ms)| {
            self.admitted
                .get(a)
                .is_none_or(|t| now + Duration::from_millis(*ms) > *t)
        });
        if items.is_empty() {
            return Ok(());
        }
        let refresh: Vec<IpAddr> = items
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| self.admitted.get(a).is_some_and(|t| *t > now))
            .collect();
        let Some(nl) = self.sets.as_mut() else {
            return Ok(());
        };
        let tx = |items: &[(IpAddr, u64)], refresh: &[IpAddr], nl: &mut Netlink| {
            let seq = nl.reserve(16);
            let mut b = Batch::new(seq);
            b.set_elems(items, refresh);
            let (buf, first, last) = b.finish();
            nl.transact(&buf, first, last)
        };
        match tx(&items, &refresh, nl) {
            // One of them expired in the kernel meanwhile (the whole batch was undone):
            // delete one by one what is still there, then add them all.
            Err(e) if !refresh.is_empty() && e.raw_os_error() == Some(libc::ENOENT) => {
                for a in &refresh {
                    match tx(&[], std::slice::from_ref(a), nl) {
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                        r => r?,
                    }
                }
                tx(&items, &[], nl)?
            }
            r => r?,
        }
        for (a, ms) in items {
            self.admitted.insert(a, now + Duration::from_millis(ms));
        }
        self.admitted.retain(|_, t| *t > now);
        Ok(())
    }
}

/// Fill `buf` from `c` before `deadline`.
/// The addresses of the sandboxes a names file gives for `name` (None: not one of its names):
/// each sandbox's id from the store's name link, its address from the live claim that names
/// it on the bridge. Runtime state only; read at each query (the topology changes under it).
fn local_names(n: &nucleus_spec::net::NamesPlan, name: &str) -> Option<Vec<std::net::Ipv4Addr>> {
    let text = std::fs::read_to_string(&n.file).ok()?;
    let sandboxes = nucleus_spec::net::names_lookup(&text, name)?;
    let ids: Vec<String> = sandboxes
        .iter()
        .filter(|s| nucleus_spec::state::validate_name("name", s).is_ok())
        .filter_map(|s| std::fs::read_link(n.names_dir.join(s)).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    let mut out = vec![];
    for e in std::fs::read_dir(&n.claims_dir).ok()?.flatten() {
        let Some(index) = e.file_name().to_str().and_then(|i| i.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(holder) = std::fs::read_link(e.path()) else {
            continue;
        };
        let holder = holder.to_string_lossy();
        if ids
            .iter()
            .any(|id| holder.split(' ').next() == Some(id.as_str()))
            && crate::net::holder_alive(&holder)
        {
            if let IpAddr::V4(a) = n.subnet4.nth(index) {
                out.push(a);
            }
        }
    }
    out.sort();
    Some(out)
}

fn read_by(c: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        c.set_read_timeout(Some(left))?;
        match c.read(&mut buf[got..])? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(())
}

fn forward_udp(q: &[u8], up: IpAddr) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(SocketAddr::new(up, 53))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.send(q)?;
    let mut b = vec![0u8; 65535];
    let n = s.recv(&mut b)?;
    b.truncate(n);
    Ok(b)
}

fn forward_tcp(q: &[u8], up: IpAddr) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(up, 53), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut m = (q.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(q);
    s.write_all(&m)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut r)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_packets() {
        let mut v4 = vec![0u8; 24];
        v4[0] = 0x45;
        v4[9] = 6;
        v4[16..20].copy_from_slice(&[198, 51, 100, 9]);
        v4[22..24].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(
            describe(libc::AF_INET as u8, &v4).unwrap(),
            "tcp to 198.51.100.9:80"
        );
        let mut v6 = vec![0u8; 44];
        v6[6] = 17;
        v6[39] = 1;
        v6[42..44].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(
            describe(libc::AF_INET6 as u8, &v6).unwrap(),
            "udp to [::1]:53"
        );
        assert!(describe(libc::AF_INET as u8, &[0x45]).is_none());
    }

    /// One NFLOG packet message (family, payload) as the kernel frames it.
    fn nflog(family: u8, payload: &[u8]) -> Vec<u8> {
        let alen = 4 + payload.len();
        let len = 20 + ((alen + 3) & !3);
        let mut b = (len as u32).to_ne_bytes().to_vec();
        b.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET).to_ne_bytes());
        b.extend_from_slice(&[0; 10]);
        b.extend_from_slice(&[family, 0, 0, 0]);
        b.extend_from_slice(&(alen as u16).to_ne_bytes());
        b.extend_from_slice(&NFULA_PAYLOAD.to_ne_bytes());
        b.extend_from_slice(payload);
        b.resize(len, 0);
        b
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1024, ..Default::default() })]
        /// Any datagram on the NFLOG socket (the packets a sandbox sent, framed by the
        /// kernel): lines or none, never a panic; a well-framed packet gives one line.
        #[test]
        fn nflog_datagrams(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = nflog_lines(&b);
        }

        #[test]
        fn nflog_packets(v6 in proptest::prelude::any::<bool>(),
                         payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..90),
                         cut in 0usize..100) {
            let family = if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
            let whole = nflog(family, &payload);
            let lines = nflog_lines(&whole);
            let needed = if v6 { 40 } else { 20 };
            proptest::prop_assert_eq!(lines.len(), usize::from(payload.len() >= needed));
            // Cut anywhere: no panic.
            let _ = nflog_lines(&whole[..cut.min(whole.len())]);
        }
    }
}
