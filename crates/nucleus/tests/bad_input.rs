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
    rejects(&["run", "--bogus", "--", "true"], 2, "--bogus");
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
    rejects(
        &["run", "--workdir", "/nonexistent", "--", "true"],
        125,
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
