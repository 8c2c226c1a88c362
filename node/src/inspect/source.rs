//! `handbereik.v1.Source` on the peer listener: translates gRPC to
//! [`SourceState::answer`](super::serve::SourceState::answer) (Known,
//! Inspect) and [`SourceState::report`](super::serve::SourceState::report). The caller is
//! the identity the TLS handshake established (carried in the request's
//! extensions), never anything the request says about itself.

use std::sync::Arc;

use handbereik_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::policy::Action;
use super::serve::{Question, SourceState};
use super::tls::PeerInfo;
use crate::limits::{Busy, Limiter};

/// The Source service.
pub struct SourceService {
    state: Arc<SourceState>,
    limiter: Arc<Limiter>,
}

impl SourceService {
    /// Over the serving state, each member within `limiter`'s bounds.
    pub fn new(state: Arc<SourceState>, limiter: Arc<Limiter>) -> Self {
        SourceService { state, limiter }
    }

    async fn run<T>(
        &self,
        request: &Request<T>,
        q: Question,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .ok_or_else(|| Status::unauthenticated("no member identity on this connection"))?;
        let _permit = self.limiter.admit(&peer.peer.member_id).map_err(|busy| {
            self.state.metrics.peer_request_limited(busy.label());
            busy_status(&peer.peer.member_id, busy)
        })?;
        let envelope = match q.action {
            Action::Report => self.state.report(&peer.peer, q).await?,
            _ => self.state.answer(&peer.peer, q).await?,
        };
        Ok(Response::new(pb::SignedAnswer { envelope }))
    }
}

impl From<&pb::SourceKnownRequest> for Question {
    fn from(r: &pb::SourceKnownRequest) -> Self {
        Question {
            request_id: r.request_id.clone(),
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            action: Action::Known,
            categories: Vec::new(),
            signed_request: r.signed_request.clone(),
        }
    }
}

impl From<&pb::SourceInspectRequest> for Question {
    fn from(r: &pb::SourceInspectRequest) -> Self {
        Question {
            request_id: r.request_id.clone(),
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            action: Action::Inspect,
            categories: r.categories.clone(),
            signed_request: r.signed_request.clone(),
        }
    }
}

impl From<&pb::SourceReportRequest> for Question {
    fn from(r: &pb::SourceReportRequest) -> Self {
        Question {
            request_id: r.request_id.clone(),
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            action: Action::Report,
            categories: Vec::new(),
            signed_request: r.signed_request.clone(),
        }
    }
}

#[tonic::async_trait]
impl pb::source_server::Source for SourceService {
    async fn known(
        &self,
        request: Request<pb::SourceKnownRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        let q = Question::from(request.get_ref());
        self.run(&request, q).await
    }

    async fn inspect(
        &self,
        request: Request<pb::SourceInspectRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        let q = Question::from(request.get_ref());
        self.run(&request, q).await
    }

    async fn report(
        &self,
        request: Request<pb::SourceReportRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        let q = Question::from(request.get_ref());
        self.run(&request, q).await
    }
}

/// RESOURCE_EXHAUSTED with a retry hint, in the message and in the
/// `retry-after-ms` header.
fn busy_status(member: &handbereik_keys::MemberId, busy: Busy) -> Status {
    let after = busy.retry_after().as_millis().max(1);
    let why = match busy {
        Busy::InFlight(n) => format!("member {member} has {n} requests in progress here already"),
        Busy::TooFast(_) => format!("member {member} asks faster than this node's per-member rate"),
    };
    let mut status = Status::resource_exhausted(format!("{why}; retry after {after} ms"));
    if let Ok(value) = after.to_string().parse() {
        status.metadata_mut().insert("retry-after-ms", value);
    }
    status
}
