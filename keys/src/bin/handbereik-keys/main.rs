//! `handbereik-keys`: the governance CLI. Thin: parses arguments, calls
//! `commands`, prints one line on error and exits with code 2.

mod commands;
mod show;

use std::process::ExitCode;

use handbereik_keys::cli_edge;

fn main() -> ExitCode {
    cli_edge::finish(commands::run(cli_edge::parse_args()))
}
