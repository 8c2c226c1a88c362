//! The local gRPC API for the partner's back office.
//!
//! Thin: checks the bearer token, translates protobuf to the node's types,
//! calls `notify`, `registry`, `inspect`, `audit`, `membership` and the p2p
//! handle, and maps errors to statuses in one place (`Error` →
//! `tonic::Status`). gRPC health and server
//! reflection are served without a token, so generic tools and container
//! health checks work.

mod audit;
mod auth;
mod input;
mod inspections;
mod node_service;
mod notifications;
mod registry;
mod report;
mod subject;
mod witness;

use std::net::SocketAddr;
use std::sync::Arc;

use handbereik_keys::{MemberId, PublicKey};
use handbereik_proto::v1::audit_server::AuditServer;
use handbereik_proto::v1::inspections_server::InspectionsServer;
use handbereik_proto::v1::node_server::NodeServer;
use handbereik_proto::v1::notifications_server::NotificationsServer;
use handbereik_proto::v1::registry_server::RegistryServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::audit::Audit;
use crate::error::{Error, Result};
use crate::inspect::client::Asker;
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::notify::publish::Publisher;
use crate::notify::subscriptions::Subscriptions;
use crate::p2p::P2pHandle;
use crate::registry::Registry;
use crate::supervisor::Supervisor;

pub use auth::BearerToken;

/// What the API services share.
pub struct ApiState {
    /// This node's member id.
    pub own: MemberId,
    /// This node's public key (audit checkpoints are signed with it).
    pub public_key: PublicKey,
    /// Publishes this node's notifications.
    pub publisher: Publisher,
    /// The inbox's durable head, for status.
    pub inbox_head: tokio::sync::watch::Receiver<u64>,
    /// Owns the subscription streams' tasks.
    pub supervisor: Supervisor,
    /// The member list.
    pub membership: Membership,
    /// The swarm.
    pub p2p: P2pHandle,
    /// Figures.
    pub metrics: Arc<Metrics>,
    /// Durable subscriptions.
    pub subscriptions: Subscriptions,
    /// The source registration.
    pub registry: Registry,
    /// The audit log.
    pub audit: Audit,
    /// Asks other members.
    pub asker: Arc<Asker>,
    /// This node as a witness of the others' audit logs (alarms for Status).
    pub witness: crate::audit::witness::Witness,
    /// Asks the witnesses of this node's own audit log (for Verify).
    pub witnesses: Arc<crate::inspect::witnesses::WitnessAsker>,
}

/// Serves the local API on `listener` until `shutdown`, then lets in-flight
/// calls finish.
pub async fn serve(
    listener: TcpListener,
    token: BearerToken,
    state: Arc<ApiState>,
    shutdown: CancellationToken,
) -> Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<NotificationsServer<notifications::NotificationsService>>()
        .await;
    health
        .set_serving::<NodeServer<node_service::NodeService>>()
        .await;
    health
        .set_serving::<RegistryServer<registry::RegistryService>>()
        .await;
    health
        .set_serving::<InspectionsServer<inspections::InspectionsService>>()
        .await;
    health
        .set_serving::<AuditServer<audit::AuditService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(handbereik_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::P2p(format!("reflection: {e}")))?;
    // Without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to every unary call.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .trace_fn(crate::trace::local_rpc)
        .add_service(NotificationsServer::with_interceptor(
            notifications::NotificationsService::new(state.clone()),
            token.clone(),
        ))
        .add_service(RegistryServer::with_interceptor(
            registry::RegistryService::new(state.clone()),
            token.clone(),
        ))
        .add_service(InspectionsServer::with_interceptor(
            inspections::InspectionsService::new(state.clone()),
            token.clone(),
        ))
        .add_service(AuditServer::with_interceptor(
            audit::AuditService::new(state.clone()),
            token.clone(),
        ))
        .add_service(NodeServer::with_interceptor(
            node_service::NodeService::new(state),
            token,
        ))
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(|e| Error::P2p(format!("local API: {e}")))
}

/// Binds a TCP listener, with an error that names what it is for.
pub async fn bind(address: SocketAddr, what: &'static str) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| Error::Bind {
        what,
        address: address.to_string(),
        reason: e.to_string(),
    })
}
