//! Launch configuration files (`--config`, `--config-fd`) and the generated references.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use std::io::Write;
use std::process::Stdio;

fn doc(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(name),
    )
    .unwrap()
}

#[test]
fn references_match_the_code() {
    let _g = serial();
    for (verb, file) in [("reference", "config.md"), ("cli-reference", "cli.md")] {
        let o = run(&["config", verb]);
        assert!(o.status.success());
        assert_eq!(
            stdout(&o),
            doc(file),
            "docs/{file} is stale: regenerate with `nucleus config {verb} > docs/{file}`"
        );
    }
    let o = run(&["config", "schema"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["additionalProperties"], false);
    for k in ["memory", "seccomp_profile", "env", "command", "caps_policy"] {
        assert!(s["properties"][k].is_object(), "{k}");
    }
    assert!(
        s["properties"]["config"].is_null(),
        "--config is not a key of itself"
    );
    // Limits are numbers or text (`pids = 64`, `memory = "64M"`), as the docs write them.
    for k in ["memory", "cpus", "pids"] {
        let t = s["properties"][k]["type"].to_string();
        assert!(t.contains("number") && t.contains("string"), "{k}: {t}");
    }
}

#[test]
fn file_keys_and_command_line_overrides() {
    let _g = serial();
    let d = TempDir::new("config");
    let f = d.0.join("launch.toml");
    std::fs::write(
        &f,
        "env = [\"A=file\", \"B=file\"]\nhostname = \"from-file\"\npids = 64\nmemory = \"64M\"\n\
         command = [\"sh\", \"-c\", \"echo $A $B $(hostname)\"]\n",
    )
    .unwrap();
    let f = f.to_str().unwrap();
    leaves_nothing(|| {
        let o = run(&["run", "--config", f]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim(), "file file from-file");
        // Flags win field by field: the command from the CLI, hostname from the file; the
        // environment merges (the file's, then the command line's: A from the CLI, B kept).
        let o = run(&[
            "run",
            "--config",
            f,
            "-e",
            "A=cli",
            "--",
            "sh",
            "-c",
            "echo $A ${B:-unset} $(hostname)",
        ]);
        assert_eq!(stdout(&o).trim(), "cli file from-file", "{}", stderr(&o));
        // JSON through a descriptor.
        let mut c = nucleus(&["run", "--config-fd", "0", "--", "hostname"]);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"{\"hostname\": \"via-fd\"}")
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(stdout(&o).trim(), "via-fd", "{}", stderr(&o));
    });
    // Bad files: one line, the key named, nothing started.
    for (text, want) in [
        ("memry = \"1G\"\n", "unknown key `memry`"),
        ("memory = [1]\n", "memory:"),
        ("memory = \"lots\"\n", "--memory"),
        ("env = \"A=1\"\n", "env:"),
        ("[x\n", "line 1"),
    ] {
        let bad = d.0.join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let o = leaves_nothing(|| run(&["run", "--config", bad.to_str().unwrap(), "--", "true"]));
        assert_eq!(o.status.code(), Some(125), "{text}");
        assert_eq!(stderr(&o).lines().count(), 1, "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{text}: {}", stderr(&o));
    }
}
