//! The peer listener: binds, builds the mutual-TLS configuration with an
//! [`Admission`] over the member list, and serves `Source`, `Witness`, gRPC
//! health and reflection until shutdown.
//!
//! Calls [`tls`](super::tls) and `membership`.

use std::sync::Arc;

use handbereik_keys::{MemberId, PublicKey};
use handbereik_proto::v1::source_server::SourceServer;
use handbereik_proto::v1::witness_server::WitnessServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::serve::{SourceState, current_member};
use super::source::SourceService;
use super::tls::{self, AcceptLimits, Admission, PeerIdentity, TlsIdentity};
use super::witness::WitnessService;
use crate::error::{Error, Result};
use crate::membership::Membership;

/// Admits a key at the handshake if it is a current member's, not revoked
/// and not in maintenance, and the certificate names that member.
#[derive(Debug)]
pub struct MemberAdmission {
    membership: Membership,
}

impl MemberAdmission {
    /// Over the node's member list.
    pub fn new(membership: Membership) -> Self {
        MemberAdmission { membership }
    }
}

impl Admission for MemberAdmission {
    fn admit(&self, key: &PublicKey, claimed: &str) -> std::result::Result<MemberId, String> {
        let view = self.membership.view();
        let now = handbereik_keys::time::now();
        if let Some(refusal) = view.refusal(now) {
            return Err(refusal);
        }
        let member_id = MemberId::parse(claimed).map_err(|_| {
            format!(
                "the certificate names {}, which is not a member id",
                handbereik_keys::text::excerpt(claimed)
            )
        })?;
        let peer = PeerIdentity {
            key: *key,
            member_id,
        };
        current_member(&view, &peer, now).map(|m| m.member_id.clone())
    }
}

/// Settings of the peer listener.
#[derive(Clone, Debug)]
pub struct PeerListener {
    /// The accepting side's bounds.
    pub accept: AcceptLimits,
    /// Each member's share of the Source service.
    pub per_member: crate::limits::MemberLimits,
}

/// Serves the peer API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    identity: &TlsIdentity,
    settings: PeerListener,
    state: Arc<SourceState>,
    witness: WitnessService,
    shutdown: CancellationToken,
) -> Result<()> {
    let admission = Arc::new(MemberAdmission::new(state.membership.clone()));
    let config = tls::server_config(identity, admission)?;
    let metrics = state.metrics.clone();
    let incoming = tls::incoming(
        listener,
        config,
        settings.accept,
        shutdown.clone(),
        Arc::new(move |reason: &str| metrics.handshake_refused(reason)),
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SourceServer<SourceService>>().await;
    health.set_serving::<WitnessServer<WitnessService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(handbereik_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Tls(format!("reflection: {e}")))?;
    tonic::transport::Server::builder()
        .trace_fn(crate::trace::peer_rpc)
        .add_service(SourceServer::new(SourceService::new(
            state,
            crate::limits::Limiter::new(settings.per_member),
        )))
        .add_service(WitnessServer::new(witness))
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(|e| Error::Tls(format!("peer API: {e}")))
}
