//! A member's part of a citizen's report across the network: what its audit
//! log holds about one subject (its disclosures as source, what it obtained
//! as asker, how many requests were refused or unanswered), as a signed
//! answer under the `handbereik/audit-report/v1` prefix (docs/formats.md
//! §10.8); serving it under the policy (action `report`, resource
//! `Report::"audit"`), and checking it on the asking side.
//!
//! The answer names other members and pseudonymous actors, never a BSN (the
//! log holds none). Calls `audit`, `membership`, the
//! [`policy`](super::policy) and [`serve`](super::serve) (admission, the
//! signed request, the served entry).

use handbereik_keys::{Domain, MemberId, Purpose, SignedEnvelope, SingleSigned, canonical};
use serde::{Deserialize, Serialize};

use super::ask;
use super::policy::{Action, PolicyRequest, RequestContext, Resource};
use super::serve::{Question, SourceState, ValidQuestion, admit};
use super::tls::PeerIdentity;
use crate::audit::{Actor, AuditEntry, Decision, Direction, REPORT_ACTION, Record};
use crate::error::{Error, Result};

/// Most entries one report answer carries (the newest); beyond that the
/// answer says `truncated`.
pub const MAX_REPORT_ENTRIES: usize = 1000;
/// Largest report answer accepted.
pub const REPORT_LIMIT: usize = 4 * 1024 * 1024;
/// What a report is about, in the audit log's `asked`/`given`.
pub const AUDIT_CATEGORY: &str = "audit";

/// One entry of the reporting member's log, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportEntry {
    /// Its sequence number in the reporter's log.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `served` (the reporter was the source) or `asked`.
    pub direction: String,
    /// The other member.
    pub peer: String,
    /// The purpose.
    pub purpose: String,
    /// `known`, `inspect` or `task`.
    pub action: String,
    /// Categories given.
    pub given: Vec<String>,
    /// Who acted, in what role, for whom.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// The reason, for an emergency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<String>,
    /// The request id both logs hold.
    pub request_id: String,
}

/// The signed body of a report answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The asker's request id.
    pub request_id: String,
    /// The reporting member (signer).
    pub source: String,
    /// The asking member.
    pub asker: String,
    /// Subject pseudonym, hex.
    pub subject: String,
    /// The purpose stated.
    pub purpose: String,
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// `allowed` or `denied`.
    pub decision: String,
    /// Why, when denied.
    pub reason: String,
    /// Policies that made the decision.
    pub policies: Vec<String>,
    /// Disclosures as source and obtained as asker, newest first.
    pub entries: Vec<ReportEntry>,
    /// Requests about the subject that were refused or unanswered.
    pub refused: u64,
    /// More entries than [`MAX_REPORT_ENTRIES`] were held; the newest given.
    pub truncated: bool,
}

/// Disclosures and obtained entries of `entries` (newest first, at most
/// [`MAX_REPORT_ENTRIES`]), the count of refused or unanswered ones, and
/// whether there were more.
pub fn summarize(entries: &[AuditEntry]) -> (Vec<ReportEntry>, u64, bool) {
    let mut refused = 0u64;
    let mut reported: Vec<ReportEntry> = Vec::new();
    for e in entries.iter().rev() {
        if e.action == REPORT_ACTION {
            continue;
        }
        if e.is_disclosure() || e.is_obtained() {
            reported.push(ReportEntry {
                seq: e.seq,
                time_ms: e.time_ms,
                direction: e.direction.as_str().into(),
                peer: e.peer.clone(),
                purpose: e.purpose.clone(),
                action: e.action.clone(),
                given: e.given.clone(),
                actor: e.actor.clone(),
                emergency: e.emergency.clone(),
                request_id: e.request_id.clone(),
            });
        } else if e.decision != Decision::Allowed {
            refused = refused.saturating_add(1);
        }
    }
    let truncated = reported.len() > MAX_REPORT_ENTRIES;
    reported.truncate(MAX_REPORT_ENTRIES);
    (reported, refused, truncated)
}

impl SourceState {
    /// Answers one report request from `peer`: the signed report, or an
    /// error that becomes a gRPC status. The decision is logged first.
    pub async fn report(&self, peer: &PeerIdentity, q: Question) -> Result<Vec<u8>> {
        let ValidQuestion {
            subject, purpose, ..
        } = q.check()?;
        let now = handbereik_keys::time::now();
        let asked = self.signed_ask(peer, &q, now).await?;
        let view = self.membership.view();
        let mut body = ReportBody {
            request_id: q.request_id.clone(),
            source: self.own.to_string(),
            asker: peer.member_id.to_string(),
            subject: q.subject.clone(),
            purpose: purpose.to_string(),
            time: now,
            decision: Decision::Denied.as_str().into(),
            reason: String::new(),
            policies: Vec::new(),
            entries: Vec::new(),
            refused: 0,
            truncated: false,
        };
        match admit(&view, peer, &purpose, &asked, now) {
            Err((reason, rule)) => {
                body.reason = reason;
                body.policies = vec![rule.to_string()];
            }
            Ok(member) => {
                let decision = self.policy.current().decide(&PolicyRequest {
                    member,
                    action: Action::Report,
                    resource: Resource::AuditReport,
                    context: RequestContext {
                        purpose: &purpose,
                        role: &asked.actor.role,
                        actor: &asked.actor.user,
                        emergency: false,
                    },
                });
                if !decision.errors.is_empty() {
                    tracing::warn!(errors = ?decision.errors, "policy evaluation errors; report denied");
                }
                body.policies = decision.policies;
                if decision.allowed {
                    let audit = self.audit.clone();
                    let held = tokio::task::spawn_blocking(move || audit.about(&subject))
                        .await
                        .map_err(|_| Error::Internal("reading the audit log failed"))??;
                    let entries: Vec<AuditEntry> = held.into_iter().map(|(e, _)| e).collect();
                    (body.entries, body.refused, body.truncated) = summarize(&entries);
                    body.decision = Decision::Allowed.as_str().into();
                } else {
                    body.reason = format!(
                        "the policy of {} does not allow member {} a report for purpose {purpose}",
                        self.own, member.member_id
                    );
                }
            }
        }
        let allowed = body.decision == Decision::Allowed.as_str();
        let record = Record {
            direction: Direction::Served,
            peer: peer.member_id.to_string(),
            purpose: body.purpose.clone(),
            subject: body.subject.clone(),
            action: REPORT_ACTION.into(),
            asked: vec![AUDIT_CATEGORY.into()],
            given: if allowed {
                vec![AUDIT_CATEGORY.into()]
            } else {
                Vec::new()
            },
            decision: if allowed {
                Decision::Allowed
            } else {
                Decision::Denied
            },
            policies: body.policies.clone(),
            request_id: body.request_id.clone(),
            actor: asked.actor,
            emergency: None,
            signed_request: q.signed_request.clone(),
        };
        let decision = record.decision;
        self.log(record, subject).await?;
        self.metrics
            .inspection_served(REPORT_ACTION, decision.as_str());
        let key = self.key.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = canonical::to_vec(&body, "audit report")?;
            Ok(SignedEnvelope::signed(Domain::AuditReport, bytes, &key).encode()?)
        })
        .await
        .map_err(|_| Error::Internal("signing a report failed"))?
    }
}

/// What the asker expects a report to be about.
#[derive(Clone, Copy, Debug)]
pub struct ExpectedReport<'a> {
    /// Request id sent.
    pub request_id: &'a str,
    /// Member asked.
    pub source: &'a str,
    /// This node.
    pub asker: &'a str,
    /// Subject asked about.
    pub subject: &'a str,
    /// Purpose stated.
    pub purpose: &'a str,
}

/// Checks a signed report: the signature by `key` (the asked member's key
/// from the member list), every field against what was asked, and every
/// entry's fields (another node wrote them) before anything is shown.
pub fn check(
    signed: &[u8],
    key: &ed25519_dalek::VerifyingKey,
    expected: &ExpectedReport<'_>,
) -> Result<ReportBody> {
    let bad = |why: String| {
        Error::P2p(format!(
            "the report of {} is refused: {why}",
            expected.source
        ))
    };
    let envelope = SingleSigned::decode(signed, "audit report", REPORT_LIMIT)
        .map_err(|e| bad(e.to_string()))?;
    envelope
        .verify(Domain::AuditReport, key)
        .map_err(|e| bad(e.to_string()))?;
    let body: ReportBody =
        canonical::from_slice(&envelope.body, "audit report").map_err(|e| bad(e.to_string()))?;
    let fields = [
        ("request_id", &body.request_id, expected.request_id),
        ("source", &body.source, expected.source),
        ("asker", &body.asker, expected.asker),
        ("subject", &body.subject, expected.subject),
        ("purpose", &body.purpose, expected.purpose),
    ];
    for (name, got, want) in fields {
        if got != want {
            return Err(bad(format!("it is about another {name} than asked")));
        }
    }
    handbereik_keys::time::check_bounded("time", body.time).map_err(bad)?;
    if body.entries.len() > MAX_REPORT_ENTRIES {
        return Err(bad(format!(
            "it holds more than {MAX_REPORT_ENTRIES} entries"
        )));
    }
    for entry in &body.entries {
        check_entry(entry).map_err(|why| bad(format!("entry {}: {why}", entry.seq)))?;
    }
    Ok(body)
}

fn check_entry(e: &ReportEntry) -> std::result::Result<(), String> {
    handbereik_keys::time::check_bounded("time_ms", e.time_ms / 1000)?;
    if e.direction != Direction::Served.as_str() && e.direction != Direction::Asked.as_str() {
        return Err("direction must be served or asked".into());
    }
    MemberId::parse(&e.peer).map_err(|_| "peer is not an OIN".to_string())?;
    Purpose::parse(&e.purpose).map_err(|_| "purpose is not a purpose".to_string())?;
    crate::registry::check_name(&e.action, "action")?;
    if e.given.len() > super::serve::MAX_CATEGORIES {
        return Err("too many categories given".into());
    }
    for c in &e.given {
        crate::registry::check_name(c, "category")?;
    }
    super::serve::check_request_id(&e.request_id).map_err(|e| e.to_string())?;
    if !e.actor.is_empty() {
        ask::check_form("actor", &e.actor).map_err(|e| e.to_string())?;
    }
    if let Some(reason) = &e.emergency {
        ask::check_reason("emergency", reason).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use handbereik_keys::NodeKey;

    fn entry(seq: u64, direction: Direction, decision: Decision, given: &[&str]) -> AuditEntry {
        AuditEntry {
            seq,
            time_ms: 1_800_000_000_000 + seq,
            direction,
            peer: "00000001001234567001".into(),
            purpose: "jeugd".into(),
            subject: "ab".repeat(32),
            action: "inspect".into(),
            asked: vec!["plan".into()],
            given: given.iter().map(|s| s.to_string()).collect(),
            decision,
            policies: vec![],
            request_id: format!("r{seq}"),
            prev: [0; 32],
            actor: Actor::default(),
            emergency: None,
            signed_request: Vec::new(),
        }
    }

    #[test]
    fn a_summary_holds_disclosures_and_obtained_newest_first_and_counts_refusals() {
        let mut report = entry(5, Direction::Served, Decision::Allowed, &["audit"]);
        report.action = REPORT_ACTION.into();
        let entries = vec![
            entry(1, Direction::Served, Decision::Allowed, &["plan"]),
            entry(2, Direction::Served, Decision::Denied, &[]),
            entry(3, Direction::Asked, Decision::Allowed, &["melding"]),
            entry(4, Direction::Asked, Decision::Unreachable, &[]),
            report,
            entry(6, Direction::Served, Decision::Allowed, &[]),
        ];
        let (reported, refused, truncated) = summarize(&entries);
        let seqs: Vec<u64> = reported.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 1]);
        assert_eq!(refused, 2);
        assert!(!truncated);
    }

    #[test]
    fn a_report_checks_only_with_the_reporters_key_and_sane_entries() {
        let key = NodeKey::generate().unwrap();
        let (entries, refused, truncated) =
            summarize(&[entry(1, Direction::Served, Decision::Allowed, &["plan"])]);
        let body = ReportBody {
            request_id: "r".into(),
            source: "00000001001234567000".into(),
            asker: "00000001001234567002".into(),
            subject: "ab".repeat(32),
            purpose: "burgerinzage".into(),
            time: 1_800_000_000,
            decision: "allowed".into(),
            reason: String::new(),
            policies: vec![],
            entries,
            refused,
            truncated,
        };
        let sign = |b: &ReportBody| {
            let bytes = canonical::to_vec(b, "audit report").unwrap();
            SignedEnvelope::signed(Domain::AuditReport, bytes, &key)
                .encode()
                .unwrap()
        };
        let expected = ExpectedReport {
            request_id: "r",
            source: "00000001001234567000",
            asker: "00000001001234567002",
            subject: &body.subject,
            purpose: "burgerinzage",
        };
        let vk = key.public_key().verifying_key().unwrap();
        assert_eq!(check(&sign(&body), &vk, &expected).unwrap(), body);
        let other = NodeKey::generate()
            .unwrap()
            .public_key()
            .verifying_key()
            .unwrap();
        assert!(check(&sign(&body), &other, &expected).is_err());
        let mut wrong = body.clone();
        wrong.entries[0].peer = "not an oin".into();
        assert!(check(&sign(&wrong), &vk, &expected).is_err());
        let mut asked_other = expected;
        asked_other.subject = "cd";
        assert!(check(&sign(&body), &vk, &asked_other).is_err());
    }
}
