//! Fuzzing the three policy parsers (seccomp profiles, caps policies, Landlock policies) with
//! proptest: any input gives a value or an error of one line, never a panic; a profile that
//! compiles also compiles to BPF, and the program answers every syscall without panicking.
#![allow(clippy::unwrap_used)]

use nucleus_spec::policy::{parse_caps, parse_landlock};
use nucleus_spec::seccomp::bpf::{compile, interpret, native_arch};
use nucleus_spec::seccomp::profile::{compile as compile_profile, parse, Target};
use proptest::prelude::*;

fn docker() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/seccomp/docker-default.json"),
    )
    .unwrap()
}

fn one_line(e: &str) {
    assert!(!e.contains('\n'), "multi-line error: {e}");
}

fn check_profile(text: &str, nr: u32, args: [u64; 6]) {
    match parse(text) {
        Err(e) => one_line(&e.0),
        Ok(p) => match compile_profile(&p, &Target::native((6, 1))) {
            Err(e) => one_line(&e.0),
            Ok(c) => {
                let prog = compile(&c.filter).unwrap();
                let _ = interpret(&prog, native_arch(), nr, args);
            }
        },
    }
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SCMP_ACT_ALLOW".to_string()),
        Just("SCMP_ACT_ERRNO".to_string()),
        Just("SCMP_ACT_KILL_PROCESS".to_string()),
        Just("SCMP_ACT_LOG".to_string()),
        Just("SCMP_ACT_TRAP".to_string()),
        Just("SCMP_ACT_TRACE".to_string()),
        "[A-Z_]{0,20}",
    ]
}

fn op() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SCMP_CMP_EQ".to_string()),
        Just("SCMP_CMP_NE".to_string()),
        Just("SCMP_CMP_LT".to_string()),
        Just("SCMP_CMP_LE".to_string()),
        Just("SCMP_CMP_GT".to_string()),
        Just("SCMP_CMP_GE".to_string()),
        Just("SCMP_CMP_MASKED_EQ".to_string()),
        "[A-Z_]{0,12}",
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("read".to_string()),
        Just("clone".to_string()),
        Just("socket".to_string()),
        Just("mmap2".to_string()),
        "[a-z_0-9]{1,16}",
    ]
}

prop_compose! {
    fn rule()(names in prop::collection::vec(name(), 0..4), act in action(),
              errno in prop::option::of(0u32..70000),
              args in prop::collection::vec((0u32..8, any::<u64>(), any::<u64>(), op()), 0..4))
              -> serde_json::Value {
        let args: Vec<_> = args.into_iter().map(|(i, v, v2, o)| serde_json::json!(
            {"index": i, "value": v, "valueTwo": v2, "op": o})).collect();
        let mut r = serde_json::json!({"names": names, "action": act, "args": args});
        if let Some(e) = errno { r["errnoRet"] = e.into(); }
        r
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn seccomp_any_text(s in "\\PC{0,300}", nr in 0u32..500, a in any::<[u64; 6]>()) {
        check_profile(&s, nr, a);
    }

    #[test]
    fn seccomp_mutated_docker_profile(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                                      nr in 0u32..500, a in any::<[u64; 6]>()) {
        let mut b = docker().into_bytes();
        for (i, v) in edits {
            let at = i.index(b.len());
            b[at] = v;
        }
        check_profile(&String::from_utf8_lossy(&b), nr, a);
    }

    #[test]
    fn seccomp_structured(def in action(), rules in prop::collection::vec(rule(), 0..12),
                          nr in 0u32..500, a in any::<[u64; 6]>()) {
        let p = serde_json::json!({"defaultAction": def, "syscalls": rules});
        check_profile(&p.to_string(), nr, a);
    }

    #[test]
    fn caps_any_text(s in "\\PC{0,200}") {
        if let Err(e) = parse_caps("--caps-policy", &s) { one_line(&e.to_string()); }
    }

    #[test]
    fn caps_structured(lists in prop::collection::vec(prop::collection::vec(
        prop_oneof![Just("CHOWN".to_string()), Just("cap_sys_admin".to_string()), "[A-Za-z_]{0,12}"], 0..5), 5)) {
        let keys = ["bounding", "effective", "permitted", "inheritable", "ambient"];
        let text: String = keys.iter().zip(&lists)
            .map(|(k, l)| format!("{k} = {}\n", serde_json::to_string(l).unwrap())).collect();
        if let Err(e) = parse_caps("--caps-policy", &text) { one_line(&e.to_string()); }
    }

    #[test]
    fn landlock_any_text(s in "\\PC{0,200}") {
        if let Err(e) = parse_landlock("--landlock-policy", &s) { one_line(&e.to_string()); }
    }

    #[test]
    fn landlock_structured(abi in 0u32..12, rules in prop::collection::vec(
        ("/?[a-z/]{0,10}", prop::collection::vec(prop_oneof![Just("read_file"), Just("execute"), Just("fly")], 0..3),
         prop_oneof![Just("error"), Just("skip"), Just("maybe")]), 0..4)) {
        let mut text = format!("min_abi = {abi}\n");
        for (p, r, m) in rules {
            text.push_str(&format!("[[rule]]\npath = {p:?}\nrights = {}\nmissing = {m:?}\n", serde_json::to_string(&r).unwrap()));
        }
        if let Err(e) = parse_landlock("--landlock-policy", &text) { one_line(&e.to_string()); }
    }
}
