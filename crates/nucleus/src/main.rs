//! nucleus: the binary. A thin clap front end over nucleus-spec (decide) and nucleus-sys (do).

#![forbid(unsafe_code)]

/// `println!` for the workload-free output of verbs (ps, state, stats, ids): a reader that
/// went away (`nucleus ps | head -c 1`) ends nothing and panics nothing; the rest of the output
/// is dropped.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::write_out(format_args!($($t)*), true)
    };
}
/// `print!` likewise.
macro_rules! out {
    ($($t:tt)*) => {
        $crate::write_out(format_args!($($t)*), false)
    };
}

mod cli;
mod commands;
mod events;
mod fastargs;
mod launch_config;
mod log;
mod monitor;
mod oci;
mod oci_checkpoint;
mod records;
mod run;
mod telemetry;
mod timing;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// musl's own allocator maps and unmaps memory for most blocks it hands out (a sandbox start
/// made 134 mmap/munmap calls with it, 22 with this one); dlmalloc (the allocator Rust's own
/// standard library uses on wasm) keeps freed memory for reuse. See .cargo/config.toml.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    let t0 = telemetry::now_ns();
    // Its faults are those of exec, the dynamic loader and the Rust runtime's start.
    timing::mark("process start");
    // runc's command line for `create`/`run` with a bundle (see docs/oci.md).
    // (Arguments that are not UTF-8: lossy here, for the OCI command line's detection and its
    // paths; the fast path takes none of them, clap takes any bytes.)
    let utf8 = std::env::args_os().all(|a| a.to_str().is_some());
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.len() > 1 && oci::is_oci_invocation(&args[1..]) {
        let code = oci::main(args);
        timing::report(t0);
        return ExitCode::from(code);
    }
    // `nucleus run [FLAG]... -- COMMAND`: read without building clap's parser (fastargs.rs);
    // anything else, and every error and help text, is clap's.
    let (cli, matches) = match if utf8 { fastargs::parse(&args) } else { None } {
        Some(c) => (c, None),
        None => {
            let matches = match cli::Cli::command().try_get_matches() {
                Ok(c) => c,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::DisplayHelp
                            | ErrorKind::DisplayVersion
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    ) =>
                {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                Err(e) => return usage_error(&e),
            };
            match cli::Cli::from_arg_matches(&matches) {
                Ok(c) => (c, Some(matches)),
                Err(e) => return usage_error(&e),
            }
        }
    };
    timing::mark("parse args");
    let log = log::Logger::new(cli.log_format).with_file(cli.log.as_deref());
    let sub = |path: &[&str]| {
        let mut m = matches.as_ref();
        for p in path {
            m = m.and_then(|m| m.subcommand_matches(p));
        }
        m
    };
    // --config / --config-fd under the flags given on the command line.
    let with_config = |a: cli::RunArgs, path: &[&str]| -> anyhow::Result<cli::RunArgs> {
        match sub(path) {
            Some(m) => Ok(launch_config::apply(a, m)?),
            None => Ok(a),
        }
    };
    let r = match cli.command {
        cli::Command::Run(args) => with_config(*args, &["run"])
            .and_then(|a| run::main(a, cli.root.as_deref(), false, &log, t0, None, None)),
        cli::Command::Create(args) => with_config(*args, &["create"])
            .and_then(|a| run::main(a, cli.root.as_deref(), true, &log, t0, None, None)),
        cli::Command::Seccomp(cli::SeccompCmd::Trace(t)) => {
            let t = *t;
            let output = t.output;
            with_config(t.run, &["seccomp", "trace"]).and_then(|a| {
                run::main(a, cli.root.as_deref(), false, &log, t0, Some(&output), None)
            })
        }
        cli::Command::Config(c) => {
            match c {
                cli::ConfigCmd::Schema => outln!(
                    "{}",
                    serde_json::to_string_pretty(&launch_config::schema()).unwrap_or_default()
                ),
                cli::ConfigCmd::Reference => out!("{}", launch_config::reference()),
                cli::ConfigCmd::CliReference => out!("{}", launch_config::cli_reference()),
            }
            Ok(0)
        }
        cli::Command::Seccomp(cli::SeccompCmd::Generate(g)) => commands::generate(&g, &log),
        cli::Command::Systemd(cli::SystemdCmd::Unit(u)) => {
            let mut u = *u;
            with_config(u.run.clone(), &["systemd", "unit"]).and_then(|r| {
                u.run = r;
                commands::unit::unit(&u)
            })
        }
        cli::Command::Systemd(cli::SystemdCmd::Install(i)) => {
            let mut i = *i;
            with_config(i.unit.run.clone(), &["systemd", "install"]).and_then(|r| {
                i.unit.run = r;
                commands::unit::install(&i.unit, &i.unit_dir, i.now, &log)
            })
        }
        cli::Command::Rootfs(cli::RootfsCmd::Manifest(a)) => commands::rootfs::manifest(&a, &log),
        cli::Command::Rootfs(cli::RootfsCmd::Verify(a)) => commands::rootfs::verify(&a, &log),
        cli::Command::Rootfs(cli::RootfsCmd::Gc(a)) => {
            nucleus_sys::attest::forget_all(&a.rootfs_cache)
                .map(|n| {
                    log.info(&format!(
                        "{n} sealed images removed from {}",
                        a.rootfs_cache.display()
                    ));
                    0
                })
                .map_err(Into::into)
        }
        cli::Command::Gc(args) => commands::gc(&args, cli.root.as_deref(), &log),
        cli::Command::Features => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&nucleus_spec::oci::features()).unwrap_or_default()
            );
            Ok(0)
        }
        cli::Command::Spec(a) => oci::spec(&a),
        cli::Command::Mcp(a) => {
            let mut a = *a;
            with_config(a.run.clone(), &["mcp"]).and_then(|r| {
                a.run = r;
                commands::mcp::serve(a, cli.root.as_deref())
            })
        }
        cli::Command::Compose(a) => commands::compose::compose(&a, cli.root.as_deref()),
        cli::Command::Stats(args) => commands::stats(&args, cli.root.as_deref()),
        cli::Command::Restore(a) => {
            commands::checkpoint::restore(cli.root.as_deref(), &a, &log, t0)
        }
        other => commands::verb(other, cli.root.as_deref(), &log, t0),
    };
    timing::report(t0);
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error_of(error_kind(&e), &one_line(&e));
            ExitCode::from(EXIT_NUCLEUS)
        }
    }
}

/// nucleus's own failure (bad usage or configuration, no such sandbox, a sandbox that could
/// not be made), never a workload's status: the exit code table is in the README.
pub const EXIT_NUCLEUS: u8 = 125;

/// The stable kind of a failure, for `--log-format json` (`kind`): usage, config, not_found,
/// runtime.
pub fn error_kind(e: &anyhow::Error) -> &'static str {
    if e.downcast_ref::<nucleus_spec::config::ConfigError>()
        .is_some()
    {
        "config"
    } else if e
        .downcast_ref::<nucleus_spec::state::ResolveError>()
        .is_some()
    {
        "not_found"
    } else {
        "runtime"
    }
}

/// A command line clap refused: one line naming what is wrong (and, for a command given
/// without `--`, how to give it), in the log format the command line asked for, exit 125.
fn usage_error(e: &clap::Error) -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let json = args.iter().enumerate().any(|(i, a)| {
        a == "--log-format=json"
            || (a == "--log-format" && args.get(i + 1).is_some_and(|v| v == "json"))
    });
    let verb = {
        let c = cli::Cli::command();
        let names: Vec<String> = c
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        args.iter().find(|a| names.contains(a)).cloned()
    };
    let log = log::Logger::new(if json {
        cli::LogFormat::Json
    } else {
        cli::LogFormat::Text
    });
    log.error_of("usage", &usage_message(e, verb.as_deref()));
    ExitCode::from(EXIT_NUCLEUS)
}

/// clap's message without its "error: " prefix, usage block and blank lines, on one line.
fn usage_message(e: &clap::Error, verb: Option<&str>) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<&str> = vec![];
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if !l.is_empty() {
            parts.push(l.trim_start_matches("error: "));
        }
    }
    let mut msg = parts.join(" ");
    if msg.is_empty() {
        msg = "invalid arguments".into();
    }
    let help = match verb {
        Some(v) => format!("nucleus {v} --help"),
        None => "nucleus --help".into(),
    };
    // A command given without `--` (`nucleus run echo hi`) is an unexpected argument.
    let takes_command = matches!(verb, Some("run" | "create" | "exec"));
    if takes_command && e.kind() == ErrorKind::UnknownArgument && !msg.contains("'-") {
        msg.push_str(
            "; the command goes after `--`, as in `nucleus run [OPTIONS] -- CMD [ARGS]...`",
        );
    }
    format!("{msg} (see `{help}`)")
}

/// Write to stdout, ignoring a closed pipe (see `outln!`).
pub fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o
        .write_fmt(args)
        .and_then(|_| if newline { o.write_all(b"\n") } else { Ok(()) })
        .and_then(|_| o.flush());
}

/// An error and its causes on one line, without repeating a cause its context already shows.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if out.ends_with(&c) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&c);
    }
    out
}
