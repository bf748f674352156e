//! `nucleus seccomp generate`.

use crate::log::Logger;
use anyhow::{Context, Result};
use nucleus_spec::config::ConfigError;

/// `nucleus seccomp generate TRACE -o PROFILE`.
pub(crate) fn generate(g: &crate::cli::GenerateArgs, log: &Logger) -> Result<u8> {
    let bad = |m: String| ConfigError::new("TRACE", format!("{}: {m}", g.trace.display()));
    let text = std::fs::read_to_string(&g.trace).map_err(|e| bad(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let calls = doc["syscalls"]
        .as_object()
        .ok_or_else(|| bad("not a trace from `nucleus seccomp trace` (no \"syscalls\")".into()))?;
    // (Only names: the bucket of numbers the architecture does not define is no syscall.)
    let names: Vec<String> = calls
        .keys()
        .filter(|n| nucleus_spec::seccomp::syscalls::number(n).is_some())
        .cloned()
        .collect();
    for n in &g.allow_denied {
        if nucleus_spec::seccomp::syscalls::number(n).is_none() {
            return Err(ConfigError::new(
                "--allow-denied",
                format!("{n:?} is not a syscall of this architecture"),
            )
            .into());
        }
        if !names.contains(n) {
            return Err(
                ConfigError::new("--allow-denied", format!("{n:?} is not in the trace")).into(),
            );
        }
    }
    let arch = doc["arch"].as_str().unwrap_or_default();
    let gen = nucleus_spec::seccomp::profile::from_trace(arch, &names, &g.allow_denied);
    std::fs::write(&g.output, serde_json::to_vec_pretty(&gen.profile)?)
        .with_context(|| format!("write {}", g.output.display()))?;
    log.info(&format!(
        "{} allows {} traced syscalls with the default filter's argument rules; everything else fails with EPERM",
        g.output.display(),
        names.len() - gen.kept_refused.len()
    ));
    if !gen.kept_refused.is_empty() {
        log.warn(&format!(
            "the trace used syscalls the default filter refuses, refused in the profile too: {} (--allow-denied NAME to allow one)",
            gen.kept_refused.join(", ")
        ));
    }
    if !gen.loosened.is_empty() {
        log.warn(&format!(
            "the profile is looser than the default filter: it allows {}",
            gen.loosened.join(", ")
        ));
    }
    Ok(0)
}
