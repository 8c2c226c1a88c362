//! `handbereik-keys`: the governance CLI. Thin: parses arguments, calls
//! `commands`, prints one line on error and exits with code 2.

mod commands;
mod show;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
