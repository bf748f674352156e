//! Networking mechanism: netlink (links, addresses, routes; nftables batches compiled by
//! `nucleus_spec::nft`), address claims, the host side of a bridged sandbox, slirp4netns.

use crate::error::{other, Context, Result};
use crate::raw;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nucleus_spec::net::{BridgePlan, Cidr, SANDBOX_IFACE};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Bring `lo` up (a fresh network namespace starts with it down).
pub fn loopback_up() -> Result<()> {
    raw::link_up(b"lo").ctx("bring up", "lo")
}

/// A netlink socket of one protocol, in the network namespace it was opened in.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open(protocol: libc::c_int) -> io::Result<Self> {
        use rustix::net::{AddressFamily, Protocol, SocketFlags, SocketType};
        let protocol = std::num::NonZeroU32::new(protocol as u32).map(Protocol::from_raw);
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            protocol,
        )?;
        Ok(Self::from_fd(fd))
    }
    pub fn from_fd(fd: OwnedFd) -> Self {
        // An answer that never comes (a kernel that dropped the request) must not hang the
        // runtime: reads give up after 5 s.
        let _ = raw::set_timeout(fd.as_fd(), 5000);
        let mut seed = [0u8; 4];
        raw::fill_random(&mut seed);
        Self {
            fd,
            // Room below u32::MAX for a long life of batches.
            seq: u32::from_ne_bytes(seed) >> 2,
        }
    }
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
    /// The next free sequence number, reserving `n`.
    pub fn reserve(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }
    /// Send `buf` (one datagram of messages) and wait for the acknowledgement of `last`; the
    /// first error of a message in `first..=last` is returned, or of `first - 1` (the batch
    /// header of an nftables batch, which carries errors for the whole batch). Answers to
    /// older requests are skipped.
    pub fn transact(&mut self, buf: &[u8], first: u32, last: u32) -> io::Result<()> {
        // No destination address: the kernel.
        let n = rustix::net::send(&self.fd, buf, rustix::net::SendFlags::empty())?;
        if n != buf.len() {
            return Err(io::Error::other("short netlink send"));
        }
        let mut rb = Vec::with_capacity(64 * 1024);
        loop {
            let n = raw::read_into(self.fd.as_fd(), &mut rb)?;
            if let Some(r) = acks(&rb[..n], first, last) {
                return r;
            }
        }
    }
    /// One rtnetlink request; `ok` lists errnos that count as success (EEXIST for "ensure").
    fn route(&mut self, msg: RouteNetlinkMessage, flags: u16, ok: &[i32]) -> io::Result<()> {
        let seq = self.reserve(1);
        let mut h = NetlinkHeader::default();
        h.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        h.sequence_number = seq;
        let mut m = NetlinkMessage::new(h, NetlinkPayload::from(msg));
        m.finalize();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        match self.transact(&buf, seq, seq) {
            Err(e) if e.raw_os_error().is_some_and(|c| ok.contains(&c)) => Ok(()),
            r => r,
        }
    }
}

/// The verdict one datagram of netlink answers gives on the requests `first..=last` (and the
/// batch header at `first - 1`): the first error among them, or success once `last` is
/// acknowledged; None when it decides nothing (answers to older requests, a truncated
/// message, no acknowledgement of `last` yet).
fn acks(rb: &[u8], first: u32, last: u32) -> Option<io::Result<()>> {
    let n = rb.len();
    let mut i = 0;
    while i + 16 <= n {
        let word = |o: usize| u32::from_ne_bytes([rb[o], rb[o + 1], rb[o + 2], rb[o + 3]]);
        let len = word(i) as usize;
        let ty = u16::from_ne_bytes([rb[i + 4], rb[i + 5]]);
        let seq = word(i + 8);
        if len < 16 || i + len > n {
            break;
        }
        let begin = first.wrapping_sub(1);
        let mine = seq.wrapping_sub(begin) <= last.wrapping_sub(begin);
        if mine && ty == libc::NLMSG_ERROR as u16 && len >= 20 {
            let err = word(i + 16) as i32;
            if err != 0 {
                return Some(Err(io::Error::from_raw_os_error(err.wrapping_neg())));
            }
            if seq == last {
                return Some(Ok(()));
            }
        }
        i += (len + 3) & !3;
    }
    None
}

/// if_nametoindex(3), as musl does it: SIOCGIFINDEX on a unix datagram socket opened for it.
pub fn index_of(name: &str) -> io::Result<u32> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    if name.as_bytes().contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let s = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok(rustix::net::netdevice::name_to_index(&s, name)?)
}

fn link(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

/// OCI `linux.netDevices`: move each host interface (host name, name inside) into the
/// network namespace of process `pid`, renamed in the same change. Err: the first that
/// could not be moved (those before it went with the container's namespace).
pub fn move_devices(devices: &[(String, String)], pid: libc::pid_t) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let mut rt = Netlink::open(libc::NETLINK_ROUTE).ctx("open", "rtnetlink")?;
    for (host, inside) in devices {
        let index = index_of(host).ctx("linux.netDevices", format!("{host} on the host"))?;
        let mut m = link(index);
        m.attributes.push(LinkAttribute::NetNsPid(pid as u32));
        m.attributes.push(LinkAttribute::IfName(inside.clone()));
        rt.route(RouteNetlinkMessage::SetLink(m), 0, &[]).ctx(
            "linux.netDevices",
            format!("{host} into the container as {inside}"),
        )?;
    }
    Ok(())
}

fn up(index: u32) -> LinkMessage {
    let mut m = link(index);
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m
}

fn address(index: u32, ip: IpAddr, prefix: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.prefix_len = prefix;
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(ip));
    m.attributes.push(AddressAttribute::Address(ip));
    if ip.is_ipv6() {
        // No duplicate address detection: the address is ours by claim, and DAD would hold
        // it "tentative" (unusable) for a second or more.
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    m
}

fn default_route(index: u32, gw: IpAddr) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = if gw.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.table = libc::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes.push(RouteAttribute::Gateway(match gw {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }));
    m.attributes.push(RouteAttribute::Oif(index));
    m
}

fn write_sysctl(path: &str, want: &str) -> Result<()> {
    match fs::read_to_string(path) {
        Ok(v) if v.trim() == want => Ok(()),
        _ => fs::write(path, want).ctx("write", path),
    }
}

/// An address (IPv4 and, when the bridge has IPv6, the same index in its IPv6 range) held by
/// one sandbox: a symlink `CLAIMS/INDEX` whose text names the holder (id, pid, start time).
/// Removed on drop; a claim whose holder died is taken over.
pub struct Claim {
    path: PathBuf,
    pub index: u32,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Who holds a claim: the runtime process that supervises the sandbox.
fn holder_text(id: &str) -> String {
    let me = crate::process::this_process();
    format!("{id} {} {}", me.pid, me.start)
}

pub(crate) fn holder_alive(text: &str) -> bool {
    let mut w = text.split(' ');
    let (_, pid, start) = (w.next(), w.next(), w.next());
    match (
        pid.and_then(|p| p.parse().ok()),
        start.and_then(|s| s.parse().ok()),
    ) {
        (Some(pid), Some(start)) => {
            crate::process::alive(&nucleus_spec::state::ProcId { pid, start })
        }
        _ => false,
    }
}

impl Claim {
    /// An index valid in every one of `subnets`.
    /// `busy`: a slot that cannot be used although no live claim holds it.
    pub fn acquire(
        dir: &Path,
        subnets: &[Cidr],
        id: &str,
        busy: impl Fn(u32) -> bool,
    ) -> Result<Claim> {
        raw::mkdir_p(dir, 0o700).ctx("create", dir.display())?;
        let count = subnets
            .iter()
            .map(|s| s.host_count())
            .min()
            .unwrap_or(0)
            .max(1);
        let subnet = subnets.first().copied().unwrap_or(Cidr {
            addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            prefix: 0,
        });
        // Next fit: start after the address handed out last, so a released address is reused
        // only after the whole range went round (the kernel tears a dead sandbox's namespace
        // down asynchronously; its address must not answer for a new sandbox meanwhile).
        let cursor = dir.join(".next");
        let start = match fs::read_to_string(&cursor)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            Some(n) => n % count,
            None => {
                let mut r = [0u8; 4];
                raw::fill_random(&mut r);
                u32::from_ne_bytes(r) % count
            }
        };
        let text = holder_text(id);
        for k in 0..count {
            // Index 1 is the gateway; sandboxes get 2..=count+1.
            let slot = (start + k) % count;
            let index = 2 + slot;
            let path = dir.join(index.to_string());
            if busy(index) {
                continue;
            }
            match std::os::unix::fs::symlink(&text, &path) {
                Ok(()) => {
                    // A hint only: racing runs that read the same value collide on the
                    // symlink and move on.
                    let _ = fs::write(&cursor, format!("{}\n", slot + 1));
                    return Ok(Claim { path, index });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if Self::take_stale(dir, &path, &text)? {
                        return Ok(Claim { path, index });
                    }
                }
                Err(e) => return Err(e).ctx("claim an address in", dir.display()),
            }
        }
        Err(other(
            "claim an address",
            format!("every address of {subnet} is in use"),
        ))
    }

    /// Slot `index` itself (a restored sandbox's: its image has the slot's addresses and MAC),
    /// or an error naming who holds it.
    pub fn acquire_at(dir: &Path, id: &str, index: u32) -> Result<Claim> {
        raw::mkdir_p(dir, 0o700).ctx("create", dir.display())?;
        let path = dir.join(index.to_string());
        let text = holder_text(id);
        match std::os::unix::fs::symlink(&text, &path) {
            Ok(()) => return Ok(Claim { path, index }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if Self::take_stale(dir, &path, &text)? {
                    return Ok(Claim { path, index });
                }
            }
            Err(e) => return Err(e).ctx("claim an address in", dir.display()),
        }
        let holder = fs::read_link(&path)
            .map(|t| {
                t.to_string_lossy()
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        Err(other(
            "claim an address",
            format!("slot {index} (the saved sandbox's address) is held by sandbox {holder}"),
        ))
    }

    /// The slot sandbox `id` holds in `dir`, if any (read by `checkpoint`, outside the
    /// runtime that holds it).
    pub fn held_by(dir: &Path, id: &str) -> Option<u32> {
        fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let t = fs::read_link(e.path()).ok()?;
            let t = t.to_string_lossy();
            (t.split(' ').next() == Some(id) && holder_alive(&t))
                .then(|| e.file_name().to_str()?.parse().ok())?
        })
    }

    /// Replace a claim whose holder is dead, under the directory's lock (so two runs that
    /// both saw it stale cannot both take it).
    fn take_stale(dir: &Path, path: &Path, text: &str) -> Result<bool> {
        let old = match fs::read_link(path) {
            Ok(t) => t.to_string_lossy().into_owned(),
            Err(_) => return Ok(false),
        };
        if holder_alive(&old) {
            return Ok(false);
        }
        let d = fs::File::open(dir).ctx("open", dir.display())?;
        // Released when `d` closes.
        crate::raw::flock(d.as_fd(), true, true).ctx("lock", dir.display())?;
        match fs::read_link(path) {
            Ok(t) if t.to_string_lossy() == old => {
                fs::remove_file(path).ctx("remove stale claim", path.display())?;
            }
            _ => return Ok(false),
        }
        Ok(std::os::unix::fs::symlink(text, path).is_ok())
    }

    /// Remove the claims of sandbox `id` (its supervisor died without cleaning up).
    pub fn release_all(dir: &Path, id: &str) {
        let Ok(bridges) = fs::read_dir(dir) else {
            return;
        };
        for b in bridges.flatten() {
            let Ok(claims) = fs::read_dir(b.path()) else {
                continue;
            };
            let Ok(d) = fs::File::open(b.path()) else {
                continue;
            };
            // Released when `d` closes. Under the lock a claim cannot be taken over between
            // the check and the removal.
            if crate::raw::flock(d.as_fd(), true, true).is_err() {
                continue;
            }
            for c in claims.flatten() {
                if let Ok(t) = fs::read_link(c.path()) {
                    let t = t.to_string_lossy();
                    if t.split(' ').next() == Some(id) && !holder_alive(&t) {
                        let _ = fs::remove_file(c.path());
                    }
                }
            }
        }
    }
}

/// What the sandbox side configures on its interface (bridge mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    /// The sandbox's interface (eth0 has the default routes, through its gateways).
    pub iface: String,
    /// (address, prefix length, gateway) per family.
    pub v4: (IpAddr, u8, IpAddr),
    pub v6: Option<(IpAddr, u8, IpAddr)>,
}

impl Assigned {
    pub fn addrs(&self) -> Vec<IpAddr> {
        std::iter::once(self.v4.0)
            .chain(self.v6.map(|v| v.0))
            .collect()
    }
}

/// The host side of a bridged sandbox, alive as long as the sandbox: the address claim and,
/// with published ports, the netlink socket owning the sandbox's nftables table (closing it
/// removes the table).
pub struct HostSide {
    pub assigned: Assigned,
    _ports: Option<Netlink>,
    /// The published host ports, bound for the sandbox's life.
    _reserved: Vec<OwnedFd>,
    /// Released last (fields drop in order): a restore that takes the slot again finds the
    /// ports and their table gone.
    _claim: Claim,
}

/// Hold a published host port as a bound socket (a listening one for TCP), as Docker's proxy
/// does, so that a port in use is refused here and a port published here cannot be taken (or
/// published again by a second sandbox) while the sandbox lives. The DNAT rules divert its
/// traffic before it reaches the socket. Without a host address, both families' wildcard
/// addresses are held (IPv6 only where the host has it).
fn reserve_port(p: &nucleus_spec::net::PortMap) -> Result<Vec<OwnedFd>> {
    use nucleus_spec::net::Proto;
    let addrs: Vec<IpAddr> = match p.host_ip {
        Some(a) => vec![a],
        None => vec![IpAddr::from([0u8; 4]), IpAddr::from([0u16; 8])],
    };
    let mut held = vec![];
    for a in addrs {
        use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
        let fam = if a.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let ty = match p.proto {
            Proto::Tcp => SocketType::STREAM,
            Proto::Udp => SocketType::DGRAM,
        };
        let taken = |e: io::Error| {
            other(
                "publish",
                format!(
                    "host port {}/{} on {a} is in use{}: {e}",
                    p.host_port,
                    p.proto.as_str(),
                    port_holder(p.host_port, p.proto)
                        .map(|h| format!(" (by {h})"))
                        .unwrap_or_default()
                ),
            )
        };
        let sock = match rustix::net::socket_with(fam, ty, SocketFlags::CLOEXEC, None) {
            Ok(s) => s,
            Err(rustix::io::Errno::AFNOSUPPORT) if a.is_ipv6() && p.host_ip.is_none() => continue,
            Err(e) => return Err(io::Error::from(e)).ctx("socket for", p.host_port),
        };
        if a.is_ipv6() {
            let _ = sockopt::set_ipv6_v6only(&sock, true);
        }
        if p.proto == Proto::Tcp {
            // A listener excludes every other listener; TIME_WAIT leftovers do not block it.
            let _ = sockopt::set_socket_reuseaddr(&sock, true);
        }
        // (flowinfo and scope id 0 for IPv6.)
        let bound = match a {
            IpAddr::V4(v4) => rustix::net::bind(&sock, &SocketAddrV4::new(v4, p.host_port)),
            IpAddr::V6(v6) => rustix::net::bind(&sock, &SocketAddrV6::new(v6, p.host_port, 0, 0)),
        };
        match bound {
            Ok(()) => {}
            Err(rustix::io::Errno::ADDRNOTAVAIL) if a.is_ipv6() && p.host_ip.is_none() => continue,
            Err(e) => return Err(taken(e.into())),
        }
        if p.proto == Proto::Tcp {
            rustix::net::listen(&sock, 1).map_err(|e| taken(e.into()))?;
        }
        held.push(sock);
    }
    Ok(held)
}

/// Who holds a local port: "pid N (comm)" of a process with a socket bound to it (listening,
/// for TCP), from /proc/net and /proc/*/fd. None when it cannot be told.
fn port_holder(port: u16, proto: nucleus_spec::net::Proto) -> Option<String> {
    let tcp = proto == nucleus_spec::net::Proto::Tcp;
    let mut inodes = vec![];
    for f in if tcp {
        ["tcp", "tcp6"]
    } else {
        ["udp", "udp6"]
    } {
        let text = fs::read_to_string(format!("/proc/net/{f}")).unwrap_or_default();
        for l in text.lines().skip(1) {
            let c: Vec<&str> = l.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (c.get(1), c.get(3), c.get(9)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if p == Some(port) && (!tcp || *state == "0A") && *inode != "0" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let pid = e.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let link = fs::read_link(fd.path()).unwrap_or_default();
            if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                return Some(format!("pid {pid}, {}", comm.trim()));
            }
        }
    }
    None
}

/// Make sure the bridge exists, is up and has the gateway addresses; turn on forwarding.
/// Delete the bridge `name` (a compose topology's, at `down`) with its guard tables (inet and
/// bridge families, `nucleus-bridge-NAME`) and its address claims directory under `state_dir`,
/// if it is there and no port is attached to it any more (a sandbox still on it keeps it).
/// True when it was deleted.
/// Delete the `inet` table `table` of this thread's network namespace (absent: nothing done).
pub fn delete_inet_table(table: &str) -> Result<()> {
    let mut nft = Netlink::open(libc::NETLINK_NETFILTER).ctx("open", "nfnetlink")?;
    let seq = nft.reserve(4);
    let (batch, first, last) = nucleus_spec::nft::delete_table(table, false, seq);
    match nft.transact(&batch, first, last) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.ctx("delete nftables table", table),
    }
}

pub fn delete_bridge_if_unused(name: &str, state_dir: &Path) -> Result<bool> {
    let Ok(index) = index_of(name) else {
        return Ok(false);
    };
    let ports = std::fs::read_dir(format!("/sys/class/net/{name}/brif"))
        .map(|d| d.count())
        .unwrap_or(0);
    if ports > 0 {
        return Ok(false);
    }
    let mut rt = Netlink::open(libc::NETLINK_ROUTE).ctx("open", "rtnetlink")?;
    let mut m = LinkMessage::default();
    m.header.index = index;
    rt.route(RouteNetlinkMessage::DelLink(m), 0, &[libc::ENODEV])
        .ctx("delete bridge", name)?;
    let table = format!("nucleus-bridge-{name}");
    let mut nft = Netlink::open(libc::NETLINK_NETFILTER).ctx("open", "nfnetlink")?;
    for bridge in [false, true] {
        let seq = nft.reserve(4);
        let (batch, first, last) = nucleus_spec::nft::delete_table(&table, bridge, seq);
        match nft.transact(&batch, first, last) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => r.ctx("delete nftables table", &table)?,
        }
    }
    // The claims directory goes when no claim is left in it (its next-fit cursor with it).
    let claims = state_dir.join(name);
    let only_cursor = std::fs::read_dir(&claims)
        .map(|d| d.flatten().all(|e| e.file_name() == ".next"))
        .unwrap_or(false);
    if only_cursor {
        let _ = std::fs::remove_file(claims.join(".next"));
        let _ = std::fs::remove_dir(&claims);
    }
    Ok(true)
}

fn ensure_bridge(rt: &mut Netlink, b: &BridgePlan) -> Result<u32> {
    let index = match index_of(&b.name) {
        Ok(i) => i,
        Err(_) => {
            // (Only when the bridge is made, not on every start.) A range another interface
            // routes would take this bridge's traffic, or give it another network's.
            let routes = fs::read_to_string("/proc/net/route").unwrap_or_default();
            let subnet = b.subnet4.to_string();
            if let Some(dev) = nucleus_spec::net::routed_elsewhere(&routes, &subnet, &b.name) {
                return Err(other(
                    "create bridge",
                    format!("{}: its range {subnet} is routed through {dev} already: give --subnet another range", b.name),
                ));
            }
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(b.name.clone()));
            m.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                    InfoKind::Bridge,
                )]));
            rt.route(
                RouteNetlinkMessage::NewLink(m),
                NLM_F_CREATE | NLM_F_EXCL,
                &[libc::EEXIST],
            )
            .ctx("create bridge", &b.name)?;
            index_of(&b.name).ctx("find bridge", &b.name)?
        }
    };
    for s in std::iter::once(&b.subnet4).chain(b.subnet6.iter()) {
        rt.route(
            RouteNetlinkMessage::NewAddress(address(index, s.nth(1), s.prefix)),
            NLM_F_CREATE | NLM_F_EXCL,
            &[libc::EEXIST],
        )
        .ctx("add gateway address to", &b.name)?;
    }
    rt.route(RouteNetlinkMessage::SetLink(up(index)), 0, &[])
        .ctx("bring up", &b.name)?;
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    if b.subnet6.is_some() {
        write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
    }
    if !b.ports.is_empty() {
        // Published ports reached at 127.0.0.1 are routed out through the bridge.
        write_sysctl(
            &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", b.name),
            "1",
        )?;
    }
    Ok(index)
}

/// Bridge mode, host side, before the sandbox configures itself: claim an address slot (one
/// whose port name is free), make sure the bridge is there, enter the port's MAC and addresses
/// in the bridge's guard, create the veth pair with its far end (named eth0, with the slot's
/// MAC) in the sandbox's network namespace, and install the sandbox's published ports.
pub fn bridge_host_side(b: &BridgePlan, id: &str, pid: libc::pid_t) -> Result<HostSide> {
    let subnets: Vec<Cidr> = std::iter::once(b.subnet4).chain(b.subnet6).collect();
    // A dead sandbox's port lingers until the kernel has torn its namespace down: its slot
    // is busy until then.
    let claim = Claim::acquire(&b.claims_dir, &subnets, id, |i| {
        index_of(&b.port(i)).is_ok()
    })?;
    host_side(b, &subnets, claim, Some(pid))
}

/// Bridge mode, host side of a restore: the slot the image's interface has its addresses and
/// MAC from, the bridge, the port's guard entries and the published ports, but no veth pair:
/// CRIU makes it (ck::veth_externals), the sandbox's end from the image. The saved sandbox's
/// port may linger a moment while the kernel tears its namespace down: waited for.
pub fn bridge_restore_side(b: &BridgePlan, id: &str, index: u32) -> Result<HostSide> {
    let subnets: Vec<Cidr> = std::iter::once(b.subnet4).chain(b.subnet6).collect();
    let claim = Claim::acquire_at(&b.claims_dir, id, index)?;
    let port = b.port(index);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while index_of(&port).is_ok() {
        if std::time::Instant::now() > end {
            return Err(other(
                "restore the bridge port",
                format!("{port} still exists (the saved sandbox's network namespace lingers)"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    host_side(b, &subnets, claim, None)
}

/// The host side of slot `claim` on bridge `b`; with `pid`, the veth pair too (its far end in
/// the network namespace of `pid`).
fn host_side(
    b: &BridgePlan,
    subnets: &[Cidr],
    claim: Claim,
    pid: Option<libc::pid_t>,
) -> Result<HostSide> {
    let port = b.port(claim.index);
    let v4 = (
        b.subnet4.nth(claim.index),
        b.subnet4.prefix,
        b.subnet4.nth(1),
    );
    let v6 = b.subnet6.map(|s| (s.nth(claim.index), s.prefix, s.nth(1)));
    let assigned = Assigned {
        iface: b.iface.clone(),
        v4,
        v6,
    };
    // Published ports first: one in use refuses the start before anything else is made.
    let mut reserved = vec![];
    for p in &b.ports {
        reserved.extend(reserve_port(p)?);
    }
    let mut rt = Netlink::open(libc::NETLINK_ROUTE).ctx("open", "rtnetlink")?;
    let br = ensure_bridge(&mut rt, b)?;
    let mac = BridgePlan::mac(claim.index);
    let mut nft = Netlink::open(libc::NETLINK_NETFILTER).ctx("open", "nfnetlink")?;
    guard_port(&mut nft, b, subnets, &port, mac, &assigned.addrs())?;
    if let Some(pid) = pid {
        new_veth(&mut rt, &port, (&b.iface, Some(mac), pid), Some(br))?;
    }
    let ports = if b.ports.is_empty() {
        None
    } else {
        let seq = nft.reserve(1000);
        let (batch, first, last) =
            nucleus_spec::nft::ports_table(&b.table, &assigned.addrs(), &b.ports, seq);
        // On failure the veth goes with the sandbox's namespace; the table was never made.
        nft.transact(&batch, first, last)
            .ctx("install nftables table", &b.table)?;
        Some(nft)
    };
    Ok(HostSide {
        assigned,
        _ports: ports,
        _reserved: reserved,
        _claim: claim,
    })
}

/// Enter a port's MAC and addresses in its bridge's guard; the first port of a bridge makes
/// the bridge's tables (its masquerade and the guard).
fn guard_port(
    nft: &mut Netlink,
    b: &BridgePlan,
    subnets: &[Cidr],
    port: &str,
    mac: [u8; 6],
    addrs: &[IpAddr],
) -> Result<()> {
    let add = |nft: &mut Netlink| {
        let seq = nft.reserve(8);
        let (batch, first, last) =
            nucleus_spec::nft::bridge_guard_elems(&b.guard_table, port, mac, addrs, seq);
        nft.transact(&batch, first, last)
    };
    match add(nft) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        r => return r.ctx("guard bridge port", port),
    }
    let slots = subnets.iter().map(|s| s.host_count()).min().unwrap_or(1) + 2;
    // Each table is made whole or not at all (NLM_F_EXCL on the table): a racing runtime's
    // EEXIST means it is there.
    let tables = [
        nucleus_spec::nft::bridge_table(&b.guard_table, &b.name, subnets, nft.reserve(100)),
        nucleus_spec::nft::bridge_guard_table(
            &b.guard_table,
            &b.port_prefix,
            slots,
            nft.reserve(100),
        ),
    ];
    for (batch, first, last) in tables {
        match nft.transact(&batch, first, last) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            r => r.ctx("install nftables table", &b.guard_table)?,
        }
    }
    add(nft).ctx("guard bridge port", port)
}

/// Bridge mode, sandbox side: address, link up, and on eth0 the default routes (an
/// `--attach` bridge's interface reaches its own subnet only).
pub fn configure_sandbox(a: &Assigned) -> Result<()> {
    let iface = a.iface.as_str();
    let index = index_of(iface).ctx("find", iface)?;
    // Addresses and routes are static: a router advertisement from a neighbour on the bridge
    // (link-local sources pass the bridge's guard) must not add an address or a default route
    // through itself, also on a bridge without IPv6 of its own (the kernel's IPv6 is on for
    // every interface; the file is missing only where IPv6 is off).
    let ra = write_sysctl(&format!("/proc/sys/net/ipv6/conf/{iface}/accept_ra"), "0");
    if a.v6.is_some() {
        ra?;
    }
    let mut rt = Netlink::open(libc::NETLINK_ROUTE).ctx("open", "rtnetlink")?;
    for (ip, prefix, _) in std::iter::once(&a.v4).chain(a.v6.iter()) {
        rt.route(
            RouteNetlinkMessage::NewAddress(address(index, *ip, *prefix)),
            NLM_F_CREATE | NLM_F_EXCL,
            &[],
        )
        .ctx("add address", ip)?;
    }
    rt.route(RouteNetlinkMessage::SetLink(up(index)), 0, &[])
        .ctx("bring up", iface)?;
    if iface != SANDBOX_IFACE {
        return Ok(());
    }
    for (_, _, gw) in std::iter::once(&a.v4).chain(a.v6.iter()) {
        rt.route(
            RouteNetlinkMessage::NewRoute(default_route(index, *gw)),
            NLM_F_CREATE | NLM_F_EXCL,
            &[],
        )
        .ctx("add default route via", gw)?;
    }
    Ok(())
}

/// A veth pair: `local` here, up, and `peer` in the network namespace of `pid` (a gVisor
/// sandbox's inner link, from its router namespace).
pub fn veth_into(local: &str, peer_name: &str, pid: libc::pid_t) -> Result<()> {
    let mut rt = Netlink::open(libc::NETLINK_ROUTE).ctx("open", "rtnetlink")?;
    new_veth(&mut rt, local, (peer_name, None, pid), None)
}

/// A veth pair: `local` here, up (a port of the bridge `controller`), and its peer (name,
/// MAC) in the network namespace of a pid.
fn new_veth(
    rt: &mut Netlink,
    local: &str,
    (peer_name, mac, pid): (&str, Option<[u8; 6]>, libc::pid_t),
    controller: Option<u32>,
) -> Result<()> {
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(peer_name.into()));
    if let Some(mac) = mac {
        peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    peer.attributes.push(LinkAttribute::NetNsPid(pid as u32));
    let mut m = up(0);
    m.attributes.push(LinkAttribute::IfName(local.into()));
    if let Some(br) = controller {
        m.attributes.push(LinkAttribute::Controller(br));
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    rt.route(
        RouteNetlinkMessage::NewLink(m),
        NLM_F_CREATE | NLM_F_EXCL,
        &[],
    )
    .ctx("create veth", local)
}

/// A gVisor sandbox's router namespace (nucleus-spec `gvisor::ROUTER_ADDR`): forwarding on,
/// and the table that sends what arrives for `outer_addr` on to `inner` and masquerades what
/// `inner` sends out.
pub fn gvisor_router(outer: &str, pairs: &[(IpAddr, IpAddr)]) -> Result<()> {
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    if pairs.iter().any(|(o, _)| o.is_ipv6()) {
        write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
    }
    let mut nft = Netlink::open(libc::NETLINK_NETFILTER).ctx("open", "nfnetlink")?;
    let seq = nft.reserve(100);
    let (batch, first, last) =
        nucleus_spec::nft::gvisor_link_table(nucleus_spec::gvisor::LINK_TABLE, outer, pairs, seq);
    nft.transact(&batch, first, last)
        .ctx("install nftables table", nucleus_spec::gvisor::LINK_TABLE)
}

/// Install the egress ruleset in the current network namespace.
pub fn install_egress(e: &nucleus_spec::net::EgressConfig) -> Result<()> {
    install_egress_at(e, None)
}

/// The egress ruleset, on what is forwarded from the interface `from` when given (a gVisor
/// sandbox's router: nucleus-spec `nft::egress_batch_at`).
pub fn install_egress_at(e: &nucleus_spec::net::EgressConfig, from: Option<&str>) -> Result<()> {
    let mut nft = Netlink::open(libc::NETLINK_NETFILTER).ctx("open", "nfnetlink")?;
    let seq = nft.reserve(1000);
    let (batch, first, last) = nucleus_spec::nft::egress_batch_at(e, from, seq);
    nft.transact(&batch, first, last)
        .ctx("install nftables table", nucleus_spec::nft::EGRESS_TABLE)
}

/// slirp4netns serving the sandbox's network namespace; it exits when this is dropped (its
/// exit descriptor closes), and is reaped then.
pub struct Slirp {
    child: std::process::Child,
    _exit: OwnedFd,
    api: PathBuf,
}

impl Drop for Slirp {
    fn drop(&mut self) {
        // Dropping `_exit` after this body ends it too; be sure it is gone before returning.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.api);
        let _ = fs::remove_file(self.api.with_extension("log"));
    }
}

impl Slirp {
    pub fn start(p: &nucleus_spec::net::SlirpPlan, pid: libc::pid_t) -> Result<Slirp> {
        let (ready_rd, ready_wr) = raw::pipe().ctx("pipe", "slirp4netns")?;
        let (exit_rd, exit_wr) = raw::pipe().ctx("pipe", "slirp4netns")?;
        raw::inheritable(ready_wr.as_fd()).ctx("fcntl", "slirp4netns")?;
        raw::inheritable(exit_rd.as_fd()).ctx("fcntl", "slirp4netns")?;
        if let Some(d) = p.api_socket.parent() {
            fs::create_dir_all(d).ctx("create", d.display())?;
        }
        let _ = fs::remove_file(&p.api_socket);
        let log_path = p.api_socket.with_extension("log");
        let log = fs::File::create(&log_path).ctx("create", log_path.display())?;
        let mut cmd = std::process::Command::new("slirp4netns");
        if p.join_userns {
            cmd.arg(format!("--userns-path=/proc/{pid}/ns/user"));
        }
        // Confined: its own mount namespace with an empty root and no capabilities but
        // CAP_NET_BIND_SERVICE (--enable-sandbox), and its own seccomp filter: libslirp parses
        // every packet the sandbox sends, so a bug there must not be host root.
        cmd.arg("--configure")
            .arg("--mtu=65520")
            .arg("--disable-host-loopback")
            .arg("--enable-sandbox")
            .arg("--enable-seccomp")
            .arg(format!("--ready-fd={}", ready_wr.as_raw_fd()))
            .arg(format!("--exit-fd={}", exit_rd.as_raw_fd()))
            .arg("--api-socket")
            .arg(&p.api_socket)
            .arg(pid.to_string())
            .arg(nucleus_spec::net::SLIRP_IFACE)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    e.kind(),
                    "slirp4netns is not installed (Debian: apt-get install slirp4netns)",
                )
            } else {
                e
            }
        });
        let child = child.ctx("start", "slirp4netns")?;
        drop(ready_wr);
        drop(exit_rd);
        let mut s = Slirp {
            child,
            _exit: exit_wr,
            api: p.api_socket.clone(),
        };
        let mut b = [0u8; 1];
        let ready = raw::poll_read(&[ready_rd.as_raw_fd()], 10_000)
            .ok()
            .filter(|r| r[0] != 0)
            .and_then(|_| raw::read(ready_rd.as_fd(), &mut b).ok());
        if ready != Some(1) {
            let status = s.child.try_wait().ok().flatten();
            let said = fs::read_to_string(&log_path).unwrap_or_default();
            let last = said
                .lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let too_old = last.contains("unrecognized option") || last.contains("invalid option");
            return Err(other(
                "start slirp4netns",
                match status {
                    Some(_) if too_old => format!(
                        "this slirp4netns lacks --enable-sandbox/--enable-seccomp (0.4.0 or later needed): {last}"
                    ),
                    Some(st) => format!("it exited ({st}) before the network was ready: {last}"),
                    None => "the network was not ready within 10 s".to_string(),
                },
            ));
        }
        for port in &p.ports {
            s.forward(port)?;
        }
        Ok(s)
    }

    fn forward(&mut self, p: &nucleus_spec::net::PortMap) -> Result<()> {
        let req = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": p.proto.as_str(),
                "host_addr": p.host_ip.map(|a| a.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                "host_port": p.host_port,
                "guest_port": p.ctr_port,
            }
        });
        let mut c = std::os::unix::net::UnixStream::connect(&self.api)
            .ctx("connect", self.api.display())?;
        use std::io::{Read, Write};
        c.write_all(req.to_string().as_bytes())
            .ctx("write", self.api.display())?;
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut out = String::new();
        c.read_to_string(&mut out).ctx("read", self.api.display())?;
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        if let Some(e) = v.get("error") {
            return Err(other(
                "publish port",
                format!("{}:{}: {}", p.host_port, p.ctr_port, e),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One NLMSG_ERROR answer (an acknowledgement when `err` is 0) to request `seq`.
    fn ack(seq: u32, err: i32) -> Vec<u8> {
        let mut b = 36u32.to_ne_bytes().to_vec();
        b.extend_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&err.to_ne_bytes());
        b.extend_from_slice(&[0; 16]);
        b
    }

    #[test]
    fn acks_decide_on_the_last_request_or_the_first_error() {
        let d = [ack(9, 0), ack(10, 0)].concat();
        assert!(acks(&d, 10, 10).unwrap().is_ok());
        assert!(
            acks(&ack(9, 0), 10, 10).is_none(),
            "an older answer decides nothing"
        );
        let e = acks(&[ack(10, -libc::EEXIST), ack(11, 0)].concat(), 10, 11).unwrap();
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::EEXIST));
        // The batch header's error (first - 1) counts too.
        assert!(acks(&ack(9, -libc::EINVAL), 10, 12).unwrap().is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, ..Default::default() })]
        /// Any datagram on a netlink socket: a verdict or none, never a panic (an error code
        /// of i32::MIN used to overflow its negation).
        #[test]
        fn any_netlink_answer(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                              first in proptest::prelude::any::<u32>(), n in 0u32..4,
                              err in proptest::prelude::any::<i32>(), cut in 0usize..80) {
            let _ = acks(&b, first, first.wrapping_add(n));
            let a = ack(first.wrapping_add(n), err);
            let _ = acks(&a[..cut.min(a.len())], first, first.wrapping_add(n));
            proptest::prop_assert!(acks(&a, first, first.wrapping_add(n)).is_some());
        }
    }

    /// A restore takes its saved slot itself: refused (naming the holder) while a live
    /// sandbox holds it, taken once it is free; `held_by` finds a holder's slot.
    #[test]
    fn a_restore_takes_its_own_slot_only() {
        let dir = crate::TestDir::new("claims-at");
        let a = Claim::acquire_at(&dir, "a", 7).unwrap();
        assert_eq!(Claim::held_by(&dir, "a"), Some(7));
        assert_eq!(Claim::held_by(&dir, "b"), None);
        let e = Claim::acquire_at(&dir, "b", 7).err().unwrap().to_string();
        assert!(e.contains("slot 7") && e.contains("sandbox a"), "{e}");
        drop(a);
        let b = Claim::acquire_at(&dir, "b", 7).unwrap();
        assert_eq!((b.index, Claim::held_by(&dir, "b")), (7, Some(7)));
    }

    /// A slot whose port still exists (a dead sandbox's namespace not yet torn down) is
    /// skipped, so a new sandbox never reuses a port name the guard still has live state for.
    #[test]
    fn claims_skip_busy_slots() {
        let dir = crate::TestDir::new("claims");
        let subnets = [Cidr::parse("10.99.0.0/29", "x").unwrap()];
        let a = Claim::acquire(&dir, &subnets, "a", |_| false).unwrap();
        let busy = a.index + 1;
        let b = Claim::acquire(&dir, &subnets, "b", |i| i == busy).unwrap();
        assert_ne!(b.index, busy);
        assert_ne!(b.index, a.index);
        // Every free slot busy: refused, nothing claimed.
        let e = Claim::acquire(&dir, &subnets, "c", |i| i != a.index && i != b.index);
        assert!(e.is_err());
    }
}
