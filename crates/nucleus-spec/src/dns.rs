//! The few DNS messages the runtime's resolver reads and writes (parsing by `simple-dns`).

use simple_dns::rdata::RData;
use simple_dns::{Packet, PacketFlag};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A query as the resolver forwards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The queried name's wire labels, lower case. Each is 1-63 bytes of letters, digits,
    /// '-' and '_' (checked), so joining them with '.' is unambiguous.
    pub labels: Vec<String>,
    pub qtype: u16,
    /// The message sent upstream, rebuilt by the resolver: the header (id, recursion desired),
    /// this one question as the client spelled it, and nothing else (no other records, no EDNS
    /// options, whatever the client sent).
    pub wire: Vec<u8>,
}

impl Query {
    /// The name in text form, lower case, without the trailing dot.
    pub fn name(&self) -> String {
        self.labels.join(".")
    }
}

/// Question types the resolver forwards: A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, SVCB,
/// HTTPS. Zone transfers, ANY, NULL and the rest are refused.
pub const FORWARDED_TYPES: &[u16] = &[1, 2, 5, 6, 12, 15, 16, 28, 33, 64, 65];

/// Why a message from the sandbox is not forwarded, with the answer it gets (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotForwarded {
    /// For the runtime's report, escaped (no control characters).
    pub why: String,
    /// REFUSED with no question (None: not a query at all; nothing is answered).
    pub reply: Option<Vec<u8>>,
}

const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;

/// Read a query from the sandbox: a standard query (opcode 0, not a response) with exactly one
/// question of a forwarded type and class IN, no answer or authority records, at most one
/// additional record (the client's EDNS OPT, dropped), and a name whose labels are hostname
/// labels (no compression, no dots or other bytes inside a label). Anything else is refused.
pub fn parse_query(b: &[u8]) -> Result<Query, NotForwarded> {
    let drop = |why: &str| NotForwarded {
        why: why.to_string(),
        reply: None,
    };
    if b.len() < 12 {
        return Err(drop("short message"));
    }
    let id = u16::from_be_bytes([b[0], b[1]]);
    let (f1, f2) = (b[2], b[3]);
    let rd = f1 & 0x01 != 0;
    let refuse = |why: String| NotForwarded {
        why,
        reply: Some(reply(id, f1 & 0x78, rd, RCODE_REFUSED, None)),
    };
    if f1 & 0x80 != 0 {
        return Err(drop("a response, not a query"));
    }
    let opcode = (f1 >> 3) & 0x0f;
    if opcode != 0 {
        return Err(refuse(format!("opcode {opcode}")));
    }
    let _ = f2;
    let count = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return Err(refuse(format!(
            "sections {qd}/{an}/{ns}/{ar} (one question and nothing else)"
        )));
    }
    let mut i = 12;
    let mut labels = Vec::new();
    let mut raw_len = 0usize;
    loop {
        let Some(&len) = b.get(i) else {
            return Err(refuse("truncated name".into()));
        };
        let len = usize::from(len);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Err(refuse("compressed or over-long label".into()));
        }
        let Some(l) = b.get(i..i + len) else {
            return Err(refuse("truncated name".into()));
        };
        raw_len += len + 1;
        if raw_len > 254 {
            return Err(refuse("name longer than 253 bytes".into()));
        }
        if !l
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return Err(refuse(format!(
                "name with a label that is not a hostname label: {}",
                escape_label(l)
            )));
        }
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        i += len;
    }
    if labels.is_empty() {
        return Err(refuse("the root name".into()));
    }
    let Some(tc) = b.get(i..i + 4) else {
        return Err(refuse("truncated question".into()));
    };
    let qtype = u16::from_be_bytes([tc[0], tc[1]]);
    let qclass = u16::from_be_bytes([tc[2], tc[3]]);
    if qclass != 1 || !FORWARDED_TYPES.contains(&qtype) {
        return Err(refuse(format!(
            "question type {qtype} class {qclass} for {}",
            labels.join(".")
        )));
    }
    let question = &b[12..i + 4];
    Ok(Query {
        id,
        labels,
        qtype,
        wire: query_wire(id, rd, question),
    })
}

fn query_wire(id: u16, rd: bool, question: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(12 + question.len());
    w.extend_from_slice(&id.to_be_bytes());
    w.push(if rd { 0x01 } else { 0x00 });
    w.push(0);
    w.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    w.extend_from_slice(question);
    w
}

/// A reply with this id and rcode, echoing `question` (the question section's bytes) if given.
fn reply(id: u16, opcode_bits: u8, rd: bool, rcode: u8, question: Option<&[u8]>) -> Vec<u8> {
    let mut w = Vec::with_capacity(12 + question.map_or(0, |q| q.len()));
    w.extend_from_slice(&id.to_be_bytes());
    w.push(0x80 | opcode_bits | u8::from(rd));
    w.push(0x80 | rcode); // recursion available
    w.extend_from_slice(&[0, u8::from(question.is_some()), 0, 0, 0, 0, 0, 0]);
    if let Some(q) = question {
        w.extend_from_slice(q);
    }
    w
}

/// A label's bytes for a log line: printable ASCII as it is (backslash and dot escaped),
/// anything else as \xNN.
fn escape_label(l: &[u8]) -> String {
    let mut s = String::new();
    for &c in l {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'.' => s.push_str("\\."),
            0x21..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// The answer for a name that is not allowed: NXDOMAIN, the question echoed, nothing else.
pub fn refusal(q: &Query) -> Vec<u8> {
    reply(
        q.id,
        0,
        q.wire[2] & 0x01 != 0,
        RCODE_NXDOMAIN,
        Some(&q.wire[12..]),
    )
}

/// The answer when no upstream answered (all down or too slow): SERVFAIL, the question
/// echoed, so the sandbox's resolver library fails at once instead of after its own retries.
pub fn server_failure(q: &Query) -> Vec<u8> {
    reply(
        q.id,
        0,
        q.wire[2] & 0x01 != 0,
        RCODE_SERVFAIL,
        Some(&q.wire[12..]),
    )
}

/// The resolver's own answer for a name it knows (compose's service names): authoritative,
/// the question echoed, one A record per address for an A question (none for other types:
/// the name exists, with no data of that type), each with `ttl` seconds; the first 16.
pub fn local_answer(q: &Query, addrs: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut w = reply(q.id, 0x04, q.wire[2] & 0x01 != 0, 0, Some(&q.wire[12..]));
    // At most 16: with a service name's question that stays within a 512-byte UDP answer.
    let n = if q.qtype == 1 { addrs.len().min(16) } else { 0 };
    w[6..8].copy_from_slice(&(n as u16).to_be_bytes());
    for a in addrs.iter().take(n) {
        // The name: a pointer to the question's (offset 12).
        w.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        w.extend_from_slice(&ttl.to_be_bytes());
        w.extend_from_slice(&[0, 4]);
        w.extend_from_slice(&a.octets());
    }
    w
}

/// The addresses an upstream response with this id carries in its answer section, with
/// their TTLs (seconds). None when it is not a response to that query.
pub fn answers(b: &[u8], id: u16) -> Option<Vec<(IpAddr, u32)>> {
    let p = Packet::parse(b).ok()?;
    if !p.has_flags(PacketFlag::RESPONSE) || p.id() != id {
        return None;
    }
    Some(
        p.answers
            .iter()
            .filter_map(|rr| match &rr.rdata {
                RData::A(a) => Some((IpAddr::V4(Ipv4Addr::from(a.address)), rr.ttl)),
                RData::AAAA(a) => Some((IpAddr::V6(Ipv6Addr::from(a.address)), rr.ttl)),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod local_tests {
    use super::*;

    #[test]
    fn a_local_answer_parses_as_the_question_s_answer() {
        // A query for "db", type A, recursion desired.
        let mut q = vec![
            0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'd', b'b', 0, 0, 1, 0, 1,
        ];
        let query = parse_query(&q).unwrap();
        let a = local_answer(
            &query,
            &[Ipv4Addr::new(10, 213, 1, 5), Ipv4Addr::new(10, 213, 1, 6)],
            5,
        );
        let got = answers(&a, 0x1234).unwrap();
        assert_eq!(
            got,
            vec![
                (IpAddr::V4(Ipv4Addr::new(10, 213, 1, 5)), 5),
                (IpAddr::V4(Ipv4Addr::new(10, 213, 1, 6)), 5)
            ]
        );
        let p = Packet::parse(&a).unwrap();
        assert!(p.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));
        // AAAA: the name, no data.
        q[17] = 28;
        let query = parse_query(&q).unwrap();
        assert_eq!(
            answers(&local_answer(&query, &[Ipv4Addr::LOCALHOST], 5), 0x1234).unwrap(),
            vec![]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::rdata::{A, AAAA};
    use simple_dns::{Name, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};

    fn query(name: &str) -> Vec<u8> {
        let mut p = Packet::new_query(0x1234);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    #[test]
    fn query_refusal_and_answers() {
        let q = query("Api.Example.COM");
        let p = parse_query(&q).unwrap();
        assert_eq!(
            (p.id, p.name().as_str(), p.qtype),
            (0x1234, "api.example.com", 1)
        );
        assert_eq!(p.labels, ["api", "example", "com"]);
        // Rebuilt as sent: the same message here (one question, RD, nothing else).
        assert_eq!(p.wire, q);
        let r = refusal(&p);
        let rp = Packet::parse(&r).unwrap();
        assert_eq!(rp.rcode(), simple_dns::RCODE::NameError);
        assert_eq!(rp.id(), 0x1234);
        assert_eq!(rp.questions.len(), 1);
        assert_eq!(rp.questions[0].qname.to_string(), "Api.Example.COM");
        assert!(parse_query(&r).is_err());
        let sf = server_failure(&p);
        let f = Packet::parse(&sf).unwrap();
        assert_eq!(f.rcode(), simple_dns::RCODE::ServerFailure);
        assert_eq!((f.id(), f.questions.len()), (0x1234, 1));
        let mut a = Packet::parse(&q).unwrap().into_reply();
        a.answers.push(ResourceRecord::new(
            Name::new_unchecked("api.example.com"),
            CLASS::IN,
            30,
            RData::A(A {
                address: 0xc6336407,
            }),
        ));
        a.answers.push(ResourceRecord::new(
            Name::new_unchecked("api.example.com"),
            CLASS::IN,
            60,
            RData::AAAA(AAAA { address: 1 }),
        ));
        let b = a.build_bytes_vec_compressed().unwrap();
        let got = answers(&b, 0x1234).unwrap();
        assert_eq!(got[0], ("198.51.100.7".parse().unwrap(), 30));
        assert_eq!(got[1], ("::1".parse().unwrap(), 60));
        assert!(answers(&b, 0x9999).is_none());
        assert!(answers(b"\x01", 0).is_none());
    }

    fn refused(b: &[u8]) -> String {
        let e = parse_query(b).unwrap_err();
        let r = e.reply.expect("a REFUSED reply");
        assert_eq!(
            Packet::parse(&r).unwrap().rcode(),
            simple_dns::RCODE::Refused
        );
        e.why
    }

    /// Wire labels [x.corp, example, com] read as text match *.corp.example.com; they are
    /// refused, and so is any byte that cannot be in a hostname label (a newline included,
    /// which must not reach a log line raw).
    #[test]
    fn labels_with_dots_or_control_bytes_are_refused() {
        let mut q = query("a.example.com");
        // a -> "x.corp" as one label: rebuild the question by hand.
        let mut m = q[..12].to_vec();
        for l in [&b"x.corp"[..], b"example", b"com"] {
            m.push(l.len() as u8);
            m.extend_from_slice(l);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(refused(&m).contains("x\\.corp"), "{}", refused(&m));
        let mut n = q[..12].to_vec();
        n.extend_from_slice(b"\x10evil\nnucleus\x07example\x03com\x00\x00\x01\x00\x01");
        let why = refused(&n);
        assert!(!why.contains('\n') && why.contains("\\x0a"), "{why}");
        // A compression pointer in a query's name.
        q.truncate(12);
        q.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        refused(&q);
    }

    /// Only standard queries with one question of a forwarded type, and nothing else, are
    /// forwarded; the client's EDNS record (options and all) is not.
    #[test]
    fn only_plain_standard_queries_are_forwarded() {
        let base = query("api.example.com");
        let mut upd = base.clone();
        upd[2] |= 5 << 3; // UPDATE
        assert!(refused(&upd).contains("opcode 5"));
        let mut p = Packet::parse(&base).unwrap();
        p.answers.push(ResourceRecord::new(
            Name::new_unchecked("api.example.com"),
            CLASS::IN,
            30,
            RData::A(A { address: 1 }),
        ));
        refused(&p.build_bytes_vec().unwrap());
        let mut any = Packet::parse(&base).unwrap();
        any.questions[0].qtype = QTYPE::ANY;
        assert!(refused(&any.build_bytes_vec().unwrap()).contains("type 255"));
        let mut two = Packet::parse(&base).unwrap();
        two.questions.push(two.questions[0].clone());
        refused(&two.build_bytes_vec().unwrap());
        // EDNS with an option carrying a payload: forwarded without it.
        let mut edns = base.clone();
        edns[11] = 1;
        edns.extend_from_slice(&[
            0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 8, 0, 10, 0, 4, 1, 2, 3, 4,
        ]);
        let fq = parse_query(&edns).unwrap();
        assert_eq!(fq.wire, base);
        // A response is dropped without an answer.
        let mut resp = base.clone();
        resp[2] |= 0x80;
        assert!(parse_query(&resp).unwrap_err().reply.is_none());
    }
}
