//! `nucleus systemd unit|install`: a service as a systemd unit (`nucleus-NAME.service`).
//!
//! The unit runs `nucleus run` in the foreground with the flags given here (merged with
//! `--config`), re-rendered from the typed flags (only those that differ from the defaults),
//! so what the unit runs is exactly what `nucleus run` would be given. Type=notify: nucleus
//! tells systemd READY=1 when the service is ready (at start, or as --sd-notify,
//! --readiness-tcp, --readiness-exec say). `--restart` becomes the unit's Restart= (systemd
//! restarts a foreground run); `--secret SRC[:NAME]` becomes LoadCredential=NAME:SRC (systemd
//! reads the file, with its privileges, into the service's credential store) and
//! `--systemd-credential NAME`; `--load-credential NAME:PATH` adds one directly.

use crate::cli::{RunArgs, UnitArgs};
use crate::log::Logger;
use anyhow::{Context, Result};
use clap::Parser;
use nucleus_spec::config::{single_line, ConfigError, RestartPolicy, Secret};
use std::path::{Path, PathBuf};

/// Where `install` writes units unless told.
pub(crate) const UNIT_DIR: &str = "/etc/systemd/system";

/// A unit's file name.
pub(crate) fn unit_name(name: &str) -> String {
    format!("nucleus-{name}.service")
}

/// One argument of an Exec line, quoted for systemd: `%` (specifiers) and `$` (variables)
/// doubled, anything but plain characters in double quotes with C escapes.
fn quote(arg: &str) -> String {
    let doubled = arg.replace('%', "%%").replace('$', "$$");
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=,+@-%$".contains(&b));
    if plain {
        return doubled;
    }
    let mut s = String::from("\"");
    for c in doubled.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// The flags of `args` that differ from `nucleus run`'s defaults, as arguments.
fn flags(args: &RunArgs) -> Result<Vec<String>> {
    let default = match crate::cli::Cli::try_parse_from(["nucleus", "run", "--", "x"])?.command {
        crate::cli::Command::Run(r) => serde_json::to_value(*r)?,
        _ => anyhow::bail!("the default flags of run"),
    };
    let have = serde_json::to_value(args)?;
    let (Some(have), Some(default)) = (have.as_object(), default.as_object()) else {
        anyhow::bail!("the flags of run");
    };
    let mut out = Vec::new();
    for (k, v) in have {
        if matches!(
            k.as_str(),
            "command" | "config" | "config_fd" | "dry_run" | "detach"
        ) || default.get(k) == Some(v)
        {
            continue;
        }
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            serde_json::Value::Bool(true) => out.push(flag),
            serde_json::Value::Bool(false) | serde_json::Value::Null => {}
            serde_json::Value::Array(items) => {
                for i in items {
                    out.push(flag.clone());
                    out.push(scalar(i));
                }
            }
            other => {
                out.push(flag);
                out.push(scalar(other));
            }
        }
    }
    Ok(out)
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The unit for `a`.
pub(crate) fn render(a: &UnitArgs) -> Result<String> {
    let name = &a.service;
    nucleus_spec::state::validate_name("NAME", name)?;
    let mut run = a.run.clone();
    for (bad, flag) in [
        (run.detach, "-d"),
        (run.rm, "--rm"),
        (run.events_fd.is_some(), "--events-fd"),
        (run.console_socket.is_some(), "--console-socket"),
        (run.tty, "--tty"),
    ] {
        if bad {
            return Err(ConfigError::new(
                flag,
                "not in a unit (it runs in the foreground, its output to the journal)",
            )
            .into());
        }
    }
    if run.command.is_empty() {
        return Err(
            ConfigError::new("COMMAND", "missing: give the service's command after `--`").into(),
        );
    }
    if let Some(n) = &run.name {
        if n != name {
            return Err(ConfigError::new(
                "--name",
                format!("the sandbox is named after the service ({name})"),
            )
            .into());
        }
    }
    run.name = Some(name.clone());
    if let Some(bare) = run.env.iter().find(|e| !e.contains('=')) {
        return Err(ConfigError::new(
            "--env",
            format!(
                "{:?}: a unit does not have this shell's environment; give KEY=VALUE (a secret: --secret)",
                single_line(bare)
            ),
        )
        .into());
    }
    // Restarts are systemd's.
    let restart = RestartPolicy::parse("--restart", &run.restart)?;
    run.restart = "no".into();
    // Credentials: systemd loads them; nucleus takes them from $CREDENTIALS_DIRECTORY.
    let mut creds: Vec<(String, PathBuf)> = Vec::new();
    for s in std::mem::take(&mut run.secret) {
        let s = Secret::parse(&s)?;
        creds.push((s.name.clone(), s.src));
        run.systemd_credential.push(s.name);
    }
    for l in &a.load_credential {
        let (n, p) = l.split_once(':').ok_or_else(|| {
            ConfigError::new("--load-credential", format!("{l:?}: expected NAME:PATH"))
        })?;
        Secret::check_name("--load-credential", n)?;
        if !p.starts_with('/') {
            return Err(ConfigError::new(
                "--load-credential",
                format!("{l:?}: PATH must be absolute"),
            )
            .into());
        }
        creds.push((n.to_string(), PathBuf::from(p)));
        let listed = run
            .systemd_credential
            .iter()
            .any(|c| c.split(':').next() == Some(n));
        if !listed {
            run.systemd_credential.push(n.to_string());
        }
    }
    for c in &run.systemd_credential {
        let n = c.split(':').next().unwrap_or(c);
        if !creds.iter().any(|(cn, _)| cn == n) {
            return Err(ConfigError::new(
                "--systemd-credential",
                format!(
                    "{n:?}: the unit loads no such credential (give --load-credential {n}:PATH)"
                ),
            )
            .into());
        }
    }
    // The flags as `run` will see them: checked now (as far as can be without the unit's
    // credentials), so a unit that cannot start is not written.
    let mut check = run.clone();
    check.systemd_credential.clear();
    crate::run::config(&check)?;
    let exe = match &a.nucleus {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("this program's path")?,
    };
    let mut exec = vec![exe.display().to_string(), "run".to_string()];
    exec.extend(flags(&run)?);
    exec.push("--".into());
    exec.extend(run.command.iter().cloned());
    let exec_line = exec.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ");
    let description = a
        .description
        .clone()
        .unwrap_or_else(|| format!("nucleus service {name}"));
    let mut u = String::new();
    u.push_str(&format!(
        "# Made by `nucleus systemd unit` ({}): the service {name} in a nucleus sandbox.\n",
        env!("CARGO_PKG_VERSION")
    ));
    u.push_str("[Unit]\n");
    u.push_str(&format!("Description={}\n", single_line(&description)));
    u.push_str("After=network-online.target\nWants=network-online.target\n");
    if let RestartPolicy::OnFailure { max: Some(m) } = restart {
        // At most MAX restarts: the start limit is hit at the MAX+1st start.
        u.push_str(&format!(
            "StartLimitIntervalSec=infinity\nStartLimitBurst={}\n",
            m + 1
        ));
    }
    u.push('\n');
    u.push_str("[Service]\n");
    u.push_str("# nucleus says READY=1 when the service is ready (its readiness flags).\n");
    u.push_str("Type=notify\nNotifyAccess=main\n");
    u.push_str(&format!("ExecStart={exec_line}\n"));
    u.push_str(&format!("SyslogIdentifier={name}\n"));
    u.push_str("StandardOutput=journal\nStandardError=journal\n");
    u.push_str(
        "# SIGTERM to nucleus, which passes it to the workload and tears the sandbox down;\n\
         # SIGKILL to everything left after TimeoutStopSec.\n",
    );
    u.push_str("KillMode=mixed\n");
    u.push_str(
        "# A workload that ends on that SIGTERM: stopped, not failed.\nSuccessExitStatus=143\n",
    );
    let backoff =
        "# Back-off: 1 s, growing to 30 s over 5 restarts (systemd 254+; older ones keep 1 s).\n\
                   RestartSec=1s\nRestartSteps=5\nRestartMaxDelaySec=30s\n";
    match restart {
        RestartPolicy::No => u.push_str("Restart=no\n"),
        RestartPolicy::Always => u.push_str(&format!("Restart=always\n{backoff}")),
        RestartPolicy::OnFailure { .. } => u.push_str(&format!("Restart=on-failure\n{backoff}")),
    }
    u.push_str("# The sandbox's cgroups are made under the service's own.\nDelegate=yes\n");
    for (n, p) in &creds {
        u.push_str(&format!("LoadCredential={n}:{}\n", quote_path(p)));
    }
    u.push_str(
        "# The runtime needs root, namespaces, mounts, cgroups, /proc/sys and the network. What\n\
         # the unit takes from it the sandbox never has anyway (systemd's seccomp and limits\n\
         # pass to the workload: no MemoryDenyWriteExecute, which breaks every JIT, no UMask or\n\
         # LimitCORE, no ProtectHostname, which would refuse the sandbox its own hostname).\n",
    );
    for line in [
        "NoNewPrivileges=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "KeyringMode=private",
    ] {
        u.push_str(line);
        u.push('\n');
    }
    u.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    Ok(u)
}

fn quote_path(p: &Path) -> String {
    p.display().to_string().replace('%', "%%")
}

/// `nucleus systemd unit NAME [flags] -- CMD`: print the unit.
pub(crate) fn unit(a: &UnitArgs) -> Result<u8> {
    out!("{}", render(a)?);
    Ok(0)
}

/// `nucleus systemd install NAME [flags] -- CMD`: write the unit, reload systemd, enable it
/// (and with --now start it, waiting until it is ready).
pub(crate) fn install(a: &UnitArgs, unit_dir: &Path, now: bool, log: &Logger) -> Result<u8> {
    let text = render(a)?;
    let file = unit_dir.join(unit_name(&a.service));
    std::fs::create_dir_all(unit_dir).with_context(|| format!("mkdir {}", unit_dir.display()))?;
    // (Written whole, then renamed: systemd never reads half a unit.)
    let tmp = unit_dir.join(format!(".{}.tmp", unit_name(&a.service)));
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("write {}", file.display()))?;
    let systemctl = |args: &[&str]| -> Result<()> {
        let st = std::process::Command::new("systemctl")
            .args(args)
            .status()
            .context("systemctl")?;
        anyhow::ensure!(st.success(), "systemctl {} failed ({st})", args.join(" "));
        Ok(())
    };
    systemctl(&["daemon-reload"])?;
    let unit = unit_name(&a.service);
    if now {
        systemctl(&["enable", "--now", &unit])?;
    } else {
        systemctl(&["enable", &unit])?;
    }
    log.info(&format!(
        "{} installed and enabled{}",
        file.display(),
        if now { ", started" } else { "" }
    ));
    Ok(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(argv: &[&str]) -> UnitArgs {
        let mut all = vec!["nucleus", "systemd", "unit"];
        all.extend_from_slice(argv);
        match crate::cli::Cli::try_parse_from(all).unwrap().command {
            crate::cli::Command::Systemd(crate::cli::SystemdCmd::Unit(u)) => *u,
            _ => unreachable!(),
        }
    }

    /// The ExecStart line, split as systemd splits it (enough of its rules for these units).
    fn exec_args(unit: &str) -> Vec<String> {
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars().peekable();
        let mut quoted = false;
        let mut any = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    quoted = !quoted;
                    any = true;
                }
                '\\' if quoted => match chars.next().unwrap() {
                    'n' => cur.push('\n'),
                    't' => cur.push('\t'),
                    o => cur.push(o),
                },
                ' ' if !quoted => {
                    if any || !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    any = false;
                }
                '%' | '$' => {
                    // Doubled on the way out.
                    assert_eq!(chars.next(), Some(c));
                    cur.push(c);
                }
                c => cur.push(c),
            }
        }
        if any || !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    #[test]
    fn the_unit_runs_exactly_the_flags_given() {
        let u = parse(&[
            "web",
            "--nucleus",
            "/usr/bin/nucleus",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "-e",
            "GREETING=a \"quoted\" $HOME 100%",
            "--sd-notify",
            "--restart",
            "on-failure:5",
            "--secret",
            "/etc/web/key:api_key",
            "--",
            "sh",
            "-c",
            "echo $GREETING; exec httpd -f",
        ]);
        let text = render(&u).unwrap();
        assert!(text.contains("Type=notify\n"), "{text}");
        assert!(text.contains("Restart=on-failure\n"), "{text}");
        assert!(
            text.contains("[Unit]\nDescription=nucleus service web\nAfter=network-online.target\nWants=network-online.target\nStartLimitIntervalSec=infinity\nStartLimitBurst=6\n"),
            "{text}"
        );
        assert!(
            text.contains("LoadCredential=api_key:/etc/web/key\n"),
            "{text}"
        );
        assert!(text.contains("Delegate=yes\n"), "{text}");
        let args = exec_args(&text);
        assert_eq!(args[0], "/usr/bin/nucleus");
        assert_eq!(args[1], "run");
        // What systemd will run parses back into the same flags (restart and secrets moved).
        let mut argv = vec!["nucleus".to_string()];
        argv.extend(args[1..].iter().cloned());
        let back = match crate::cli::Cli::try_parse_from(&argv).unwrap().command {
            crate::cli::Command::Run(r) => *r,
            _ => unreachable!(),
        };
        assert_eq!(back.env, ["GREETING=a \"quoted\" $HOME 100%"]);
        assert_eq!(back.command, ["sh", "-c", "echo $GREETING; exec httpd -f"]);
        assert_eq!(back.memory.as_deref(), Some("64m"));
        assert_eq!(back.name.as_deref(), Some("web"));
        assert!(back.sd_notify);
        assert_eq!(back.restart, "no");
        assert!(back.secret.is_empty());
        assert_eq!(back.systemd_credential, ["api_key"]);
    }

    #[test]
    fn what_a_unit_cannot_be_is_refused() {
        for (argv, flag) in [
            (vec!["web", "-d", "--", "true"], "-d"),
            (vec!["web", "--tty", "--", "true"], "--tty"),
            (vec!["web", "--"], "COMMAND"),
            (vec!["bad name", "--", "true"], "NAME"),
            (vec!["web", "--name", "other", "--", "true"], "--name"),
            (vec!["web", "-e", "HOME", "--", "true"], "--env"),
            (
                vec!["web", "--systemd-credential", "db", "--", "true"],
                "--systemd-credential",
            ),
            (
                vec!["web", "--load-credential", "db", "--", "true"],
                "--load-credential",
            ),
            (vec!["web", "--memory", "lots", "--", "true"], "--memory"),
        ] {
            let e = render(&parse(&argv)).unwrap_err();
            let c = e.downcast_ref::<ConfigError>();
            assert_eq!(c.map(|c| c.field.as_str()), Some(flag), "{argv:?}: {e}");
        }
    }
}
