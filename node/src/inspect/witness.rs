//! `handbereik.v1.Witness` on the peer listener: hands a member the copy of
//! its own audit checkpoint that this node holds as a witness, with this
//! node's countersignature. The caller is the identity the TLS handshake
//! established (carried in the request's extensions), checked again against
//! the current list; it only ever gets its own checkpoint.
//!
//! Calls `audit::witness` (what is held), `membership` and `limits`.

use std::sync::Arc;

use handbereik_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::serve::current_member;
use super::tls::PeerInfo;
use crate::audit::witness::Witness;
use crate::limits::{Limiter, MemberLimits};
use crate::membership::Membership;
use crate::metrics::Metrics;

/// Each member's share of `Held`: `audit verify` asks once per run (a
/// monitoring job may run it every few seconds); one answer is one read.
pub const HELD_SHARE: MemberLimits = MemberLimits {
    per_sec: 10,
    burst: 20,
    in_flight: 4,
};

/// The Witness service.
pub struct WitnessService {
    witness: Witness,
    membership: Membership,
    metrics: Arc<Metrics>,
    limiter: Arc<Limiter>,
}

impl WitnessService {
    /// Over the node's witness, each member within [`HELD_SHARE`].
    pub fn new(witness: Witness, membership: Membership, metrics: Arc<Metrics>) -> Self {
        WitnessService {
            witness,
            membership,
            metrics,
            limiter: Limiter::new(HELD_SHARE),
        }
    }
}

#[tonic::async_trait]
impl pb::witness_server::Witness for WitnessService {
    async fn held(
        &self,
        request: Request<pb::HeldRequest>,
    ) -> Result<Response<pb::HeldResponse>, Status> {
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .ok_or_else(|| Status::unauthenticated("no member identity on this connection"))?
            .peer
            .clone();
        let view = self.membership.view();
        let now = handbereik_keys::time::now();
        if let Some(refusal) = view.refusal(now) {
            return Err(Status::failed_precondition(refusal));
        }
        current_member(&view, &peer, now).map_err(Status::permission_denied)?;
        let _permit = self.limiter.admit(&peer.member_id).map_err(|busy| {
            self.metrics.peer_request_limited(busy.label());
            Status::resource_exhausted(format!(
                "member {} asks for its witnessed checkpoint faster than this node's share; retry after {} ms",
                peer.member_id,
                busy.retry_after().as_millis().max(1)
            ))
        })?;
        let witness = self.witness.clone();
        let member = peer.member_id.clone();
        let held = tokio::task::spawn_blocking(move || witness.held_for(&member))
            .await
            .map_err(|e| {
                Status::internal(format!("reading the witnessed checkpoint panicked: {e}"))
            })?
            .map_err(Status::from)?;
        Ok(Response::new(match held {
            None => pb::HeldResponse::default(),
            Some(copy) => pb::HeldResponse {
                checkpoint: copy.checkpoint,
                countersignature: copy.countersignature,
                conflicting: copy.conflicting,
            },
        }))
    }
}
