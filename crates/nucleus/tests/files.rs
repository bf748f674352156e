//! End-to-end: files in (workspace modes, context, volumes, tmpfs, provider configs).

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn workspace_bind_rw_writes_through_with_host_ownership() {
    let _g = serial();
    let t = TempDir::new("ws-rw");
    std::fs::write(t.path().join("in.txt"), "hello").unwrap();
    let o = leaves_nothing(|| {
        run(&[
            "run",
            "--workspace",
            &t.s(),
            "--",
            "sh",
            "-c",
            "pwd; cat in.txt; echo new > out.txt; stat -c %u:%g in.txt",
        ])
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "/workspace\nhello0:0\n");
    assert_eq!(
        std::fs::read_to_string(t.path().join("out.txt")).unwrap(),
        "new\n"
    );
    // idmapped: the file the sandbox's root created belongs to the host owner, not a container uid.
    assert_eq!(
        std::fs::metadata(t.path().join("out.txt")).unwrap().uid(),
        0
    );
}

#[test]
fn workspace_bind_ro_cannot_be_written() {
    let _g = serial();
    let t = TempDir::new("ws-ro");
    let o = run(&[
        "run",
        "--workspace",
        &t.s(),
        "--workspace-mode",
        "bind-ro",
        "--",
        "touch",
        "x",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(!t.path().join("x").exists());
}

#[test]
fn workspace_copy_in_out_syncs_back_after_exit() {
    let _g = serial();
    let t = TempDir::new("ws-copy");
    std::fs::write(t.path().join("keep.txt"), "keep").unwrap();
    std::fs::write(t.path().join("del.txt"), "del").unwrap();
    let host = t.s();
    let o = leaves_nothing(|| {
        run(&[
            "run", "--workspace", &host, "--workspace-mode", "copy-in-out", "--", "sh", "-c",
            // While running, the host copy is untouched.
            &format!("echo changed > keep.txt; rm del.txt; mkdir d; echo n > d/new.txt; test -e {host}/keep.txt || echo host-invisible"),
        ])
    });
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "host-invisible\n");
    assert_eq!(
        std::fs::read_to_string(t.path().join("keep.txt")).unwrap(),
        "changed\n"
    );
    assert!(!t.path().join("del.txt").exists());
    assert_eq!(
        std::fs::read_to_string(t.path().join("d/new.txt")).unwrap(),
        "n\n"
    );
}

#[test]
fn context_is_a_read_only_copy_without_exec() {
    let _g = serial();
    let t = TempDir::new("ctx");
    std::fs::write(t.path().join("notes.md"), "context!").unwrap();
    std::fs::copy("/bin/true", t.path().join("prog")).unwrap();
    let p = probe_run(
        &["--context", &t.s()],
        &[
            "read=/context/notes.md",
            "write=/context/new",
            "exec=/context/prog",
        ],
    );
    assert_eq!(p["read=/context/notes.md"], "context!");
    assert_eq!(p["write=/context/new"], "EROFS");
    // Landlock: /context holds data, not programs.
    assert_eq!(p["exec=/context/prog"], "EACCES");
    // bind mode shows the same files
    let p = probe_run(
        &["--context", &t.s(), "--context-mode", "bind"],
        &[
            "read=/context/notes.md",
            "write=/context/new",
            "exec=/context/prog",
        ],
    );
    assert_eq!(p["read=/context/notes.md"], "context!");
    assert_eq!(p["write=/context/new"], "EROFS");
    assert_eq!(p["exec=/context/prog"], "EACCES");
}

#[test]
fn volumes_tmpfs_and_provider_configs() {
    let _g = serial();
    let t = TempDir::new("vols");
    let cfg = t.path().join("aws");
    std::fs::create_dir(&cfg).unwrap();
    std::fs::write(cfg.join("credentials"), "secret-key").unwrap();
    // Owner-only, like real credentials: readable inside only thanks to the idmapped bind.
    std::fs::set_permissions(
        cfg.join("credentials"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // A program in each: a read-only volume may hold tools, a provider config holds data.
    std::fs::copy("/bin/true", cfg.join("tool")).unwrap();
    std::fs::copy("/bin/true", data.join("tool")).unwrap();
    let pc = format!("{}:.aws", cfg.display());
    let vro = format!("{}:/mnt/ro:ro", data.display());
    let vrw = format!("{}:/mnt/rw", data.display());
    let p = probe_run(
        &[
            "--provider-config-ro",
            &pc,
            "-v",
            &vro,
            "-v",
            &vrw,
            "--tmpfs",
            "/scratch:1M",
            // A mount under /etc: /etc is then built entry by entry (the shared view is
            // read-only), and the identity files are still there.
            "--tmpfs",
            "/etc/scratch:1M",
        ],
        &[
            "read=/root/.aws/credentials",
            "write=/root/.aws/x",
            "write=/mnt/ro/x",
            "write=/mnt/rw/x",
            "write=/scratch/x",
            "stat=/root/.aws/credentials",
            "exec=/root/.aws/tool",
            "exec=/mnt/ro/tool",
            "write=/etc/scratch/x",
            "read=/etc/hostname",
        ],
    );
    assert_eq!(p["write=/etc/scratch/x"], "ok");
    assert!(p["read=/etc/hostname"]
        .as_str()
        .is_some_and(|h| h.starts_with("nucleus-")));
    assert_eq!(p["exec=/root/.aws/tool"], "EACCES");
    assert_eq!(p["exec=/mnt/ro/tool"], 0);
    assert_eq!(p["read=/root/.aws/credentials"], "secret-key");
    assert_eq!(p["write=/root/.aws/x"], "EROFS");
    assert_eq!(p["write=/mnt/ro/x"], "EROFS");
    assert_eq!(p["write=/mnt/rw/x"], "ok");
    assert_eq!(p["write=/scratch/x"], "ok");
    assert_eq!(
        p["stat=/root/.aws/credentials"],
        serde_json::json!([0, 0, "600"])
    );
    assert!(data.join("x").exists());
}
