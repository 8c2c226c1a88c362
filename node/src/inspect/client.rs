//! The asking side: `Known` and `Inspect` at one member, and `Locate` at
//! every bronhouder admitted for a purpose, in parallel with a deadline.
//!
//! Every answer is checked against the asked member's key from the member
//! list (provenance) and logged in this node's audit log before it is handed
//! to the back office; if that log fails, the back office gets an error, not
//! the data. Connections are kept per member and rebuilt when the list gives
//! the member another key or endpoint. Calls `membership`, `audit`,
//! [`tls`](super::tls) and [`answer`](super::answer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use handbereik_keys::{Member, MemberId, PublicKey, Purpose};
use handbereik_proto::v1 as pb;
use handbereik_proto::v1::source_client::SourceClient;
use tonic::transport::Channel;

use super::answer::{self, ALLOWED, AnswerBody, Expected};
use super::policy::Action;
use super::serve::{check_categories, is_source_for};
use super::tls::{self, TlsIdentity};
use crate::audit::{Audit, Decision, Direction, Record};
use crate::error::{Error, Result};
use crate::membership::{Membership, MembershipView};
use crate::metrics::Metrics;
use crate::registry::{Pseudonym, pseudonym_text};

/// Sources a Locate asks at once: enough to finish within a deadline of
/// seconds, few enough that a list of thousands never opens thousands of
/// connections at a time.
pub const LOCATE_AT_ONCE: usize = 64;
/// Channels to other members kept open at most (least recently used go).
pub const MAX_CHANNELS: usize = 256;
/// A channel not used for this long is closed.
pub const CHANNEL_IDLE: Duration = Duration::from_secs(300);

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
}

struct Cached {
    key: PublicKey,
    endpoint: String,
    client: SourceClient<Channel>,
    last_used: Instant,
}

/// Asks other members. Cheap to share behind an `Arc`.
pub struct Asker {
    own: MemberId,
    identity: Arc<TlsIdentity>,
    membership: Membership,
    audit: Audit,
    metrics: Arc<Metrics>,
    connect_timeout: Duration,
    clients: Mutex<HashMap<MemberId, Cached>>,
}

impl Asker {
    /// As `own`, presenting `identity`.
    pub fn new(
        own: MemberId,
        identity: Arc<TlsIdentity>,
        membership: Membership,
        audit: Audit,
        metrics: Arc<Metrics>,
        connect_timeout: Duration,
    ) -> Self {
        Asker {
            own,
            identity,
            membership,
            audit,
            metrics,
            connect_timeout,
            clients: Mutex::new(HashMap::new()),
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

    /// Fails closed: no valid list, or this node not admitted for `purpose`.
    fn precheck(&self, purpose: &Purpose) -> Result<Arc<MembershipView>> {
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
        let view = self.precheck(&ask.purpose)?;
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
        let request_id = uuid::Uuid::now_v7().to_string();
        let answer = self.ask_one(member, &request_id, &ask).await;
        self.log(&[&answer], &ask, &request_id).await?;
        Ok((request_id, answer))
    }

    /// Asks every bronhouder admitted for the purpose (not this node) whether
    /// it knows the subject, at most [`LOCATE_AT_ONCE`] at a time, all within
    /// one deadline; a source not asked by then is answered unreachable. With
    /// `regions`, only sources serving one of them are asked, and those that
    /// name no region (national members).
    pub async fn locate(
        &self,
        subject: Pseudonym,
        purpose: Purpose,
        regions: &[String],
        deadline: Duration,
    ) -> Result<(String, Vec<MemberAnswer>)> {
        let view = self.precheck(&purpose)?;
        let ask = Ask {
            subject,
            purpose,
            action: Action::Known,
            categories: Vec::new(),
            deadline,
        };
        let request_id = uuid::Uuid::now_v7().to_string();
        let now = handbereik_keys::time::now();
        let in_scope = |m: &Member| {
            regions.is_empty() || m.regions.is_empty() || regions.iter().any(|r| m.serves_region(r))
        };
        let sources: Vec<&Member> = view
            .members()
            .iter()
            .filter(|m| {
                m.member_id != self.own
                    && m.is_active(now)
                    && is_source_for(m, &ask.purpose)
                    && in_scope(m)
            })
            .collect();
        let until = tokio::time::Instant::now() + deadline;
        let asks: Vec<_> = sources
            .into_iter()
            .map(|m| self.ask_one_until(m, &request_id, &ask, until))
            .collect();
        let answers: Vec<MemberAnswer> = futures::stream::iter(asks)
            .buffer_unordered(LOCATE_AT_ONCE)
            .collect()
            .await;
        let refs: Vec<&MemberAnswer> = answers.iter().collect();
        self.log(&refs, &ask, &request_id).await?;
        Ok((request_id, answers))
    }

    /// [`Asker::ask_one`] within a fixed moment rather than a duration.
    async fn ask_one_until(
        &self,
        member: &Member,
        request_id: &str,
        ask: &Ask,
        until: tokio::time::Instant,
    ) -> MemberAnswer {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let mut mine = ask.clone();
        mine.deadline = left;
        self.ask_one(member, request_id, &mine).await
    }

    async fn ask_one(&self, member: &Member, request_id: &str, ask: &Ask) -> MemberAnswer {
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
            let result =
                tokio::time::timeout(ask.deadline, self.call(member, request_id, ask)).await;
            match result {
                Err(_) => {
                    answer.reason = format!("no answer within {} ms", ask.deadline.as_millis())
                }
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
        answer
    }

    async fn call(
        &self,
        member: &Member,
        request_id: &str,
        ask: &Ask,
    ) -> std::result::Result<(AnswerBody, Vec<u8>), Reply> {
        let mut client = self
            .client(member)
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

    fn client(&self, member: &Member) -> Result<SourceClient<Channel>> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| Error::Tls("the connection table is poisoned".into()))?;
        let now = Instant::now();
        if let Some(c) = clients.get_mut(&member.member_id)
            && c.key == member.node_key
            && c.endpoint == member.grpc_endpoint
        {
            c.last_used = now;
            return Ok(c.client.clone());
        }
        // A new channel: first close the idle ones, then, if still full, the
        // least recently used.
        clients.retain(|_, c| now.duration_since(c.last_used) < CHANNEL_IDLE);
        while clients.len() >= MAX_CHANNELS {
            let Some(oldest) = clients
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            clients.remove(&oldest);
        }
        let config = tls::client_config(&self.identity, member.node_key)?;
        let channel = tls::channel(&member.grpc_endpoint, config, self.connect_timeout)?;
        let client =
            SourceClient::new(channel).max_decoding_message_size(answer::ANSWER_LIMIT + 1024);
        clients.insert(
            member.member_id.clone(),
            Cached {
                key: member.node_key,
                endpoint: member.grpc_endpoint.clone(),
                client: client.clone(),
                last_used: now,
            },
        );
        Ok(client)
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
                actor: crate::audit::Actor::default(),
                emergency: None,
            };
            self.audit.log(record, Some(ask.subject))
        });
        for result in futures::future::join_all(logs).await {
            if let Err(e) = result {
                self.metrics.audit_failures.inc();
                tracing::error!(error = %e, "audit append failed; the answer is withheld");
                return Err(e);
            }
        }
        Ok(())
    }
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
