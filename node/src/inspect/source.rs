//! `handbereik.v1.Source` on the peer listener: translates gRPC to
//! [`SourceState::answer`](super::serve::SourceState::answer). The caller is
//! the identity the TLS handshake established (carried in the request's
//! extensions), never anything the request says about itself.

use std::sync::Arc;

use handbereik_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::policy::Action;
use super::serve::{Question, SourceState};
use super::tls::PeerInfo;

/// The Source service.
pub struct SourceService {
    state: Arc<SourceState>,
}

impl SourceService {
    /// Over the serving state.
    pub fn new(state: Arc<SourceState>) -> Self {
        SourceService { state }
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
        let envelope = self.state.answer(&peer.peer, q).await?;
        Ok(Response::new(pb::SignedAnswer { envelope }))
    }
}

#[tonic::async_trait]
impl pb::source_server::Source for SourceService {
    async fn known(
        &self,
        request: Request<pb::SourceKnownRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        let r = request.get_ref();
        let q = Question {
            request_id: r.request_id.clone(),
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            action: Action::Known,
            categories: Vec::new(),
        };
        self.run(&request, q).await
    }

    async fn inspect(
        &self,
        request: Request<pb::SourceInspectRequest>,
    ) -> Result<Response<pb::SignedAnswer>, Status> {
        let r = request.get_ref();
        let q = Question {
            request_id: r.request_id.clone(),
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            action: Action::Inspect,
            categories: r.categories.clone(),
        };
        self.run(&request, q).await
    }
}
