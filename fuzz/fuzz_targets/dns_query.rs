//! A datagram a sandbox sends the runtime's resolver.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nucleus_spec::dns;

fuzz_target!(|data: &[u8]| {
    match dns::parse_query(data) {
        Err(e) => assert!(!e.why.contains('\n')),
        Ok(q) => {
            let addrs = [std::net::Ipv4Addr::new(10, 213, 0, 2)];
            let a = dns::local_answer(&q, &addrs, 2);
            if q.qtype == 1 {
                let back = dns::answers(&a, q.id).expect("our own answer parses");
                assert_eq!(back.len(), 1);
            }
            let _ = dns::refusal(&q);
            let _ = dns::server_failure(&q);
        }
    }
});
