//! Fuzzing every parser that reads what a sandbox, a client or a user hands the runtime
//! (issue #25), with proptest: arbitrary bytes and mutations of valid inputs. No input makes
//! one panic; errors are one line; and where a parser has an inverse, the round trip holds.
//!
//! - DNS queries a sandbox sends the runtime's resolver, and the upstream answers it reads;
//! - the names file compose writes (read at every query);
//! - the monitor's report lines to its launcher;
//! - MCP messages from a client (one JSON-RPC line each);
//! - compose topologies, OCI config.json (parsed and planned), OCI mount options;
//! - durations, sizes and container paths of the command line and launch configs.
#![allow(clippy::unwrap_used)]

use nucleus_spec::{compose, config, dns, mcp, net, oci, state};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

fn one_line(e: &str) {
    assert!(!e.contains('\n'), "multi-line error: {e:?}");
}

/// A well-formed query for `name` (type A, recursion desired).
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.').filter(|l| !l.is_empty()) {
        b.push(l.len() as u8);
        b.extend_from_slice(l.as_bytes());
    }
    b.push(0);
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&[0, 1]);
    b
}

fn mutate(mut b: Vec<u8>, edits: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    for (i, v) in edits {
        if b.is_empty() {
            break;
        }
        let i = i.index(b.len());
        b[i] = *v;
    }
    b
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,20}"
}

const TOPOLOGY: &str = r#"
name = "shop"
[network.default]
subnet = "10.89.1.0/24"
[network.back]
[volume.pgdata]
owner = "999:999"
[secret.dbpass]
file = "secrets/dbpass.txt"
[service.db]
networks = ["back"]
user = "999"
command = ["postgres", "-D", "/var/lib/postgresql/data"]
volume = ["pgdata:/var/lib/postgresql/data"]
secrets = ["dbpass"]
health_cmd = "pg_isready -h 127.0.0.1"
[service.app]
networks = ["default", "back"]
depends_on = { db = "healthy" }
command = ["python3", "/app/server.py"]
publish = ["8080:8000"]
[service.worker]
depends_on = ["db"]
replicas = 2
command = ["python3", "/app/worker.py"]
"#;

fn oci_example(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/oci")
            .join(name),
    )
    .unwrap()
}

fn plan_oci(text: &str) {
    let facts = nucleus_spec::host::HostFacts {
        kernel: (6, 18),
        cpus: 2,
        ..Default::default()
    };
    match oci::parse(text) {
        Err(e) => one_line(&e.to_string()),
        Ok(b) => {
            let cx = oci::Context {
                id: "c1",
                bundle: std::path::Path::new("/b"),
                fifo: "/run/nucleus/c1/exec.fifo".into(),
                no_pivot: false,
                systemd_cgroup: false,
                rootless: false,
                facts: &facts,
            };
            if let Err(e) = oci::plan(&b, &cx) {
                one_line(&e.to_string());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any datagram a sandbox sends the resolver: a query, a refusal, or nothing; never a
    /// panic. A query that parses is rebuilt as one question with its labels, and the
    /// resolver's own answer to it reads back as the addresses it gave.
    #[test]
    fn dns_queries_from_a_sandbox(b in prop::collection::vec(any::<u8>(), 0..600)) {
        match dns::parse_query(&b) {
            Err(e) => one_line(&e.why),
            Ok(q) => {
                prop_assert!(q.labels.iter().all(|l| !l.is_empty() && l.len() <= 63));
                let r = dns::refusal(&q);
                prop_assert!(r.len() >= 12);
            }
        }
    }

    #[test]
    fn dns_queries_mutated(labels in prop::collection::vec(label(), 1..5), id in any::<u16>(),
                           qtype in prop_oneof![Just(1u16), Just(28u16), any::<u16>()],
                           edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
                           addrs in prop::collection::vec(any::<[u8; 4]>(), 0..6)) {
        let name = labels.join(".");
        let b = mutate(query(id, &name, qtype), &edits);
        if let Ok(q) = dns::parse_query(&b) {
            let addrs: Vec<Ipv4Addr> = addrs.into_iter().map(Ipv4Addr::from).collect();
            let answer = dns::local_answer(&q, &addrs, 2);
            let back = dns::answers(&answer, q.id).unwrap_or_default();
            if q.qtype == 1 {
                let got: Vec<IpAddr> = back.iter().map(|(a, _)| *a).collect();
                let want: Vec<IpAddr> = addrs.iter().map(|a| IpAddr::V4(*a)).collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    /// Whatever an upstream server answers: addresses or None, never a panic.
    #[test]
    fn dns_answers_from_upstream(b in prop::collection::vec(any::<u8>(), 0..700), id in any::<u16>()) {
        let _ = dns::answers(&b, id);
    }

    #[test]
    fn dns_answers_mutated(labels in prop::collection::vec(label(), 1..4), id in any::<u16>(),
                           addrs in prop::collection::vec(any::<[u8; 4]>(), 1..5),
                           edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let q = dns::parse_query(&query(id, &labels.join("."), 1)).unwrap();
        let addrs: Vec<Ipv4Addr> = addrs.into_iter().map(Ipv4Addr::from).collect();
        let b = mutate(dns::local_answer(&q, &addrs, 60), &edits);
        let _ = dns::answers(&b, id);
    }

    /// The names file (compose's, read at every query).
    #[test]
    fn names_files(text in "\\PC{0,200}", name in "\\PC{0,20}") {
        let _ = net::names_lookup(&text, &name);
    }

    /// The monitor's lines to its launcher: anything parses to a report or nothing; a report
    /// encodes to one line that parses back to itself.
    #[test]
    fn monitor_reports(line in "\\PC{0,120}", code in any::<u8>(), msg in "\\PC{0,80}", ns in any::<u64>()) {
        let _ = state::MonitorReport::parse(&line);
        for r in [
            state::MonitorReport::Error { code, msg: config::single_line(&msg) },
            state::MonitorReport::Warn(config::single_line(&msg)),
            state::MonitorReport::Created(ns),
            state::MonitorReport::Ok,
        ] {
            let e = r.encode();
            one_line(&e);
            prop_assert_eq!(state::MonitorReport::parse(&e), Some(r));
        }
    }

    /// A sandbox record as the store holds it (state.json, replaced whole by its monitor):
    /// mutated, it is read or refused, and a read one answers `effective` and `oci`.
    #[test]
    fn state_records(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                     alive in any::<bool>()) {
        let rec = state::State::new("0123456789abcdef", Some("web".into()), vec!["sleep".into(), "1".into()], 1_700_000_000_000);
        let b = mutate(serde_json::to_vec(&rec).unwrap(), &edits);
        if let Ok(s) = serde_json::from_slice::<state::State>(&b) {
            let (st, _) = s.effective(alive);
            let _ = s.oci(st, "/b");
        }
    }

    /// A client's MCP lines: a message or a JSON-RPC error, whose response is one line of
    /// JSON.
    #[test]
    fn mcp_lines(line in "\\PC{0,300}") {
        if let Err((id, e)) = mcp::parse(&line) {
            let r = mcp::response(&id, Err(e));
            one_line(&r);
            prop_assert!(serde_json::from_str::<serde_json::Value>(&r).is_ok());
        }
    }

    #[test]
    fn mcp_structured(id in prop_oneof![Just(serde_json::json!(1)), Just(serde_json::json!("a")),
                                        Just(serde_json::Value::Null), Just(serde_json::json!([1]))],
                      method in prop_oneof![Just("initialize".to_string()), Just("tools/call".to_string()),
                                            Just("tools/list".to_string()), "\\PC{0,20}"],
                      params in prop_oneof![Just(serde_json::Value::Null), Just(serde_json::json!({})),
                                            Just(serde_json::json!({"name": "run_command", "arguments": {"command": "x"}})),
                                            Just(serde_json::json!([1, 2]))],
                      version in prop_oneof![Just("2.0"), Just("1.0"), Just("")]) {
        let line = serde_json::json!({"jsonrpc": version, "id": id, "method": method, "params": params}).to_string();
        if let Err((id, e)) = mcp::parse(&line) {
            one_line(&mcp::response(&id, Err(e)));
        }
    }

    /// A topology file: a topology or problems of one line each.
    #[test]
    fn compose_any_text(text in "\\PC{0,400}") {
        if let Err(ps) = compose::parse(&text) {
            for p in ps { one_line(&p.to_string()); }
        }
    }

    #[test]
    fn compose_mutated(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let b = mutate(TOPOLOGY.as_bytes().to_vec(), &edits);
        let text = String::from_utf8_lossy(&b);
        match compose::parse(&text) {
            Err(ps) => for p in ps { one_line(&p.to_string()); },
            Ok(t) => { let _ = compose::waves(&t); }
        }
    }

    /// OCI config.json, parsed and planned: a plan or one line naming the field.
    #[test]
    fn oci_any_text(text in "\\PC{0,300}") {
        plan_oci(&text);
    }

    #[test]
    fn oci_mutated(which in 0usize..5,
                   edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let name = ["crun-spec.json", "docker-20.10-config.json", "minimal.json",
                    "podman-4.3-config.json", "runc-spec.json"][which];
        let b = mutate(oci_example(name).into_bytes(), &edits);
        plan_oci(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn oci_mount_options(opts in prop::collection::vec(prop_oneof![
            Just("ro".to_string()), Just("rbind".to_string()), Just("idmap".to_string()),
            Just("nosuid".to_string()), Just("tmpcopyup".to_string()), "\\PC{0,24}"], 0..8)) {
        if let Err(e) = oci::options::parse(&opts) { one_line(&e); }
    }

    /// The small grammars of flags and launch-config keys.
    #[test]
    fn durations_sizes_paths(s in "\\PC{0,40}") {
        for r in [
            config::parse_duration_ms("--x", &s).map(|_| ()),
            config::parse_size("--x", &s).map(|_| ()),
            config::container_path("--x", &s).map(|_| ()),
        ] {
            if let Err(e) = r { one_line(&e.to_string()); }
        }
    }
}
