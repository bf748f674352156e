//! Nix (#20): what Debian's Nix 2.8 can check offline, with no nixpkgs. Every .nix file of the
//! repository parses; nix/lib.nix's mkRootfs, built with `nix-build` and from an input-less
//! flake with `nix build`, from a static busybox and this nucleus added to the store, gives a
//! root filesystem whose manifest (`nucleus rootfs manifest --nix-closure`, run in the Nix
//! build) a production service runs attested on. docs/nix.md says what is not evaluated here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const NIX_CONFIG: &str =
    "build-users-group =\nexperimental-features = nix-command flakes\nsubstituters =\n";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn nix(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .env("NIX_CONFIG", NIX_CONFIG)
        .output()
        .unwrap_or_else(|e| {
            panic!("{cmd}: {e} (scripts/test.sh installs nix-bin); refusing to skip")
        });
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o).trim().to_string()
}

/// A static busybox and this nucleus in the store (each in a directory with bin/).
fn tools(t: &TempDir) -> (String, String) {
    nix("nix-store", &["--init"]);
    let bb = t.path().join("bb/bin");
    let nu = t.path().join("nu/bin");
    std::fs::create_dir_all(&bb).unwrap();
    std::fs::create_dir_all(&nu).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is required (scripts/test.sh installs it)");
    std::fs::copy(busybox, bb.join("busybox")).unwrap();
    std::fs::copy(bin(), nu.join("nucleus")).unwrap();
    let add = |p: PathBuf| nix("nix-store", &["--add", &p.display().to_string()]);
    (add(t.path().join("bb")), add(t.path().join("nu")))
}

#[test]
fn every_nix_file_parses() {
    let mut files = vec![repo().join("flake.nix")];
    for e in std::fs::read_dir(repo().join("nix")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "nix") {
            files.push(e.path());
        }
    }
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        nix("nix-instantiate", &["--parse", &f.display().to_string()]);
    }
}

/// Run the httpd service from a built root filesystem, attested, in production mode; what it
/// served and what the sandbox's root is.
fn serve_from(t: &TempDir, rootfs: &str, manifest_dir: &str) -> String {
    let digest = std::fs::read_to_string(Path::new(manifest_dir).join("sha256")).unwrap();
    let manifest = format!("{manifest_dir}/manifest");
    let cache = t.path().join("cache").display().to_string();
    let script = "mkdir -p /tmp/www && echo served-from-nix > /tmp/www/index.html && \
                  httpd -p 127.0.0.1:8080 -h /tmp/www && wget -qO- http://127.0.0.1:8080/ && \
                  grep ' / / ' /proc/self/mountinfo && readlink /bin/sh";
    let o = output_within(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "--"])
            .arg(bin())
            .args([
                "run",
                "--service-mode",
                "production",
                "--memory",
                "64m",
                "--cpus",
                "0.5",
                "--rootfs",
                rootfs,
                "--rootfs-manifest",
                &manifest,
                "--rootfs-sha256",
                digest.trim(),
                "--rootfs-cache",
                &cache,
                "--",
                "/bin/sh",
                "-c",
                script,
            ])
            .env("NUCLEUS_ROOT", state_root())
            .stdin(std::process::Stdio::null()),
        DEADLINE,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn mk_rootfs_built_offline_runs_attested_in_production() {
    let _g = serial();
    let t = TempDir::new("nix-build");
    let (bb, nu) = tools(&t);
    let expr = format!(
        "let l = import {}/nix/lib.nix {{ system = builtins.currentSystem; busybox = builtins.storePath {bb}; nucleus = builtins.storePath {nu}; }}; \
         in l.mkRootfs {{ name = \"httpd-rootfs\"; contents = [ (builtins.storePath {bb}) ]; }}",
        repo().display()
    );
    let f = t.path().join("rootfs.nix");
    std::fs::write(&f, &expr).unwrap();
    let fs = f.display().to_string();
    let rootfs = nix("nix-build", &[&fs, "--no-out-link"]);
    let manifest = nix("nix-build", &[&fs, "-A", "manifest", "--no-out-link"]);
    // The manifest describes the root and its closure (busybox at nix/store).
    let text = std::fs::read_to_string(format!("{manifest}/manifest")).unwrap();
    assert!(
        text.starts_with("nucleus-rootfs-manifest 1\nnix-closure\n"),
        "{text}"
    );
    let bb_name = bb.trim_start_matches("/nix/store/");
    assert!(
        text.contains(&format!("nix/store/{bb_name}/bin/busybox f 0555 0 0 ")),
        "{text}"
    );
    // Its closure as nix-store sees it is what the manifest holds.
    for p in nix("nix-store", &["-qR", &rootfs]).lines() {
        let name = p.trim_start_matches("/nix/store/");
        assert!(text.contains(&format!("\nnix/store/{name} d ")), "{name}");
    }
    let out = serve_from(&t, &rootfs, &manifest);
    assert!(out.contains("served-from-nix"), "{out}");
    assert!(out.contains(" - erofs "), "{out}");
    assert!(out.contains(&format!("{bb}/bin/busybox")), "{out}");
    // `rootfs verify` of the closure against the manifest holds too.
    let o = run(&[
        "rootfs",
        "verify",
        &rootfs,
        "--manifest",
        &format!("{manifest}/manifest"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_input_less_flake_builds_the_same_with_the_library() {
    let _g = serial();
    let t = TempDir::new("nix-flake");
    let (bb, nu) = tools(&t);
    let flake = t.path().join("flake");
    std::fs::create_dir_all(flake.join("nix")).unwrap();
    for f in ["lib.nix", "mk-rootfs.sh", "mk-manifest.sh"] {
        std::fs::copy(repo().join("nix").join(f), flake.join("nix").join(f)).unwrap();
    }
    // The tools come with the flake's source (a flake may not name store paths of its own).
    for (dir, from) in [("bb", &bb), ("nu", &nu)] {
        let o = Command::new("cp")
            .args(["-r", from])
            .arg(flake.join(dir))
            .output()
            .unwrap();
        assert!(o.status.success());
    }
    std::fs::write(
        flake.join("flake.nix"),
        r#"{
  outputs = { self }:
    let l = import ./nix/lib.nix { system = "x86_64-linux"; busybox = ./bb; nucleus = ./nu; };
        r = l.mkRootfs { name = "flake-rootfs"; contents = [ ./bb ]; };
    in { packages.x86_64-linux = { default = r; manifest = r.manifest; }; };
}
"#,
    )
    .unwrap();
    let url = format!("path:{}", flake.display());
    let built = |attr: &str| -> String {
        let json = nix(
            "nix",
            &["build", &format!("{url}#{attr}"), "--no-link", "--json"],
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v[0]["outputs"]["out"].as_str().unwrap().to_string()
    };
    let rootfs = built("default");
    let manifest = built("manifest");
    let out = serve_from(&t, &rootfs, &manifest);
    assert!(out.contains("served-from-nix"), "{out}");
}

/// nix/module.nix renders each container's unit with `nucleus systemd unit --config` from a
/// JSON file of these keys (its configOf): they must be `run`'s, with these value types.
#[test]
fn the_module_s_launch_configuration_renders_a_unit() {
    let t = TempDir::new("nix-module");
    let module = std::fs::read_to_string(repo().join("nix/module.nix")).unwrap();
    let cfg = serde_json::json!({
        "service_mode": "production",
        "memory": "512m",
        "cpus": "1",
        "rootfs": "/nix/store/aaa-rootfs",
        "rootfs_manifest": "/nix/store/bbb-manifest/manifest",
        "network": "none",
        "env": ["A=b"],
        "dns": [],
        "publish": [],
        "egress_allow": [],
        "egress_domain": [],
        "sd_notify": false,
        "restart": "on-failure",
        "pids": "256",
        "user": "1000",
        "readiness_tcp": 8080,
        "health_cmd": "true",
        "health_interval": "30s",
        "health_retries": 3,
    });
    for key in cfg.as_object().unwrap().keys() {
        assert!(
            module.contains(&format!("{key} =")),
            "module.nix does not set {key}"
        );
    }
    let f = t.path().join("web.json");
    std::fs::write(&f, cfg.to_string()).unwrap();
    let o = run(&[
        "systemd",
        "unit",
        "web",
        "--nucleus",
        "/nix/store/ccc-nucleus/bin/nucleus",
        "--config",
        &f.display().to_string(),
        "--rootfs-sha256",
        &"ab".repeat(32),
        "--load-credential",
        "api:/run/keys/api",
        "--",
        "/bin/httpd",
        "-f",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let unit = stdout(&o);
    for want in [
        "ExecStart=/nix/store/ccc-nucleus/bin/nucleus run ",
        "--rootfs-manifest /nix/store/bbb-manifest/manifest",
        "--readiness-tcp 8080",
        "--service-mode production",
        "--systemd-credential api",
        "LoadCredential=api:/run/keys/api",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(want), "{want}: {unit}");
    }
}
