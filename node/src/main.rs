//! `handbereik`: the partner's node. Thin: parse, run, print one line on error.

use std::process::ExitCode;

use handbereik_keys::cli_edge;

fn main() -> ExitCode {
    cli_edge::finish(handbereik_node::cli::run(cli_edge::parse_args()))
}
