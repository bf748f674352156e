//! nucleus: the binary. A thin clap front end over nucleus-spec (decide) and nucleus-sys (do).

mod cli;
mod launch_config;
mod lifecycle;
mod log;
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
        Err(e) => {
            // One line: clap's first line without its "error: " prefix and usage block.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "nucleus: {} (see `nucleus --help`)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "nucleus: {}",
                e.render()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
            );
            return ExitCode::from(2);
        }
    };
    timing::mark("parse args");
    let log = log::Logger::new(cli.log_format);
    let sub = |path: &[&str]| {
        let mut m = Some(&matches);
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
            .and_then(|a| run::main(a, cli.root.as_deref(), false, &log, t0, None)),
        cli::Command::Create(args) => with_config(*args, &["create"])
            .and_then(|a| run::main(a, cli.root.as_deref(), true, &log, t0, None)),
        cli::Command::Seccomp(cli::SeccompCmd::Trace(t)) => {
            let t = *t;
            let output = t.output;
            with_config(t.run, &["seccomp", "trace"])
                .and_then(|a| run::main(a, cli.root.as_deref(), false, &log, t0, Some(&output)))
        }
        cli::Command::Config(c) => {
            match c {
                cli::ConfigCmd::Schema => println!(
                    "{}",
                    serde_json::to_string_pretty(&launch_config::schema()).unwrap_or_default()
                ),
                cli::ConfigCmd::Reference => print!("{}", launch_config::reference()),
                cli::ConfigCmd::CliReference => print!("{}", launch_config::cli_reference()),
            }
            Ok(0)
        }
        cli::Command::Seccomp(cli::SeccompCmd::Generate(g)) => run::generate(&g, &log),
        cli::Command::Gc(args) => run::gc(&args, cli.root.as_deref(), &log),
        cli::Command::Stats(args) => run::stats(&args, cli.root.as_deref()),
        other => lifecycle::verb(other, cli.root.as_deref(), &log, t0),
    };
    timing::report(t0);
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&one_line(&e));
            ExitCode::from(125)
        }
    }
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
