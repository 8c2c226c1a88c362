//! The client commands over the local API: publish, subscribe, status; and
//! the connection to the local API that every client command shares.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use handbereik_proto::v1 as pb;
use pb::audit_client::AuditClient;
use pb::inspections_client::InspectionsClient;
use pb::node_client::NodeClient;
use pb::notifications_client::NotificationsClient;
use pb::registry_client::RegistryClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::config::Config;

/// How to reach the local API.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The node's configuration, for the API address and token file.
    #[arg(
        long,
        short,
        default_value = "handbereik.toml",
        env = "HANDBEREIK_CONFIG"
    )]
    pub config: PathBuf,
    /// The API address instead of the config's, such as 127.0.0.1:7400.
    #[arg(long, value_name = "HOST:PORT")]
    pub api: Option<String>,
    /// The token file instead of the config's.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Adds the bearer header to every call.
type AddToken =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Authed = InterceptedService<Channel, AddToken>;

/// Connected clients of both services.
pub struct Clients {
    /// Notifications.
    pub notifications: NotificationsClient<Authed>,
    /// Node.
    pub node: NodeClient<Authed>,
    /// Registry.
    pub registry: RegistryClient<Authed>,
    /// Inspections.
    pub inspections: InspectionsClient<Authed>,
    /// Audit.
    pub audit: AuditClient<Authed>,
}

impl ApiArgs {
    /// Connects, with a message that says what to check when it cannot.
    pub async fn connect(&self) -> Result<Clients> {
        let (address, token_file) = match (&self.api, &self.token_file) {
            (Some(a), Some(t)) => (a.clone(), t.clone()),
            _ => {
                let config = Config::load(&self.config).with_context(|| {
                    format!(
                        "reading {} (or give --api and --token-file)",
                        self.config.display()
                    )
                })?;
                let c = config.config;
                (
                    self.api
                        .clone()
                        .unwrap_or_else(|| c.local_api.listen.to_string()),
                    self.token_file.clone().unwrap_or(c.local_api.token_file),
                )
            }
        };
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("cannot read the API token file {}", token_file.display()))?;
        let header: MetadataValue<_> = format!("Bearer {}", token.trim())
            .parse()
            .context("the API token file holds characters a header cannot carry")?;
        let endpoint = format!("http://{address}");
        let channel = Channel::from_shared(endpoint.clone())
            .with_context(|| format!("{address} is not host:port"))?
            .connect()
            .await
            .map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                anyhow::anyhow!(
                    "cannot reach the node's local API at {address} ({e}{cause}); is the node running (`handbereik run`) and is local_api.listen right?"
                )
            })?;
        let make = |header: MetadataValue<tonic::metadata::Ascii>| -> AddToken {
            Box::new(move |mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", header.clone());
                Ok(request)
            })
        };
        Ok(Clients {
            notifications: NotificationsClient::with_interceptor(
                channel.clone(),
                make(header.clone()),
            ),
            node: NodeClient::with_interceptor(channel.clone(), make(header.clone())),
            registry: RegistryClient::with_interceptor(channel.clone(), make(header.clone())),
            inspections: InspectionsClient::with_interceptor(channel.clone(), make(header.clone())),
            audit: AuditClient::with_interceptor(channel, make(header)),
        })
    }
}

/// Turns a gRPC status into one line that says what to do.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "the node refused the API token: {}; use the token file of this node (local_api.token_file)",
            status.message()
        ),
        tonic::Code::Unavailable => {
            anyhow::anyhow!("the node refused or is not reachable: {}", status.message())
        }
        tonic::Code::FailedPrecondition => anyhow::anyhow!(
            "{}; check `handbereik status` and ask governance for a current member list",
            status.message()
        ),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

/// Arguments of `handbereik publish`.
#[derive(Args, Debug, Clone)]
pub struct PublishArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    /// Reverse-DNS event type.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: String,
    /// The purpose (doelbinding).
    #[arg(long)]
    pub purpose: String,
    /// The subject pseudonym (never a BSN).
    #[arg(long)]
    pub subject: String,
    /// Where the content can be inspected at this source.
    #[arg(long, default_value = "")]
    pub dataref: String,
    /// Small JSON payload.
    #[arg(long, default_value = "")]
    pub data: String,
}

/// Publishes one notification and prints it as JSON.
pub async fn publish(args: &PublishArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    let response = clients
        .notifications
        .publish(pb::PublishRequest {
            r#type: args.event_type.clone(),
            purpose: args.purpose.clone(),
            subject: args.subject.clone(),
            dataref: args.dataref.clone(),
            datacontenttype: "application/json".into(),
            data: args.data.clone().into_bytes(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let n = response
        .notification
        .context("the node answered without the notification")?;
    println!(
        "published {} sequence {} purpose {} id {}",
        n.r#type, n.sequence, n.purpose, n.id
    );
    Ok(())
}

/// Arguments of `handbereik subscribe`.
#[derive(Args, Debug, Clone)]
pub struct SubscribeArgs {
    #[allow(missing_docs)]
    #[command(flatten)]
    pub api: ApiArgs,
    /// The durable subscription's name.
    pub name: String,
    /// Only these types (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only these purposes (repeatable).
    #[arg(long = "purpose")]
    pub purposes: Vec<String>,
    /// Only these source member ids (repeatable).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Stop after this many deliveries (default: run until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    /// Do not acknowledge what is printed (it is delivered again next time).
    #[arg(long)]
    pub no_ack: bool,
}

/// Prints deliveries as lines, acknowledging each after it is printed.
pub async fn subscribe(args: &SubscribeArgs) -> Result<()> {
    let mut clients = args.api.connect().await?;
    let mut stream = clients
        .notifications
        .subscribe(pb::SubscribeRequest {
            name: args.name.clone(),
            types: args.types.clone(),
            purposes: args.purposes.clone(),
            sources: args.sources.clone(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let mut seen = 0;
    while let Some(delivery) = stream.message().await.map_err(explain)? {
        let Some(n) = delivery.notification else {
            continue;
        };
        println!(
            "{} {} from {} sequence {} subject {} purpose {}",
            delivery.position, n.r#type, n.source_member_id, n.sequence, n.subject, n.purpose
        );
        if !args.no_ack {
            clients
                .notifications
                .ack(pb::AckRequest {
                    name: args.name.clone(),
                    position: delivery.position,
                })
                .await
                .map_err(explain)?;
        }
        seen += 1;
        if args.count.is_some_and(|c| seen >= c) {
            return Ok(());
        }
    }
    bail!("the node closed the subscription (shutting down?)")
}

/// Prints the node's status.
pub async fn status(api: &ApiArgs) -> Result<()> {
    let mut clients = api.connect().await?;
    let s = clients
        .node
        .status(pb::StatusRequest {})
        .await
        .map_err(explain)?
        .into_inner();
    println!("member       {} in network {}", s.member_id, s.network);
    println!("peer id      {}", s.peer_id);
    println!("state        {}", s.state);
    println!(
        "member list  version {}, expires {}{}",
        s.member_list_version,
        handbereik_keys::time::rfc3339(s.member_list_expires_at),
        if s.member_list_expired {
            " (EXPIRED)"
        } else {
            ""
        }
    );
    println!("peers        {}", s.connected_peers.len());
    for p in &s.connected_peers {
        println!("  {}  {}", p.member_id, p.peer_id);
    }
    if let Some(c) = s.counters {
        println!(
            "counters     published {} received {} rejected {} fetched-by-sync {} inbox {}",
            c.published, c.received, c.rejected, c.fetched_by_sync, c.inbox_size
        );
    }
    if !s.audit_alarms.is_empty() {
        println!(
            "AUDIT ALARMS {} (members whose checkpoints conflict; kept as evidence: tell governance)",
            s.audit_alarms.len()
        );
        for a in &s.audit_alarms {
            println!(
                "  {}  {}  {}",
                handbereik_keys::time::rfc3339(a.time),
                a.member_id,
                a.problem
            );
        }
    }
    Ok(())
}
