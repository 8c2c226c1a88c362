//! A back office's client of one node's local API: the generated tonic
//! clients of `handbereik-proto` with the node's bearer token, every call
//! bounded by a deadline, and the few calls the fault tests make often.
//!
//! Calls `handbereik-proto` and `tonic` only.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use handbereik_keys::Purpose;
use handbereik_proto::v1 as pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::procnet::PURPOSE;

/// How long one call to the local API may take.
pub const CALL: Duration = Duration::from_secs(30);

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(String);

impl Bearer {
    /// The header for `token`.
    pub fn new(token: &str) -> Self {
        Bearer(format!("Bearer {token}"))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let value = self
            .0
            .parse()
            .map_err(|_| tonic::Status::internal("bad token"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// A channel with the token.
type Authed = InterceptedService<Channel, Bearer>;

/// The local API of one node.
#[derive(Clone)]
pub struct Api {
    channel: Channel,
    bearer: Bearer,
}

/// Awaits `call` for at most `limit`; a timeout is an error that says `what`.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<Result<T, tonic::Status>> {
    tokio::time::timeout(limit, call)
        .await
        .map_err(|_| anyhow::anyhow!("{what} did not answer within {limit:?}"))
}

impl Api {
    /// Calls over `channel` with `token`.
    pub fn new(channel: Channel, token: &str) -> Self {
        Api {
            channel,
            bearer: Bearer::new(token),
        }
    }

    /// Notifications.
    pub fn notifications(&self) -> pb::notifications_client::NotificationsClient<Authed> {
        pb::notifications_client::NotificationsClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }

    /// Node.
    pub fn node(&self) -> pb::node_client::NodeClient<Authed> {
        pb::node_client::NodeClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Inspections.
    pub fn inspections(&self) -> pb::inspections_client::InspectionsClient<Authed> {
        pb::inspections_client::InspectionsClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }

    /// Registry.
    pub fn registry(&self) -> pb::registry_client::RegistryClient<Authed> {
        pb::registry_client::RegistryClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }

    /// Audit.
    pub fn audit(&self) -> pb::audit_client::AuditClient<Authed> {
        pb::audit_client::AuditClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// The member ids this node lists as connected (Status), within [`CALL`].
    pub async fn connected(&self) -> Result<Vec<String>> {
        let status = within(CALL, "Status", self.node().status(pb::StatusRequest {})).await??;
        Ok(status
            .into_inner()
            .connected_peers
            .into_iter()
            .map(|p| p.member_id)
            .collect())
    }

    /// Publishes one notification about `subject`, within `limit`.
    pub async fn publish(
        &self,
        subject: &str,
        limit: Duration,
    ) -> Result<Result<pb::Notification, tonic::Status>> {
        let request = crate::net::publish_request(&Purpose::parse(PURPOSE)?, subject);
        let answer = within(limit, "Publish", self.notifications().publish(request)).await?;
        Ok(answer.and_then(|r| {
            r.into_inner()
                .notification
                .ok_or_else(|| tonic::Status::internal("a publish answer without its notification"))
        }))
    }
}
