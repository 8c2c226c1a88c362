//! Witnessed audit: this node as a witness of every other member's audit
//! log, and the check of its own log against what the witnesses hold.
//!
//! Members gossip their signed checkpoints (entry count and head hash) on
//! the audit topic. For each member the witness keeps the latest checkpoint
//! it accepted, countersigned by this node ([`format::Countersignature`]);
//! a checkpoint that does not extend the held one ([`rule`]) raises an
//! alarm: an error log line, `handbereik_audit_witness_alarms_total`, the
//! `audit_alarms` of `Status`, an announcement on the local stream, and both
//! conflicting checkpoints kept as evidence. The held one stays; a later,
//! higher checkpoint is accepted as usual; the alarm records stay (at most
//! [`MAX_ALARMS`] per member). A member asks for its countersigned copy
//! over the peer API (`Witness.Held`), and `audit verify` compares those
//! copies with its own chain ([`copies`]).
//!
//! Checkpoints reach the [`worker`] through a bounded queue with a
//! per-member share, are checked in batches on the blocking pool, and are
//! written in one group commit per batch before gossip hears the verdict.
//! Calls `store`, `membership`, `notify::announce` (alarms), `metrics`,
//! `limits` and `handbereik-keys`; knows nothing of libp2p.

mod copies;
pub mod format;
pub mod rule;
mod worker;

use std::sync::Arc;

use handbereik_keys::{MemberId, NodeKey, SingleSigned, time};
use tokio::sync::{mpsc, oneshot};

pub use copies::{Asked, Chain, CopyOutcome, WitnessCopy, WitnessReport, judge_copies};
pub use format::{AlarmRecord, Countersignature, HeldRecord, Invalid, MAX_CHECKPOINT_BYTES};
pub use rule::{Conflict, Head, Judgement, judge};

use crate::error::{Error, Result};
use crate::limits::{Limiter, MemberLimits};
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::notify::announce::Announcer;
use crate::store::Store;
use crate::supervisor::{Group, Supervisor};

/// Alarm records kept per member: the first ones and the latest.
pub const MAX_ALARMS: usize = 4;
/// Checkpoints waiting for the worker, all members together.
const QUEUE: usize = 1024;
/// Each member's share of the queue and of the worker: far above one
/// checkpoint per interval, far below what would crowd out the others.
const MEMBER_SHARE: MemberLimits = MemberLimits {
    per_sec: 2,
    burst: 8,
    in_flight: 4,
};

/// What gossip should do with a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid: forward it (also when it conflicts: other witnesses must see it).
    Accept,
    /// Not what a member signed: drop it and penalise the sender.
    Reject,
    /// Cannot be judged now (no valid list, busy, this node's own): drop it
    /// without penalty.
    Ignore,
}

/// A checkpoint this node holds of another member, with its countersignature
/// and the conflicting checkpoints of that member it keeps as evidence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldCopy {
    /// The member's signed checkpoint.
    pub checkpoint: Vec<u8>,
    /// This node's countersignature of it.
    pub countersignature: Vec<u8>,
    /// Checkpoints of the same member that did not extend the held one.
    pub conflicting: Vec<Vec<u8>>,
}

/// An alarm, as Status and the announcement report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    /// The member whose checkpoint did not fit.
    pub member: MemberId,
    /// The checkpoint held.
    pub held: Head,
    /// The checkpoint that did not extend it.
    pub offered: Head,
    /// When (seconds).
    pub time: u64,
    /// In words.
    pub problem: String,
}

/// The parts a witness works with.
pub struct Parts {
    /// This node.
    pub own: MemberId,
    /// Its key, for countersignatures.
    pub key: Arc<NodeKey>,
    /// The member list: whose key may sign a checkpoint.
    pub membership: Membership,
    /// Where held copies and alarms are kept.
    pub store: Store,
    /// Figures.
    pub metrics: Arc<Metrics>,
    /// Tells the back office of an alarm.
    pub announcer: Announcer,
}

struct Shared {
    own: MemberId,
    key: Arc<NodeKey>,
    membership: Membership,
    store: Store,
    metrics: Arc<Metrics>,
    announcer: Announcer,
    limiter: Arc<Limiter>,
}

/// The witness: takes gossiped checkpoints, answers for what it holds.
/// Cheap to clone.
#[derive(Clone)]
pub struct Witness {
    shared: Arc<Shared>,
    offers: mpsc::Sender<worker::Offer>,
}

impl Witness {
    /// Starts the worker under `supervisor` (workers group).
    pub fn start(supervisor: &Supervisor, parts: Parts) -> Witness {
        let shared = Arc::new(Shared {
            own: parts.own,
            key: parts.key,
            membership: parts.membership,
            store: parts.store,
            metrics: parts.metrics,
            announcer: parts.announcer,
            limiter: Limiter::new(MEMBER_SHARE),
        });
        let (offers, rx) = mpsc::channel(QUEUE);
        let stop = supervisor.stop_working();
        let worker_shared = shared.clone();
        supervisor.spawn_critical(Group::Workers, "audit witness", async move {
            worker::run(worker_shared, rx, stop).await
        });
        Witness { shared, offers }
    }

    /// Takes a gossiped checkpoint without waiting: the verdict at once when
    /// a first look decides it, else a receiver for the verdict, which comes
    /// once the checkpoint is checked and what it changed is durable.
    pub fn try_offer(
        &self,
        bytes: Vec<u8>,
    ) -> std::result::Result<oneshot::Receiver<Acceptance>, Acceptance> {
        let s = &self.shared;
        let count = |outcome: &str| s.metrics.witness_checkpoint(outcome);
        let envelope: SingleSigned = match format::peek(&bytes) {
            Ok(e) => e,
            Err(e) => {
                count(e.label());
                return Err(Acceptance::Reject);
            }
        };
        let view = s.membership.view();
        if view.is_expired(time::now()) {
            count("no_list");
            return Err(Acceptance::Ignore);
        }
        let Some(member) = view.member_by_key(&envelope.key) else {
            count("unknown_signer");
            return Err(Acceptance::Reject);
        };
        if member.member_id == s.own {
            return Err(Acceptance::Ignore);
        }
        let Ok(permit) = s.limiter.admit(&member.member_id) else {
            count("limited");
            return Err(Acceptance::Ignore);
        };
        let (reply, verdict) = oneshot::channel();
        let offer = worker::Offer {
            bytes,
            permit,
            reply,
        };
        if self.offers.try_send(offer).is_err() {
            count("busy");
            return Err(Acceptance::Ignore);
        }
        Ok(verdict)
    }

    /// What this node holds of `member`, with a countersignature by this
    /// node's current key (made again if the node key changed since). Reads
    /// the store and may sign: call it off the async workers.
    pub fn held_for(&self, member: &MemberId) -> Result<Option<HeldCopy>> {
        let s = &self.shared;
        let Some(value) = s.store.witness_held(member)? else {
            return Ok(None);
        };
        let record: HeldRecord = format::decode(&value, "witness record (held)")?;
        let mut countersignature = record.countersignature.into_vec();
        let signer = format::peek(&countersignature)
            .map(|e| e.key)
            .map_err(|_| crate::store::StoreError::Damaged {
                what: "witness record (its countersignature)",
            })?;
        if &signer != s.key.public_key().as_bytes() {
            let (body, _) = format::read_stored(&record.checkpoint)?;
            let head = Head {
                seq: body.seq,
                hash: body.hash,
            };
            countersignature = format::countersign(
                &s.key,
                &s.own,
                member,
                head,
                &record.checkpoint,
                time::now(),
            )?;
        }
        let mut conflicting = Vec::new();
        for (_, value) in s.store.witness_alarms_of(member)? {
            let alarm: AlarmRecord = format::decode(&value, "witness record (alarm)")?;
            conflicting.push(alarm.offered.into_vec());
        }
        Ok(Some(HeldCopy {
            checkpoint: record.checkpoint.into_vec(),
            countersignature,
            conflicting,
        }))
    }

    /// The alarms this node raised, newest first, at most `limit`.
    pub fn alarms(&self, limit: usize) -> Result<Vec<Alarm>> {
        let mut out = Vec::new();
        for (member, _, value) in self.shared.store.witness_alarms()? {
            out.push(alarm_of(member, &value)?);
        }
        out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.member.cmp(&b.member)));
        out.truncate(limit);
        Ok(out)
    }
}

/// Reads an alarm record back into what Status reports.
fn alarm_of(member: MemberId, value: &[u8]) -> Result<Alarm> {
    let record: AlarmRecord = format::decode(value, "witness record (alarm)")?;
    let (held, _) = format::read_stored(&record.held)?;
    let (offered, _) = format::read_stored(&record.offered)?;
    let held = Head {
        seq: held.seq,
        hash: held.hash,
    };
    let offered = Head {
        seq: offered.seq,
        hash: offered.hash,
    };
    let problem = match judge(Some(held), offered) {
        Judgement::Conflict(kind) => kind.describe(member.as_str(), held, offered),
        _ => "the checkpoints kept as evidence no longer conflict".into(),
    };
    Ok(Alarm {
        member,
        held,
        offered,
        time: record.time,
        problem,
    })
}

/// For the worker: an error of the blocking pool.
fn panicked(source: tokio::task::JoinError) -> Error {
    Error::TaskPanicked {
        what: "checking audit checkpoints",
        source,
    }
}
