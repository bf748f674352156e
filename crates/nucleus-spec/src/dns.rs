//! The few DNS messages the runtime's resolver reads and writes (parsing by `simple-dns`).

use simple_dns::rdata::RData;
use simple_dns::{Packet, PacketFlag, RCODE};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A query as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The queried name, lower case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
}

/// A standard query with exactly one question; anything else is not answered.
pub fn parse_query(b: &[u8]) -> Option<Query> {
    let p = Packet::parse(b).ok()?;
    if p.has_flags(PacketFlag::RESPONSE) || p.questions.len() != 1 {
        return None;
    }
    let q = &p.questions[0];
    Some(Query {
        id: p.id(),
        name: q
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase(),
        qtype: q.qtype.into(),
    })
}

/// The answer for a name that is not allowed: NXDOMAIN, the question echoed, nothing else.
pub fn refusal(query: &[u8]) -> Option<Vec<u8>> {
    let p = Packet::parse(query).ok()?;
    let rd = p.has_flags(PacketFlag::RECURSION_DESIRED);
    let mut r = p.into_reply();
    r.answers.clear();
    r.name_servers.clear();
    r.additional_records.clear();
    *r.rcode_mut() = RCODE::NameError;
    if rd {
        r.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    r.set_flags(PacketFlag::RECURSION_AVAILABLE);
    r.build_bytes_vec().ok()
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
            (p.id, p.name.as_str(), p.qtype),
            (0x1234, "api.example.com", 1)
        );
        let r = refusal(&q).unwrap();
        let rp = Packet::parse(&r).unwrap();
        assert_eq!(rp.rcode(), RCODE::NameError);
        assert_eq!(rp.id(), 0x1234);
        assert_eq!(rp.questions.len(), 1);
        assert!(parse_query(&r).is_none());
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
}
