//! End-to-end: bad input gives one clear line naming the flag, a non-zero exit, and leaves
//! nothing behind.

mod common;
use common::*;

fn rejects(args: &[&str], code: i32, mentions: &str) {
    let o = leaves_nothing(|| run(args));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?} should give exactly one line, got: {err}"
    );
    assert!(err.starts_with("nucleus: "), "{err}");
    assert!(
        err.contains(mentions),
        "{args:?}: {err:?} should mention {mentions:?}"
    );
    assert_eq!(stdout(&o), "", "nothing on stdout");
}

#[test]
fn bad_limits() {
    let _g = serial();
    rejects(&["run", "--memory", "12q", "--", "true"], 125, "--memory");
    rejects(&["run", "--memory", "1M", "--", "true"], 125, "--memory");
    rejects(
        &["run", "--memory-swap", "1G", "--", "true"],
        125,
        "--memory-swap",
    );
    rejects(
        &[
            "run",
            "--memory",
            "1G",
            "--memory-swap",
            "512M",
            "--",
            "true",
        ],
        125,
        "--memory-swap",
    );
    rejects(&["run", "--cpus", "999", "--", "true"], 125, "--cpus");
    rejects(&["run", "--cpus", "-1", "--", "true"], 125, "--cpus");
    rejects(
        &["run", "--cpu-weight", "0", "--", "true"],
        125,
        "--cpu-weight",
    );
    rejects(&["run", "--pids", "1", "--", "true"], 125, "--pids");
    rejects(
        &["run", "-d", "--log-max-size", "1k", "--", "true"],
        125,
        "--log-max-size",
    );
    rejects(
        &["run", "--workspace-max-size", "lots", "--", "true"],
        125,
        "--workspace-max-size",
    );
    rejects(
        &["run", "--io-limit", "sda rbps=1M", "--", "true"],
        125,
        "--io-limit",
    );
    rejects(
        &["run", "--io-limit", "4095:4095 rbps=1M", "--", "true"],
        125,
        "--io-limit",
    );
    rejects(
        &["run", "--cgroup-parent", "/a/../b", "--", "true"],
        125,
        "--cgroup-parent",
    );
}

#[test]
fn bad_flags_and_values() {
    let _g = serial();
    rejects(&["run", "--bogus", "--", "true"], 125, "--bogus");
    rejects(&["run", "-e", "1X=y", "--", "true"], 125, "--env");
    rejects(
        &["run", "-e", "NOPE_NOT_SET_ANYWHERE", "--", "true"],
        125,
        "--env",
    );
    rejects(
        &["run", "--service-mode", "yolo", "--", "true"],
        125,
        "--service-mode",
    );
    rejects(
        &["run", "--network", "wifi", "--", "true"],
        125,
        "--network",
    );
    rejects(
        &["run", "--workspace-mode", "mirror", "--", "true"],
        125,
        "--workspace-mode",
    );
    rejects(
        &["run", "--volume", "relative:/x", "--", "true"],
        125,
        "--volume",
    );
    rejects(
        &["run", "--volume", "/tmp:/../etc", "--", "true"],
        125,
        "--volume",
    );
    rejects(
        &["run", "--ulimit", "bogus=1", "--", "true"],
        125,
        "--ulimit",
    );
    rejects(&["run", "--user", "99999", "--", "true"], 125, "--user");
    rejects(
        &["run", "--hostname=bad..name", "--", "true"],
        125,
        "--hostname",
    );
    rejects(&["run", "--tmpfs", "/x:12q", "--", "true"], 125, "--tmpfs");
    rejects(
        &["run", "--seccomp-allow", "not_a_syscall", "--", "true"],
        125,
        "--seccomp-allow",
    );
}

#[test]
fn bad_paths() {
    let _g = serial();
    rejects(
        &["run", "--workspace", "/nonexistent/ws", "--", "true"],
        125,
        "--workspace",
    );
    rejects(
        &["run", "--context", "/nonexistent/ctx", "--", "true"],
        125,
        "--context",
    );
    rejects(
        &["run", "--rootfs", "/nonexistent/rootfs", "--", "true"],
        125,
        "--rootfs",
    );
    rejects(
        &["run", "-v", "/nonexistent/v:/v", "--", "true"],
        125,
        "--volume",
    );
    // The command cannot be run there: 126, as `exec -w` says (see the exit code table).
    rejects(
        &["run", "--workdir", "/nonexistent", "--", "true"],
        126,
        "workdir",
    );
}

#[test]
fn missing_and_unrunnable_commands() {
    let _g = serial();
    rejects(&["run"], 125, "COMMAND");
    rejects(
        &["run", "--", "definitely-not-a-command"],
        127,
        "command not found",
    );
    rejects(&["run", "--", "/etc/passwd"], 126, "permission denied");
}

/// One exit code table for every verb (docs/cli-conventions.md): 125 for nucleus's own
/// failures, usage errors included (clap's 2 could not be told from a workload's 2), 126 for a
/// command that cannot be run (run and exec alike), 127 for one not found.
#[test]
fn exit_codes_are_one_table_for_every_verb() {
    let _g = serial();
    // Usage: one line, 125, naming what is wrong and, for a command without `--`, how.
    rejects(&["run", "echo", "hi"], 125, "after `--`");
    rejects(&["exec", "--", "true"], 125, "<ID>");
    rejects(&["run", "--memory"], 125, "--memory");
    rejects(&["frobnicate"], 125, "frobnicate");
    // JSON logs: usage errors are JSON too, with the stable kind and the fields of events.
    let o = run(&["--log-format", "json", "exec", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    let line: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(line["kind"], "usage", "{line}");
    assert_eq!(line["level"], "error", "{line}");
    assert_eq!(line["v"], 1, "{line}");
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    assert!(line["msg"].as_str().unwrap().contains("<ID>"), "{line}");
    // Unknown sandboxes: 125 from every verb, rm and stop going through the whole list.
    for verb in [
        &["rm"][..],
        &["stop"],
        &["kill"],
        &["state"],
        &["start"],
        &["logs"],
    ] {
        let mut args = verb.to_vec();
        args.push("nosuchsandbox");
        rejects(&args, 125, "nosuchsandbox: no such sandbox");
    }
    for verb in ["rm", "stop"] {
        let o = leaves_nothing(|| run(&[verb, "nosuch1", "nosuch2"]));
        assert_eq!(o.status.code(), Some(125), "{verb}");
        let err = stderr(&o);
        assert!(
            err.contains("nosuch1") && err.contains("nosuch2"),
            "{verb}: {err}"
        );
    }
    let o = run(&["--log-format", "json", "rm", "nosuchsandbox"]);
    let line: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(line["kind"], "not_found", "{line}");
    let o = run(&[
        "--log-format",
        "json",
        "run",
        "--memory",
        "12q",
        "--",
        "true",
    ]);
    let line: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(line["kind"], "config", "{line}");
    // The command cannot be run: 126 whether the sandbox is new (run) or running (exec).
    rejects(&["run", "-w", "/missing", "--", "true"], 126, "/missing");
    rejects(&["run", "--", "/etc/hostname"], 126, "permission denied");
    rejects(&["run", "--", "no-such-command"], 127, "not found");
    let id = stdout(&run(&["run", "-d", "--", "sleep", "60"]))
        .trim()
        .to_string();
    let o = run(&["exec", "-w", "/missing", &id, "--", "true"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    let o = run(&["exec", &id, "--", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    run(&["rm", "-f", &id]);
}

/// A name cannot pass for another sandbox's id: names shaped like ids are refused, and an
/// exact id always picks its own sandbox.
#[test]
fn names_cannot_shadow_ids() {
    let _g = serial();
    let a = stdout(&run(&["run", "-d", "--", "sleep", "60"]))
        .trim()
        .to_string();
    assert_eq!(a.len(), 16, "{a}");
    rejects(
        &["run", "-d", "--name", &a, "--", "true"],
        125,
        "looks like a sandbox id",
    );
    rejects(
        &["run", "-d", "--name", "0123456789abcdef", "--", "true"],
        125,
        "--name",
    );
    let o = run(&["state", &a]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["id"], a.as_str());
    run(&["rm", "-f", &a]);
}

/// No verb panics on a closed stdout (`nucleus ps -a | head -c 1`): the reader is gone before
/// the first byte, every write fails with EPIPE.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let _g = serial();
    let id = stdout(&run(&["run", "-d", "--", "sleep", "60"]))
        .trim()
        .to_string();
    for args in [
        &["ps", "-a"][..],
        &["ps", "-a", "--format", "json"],
        &["ps", "-q"],
        &["state", &id],
        &["stats", &id],
        &["config", "schema"],
        &["config", "reference"],
    ] {
        let (rd, wr) = std::io::pipe().unwrap();
        drop(rd);
        let mut c = nucleus(args);
        c.stdout(wr)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let status = wait_within(&mut child, DEADLINE, "nucleus");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
    }
    run(&["rm", "-f", &id]);
}
