//! The asking side: `Known` and `Inspect` at one member, and `Locate` at
//! every bronhouder admitted for a purpose, in parallel with a deadline.
//!
//! Every answer is checked against the asked member's key from the member
//! list (provenance) and logged in this node's audit log before it is handed
//! to the back office; if that log fails, the back office gets an error, not
//! the data. Each question carries the asking node's signed statement of it
//! ([`ask`](super::ask)), with the acting professional and, for an
//! emergency, the reason; an emergency is also counted and announced on the
//! local stream. Connections come from the shared [`Channels`] pool. Calls
//! `membership`, `audit`, `notify` (announcements), [`channels`](super::channels),
//! [`ask`](super::ask) and [`answer`](super::answer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use handbereik_keys::{Member, MemberId, NodeKey, PublicKey, Purpose};
use handbereik_proto::v1 as pb;

use super::answer::{self, ALLOWED, AnswerBody, Expected};
use super::ask::{self, AskBody};
use super::channels::Channels;
use super::policy::Action;
use super::serve::{check_categories, is_source_for};
use crate::audit::{Actor, Audit, Decision, Direction, Record};
use crate::error::{Error, Result};
use crate::membership::{Membership, MembershipView};
use crate::metrics::Metrics;
use crate::notify::announce::{Announcer, EmergencyNotice};
use crate::registry::{Pseudonym, pseudonym_text};

/// Sources a Locate asks at once: enough to finish within a deadline of
/// seconds, few enough that a list of thousands never opens thousands of
/// connections at a time.
pub const LOCATE_AT_ONCE: usize = 64;

/// Longest deadline a caller may set.
pub const MAX_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline when the caller sets none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// How one member answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed, and something was given.
    Known,
    /// Allowed, and nothing is held.
    NotKnown,
    /// The source's policy or member check refused.
    Denied,
    /// No valid answer by the deadline.
    Unreachable,
}

/// One member's answer, as the back office gets it.
#[derive(Clone, Debug)]
pub struct MemberAnswer {
    /// The member asked.
    pub member_id: MemberId,
    /// Its name in the member list.
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Why, for denied and unreachable.
    pub reason: String,
    /// The checked body, when the source answered.
    pub body: Option<AnswerBody>,
    /// The signed bytes as received.
    pub signed: Option<Vec<u8>>,
    /// The key that signed them.
    pub source_key: Option<PublicKey>,
    /// How long it took.
    pub elapsed: Duration,
}

/// A question to ask.
#[derive(Clone, Debug)]
pub struct Ask {
    /// The subject.
    pub subject: Pseudonym,
    /// The purpose.
    pub purpose: Purpose,
    /// Known or Inspect.
    pub action: Action,
    /// For Inspect.
    pub categories: Vec<String>,
    /// Answer by then.
    pub deadline: Duration,
    /// The acting professional (checked against the list's vocabulary).
    pub actor: Actor,
    /// Break-glass: the reason, for an emergency Inspect.
    pub emergency: Option<String>,
}

/// What one question needs besides the members asked: its id and the
/// signed statement of it, made once for every member asked.
pub(super) struct Prepared {
    pub(super) request_id: String,
    pub(super) signed: Vec<u8>,
}

/// Asks other members. Cheap to share behind an `Arc`.
pub struct Asker {
    pub(super) own: MemberId,
    pub(super) key: Arc<NodeKey>,
    pub(super) channels: Arc<Channels>,
    pub(super) membership: Membership,
    pub(super) audit: Audit,
    pub(super) metrics: Arc<Metrics>,
    announcer: Announcer,
}

impl Asker {
    /// As `own`, signing with `key`, connecting through `channels`.
    pub fn new(
        own: MemberId,
        key: Arc<NodeKey>,
        channels: Arc<Channels>,
        membership: Membership,
        audit: Audit,
        metrics: Arc<Metrics>,
        announcer: Announcer,
    ) -> Self {
        Asker {
            own,
            key,
            channels,
            membership,
            audit,
            metrics,
            announcer,
        }
    }

    /// A deadline as asked: 0 means the default; more than the maximum is refused.
    pub fn deadline(ms: u32) -> Result<Duration> {
        let d = Duration::from_millis(u64::from(ms));
        if ms == 0 {
            Ok(DEFAULT_DEADLINE)
        } else if d > MAX_DEADLINE {
            Err(Error::InvalidRequest(format!(
                "deadline_ms {ms} is longer than the {} ms allowed",
                MAX_DEADLINE.as_millis()
            )))
        } else {
            Ok(d)
        }
    }

    /// Fails closed: no valid list, this node not admitted for the purpose,
    /// or an actor or emergency the rules refuse.
    pub(super) fn precheck(&self, ask: &Ask) -> Result<Arc<MembershipView>> {
        let view = self.admitted(&ask.purpose)?;
        ask::check_actor("actor", &ask.actor, view.list().map(|l| &l.list))?;
        if let Some(reason) = &ask.emergency {
            if ask.action != Action::Inspect {
                return Err(Error::InvalidRequest(
                    "emergency_reason: only Inspect can be an emergency".into(),
                ));
            }
            ask::check_reason("emergency_reason", reason)?;
            if ask.actor.user.is_empty() {
                return Err(Error::InvalidRequest(
                    "actor: an emergency needs the acting professional (user and role), so that both audit logs say who broke the glass".into(),
                ));
            }
        }
        Ok(view)
    }

    /// Fails closed: no valid list, or this node not admitted for `purpose`.
    pub(super) fn admitted(&self, purpose: &Purpose) -> Result<Arc<MembershipView>> {
        let view = self.membership.view();
        let now = handbereik_keys::time::now();
        if let Some(refusal) = view.refusal(now) {
            return Err(Error::NotAvailable(format!(
                "{refusal}; inspections are refused until then"
            )));
        }
        if let Some(refusal) = view.own_refusal(&self.own, now) {
            return Err(Error::Denied(refusal));
        }
        let admitted = view
            .member(&self.own)
            .is_some_and(|m| m.has_purpose(purpose));
        if !admitted {
            return Err(Error::Denied(format!(
                "this node ({}) is not admitted for purpose {purpose} in member list version {}; ask governance to admit it, or use a purpose it is admitted for",
                self.own,
                view.version()
            )));
        }
        Ok(view)
    }

    /// Asks one named member; answers with the request id.
    pub async fn ask(&self, member_id: &MemberId, ask: Ask) -> Result<(String, MemberAnswer)> {
        if ask.action == Action::Inspect {
            check_categories(&ask.categories)?;
        }
        let view = self.precheck(&ask)?;
        if member_id == &self.own {
            return Err(Error::InvalidRequest(
                "that is this node itself; read its own registry through the Registry service"
                    .into(),
            ));
        }
        let member = view.member(member_id).ok_or_else(|| {
            Error::NotFound(format!(
                "member {member_id} is not in member list version {}; `handbereik-keys show` or the Members call lists who is",
                view.version()
            ))
        })?;
        if !member.is_active(handbereik_keys::time::now()) {
            return Err(Error::Denied(format!(
                "member {member_id} is not a member at this moment (outside its valid_from/valid_until)"
            )));
        }
        let prepared = self.prepare(&ask).await?;
        let answer = self.ask_one(member, &prepared, &ask).await;
        self.log(&[&answer], &ask, &prepared.request_id).await?;
        Ok((prepared.request_id, answer))
    }

    /// Asks every bronhouder admitted for the purpose (not this node) whether
    /// it knows the subject, at most [`LOCATE_AT_ONCE`] at a time, all within
    /// one deadline; a source not asked by then is answered unreachable. With
    /// `regions`, only sources serving one of them are asked, and those that
    /// name no region (national members).
    /// Answers come in member id order.
    pub async fn locate(
        &self,
        subject: Pseudonym,
        purpose: Purpose,
        actor: Actor,
        regions: &[String],
        deadline: Duration,
    ) -> Result<(String, Vec<MemberAnswer>)> {
        let ask = Ask {
            subject,
            purpose,
            action: Action::Known,
            categories: Vec::new(),
            deadline,
            actor,
            emergency: None,
        };
        let view = self.precheck(&ask)?;
        let prepared = self.prepare(&ask).await?;
        let now = handbereik_keys::time::now();
        let sources: Vec<&Member> = view
            .members()
            .iter()
            .filter(|m| {
                m.member_id != self.own
                    && m.is_active(now)
                    && is_source_for(m, &ask.purpose)
                    && in_scope(m, regions)
            })
            .collect();
        let until = tokio::time::Instant::now() + deadline;
        let asks: Vec<_> = sources
            .into_iter()
            .map(|m| self.ask_one_until(m, &prepared, &ask, until))
            .collect();
        let mut answers: Vec<MemberAnswer> = futures::stream::iter(asks)
            .buffer_unordered(LOCATE_AT_ONCE)
            .collect()
            .await;
        // In a fixed order, not in the order they happened to finish.
        answers.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let refs: Vec<&MemberAnswer> = answers.iter().collect();
        self.log(&refs, &ask, &prepared.request_id).await?;
        Ok((prepared.request_id, answers))
    }

    /// A new request id, and the signed statement of the question (signed on
    /// the blocking pool: CPU work stays off the async workers).
    pub(super) async fn prepare(&self, ask: &Ask) -> Result<Prepared> {
        let request_id = uuid::Uuid::now_v7().to_string();
        crate::trace::record_request_id(&request_id);
        let body = AskBody {
            request_id: request_id.clone(),
            asker: self.own.to_string(),
            subject: pseudonym_text(&ask.subject),
            purpose: ask.purpose.to_string(),
            action: ask.action.as_str().into(),
            categories: ask.categories.clone(),
            actor: ask.actor.clone(),
            emergency: ask.emergency.clone(),
            time: handbereik_keys::time::now(),
        };
        let key = self.key.clone();
        let signed = tokio::task::spawn_blocking(move || body.sign(&key))
            .await
            .map_err(|_| Error::Internal("signing a request failed"))??;
        Ok(Prepared { request_id, signed })
    }

    /// [`Asker::ask_one`] within a fixed moment rather than a duration.
    async fn ask_one_until(
        &self,
        member: &Member,
        prepared: &Prepared,
        ask: &Ask,
        until: tokio::time::Instant,
    ) -> MemberAnswer {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        self.ask_one_within(member, prepared, ask, left).await
    }

    async fn ask_one(&self, member: &Member, prepared: &Prepared, ask: &Ask) -> MemberAnswer {
        self.ask_one_within(member, prepared, ask, ask.deadline)
            .await
    }

    async fn ask_one_within(
        &self,
        member: &Member,
        prepared: &Prepared,
        ask: &Ask,
        deadline: Duration,
    ) -> MemberAnswer {
        let started = Instant::now();
        let mut answer = MemberAnswer {
            member_id: member.member_id.clone(),
            name: member.name.clone(),
            outcome: Outcome::Unreachable,
            reason: String::new(),
            body: None,
            signed: None,
            source_key: None,
            elapsed: Duration::ZERO,
        };
        if member.maintenance {
            answer.reason = "the member is in maintenance".into();
        } else {
            let result = tokio::time::timeout(deadline, self.call(member, prepared, ask)).await;
            match result {
                Err(_) => answer.reason = format!("no answer within {} ms", deadline.as_millis()),
                Ok(Err(Reply::Refused(reason))) => {
                    answer.outcome = Outcome::Denied;
                    answer.reason = reason;
                }
                Ok(Err(Reply::Failed(reason))) => answer.reason = reason,
                Ok(Ok((body, signed))) => {
                    answer.outcome = match (body.decision == ALLOWED, body.has_records()) {
                        (true, true) => Outcome::Known,
                        (true, false) => Outcome::NotKnown,
                        (false, _) => Outcome::Denied,
                    };
                    answer.reason = body.reason.clone();
                    answer.body = Some(body);
                    answer.signed = Some(signed);
                    answer.source_key = Some(member.node_key);
                }
            }
        }
        answer.elapsed = started.elapsed();
        self.metrics.inspection_asked(outcome_name(answer.outcome));
        tracing::debug!(
            member = %answer.member_id,
            outcome = %outcome_name(answer.outcome),
            elapsed_ms = u64::try_from(answer.elapsed.as_millis()).unwrap_or(u64::MAX),
            "member answered"
        );
        answer
    }

    async fn call(
        &self,
        member: &Member,
        prepared: &Prepared,
        ask: &Ask,
    ) -> std::result::Result<(AnswerBody, Vec<u8>), Reply> {
        let request_id = prepared.request_id.as_str();
        let mut client = self
            .channels
            .source(member)
            .map_err(|e| Reply::Failed(e.to_string()))?;
        let subject = pseudonym_text(&ask.subject);
        let purpose = ask.purpose.to_string();
        let reply = match ask.action {
            Action::Known => {
                client
                    .known(pb::SourceKnownRequest {
                        request_id: request_id.into(),
                        subject: subject.clone(),
                        purpose: purpose.clone(),
                        signed_request: prepared.signed.clone(),
                    })
                    .await
            }
            Action::Inspect => {
                client
                    .inspect(pb::SourceInspectRequest {
                        request_id: request_id.into(),
                        subject: subject.clone(),
                        purpose: purpose.clone(),
                        categories: ask.categories.clone(),
                        signed_request: prepared.signed.clone(),
                    })
                    .await
            }
            Action::Task | Action::Report => {
                return Err(Reply::Failed(
                    "only Known and Inspect are asked through the Source service".into(),
                ));
            }
        };
        let signed = match reply {
            Ok(r) => r.into_inner().envelope,
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                return Err(Reply::Refused(format!(
                    "{}: {}",
                    member.member_id,
                    status.message()
                )));
            }
            Err(status) => {
                return Err(Reply::Failed(format!(
                    "{} ({:?}): {}",
                    member.member_id,
                    status.code(),
                    status.message()
                )));
            }
        };
        let key = member
            .node_key
            .verifying_key()
            .map_err(|e| Reply::Failed(e.to_string()))?;
        let own = self.own.to_string();
        let source = member.member_id.to_string();
        let body = answer::check(
            &signed,
            &key,
            &Expected {
                request_id,
                source: &source,
                asker: &own,
                subject: &subject,
                purpose: &purpose,
                action: ask.action.as_str(),
                categories: (ask.action == Action::Inspect).then_some(&ask.categories[..]),
            },
        )
        .map_err(|e| Reply::Failed(e.to_string()))?;
        Ok((body, signed))
    }

    /// Logs each answer (one entry per member asked), all in one group commit.
    async fn log(&self, answers: &[&MemberAnswer], ask: &Ask, request_id: &str) -> Result<()> {
        let subject = pseudonym_text(&ask.subject);
        let logs = answers.iter().map(|a| {
            let (decision, policies, given) = match (&a.outcome, &a.body) {
                (Outcome::Unreachable, _) => (Decision::Unreachable, Vec::new(), Vec::new()),
                (Outcome::Denied, Some(b)) => (Decision::Denied, b.policies.clone(), Vec::new()),
                (Outcome::Denied, None) => (Decision::Denied, Vec::new(), Vec::new()),
                (_, Some(b)) => (Decision::Allowed, b.policies.clone(), b.given()),
                (_, None) => (Decision::Allowed, Vec::new(), Vec::new()),
            };
            let record = Record {
                direction: Direction::Asked,
                peer: a.member_id.to_string(),
                purpose: ask.purpose.to_string(),
                subject: subject.clone(),
                action: ask.action.as_str().into(),
                asked: ask.categories.clone(),
                given,
                decision,
                policies,
                request_id: request_id.to_string(),
                actor: ask.actor.clone(),
                emergency: ask.emergency.clone(),
                signed_request: Vec::new(),
            };
            self.audit.log(record, Some(ask.subject))
        });
        let mut sequences = Vec::with_capacity(answers.len());
        for result in futures::future::join_all(logs).await {
            match result {
                Ok(seq) => sequences.push(seq),
                Err(e) => {
                    self.metrics.audit_failures.inc();
                    tracing::error!(error = %e, "audit append failed; the answer is withheld");
                    return Err(e);
                }
            }
        }
        if let Some(reason) = &ask.emergency {
            for (answer, seq) in answers.iter().zip(sequences) {
                self.emergency_asked(answer, ask, request_id, reason, seq)
                    .await;
            }
        }
        Ok(())
    }

    /// Counts an emergency inspection and announces it on the local stream,
    /// once its audit entry is durable. An announcement that cannot be
    /// stored is logged; the audit entry is the record that counts.
    async fn emergency_asked(
        &self,
        answer: &MemberAnswer,
        ask: &Ask,
        request_id: &str,
        reason: &str,
        audit_sequence: u64,
    ) {
        let decision = match answer.outcome {
            Outcome::Known | Outcome::NotKnown => Decision::Allowed,
            Outcome::Denied => Decision::Denied,
            Outcome::Unreachable => Decision::Unreachable,
        };
        self.metrics.emergency("asked", decision.as_str());
        tracing::warn!(
            request_id,
            member = %answer.member_id,
            role = %ask.actor.role,
            decision = decision.as_str(),
            "emergency inspection asked"
        );
        let notice = EmergencyNotice {
            direction: "asked",
            member_id: answer.member_id.to_string(),
            purpose: ask.purpose.to_string(),
            decision: decision.as_str(),
            categories_given: answer
                .body
                .as_ref()
                .map(AnswerBody::given)
                .unwrap_or_default(),
            role: ask.actor.role.clone(),
            user: ask.actor.user.clone(),
            on_behalf_of: ask.actor.on_behalf_of.clone(),
            reason: reason.to_string(),
            request_id: request_id.to_string(),
            audit_sequence,
        };
        if let Err(e) = self
            .announcer
            .emergency(&pseudonym_text(&ask.subject), &notice)
            .await
        {
            tracing::error!(error = %e, "an emergency inspection could not be announced on the local stream");
        }
    }
}

/// Whether a scoped question asks `member`: no scope, a member that names
/// no region (a national one), or one that serves one of `regions`.
pub(super) fn in_scope(member: &Member, regions: &[String]) -> bool {
    regions.is_empty()
        || member.regions.is_empty()
        || regions.iter().any(|r| member.serves_region(r))
}

enum Reply {
    Refused(String),
    Failed(String),
}

/// `known`, `not_known`, `denied` or `unreachable`.
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Known => "known",
        Outcome::NotKnown => "not_known",
        Outcome::Denied => "denied",
        Outcome::Unreachable => "unreachable",
    }
}
