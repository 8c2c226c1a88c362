//! `handbereik`: the partner's node. Thin: parse, run, print one line on error.

use std::process::ExitCode;

use handbereik_keys::cli_edge;

fn main() -> ExitCode {
    // One process-wide TLS crypto provider, chosen before any TLS config is
    // built (the peer API and the member list URL poll both use rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli_edge::finish(handbereik_node::cli::run(cli_edge::parse_args()))
}
