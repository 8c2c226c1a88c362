//! `handbereik`: the partner's node. Thin: parse, run, print one line on error.

use std::process::ExitCode;

use handbereik_keys::cli_edge;

/// The exit code when a task of a running node failed: not a configuration
/// problem (2), so a service manager restarts the node.
const EXIT_FAILED: u8 = 1;

fn main() -> ExitCode {
    // One process-wide TLS crypto provider, chosen before any TLS config is
    // built (the peer API and the member list URL poll both use rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = handbereik_node::cli::run(cli_edge::parse_args());
    if let Err(e) = &result
        && let Some(failure) = e.downcast_ref::<handbereik_node::supervisor::Failure>()
    {
        eprintln!("error: {failure}");
        return ExitCode::from(EXIT_FAILED);
    }
    cli_edge::finish(result)
}
