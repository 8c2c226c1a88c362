//! `handbereik.v1.Registry`: the source registration, for the back office.

use std::sync::Arc;

use handbereik_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ApiState;
use super::subject::resolve;
use crate::error::Error;
use crate::registry::{Entry, EntryInput, Pseudonym, pseudonym_text};

pub struct RegistryService {
    state: Arc<ApiState>,
}

impl RegistryService {
    pub fn new(state: Arc<ApiState>) -> Self {
        RegistryService { state }
    }

    fn subject(&self, s: Option<&pb::Subject>) -> Result<Pseudonym, Status> {
        Ok(resolve(self.state.registry.subjects(), s)?)
    }
}

fn input(entry: Option<pb::EntryInput>) -> Result<EntryInput, Status> {
    let e = entry.ok_or_else(|| Status::invalid_argument("give the entry"))?;
    Ok(EntryInput {
        category: e.category,
        legal_basis: e.legal_basis,
        retain_until: e.retain_until,
        content_type: e.content_type,
        content: e.content,
    })
}

/// The protobuf form of an entry.
pub fn to_proto(subject: &Pseudonym, e: Entry) -> pb::Entry {
    pb::Entry {
        subject: pseudonym_text(subject),
        category: e.category,
        kind: e.kind.as_str().into(),
        classification: e.classification,
        legal_basis: e.legal_basis,
        retain_until: e.retain_until,
        content_type: e.content_type,
        content: e.content,
        registered_at: e.registered_at,
        updated_at: e.updated_at,
    }
}

#[tonic::async_trait]
impl pb::registry_server::Registry for RegistryService {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::EntryResponse>, Status> {
        let r = request.into_inner();
        let subject = self.subject(r.subject.as_ref())?;
        let entry = self
            .state
            .registry
            .register(subject, input(r.entry)?)
            .await?;
        Ok(Response::new(pb::EntryResponse {
            entry: Some(to_proto(&subject, entry)),
        }))
    }

    async fn update(
        &self,
        request: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::EntryResponse>, Status> {
        let r = request.into_inner();
        let subject = self.subject(r.subject.as_ref())?;
        let entry = self.state.registry.update(subject, input(r.entry)?).await?;
        Ok(Response::new(pb::EntryResponse {
            entry: Some(to_proto(&subject, entry)),
        }))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let r = request.into_inner();
        let subject = self.subject(r.subject.as_ref())?;
        self.state.registry.remove(subject, &r.category).await?;
        Ok(Response::new(pb::RemoveResponse {}))
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::EntryResponse>, Status> {
        let r = request.into_inner();
        let subject = self.subject(r.subject.as_ref())?;
        let entry = self
            .state
            .registry
            .get(&subject, &r.category)?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "the subject has no entry in category {}",
                    handbereik_keys::text::excerpt(&r.category)
                ))
            })?;
        Ok(Response::new(pb::EntryResponse {
            entry: Some(to_proto(&subject, entry)),
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = request.into_inner();
        let registry = &self.state.registry;
        if r.subject.as_ref().and_then(|s| s.kind.as_ref()).is_some() {
            let subject = self.subject(r.subject.as_ref())?;
            let entries = registry
                .of_subject(&subject)?
                .into_iter()
                .map(|e| to_proto(&subject, e))
                .collect();
            return Ok(Response::new(pb::ListResponse {
                entries,
                next_page_token: String::new(),
            }));
        }
        let limit = if r.limit == 0 { 1000 } else { r.limit as usize };
        let (rows, next) = registry.page(&r.page_token, limit)?;
        Ok(Response::new(pb::ListResponse {
            entries: rows.into_iter().map(|(s, e)| to_proto(&s, e)).collect(),
            next_page_token: next,
        }))
    }

    async fn erase(
        &self,
        request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        let r = request.into_inner();
        let subject = self.subject(r.subject.as_ref())?;
        let removed = self.state.registry.erase(subject).await?;
        tracing::info!(subject = %pseudonym_text(&subject), removed, "subject erased");
        Ok(Response::new(pb::EraseResponse {
            subject: pseudonym_text(&subject),
            removed,
        }))
    }
}
