//! The serving side of an inspection: who is asking (member list, checked
//! again at every request, so a revocation takes effect at once), the
//! asker's signed statement (the acting professional and its role, checked
//! against the network's role vocabulary before any policy; an emergency's
//! reason), what the policy decides per category in that context, what the
//! registry holds, the audit entry (durable before the answer leaves, with
//! the actor, the emergency flag and the signed statement), and the signed
//! answer. An emergency is also counted and announced on the local stream.
//!
//! Calls `membership`, `registry`, `audit`, `notify` (announcements), the
//! [`policy`](super::policy), [`ask`](super::ask) and
//! [`answer`](super::answer). Knows nothing of gRPC;
//! [`source`](super::source) translates.

use std::collections::BTreeSet;
use std::sync::Arc;

use handbereik_keys::{Member, MemberId, NodeKey, Purpose, Role};

use super::answer::{ALLOWED, AnswerBody, AnswerRecord, CategoryResult, REFUSED, UNKNOWN_CATEGORY};
use super::ask;
use super::policy::{Action, CategoryRef, PolicyHandle, PolicyRequest, RequestContext, Resource};
use super::tls::PeerIdentity;
use crate::audit::{Actor, Audit, Decision, Direction, Record};
use crate::error::{Error, Result};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::notify::announce::{Announcer, EmergencyNotice};
use crate::registry::{self, Entry, Kind, Registry};

/// Most categories one Inspect may name.
pub const MAX_CATEGORIES: usize = 64;

/// What the serving side needs.
pub struct SourceState {
    /// This node.
    pub own: MemberId,
    /// Signs answers.
    pub key: Arc<NodeKey>,
    /// Who is a member.
    pub membership: Membership,
    /// What is held.
    pub registry: Registry,
    /// What is allowed.
    pub policy: PolicyHandle,
    /// Where decisions are logged.
    pub audit: Audit,
    /// Figures.
    pub metrics: Arc<Metrics>,
    /// Announces emergencies on the local stream.
    pub announcer: Announcer,
}

/// A question as it arrived.
#[derive(Clone, Debug)]
pub struct Question {
    /// The asker's request id.
    pub request_id: String,
    /// Pseudonym, hex.
    pub subject: String,
    /// Purpose, as text.
    pub purpose: String,
    /// Known or Inspect.
    pub action: Action,
    /// For Inspect: the categories.
    pub categories: Vec<String>,
    /// The asking node's signed statement of the question ([`ask`](super::ask)).
    pub signed_request: Vec<u8>,
}

/// A question whose fields passed [`Question::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidQuestion {
    /// The subject's pseudonym.
    pub subject: registry::Pseudonym,
    /// The purpose stated.
    pub purpose: Purpose,
    /// For Inspect: the categories asked (valid names, no repeats); empty
    /// for Known.
    pub categories: Vec<String>,
}

impl Question {
    /// Checks the fields of a question as it arrived from another member,
    /// before anything is looked up: the pseudonym, the purpose, the request
    /// id, and the categories (none for Known, 1 to [`MAX_CATEGORIES`] for
    /// Inspect). Says what is wrong, without repeating a long value.
    pub fn check(&self) -> Result<ValidQuestion> {
        let subject = registry::parse_pseudonym(&self.subject)?;
        let purpose = Purpose::parse(&self.purpose)
            .map_err(|e| Error::InvalidRequest(format!("purpose: {e}")))?;
        check_request_id(&self.request_id)?;
        let categories = match self.action {
            Action::Known if !self.categories.is_empty() => {
                return Err(Error::InvalidRequest(
                    "Known takes no categories; it answers the that-information (dat)".into(),
                ));
            }
            Action::Known | Action::Report => Vec::new(),
            Action::Inspect => check_categories(&self.categories)?,
            Action::Task => {
                return Err(Error::Internal(
                    "the Source service answers Known, Inspect and Report only",
                ));
            }
        };
        if self.signed_request.len() > ask::REQUEST_LIMIT {
            return Err(Error::InvalidRequest(format!(
                "signed_request: at most {} bytes",
                ask::REQUEST_LIMIT
            )));
        }
        Ok(ValidQuestion {
            subject,
            purpose,
            categories,
        })
    }
}

impl SourceState {
    /// Answers one question from `peer`: the signed answer, or an error that
    /// becomes a gRPC status. Every decision is logged first.
    pub async fn answer(&self, peer: &PeerIdentity, q: Question) -> Result<Vec<u8>> {
        let ValidQuestion {
            subject,
            purpose,
            categories,
        } = q.check()?;
        crate::trace::record_peer(peer.member_id.as_str(), purpose.as_str());
        crate::trace::record_request_id(&q.request_id);
        let now = handbereik_keys::time::now();
        let asked = self.signed_ask(peer, &q, now).await?;
        let view = self.membership.view();
        let mut body = AnswerBody {
            request_id: q.request_id.clone(),
            source: self.own.to_string(),
            asker: peer.member_id.to_string(),
            subject: q.subject.clone(),
            purpose: purpose.to_string(),
            action: q.action.as_str().into(),
            time: now,
            decision: "denied".into(),
            reason: String::new(),
            policies: Vec::new(),
            categories: Vec::new(),
        };
        match admit(&view, peer, &purpose, &asked, now) {
            Err((reason, rule)) => {
                body.reason = reason;
                body.policies = vec![rule.to_string()];
                body.categories = categories
                    .iter()
                    .map(|c| refused(c, vec![rule.to_string()]))
                    .collect();
            }
            Ok(member) => {
                let context = RequestContext {
                    purpose: &purpose,
                    role: &asked.actor.role,
                    actor: &asked.actor.user,
                    emergency: asked.emergency.is_some(),
                };
                self.decide(
                    member,
                    &subject,
                    q.action,
                    &categories,
                    context,
                    &mut body,
                    now,
                )?;
            }
        }
        let record = Record {
            direction: Direction::Served,
            peer: peer.member_id.to_string(),
            purpose: body.purpose.clone(),
            subject: body.subject.clone(),
            action: body.action.clone(),
            asked: categories.clone(),
            given: body.given(),
            decision: if body.decision == ALLOWED {
                Decision::Allowed
            } else {
                Decision::Denied
            },
            policies: body.policies.clone(),
            request_id: body.request_id.clone(),
            actor: asked.actor.clone(),
            emergency: asked.emergency.clone(),
            signed_request: q.signed_request.clone(),
        };
        let seq = self.log(record.clone(), subject).await?;
        self.metrics
            .inspection_served(&body.action, record.decision.as_str());
        tracing::debug!(
            action = %body.action,
            decision = %record.decision.as_str(),
            audit_sequence = seq,
            "peer request answered"
        );
        if let Some(reason) = &asked.emergency {
            self.emergency_served(&record, reason, seq).await;
        }
        let key = self.key.clone();
        tokio::task::spawn_blocking(move || body.sign(&key))
            .await
            .map_err(|_| Error::Internal("signing an answer failed"))?
    }

    /// Appends a served entry; if that fails, the request is refused.
    pub(super) async fn log(&self, record: Record, subject: registry::Pseudonym) -> Result<u64> {
        self.audit.log(record, Some(subject)).await.map_err(|e| {
            self.metrics.audit_failures.inc();
            tracing::error!(error = %e, "audit append failed; the request is refused");
            e
        })
    }

    /// The asker's signed statement of `q`, checked (on the blocking pool)
    /// against the key of its TLS certificate; an empty one from a node
    /// that sends none (an older version) stands for no actor, no emergency.
    pub(super) async fn signed_ask(
        &self,
        peer: &PeerIdentity,
        q: &Question,
        now: u64,
    ) -> Result<Asked> {
        if q.signed_request.is_empty() {
            return Ok(Asked::default());
        }
        let signed = q.signed_request.clone();
        let key = peer.key;
        let asker = peer.member_id.to_string();
        let q = q.clone();
        let body = tokio::task::spawn_blocking(move || {
            ask::check(
                &signed,
                &key,
                &ask::Plain {
                    request_id: &q.request_id,
                    asker: &asker,
                    subject: &q.subject,
                    purpose: &q.purpose,
                    action: q.action,
                    categories: &q.categories,
                },
                now,
            )
        })
        .await
        .map_err(|_| Error::Internal("checking a signed request failed"))??;
        Ok(Asked {
            signed: true,
            actor: body.actor,
            emergency: body.emergency,
        })
    }

    /// Counts an emergency disclosure decision and announces it on the
    /// local stream, so the privacy officer sees it at once.
    async fn emergency_served(&self, record: &Record, reason: &str, audit_sequence: u64) {
        self.metrics.emergency("served", record.decision.as_str());
        tracing::warn!(
            request_id = %record.request_id,
            member = %record.peer,
            role = %record.actor.role,
            decision = record.decision.as_str(),
            "emergency inspection served"
        );
        let notice = EmergencyNotice {
            direction: "served",
            member_id: record.peer.clone(),
            purpose: record.purpose.clone(),
            decision: record.decision.as_str(),
            categories_given: record.given.clone(),
            role: record.actor.role.clone(),
            user: record.actor.user.clone(),
            on_behalf_of: record.actor.on_behalf_of.clone(),
            reason: reason.to_string(),
            request_id: record.request_id.clone(),
            audit_sequence,
        };
        if let Err(e) = self.announcer.emergency(&record.subject, &notice).await {
            tracing::error!(error = %e, "an emergency inspection could not be announced on the local stream");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        member: &Member,
        subject: &registry::Pseudonym,
        action: Action,
        categories: &[String],
        context: RequestContext<'_>,
        body: &mut AnswerBody,
        now: u64,
    ) -> Result<()> {
        let purpose = context.purpose;
        let policy = self.policy.current();
        let catalogue = self.registry.catalogue();
        let held: Vec<Entry> = self.registry.of_subject(subject)?;
        let mut policies = BTreeSet::new();
        let mut any_allowed = false;
        let asked: Vec<(String, Option<registry::CategoryInfo>)> = match action {
            Action::Known => catalogue
                .of_kind(Kind::Dat)
                .map(|(name, info)| (name.to_string(), Some(info.clone())))
                .collect(),
            Action::Inspect => categories
                .iter()
                .map(|c| (c.clone(), catalogue.get(c).cloned()))
                .collect(),
            // Refused in `answer` before a decision is asked for.
            Action::Task | Action::Report => Vec::new(),
        };
        for (name, info) in asked {
            let Some(info) = info else {
                body.categories.push(CategoryResult {
                    category: name,
                    decision: UNKNOWN_CATEGORY.into(),
                    policies: Vec::new(),
                    records: Vec::new(),
                });
                continue;
            };
            let decision = policy.decide(&PolicyRequest {
                member,
                action,
                resource: Resource::Category(CategoryRef {
                    name: &name,
                    kind: info.kind,
                    classification: &info.classification,
                }),
                context,
            });
            if !decision.errors.is_empty() {
                tracing::warn!(category = %name, errors = ?decision.errors, "policy evaluation errors; denied");
            }
            policies.extend(decision.policies.iter().cloned());
            if !decision.allowed {
                if action == Action::Inspect {
                    body.categories.push(refused(&name, decision.policies));
                }
                continue;
            }
            any_allowed = true;
            let records: Vec<AnswerRecord> = held
                .iter()
                .filter(|e| e.category == name && e.is_current(now))
                .map(record_of)
                .collect();
            if action == Action::Inspect || !records.is_empty() {
                body.categories.push(CategoryResult {
                    category: name,
                    decision: ALLOWED.into(),
                    policies: decision.policies,
                    records,
                });
            }
        }
        body.policies = policies.into_iter().collect();
        if any_allowed {
            body.decision = ALLOWED.into();
        } else {
            body.reason = format!(
                "the policy of {} does not allow member {} a {} request for purpose {purpose}",
                self.own,
                member.member_id,
                action.as_str()
            );
        }
        Ok(())
    }
}

/// What the asker's signed statement adds to a question.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    /// Whether a signed statement came with it.
    pub signed: bool,
    /// The acting professional.
    pub actor: Actor,
    /// An emergency's reason.
    pub emergency: Option<String>,
}

/// Who may be answered at all, before any policy: a valid list, a current
/// member behind the TLS identity, admitted for the purpose, and an actor
/// that fits the network's role vocabulary (a request without the signed
/// statement, in a network that names actor roles, has none). A refusal
/// comes with the rule that made it, for the audit log.
pub fn admit<'v>(
    view: &'v crate::membership::MembershipView,
    peer: &PeerIdentity,
    purpose: &Purpose,
    asked: &Asked,
    now: u64,
) -> std::result::Result<&'v Member, (String, &'static str)> {
    if let Some(reason) = view.refusal(now) {
        return Err((reason, "member-list"));
    }
    let member = current_member(view, peer, now).map_err(|why| (why, "membership"))?;
    if !member.has_purpose(purpose) {
        return Err((
            format!(
                "member {} is not admitted for purpose {purpose}",
                member.member_id
            ),
            "admission",
        ));
    }
    ask::check_actor("actor", &asked.actor, view.list().map(|l| &l.list))
        .map_err(|e| (e.to_string(), "actor-role"))?;
    Ok(member)
}

/// The member behind a TLS identity, checked against the list held now:
/// active, not in maintenance, not revoked, and the id in its certificate.
pub fn current_member<'v>(
    view: &'v crate::membership::MembershipView,
    peer: &PeerIdentity,
    now: u64,
) -> std::result::Result<&'v Member, String> {
    let revoked = view.list().is_some_and(|l| l.list.is_revoked(&peer.key));
    if revoked {
        return Err(format!("the key of member {} is revoked", peer.member_id));
    }
    let Some((member, _)) = view.active_member_by_key(peer.key.as_bytes(), now) else {
        return Err("the key is not that of a current member".into());
    };
    if member.member_id != peer.member_id {
        return Err(format!(
            "the key belongs to member {}, not to {}",
            member.member_id, peer.member_id
        ));
    }
    if member.maintenance {
        return Err(format!("member {} is in maintenance", member.member_id));
    }
    Ok(member)
}

/// Whether a member may be asked as a source for `purpose`.
pub fn is_source_for(member: &Member, purpose: &Purpose) -> bool {
    member.has_role(Role::Bronhouder) && member.has_purpose(purpose)
}

fn refused(category: &str, policies: Vec<String>) -> CategoryResult {
    CategoryResult {
        category: category.to_string(),
        decision: REFUSED.into(),
        policies,
        records: Vec::new(),
    }
}

fn record_of(e: &Entry) -> AnswerRecord {
    AnswerRecord {
        category: e.category.clone(),
        kind: e.kind.as_str().into(),
        classification: e.classification.clone(),
        legal_basis: e.legal_basis.clone(),
        content_type: e.content_type.clone(),
        content: e.content.clone(),
        registered_at: e.registered_at,
        updated_at: e.updated_at,
        retain_until: e.retain_until,
    }
}

/// A request id: 1 to 64 visible ASCII characters.
pub fn check_request_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidRequest(
            "request_id must be 1 to 64 visible ASCII characters, such as a UUID".into(),
        ));
    }
    Ok(())
}

/// Categories of an Inspect: 1 to 64 valid names, no repeats.
pub fn check_categories(categories: &[String]) -> Result<Vec<String>> {
    if categories.is_empty() || categories.len() > MAX_CATEGORIES {
        return Err(Error::InvalidRequest(format!(
            "name 1 to {MAX_CATEGORIES} categories to inspect"
        )));
    }
    let mut seen = BTreeSet::new();
    for c in categories {
        registry::check_name(c, "category").map_err(Error::InvalidRequest)?;
        if !seen.insert(c.as_str()) {
            return Err(Error::InvalidRequest(format!(
                "category {} is named twice",
                handbereik_keys::text::excerpt(c)
            )));
        }
    }
    Ok(categories.to_vec())
}
