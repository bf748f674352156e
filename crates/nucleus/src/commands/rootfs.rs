//! `nucleus rootfs manifest|verify`, and the check a start with an attested root makes.

use crate::log::Logger;
use anyhow::{Context, Result};
use nucleus_spec::attest::{AttestedRoot, Manifest};
use nucleus_spec::config::ConfigError;
use nucleus_sys::attest::{self, SealError};
use std::path::Path;
use std::time::Instant;

/// `nucleus rootfs manifest DIR [-o FILE]`.
pub(crate) fn manifest(a: &crate::cli::ManifestArgs, log: &Logger) -> Result<u8> {
    let t = Instant::now();
    if !a.dir.is_dir() {
        return Err(
            ConfigError::new("DIR", format!("{}: not a directory", a.dir.display())).into(),
        );
    }
    let m = match a.nix_closure {
        false => attest::manifest(&a.dir)?,
        true => attest::manifest_closure(&a.dir, &closure(&a.dir, a.nix_graph.as_deref())?)?,
    };
    let text = m.render();
    let digest = nucleus_spec::policy::sha256_hex(text.as_bytes());
    match &a.output {
        Some(out) => {
            std::fs::write(out, &text).with_context(|| format!("write {}", out.display()))?;
            outln!("{digest}");
        }
        None => out!("{text}"),
    }
    log.info(&format!(
        "{} entries, {} MB of content in {:.2} s; pin with --rootfs-sha256 {digest}",
        m.entries.len(),
        m.content_bytes() >> 20,
        t.elapsed().as_secs_f64()
    ));
    Ok(0)
}

/// The store paths of `dir`'s closure: from a references graph (or list) file, or from
/// `nix-store -qR`.
fn closure(dir: &Path, graph: Option<&Path>) -> Result<Vec<std::path::PathBuf>> {
    let text = match graph {
        Some(g) => std::fs::read_to_string(g)
            .map_err(|e| ConfigError::new("--nix-graph", format!("{}: {e}", g.display())))?,
        None => {
            let o = std::process::Command::new("nix-store")
                .arg("-qR")
                .arg(dir)
                .output()
                .map_err(|e| {
                    ConfigError::new(
                        "--nix-closure",
                        format!("nix-store: {e} (install Nix, or give --nix-graph)"),
                    )
                })?;
            if !o.status.success() {
                return Err(ConfigError::new(
                    "--nix-closure",
                    format!(
                        "nix-store -qR {}: {}",
                        dir.display(),
                        nucleus_spec::config::single_line(&String::from_utf8_lossy(&o.stderr))
                    ),
                )
                .into());
            }
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    };
    let paths = nucleus_spec::attest::closure_paths(&text).map_err(|m| {
        ConfigError::new(
            if graph.is_some() {
                "--nix-graph"
            } else {
                "--nix-closure"
            },
            m,
        )
    })?;
    if !paths.iter().any(|p| p == dir) {
        return Err(ConfigError::new(
            "--nix-closure",
            format!(
                "{}: not in its own closure (is it a store path?)",
                dir.display()
            ),
        )
        .into());
    }
    Ok(paths)
}

fn read_pinned(
    flag: &str,
    path: &Path,
    pin: Option<&str>,
) -> Result<(Manifest, attest::Stat, String)> {
    let (text, st) = attest::read_manifest(path)
        .map_err(|e| ConfigError::new(flag, format!("{}: {e}", path.display())))?;
    let have = nucleus_spec::policy::sha256_hex(&text);
    if let Some(pin) = pin {
        let want = nucleus_spec::attest::parse_pin("--rootfs-sha256", pin)?;
        if have != want {
            return Err(ConfigError::new(
                "--rootfs-sha256",
                format!("digest mismatch: the manifest's sha256 is {have}, the pin is {want}; nothing was started"),
            )
            .into());
        }
    }
    let m = Manifest::parse(flag, &text)?;
    Ok((m, st, have))
}

/// `nucleus rootfs verify DIR --manifest FILE [--sha256 HEX]`.
pub(crate) fn verify(a: &crate::cli::VerifyArgs, log: &Logger) -> Result<u8> {
    let t = Instant::now();
    let (m, _, _) = read_pinned("--manifest", &a.manifest, a.sha256.as_deref())?;
    match attest::verify(&a.dir, &m) {
        Ok(()) => {
            log.info(&format!(
                "{}: matches the manifest ({} entries, {} MB) in {:.2} s",
                a.dir.display(),
                m.entries.len(),
                m.content_bytes() >> 20,
                t.elapsed().as_secs_f64()
            ));
            Ok(0)
        }
        Err(SealError::Differs(line)) => Err(ConfigError::new("DIR", line).into()),
        Err(SealError::Sys(e)) => Err(e.into()),
    }
}

/// Before a start with an attested root: nothing to do when its sealed image's verdict holds
/// (a few system calls); otherwise the manifest is read and checked against its pin and the
/// tree is verified in full and sealed. A difference stops the start with one line naming the
/// path; nothing is left behind.
/// Returns the sealed image's top-level entries (read from its verdict, once).
pub(crate) fn prepare(
    a: &AttestedRoot,
    log: &Logger,
) -> Result<Vec<nucleus_spec::host::HostEntry>> {
    let top = || attest::sealed_top(&a.cache, &a.sha256, &a.source, &a.manifest);
    if let Some(t) = top() {
        return Ok(t);
    }
    let t = Instant::now();
    let (m, st, _) = read_pinned("--rootfs-manifest", &a.manifest, Some(&a.sha256))?;
    match attest::seal(&a.source, (&m, &a.manifest, &st), &a.sha256, &a.cache) {
        Ok(_) => {
            log.info(&format!(
                "rootfs {}: verified against its manifest ({} entries, {} MB) in {:.2} s; sealed in {}",
                a.source.display(),
                m.entries.len(),
                m.content_bytes() >> 20,
                t.elapsed().as_secs_f64(),
                attest::image_path(&a.cache, &a.sha256).display()
            ));
            top().ok_or_else(|| {
                anyhow::anyhow!(
                    "rootfs: the sealed image's verdict did not hold just after sealing"
                )
            })
        }
        Err(SealError::Differs(line)) => {
            Err(ConfigError::new("--rootfs", format!("{line}; nothing was started")).into())
        }
        Err(SealError::Sys(e)) => Err(e.into()),
    }
}
