//! Policy as code, end to end: OCI seccomp profiles (Docker's and podman's published defaults
//! among them) give each syscall exactly the configured action inside a real sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use std::path::PathBuf;

fn profile(name: &str, json: &str) -> (TempDir, PathBuf) {
    let d = TempDir::new(&format!("profile-{name}"));
    let p = d.0.join("profile.json");
    std::fs::write(&p, json).unwrap();
    (d, p)
}

fn published(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../nucleus-spec/testdata/seccomp")
        .join(name)
        .display()
        .to_string()
}

/// Run python3 code in a sandbox under the profile; (exit code, stdout).
fn py(profile: &str, code: &str) -> (i32, String) {
    let o = run(&[
        "run",
        "--seccomp-profile",
        profile,
        "--",
        "python3",
        "-c",
        code,
    ]);
    (o.status.code().unwrap_or(-1), stdout(&o).trim().to_string())
}

const SYSCALL: &str = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n";

#[test]
fn each_action_is_applied_exactly() {
    let _g = serial();
    let (_d, p) = profile(
        "actions",
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
          "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_TSYNC"],
          "syscalls":[
          {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":42},
          {"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"},
          {"names":["getpgid"],"action":"SCMP_ACT_TRAP"},
          {"names":["getsid"],"action":"SCMP_ACT_LOG"},
          {"names":["getpriority"],"action":"SCMP_ACT_ERRNO"},
          {"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,
           "args":[{"index":0,"value":10,"op":"SCMP_CMP_EQ"}]},
          {"names":["kill"],"action":"SCMP_ACT_ERRNO","errnoRet":33,
           "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":1,"value":0,"op":"SCMP_CMP_EQ"}]}
        ]}"#,
    );
    let p = p.to_str().unwrap();
    leaves_nothing(|| {
        let (c, out) = py(
            p,
            "import os\ntry: os.mkdir('/tmp/x')\nexcept OSError as e: print(e.errno)",
        );
        assert_eq!((c, out.as_str()), (0, "42"), "ERRNO with errnoRet");
        let (c, out) = py(
            p,
            &format!("{SYSCALL}print(libc.getpriority(0, 0), ctypes.get_errno())"),
        );
        assert_eq!((c, out.as_str()), (0, "-1 1"), "ERRNO defaults to EPERM");
        let (c, _) = py(p, "import os; os.getppid(); print('survived')");
        assert_eq!(c, 128 + 31, "KILL_PROCESS: killed by SIGSYS");
        let (c, _) = py(p, "import os; os.getpgid(0); print('survived')");
        assert_eq!(c, 128 + 31, "TRAP: SIGSYS, whose default action kills");
        let (c, out) = py(p, "import os; print(os.getsid(0) > 0)");
        assert_eq!((c, out.as_str()), (0, "True"), "LOG lets the call through");
        // Argument conditions: only AF_INET6 sockets are refused; kill(0, 0) only.
        let (c, out) = py(
            p,
            "import socket\nsocket.socket(socket.AF_INET).close()\ntry: socket.socket(socket.AF_INET6)\nexcept OSError as e: print(e.errno)",
        );
        assert_eq!((c, out.as_str()), (0, "97"));
        let (c, out) = py(
            p,
            &format!(
                "{SYSCALL}print(libc.kill(0, 0), ctypes.get_errno(), libc.kill(os.getpid(), 0))"
            ),
        );
        assert_eq!((c, out.as_str()), (0, "-1 33 0"), "all args must match");
    });
}

#[test]
fn published_profiles_run_the_workload_suite() {
    let _g = serial();
    for f in ["docker-default.json", "podman-containers-common.json"] {
        let p = published(f);
        let o = run(&[
            "run",
            "--seccomp-profile",
            &p,
            "--",
            "sh",
            "-c",
            "set -e; ls / >/dev/null; echo x | sha256sum >/dev/null; \
             python3 -c 'import threading, multiprocessing as m; p = m.Process(target=print); p.start(); p.join()'; \
             cat /proc/self/status | grep -q '^Seccomp:.*2'; echo suite-ok",
        ]);
        assert!(o.status.success(), "{f}: {}", stderr(&o));
        assert!(stdout(&o).contains("suite-ok"), "{f}: {}", stdout(&o));
        assert!(
            stderr(&o).is_empty(),
            "{f}: no warnings expected: {}",
            stderr(&o)
        );
        // Docker's refuses unshare without CAP_SYS_ADMIN with EPERM.
        if f.starts_with("docker") {
            let (c, out) = py(
                &p,
                &format!("{SYSCALL}print(libc.unshare(0x10000000), ctypes.get_errno())"),
            );
            assert_eq!((c, out.as_str()), (0, "-1 1"), "{f}");
        }
    }
}

#[test]
fn init_keeps_working_under_a_profile_that_denies_what_it_needs() {
    let _g = serial();
    let (_d, p) = profile(
        "noinit",
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
          {"names":["wait4","waitid"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    );
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--seccomp-profile",
            p.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "exit 7",
        ])
    });
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
}

#[test]
fn bad_and_unenforceable_profiles_are_refused() {
    let _g = serial();
    let (_d1, typo) = profile(
        "typo",
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid","no_such_syscall"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let (_d2, broken) = profile(
        "broken",
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_FOO"}]}"#,
    );
    let typo = typo.to_str().unwrap();
    leaves_nothing(|| {
        let o = run(&[
            "run",
            "--service-mode",
            "strict-agent",
            "--seccomp-profile",
            typo,
            "--",
            "true",
        ]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("no_such_syscall") && stderr(&o).contains("strict"),
            "{}",
            stderr(&o)
        );
        // Agent mode says what it dropped and goes on.
        let o = run(&["run", "--seccomp-profile", typo, "--", "true"]);
        assert!(o.status.success());
        assert!(stderr(&o).contains("no_such_syscall"), "{}", stderr(&o));
        for (args, want) in [
            (
                vec!["--seccomp-profile", broken.to_str().unwrap()],
                "syscalls[0].action",
            ),
            (
                vec!["--seccomp-profile", "/nonexistent.json"],
                "/nonexistent.json",
            ),
            (
                vec!["--seccomp-profile", typo, "--seccomp-allow", "ptrace"],
                "--seccomp-allow",
            ),
        ] {
            let mut a = vec!["run"];
            a.extend(args);
            a.extend(["--", "true"]);
            let o = run(&a);
            assert_eq!(o.status.code(), Some(125), "{a:?}");
            assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
            assert!(stderr(&o).contains(want), "{a:?}: {}", stderr(&o));
        }
    });
}

#[test]
fn trace_generate_rerun_round_trip_on_real_programs() {
    let _g = serial();
    let d = TempDir::new("trace");
    let programs: [(&str, &[&str]); 3] = [
        (
            "python3",
            &[
                "python3",
                "-c",
                "import threading, subprocess\nt = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\nsubprocess.run(['true'], check=True)\nprint('python3-ok')",
            ],
        ),
        (
            "gcc",
            &[
                "sh",
                "-c",
                "printf 'int main(void){return 0;}' > /tmp/a.c && gcc -o /tmp/a /tmp/a.c && /tmp/a && echo gcc-ok",
            ],
        ),
        (
            "git",
            &[
                "sh",
                "-c",
                "cd /tmp && git init -q r && cd r && git -c user.email=a@b -c user.name=n commit -q --allow-empty -m x && git log --oneline | wc -l && echo git-ok",
            ],
        ),
    ];
    leaves_nothing(|| {
        for (name, cmd) in programs {
            let trace = d.0.join(format!("{name}.trace.json"));
            let prof = d.0.join(format!("{name}.profile.json"));
            let mut args = vec!["seccomp", "trace", "-o", trace.to_str().unwrap(), "--"];
            args.extend_from_slice(cmd);
            let o = run(&args);
            assert!(o.status.success(), "{name} trace: {}", stderr(&o));
            assert!(stdout(&o).contains(&format!("{name}-ok")), "{}", stdout(&o));
            let t: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
            let calls = t["syscalls"].as_object().unwrap();
            assert!(
                calls.contains_key("execve") && calls.contains_key("exit_group"),
                "{t}"
            );
            // Children and threads are in the trace (they share the filter).
            assert!(
                calls.contains_key("clone")
                    || calls.contains_key("clone3")
                    || calls.contains_key("vfork"),
                "{name}: {t}"
            );
            let o = run(&[
                "seccomp",
                "generate",
                trace.to_str().unwrap(),
                "-o",
                prof.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let mut args = vec![
                "run",
                "--seccomp-profile",
                prof.to_str().unwrap(),
                "--seccomp-log-denied",
                "--",
            ];
            args.extend_from_slice(cmd);
            let o = run(&args);
            assert!(
                o.status.success(),
                "{name} under its generated profile: {}",
                stderr(&o)
            );
            assert!(stdout(&o).contains(&format!("{name}-ok")));
            // Nothing refused but clone3, which gets ENOSYS as under the default filter (libc
            // then uses clone, whose flags the profile checks as the default filter does).
            let err = stderr(&o);
            let refused: Vec<&str> = err
                .lines()
                .filter(|l| l.contains("denied") && !l.contains("denied clone3 (errno 38)"))
                .collect();
            assert!(refused.is_empty(), "{err}");
        }
        // One more syscall than traced: refused, and named.
        let prof = d.0.join("python3.profile.json");
        let o = run(&[
            "run",
            "--seccomp-profile",
            prof.to_str().unwrap(),
            "--seccomp-log-denied",
            "--",
            "python3",
            "-c",
            "import os\ntry: os.mkdir('/tmp/new')\nexcept OSError as e: print(e.errno)",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "1");
        assert!(
            stderr(&o).contains("seccomp: denied mkdir (errno 1)"),
            "{}",
            stderr(&o)
        );
    });
}

/// A trace of a program that creates namespaces (`unshare -U id`, which works when traced:
/// no filter) does not make a profile looser than the default filter: the generated profile
/// still refuses unshare, says so, and allows it only when asked (and says that too).
#[test]
fn generated_profiles_are_never_looser_than_the_default_unless_asked() {
    let _g = serial();
    let d = TempDir::new("trace-unshare");
    let trace = d.0.join("t.json");
    let prof = d.0.join("p.json");
    let o = run(&[
        "seccomp",
        "trace",
        "-o",
        trace.to_str().unwrap(),
        "--",
        "unshare",
        "-U",
        "id",
        "-u",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "65534\n");
    let o = run(&[
        "seccomp",
        "generate",
        trace.to_str().unwrap(),
        "-o",
        prof.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused in the profile too: ") && stderr(&o).contains("unshare"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "run",
        "--seccomp-profile",
        prof.to_str().unwrap(),
        "--",
        "unshare",
        "-U",
        "id",
        "-u",
    ]);
    assert!(
        !o.status.success(),
        "unshare ran under the generated profile"
    );
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "seccomp",
        "generate",
        trace.to_str().unwrap(),
        "-o",
        prof.to_str().unwrap(),
        "--allow-denied",
        "unshare",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("looser than the default filter: it allows unshare"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "seccomp",
        "generate",
        trace.to_str().unwrap(),
        "-o",
        prof.to_str().unwrap(),
        "--allow-denied",
        "ptrace",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("--allow-denied"), "{}", stderr(&o));
}

#[test]
fn log_denied_names_refusals_of_the_default_filter() {
    let _g = serial();
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--seccomp-log-denied",
            "--",
            "python3",
            "-c",
            &format!("{SYSCALL}print(libc.unshare(0x10000000), ctypes.get_errno())"),
        ])
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "-1 1");
    assert!(
        stderr(&o).contains("seccomp: denied unshare (errno 1)"),
        "{}",
        stderr(&o)
    );
}

fn status_caps(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| l.starts_with("Cap"))
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn caps_policy_keeps_exactly_the_listed_capabilities() {
    let _g = serial();
    let (_d, p) = profile(
        "caps",
        // WAKE_ALARM (35): a capability in the upper 32-bit word of every set.
        "bounding = [\"NET_BIND_SERVICE\", \"CAP_CHOWN\", \"WAKE_ALARM\"]\n\
         permitted = [\"net_bind_service\", \"WAKE_ALARM\"]\n\
         effective = [\"NET_BIND_SERVICE\", \"WAKE_ALARM\"]\n\
         inheritable = [\"NET_BIND_SERVICE\", \"WAKE_ALARM\"]\n\
         ambient = [\"NET_BIND_SERVICE\", \"WAKE_ALARM\"]\n",
    );
    let p = p.to_str().unwrap();
    let bind80 = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 80)); print('bound')";
    leaves_nothing(|| {
        for user in ["0", "1000"] {
            let o = run(&[
                "run",
                "-u",
                user,
                "--caps-policy",
                p,
                "--",
                "sh",
                "-c",
                &format!("grep ^Cap /proc/self/status; python3 -c \"{bind80}\""),
            ]);
            assert!(o.status.success(), "uid {user}: {}", stderr(&o));
            let caps = status_caps(&stdout(&o));
            let want = |k: &str, v: &str| {
                assert!(
                    caps.contains(&(k.into(), v.into())),
                    "uid {user} {k}: {caps:?}"
                )
            };
            want("CapBnd", "0000000800000401");
            want("CapPrm", "0000000800000400");
            want("CapEff", "0000000800000400");
            want("CapInh", "0000000800000400");
            want("CapAmb", "0000000800000400");
            assert!(
                stdout(&o).contains("bound"),
                "CAP_NET_BIND_SERVICE works as uid {user}"
            );
        }
        // Without the policy: nothing kept, port 80 refused.
        let o = run(&["run", "-u", "1000", "--", "python3", "-c", bind80]);
        assert!(!o.status.success());
        // The started event names what was kept.
        let o = run(&["run", "--caps-policy", p, "--events-fd", "1", "--", "true"]);
        let started = stdout(&o)
            .lines()
            .find(|l| l.contains("\"started\""))
            .unwrap()
            .to_string();
        assert!(
            started.contains("CAP_NET_BIND_SERVICE") && started.contains("CAP_CHOWN"),
            "{started}"
        );
    });
    // Unknown names: agent drops them with a warning, strict refuses; bad sets name the field.
    let (_d2, unknown) = profile("caps-unknown", "bounding = [\"CAP_FROB\"]\n");
    let (_d3, bad) = profile("caps-bad", "effective = [\"CHOWN\"]\n");
    let o = run(&[
        "run",
        "--caps-policy",
        unknown.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(
        o.status.success() && stderr(&o).contains("CAP_FROB"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "run",
        "--service-mode",
        "strict-agent",
        "--caps-policy",
        unknown.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    let o = run(&["run", "--caps-policy", bad.to_str().unwrap(), "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("effective") && stderr(&o).lines().count() == 1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn landlock_policy_rules_min_abi_and_missing_paths() {
    let _g = serial();
    let data = TempDir::new("ll-data");
    std::fs::write(data.0.join("f"), "content").unwrap();
    let vol = format!("{}:/data:ro", data.0.display());
    let (_d, alone) = profile(
        "ll-alone",
        "base = \"none\"\n\
         [[rule]]\npath = \"/usr\"\nrights = [\"read_file\", \"read_dir\", \"execute\"]\n\
         [[rule]]\npath = \"/lib\"\nrights = [\"read_file\", \"read_dir\", \"execute\"]\nmissing = \"skip\"\n\
         [[rule]]\npath = \"/lib64\"\nrights = [\"read_file\", \"read_dir\", \"execute\"]\nmissing = \"skip\"\n\
         [[rule]]\npath = \"/data\"\nrights = [\"read_file\", \"read_dir\"]\n",
    );
    let alone = alone.to_str().unwrap();
    leaves_nothing(|| {
        // Only the policy's rules: /data and the programs readable, /etc not.
        let o = run(&[
            "run",
            "-v",
            &vol,
            "--landlock-policy",
            alone,
            "--",
            "/usr/bin/sh",
            "-c",
            "cat /data/f; echo; ls /etc >/dev/null 2>&1 || echo etc-denied",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), "content\netc-denied\n");
        // A missing path the policy requires stops the start in every mode.
        let o = run(&["run", "--landlock-policy", alone, "--", "/usr/bin/true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(
            stderr(&o).contains("/data") && stderr(&o).contains("missing"),
            "{}",
            stderr(&o)
        );
    });
    // A minimum ABI above the kernel's: strict refuses (the kernel here has ABI 7 at most, so
    // ask for more than any kernel offers).
    let (_d2, future) = profile("ll-abi", "min_abi = 7\n");
    let abi: u32 = std::fs::read_to_string("/proc/self/status")
        .map(|_| 0)
        .unwrap_or(0);
    let _ = abi;
    let o = run(&[
        "run",
        "--service-mode",
        "strict-agent",
        "--landlock-policy",
        future.to_str().unwrap(),
        "--",
        "true",
    ]);
    let probe_abi = probe_run(&[], &["landlock_abi"])["landlock_abi"]
        .as_u64()
        .unwrap();
    if probe_abi >= 7 {
        assert!(o.status.success(), "{}", stderr(&o));
    } else {
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("min_abi") || stderr(&o).contains("ABI"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn policy_files_must_match_their_pins() {
    let _g = serial();
    let (_d, caps) = profile("pin", "bounding = [\"CHOWN\"]\n");
    let c = caps.to_str().unwrap();
    let sum = {
        let o = std::process::Command::new("sha256sum")
            .arg(&caps)
            .output()
            .unwrap();
        stdout(&o)[..64].to_string()
    };
    assert!(run(&[
        "run",
        "--caps-policy",
        c,
        "--caps-policy-sha256",
        &sum,
        "--",
        "true"
    ])
    .status
    .success());
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--caps-policy",
            c,
            "--caps-policy-sha256",
            &"0".repeat(64),
            "--",
            "true",
        ])
    });
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("--caps-policy-sha256: digest mismatch"),
        "{}",
        stderr(&o)
    );
    let o = run(&["run", "--landlock-policy-sha256", &sum, "--", "true"]);
    assert!(
        stderr(&o).contains("no --landlock-policy"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "run",
        "--seccomp-profile",
        &published("docker-default.json"),
        "--seccomp-profile-sha256",
        &sum,
        "--",
        "true",
    ]);
    assert!(
        stderr(&o).contains("--seccomp-profile-sha256: digest mismatch"),
        "{}",
        stderr(&o)
    );
}
