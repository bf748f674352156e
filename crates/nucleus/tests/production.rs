//! Production services (#20): fail-closed production mode and attested root filesystems. Real
//! sandboxes on real trees: a service runs from its sealed image; a tree that differs from its
//! manifest (a changed, an added, a removed file) is refused with one line naming the path;
//! what production requires and is not given is refused; nothing is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// A busybox service tree with its manifest: (tree, manifest, digest).
fn service_tree(t: &TempDir, name: &str) -> (PathBuf, PathBuf, String) {
    let root = busybox_image_tar(t, &["sh", "cat", "httpd", "wget", "grep", "id", "ls"]);
    let root = rename(&root, &t.path().join(name));
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "attested hello\n").unwrap();
    std::fs::write(root.join("greeting"), "hello\n").unwrap();
    let (manifest, digest) = manifest_of(t, &root, &format!("{name}.manifest"));
    (root, manifest, digest)
}

fn rename(from: &Path, to: &Path) -> PathBuf {
    std::fs::rename(from, to).unwrap();
    to.to_path_buf()
}

fn manifest_of(t: &TempDir, root: &Path, file: &str) -> (PathBuf, String) {
    let manifest = t.path().join(file);
    let o = run(&[
        "rootfs",
        "manifest",
        &root.display().to_string(),
        "-o",
        &manifest.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let digest = stdout(&o).trim().to_string();
    assert_eq!(digest.len(), 64, "{digest}");
    assert_eq!(
        digest,
        sha256_of(&manifest),
        "the printed digest is the manifest file's"
    );
    (manifest, digest)
}

/// `nucleus rootfs verify DIR --manifest FILE [--sha256 PIN]`.
fn verify(root: &Path, manifest: &Path, pin: Option<&str>) -> std::process::Output {
    let (r, m) = (root.display().to_string(), manifest.display().to_string());
    let mut args = vec!["rootfs", "verify", &r, "--manifest", &m];
    if let Some(p) = pin {
        args.extend(["--sha256", p]);
    }
    run(&args)
}

fn sha256_of(p: &Path) -> String {
    let o = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap();
    stdout(&o).split(' ').next().unwrap().to_string()
}

/// `nucleus run` with an attested root and a private image cache, then the given flags.
fn attested_run(
    t: &TempDir,
    (root, manifest, digest): (&Path, &Path, &str),
    flags: &[&str],
    cmd: &[&str],
) -> std::process::Output {
    let (root, manifest) = (root.display().to_string(), manifest.display().to_string());
    let mut args: Vec<&str> = vec![
        "run",
        "--rootfs",
        &root,
        "--rootfs-manifest",
        &manifest,
        "--rootfs-sha256",
        digest,
    ];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(cmd);
    in_own_mount_ns(t, &args)
}

/// `nucleus ARGS` in a mount namespace of its own (private propagation): the shared mount of
/// a sealed image that a start makes (in the caller's namespace, as a service's runtime
/// would on the host) goes away with it instead of staying on this machine.
fn in_own_mount_ns(t: &TempDir, args: &[&str]) -> std::process::Output {
    let bin = bin().display().to_string();
    let mut all = vec!["-m", "--propagation", "private", "--", &bin];
    all.extend_from_slice(args);
    let mut c = std::process::Command::new("unshare");
    c.args(&all)
        .env("NUCLEUS_ROOT", state_root())
        .env("NUCLEUS_ROOTFS_CACHE", cache(t));
    // SAFETY: prctl in the forked child before exec; no memory arguments.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    output_within(c.stdin(std::process::Stdio::null()), DEADLINE)
}

fn cache(t: &TempDir) -> PathBuf {
    t.path().join("cache")
}

/// The cache holds exactly the sealed images and verdicts of these digests (no temporary
/// file of a failed verification).
fn cache_holds(t: &TempDir, digests: &[&str]) {
    let mut have: Vec<String> = std::fs::read_dir(cache(t))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    have.sort();
    // (The shared mount's directory and record, `.mnt` and `.mount`, once a sandbox ran.)
    have.retain(|n| !n.ends_with(".mnt") && !n.ends_with(".mount"));
    let mut want: Vec<String> = digests
        .iter()
        .flat_map(|d| [format!("{d}.erofs"), format!("{d}.verdict")])
        .collect();
    want.sort();
    assert_eq!(have, want);
}

const PROD: &[&str] = &[
    "--service-mode",
    "production",
    "--memory",
    "64m",
    "--cpus",
    "0.5",
];

#[test]
fn production_service_runs_on_its_sealed_image_with_everything_applied() {
    let _g = serial();
    let t = TempDir::new("prod-service");
    let (root, manifest, digest) = service_tree(&t, "svc");
    let events = t.path().join("events.jsonl");
    let ev = events.display().to_string();
    let mut flags = PROD.to_vec();
    flags.extend(["--events-jsonl", &ev]);
    // The service: busybox httpd on the sandbox's loopback, fetched from inside; then what the
    // sandbox sees of its root and its ids.
    let script = "httpd -p 127.0.0.1:8080 -h /www && wget -qO- http://127.0.0.1:8080/ && \
                  grep ' /www ' /proc/self/mountinfo && cat /proc/self/uid_map && \
                  cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; \
                  echo x > /greeting || echo read-only";
    let o = leaves_nothing(|| {
        attested_run(
            &t,
            (&root, &manifest, &digest),
            &flags,
            &["/bin/sh", "-c", script],
        )
    });
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{err}");
    assert!(out.contains("attested hello"), "{out}");
    // The tree's entries come from the sealed EROFS image, read-only (the tree has no mount
    // points of its own, so the root is a tmpfs with its top-level entries bound on it).
    let www = out.lines().find(|l| l.contains(" /www ")).unwrap();
    assert!(www.contains(" - erofs ") && www.contains(" ro,"), "{www}");
    assert!(out.contains("read-only"), "{out}");
    // A private id range: container root is not host root.
    let map = out
        .lines()
        .find(|l| l.split_whitespace().count() == 3)
        .unwrap();
    let host_uid: u64 = map.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(host_uid, 0, "{map}");
    // The memory limit holds (v2 or v1 file, whichever the host has).
    assert!(out.contains("67108864"), "{out}");
    // The first start verified and sealed; it said so on stderr, once.
    assert!(err.contains("verified against its manifest"), "{err}");
    cache_holds(&t, &[&digest]);
    // The started event lists what was applied: the attested root, private ids, no
    // degradation.
    let text = std::fs::read_to_string(&events).unwrap();
    let started: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "started")
        .unwrap_or_else(|| panic!("no started event: {text}"));
    let p = &started["protections"];
    assert_eq!(p["rootfs_sha256"], digest.as_str(), "{started}");
    assert_eq!(p["private_ids"], true, "{started}");
    assert_eq!(p["seccomp"], "enforced", "{started}");
    assert_eq!(p["degraded"], serde_json::json!([]), "{started}");

    // A second start finds the verdict: no verification, same result.
    let o = attested_run(
        &t,
        (&root, &manifest, &digest),
        PROD,
        &["/bin/cat", "/www/index.html"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "attested hello\n");
    assert!(!stderr(&o).contains("verified"), "{}", stderr(&o));

    // A tree with the mount points a sandbox needs: its image is the root itself.
    let t2 = TempDir::new("prod-full-root");
    let (full, _, _) = service_tree(&t2, "full");
    for d in ["proc", "sys", "dev", "tmp", "root", "run"] {
        std::fs::create_dir(full.join(d)).unwrap();
    }
    let (m2, d2) = manifest_of(&t2, &full, "full.manifest");
    let o = attested_run(
        &t2,
        (&full, &m2, &d2),
        PROD,
        &["/bin/grep", " / / ", "/proc/self/mountinfo"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(" - erofs "), "{}", stdout(&o));
}

#[test]
fn a_changed_added_or_removed_file_is_refused_by_name() {
    let _g = serial();
    let t = TempDir::new("prod-tamper");
    let (root, manifest, digest) = service_tree(&t, "svc");
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper, &str); 5] = [
        (
            "changed",
            |r| std::fs::write(r.join("www/index.html"), "attested hellO\n").unwrap(),
            "www/index.html: content differs from the manifest",
        ),
        (
            "added",
            |r| std::fs::write(r.join("www/backdoor.sh"), "x").unwrap(),
            "www/backdoor.sh: not in the manifest",
        ),
        (
            "removed",
            |r| std::fs::remove_file(r.join("greeting")).unwrap(),
            "greeting: missing",
        ),
        (
            "chmod",
            |r| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(
                    r.join("bin/busybox"),
                    std::fs::Permissions::from_mode(0o4755),
                )
                .unwrap()
            },
            "bin/busybox: mode 4755, the manifest says 0755",
        ),
        (
            "relinked",
            |r| {
                std::fs::remove_file(r.join("bin/sh")).unwrap();
                std::os::unix::fs::symlink("/proc/self/root/bin/busybox", r.join("bin/sh"))
                    .unwrap();
            },
            "bin/sh: symlink target differs",
        ),
    ];
    for (what, tamper, want) in cases {
        let copy = t.path().join(what);
        let o = std::process::Command::new("cp")
            .args(["-a"])
            .arg(&root)
            .arg(&copy)
            .output()
            .unwrap();
        assert!(o.status.success());
        tamper(&copy);
        let o = leaves_nothing(|| {
            attested_run(
                &t,
                (&copy, &manifest, &digest),
                PROD,
                &["/bin/cat", "/greeting"],
            )
        });
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{what}: {err}");
        assert!(stdout(&o).is_empty(), "{what}: nothing ran");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.contains("--rootfs: ") && err.contains(want),
            "{what}: {err}"
        );
        // `rootfs verify` names the same difference.
        let o = verify(&copy, &manifest, None);
        assert_eq!(o.status.code(), Some(125), "{what}");
        assert!(stderr(&o).contains(want), "{what}: {}", stderr(&o));
    }
    // No image was sealed for any of them, and no partial one is left.
    cache_holds(&t, &[]);
}

#[test]
fn after_sealing_the_sandbox_runs_what_was_verified_and_verify_finds_the_change() {
    let _g = serial();
    let t = TempDir::new("prod-sealed");
    let (root, manifest, digest) = service_tree(&t, "svc");
    let cat = ["/bin/cat", "/greeting"];
    let o = attested_run(&t, (&root, &manifest, &digest), PROD, &cat);
    assert!(o.status.success(), "{}", stderr(&o));
    // The tree changes after it was sealed: the sandbox still runs the verified bytes.
    std::fs::write(root.join("greeting"), "tampered\n").unwrap();
    let o = attested_run(&t, (&root, &manifest, &digest), PROD, &cat);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello\n");
    let o = verify(&root, &manifest, Some(&digest));
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("greeting: 9 bytes, the manifest says 6"),
        "{}",
        stderr(&o)
    );
    // The sealed image is touched (a write, here a no-op chmod): its verdict no longer holds,
    // so the next start verifies the tree again, and refuses it.
    let img = cache(&t).join(format!("{digest}.erofs"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = leaves_nothing(|| attested_run(&t, (&root, &manifest, &digest), PROD, &cat));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("greeting: 9 bytes"), "{}", stderr(&o));
    // A copy of the tree that was never verified is verified before it runs (a verdict is for
    // one directory), and its own seal replaces the old one.
    std::fs::write(root.join("greeting"), "hello\n").unwrap();
    let copy = t.path().join("copy");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(&root)
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    let o = attested_run(&t, (&copy, &manifest, &digest), PROD, &cat);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("verified against its manifest"));
    cache_holds(&t, &[&digest]);
}

#[test]
fn production_refuses_what_it_requires_and_bad_attestation_input() {
    let _g = serial();
    let t = TempDir::new("prod-refuse");
    let (root, manifest, digest) = service_tree(&t, "svc");
    let (r, m) = (root.display().to_string(), manifest.display().to_string());
    let bad_manifest = t.path().join("bad.manifest");
    std::fs::write(
        &bad_manifest,
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replace(" f 0755 ", " f 755 "),
    )
    .unwrap();
    let bad = bad_manifest.display().to_string();
    let bad_digest = sha256_of(&bad_manifest);
    let seccomp = t.path().join("seccomp.json");
    std::fs::write(&seccomp, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let sc = seccomp.display().to_string();
    let zeros = "0".repeat(64);
    let limits = ["--memory", "64m", "--cpus", "0.5"];
    // `run --service-mode production` with these flags: an attested root from (manifest,
    // digest) when given, the limits unless left out.
    let with = |pinned: Option<(&str, &str)>, limits: &[&str], more: &[&str]| -> Vec<String> {
        let mut v = vec!["run", "--service-mode", "production", "--rootfs", &r];
        if let Some((m, d)) = pinned {
            v.extend(["--rootfs-manifest", m, "--rootfs-sha256", d]);
        }
        v.extend(limits);
        v.extend(more);
        v.extend(["--", "/bin/true"]);
        v.into_iter().map(String::from).collect()
    };
    let att = Some((m.as_str(), digest.as_str()));
    let no_rootfs: Vec<String> = [
        "run",
        "--service-mode",
        "production",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--",
        "/bin/true",
    ]
    .map(String::from)
    .to_vec();
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            no_rootfs,
            "--rootfs",
            "production mode requires a root filesystem",
        ),
        (
            with(None, &limits, &[]),
            "--rootfs-manifest",
            "production mode requires an attested root",
        ),
        (
            with(att, &limits[2..], &[]),
            "--memory",
            "requires a memory limit",
        ),
        (
            with(att, &limits[..2], &[]),
            "--cpus",
            "requires a CPU limit",
        ),
        (
            with(att, &limits, &["--seccomp-profile", &sc]),
            "--seccomp-profile-sha256",
            "production mode requires a pin for --seccomp-profile",
        ),
        (
            with(att, &limits, &["--network", "host"]),
            "--network",
            "host networking is refused",
        ),
        (
            with(Some((&m, &zeros)), &limits, &[]),
            "--rootfs-sha256",
            "digest mismatch",
        ),
        (
            with(Some((&m, "abc")), &limits, &[]),
            "--rootfs-sha256",
            "64 hex digits",
        ),
        (
            with(None, &limits, &["--rootfs-manifest", &m]),
            "--rootfs-sha256",
            "missing",
        ),
        (
            with(Some((&bad, &bad_digest)), &limits, &[]),
            "--rootfs-manifest",
            "bad mode \"755\"",
        ),
        (
            with(Some(("/nonexistent/m", &digest)), &limits, &[]),
            "--rootfs-manifest",
            "/nonexistent/m",
        ),
        (
            with(Some((&r, &digest)), &limits, &[]),
            "--rootfs-manifest",
            "not a regular file",
        ),
    ];
    for (args, flag, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = leaves_nothing(|| in_own_mount_ns(&t, &args));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!("{flag}: ")) && err.contains(want),
            "{args:?}: want {flag}: …{want}…, got {err}"
        );
    }
    cache_holds(&t, &[]);
    // A manifest line numbered: the bad line is the first file's.
    let o = run(&["rootfs", "verify", &r, "--manifest", &bad]);
    assert!(stderr(&o).contains("line "), "{}", stderr(&o));
}

#[test]
fn manifests_never_follow_links_out_of_the_tree_or_take_sockets() {
    let _g = serial();
    let t = TempDir::new("prod-manifest");
    let root = t.path().join("r");
    std::fs::create_dir_all(root.join("d")).unwrap();
    // A symlink to a host secret is recorded as a link, its target never read.
    std::os::unix::fs::symlink("/etc/shadow", root.join("d/secret")).unwrap();
    std::fs::write(root.join("d/file with space\nand newline"), "x").unwrap();
    let (manifest, _) = manifest_of(&t, &root, "m");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("d/secret l 0777 0 0 /etc/shadow\n"), "{text}");
    assert!(
        text.contains("d/file%20with%20space%0Aand%20newline f 0644 0 0 1:"),
        "{text}"
    );
    // A socket cannot be attested: refused, naming it.
    let sock = root.join("d/sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let o = run(&["rootfs", "manifest", &root.display().to_string()]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("d/sock: a socket cannot be attested"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn sandboxes_on_one_image_share_its_mount_and_gc_removes_it() {
    let _g = serial();
    let t = TempDir::new("prod-shared");
    let (root, manifest, digest) = service_tree(&t, "svc");
    let c = cache(&t);
    let run_flags = format!(
        "--service-mode production --memory 64m --cpus 0.5 --rootfs {} --rootfs-manifest {} --rootfs-sha256 {digest}",
        root.display(),
        manifest.display()
    );
    // Three starts in one mount namespace (as on a host): the first verifies, seals and mounts
    // the image once; the others clone that mount.
    let script = format!(
        r#"set -e
N={bin}
for i in 1 2 3; do $N run {run_flags} -- /bin/cat /greeting; done
echo "shared mounts: $(grep -c " {c}/{digest}.mnt " /proc/self/mountinfo)"
echo "records: $(wc -l < {c}/{digest}.mount)"
$N rootfs gc
echo "after gc: $(grep -c " {c}/{digest}.mnt " /proc/self/mountinfo || true) $(ls {c} | wc -l)"
$N run {run_flags} -- /bin/cat /greeting
"#,
        bin = bin().display(),
        c = c.display(),
    );
    let o = output_within(
        std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("NUCLEUS_ROOT", state_root())
            .env("NUCLEUS_ROOTFS_CACHE", &c)
            .stdin(std::process::Stdio::null()),
        DEADLINE,
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out.matches("hello\n").count(), 4, "{out}");
    assert_eq!(output_line(&out, &err, "shared mounts"), "1");
    assert_eq!(output_line(&out, &err, "records"), "1");
    assert_eq!(output_line(&out, &err, "after gc"), "0 0");
    assert!(err.contains("1 sealed images removed"), "{err}");
    // Verified twice: the first start and the one after gc.
    assert_eq!(
        err.matches("verified against its manifest").count(),
        2,
        "{err}"
    );
}
