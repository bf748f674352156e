//! nucleus: the binary. A thin clap front end over nucleus-spec (decide) and nucleus-sys (do).

mod cli;
mod lifecycle;
mod log;
mod run;
mod telemetry;

use clap::error::ErrorKind;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let t0 = telemetry::now_ns();
    let cli = match cli::Cli::try_parse() {
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
    let log = log::Logger::new(cli.log_format);
    let r = match cli.command {
        cli::Command::Run(args) => run::main(*args, cli.root.as_deref(), false, &log, t0, None),
        cli::Command::Create(args) => run::main(*args, cli.root.as_deref(), true, &log, t0, None),
        cli::Command::Seccomp(cli::SeccompCmd::Trace(t)) => {
            let t = *t;
            run::main(t.run, cli.root.as_deref(), false, &log, t0, Some(&t.output))
        }
        cli::Command::Seccomp(cli::SeccompCmd::Generate(g)) => run::generate(&g, &log),
        cli::Command::Gc(args) => run::gc(&args, cli.root.as_deref(), &log),
        cli::Command::Stats(args) => run::stats(&args, cli.root.as_deref()),
        other => lifecycle::verb(other, cli.root.as_deref(), &log, t0),
    };
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
