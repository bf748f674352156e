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
                stamp: 0,
            },
            HostEntry {
                path: "bin".into(),
                kind: EntryKind::Symlink("usr/bin".into()),
                stamp: 0,
            },
            HostEntry {
                path: "lib".into(),
                kind: EntryKind::Symlink("usr/lib".into()),
                stamp: 0,
            },
            HostEntry {
                path: "lib64".into(),
                kind: EntryKind::Symlink("usr/lib64".into()),
                stamp: 0,
            },
        ],
        etc_entries: vec![HostEntry {
            path: "ld.so.cache".into(),
            kind: EntryKind::File,
            stamp: 0,
        }],
        landlock_abi: 7,
        time_ns: true,
        ..Default::default()
    };
    let cfg = RunConfig {
        argv: vec!["true".into()],
        etc_views: Some("/run/nucleus/.etc-views".into()),
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
    // The same plan under gVisor: its bundle's config.json and root skeleton.
    let gcfg = RunConfig {
        runtime: nucleus_spec::gvisor::Runtime::Gvisor,
        runsc: Some("/usr/bin/runsc".into()),
        workspace: Some("/home/u/project".into()),
        ..cfg
    };
    let mut plan = Plan::build(&gcfg, &facts, "0123456789abcdef").unwrap();
    plan.gvisor.as_mut().unwrap().dir = "/run/nucleus/0123456789abcdef/gv".into();
    assert!(plan.landlock.is_none() && plan.seccomp_bpf.is_empty() && !plan.namespaces.user);
    let b = nucleus_spec::gvisor::bundle(&plan).unwrap();
    check(
        "gvisor-config.json",
        &(String::from_utf8(b.config_json()).unwrap() + "\n"),
    );
    check(
        "gvisor-skeleton.json",
        &(serde_json::to_string_pretty(&b.skeleton).unwrap() + "\n"),
    );
}

/// What the rules say for one call: for its syscall, conditional rules before unconditional
/// ones, the first whose conditions all hold; else the default.
fn oracle(f: &nucleus_spec::seccomp::Filter, nr: u32, args: [u64; 6]) -> u32 {
    use nucleus_spec::seccomp::{ArgWidth, CmpOp};
    let mut rules: Vec<_> = f.rules.iter().filter(|r| r.nr == nr).collect();
    rules.sort_by_key(|r| r.conds.is_empty());
    for r in rules {
        let holds = r.conds.iter().all(|c| {
            let (a, v) = match c.width {
                ArgWidth::U32 => (args[c.index as usize] & 0xffff_ffff, c.value & 0xffff_ffff),
                ArgWidth::U64 => (args[c.index as usize], c.value),
            };
            match c.op {
                CmpOp::Eq => a == v,
                CmpOp::Ne => a != v,
                CmpOp::Lt => a < v,
                CmpOp::Le => a <= v,
                CmpOp::Gt => a > v,
                CmpOp::Ge => a >= v,
                CmpOp::MaskedEq(m) => a & m == v,
            }
        });
        if holds {
            return r.action.ret_value();
        }
    }
    f.default_action.ret_value()
}

/// The compiled programs (a binary search over syscall numbers) decide every call exactly as
/// the rules do: every number up to 1099 and a few beyond, arguments from the rules' own values (and their
/// neighbours) and from a pseudo-random sequence; x32 numbers and foreign architectures too.
#[test]
fn compiled_programs_decide_as_the_rules_say() {
    use nucleus_spec::seccomp::bpf::{interpret, AUDIT_ARCH_X86_64};
    let mut filters = vec![default_filter(&[]).unwrap()];
    for f in [
        "seccomp/docker-default.json",
        "seccomp/podman-containers-common.json",
    ] {
        let p = parse(&std::fs::read_to_string(data(f)).unwrap()).unwrap();
        filters.push(compile_profile(&p, &Target::native((6, 1))).unwrap().filter);
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for f in &filters {
        let prog = compile(f).unwrap();
        let mut values: Vec<u64> = vec![0, 1, u64::MAX, 0xffff_ffff];
        for r in &f.rules {
            for c in &r.conds {
                values.extend([c.value, c.value.wrapping_add(1), c.value.wrapping_sub(1)]);
                if let nucleus_spec::seccomp::CmpOp::MaskedEq(m) = c.op {
                    values.extend([m, c.value | !m, c.value | (1 << 63)]);
                }
            }
        }
        values.sort_unstable();
        values.dedup();
        let numbers = (0..1100u32).chain([4096, 0xffff, 0x3fff_ffff]);
        for nr in numbers {
            // The kernel's action cache (seccomp_cache_prepare) emulates the program once per
            // number with only the number and the architecture known, and skips the filter for
            // numbers it finds always allowed: every unconditionally allowed syscall must be
            // such a number, or each of its calls pays for running the filter.
            let unconditional = f
                .rules
                .iter()
                .filter(|r| r.nr == nr)
                .all(|r| r.conds.is_empty());
            let allowed = oracle(f, nr, [0; 6]) == 0x7fff_0000;
            assert_eq!(
                kernel_const_allow(&prog, nr),
                unconditional && allowed,
                "action cache for syscall {nr}"
            );
            let mut cases: Vec<[u64; 6]> = values.iter().map(|v| [*v; 6]).collect();
            for _ in 0..8 {
                cases.push([next(), next(), next(), next(), next(), next()]);
            }
            for args in cases {
                assert_eq!(
                    interpret(&prog, AUDIT_ARCH_X86_64, nr, args),
                    oracle(f, nr, args),
                    "syscall {nr} args {args:x?}"
                );
            }
        }
        // x32 numbers are refused with ENOSYS; another architecture kills.
        assert_eq!(
            interpret(&prog, AUDIT_ARCH_X86_64, 0x4000_0000, [0; 6]),
            0x0005_0026
        );
        assert_eq!(interpret(&prog, 0x4000_0003, 1, [0; 6]), 0x8000_0000);
    }
}

/// The kernel's seccomp_is_const_allow (kernel/seccomp.c): whether the program allows `nr` on
/// x86-64 whatever the arguments, looking only at the number and the architecture.
fn kernel_const_allow(prog: &[SockFilter], nr: u32) -> bool {
    use nucleus_spec::seccomp::bpf::AUDIT_ARCH_X86_64;
    const LD_W_ABS: u16 = 0x20;
    const JA: u16 = 0x05;
    const JEQ_K: u16 = 0x15;
    const JGT_K: u16 = 0x25;
    const JGE_K: u16 = 0x35;
    const JSET_K: u16 = 0x45;
    const AND_K: u16 = 0x54;
    const RET_K: u16 = 0x06;
    let mut a = 0u32;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        match i.code {
            LD_W_ABS => match i.k {
                0 => a = nr,
                4 => a = AUDIT_ARCH_X86_64,
                _ => return false,
            },
            RET_K => return i.k == 0x7fff_0000,
            JA => pc += i.k as usize,
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                let taken = match i.code {
                    JEQ_K => a == i.k,
                    JGT_K => a > i.k,
                    JGE_K => a >= i.k,
                    _ => a & i.k != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            AND_K => a &= i.k,
            _ => return false,
        }
        pc += 1;
    }
    false
}

/// The Plans of OCI configs as real clients write them: runc's `spec` default, Docker 20.10's
/// and podman 4.3's (captured from `docker run` and `podman run` with nucleus as the runtime,
/// `--memory 64m --pids-limit 33`), on a fixed cgroup-v1 host.
#[test]
fn oci_plans_of_runc_docker_and_podman_configs() {
    use nucleus_spec::cgroup::{CgroupHost, V1Hierarchy};
    let v1 = |c: &str| V1Hierarchy {
        controller: c.into(),
        mount: PathBuf::from(format!("/sys/fs/cgroup/{c}")),
        own: "/ci".into(),
        has_memsw: true,
    };
    let facts = HostFacts {
        cgroup: CgroupHost {
            v2_mount: None,
            v2_controllers: vec![],
            v2_own: None,
            v1: ["memory", "pids", "devices", "cpu", "blkio", "freezer"]
                .into_iter()
                .map(v1)
                .collect(),
        },
        kernel: (6, 18),
        cpus: 2,
        ..Default::default()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oci");
    for name in ["runc-spec", "docker-20.10-config", "podman-4.3-config"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
        let bundle = nucleus_spec::oci::parse(&text).unwrap();
        let plan = nucleus_spec::oci::plan(
            &bundle,
            &nucleus_spec::oci::Context {
                id: "c1",
                bundle: Path::new("/bundle"),
                fifo: "/run/nucleus/c1/exec.fifo".into(),
                no_pivot: false,
                systemd_cgroup: false,
                rootless: false,
                facts: &facts,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut v = serde_json::to_value(&plan).unwrap();
        // The compiled filters have their own golden files (bpf_programs): their size here.
        for k in ["seccomp_bpf", "init_seccomp_bpf"] {
            if let Some(s) = v[k].as_str() {
                v[k] = format!("<{} instructions>", s.len() / 16).into();
            }
        }
        check(
            &format!("oci-{name}.plan.json"),
            &(serde_json::to_string_pretty(&v).unwrap() + "\n"),
        );
    }
}
