//! Witnessed audit on the local API: the witnesses' part of
//! `Audit.Verify`, and the audit alarms of `Node.Status`. Translation only;
//! the work is in `inspect::witnesses` and `audit::witness`.

use handbereik_proto::v1 as pb;
use tonic::Status;

use super::ApiState;
use crate::audit::Report;
use crate::audit::witness::{CopyOutcome, WitnessReport};

/// Alarms listed in Status at most.
pub const STATUS_ALARMS: usize = 100;

/// Asks the witnesses about `local` and adds what they hold to `response`;
/// a disagreement makes it not ok (when the local chain was).
pub async fn add_witnesses(
    state: &ApiState,
    local: &Report,
    response: &mut pb::AuditVerifyResponse,
) -> Result<(), Status> {
    response.node_keys = local.keys.iter().map(|k| k.to_hex()).collect();
    let connected: Vec<_> = state
        .p2p
        .connected_peers()
        .await?
        .into_iter()
        .map(|(_, member)| member)
        .collect();
    let report = state.witnesses.check(local, &connected).await?;
    fill(&report, response);
    Ok(())
}

fn fill(report: &WitnessReport, response: &mut pb::AuditVerifyResponse) {
    response.witnesses_asked = u32::try_from(report.copies.len()).unwrap_or(u32::MAX);
    response.witnesses_agreeing = report.count(CopyOutcome::Agrees);
    response.witnesses_disagreeing = report.count(CopyOutcome::Disagrees);
    response.witnesses_unreachable = report.count(CopyOutcome::Unreachable);
    response.witnesses_without_copy = report.count(CopyOutcome::None);
    response.witnesses = report
        .copies
        .iter()
        .map(|c| pb::WitnessCopy {
            member_id: c.witness.to_string(),
            outcome: c.outcome.as_str().into(),
            sequence: c.seq,
            head_hash: if c.seq == 0 {
                String::new()
            } else {
                hex::encode(c.hash)
            },
            reason: c.reason.clone(),
        })
        .collect();
    if response.ok
        && let Some((seq, problem)) = report.problem()
    {
        response.ok = false;
        response.first_bad_sequence = seq;
        response.problem = problem;
    }
}

/// The alarms this node raised as a witness, for Status (read and decoded
/// on the blocking pool).
pub async fn alarms(state: &ApiState) -> Result<Vec<pb::AuditAlarm>, Status> {
    let witness = state.witness.clone();
    let alarms = tokio::task::spawn_blocking(move || witness.alarms(STATUS_ALARMS))
        .await
        .map_err(|e| Status::internal(format!("reading the audit alarms panicked: {e}")))??;
    Ok(alarms
        .into_iter()
        .map(|a| pb::AuditAlarm {
            member_id: a.member.to_string(),
            held_entries: a.held.seq,
            held_hash: hex::encode(a.held.hash),
            offered_entries: a.offered.seq,
            offered_hash: hex::encode(a.offered.hash),
            time: a.time,
            problem: a.problem,
        })
        .collect())
}
