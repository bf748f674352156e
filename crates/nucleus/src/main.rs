//! nucleus: the binary. A thin clap front end over nucleus-spec (decide) and nucleus-sys (do).

mod cli;
mod log;
mod run;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let log = log::Logger::new(cli.log_format);
    let r = match cli.command {
        cli::Command::Run(args) => run::main(*args, &log),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&format!("{e:#}"));
            ExitCode::from(125)
        }
    }
}
