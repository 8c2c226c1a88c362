//! `handbereik.v1.Audit`: Query, SubjectReport, Verify and NetworkReport,
//! for the back office, the privacy officer and answering a citizen.

use std::sync::Arc;

use handbereik_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ApiState;
use super::subject::resolve;
use crate::audit::{AuditEntry, Decision, Filter};
use crate::registry::pseudonym_text;

pub struct AuditService {
    state: Arc<ApiState>,
}

impl AuditService {
    pub fn new(state: Arc<ApiState>) -> Self {
        AuditService { state }
    }
}

/// The protobuf form of an entry.
pub fn to_proto(e: AuditEntry, hash: [u8; 32]) -> pb::AuditEntry {
    pb::AuditEntry {
        sequence: e.seq,
        time_ms: e.time_ms,
        direction: e.direction.as_str().into(),
        peer: e.peer,
        purpose: e.purpose,
        subject: e.subject,
        action: e.action,
        categories_asked: e.asked,
        categories_given: e.given,
        decision: e.decision.as_str().into(),
        policies: e.policies,
        request_id: e.request_id,
        prev_hash: hex::encode(e.prev),
        hash: hex::encode(hash),
        actor: super::report::actor(e.actor),
        emergency_reason: e.emergency.unwrap_or_default(),
        signed_request: e.signed_request,
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn query(
        &self,
        request: Request<pb::AuditQueryRequest>,
    ) -> Result<Response<pb::AuditQueryResponse>, Status> {
        let r = request.into_inner();
        if !["", "served", "asked"].contains(&r.direction.as_str()) {
            return Err(Status::invalid_argument(
                "direction is \"served\", \"asked\" or empty",
            ));
        }
        super::input::optional("peer", &r.peer, super::input::member_id)?;
        super::input::optional("purpose", &r.purpose, super::input::purpose)?;
        let filter = Filter {
            after: r.after_sequence,
            limit: if r.limit == 0 { 1000 } else { r.limit as usize },
            peer: r.peer,
            purpose: r.purpose,
            direction: r.direction,
        };
        let entries = self.state.audit.query(&filter)?;
        Ok(Response::new(pb::AuditQueryResponse {
            entries: entries.into_iter().map(|(e, h)| to_proto(e, h)).collect(),
        }))
    }

    async fn subject_report(
        &self,
        request: Request<pb::SubjectReportRequest>,
    ) -> Result<Response<pb::SubjectReportResponse>, Status> {
        let r = request.into_inner();
        let subject = resolve(self.state.registry.subjects(), r.subject.as_ref())?;
        let mut report = pb::SubjectReportResponse {
            subject: pseudonym_text(&subject),
            ..Default::default()
        };
        let audit = self.state.audit.clone();
        let mut entries = tokio::task::spawn_blocking(move || audit.about(&subject))
            .await
            .map_err(|e| Status::internal(format!("reading the audit log panicked: {e}")))??;
        // Emergencies first, each group in time order (a stable sort).
        entries.sort_by_key(|(e, _)| !e.is_emergency());
        for (entry, hash) in entries {
            let emergency = entry.is_emergency();
            if entry.is_disclosure() {
                report.disclosures.push(to_proto(entry, hash));
            } else if entry.is_obtained() {
                report.obtained.push(to_proto(entry, hash));
            } else {
                if entry.decision != Decision::Allowed {
                    report.refused += 1;
                }
                continue;
            }
            if emergency {
                report.emergencies += 1;
            }
        }
        Ok(Response::new(report))
    }

    async fn verify(
        &self,
        _: Request<pb::AuditVerifyRequest>,
    ) -> Result<Response<pb::AuditVerifyResponse>, Status> {
        let report = self.state.audit.verify(&self.state.public_key)?;
        let (first_bad_sequence, problem) = report.problem.clone().unwrap_or_default();
        let mut response = pb::AuditVerifyResponse {
            ok: report.ok(),
            entries: report.entries,
            head_hash: hex::encode(report.head),
            checkpoints: report.checkpoints,
            first_bad_sequence,
            problem,
            ..Default::default()
        };
        // Witnessed audit: what other members hold of this node's log.
        super::witness::add_witnesses(&self.state, &report, &mut response).await?;
        Ok(Response::new(response))
    }

    async fn network_report(
        &self,
        request: Request<pb::NetworkReportRequest>,
    ) -> Result<Response<pb::NetworkReportResponse>, Status> {
        let report = super::report::network_report(&self.state, request.into_inner()).await?;
        Ok(Response::new(report))
    }
}
