//! `handbereik.v1.Inspections`: Locate, Known and Inspect at other members,
//! for the back office, each with the acting professional (and, for
//! Inspect, an emergency reason), which the asking side checks and signs.

use std::sync::Arc;

use handbereik_keys::{MemberId, Purpose};
use handbereik_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::ApiState;
use super::input;
use super::subject::resolve;
use crate::inspect::answer::{ALLOWED, AnswerBody, AnswerRecord, REFUSED, UNKNOWN_CATEGORY};
use crate::inspect::client::{Ask, Asker, MemberAnswer, Outcome};
use crate::inspect::policy::Action;
use crate::registry::pseudonym_text;

pub struct InspectionsService {
    state: Arc<ApiState>,
}

impl InspectionsService {
    pub fn new(state: Arc<ApiState>) -> Self {
        InspectionsService { state }
    }
}

fn purpose(text: &str) -> Result<Purpose, Status> {
    Ok(input::purpose("purpose", text)?)
}

fn member_id(text: &str) -> Result<MemberId, Status> {
    Ok(input::member_id("member_id", text)?)
}

fn answer_code(o: Outcome) -> i32 {
    (match o {
        Outcome::Known => pb::Answer::Known,
        Outcome::NotKnown => pb::Answer::NotKnown,
        Outcome::Denied => pb::Answer::Denied,
        Outcome::Unreachable => pb::Answer::Unreachable,
    }) as i32
}

fn record(r: &AnswerRecord) -> pb::Record {
    pb::Record {
        category: r.category.clone(),
        kind: r.kind.clone(),
        classification: r.classification.clone(),
        legal_basis: r.legal_basis.clone(),
        content_type: r.content_type.clone(),
        content: r.content.clone(),
        registered_at: r.registered_at,
        updated_at: r.updated_at,
        retain_until: r.retain_until,
    }
}

fn provenance(a: &MemberAnswer) -> Option<pb::Provenance> {
    let (signed, key, body) = (a.signed.as_ref()?, a.source_key?, a.body.as_ref()?);
    Some(pb::Provenance {
        source_member_id: a.member_id.to_string(),
        source_key: key.to_string(),
        signed_answer: signed.clone(),
        answered_at: body.time,
    })
}

fn member_answer(a: &MemberAnswer) -> pb::MemberAnswer {
    let body: Option<&AnswerBody> = a.body.as_ref();
    pb::MemberAnswer {
        member_id: a.member_id.to_string(),
        name: a.name.clone(),
        answer: answer_code(a.outcome),
        reason: a.reason.clone(),
        records: body
            .map(|b| {
                b.categories
                    .iter()
                    .flat_map(|c| c.records.iter().map(record))
                    .collect()
            })
            .unwrap_or_default(),
        policies: body.map(|b| b.policies.clone()).unwrap_or_default(),
        elapsed_ms: u32::try_from(a.elapsed.as_millis()).unwrap_or(u32::MAX),
        provenance: provenance(a),
    }
}

impl InspectionsService {
    fn asker(&self) -> &Asker {
        &self.state.asker
    }
}

#[tonic::async_trait]
impl pb::inspections_server::Inspections for InspectionsService {
    async fn locate(
        &self,
        request: Request<pb::LocateRequest>,
    ) -> Result<Response<pb::LocateResponse>, Status> {
        let r = request.into_inner();
        let subject = resolve(self.state.registry.subjects(), r.subject.as_ref())?;
        let purpose = purpose(&r.purpose)?;
        let deadline = Asker::deadline(r.deadline_ms)?;
        let regions = input::regions("regions", &r.regions)?;
        let (request_id, answers) = self
            .asker()
            .locate(
                subject,
                purpose,
                input::actor(r.actor.as_ref()),
                &regions,
                deadline,
            )
            .await?;
        Ok(Response::new(pb::LocateResponse {
            request_id,
            subject: pseudonym_text(&subject),
            answers: answers.iter().map(member_answer).collect(),
        }))
    }

    async fn known(
        &self,
        request: Request<pb::KnownRequest>,
    ) -> Result<Response<pb::KnownResponse>, Status> {
        let r = request.into_inner();
        let member = member_id(&r.member_id)?;
        let ask = Ask {
            subject: resolve(self.state.registry.subjects(), r.subject.as_ref())?,
            purpose: purpose(&r.purpose)?,
            action: Action::Known,
            categories: Vec::new(),
            deadline: Asker::deadline(r.deadline_ms)?,
            actor: input::actor(r.actor.as_ref()),
            emergency: None,
        };
        let (request_id, answer) = self.asker().ask(&member, ask).await?;
        Ok(Response::new(pb::KnownResponse {
            request_id,
            answer: Some(member_answer(&answer)),
        }))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::InspectResponse>, Status> {
        let r = request.into_inner();
        let member = member_id(&r.member_id)?;
        let ask = Ask {
            subject: resolve(self.state.registry.subjects(), r.subject.as_ref())?,
            purpose: purpose(&r.purpose)?,
            action: Action::Inspect,
            categories: r.categories,
            deadline: Asker::deadline(r.deadline_ms)?,
            actor: input::actor(r.actor.as_ref()),
            emergency: input::emergency(&r.emergency_reason),
        };
        let (request_id, answer) = self.asker().ask(&member, ask).await?;
        let categories = answer
            .body
            .as_ref()
            .map(|b| {
                b.categories
                    .iter()
                    .map(|c| pb::CategoryAnswer {
                        category: c.category.clone(),
                        decision: (match c.decision.as_str() {
                            ALLOWED => pb::CategoryDecision::Allowed,
                            REFUSED => pb::CategoryDecision::Refused,
                            UNKNOWN_CATEGORY => pb::CategoryDecision::UnknownCategory,
                            _ => pb::CategoryDecision::Unspecified,
                        }) as i32,
                        policies: c.policies.clone(),
                        records: c.records.iter().map(record).collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reachability = match answer.outcome {
            Outcome::Unreachable => pb::Answer::Unreachable as i32,
            Outcome::Denied if answer.body.is_none() => pb::Answer::Denied as i32,
            _ => pb::Answer::Unspecified as i32,
        };
        Ok(Response::new(pb::InspectResponse {
            request_id,
            member_id: answer.member_id.to_string(),
            categories,
            reachability,
            reason: answer.reason.clone(),
            provenance: provenance(&answer),
        }))
    }
}
