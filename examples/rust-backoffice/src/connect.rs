//! Connecting to a node's local API the way a back office does: the address
//! and token file from the node's `handbereik.toml`, plaintext gRPC on
//! loopback, and `authorization: Bearer <token>` on every call.

use std::path::Path;

use anyhow::{Context, Result};
use handbereik_proto::v1 as pb;
use serde::Deserialize;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The two keys of `handbereik.toml` a back office needs.
#[derive(Deserialize)]
struct NodeConfig {
    local_api: LocalApi,
}

#[derive(Deserialize)]
struct LocalApi {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_token_file")]
    token_file: String,
}

fn default_listen() -> String {
    "127.0.0.1:7400".into()
}

fn default_token_file() -> String {
    "api-token".into()
}

/// Adds the bearer token to every request.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// One client per local API service, sharing one connection.
pub struct Api {
    /// Notifications: Publish, Subscribe, Ack.
    pub notifications: pb::notifications_client::NotificationsClient<Authed>,
    /// The source registration.
    pub registry: pb::registry_client::RegistryClient<Authed>,
    /// Locate, Known, Inspect at other members.
    pub inspections: pb::inspections_client::InspectionsClient<Authed>,
    /// The audit log.
    pub audit: pb::audit_client::AuditClient<Authed>,
    /// Where it is connected, for messages.
    pub address: String,
}

/// Reads the node's config and connects to its local API.
pub async fn connect(config_file: &Path) -> Result<Api> {
    let text = std::fs::read_to_string(config_file)
        .with_context(|| format!("cannot read the node config {}", config_file.display()))?;
    let config: NodeConfig = toml::from_str(&text).with_context(|| {
        format!(
            "{} has no usable [local_api] section",
            config_file.display()
        )
    })?;
    // Relative paths in handbereik.toml are relative to the file's directory.
    let base = config_file.parent().unwrap_or(Path::new("."));
    let token_file = base.join(&config.local_api.token_file);
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("cannot read the API token {}", token_file.display()))?;
    let header: MetadataValue<Ascii> = format!("Bearer {}", token.trim())
        .parse()
        .context("the token file holds characters a header cannot carry")?;
    let address = config.local_api.listen;
    let channel = Channel::from_shared(format!("http://{address}"))
        .with_context(|| format!("local_api.listen {address} is not host:port"))?
        .connect()
        .await
        .with_context(|| {
            format!("cannot reach the node's local API at {address}; is the node running?")
        })?;
    let bearer = Bearer(header);
    Ok(Api {
        notifications: pb::notifications_client::NotificationsClient::with_interceptor(
            channel.clone(),
            bearer.clone(),
        ),
        registry: pb::registry_client::RegistryClient::with_interceptor(
            channel.clone(),
            bearer.clone(),
        ),
        inspections: pb::inspections_client::InspectionsClient::with_interceptor(
            channel.clone(),
            bearer.clone(),
        ),
        audit: pb::audit_client::AuditClient::with_interceptor(channel, bearer),
        address,
    })
}

/// One line that says what a gRPC error means for a back office.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    let hint = match status.code() {
        tonic::Code::Unauthenticated => "wrong API token: use the node's local_api.token_file",
        tonic::Code::Unavailable => "the node is not reachable or is shutting down",
        tonic::Code::FailedPrecondition => {
            "the node has no valid member list: ask governance for a current one"
        }
        tonic::Code::PermissionDenied => "this node is not admitted for that purpose",
        tonic::Code::InvalidArgument => "a field is wrong",
        tonic::Code::NotFound => "no such entry or member",
        _ => "the node refused the call",
    };
    anyhow::anyhow!("{hint}: {} ({:?})", status.message(), status.code())
}
