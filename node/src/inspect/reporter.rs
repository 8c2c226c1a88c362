//! The asking side of a citizen's report across the network: every active
//! member (in the scope asked, this node excluded) is asked, at most
//! [`LOCATE_AT_ONCE`] at a time and all within one deadline, for what its
//! audit log holds about the subject; each signed answer is checked against
//! the member's key from the list; this node's own log is added; the
//! disclosures are combined (one disclosure is in the logs of both source
//! and asker: it is listed once, with both as reporters), emergencies
//! first, then newest first; every member that refused or did not answer is
//! named. Each member asked gets an entry in this node's audit log, in one
//! group commit, before the report is handed out.
//!
//! Calls `membership`, `audit`, [`channels`](super::channels),
//! [`ask`](super::ask) and [`report`](super::report).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use handbereik_keys::{Member, MemberId, PublicKey, Purpose};
use handbereik_proto::v1 as pb;

use super::client::{Ask, Asker, LOCATE_AT_ONCE, Prepared, in_scope};
use super::policy::Action;
use super::report::{self, AUDIT_CATEGORY, ExpectedReport, ReportBody, ReportEntry};
use crate::audit::{Actor, AuditEntry, Decision, Direction, REPORT_ACTION, Record};
use crate::error::{Error, Result};
use crate::registry::{Pseudonym, pseudonym_text};

/// How one member answered a report request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    /// It answered (its log may hold nothing about the subject).
    Answered,
    /// Its policy or member check refused.
    Refused,
    /// No valid answer by the deadline.
    NotAnswered,
}

/// One member's part of the report.
#[derive(Clone, Debug)]
pub struct PartnerReport {
    /// The member.
    pub member_id: MemberId,
    /// Its name in the list.
    pub name: String,
    /// How it answered.
    pub outcome: ReportOutcome,
    /// Why, for refused and not answered.
    pub reason: String,
    /// Disclosures as source, obtained as asker, refused or unanswered.
    pub counts: (u32, u32, u32),
    /// Its log held more than one answer carries.
    pub truncated: bool,
    /// The signed answer and the key that signed it (not for this node).
    pub signed: Option<(Vec<u8>, PublicKey)>,
    /// How long it took.
    pub elapsed: Duration,
}

/// One disclosure about the subject, as the reporting logs have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    /// The member that gave.
    pub source: String,
    /// The member that asked (who looked).
    pub asker: String,
    /// Milliseconds since the Unix epoch (the earliest report of it).
    pub time_ms: u64,
    /// The purpose.
    pub purpose: String,
    /// `known`, `inspect` or `task`.
    pub action: String,
    /// What was given.
    pub categories: Vec<String>,
    /// Who acted, in what role, for whom.
    pub actor: Actor,
    /// The reason, for an emergency.
    pub emergency: Option<String>,
    /// The request id.
    pub request_id: String,
    /// The members whose logs hold it.
    pub reported_by: Vec<String>,
}

/// The whole report.
#[derive(Clone, Debug)]
pub struct NetworkReport {
    /// The request id every member logged.
    pub request_id: String,
    /// The subject's pseudonym.
    pub subject: Pseudonym,
    /// Emergencies first, then newest first.
    pub disclosures: Vec<Disclosure>,
    /// This node first, then every member asked, by member id.
    pub partners: Vec<PartnerReport>,
}

impl Asker {
    /// Asks every member in scope for its report on `subject`, within
    /// `deadline`, and combines the answers with this node's own log.
    pub async fn network_report(
        &self,
        subject: Pseudonym,
        purpose: Purpose,
        actor: Actor,
        regions: &[String],
        deadline: Duration,
    ) -> Result<NetworkReport> {
        let ask = Ask {
            subject,
            purpose,
            action: Action::Report,
            categories: Vec::new(),
            deadline,
            actor,
            emergency: None,
        };
        let view = self.precheck(&ask)?;
        let prepared = self.prepare(&ask).await?;
        let now = handbereik_keys::time::now();
        let members: Vec<&Member> = view
            .members()
            .iter()
            .filter(|m| m.member_id != self.own && m.is_active(now) && in_scope(m, regions))
            .collect();
        let until = tokio::time::Instant::now() + deadline;
        let asks: Vec<_> = members
            .into_iter()
            .map(|m| self.report_one(m, &prepared, &ask, until))
            .collect();
        let mut answers: Vec<(PartnerReport, Option<ReportBody>)> = futures::stream::iter(asks)
            .buffer_unordered(LOCATE_AT_ONCE)
            .collect()
            .await;
        answers.sort_by(|a, b| a.0.member_id.cmp(&b.0.member_id));
        self.log_reports(&answers, &ask, &prepared.request_id)
            .await?;

        let audit = self.audit.clone();
        let own_entries = tokio::task::spawn_blocking(move || audit.about(&subject))
            .await
            .map_err(|_| Error::Internal("reading the audit log failed"))??;
        let own_entries: Vec<AuditEntry> = own_entries.into_iter().map(|(e, _)| e).collect();
        let (own_reported, own_refused, own_truncated) = report::summarize(&own_entries);
        let own = PartnerReport {
            member_id: self.own.clone(),
            name: view
                .member(&self.own)
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            outcome: ReportOutcome::Answered,
            reason: String::new(),
            counts: counts(&own_reported, own_refused),
            truncated: own_truncated,
            signed: None,
            elapsed: Duration::ZERO,
        };
        let mut combined = Combined::default();
        combined.add(self.own.as_str(), &own_reported);
        for (_, body) in &answers {
            if let Some(body) = body {
                combined.add(&body.source, &body.entries);
            }
        }
        let mut partners = vec![own];
        partners.extend(answers.into_iter().map(|(p, _)| p));
        Ok(NetworkReport {
            request_id: prepared.request_id,
            subject,
            disclosures: combined.into_sorted(),
            partners,
        })
    }

    async fn report_one(
        &self,
        member: &Member,
        prepared: &Prepared,
        ask: &Ask,
        until: tokio::time::Instant,
    ) -> (PartnerReport, Option<ReportBody>) {
        let started = Instant::now();
        let mut partner = PartnerReport {
            member_id: member.member_id.clone(),
            name: member.name.clone(),
            outcome: ReportOutcome::NotAnswered,
            reason: String::new(),
            counts: (0, 0, 0),
            truncated: false,
            signed: None,
            elapsed: Duration::ZERO,
        };
        let mut body = None;
        if member.maintenance {
            partner.reason = "the member is in maintenance".into();
        } else {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.call_report(member, prepared, ask)).await {
                Err(_) => partner.reason = format!("no answer within {} ms", left.as_millis()),
                Ok(Err((refused, reason))) => {
                    if refused {
                        partner.outcome = ReportOutcome::Refused;
                    }
                    partner.reason = reason;
                }
                Ok(Ok((answer, signed))) => {
                    if answer.decision == Decision::Allowed.as_str() {
                        partner.outcome = ReportOutcome::Answered;
                        partner.counts = counts(&answer.entries, answer.refused);
                        partner.truncated = answer.truncated;
                    } else {
                        partner.outcome = ReportOutcome::Refused;
                        partner.reason = answer.reason.clone();
                    }
                    partner.signed = Some((signed, member.node_key));
                    body = Some(answer).filter(|b| b.decision == Decision::Allowed.as_str());
                }
            }
        }
        partner.elapsed = started.elapsed();
        (partner, body)
    }

    /// One Report call; an error says whether it was a refusal.
    async fn call_report(
        &self,
        member: &Member,
        prepared: &Prepared,
        ask: &Ask,
    ) -> std::result::Result<(ReportBody, Vec<u8>), (bool, String)> {
        let failed = |why: String| (false, why);
        let mut client = self
            .channels
            .source(member)
            .map_err(|e| failed(e.to_string()))?;
        let subject = pseudonym_text(&ask.subject);
        let purpose = ask.purpose.to_string();
        let reply = client
            .report(pb::SourceReportRequest {
                request_id: prepared.request_id.clone(),
                subject: subject.clone(),
                purpose: purpose.clone(),
                signed_request: prepared.signed.clone(),
            })
            .await;
        let signed = match reply {
            Ok(r) => r.into_inner().envelope,
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                return Err((true, status.message().to_string()));
            }
            Err(status) => {
                return Err(failed(format!(
                    "{:?}: {}",
                    status.code(),
                    handbereik_keys::text::excerpt(status.message())
                )));
            }
        };
        let key = member
            .node_key
            .verifying_key()
            .map_err(|e| failed(e.to_string()))?;
        let own = self.own.to_string();
        let source = member.member_id.to_string();
        let request_id = prepared.request_id.clone();
        // Checking may mean a few MiB of entries: on the blocking pool.
        tokio::task::spawn_blocking(move || {
            report::check(
                &signed,
                &key,
                &ExpectedReport {
                    request_id: &request_id,
                    source: &source,
                    asker: &own,
                    subject: &subject,
                    purpose: &purpose,
                },
            )
            .map(|body| (body, signed))
            .map_err(|e| failed(e.to_string()))
        })
        .await
        .map_err(|_| failed("checking the report failed".into()))?
    }

    /// One audit entry per member asked, in one group commit.
    async fn log_reports(
        &self,
        answers: &[(PartnerReport, Option<ReportBody>)],
        ask: &Ask,
        request_id: &str,
    ) -> Result<()> {
        let subject = pseudonym_text(&ask.subject);
        let logs = answers.iter().map(|(p, _)| {
            let (decision, given) = match p.outcome {
                ReportOutcome::Answered => (Decision::Allowed, vec![AUDIT_CATEGORY.to_string()]),
                ReportOutcome::Refused => (Decision::Denied, Vec::new()),
                ReportOutcome::NotAnswered => (Decision::Unreachable, Vec::new()),
            };
            let record = Record {
                direction: Direction::Asked,
                peer: p.member_id.to_string(),
                purpose: ask.purpose.to_string(),
                subject: subject.clone(),
                action: REPORT_ACTION.into(),
                asked: vec![AUDIT_CATEGORY.into()],
                given,
                decision,
                policies: Vec::new(),
                request_id: request_id.to_string(),
                actor: ask.actor.clone(),
                emergency: None,
                signed_request: Vec::new(),
            };
            self.audit.log(record, Some(ask.subject))
        });
        for result in futures::future::join_all(logs).await {
            if let Err(e) = result {
                self.metrics.audit_failures.inc();
                tracing::error!(error = %e, "audit append failed; the report is withheld");
                return Err(e);
            }
        }
        Ok(())
    }
}

fn counts(entries: &[ReportEntry], refused: u64) -> (u32, u32, u32) {
    let served = entries
        .iter()
        .filter(|e| e.direction == Direction::Served.as_str())
        .count();
    let asked = entries.len() - served;
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    (
        small(served),
        small(asked),
        u32::try_from(refused).unwrap_or(u32::MAX),
    )
}

/// Disclosures keyed by (request id, source, asker): the source's log and
/// the asker's log each report the same disclosure once.
#[derive(Default)]
struct Combined {
    by_key: HashMap<(String, String, String), Disclosure>,
}

impl Combined {
    fn add(&mut self, reporter: &str, entries: &[ReportEntry]) {
        for e in entries {
            let (source, asker) = if e.direction == Direction::Served.as_str() {
                (reporter.to_string(), e.peer.clone())
            } else {
                (e.peer.clone(), reporter.to_string())
            };
            let key = (e.request_id.clone(), source.clone(), asker.clone());
            let d = self.by_key.entry(key).or_insert_with(|| Disclosure {
                source,
                asker,
                time_ms: e.time_ms,
                purpose: e.purpose.clone(),
                action: e.action.clone(),
                categories: e.given.clone(),
                actor: e.actor.clone(),
                emergency: e.emergency.clone(),
                request_id: e.request_id.clone(),
                reported_by: Vec::new(),
            });
            d.time_ms = d.time_ms.min(e.time_ms);
            // The asker's log knows the actor best (it was its professional);
            // the source's log holds what was signed to it: the same, unless
            // one side sent none.
            if d.actor.is_empty() {
                d.actor = e.actor.clone();
            }
            if d.emergency.is_none() {
                d.emergency = e.emergency.clone();
            }
            if !d.reported_by.iter().any(|r| r == reporter) {
                d.reported_by.push(reporter.to_string());
            }
        }
    }

    fn into_sorted(self) -> Vec<Disclosure> {
        let mut all: Vec<Disclosure> = self.by_key.into_values().collect();
        all.sort_by(|a, b| {
            b.emergency
                .is_some()
                .cmp(&a.emergency.is_some())
                .then(b.time_ms.cmp(&a.time_ms))
                .then(a.request_id.cmp(&b.request_id))
        });
        all
    }
}
