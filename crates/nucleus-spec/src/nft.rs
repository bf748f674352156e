//! nftables rulesets compiled to netlink batches (pure bytes; `nucleus_sys` sends them).
//!
//! Why not a crate: the Rust nftables crates either link the C libnftnl (nftnl, mnl: a second
//! C library for a single static binary) or are GPL-3.0 (rustables), and the JSON crate spawns
//! `nft` (milliseconds per start). The subset nucleus needs (tables, base and regular chains,
//! timeout sets, a dozen expression kinds) is small and fixed, and golden/kernel tests cover it.
//! Attribute numbers are those of `linux/netfilter/nf_tables.h`.

use crate::net::{addr_bytes, Cidr, EgressConfig, PortMap, Proto};
use std::net::IpAddr;

// Netlink and nfnetlink.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLA_F_NESTED: u16 = 0x8000;

// Message types.
const NEWTABLE: u16 = 0;
const GETTABLE: u16 = 1;
const NEWCHAIN: u16 = 3;
const NEWRULE: u16 = 6;
const NEWSET: u16 = 9;
const NEWSETELEM: u16 = 12;
const DELSETELEM: u16 = 14;

// Families (NFPROTO_*).
pub const INET: u8 = 1;
const BRIDGE: u8 = 7;
const BR_PRE_ROUTING: u32 = 0;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

// Hooks.
const PRE_ROUTING: u32 = 0;
const LOCAL_IN: u32 = 1;
const FORWARD: u32 = 2;
const LOCAL_OUT: u32 = 3;
const POST_ROUTING: u32 = 4;

const NFT_TABLE_F_OWNER: u32 = 2;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;

const REG_VERDICT: u32 = 0;
const REG1: u32 = 1;
const REG2: u32 = 2;
/// The 32-bit register right after register 1's 16 bytes (an interface name).
const REG32_04: u32 = 12;
const NFT_LOOKUP_F_INV: u32 = 1;

// Expression keys.
const META_PROTOCOL: u32 = 1;
const META_IIFNAME: u32 = 6;
const META_OIF: u32 = 5;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
/// `IPS_DST_NAT`: the connection's destination was rewritten (a published port).
const CT_STATUS_DNAT: u32 = 1 << 5;
const PAYLOAD_LL: u32 = 0;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const CMP_GTE: u32 = 5;
const CMP_LTE: u32 = 3;
const CT_ESTABLISHED: u32 = 1 << 1;
const CT_RELATED: u32 = 1 << 2;
const NAT_DNAT: u32 = 1;
const FIB_RESULT_ADDRTYPE: u32 = 3;
const FIB_F_DADDR: u32 = 1 << 1;
const RTN_LOCAL: u32 = 2;

/// nft's own datatype numbers for set keys (what `nft list` prints them as).
const TYPE_IPV4_ADDR: u32 = 7;
const TYPE_IPV6_ADDR: u32 = 8;
const TYPE_ETHER_ADDR: u32 = 9;
const TYPE_IFNAME: u32 = 41;
/// nft's concatenated type: each part's type shifted in by 6 bits.
const fn concat_type(a: u32, b: u32) -> u32 {
    (a << 6) | b
}

/// The nftables table in a sandbox's own network namespace.
pub const EGRESS_TABLE: &str = "nucleus";
pub const SET4: &str = "dns4";
pub const SET6: &str = "dns6";
/// Group of the NFLOG messages for refused packets.
pub const LOG_GROUP: u16 = 7;
/// Most addresses one resolver set holds.
pub const SET_SIZE: u32 = 65_536;

/// One netlink attribute writer (values padded to 4 bytes).
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn raw(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }
    fn str(&mut self, ty: u16, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.raw(ty, &b);
    }
    fn be32(&mut self, ty: u16, v: u32) {
        self.raw(ty, &v.to_be_bytes());
    }
    fn be64(&mut self, ty: u16, v: u64) {
        self.raw(ty, &v.to_be_bytes());
    }
    fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0, 0, 0]);
        f(&mut Attrs(self.0));
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.0[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }
    /// NFTA_DATA_VALUE inside a nest.
    fn value(&mut self, ty: u16, v: &[u8]) {
        self.nest(ty, |a| a.raw(1, v));
    }
}

/// One nftables expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Meta {
        key: u32,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    Mask {
        mask: Vec<u8>,
    },
    Ct {
        key: u32,
    },
    Lookup {
        set: String,
    },
    /// Load into a 32-bit register (`NFT_REG32_00 + n`): the parts of a concatenated key.
    MetaAt {
        key: u32,
        reg: u32,
    },
    PayloadAt {
        base: u32,
        offset: u32,
        len: u32,
        reg: u32,
    },
    /// Match when the key starting at register 1 is NOT in the set.
    NotIn {
        set: String,
    },
    Counter,
    Verdict {
        code: i32,
        chain: Option<String>,
    },
    Load {
        reg: u32,
        data: Vec<u8>,
    },
    Dnat {
        family: u8,
    },
    /// Destination NAT to the address in REG1, ports kept.
    DnatAddr {
        family: u8,
    },
    Masq,
    Fib,
    Log,
    /// A TCP reset (`tcp`), else ICMP "administratively prohibited" for either family.
    Reject {
        tcp: bool,
    },
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Self::Meta { .. } | Self::MetaAt { .. } => "meta",
            Self::Payload { .. } | Self::PayloadAt { .. } => "payload",
            Self::Cmp { .. } => "cmp",
            Self::Mask { .. } => "bitwise",
            Self::Ct { .. } => "ct",
            Self::Lookup { .. } | Self::NotIn { .. } => "lookup",
            Self::Counter => "counter",
            Self::Verdict { .. } | Self::Load { .. } => "immediate",
            Self::Dnat { .. } | Self::DnatAddr { .. } => "nat",
            Self::Masq => "masq",
            Self::Fib => "fib",
            Self::Log => "log",
            Self::Reject { .. } => "reject",
        }
    }
    /// The expression's attributes (NFTA_EXPR_DATA).
    fn data(&self, a: &mut Attrs<'_>) {
        match self {
            Self::Meta { key } | Self::Ct { key } => {
                a.be32(2, *key);
                a.be32(1, REG1);
            }
            Self::Payload { base, offset, len } => {
                a.be32(1, REG1);
                a.be32(2, *base);
                a.be32(3, *offset);
                a.be32(4, *len);
            }
            Self::Cmp { op, data } => {
                a.be32(1, REG1);
                a.be32(2, *op);
                a.value(3, data);
            }
            Self::Mask { mask } => {
                a.be32(1, REG1);
                a.be32(2, REG1);
                a.be32(3, mask.len() as u32);
                a.value(4, mask);
                a.value(5, &vec![0; mask.len()]);
            }
            Self::Lookup { set } => {
                a.str(1, set);
                a.be32(2, REG1);
            }
            Self::NotIn { set } => {
                a.str(1, set);
                a.be32(2, REG1);
                a.be32(5, NFT_LOOKUP_F_INV);
            }
            Self::MetaAt { key, reg } => {
                a.be32(2, *key);
                a.be32(1, *reg);
            }
            Self::PayloadAt {
                base,
                offset,
                len,
                reg,
            } => {
                a.be32(1, *reg);
                a.be32(2, *base);
                a.be32(3, *offset);
                a.be32(4, *len);
            }
            Self::Counter | Self::Masq => {}
            Self::Verdict { code, chain } => {
                a.be32(1, REG_VERDICT);
                a.nest(2, |a| {
                    a.nest(2, |a| {
                        a.be32(1, *code as u32);
                        if let Some(c) = chain {
                            a.str(2, c);
                        }
                    })
                });
            }
            Self::Load { reg, data } => {
                a.be32(1, *reg);
                a.value(2, data);
            }
            Self::Dnat { family } => {
                a.be32(1, NAT_DNAT);
                a.be32(2, u32::from(*family));
                a.be32(3, REG1);
                a.be32(5, REG2);
            }
            Self::DnatAddr { family } => {
                a.be32(1, NAT_DNAT);
                a.be32(2, u32::from(*family));
                a.be32(3, REG1);
            }
            Self::Fib => {
                a.be32(1, REG1);
                a.be32(2, FIB_RESULT_ADDRTYPE);
                a.be32(3, FIB_F_DADDR);
            }
            Self::Log => {
                a.raw(1, &LOG_GROUP.to_be_bytes());
                a.str(2, "nucleus-egress-denied ");
            }
            Self::Reject { tcp } => {
                if *tcp {
                    a.be32(1, 1);
                } else {
                    a.be32(1, 2);
                    a.raw(2, &[3]);
                }
            }
        }
    }
    fn emit(&self, a: &mut Attrs<'_>) {
        a.nest(1, |a| {
            a.str(1, self.name());
            if !matches!(self, Self::Counter | Self::Masq) {
                a.nest(2, |a| self.data(a));
            }
        });
    }
}

fn eq(data: Vec<u8>) -> Expr {
    Expr::Cmp { op: CMP_EQ, data }
}
fn nfproto(ip: &IpAddr) -> [Expr; 2] {
    [
        Expr::Meta { key: META_NFPROTO },
        eq(vec![if ip.is_ipv4() {
            NFPROTO_IPV4
        } else {
            NFPROTO_IPV6
        }]),
    ]
}
/// Source (false) or destination (true) address of the packet into register 1.
fn addr(ip: &IpAddr, dest: bool) -> Expr {
    let (offset, len) = match (ip.is_ipv4(), dest) {
        (true, false) => (12, 4),
        (true, true) => (16, 4),
        (false, false) => (8, 16),
        (false, true) => (24, 16),
    };
    Expr::Payload {
        base: PAYLOAD_NETWORK,
        offset,
        len,
    }
}
fn in_cidr(c: &Cidr, dest: bool) -> Vec<Expr> {
    let mut v = nfproto(&c.addr).to_vec();
    v.push(addr(&c.addr, dest));
    if c.prefix < c.max_prefix() {
        v.push(Expr::Mask {
            mask: c.mask_bytes(),
        });
    }
    v.push(eq(addr_bytes(&c.addr)));
    v
}
fn l4proto(p: u8) -> [Expr; 2] {
    [Expr::Meta { key: META_L4PROTO }, eq(vec![p])]
}
fn dport(p: u16) -> [Expr; 2] {
    [
        Expr::Payload {
            base: PAYLOAD_TRANSPORT,
            offset: 2,
            len: 2,
        },
        eq(p.to_be_bytes().to_vec()),
    ]
}
fn accept() -> Expr {
    Expr::Verdict {
        code: NF_ACCEPT,
        chain: None,
    }
}
fn ifname(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

/// A batch of nftables messages between BATCH_BEGIN and BATCH_END.
pub struct Batch {
    buf: Vec<u8>,
    seq: u32,
    /// Sequence number of the first and last message that asks for an answer.
    pub first: u32,
}

impl Batch {
    pub fn new(seq: u32) -> Self {
        let mut b = Self {
            buf: Vec::with_capacity(2048),
            seq,
            first: seq + 1,
        };
        b.header(
            NFNL_MSG_BATCH_BEGIN,
            0,
            NLM_F_REQUEST,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        b
    }
    fn header(
        &mut self,
        ty: u16,
        family: u8,
        flags: u16,
        res_id: u16,
        f: impl FnOnce(&mut Attrs<'_>),
    ) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        f(&mut Attrs(&mut self.buf));
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        self.seq += 1;
    }
    fn msg(&mut self, ty: u16, family: u8, flags: u16, f: impl FnOnce(&mut Attrs<'_>)) {
        self.header(
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            family,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            0,
            f,
        );
    }
    /// The last sequence number that expects an acknowledgement.
    pub fn last(&self) -> u32 {
        self.seq - 1
    }
    pub fn finish(mut self) -> (Vec<u8>, u32, u32) {
        let (first, last) = (self.first, self.last());
        self.header(
            NFNL_MSG_BATCH_END,
            0,
            NLM_F_REQUEST,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        (self.buf, first, last)
    }

    pub fn table(&mut self, name: &str, owned: bool) {
        self.msg(NEWTABLE, INET, NLM_F_CREATE, |a| {
            a.str(1, name);
            if owned {
                a.be32(2, NFT_TABLE_F_OWNER);
            }
        });
    }
    /// A base chain (`hook`: hook number, priority, type, policy) or a regular one.
    fn chain(&mut self, table: &str, name: &str, hook: Option<(u32, i32, &str, i32)>) {
        self.msg(NEWCHAIN, INET, NLM_F_CREATE, |a| {
            a.str(1, table);
            a.str(3, name);
            if let Some((num, prio, ty, policy)) = hook {
                a.nest(4, |a| {
                    a.be32(1, num);
                    a.be32(2, prio as u32);
                });
                a.be32(5, policy as u32);
                a.str(7, ty);
            }
        });
    }
    fn rule(&mut self, table: &str, chain: &str, exprs: &[Expr]) {
        self.rule_in(INET, table, chain, exprs)
    }
    fn rule_in(&mut self, family: u8, table: &str, chain: &str, exprs: &[Expr]) {
        self.msg(NEWRULE, family, NLM_F_CREATE | NLM_F_APPEND, |a| {
            a.str(1, table);
            a.str(2, chain);
            a.nest(4, |a| {
                for e in exprs {
                    e.emit(a);
                }
            });
        });
    }
    fn set(&mut self, table: &str, name: &str, v6: bool, id: u32) {
        self.msg(NEWSET, INET, NLM_F_CREATE, |a| {
            a.str(1, table);
            a.str(2, name);
            a.be32(3, NFT_SET_TIMEOUT);
            a.be32(4, if v6 { TYPE_IPV6_ADDR } else { TYPE_IPV4_ADDR });
            a.be32(5, if v6 { 16 } else { 4 });
            // NFTA_SET_DESC { NFTA_SET_DESC_SIZE }: a bounded set.
            a.nest(9, |a| a.be32(1, SET_SIZE));
            a.be32(10, id);
        });
    }
    /// Add addresses to the resolver's sets with a timeout each (milliseconds). Those in
    /// `refresh` are deleted first: an add does not refresh an existing element's timeout.
    pub fn set_elems(&mut self, addrs: &[(IpAddr, u64)], refresh: &[IpAddr]) {
        for v6 in [false, true] {
            let set = if v6 { SET6 } else { SET4 };
            let del: Vec<&IpAddr> = refresh.iter().filter(|a| a.is_ipv6() == v6).collect();
            if !del.is_empty() {
                self.msg(DELSETELEM, INET, 0, |a| {
                    a.str(1, EGRESS_TABLE);
                    a.str(2, set);
                    a.nest(3, |a| {
                        for ip in &del {
                            a.nest(1, |a| a.value(1, &addr_bytes(ip)));
                        }
                    });
                });
            }
            let add: Vec<&(IpAddr, u64)> =
                addrs.iter().filter(|(a, _)| a.is_ipv6() == v6).collect();
            if add.is_empty() {
                continue;
            }
            self.msg(NEWSETELEM, INET, NLM_F_CREATE, |a| {
                a.str(1, EGRESS_TABLE);
                a.str(2, set);
                a.nest(3, |a| {
                    for (ip, ms) in &add {
                        a.nest(1, |a| {
                            a.value(1, &addr_bytes(ip));
                            a.be64(4, *ms);
                        });
                    }
                });
            });
        }
    }
}

/// The egress ruleset for the sandbox's own network namespace: loopback and replies pass;
/// the ICMPv6 the link needs passes; DNS goes to the runtime's resolver (on loopback) only;
/// then the allowed destinations (addresses, and the resolver's sets), each restricted to the
/// allowed ports when any are given; everything else is counted, logged to NFLOG group
/// [`LOG_GROUP`] and refused.
pub fn egress_batch(policy: &EgressConfig, seq: u32) -> (Vec<u8>, u32, u32) {
    egress_batch_at(policy, None, seq)
}

/// The same ruleset where the sandbox's traffic is forwarded from the interface `from` (a
/// gVisor sandbox's router namespace: docs/gvisor.md), on the forward hook instead of the
/// output hook (what other interfaces forward passes); and the router's own input from `from`:
/// DNS to the runtime's resolver and replies only.
pub fn egress_batch_at(policy: &EgressConfig, from: Option<&str>, seq: u32) -> (Vec<u8>, u32, u32) {
    let t = EGRESS_TABLE;
    let mut b = Batch::new(seq);
    b.table(t, false);
    let sets = !policy.domains.is_empty();
    if sets {
        b.set(t, SET4, false, 1);
        b.set(t, SET6, true, 2);
    }
    let established = || {
        [
            Expr::Ct { key: CT_STATE },
            Expr::Mask {
                mask: (CT_ESTABLISHED | CT_RELATED).to_ne_bytes().to_vec(),
            },
            Expr::Cmp {
                op: CMP_NEQ,
                data: 0u32.to_ne_bytes().to_vec(),
            },
        ]
    };
    if let Some(from) = from {
        b.chain(t, "input", Some((LOCAL_IN, 0, "filter", NF_ACCEPT)));
        let on = || vec![Expr::Meta { key: META_IIFNAME }, eq(ifname(from))];
        let mut e = on();
        e.extend(established());
        e.push(accept());
        b.rule(t, "input", &e);
        for proto in [Proto::Udp, Proto::Tcp] {
            let mut e = on();
            e.extend(l4proto(proto.number()));
            e.extend(dport(53));
            e.push(accept());
            b.rule(t, "input", &e);
        }
        // (A reset for TCP: a netstack may not act on ICMP "prohibited" and retry for minutes.)
        let mut e = on();
        e.extend(l4proto(Proto::Tcp.number()));
        e.extend([Expr::Counter, Expr::Reject { tcp: true }]);
        b.rule(t, "input", &e);
        let mut e = on();
        e.extend([Expr::Counter, Expr::Reject { tcp: false }]);
        b.rule(t, "input", &e);
    }
    let hook = if from.is_some() { FORWARD } else { LOCAL_OUT };
    b.chain(t, "output", Some((hook, 0, "filter", NF_DROP)));
    let ports = !policy.tcp_ports.is_empty() || !policy.udp_ports.is_empty();
    if ports {
        b.chain(t, "ports", None);
        for (proto, list) in [
            (Proto::Tcp, &policy.tcp_ports),
            (Proto::Udp, &policy.udp_ports),
        ] {
            for p in list {
                let mut e = l4proto(proto.number()).to_vec();
                e.extend(dport(*p));
                e.push(accept());
                b.rule(t, "ports", &e);
            }
        }
    }
    let then = || {
        if ports {
            Expr::Verdict {
                code: NFT_JUMP,
                chain: Some("ports".into()),
            }
        } else {
            accept()
        }
    };
    match from {
        // Loopback; forwarded: what does not come from the sandbox's link.
        None => b.rule(
            t,
            "output",
            &[
                Expr::Meta { key: META_OIF },
                eq(1u32.to_ne_bytes().to_vec()),
                accept(),
            ],
        ),
        Some(from) => b.rule(
            t,
            "output",
            &[
                Expr::Meta { key: META_IIFNAME },
                Expr::Cmp {
                    op: CMP_NEQ,
                    data: ifname(from),
                },
                accept(),
            ],
        ),
    }
    let mut e = established().to_vec();
    e.push(accept());
    b.rule(t, "output", &e);
    // ICMPv6 that IPv6 needs on the link: MLD (130-132, 143), router and neighbour
    // solicitations and advertisements (133, 135, 136). Not router advertisements (134):
    // a sandbox never routes for its neighbours.
    for (lo, hi) in [(130u8, 133u8), (135, 136), (143, 143)] {
        let mut e = vec![Expr::Meta { key: META_NFPROTO }, eq(vec![NFPROTO_IPV6])];
        e.extend(l4proto(58));
        e.push(Expr::Payload {
            base: PAYLOAD_TRANSPORT,
            offset: 0,
            len: 1,
        });
        if lo == hi {
            e.push(eq(vec![lo]));
        } else {
            e.push(Expr::Cmp {
                op: CMP_GTE,
                data: vec![lo],
            });
            e.push(Expr::Cmp {
                op: CMP_LTE,
                data: vec![hi],
            });
        }
        e.push(accept());
        b.rule(t, "output", &e);
    }
    // Refusals answer at once (a TCP reset, or ICMP "prohibited"): a silently dropped
    // SYN would leave connect() retrying for minutes.
    let refuse = |b: &mut Batch, matching: &[Expr], tcp: bool| {
        let mut e = matching.to_vec();
        e.extend([Expr::Counter, Expr::Log, Expr::Reject { tcp }]);
        b.rule(t, "output", &e);
    };
    for proto in [Proto::Udp, Proto::Tcp] {
        let mut e = l4proto(proto.number()).to_vec();
        e.extend(dport(53));
        refuse(&mut b, &e, proto == Proto::Tcp);
    }
    for c in &policy.allow {
        let mut e = in_cidr(c, true);
        e.push(then());
        b.rule(t, "output", &e);
    }
    if sets {
        for (set, ip) in [
            (SET4, IpAddr::from([0u8; 4])),
            (SET6, IpAddr::from([0u8; 16])),
        ] {
            let mut e = nfproto(&ip).to_vec();
            e.push(addr(&ip, true));
            e.push(Expr::Lookup { set: set.into() });
            e.push(then());
            b.rule(t, "output", &e);
        }
    }
    if ports && policy.allow.is_empty() && !sets {
        b.rule(t, "output", &[then()]);
    }
    refuse(&mut b, &l4proto(Proto::Tcp.number()), true);
    refuse(&mut b, &[], false);
    b.finish()
}

/// The bridge's own table (persistent, like the bridge): masquerade of its subnets leaving
/// through anything but the bridge, and its isolation: nothing is routed onto the bridge from
/// another interface (another bridge's sandboxes, a host network) unless it answers a
/// connection from the bridge or is a published port's (destination NAT); sandboxes on one
/// bridge reach each other directly, the host's own addresses stay reachable as before.
/// Created once, with the bridge (`NLM_F_EXCL` on the table: a second runtime racing to
/// create it fails the whole batch and changes nothing).
pub fn bridge_table(table: &str, bridge: &str, subnets: &[Cidr], seq: u32) -> (Vec<u8>, u32, u32) {
    let mut b = Batch::new(seq);
    b.msg(NEWTABLE, INET, NLM_F_CREATE | NLM_F_EXCL, |a| {
        a.str(1, table)
    });
    b.chain(table, "isolate", Some((FORWARD, 0, "filter", NF_ACCEPT)));
    let flag_clear = |key: u32, mask: u32| {
        [
            Expr::Ct { key },
            Expr::Mask {
                mask: mask.to_ne_bytes().to_vec(),
            },
            eq(0u32.to_ne_bytes().to_vec()),
        ]
    };
    let mut e = vec![Expr::Meta { key: META_OIFNAME }, eq(ifname(bridge))];
    e.push(Expr::Meta { key: META_IIFNAME });
    e.push(Expr::Cmp {
        op: CMP_NEQ,
        data: ifname(bridge),
    });
    e.extend(flag_clear(CT_STATE, CT_ESTABLISHED | CT_RELATED));
    e.extend(flag_clear(CT_STATUS, CT_STATUS_DNAT));
    e.push(Expr::Counter);
    e.push(Expr::Verdict {
        code: NF_DROP,
        chain: None,
    });
    b.rule(table, "isolate", &e);
    b.chain(table, "post", Some((POST_ROUTING, 100, "nat", NF_ACCEPT)));
    for c in subnets {
        let mut e = in_cidr(c, false);
        e.push(Expr::Meta { key: META_OIFNAME });
        e.push(Expr::Cmp {
            op: CMP_NEQ,
            data: ifname(bridge),
        });
        e.push(Expr::Masq);
        b.rule(table, "post", &e);
    }
    b.finish()
}

/// Delete a table of the family (`INET` or the bridge family with `bridge = true`): a compose
/// topology's bridge tables at `down`.
pub fn delete_table(table: &str, bridge: bool, seq: u32) -> (Vec<u8>, u32, u32) {
    const DELTABLE: u16 = 2;
    let mut b = Batch::new(seq);
    b.msg(DELTABLE, if bridge { BRIDGE } else { INET }, 0, |a| {
        a.str(1, table)
    });
    b.finish()
}

/// Ask whether a table exists (answered with ENOENT when it does not).
pub fn get_table(table: &str, seq: u32) -> Vec<u8> {
    let mut b = Batch {
        buf: vec![],
        seq,
        first: seq,
    };
    b.header(
        (NFNL_SUBSYS_NFTABLES << 8) | GETTABLE,
        INET,
        NLM_F_REQUEST | NLM_F_ACK,
        0,
        |a| a.str(1, table),
    );
    b.buf
}

/// The guard sets of a bridge's ports: `port name . MAC`, `port name . IPv4 address` (also
/// ARP's sender address) and `port name . IPv6 address`.
pub const GUARD_MAC: &str = "mac";
pub const GUARD4: &str = "addr4";
pub const GUARD6: &str = "addr6";

/// The bridge's port guard (family bridge, persistent like the bridge, made with it): a frame
/// entering the bridge from one of its sandbox ports (names starting with `port_prefix`) must
/// carry that port's own MAC and addresses, else it is counted and dropped, whether the
/// bridge forwards it to another sandbox or hands it to the host. IPv4 and ARP with another
/// sender address, IPv6 from anything but the port's address, a link-local address or the
/// unspecified address (neighbour discovery), any other ethertype, and any other source MAC
/// are dropped: a sandbox's IP_FREEBIND socket (or raw socket, if it was given one) cannot
/// put a frame on the bridge under another source, nor take another sandbox's MAC in the
/// bridge's forwarding table.
///
/// Per-sandbox state is set elements ([`bridge_guard_elems`]) keyed by the port's name, which
/// the runtime derives from the sandbox's address slot: an element is true for as long as the
/// bridge and its subnets are, so none is ever deleted (a deletion makes the next close of any
/// nfnetlink socket on the host wait for an RCU grace period, milliseconds on every start).
/// A port with no elements passes nothing.
/// `slots`: the number of address slots (each set holds at most one element per slot).
pub fn bridge_guard_table(
    table: &str,
    port_prefix: &str,
    slots: u32,
    seq: u32,
) -> (Vec<u8>, u32, u32) {
    let mut b = Batch::new(seq);
    b.msg(NEWTABLE, BRIDGE, NLM_F_CREATE | NLM_F_EXCL, |a| {
        a.str(1, table)
    });
    for (id, (name, ty, len)) in [
        (GUARD_MAC, concat_type(TYPE_IFNAME, TYPE_ETHER_ADDR), 16 + 8),
        (GUARD4, concat_type(TYPE_IFNAME, TYPE_IPV4_ADDR), 16 + 4),
        (GUARD6, concat_type(TYPE_IFNAME, TYPE_IPV6_ADDR), 16 + 16),
    ]
    .into_iter()
    .enumerate()
    {
        b.msg(NEWSET, BRIDGE, NLM_F_CREATE, |a| {
            a.str(1, table);
            a.str(2, name);
            a.be32(4, ty);
            a.be32(5, len);
            a.nest(9, |a| a.be32(1, slots.max(1)));
            a.be32(10, id as u32 + 1);
        });
    }
    let chain = "ports";
    b.msg(NEWCHAIN, BRIDGE, NLM_F_CREATE, |a| {
        a.str(1, table);
        a.str(3, chain);
        a.nest(4, |a| {
            a.be32(1, BR_PRE_ROUTING);
            a.be32(2, (-500i32) as u32);
        });
        a.be32(5, NF_ACCEPT as u32);
        a.str(7, "filter");
    });
    let drop = || Expr::Verdict {
        code: NF_DROP,
        chain: None,
    };
    let ethertype = |t: u16| {
        [
            Expr::Meta { key: META_PROTOCOL },
            eq(t.to_be_bytes().to_vec()),
        ]
    };
    let field = |offset: u32, len: u32| Expr::Payload {
        base: PAYLOAD_NETWORK,
        offset,
        len,
    };
    let ne = |data: Vec<u8>| Expr::Cmp { op: CMP_NEQ, data };
    // `port name . field` not in `set`: drop.
    let not_own = |base: u32, offset: u32, len: u32, set: &str| {
        [
            Expr::MetaAt {
                key: META_IIFNAME,
                reg: REG1,
            },
            Expr::PayloadAt {
                base,
                offset,
                len,
                reg: REG32_04,
            },
            Expr::NotIn { set: set.into() },
            Expr::Counter,
            drop(),
        ]
    };
    // Frames from anything but this bridge's sandbox ports pass untouched.
    b.rule_in(
        BRIDGE,
        table,
        chain,
        &[
            Expr::Meta { key: META_IIFNAME },
            ne(port_prefix.as_bytes().to_vec()),
            accept(),
        ],
    );
    // Source MAC (the Ethernet header).
    b.rule_in(BRIDGE, table, chain, &not_own(PAYLOAD_LL, 6, 6, GUARD_MAC));
    // IPv4 source.
    let mut e = ethertype(0x0800).to_vec();
    e.extend(not_own(PAYLOAD_NETWORK, 12, 4, GUARD4));
    b.rule_in(BRIDGE, table, chain, &e);
    // ARP sender protocol address (0.0.0.0 for address probes).
    let mut e = ethertype(0x0806).to_vec();
    e.extend([field(14, 4), ne(vec![0u8; 4])]);
    e.extend(not_own(PAYLOAD_NETWORK, 14, 4, GUARD4));
    b.rule_in(BRIDGE, table, chain, &e);
    // IPv6 source.
    let mut link_local = vec![0u8; 16];
    link_local[..2].copy_from_slice(&[0xfe, 0x80]);
    let mut ll_mask = vec![0u8; 16];
    ll_mask[..2].copy_from_slice(&[0xff, 0xc0]);
    let mut e = ethertype(0x86dd).to_vec();
    e.extend([
        field(8, 16),
        Expr::Mask { mask: ll_mask },
        ne(link_local),
        field(8, 16),
        ne(vec![0u8; 16]),
    ]);
    e.extend(not_own(PAYLOAD_NETWORK, 8, 16, GUARD6));
    b.rule_in(BRIDGE, table, chain, &e);
    // Any other ethertype.
    b.rule_in(
        BRIDGE,
        table,
        chain,
        &[
            Expr::Meta { key: META_PROTOCOL },
            ne(0x0800u16.to_be_bytes().to_vec()),
            ne(0x0806u16.to_be_bytes().to_vec()),
            ne(0x86ddu16.to_be_bytes().to_vec()),
            Expr::Counter,
            drop(),
        ],
    );
    b.finish()
}

/// One port's elements in its bridge's guard sets (added before the port exists; adding an
/// element that is already there changes nothing).
pub fn bridge_guard_elems(
    table: &str,
    port: &str,
    mac: [u8; 6],
    addrs: &[IpAddr],
    seq: u32,
) -> (Vec<u8>, u32, u32) {
    let mut b = Batch::new(seq);
    let key = |tail: &[u8]| {
        let mut k = ifname(port);
        k.extend_from_slice(tail);
        k
    };
    let mut mac_key = key(&mac);
    mac_key.extend([0, 0]);
    let mut elems: Vec<(&str, Vec<u8>)> = vec![(GUARD_MAC, mac_key)];
    for ip in addrs {
        let set = if ip.is_ipv4() { GUARD4 } else { GUARD6 };
        elems.push((set, key(&addr_bytes(ip))));
    }
    for (set, k) in elems {
        b.msg(NEWSETELEM, BRIDGE, NLM_F_CREATE, |a| {
            a.str(1, table);
            a.str(2, set);
            a.nest(3, |a| a.nest(1, |a| a.value(1, &k)));
        });
    }
    b.finish()
}

/// A bridged sandbox's published ports, in a table of its own owned by the runtime's netlink
/// socket (the kernel removes it when that socket closes, on every exit path).
pub fn ports_table(
    table: &str,
    addrs: &[IpAddr],
    ports: &[PortMap],
    seq: u32,
) -> (Vec<u8>, u32, u32) {
    let mut b = Batch::new(seq);
    ports_rules(&mut b, table, addrs, ports);
    b.finish()
}

/// The published ports of one bridged sandbox (in its inet table).
fn ports_rules(b: &mut Batch, table: &str, addrs: &[IpAddr], ports: &[PortMap]) {
    b.table(table, true);
    b.chain(table, "post", Some((POST_ROUTING, 100, "nat", NF_ACCEPT)));
    // Connections to a published port from the host itself come from 127.0.0.0/8: they leave
    // with the bridge's address.
    if let Some(ip4) = addrs.iter().find(|a| a.is_ipv4()) {
        let lo = Cidr {
            addr: IpAddr::from([127, 0, 0, 0]),
            prefix: 8,
        };
        let mut e = in_cidr(&lo, false);
        e.push(addr(ip4, true));
        e.push(eq(addr_bytes(ip4)));
        e.push(Expr::Masq);
        b.rule(table, "post", &e);
    }
    for (chain, hook) in [("pre", PRE_ROUTING), ("out", LOCAL_OUT)] {
        b.chain(table, chain, Some((hook, -100, "nat", NF_ACCEPT)));
        for p in ports {
            for ip in addrs {
                let mut e = nfproto(ip).to_vec();
                match p.host_ip {
                    Some(h) if h.is_ipv4() != ip.is_ipv4() => continue,
                    Some(h) => {
                        e.push(addr(&h, true));
                        e.push(eq(addr_bytes(&h)));
                    }
                    None => {
                        e.push(Expr::Fib);
                        e.push(eq(RTN_LOCAL.to_ne_bytes().to_vec()));
                    }
                }
                e.extend(l4proto(p.proto.number()));
                e.extend(dport(p.host_port));
                e.push(Expr::Load {
                    reg: REG1,
                    data: addr_bytes(ip),
                });
                e.push(Expr::Load {
                    reg: REG2,
                    data: p.ctr_port.to_be_bytes().to_vec(),
                });
                e.push(Expr::Dnat {
                    family: if ip.is_ipv4() {
                        NFPROTO_IPV4
                    } else {
                        NFPROTO_IPV6
                    },
                });
                b.rule(table, chain, &e);
            }
        }
    }
}

/// A gVisor sandbox's router namespace (docs/gvisor.md): per family, what arrives on `outer`
/// for the sandbox's address there goes on to its address behind the inner link, and what it
/// sends out by `outer` leaves as its outer address (masquerade). `pairs`: (outer, inner).
pub fn gvisor_link_table(
    table: &str,
    outer: &str,
    pairs: &[(IpAddr, IpAddr)],
    seq: u32,
) -> (Vec<u8>, u32, u32) {
    let mut b = Batch::new(seq);
    // (It goes with the router's namespace.)
    b.table(table, false);
    b.chain(table, "pre", Some((PRE_ROUTING, -100, "nat", NF_ACCEPT)));
    b.chain(table, "post", Some((POST_ROUTING, 100, "nat", NF_ACCEPT)));
    for (outer_addr, inner) in pairs {
        let family = if inner.is_ipv4() {
            NFPROTO_IPV4
        } else {
            NFPROTO_IPV6
        };
        let mut e = vec![Expr::Meta { key: META_IIFNAME }, eq(ifname(outer))];
        e.extend(nfproto(outer_addr));
        e.push(addr(outer_addr, true));
        e.push(eq(addr_bytes(outer_addr)));
        e.push(Expr::Load {
            reg: REG1,
            data: addr_bytes(inner),
        });
        e.push(Expr::DnatAddr { family });
        b.rule(table, "pre", &e);
        let mut e = vec![Expr::Meta { key: META_OIFNAME }, eq(ifname(outer))];
        e.extend(nfproto(inner));
        e.push(addr(inner, false));
        e.push(eq(addr_bytes(inner)));
        e.push(Expr::Masq);
        b.rule(table, "post", &e);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk netlink messages: (type, length) of each.
    fn messages(b: &[u8]) -> Vec<(u16, usize)> {
        let mut out = vec![];
        let mut i = 0;
        while i + 16 <= b.len() {
            let len = u32::from_ne_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(b[i + 4..i + 6].try_into().unwrap());
            assert!(len >= 20 && i + len <= b.len());
            assert_eq!(len % 4, 0);
            out.push((ty, len));
            i += len;
        }
        assert_eq!(i, b.len());
        out
    }

    #[test]
    fn egress_batch_is_well_formed() {
        let e = EgressConfig {
            allow: vec![Cidr::parse("198.51.100.0/24", "x").unwrap()],
            domains: vec![crate::net::DomainRule::parse("example.com").unwrap()],
            tcp_ports: vec![443],
            udp_ports: vec![],
        };
        let (b, first, last) = egress_batch(&e, 100);
        let m = messages(&b);
        assert_eq!(m.first().unwrap().0, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(m.last().unwrap().0, NFNL_MSG_BATCH_END);
        assert_eq!(first, 101);
        assert_eq!(last as usize, 100 + m.len() - 2);
        // table, 2 sets, 2 chains, 1 port rule, lo, ct, 3 icmpv6, 2 dns, 1 cidr, 2 sets, 2 final.
        assert_eq!(m.len() - 2, 1 + 2 + 2 + 1 + 5 + 2 + 1 + 2 + 2);
        // A gVisor sandbox's router: the same rules on the forward hook (the first one lets
        // what does not come from the link pass), and an input chain for the link: its
        // chain, replies, DNS over UDP and TCP, the TCP reset, the rest refused.
        let (g, _, _) = egress_batch_at(&e, Some("gv0"), 100);
        assert_eq!(messages(&g).len(), m.len() + 1 + 5);
        let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        assert!(has(&g, b"gv0\0") && has(&g, b"input\0"));
        assert!(!has(&b, b"gv0\0") && !has(&b, b"input\0"));
        assert_eq!(egress_batch_at(&e, None, 100).0, b);
    }

    #[test]
    fn gvisor_link_table_forwards_each_family() {
        let pairs: Vec<(IpAddr, IpAddr)> = vec![
            (
                "10.88.0.5".parse().unwrap(),
                "169.254.77.2".parse().unwrap(),
            ),
            (
                "fd00::5".parse().unwrap(),
                "fdff:6e75:636c:7667::2".parse().unwrap(),
            ),
        ];
        let (b, _, _) = gvisor_link_table("nucleus-gv", "eth0", &pairs, 1);
        // table, 2 chains, per family a DNAT and a masquerade.
        assert_eq!(messages(&b).len() - 2, 1 + 2 + 2 * 2);
    }

    #[test]
    fn bridge_and_ports_tables() {
        let subnets = [
            Cidr::parse("10.88.0.0/16", "x").unwrap(),
            Cidr::parse("fd00::/64", "x").unwrap(),
        ];
        let (b, _, _) = bridge_table("nucleus-bridge-nucleus0", "nucleus0", &subnets, 1);
        // table, isolation chain and its rule, nat chain, one masquerade per subnet.
        assert_eq!(messages(&b).len() - 2, 1 + 2 + 1 + 2);
        let g = get_table("t", 5);
        assert_eq!(messages(&g).len(), 1);
    }

    #[test]
    fn ports_table_has_dnat_per_family() {
        let addrs: Vec<IpAddr> = vec!["10.88.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let ports = vec![
            PortMap::parse("8080:80").unwrap(),
            PortMap::parse("127.0.0.1:53:53/udp").unwrap(),
        ];
        let (b, _, _) = ports_table("nucleus-x", &addrs, &ports, 1);
        let m = messages(&b);
        // table, post chain, loopback masq, 2 chains x (2 + 1) rules.
        assert_eq!(m.len() - 2, 1 + 1 + 1 + 2 * (1 + 3));
    }

    #[test]
    fn bridge_guard_keys_are_port_name_then_field() {
        let (b, _, _) = bridge_guard_table("g", "nv12345-", 254, 1);
        // table, 3 sets, chain, 6 rules.
        assert_eq!(messages(&b).len() - 2, 1 + 3 + 1 + 6);
        let addrs: Vec<IpAddr> = vec!["10.88.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let mac = [2, 0x6e, 0x75, 0, 0, 2];
        let (b, first, last) = bridge_guard_elems("g", "nv12345-2", mac, &addrs, 10);
        assert_eq!((first, last), (11, 13));
        // The keys, in order: name (16 bytes, NUL padded) then the field, MAC padded to 8.
        let mut k = b"nv12345-2".to_vec();
        k.resize(16, 0);
        let find = |tail: &[u8]| {
            let mut want = k.clone();
            want.extend_from_slice(tail);
            b.windows(want.len()).any(|w| w == want.as_slice())
        };
        assert!(find(&[2, 0x6e, 0x75, 0, 0, 2, 0, 0]));
        assert!(find(&[10, 88, 0, 2]));
        assert!(find(&addr_bytes(&addrs[1])));
    }
}
