//! `Audit.NetworkReport` on the local API: a citizen's report across the
//! network, translated from and to protobuf. The work is in
//! `inspect::reporter`.

use handbereik_proto::v1 as pb;
use tonic::Status;

use super::ApiState;
use super::input;
use super::subject::resolve;
use crate::audit::Actor;
use crate::inspect::client::Asker;
use crate::inspect::reporter::{Disclosure, NetworkReport, PartnerReport, ReportOutcome};
use crate::registry::pseudonym_text;

/// Runs one network report.
pub async fn network_report(
    state: &ApiState,
    r: pb::NetworkReportRequest,
) -> Result<pb::NetworkReportResponse, Status> {
    let subject = resolve(state.registry.subjects(), r.subject.as_ref())?;
    let purpose = input::purpose("purpose", &r.purpose)?;
    let deadline = Asker::deadline(r.deadline_ms)?;
    let regions = input::regions("regions", &r.regions)?;
    let report = state
        .asker
        .network_report(
            subject,
            purpose,
            input::actor(r.actor.as_ref()),
            &regions,
            deadline,
        )
        .await?;
    Ok(to_proto(state, report))
}

fn to_proto(state: &ApiState, report: NetworkReport) -> pb::NetworkReportResponse {
    let view = state.membership.view();
    let name = |id: &str| {
        handbereik_keys::MemberId::parse(id)
            .ok()
            .and_then(|m| view.member(&m).map(|m| m.name.clone()))
            .unwrap_or_default()
    };
    pb::NetworkReportResponse {
        request_id: report.request_id,
        subject: pseudonym_text(&report.subject),
        disclosures: report
            .disclosures
            .into_iter()
            .map(|d| disclosure(d, &name))
            .collect(),
        partners: report.partners.into_iter().map(partner).collect(),
    }
}

fn disclosure(d: Disclosure, name: &impl Fn(&str) -> String) -> pb::ReportedDisclosure {
    pb::ReportedDisclosure {
        source_name: name(&d.source),
        asker_name: name(&d.asker),
        source_member_id: d.source,
        asker_member_id: d.asker,
        time_ms: d.time_ms,
        purpose: d.purpose,
        action: d.action,
        categories: d.categories,
        actor: actor(d.actor),
        emergency_reason: d.emergency.unwrap_or_default(),
        request_id: d.request_id,
        reported_by: d.reported_by,
    }
}

fn partner(p: PartnerReport) -> pb::PartnerReport {
    let outcome = match p.outcome {
        ReportOutcome::Answered => pb::ReportOutcome::ReportAnswered,
        ReportOutcome::Refused => pb::ReportOutcome::ReportRefused,
        ReportOutcome::NotAnswered => pb::ReportOutcome::ReportNotAnswered,
    };
    pb::PartnerReport {
        member_id: p.member_id.to_string(),
        name: p.name,
        outcome: outcome as i32,
        reason: p.reason,
        disclosures: p.counts.0,
        obtained: p.counts.1,
        refused: p.counts.2,
        truncated: p.truncated,
        provenance: p.signed.map(|(signed, key)| pb::Provenance {
            source_member_id: p.member_id.to_string(),
            source_key: key.to_string(),
            signed_answer: signed,
            answered_at: 0,
        }),
        elapsed_ms: u32::try_from(p.elapsed.as_millis()).unwrap_or(u32::MAX),
    }
}

/// The protobuf form of an actor; none when nothing was given.
pub fn actor(a: Actor) -> Option<pb::Actor> {
    if a.is_empty() {
        return None;
    }
    Some(pb::Actor {
        user: a.user,
        role: a.role,
        on_behalf_of: a.on_behalf_of,
    })
}
