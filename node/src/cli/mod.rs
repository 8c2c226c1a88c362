//! The `handbereik` subcommands: argument types and dispatch.
//!
//! Each subcommand lives in its own file and calls the library modules; no
//! rule lives here.

use clap::{Parser, Subcommand};

mod actor;
mod audit;
mod client;
mod dev;
mod health;
mod init;
mod inspect;
mod registry;
mod run;
mod subject;

pub use audit::{AuditCommand, ReportArgs, VerifyArgs};
pub use client::{ApiArgs, PublishArgs, SubscribeArgs};
pub use dev::{DEV_PSEUDONYM_KEY, DevArgs};
pub use health::HealthArgs;
pub use init::{InitArgs, InitOutput, init};
pub use inspect::{InspectArgs, LocateArgs};
pub use registry::{EraseArgs, ListArgs, RegisterArgs};
pub use run::{RunArgs, init_logging};
pub use subject::{MaybeSubjectArgs, SubjectArgs};

/// A handbereik node: one chain partner's daemon beside its back office.
///
/// Start here: `handbereik init` makes this node's key, a membership request
/// for governance and a starter `handbereik.toml`. To try everything first,
/// `handbereik dev` runs a whole network of partners on this machine.
///
/// Example:
///   handbereik dev --dir dev-net
///   handbereik status --config dev-net/gemeente/handbereik.toml
#[derive(Parser, Debug)]
#[command(verbatim_doc_comment)]
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

    /// Run a whole network of partners on loopback, with sample data, until Ctrl-C.
    ///
    /// Three partners by default: a municipality, Veilig Thuis and a youth-care
    /// provider, admitted by a governance key of their own, with the example
    /// policy of deploy/policy.cedar and sample registrations. Prints each
    /// node's config, API address and token, and a line starting with
    /// `ready:` once every node sees every other.
    ///
    /// Example:
    ///   handbereik dev --dir dev-net
    ///   handbereik locate --config dev-net/jeugdhulp/handbereik.toml \
    ///     --purpose jeugdbescherming --bsn 111222333
    #[command(verbatim_doc_comment)]
    Dev(DevArgs),

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

    /// Check that the node serves its local API (gRPC health; no token needed).
    ///
    /// Exit 0 and `serving` when it does; exit 2 with the reason otherwise.
    /// For container health checks and monitoring.
    ///
    /// Example: handbereik health --config /etc/handbereik/handbereik.toml
    Health(HealthArgs),

    /// Ask every bronhouder admitted for a purpose whether it knows a subject.
    ///
    /// Example: handbereik locate --purpose jeugdbescherming --bsn 111222333
    #[command(verbatim_doc_comment)]
    Locate(LocateArgs),

    /// Ask one member for its that-information (--known) or categories of a subject.
    ///
    /// Example:
    ///   handbereik inspect --member 00000001001234567000 --purpose jeugdbescherming \
    ///     --bsn 111222333 --category melding --category plan
    ///   handbereik inspect --member 00000001001234567000 --purpose jeugdbescherming \
    ///     --bsn 111222333 --known
    #[command(verbatim_doc_comment)]
    Inspect(InspectArgs),

    /// Register an entry about a subject in this node's source registration.
    ///
    /// Example:
    ///   handbereik register --bsn 111222333 --category melding \
    ///     --legal-basis "Jeugdwet art. 7.1.1.1" --retain-days 365 --content '{"urgentie":"hoog"}'
    #[command(verbatim_doc_comment)]
    Register(RegisterArgs),

    /// The source registration.
    ///
    /// Example: handbereik registry list --bsn 111222333
    #[command(subcommand)]
    Registry(RegistryCommand),

    /// Remove every entry of a subject (the audit log keeps its records).
    ///
    /// Example: handbereik erase --bsn 111222333
    Erase(EraseArgs),

    /// The audit log: verify the chain, report on a subject.
    ///
    /// Example:
    ///   handbereik audit verify
    ///   handbereik audit report --bsn 111222333
    #[command(subcommand, verbatim_doc_comment)]
    Audit(AuditCommand),
}

/// `handbereik registry ...`.
#[derive(Subcommand, Debug)]
enum RegistryCommand {
    /// List the entries of one subject, or of all.
    ///
    /// Example: handbereik registry list --bsn 111222333
    List(ListArgs),
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
        Command::Dev(args) => dev::dev(&args),
        Command::Publish(args) => client_runtime()?.block_on(client::publish(&args)),
        Command::Subscribe(args) => client_runtime()?.block_on(client::subscribe(&args)),
        Command::Status(args) => client_runtime()?.block_on(client::status(&args)),
        Command::Health(args) => client_runtime()?.block_on(health::health(&args)),
        Command::Locate(args) => client_runtime()?.block_on(inspect::locate(&args)),
        Command::Inspect(args) => client_runtime()?.block_on(inspect::inspect(&args)),
        Command::Register(args) => client_runtime()?.block_on(registry::register(&args)),
        Command::Registry(RegistryCommand::List(args)) => {
            client_runtime()?.block_on(registry::list(&args))
        }
        Command::Erase(args) => client_runtime()?.block_on(registry::erase(&args)),
        Command::Audit(AuditCommand::Verify(args)) => {
            client_runtime()?.block_on(audit::verify(&args))
        }
        Command::Audit(AuditCommand::Report(args)) => {
            client_runtime()?.block_on(audit::report(&args))
        }
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}
