//! The `handbereik` subcommands: argument types and dispatch.
//!
//! Each subcommand lives in its own file and calls the library modules; no
//! rule lives here.

use clap::{Parser, Subcommand};

mod client;
mod init;
mod run;

pub use client::{ApiArgs, PublishArgs, SubscribeArgs};
pub use init::{InitArgs, InitOutput, init};
pub use run::{RunArgs, init_logging};

/// A handbereik node: one chain partner's daemon beside its back office.
///
/// Start here: `handbereik init` makes this node's key, a membership request
/// for governance and a starter `handbereik.toml`.
#[derive(Parser, Debug)]
#[command(name = "handbereik", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make this node's key, a membership request for governance and a starter config.
    ///
    /// Example:
    ///   handbereik init --dir /var/lib/handbereik --network demo \
    ///     --member-id 00000001234567890000 --name "Gemeente Voorbeeld" \
    ///     --roles afnemer,bronhouder --purposes jeugdbescherming \
    ///     --p2p-address /dns4/handbereik.voorbeeld.nl/tcp/4001 \
    ///     --grpc-endpoint handbereik.voorbeeld.nl:7443
    #[command(verbatim_doc_comment)]
    Init(InitArgs),

    /// Run the node until SIGTERM or Ctrl-C.
    ///
    /// Example: handbereik run --config /etc/handbereik/handbereik.toml
    Run(RunArgs),

    /// Publish a notification through the local node.
    ///
    /// Example:
    ///   handbereik publish --type nl.samenonderhandbereik.melding.ontvangen \
    ///     --purpose jeugdbescherming --subject p-7f3a9c --data '{"urgentie":"hoog"}'
    #[command(verbatim_doc_comment)]
    Publish(PublishArgs),

    /// Follow a durable subscription; prints one line per notification and acknowledges it.
    ///
    /// Example: handbereik subscribe backoffice --purpose jeugdbescherming --count 10
    Subscribe(SubscribeArgs),

    /// Show the node's member list, peers and counters.
    ///
    /// Example: handbereik status --config handbereik.toml
    Status(ApiArgs),
}

/// Runs one subcommand.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => {
            let out = init(&args)?;
            println!(
                "node key       {} (mode 0600, never leaves this machine)",
                out.key_file.display()
            );
            println!("public key     {}", out.public_key);
            println!(
                "request        {}  <- send this file to governance",
                out.request_file.display()
            );
            println!(
                "api token      {} (mode 0600, for the back office)",
                out.token_file.display()
            );
            println!("config         {}", out.config_file.display());
            println!();
            println!(
                "Next: send the request to governance. When you receive the signed member list and"
            );
            println!(
                "the governance public keys, put the list at the path in [governance] and the keys"
            );
            println!("in governance.anchor_keys.");
            Ok(())
        }
        Command::Run(args) => run::run(&args),
        Command::Publish(args) => client_runtime()?.block_on(client::publish(&args)),
        Command::Subscribe(args) => client_runtime()?.block_on(client::subscribe(&args)),
        Command::Status(args) => client_runtime()?.block_on(client::status(&args)),
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}
