//! Networking decisions: published ports, address ranges, egress rules, the sandbox's DNS, and
//! the address an index in a subnet stands for. Parsed once at the edge; every error names the
//! flag and what is allowed.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The default bridge and its address ranges (the gateway is the first address of each).
pub const DEFAULT_BRIDGE: &str = "nucleus0";
pub const DEFAULT_SUBNET4: &str = "10.88.0.0/16";
pub const DEFAULT_SUBNET6: &str = "fd8e:7c1a:5b3d::/64";
/// The name of the interface a sandbox sees (bridge mode).
pub const SANDBOX_IFACE: &str = "eth0";
/// slirp4netns's fixed addresses (its defaults with `--configure`).
pub const SLIRP_IFACE: &str = "tap0";
pub const SLIRP_ADDR4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub const SLIRP_DNS4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

/// `-p [HOST_IP:]HOST_PORT:CTR_PORT[/tcp|udp]` (an IPv6 host address in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub ctr_port: u16,
    pub proto: Proto,
}

fn port(s: &str, what: &str, flag: &str) -> Result<u16, ConfigError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ConfigError::new(
            flag,
            format!("{what} {s:?} is not a port (1-65535)"),
        )),
    }
}

impl PortMap {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        const F: &str = "--publish";
        let bad = || {
            ConfigError::new(
                F,
                format!("{s:?} is not [HOST_IP:]HOST_PORT:CTR_PORT[/tcp|udp]"),
            )
        };
        let (spec, proto) = match s.rsplit_once('/') {
            Some((a, "tcp")) => (a, Proto::Tcp),
            Some((a, "udp")) => (a, Proto::Udp),
            Some((_, p)) => {
                return Err(ConfigError::new(
                    F,
                    format!("{s:?}: unknown protocol {p:?} (allowed: tcp, udp)"),
                ))
            }
            None => (s, Proto::Tcp),
        };
        let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
            let (ip, rest) = r.split_once("]:").ok_or_else(bad)?;
            let ip: Ipv6Addr = ip.parse().map_err(|_| {
                ConfigError::new(F, format!("{s:?}: {ip:?} is not an IPv6 address"))
            })?;
            if ip.is_loopback() {
                return Err(ConfigError::new(
                    F,
                    format!("{s:?}: IPv6 loopback cannot be forwarded to a sandbox (use 127.0.0.1 or [::])"),
                ));
            }
            (Some(IpAddr::V6(ip)), rest)
        } else {
            match spec.matches(':').count() {
                1 => (None, spec),
                2 => {
                    let (ip, rest) = spec.split_once(':').ok_or_else(bad)?;
                    let ip: Ipv4Addr = ip.parse().map_err(|_| {
                        ConfigError::new(F, format!("{s:?}: {ip:?} is not an IPv4 address"))
                    })?;
                    (Some(IpAddr::V4(ip)), rest)
                }
                _ => return Err(bad()),
            }
        };
        let (h, c) = rest.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            host_ip,
            host_port: port(h, "host port", F)?,
            ctr_port: port(c, "container port", F)?,
            proto,
        })
    }
}

/// An address range: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str, flag: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::new(flag, format!("{s:?} {why}"));
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| bad("is not an address or ADDRESS/PREFIX"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(bad(&format!("has a bad prefix length (0-{max})"))),
            },
        };
        let c = Self { addr, prefix };
        if c.network() != addr {
            return Err(bad(&format!(
                "has host bits set (the range is {}/{prefix})",
                c.network()
            )));
        }
        Ok(c)
    }
    pub fn max_prefix(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }
    /// The mask as bytes (4 or 16).
    pub fn mask_bytes(&self) -> Vec<u8> {
        let n = usize::from(self.max_prefix() / 8);
        (0..n)
            .map(|i| {
                let bits = (usize::from(self.prefix)).saturating_sub(i * 8).min(8);
                if bits == 0 {
                    0
                } else {
                    0xffu8 << (8 - bits)
                }
            })
            .collect()
    }
    pub fn network(&self) -> IpAddr {
        let m = self.mask_bytes();
        let b: Vec<u8> = addr_bytes(&self.addr)
            .iter()
            .zip(&m)
            .map(|(a, m)| a & m)
            .collect();
        bytes_addr(&b)
    }
    pub fn contains(&self, a: &IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4()
            && Cidr {
                addr: *a,
                prefix: self.prefix,
            }
            .network()
                == self.addr
    }
    /// Addresses in the range usable for sandboxes (network, gateway and, for IPv4, broadcast
    /// excluded), capped so an index fits in u32.
    pub fn host_count(&self) -> u32 {
        let bits = u32::from(self.max_prefix() - self.prefix).min(31);
        (1u32 << bits).saturating_sub(if self.addr.is_ipv4() { 3 } else { 2 })
    }
    /// The address `n` past the network address.
    pub fn nth(&self, n: u32) -> IpAddr {
        let mut b = addr_bytes(&self.addr);
        let mut carry = u64::from(n);
        for x in b.iter_mut().rev() {
            let v = u64::from(*x) + (carry & 0xff);
            carry = (carry >> 8) + (v >> 8);
            *x = (v & 0xff) as u8;
        }
        bytes_addr(&b)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

pub fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn bytes_addr(b: &[u8]) -> IpAddr {
    match b.len() {
        4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        _ => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[..16]);
            IpAddr::V6(Ipv6Addr::from(o))
        }
    }
}

/// `--egress-domain`: an exact name, or `*.example.com` (any name below example.com, not the
/// name itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainRule {
    Exact(String),
    Below(String),
}

impl DomainRule {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        const F: &str = "--egress-domain";
        let lower = s.trim_end_matches('.').to_ascii_lowercase();
        let (below, name) = match lower.strip_prefix("*.") {
            Some(n) => (true, n.to_string()),
            None => (false, lower.clone()),
        };
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            });
        if !ok {
            return Err(ConfigError::new(
                F,
                format!("{s:?} is not a domain name (NAME or *.NAME; letters, digits, '-', '_')"),
            ));
        }
        Ok(if below {
            Self::Below(name)
        } else {
            Self::Exact(name)
        })
    }
    /// Whether a queried name, as its wire labels (lower case), is allowed by this rule:
    /// compared label by label, so a label holding a dot cannot pass for two.
    pub fn matches_labels(&self, labels: &[String]) -> bool {
        let (n, below) = match self {
            Self::Exact(n) => (n, false),
            Self::Below(n) => (n, true),
        };
        let rule: Vec<&str> = n.split('.').collect();
        let extra = if below { 1 } else { 0 };
        if below {
            if labels.len() < rule.len() + extra {
                return false;
            }
        } else if labels.len() != rule.len() {
            return false;
        }
        labels[labels.len() - rule.len()..]
            .iter()
            .zip(&rule)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
    /// Whether a queried name (any case, trailing dot or not) is allowed by this rule.
    pub fn matches(&self, qname: &str) -> bool {
        let labels: Vec<String> = qname
            .trim_end_matches('.')
            .split('.')
            .map(str::to_ascii_lowercase)
            .collect();
        self.matches_labels(&labels)
    }
}

impl std::fmt::Display for DomainRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(n) => f.write_str(n),
            Self::Below(n) => write!(f, "*.{n}"),
        }
    }
}

/// The egress flags as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressConfig {
    pub allow: Vec<Cidr>,
    pub domains: Vec<DomainRule>,
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
}

impl EgressConfig {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
            && self.domains.is_empty()
            && self.tcp_ports.is_empty()
            && self.udp_ports.is_empty()
    }
    pub fn parse_port(s: &str, flag: &str) -> Result<u16, ConfigError> {
        port(s, "port", flag)
    }
}

/// The network flags as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// `-p`: published ports.
    pub publish: Vec<PortMap>,
    /// `--dns`: nameservers (the sandbox's, or the runtime resolver's upstreams).
    pub dns: Vec<IpAddr>,
    pub egress: EgressConfig,
    /// `--bridge`, `--subnet`, `--subnet6` (None: no IPv6).
    pub bridge: String,
    pub subnet4: Cidr,
    pub subnet6: Option<Cidr>,
    /// Where address claims live (the state root's `net`; set by the binary).
    pub state_dir: std::path::PathBuf,
    /// `--names-file`: names the runtime's resolver answers itself with sandboxes' addresses
    /// on the bridge (compose's names of a topology network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<std::path::PathBuf>,
    /// `--attach`: more bridges the sandbox is on (eth1, eth2, …; no default route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach: Vec<Attachment>,
}

/// The most `--attach` entries of one sandbox.
pub const MAX_ATTACH: usize = 8;

/// `--attach bridge=NAME,subnet=CIDR[,names=FILE]`: one more bridge a bridged sandbox is on,
/// as interface `eth1`, `eth2`, … with an address of its IPv4 `subnet` and no default route
/// (that stays on eth0, the `--bridge`); `names` as `--names-file`, for this bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub bridge: String,
    pub subnet4: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<std::path::PathBuf>,
}

impl Attachment {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        const FLAG: &str = "--attach";
        let (mut bridge, mut subnet, mut names) = (None, None, None);
        for part in s.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                ConfigError::new(
                    FLAG,
                    format!("{part:?} is not KEY=VALUE (bridge=NAME,subnet=CIDR[,names=FILE])"),
                )
            })?;
            let slot = match k {
                "bridge" => &mut bridge,
                "subnet" => &mut subnet,
                "names" => &mut names,
                _ => {
                    return Err(ConfigError::new(
                        FLAG,
                        format!("unknown key {k:?} (bridge, subnet, names)"),
                    ))
                }
            };
            if slot.replace(v).is_some() {
                return Err(ConfigError::new(FLAG, format!("{k} given twice in {s:?}")));
            }
        }
        let (Some(bridge), Some(subnet)) = (bridge, subnet) else {
            return Err(ConfigError::new(
                FLAG,
                format!("{s:?} needs bridge=NAME and subnet=CIDR"),
            ));
        };
        validate_ifname(bridge).map_err(|e| ConfigError::new(FLAG, e.message))?;
        let subnet4 = Cidr::parse(subnet, FLAG)?;
        if !subnet4.addr.is_ipv4() {
            return Err(ConfigError::new(
                FLAG,
                format!("subnet {subnet} must be an IPv4 range"),
            ));
        }
        let names = match names {
            Some("") => return Err(ConfigError::new(FLAG, "names= needs a file")),
            n => n.map(std::path::PathBuf::from),
        };
        Ok(Self {
            bridge: bridge.into(),
            subnet4,
            names,
        })
    }
}

/// [`DEFAULT_SUBNET4`] and [`DEFAULT_SUBNET6`] as values.
pub const SUBNET4: Cidr = Cidr {
    addr: IpAddr::V4(Ipv4Addr::new(10, 88, 0, 0)),
    prefix: 16,
};
pub const SUBNET6: Cidr = Cidr {
    addr: IpAddr::V6(Ipv6Addr::new(0xfd8e, 0x7c1a, 0x5b3d, 0, 0, 0, 0, 0)),
    prefix: 64,
};

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            publish: vec![],
            dns: vec![],
            egress: EgressConfig::default(),
            bridge: DEFAULT_BRIDGE.into(),
            subnet4: SUBNET4,
            subnet6: Some(SUBNET6),
            state_dir: "/run/nucleus/net".into(),
            names: None,
            attach: vec![],
        }
    }
}

/// `--bridge NAME`: an interface name the kernel accepts.
pub fn validate_ifname(s: &str) -> Result<(), ConfigError> {
    if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', ':']) || s == "." || s == ".." {
        return Err(ConfigError::new(
            "--bridge",
            format!("{s:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"),
        ));
    }
    Ok(())
}

/// Nameservers from a resolv.conf text (in order).
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some("nameserver"), Some(a)) => a.split('%').next()?.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

pub fn resolv_conf(servers: &[IpAddr], comment: &str) -> String {
    let mut s = format!("# nucleus: {comment}\n");
    for a in servers {
        s.push_str(&format!("nameserver {a}\n"));
    }
    s.push_str("options edns0 trust-ad\n");
    s
}

/// A bridged sandbox's host side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePlan {
    pub name: String,
    pub subnet4: Cidr,
    pub subnet6: Option<Cidr>,
    pub ports: Vec<PortMap>,
    /// Address claims: one symlink per address in use, naming its holder.
    pub claims_dir: std::path::PathBuf,
    /// The sandbox's own nftables table in the host's namespace (published ports).
    pub table: String,
    /// The bridge's port guard table (family bridge; see [`crate::nft::bridge_guard_table`]).
    pub guard_table: String,
    /// The start of the bridge's port names: the host end of a sandbox's veth pair is this
    /// and its address slot in hex ([`BridgePlan::port`]).
    pub port_prefix: String,
    /// The sandbox's end of the veth pair: `eth0` (with the default routes) for `--bridge`,
    /// `eth1`, … for `--attach` bridges.
    #[serde(default = "sandbox_iface")]
    pub iface: String,
}

fn sandbox_iface() -> String {
    SANDBOX_IFACE.into()
}

impl BridgePlan {
    /// The port (host end of the veth pair) of the sandbox in address slot `index`. Names come
    /// from slots, not sandbox ids, so the guard's elements for a name stay true.
    pub fn port(&self, index: u32) -> String {
        format!("{}{index:x}", self.port_prefix)
    }
    /// The MAC of the sandbox's eth0 in address slot `index` (locally administered).
    pub fn mac(index: u32) -> [u8; 6] {
        let i = index.to_be_bytes();
        [0x02, 0x6e, 0x75, i[1], i[2], i[3]]
    }
}

/// A tag for a bridge and its subnets (20 bits, 5 hex digits): its ports' names start with
/// `nv<tag>-`, at most 15 bytes with a slot below 2^24.
fn bridge_tag(name: &str, subnet4: &Cidr, subnet6: Option<&Cidr>) -> String {
    let text = format!("{name} {subnet4:?} {subnet6:?}");
    format!("{:05x}", crate::host::fnv1a(text.bytes()) & 0xf_ffff)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlirpPlan {
    pub ports: Vec<PortMap>,
    /// slirp4netns's API socket (published ports are added through it).
    pub api_socket: std::path::PathBuf,
    /// Started unprivileged: slirp4netns must enter the sandbox's user namespace to reach its
    /// network namespace.
    pub join_userns: bool,
}

/// The runtime's DNS resolver for the sandbox: it listens on the sandbox's loopback, answers
/// only allowed names, forwards them upstream, and admits the addresses it returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverPlan {
    /// None: every name is forwarded (the resolver only bridges to a loopback upstream).
    pub domains: Option<Vec<DomainRule>>,
    pub upstreams: Vec<IpAddr>,
    /// Ranges an answer never admits (loopback, link-local such as cloud metadata at
    /// 169.254.169.254, multicast, the sandbox network itself): a name under an allowed
    /// domain must not open them. `--egress-allow` still can.
    #[serde(default)]
    pub never: Vec<Cidr>,
    /// Names answered here, not upstream: a sandbox name's address on a bridge the asker is
    /// on (the first file that has the name answers it: `--bridge`'s, then `--attach`'s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<NamesPlan>,
}

/// Where the resolver finds the names it answers itself (all kept by the runtime under its
/// state root, never by a sandbox): `file` is JSON `{"NAME": ["SANDBOX", …]}`; a sandbox
/// name's id is the link `names_dir/SANDBOX`; that id's address is the claim in `claims_dir`
/// (a link `INDEX` whose text starts with the holder's id) as `subnet4`'s INDEXth address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamesPlan {
    pub file: std::path::PathBuf,
    pub names_dir: std::path::PathBuf,
    pub claims_dir: std::path::PathBuf,
    pub subnet4: Cidr,
}

/// Which interface other than `bridge` routes exactly `subnet` (IPv4), given the text of
/// /proc/net/route (addresses and masks as the kernel prints them: the bytes of the network-
/// order value read as a native integer, in hex).
pub fn routed_elsewhere(routes: &str, subnet: &str, bridge: &str) -> Option<String> {
    let c = Cidr::parse(subnet, "subnet").ok()?;
    let std::net::IpAddr::V4(base) = c.addr else {
        return None;
    };
    let mask = if c.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(c.prefix))
    };
    routes.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
        let (dev, dst, m) = (f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?);
        (*dev != bridge && dst == u32::from(base) & mask && m == mask).then(|| dev.to_string())
    })
}

/// The sandbox names a names file gives for `name` (lower case), if it has it.
pub fn names_lookup(file_text: &str, name: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(file_text).ok()?;
    let list = v.get(name)?.as_array()?;
    Some(
        list.iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
    )
}

/// Ranges a DNS answer never opens, whatever name it came for (`--egress-allow` still can):
/// - this host and nowhere: 0.0.0.0/8, 127.0.0.0/8, ::/127 (unspecified, loopback);
/// - link-local, where cloud metadata services live: 169.254.0.0/16 (AWS, GCP, Azure, Oracle,
///   OpenStack, DigitalOcean, Hetzner at 169.254.169.254; Tencent 169.254.0.23), fe80::/10;
/// - the other cloud metadata and host-agent addresses: 100.100.100.200 (Alibaba),
///   168.63.129.16 (Azure WireServer), fd00:ec2::254 (AWS IPv6 IMDS), fd20:ce::254 (GCP IPv6
///   metadata);
/// - multicast and reserved: 224.0.0.0/4, 240.0.0.0/4 (with broadcast), ff00::/8;
/// - IPv4-mapped IPv6 (::ffff:0:0/96), never a real AAAA answer.
///
/// IPv6 addresses that embed an IPv4 address (NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4
/// 2002::/16) are judged by the address they embed ([`ResolverPlan::admits`]). The plan adds
/// the sandbox network's own ranges.
pub fn special_ranges() -> Vec<Cidr> {
    [
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.100.100.200/32",
        "168.63.129.16/32",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "::ffff:0.0.0.0/96",
        "fe80::/10",
        "fd00:ec2::254/128",
        "fd20:ce::254/128",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|c| Cidr::parse(c, "").ok())
    .collect()
}

/// The IPv4 address an IPv6 address carries for translation (NAT64, 6to4), if any.
fn embedded_v4(a: &std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let o = a.octets();
    let s = a.segments();
    let v4 = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
        Some(v4(&o[12..16]))
    } else if s[0] == 0x2002 {
        Some(v4(&o[2..6]))
    } else {
        None
    }
}

impl ResolverPlan {
    /// Whether an address from a DNS answer may be opened.
    pub fn admits(&self, a: &IpAddr) -> bool {
        let never = |a: &IpAddr| self.never.iter().any(|c| c.contains(a));
        match a {
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => !never(a) && !never(&IpAddr::V4(v4)),
                None => !never(a),
            },
            IpAddr::V4(_) => !never(a),
        }
    }
    /// Whether a queried name, as its wire labels, is allowed.
    pub fn allows(&self, labels: &[String]) -> bool {
        match &self.domains {
            None => true,
            Some(d) => d.iter().any(|r| r.matches_labels(labels)),
        }
    }
}

/// Every networking decision for one sandbox (all empty for `none` and `host`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPlan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<BridgePlan>,
    /// `--attach` bridges (eth1, …), after `bridge`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<BridgePlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slirp: Option<SlirpPlan>,
    /// The egress ruleset for the sandbox's own namespace (deny by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<ResolverPlan>,
    /// The sandbox's resolv.conf.
    #[serde(default)]
    pub resolv_conf: String,
}

impl NetPlan {
    pub fn build(
        mode: crate::config::NetworkMode,
        c: &NetConfig,
        service: crate::config::ServiceMode,
        host_resolv_conf: Option<&str>,
        id: &str,
        privileged: bool,
    ) -> Result<Self, ConfigError> {
        use crate::config::{NetworkMode, ServiceMode};
        let own = matches!(mode, NetworkMode::Bridge | NetworkMode::Slirp);
        if !c.attach.is_empty() && mode != NetworkMode::Bridge {
            return Err(ConfigError::new(
                "--attach",
                "only with --network bridge (it adds bridges to the sandbox's own)",
            ));
        }
        if !own {
            let needs = [
                ("--publish", !c.publish.is_empty()),
                ("--dns", !c.dns.is_empty()),
                ("--egress-allow", !c.egress.allow.is_empty()),
                ("--egress-domain", !c.egress.domains.is_empty()),
                ("--egress-tcp-port", !c.egress.tcp_ports.is_empty()),
                ("--egress-udp-port", !c.egress.udp_ports.is_empty()),
            ];
            if let Some((flag, _)) = needs.iter().find(|(_, given)| *given) {
                return Err(ConfigError::new(
                    *flag,
                    "needs --network bridge or --network slirp (the sandbox has no network of its own to configure)",
                ));
            }
            return Ok(Self::default());
        }
        if service.fail_closed() && c.dns.is_empty() {
            return Err(ConfigError::new(
                "--dns",
                "strict-agent and production modes need an explicit --dns for bridge and slirp networking",
            ));
        }
        for s in std::iter::once(&c.subnet4).chain(c.subnet6.iter()) {
            if s.host_count() < 1 || (s.addr.is_ipv4() && s.prefix > 30) {
                return Err(ConfigError::new(
                    if s.addr.is_ipv4() {
                        "--subnet"
                    } else {
                        "--subnet6"
                    },
                    format!("{s} has no room for sandboxes (at most /30 for IPv4, /126 for IPv6)"),
                ));
            }
        }
        if !c.subnet4.addr.is_ipv4() {
            return Err(ConfigError::new("--subnet", "must be an IPv4 range"));
        }
        if c.subnet6.is_some_and(|s| s.addr.is_ipv4()) {
            return Err(ConfigError::new(
                "--subnet6",
                "must be an IPv6 range (or none)",
            ));
        }
        let deny = !c.egress.is_empty() || service == ServiceMode::Production;
        // Nameservers as seen from the host (where the runtime's resolver forwards from).
        let host_ns = if c.dns.is_empty() {
            host_resolv_conf.map(nameservers).unwrap_or_default()
        } else {
            c.dns.clone()
        };
        // A loopback nameserver of the host (e.g. systemd-resolved's) is out of the sandbox's
        // reach: the runtime's resolver, which lives on the host side, forwards to it.
        let mut never = special_ranges();
        match mode {
            NetworkMode::Bridge => never.extend(std::iter::once(c.subnet4).chain(c.subnet6)),
            _ => never.extend(Cidr::parse("10.0.2.0/24", "").ok()),
        }
        if c.attach.len() > MAX_ATTACH {
            return Err(ConfigError::new(
                "--attach",
                format!("at most {MAX_ATTACH} more bridges"),
            ));
        }
        for (i, a) in c.attach.iter().enumerate() {
            let before = std::iter::once((&c.bridge, &c.subnet4))
                .chain(c.attach[..i].iter().map(|b| (&b.bridge, &b.subnet4)));
            for (bridge, subnet) in before {
                if *bridge == a.bridge {
                    return Err(ConfigError::new(
                        "--attach",
                        format!(
                            "bridge {} is given twice (a sandbox is on a bridge once)",
                            a.bridge
                        ),
                    ));
                }
                if subnet.contains(&a.subnet4.addr) || a.subnet4.contains(&subnet.addr) {
                    return Err(ConfigError::new(
                        "--attach",
                        format!(
                            "subnet {} of bridge {} overlaps {subnet} of bridge {bridge} (routes would be ambiguous)",
                            a.subnet4, a.bridge
                        ),
                    ));
                }
            }
            if a.subnet4.prefix > 30 {
                return Err(ConfigError::new(
                    "--attach",
                    format!(
                        "subnet {} has no room for sandboxes (at most /30)",
                        a.subnet4
                    ),
                ));
            }
        }
        if mode == NetworkMode::Bridge {
            never.extend(c.attach.iter().map(|a| a.subnet4));
        }
        let names_dir = c
            .state_dir
            .parent()
            .map(|p| p.join("names"))
            .unwrap_or_default();
        let names: Vec<NamesPlan> = match (&c.names, mode) {
            (Some(_), m) if m != NetworkMode::Bridge => {
                return Err(ConfigError::new(
                    "--names-file",
                    "only with --network bridge (the names are addresses on its bridge)",
                ))
            }
            _ => std::iter::once((&c.names, &c.bridge, c.subnet4))
                .chain(c.attach.iter().map(|a| (&a.names, &a.bridge, a.subnet4)))
                .filter_map(|(f, bridge, subnet4)| {
                    Some(NamesPlan {
                        file: f.clone()?,
                        names_dir: names_dir.clone(),
                        claims_dir: c.state_dir.join(bridge),
                        subnet4,
                    })
                })
                .collect(),
        };
        let mut resolver = if deny {
            (!c.egress.domains.is_empty() || !names.is_empty()).then(|| ResolverPlan {
                domains: Some(c.egress.domains.clone()),
                upstreams: host_ns.clone(),
                never,
                names: vec![],
            })
        } else if mode == NetworkMode::Bridge
            && (!names.is_empty() || host_ns.iter().any(|a| a.is_loopback()))
        {
            Some(ResolverPlan {
                domains: None,
                upstreams: host_ns.clone(),
                never: vec![],
                names: vec![],
            })
        } else {
            None
        };
        if let Some(r) = resolver.as_mut() {
            r.names = names;
        }
        let resolv_conf = if resolver.is_some() {
            resolv_conf(
                &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
                "the runtime's resolver (answers allowed names only)",
            )
        } else if deny {
            resolv_conf(
                &[],
                "egress is denied and no --egress-domain is allowed: no names resolve",
            )
        } else if mode == NetworkMode::Slirp {
            let ns = if c.dns.is_empty() {
                vec![IpAddr::V4(SLIRP_DNS4)]
            } else {
                c.dns.clone()
            };
            resolv_conf(&ns, "nameservers")
        } else if host_ns.is_empty() {
            resolv_conf(&[], "no nameserver is known: give --dns")
        } else {
            resolv_conf(&host_ns, "nameservers")
        };
        let egress = deny.then(|| c.egress.clone());
        let short = &id[..id.len().min(12)];
        Ok(Self {
            bridge: (mode == NetworkMode::Bridge).then(|| BridgePlan {
                name: c.bridge.clone(),
                subnet4: c.subnet4,
                subnet6: c.subnet6,
                ports: c.publish.clone(),
                claims_dir: c.state_dir.join(&c.bridge),
                table: format!("nucleus-{short}"),
                guard_table: format!("nucleus-bridge-{}", c.bridge),
                port_prefix: format!(
                    "nv{}-",
                    bridge_tag(&c.bridge, &c.subnet4, c.subnet6.as_ref())
                ),
                iface: SANDBOX_IFACE.into(),
            }),
            attached: c
                .attach
                .iter()
                .enumerate()
                .map(|(i, a)| BridgePlan {
                    name: a.bridge.clone(),
                    subnet4: a.subnet4,
                    subnet6: None,
                    ports: vec![],
                    claims_dir: c.state_dir.join(&a.bridge),
                    table: format!("nucleus-{short}-{}", i + 1),
                    guard_table: format!("nucleus-bridge-{}", a.bridge),
                    port_prefix: format!("nv{}-", bridge_tag(&a.bridge, &a.subnet4, None)),
                    iface: format!("eth{}", i + 1),
                })
                .collect(),
            slirp: (mode == NetworkMode::Slirp).then(|| SlirpPlan {
                ports: c.publish.clone(),
                api_socket: c.state_dir.join(format!("slirp-{short}.sock")),
                join_userns: !privileged,
            }),
            egress,
            resolver,
            resolv_conf,
        })
    }
}

/// Egress a sandbox's policy refused, as the runtime reports it (a message line and an
/// `egress_refused` event).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "target")]
pub enum EgressRefusal {
    /// A name the resolver would not answer (or why a query was malformed).
    Dns(String),
    /// A packet to a destination outside the policy, e.g. `tcp 192.0.2.1:443`.
    Packet(String),
}

impl EgressRefusal {
    /// The event's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "dns",
            Self::Packet(_) => "packet",
        }
    }
    pub fn target(&self) -> &str {
        match self {
            Self::Dns(t) | Self::Packet(t) => t,
        }
    }
}

impl std::fmt::Display for EgressRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(t) => write!(f, "dns refused: {t}"),
            Self::Packet(t) => write!(f, "egress refused: {t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_parse_and_plan_as_more_interfaces() {
        let a = Attachment::parse("bridge=nb1,subnet=10.60.0.0/24,names=/n.json").unwrap();
        assert_eq!(a.bridge, "nb1");
        assert_eq!(a.subnet4.to_string(), "10.60.0.0/24");
        assert_eq!(a.names.as_deref(), Some(std::path::Path::new("/n.json")));
        for (bad, why) in [
            ("bridge=nb1", "needs bridge=NAME and subnet=CIDR"),
            (
                "bridge=nb1,subnet=10.60.0.0/24,mtu=9000",
                "unknown key \"mtu\"",
            ),
            (
                "bridge=nb1,bridge=nb2,subnet=10.60.0.0/24",
                "bridge given twice",
            ),
            (
                "bridge=this-name-is-too-long,subnet=10.60.0.0/24",
                "interface name",
            ),
            ("bridge=nb1,subnet=fd00::/64", "must be an IPv4 range"),
            ("nb1", "is not KEY=VALUE"),
            (
                "bridge=nb1,subnet=10.60.0.0/24,names=",
                "names= needs a file",
            ),
        ] {
            let e = Attachment::parse(bad).unwrap_err();
            assert_eq!(e.field, "--attach", "{bad}");
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
        let build = |c: &NetConfig, mode| {
            NetPlan::build(
                mode,
                c,
                crate::config::ServiceMode::Agent,
                None,
                "0123456789abcdef",
                true,
            )
        };
        let mut c = NetConfig {
            names: Some("/first.json".into()),
            ..NetConfig::default()
        };
        c.attach = vec![
            a.clone(),
            Attachment::parse("bridge=nb2,subnet=10.61.0.0/24").unwrap(),
        ];
        let p = build(&c, crate::config::NetworkMode::Bridge).unwrap();
        let ifaces: Vec<&str> = std::iter::once(p.bridge.as_ref().unwrap())
            .chain(&p.attached)
            .map(|b| b.iface.as_str())
            .collect();
        assert_eq!(ifaces, ["eth0", "eth1", "eth2"]);
        let b1 = &p.attached[0];
        assert_eq!(
            (b1.name.as_str(), b1.subnet6, b1.ports.is_empty()),
            ("nb1", None, true)
        );
        assert_eq!(b1.guard_table, "nucleus-bridge-nb1");
        assert_ne!(b1.port_prefix, p.bridge.as_ref().unwrap().port_prefix);
        // Names: the first bridge's file first; a bridge without a file adds none.
        let r = p.resolver.as_ref().unwrap();
        let files: Vec<_> = r.names.iter().map(|n| n.file.to_str().unwrap()).collect();
        assert_eq!(files, ["/first.json", "/n.json"]);
        assert_eq!(r.names[1].claims_dir, c.state_dir.join("nb1"));
        assert!(r.names[1].subnet4 == a.subnet4);
        // Problems: one line each, naming --attach.
        let mut dup = c.clone();
        dup.attach[1].bridge = "nb1".into();
        let mut own = c.clone();
        own.attach[0].bridge = DEFAULT_BRIDGE.into();
        let mut overlap = c.clone();
        overlap.attach[1].subnet4 = Cidr::parse("10.60.0.128/25", "").unwrap();
        let mut inside = c.clone();
        inside.attach[0].subnet4 = Cidr::parse("10.88.7.0/24", "").unwrap();
        let mut many = c.clone();
        many.attach = (0..=MAX_ATTACH)
            .map(|i| Attachment::parse(&format!("bridge=m{i},subnet=10.70.{i}.0/24")).unwrap())
            .collect();
        let mut tiny = c.clone();
        tiny.attach[0].subnet4 = Cidr::parse("10.60.0.0/31", "").unwrap();
        for (c, mode, why) in [
            (&dup, crate::config::NetworkMode::Bridge, "given twice"),
            (&own, crate::config::NetworkMode::Bridge, "given twice"),
            (
                &overlap,
                crate::config::NetworkMode::Bridge,
                "overlaps 10.60.0.0/24",
            ),
            (
                &inside,
                crate::config::NetworkMode::Bridge,
                "overlaps 10.88.0.0/16",
            ),
            (&many, crate::config::NetworkMode::Bridge, "at most 8"),
            (&tiny, crate::config::NetworkMode::Bridge, "no room"),
            (
                &c,
                crate::config::NetworkMode::Slirp,
                "only with --network bridge",
            ),
            (
                &c,
                crate::config::NetworkMode::None,
                "only with --network bridge",
            ),
        ] {
            let e = build(c, mode).unwrap_err();
            assert_eq!(e.field, "--attach", "{why}: {e:?}");
            assert!(e.message.contains(why), "{why}: {}", e.message);
        }
        // An answer from upstream never admits an attached bridge's range.
        let mut open = c.clone();
        open.names = None;
        open.attach[0].names = None;
        open.egress.domains = vec![DomainRule::parse("example.com").unwrap()];
        let p = build(&open, crate::config::NetworkMode::Bridge).unwrap();
        let r = p.resolver.unwrap();
        assert!(r.names.is_empty());
        assert!(!r.admits(&"10.61.0.9".parse().unwrap()));
        assert!(r.admits(&"192.0.2.9".parse().unwrap()));
    }

    #[test]
    fn ports_parse() {
        let p = PortMap::parse("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.ctr_port, p.proto),
            (None, 8080, 80, Proto::Tcp)
        );
        let p = PortMap::parse("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.proto, Proto::Udp);
        let p = PortMap::parse("[2001:db8::1]:8443:443").unwrap();
        assert_eq!(p.host_ip, Some("2001:db8::1".parse().unwrap()));
        for bad in [
            "80",
            "0:80",
            "8080:70000",
            "x:1:2",
            "1:2/sctp",
            "::1:80:80",
            "[::1]80:80",
        ] {
            let e = PortMap::parse(bad).unwrap_err();
            assert_eq!(e.field, "--publish", "{bad}");
        }
    }

    #[test]
    fn default_subnets_agree() {
        assert_eq!(Cidr::parse(DEFAULT_SUBNET4, "x").unwrap(), SUBNET4);
        assert_eq!(Cidr::parse(DEFAULT_SUBNET6, "x").unwrap(), SUBNET6);
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.88.0.0/16", "--subnet").unwrap();
        assert_eq!(c.nth(1).to_string(), "10.88.0.1");
        assert_eq!(c.nth(258).to_string(), "10.88.1.2");
        assert_eq!(c.host_count(), 65533);
        assert!(c.contains(&"10.88.200.1".parse().unwrap()));
        assert!(!c.contains(&"10.89.0.1".parse().unwrap()));
        assert!(!c.contains(&"::1".parse().unwrap()));
        assert_eq!(c.mask_bytes(), vec![255, 255, 0, 0]);
        let c = Cidr::parse("fd00::/64", "x").unwrap();
        assert_eq!(c.nth(5).to_string(), "fd00::5");
        assert_eq!(Cidr::parse("1.2.3.4", "x").unwrap().prefix, 32);
        assert_eq!(
            Cidr::parse("10.0.0.0/9", "x").unwrap().mask_bytes()[1],
            0x80
        );
        assert!(Cidr::parse("10.0.0.1/8", "x")
            .unwrap_err()
            .message
            .contains("10.0.0.0/8"));
        assert!(Cidr::parse("10.0.0.0/33", "x").is_err());
        assert!(Cidr::parse("nope", "x").is_err());
    }

    /// A name under an allowed domain never opens loopback, link-local (cloud metadata), the
    /// other metadata addresses, or the sandbox's own subnet, also when embedded in IPv6.
    #[test]
    fn resolver_never_admits_special_ranges() {
        let mut never = special_ranges();
        never.push(Cidr::parse("10.88.0.0/16", "").unwrap());
        let r = ResolverPlan {
            domains: Some(vec![]),
            upstreams: vec![],
            never,
            names: vec![],
        };
        for a in [
            "169.254.169.254",
            "127.0.0.1",
            "0.0.0.0",
            "100.100.100.200",
            "168.63.129.16",
            "10.88.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "fd20:ce::254",
            "::ffff:198.51.100.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::7f00:1",
            "2002:a9fe:a9fe::1",
            "ff02::1",
        ] {
            assert!(!r.admits(&a.parse().unwrap()), "{a} admitted");
        }
        for a in [
            "198.51.100.1",
            "2001:db8::1",
            "100.100.100.201",
            "64:ff9b::c633:6401",
        ] {
            assert!(r.admits(&a.parse().unwrap()), "{a} refused");
        }
    }

    #[test]
    fn domains() {
        let d = DomainRule::parse("API.Example.com.").unwrap();
        assert!(d.matches("api.example.com"));
        assert!(d.matches("api.EXAMPLE.com."));
        assert!(!d.matches("x.api.example.com"));
        let w = DomainRule::parse("*.example.com").unwrap();
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("badexample.com"));
        // Wire labels: "x.corp" is one label, so [x.corp, example, com] is not under
        // corp.example.com (it would be as text).
        let c = DomainRule::parse("*.corp.example.com").unwrap();
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!c.matches_labels(&l(&["x.corp", "example", "com"])));
        assert!(c.matches_labels(&l(&["x", "corp", "example", "com"])));
        for bad in ["", "*.", "a..b", "-a.com", "a b", "*.*.a"] {
            assert!(DomainRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nameserver_lines() {
        let n = nameservers("# x\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch a\n");
        assert_eq!(n.len(), 2);
    }
}
