//! `nucleus cp` (#21): trees and large files in and out with identical contents, links
//! copied as links and never followed out of either tree, `..` refused, tar streams, the
//! workload user owning what is copied in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// sha256sum of every file under `dir`, by relative path (host side).
fn hashes(dir: &Path) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . -type f -print0 | sort -z | xargs -0 sha256sum")
        .arg("sh")
        .arg(dir)
        .output()
        .unwrap();
    stdout(&o)
}

fn cp(src: &str, dst: &str) -> std::process::Output {
    run(&["cp", src, dst])
}

#[test]
fn trees_and_large_files_go_in_and_out_unchanged() {
    let _g = serial();
    let t = TempDir::new("cp-trees");
    let s = Session::new(&["-u", "1000", "--tmpfs", "/data:1g"]);
    // 5000 small files in 50 directories.
    let tree = t.path().join("tree");
    for i in 0..5000 {
        let d = tree.join(format!("d{:02}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&d).unwrap();
        }
        std::fs::write(
            d.join(format!("f{i}")),
            format!("file {i}\n").repeat(i % 7 + 1),
        )
        .unwrap();
    }
    let t0 = std::time::Instant::now();
    let o = cp(&tree.display().to_string(), &s.at("/data/tree"));
    assert!(o.status.success(), "{}", stderr(&o));
    eprintln!("5000 files in: {:?}", t0.elapsed());
    // Inside: the same contents, owned by the workload user.
    let inside = s.sh("cd /data/tree && find . -type f | sort | xargs sha256sum");
    assert_eq!(inside, hashes(&tree));
    assert_eq!(
        s.sh("stat -c %U /data/tree /data/tree/d00/f0 | sort -u"),
        "user1000\n"
    );
    // And out again.
    let back = t.path().join("back");
    let t0 = std::time::Instant::now();
    let o = cp(&s.at("/data/tree"), &back.display().to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    eprintln!("5000 files out: {:?}", t0.elapsed());
    assert_eq!(hashes(&back), hashes(&tree));
    // One large file (500 MB), in and out.
    let big = t.path().join("big.bin");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 500000000 /dev/urandom > {}",
            big.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success());
    let t0 = std::time::Instant::now();
    let o = cp(&big.display().to_string(), &s.at("/data/"));
    assert!(o.status.success(), "{}", stderr(&o));
    eprintln!("500 MB in: {:?}", t0.elapsed());
    let want = hashes(&t.path().join("bigdir-none"));
    let _ = want;
    let host_sum = stdout(&Command::new("sha256sum").arg(&big).output().unwrap());
    let host_sum = host_sum.split(' ').next().unwrap().to_string();
    let inside = s.sh("sha256sum /data/big.bin");
    assert!(inside.starts_with(&host_sum), "{inside} vs {host_sum}");
    let out = t.path().join("big-out.bin");
    let t0 = std::time::Instant::now();
    let o = cp(&s.at("/data/big.bin"), &out.display().to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    eprintln!("500 MB out: {:?}", t0.elapsed());
    let out_sum = stdout(&Command::new("sha256sum").arg(&out).output().unwrap());
    assert!(out_sum.starts_with(&host_sum));
}

#[test]
fn links_are_copied_as_links_and_never_followed_out() {
    let _g = serial();
    let t = TempDir::new("cp-links");
    let s = Session::new(&[]);
    // A link in the sandbox to a host path: copied out as that link, the host file untouched.
    s.sh("mkdir -p /tmp/x && echo inside > /tmp/x/f && ln -s /etc/shadow /tmp/x/shadow && ln -s /etc/shadow /tmp/lone");
    let out = t.path().join("x");
    let o = cp(&s.at("/tmp/x"), &out.display().to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_link(out.join("shadow")).unwrap(),
        Path::new("/etc/shadow")
    );
    assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "inside\n");
    let lone = t.path().join("lone");
    let o = cp(&s.at("/tmp/lone"), &lone.display().to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_link(&lone).unwrap(), Path::new("/etc/shadow"));
    // A destination in the sandbox that is a link to a host path: written in the sandbox's
    // own tree (its /etc/shadow is not the host's), never the host's.
    s.sh("ln -s /etc /tmp/etc-link");
    let f = t.path().join("payload");
    std::fs::write(&f, "payload\n").unwrap();
    let host_shadow = std::fs::read("/etc/shadow").unwrap();
    let o = cp(&f.display().to_string(), &s.at("/tmp/etc-link/shadow"));
    assert_ne!(
        o.status.code(),
        Some(0),
        "wrote through the link: {}",
        stdout(&o)
    );
    assert_eq!(std::fs::read("/etc/shadow").unwrap(), host_shadow);
    // `..` is refused on the sandbox's side.
    for (a, b) in [
        (s.at("/../../etc/passwd"), t.s() + "/p"),
        (f.display().to_string(), s.at("/tmp/../../x")),
    ] {
        let o = cp(&a, &b);
        assert_eq!(o.status.code(), Some(125), "{a} {b}");
        assert!(stderr(&o).contains("without `..`"), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1);
    }
    // Neither side a sandbox: one line.
    let o = cp("/etc/hostname", &t.s());
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("one side is ID:PATH"), "{}", stderr(&o));
}

#[test]
fn tar_streams_in_and_out() {
    let _g = serial();
    let t = TempDir::new("cp-stream");
    let s = Session::new(&[]);
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/a.txt"), "alpha\n").unwrap();
    let tar = Command::new("tar")
        .args(["-C", &src.display().to_string(), "-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut c = nucleus(&["cp", "-", &s.at("/tmp")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(c.wait().unwrap().success());
    assert_eq!(s.sh("cat /tmp/sub/a.txt"), "alpha\n");
    let o = run(&["cp", &s.at("/tmp/sub"), "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listing = Command::new("tar")
        .args(["-tf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut p| {
            p.stdin.take().unwrap().write_all(&o.stdout)?;
            p.wait_with_output()
        })
        .unwrap();
    let names = stdout(&listing);
    assert!(names.contains("sub/a.txt"), "{names}");
}
