//! nucleus: the binary. A thin clap front end over nucleus-spec (decide) and nucleus-sys (do).

mod cli;
mod log;
mod run;

use clap::error::ErrorKind;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
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
        cli::Command::Run(args) => run::main(*args, &log),
        cli::Command::Gc(args) => run::gc(&args, &log),
        cli::Command::Stats(args) => run::stats(&args),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&format!("{e:#}"));
            ExitCode::from(125)
        }
    }
}
