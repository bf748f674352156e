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

    // A detached one: `state` and `inspect` say the same.
    let mut detached = PROD.to_vec();
    detached.push("-d");
    let o = attested_run(
        &t,
        (&root, &manifest, &digest),
        &detached,
        &["/bin/httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let st: serde_json::Value = serde_json::from_slice(&run(&["state", &id]).stdout).unwrap();
    assert_eq!(st["protections"]["rootfs_sha256"], digest.as_str(), "{st}");
    assert_eq!(st["protections"]["private_ids"], true, "{st}");
    let ins: serde_json::Value = serde_json::from_slice(&run(&["inspect", &id]).stdout).unwrap();
    assert_eq!(ins["config"]["service_mode"], "production", "{ins}");
    assert_eq!(
        ins["config"]["attested_root"]["sha256"],
        digest.as_str(),
        "{ins}"
    );
    assert_eq!(ins["protections"]["seccomp"], "enforced", "{ins}");
    assert!(run(&["rm", "-f", &id]).status.success());

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
    // The verdict also pins the manifest file: touched (its change time moves), the tree is
    // verified again before it runs; untouched, it is not.
    let o = attested_run(&t, (&copy, &manifest, &digest), PROD, &cat);
    assert!(!stderr(&o).contains("verified"), "{}", stderr(&o));
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = attested_run(&t, (&copy, &manifest, &digest), PROD, &cat);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("verified against its manifest"),
        "{}",
        stderr(&o)
    );
    // A cache others may enter is refused: sealed images are the runtime's alone.
    std::fs::set_permissions(cache(&t), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = leaves_nothing(|| attested_run(&t, (&copy, &manifest, &digest), PROD, &cat));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("closed to others"), "{}", stderr(&o));
    std::fs::set_permissions(cache(&t), std::fs::Permissions::from_mode(0o700)).unwrap();
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

/// What agent mode tolerates (a warning, and the start goes on) production refuses, with one
/// line and nothing left: the same degradations as the agent-vs-strict tests (policy.rs,
/// limits.rs), now with every production requirement met.
#[test]
fn every_degradation_agent_mode_tolerates_is_refused_in_production() {
    let _g = serial();
    let t = TempDir::new("prod-degrade");
    let (root, manifest, digest) = service_tree(&t, "svc");
    let file = |name: &str, text: &str| -> (String, String) {
        let p = t.path().join(name);
        std::fs::write(&p, text).unwrap();
        let pin = sha256_of(&p);
        (p.display().to_string(), pin)
    };
    let (seccomp, seccomp_pin) = file(
        "typo.json",
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid","no_such_syscall"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let (caps, caps_pin) = file("caps.toml", "bounding = [\"CAP_FROB\"]\n");
    // Sealed first (its first start says it verified the tree: a second line).
    let o = attested_run(
        &t,
        (&root, &manifest, &digest),
        PROD,
        &["/bin/cat", "/greeting"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--seccomp-profile",
                &seccomp,
                "--seccomp-profile-sha256",
                &seccomp_pin,
            ],
            "no_such_syscall",
        ),
        (
            &["--caps-policy", &caps, "--caps-policy-sha256", &caps_pin],
            "CAP_FROB",
        ),
        (&["--cgroup-parent", "/cgroup.procs/x"], "cgroup"),
    ];
    for (flags, want) in cases {
        // Agent mode: warned, and run.
        let mut agent = vec!["run", "--rootfs"];
        let r = root.display().to_string();
        agent.push(&r);
        agent.extend_from_slice(flags);
        agent.extend(["--", "/bin/cat", "/greeting"]);
        let o = leaves_nothing(|| in_own_mount_ns(&t, &agent));
        assert!(o.status.success(), "agent {flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "agent {flags:?}: {}", stderr(&o));
        // Production: refused.
        let mut prod = PROD.to_vec();
        prod.extend_from_slice(flags);
        let o = leaves_nothing(|| {
            attested_run(
                &t,
                (&root, &manifest, &digest),
                &prod,
                &["/bin/cat", "/greeting"],
            )
        });
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "production {flags:?}: {err}");
        assert!(stdout(&o).is_empty(), "production {flags:?} ran");
        assert_eq!(err.lines().count(), 1, "production {flags:?}: {err}");
        assert!(err.contains(want), "production {flags:?}: {err}");
    }
}

/// Secrets: in an in-memory tmpfs at /run/secrets, each 0400 and owned by the workload user,
/// read-only for it; their values nowhere else (environment, command line, record, events,
/// the runtime's output).
#[test]
fn secrets_reach_run_secrets_and_nowhere_else() {
    let _g = serial();
    let t = TempDir::new("prod-secrets");
    let value = format!("s3cr3t-{}", std::process::id());
    let src = t.path().join("api-key");
    std::fs::write(&src, &value).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600)).unwrap();
    let creds = t.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("db"), format!("{value}-db")).unwrap();
    let events = t.path().join("events.jsonl");
    let secret = format!("{}:api_key", src.display());
    let ev = events.display().to_string();
    let script = "stat -c '%a %U %s %n' /run/secrets /run/secrets/*; cat /run/secrets/api_key; echo; \
                  cat /run/secrets/database; echo; \
                  grep -c -F -f /run/secrets/api_key /proc/1/environ /proc/$$/environ /proc/1/cmdline /proc/$$/cmdline; \
                  echo x > /run/secrets/new || echo refused; \
                  grep ' /run/secrets ' /proc/self/mountinfo; sleep 1";
    let mut c = nucleus(&[
        "run",
        "--name",
        "secrets-test",
        "-u",
        "1000",
        "--secret",
        &secret,
        "--systemd-credential",
        "db:database",
        "--events-jsonl",
        &ev,
        "--",
        "sh",
        "-c",
        script,
    ]);
    c.env("CREDENTIALS_DIRECTORY", &creds);
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it runs: its record (state and plan) holds no value.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = run(&["inspect", "secrets-test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("api_key"), "{}", stdout(&o));
    let o2 = child.wait_with_output().unwrap();
    let (out, err) = (stdout(&o2), stderr(&o2));
    assert!(o2.status.success(), "{err}");
    assert!(out.contains("500 user1000 "), "{out}");
    assert!(
        out.contains(&format!(
            "400 user1000 {} /run/secrets/api_key",
            value.len()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{value}\n{value}-db\n")), "{out}");
    assert!(out.contains("refused"), "{out}");
    let mnt = out.lines().find(|l| l.contains(" /run/secrets ")).unwrap();
    assert!(
        mnt.contains(" ro,") && mnt.contains("noexec") && mnt.contains(" - tmpfs "),
        "{mnt}"
    );
    for l in out.lines().filter(|l| l.contains("/proc/")) {
        assert!(l.ends_with(":0"), "a value in {l}");
    }
    // Nowhere outside: the inspect output, events, the runtime's stderr, the state root.
    assert!(!stdout(&o).contains("s3cr3t"), "inspect: {}", stdout(&o));
    assert!(!std::fs::read_to_string(&events).unwrap().contains("s3cr3t"));
    assert!(!err.contains("s3cr3t"), "{err}");
    let grep = std::process::Command::new("grep")
        .args(["-rl", "s3cr3t"])
        .arg(state_root())
        .output()
        .unwrap();
    assert!(
        stdout(&grep).is_empty(),
        "in the state root: {}",
        stdout(&grep)
    );
}

#[test]
fn bad_secrets_are_refused_with_one_line_and_nothing_left() {
    let _g = serial();
    let t = TempDir::new("prod-bad-secrets");
    let big = t.path().join("big");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).unwrap();
    let ok = t.path().join("ok");
    std::fs::write(&ok, "v").unwrap();
    let fifo = t.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let s = |p: &Path| p.display().to_string();
    let (big, ok, fifo, dir) = (s(&big), s(&ok), s(&fifo), t.s());
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec!["--secret".into(), "/nonexistent/key".into()],
            "--secret",
            "/nonexistent/key",
        ),
        (
            vec!["--secret".into(), dir.clone()],
            "--secret",
            "not a regular file",
        ),
        (
            vec!["--secret".into(), fifo],
            "--secret",
            "not a regular file",
        ),
        (
            vec!["--secret".into(), big],
            "--secret",
            "larger than 1 MiB",
        ),
        (
            vec!["--secret".into(), "relative/key".into()],
            "--secret",
            "absolute",
        ),
        (
            vec!["--secret".into(), format!("{ok}:a b")],
            "--secret",
            "a secret's name",
        ),
        (
            vec!["--secret".into(), format!("{ok}:..")],
            "--secret",
            "a secret's name",
        ),
        (
            vec![
                "--secret".into(),
                format!("{ok}:k"),
                "--secret".into(),
                format!("{ok}:k"),
            ],
            "--secret",
            "two secrets are named \"k\"",
        ),
        (
            vec!["--systemd-credential".into(), "nope".into()],
            "--systemd-credential",
            "\"nope\": no such credential",
        ),
        (
            vec!["--systemd-credential".into(), "../ok".into()],
            "--systemd-credential",
            "a secret's name",
        ),
    ];
    for (flags, flag, want) in cases {
        let mut args = vec!["run"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["--", "true"]);
        let o = leaves_nothing(|| {
            let mut c = nucleus(&args);
            c.env("CREDENTIALS_DIRECTORY", &dir);
            output_within(c.stdin(std::process::Stdio::null()), DEADLINE)
        });
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!("{flag}: ")) && err.contains(want),
            "{args:?}: {err}"
        );
    }
    // Without $CREDENTIALS_DIRECTORY.
    let o = run(&["run", "--systemd-credential", "db", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("$CREDENTIALS_DIRECTORY is not set"),
        "{}",
        stderr(&o)
    );
}
