//! Golden tests of compiled artifacts: the BPF programs of the default filter and of Docker's,
//! podman's and a hand-written profile, and the Landlock ruleset and mount list of the default
//! plan. Any change to the compiler or to a policy shows up as a diff of a reviewed text file.
//! Regenerate with `NUCLEUS_UPDATE_GOLDEN=1 cargo test -p nucleus-spec --test golden`.
#![allow(clippy::unwrap_used)]
#![cfg(target_arch = "x86_64")]

use nucleus_spec::host::{EntryKind, HostEntry, HostFacts};
use nucleus_spec::seccomp::profile::{compile as compile_profile, parse, Target};
use nucleus_spec::seccomp::{compile, default::default_filter, SockFilter};
use nucleus_spec::{Plan, RunConfig};
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

fn check(name: &str, text: &str) {
    let path = data(&format!("golden/{name}"));
    if std::env::var_os("NUCLEUS_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "{name} differs from testdata/golden/{name}; review the change and regenerate with NUCLEUS_UPDATE_GOLDEN=1"
    );
}

fn bpf_text(prog: &[SockFilter]) -> String {
    prog.iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "{i:4} code={:#06x} jt={:3} jf={:3} k={:#010x}\n",
                f.code, f.jt, f.jf, f.k
            )
        })
        .collect()
}

#[test]
fn bpf_programs() {
    check(
        "default.bpf",
        &bpf_text(&compile(&default_filter(&[]).unwrap()).unwrap()),
    );
    for (f, out) in [
        ("seccomp/docker-default.json", "docker-default.bpf"),
        (
            "seccomp/podman-containers-common.json",
            "podman-containers-common.bpf",
        ),
    ] {
        let p = parse(&std::fs::read_to_string(data(f)).unwrap()).unwrap();
        let c = compile_profile(&p, &Target::native((6, 1))).unwrap();
        check(out, &bpf_text(&compile(&c.filter).unwrap()));
    }
    let p = parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"flags":["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
        {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
        {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
        {"names":["kill"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":1,"value":9,"op":"SCMP_CMP_GE"},{"index":0,"value":1,"op":"SCMP_CMP_LT"}]}]}"#,
    )
    .unwrap();
    let c = compile_profile(&p, &Target::native((6, 1))).unwrap();
    assert_eq!(c.flags, nucleus_spec::seccomp::FLAG_LOG);
    check("handwritten.bpf", &bpf_text(&compile(&c.filter).unwrap()));
}

#[test]
fn default_plan_ruleset_and_mounts() {
    let facts = HostFacts {
        system_dirs: vec![
            HostEntry {
                path: "usr".into(),
                kind: EntryKind::Dir,
            },
            HostEntry {
                path: "bin".into(),
                kind: EntryKind::Symlink("usr/bin".into()),
            },
            HostEntry {
                path: "lib".into(),
                kind: EntryKind::Symlink("usr/lib".into()),
            },
            HostEntry {
                path: "lib64".into(),
                kind: EntryKind::Symlink("usr/lib64".into()),
            },
        ],
        etc_entries: vec![HostEntry {
            path: "ld.so.cache".into(),
            kind: EntryKind::File,
        }],
        landlock_abi: 7,
        time_ns: true,
        ..Default::default()
    };
    let cfg = RunConfig {
        argv: vec!["true".into()],
        ..Default::default()
    };
    let plan = Plan::build(&cfg, &facts, "0123456789abcdef").unwrap();
    check(
        "default-landlock.json",
        &(serde_json::to_string_pretty(&plan.landlock).unwrap() + "\n"),
    );
    check(
        "default-mounts.json",
        &(serde_json::to_string_pretty(&plan.mounts).unwrap() + "\n"),
    );
}
