//! The witness's worker task: takes every checkpoint waiting (a batch),
//! checks and judges the batch on the blocking pool, writes what it changed
//! in one group commit, and only then answers gossip and raises the alarms.
//!
//! One task, so two checkpoints of the same member are never judged at the
//! same time; within a batch they are judged in arrival order against what
//! the batch itself already changed. Calls `store`, `membership`,
//! `notify::announce` and `metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use handbereik_keys::{MemberId, time};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::format::{self, AlarmRecord, HeldRecord};
use super::rule::{Head, Judgement, judge};
use super::{Acceptance, Alarm, MAX_ALARMS, Shared, panicked};
use crate::error::{Error, Result};
use crate::limits::Permit;
use crate::membership::MembershipView;
use crate::notify::announce::AlarmNotice;
use crate::store::{Store, StoreError, WitnessWrite};

/// Most checkpoints judged in one batch.
const BATCH: usize = 256;

/// One checkpoint waiting for the worker, holding its member's share.
pub(super) struct Offer {
    pub(super) bytes: Vec<u8>,
    pub(super) permit: Permit,
    pub(super) reply: oneshot::Sender<Acceptance>,
}

/// What judging a batch gives: the writes, then the verdicts and alarms,
/// which wait for the writes to be durable.
#[derive(Default)]
struct Judged {
    writes: Vec<WitnessWrite>,
    verdicts: Vec<(oneshot::Sender<Acceptance>, Acceptance)>,
    alarms: Vec<Alarm>,
    outcomes: Vec<&'static str>,
}

/// Runs until `stop`.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut offers: mpsc::Receiver<Offer>,
    stop: CancellationToken,
) -> Result<()> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = offers.recv_many(&mut batch, BATCH) => if n == 0 { return Ok(()) },
        }
        let view = shared.membership.view();
        let job = std::mem::take(&mut batch);
        let worker = shared.clone();
        let judged = tokio::task::spawn_blocking(move || {
            let now = time::now();
            judge_batch(&worker, &view, job, now)
        })
        .await
        .map_err(panicked)?;
        for outcome in &judged.outcomes {
            shared.metrics.witness_checkpoint(outcome);
        }
        let Judged {
            writes,
            verdicts,
            alarms,
            ..
        } = judged;
        if let Err(e) = shared.store.put_witness(writes).await {
            // Not the senders' fault; a broken store stops the node anyway.
            tracing::error!(error = %crate::error::chain(&e), "storing witnessed checkpoints failed");
            for (reply, _) in verdicts {
                let _ = reply.send(Acceptance::Ignore);
            }
            continue;
        }
        for (reply, acceptance) in verdicts {
            let _ = reply.send(acceptance);
        }
        for alarm in alarms {
            raise(&shared, &alarm).await;
        }
    }
}

/// Everything an alarm does once its evidence is durable.
async fn raise(shared: &Shared, alarm: &Alarm) {
    tracing::error!(
        audit_alarm = true,
        member = %alarm.member,
        held_entries = alarm.held.seq,
        held_hash = %hex::encode(alarm.held.hash),
        offered_entries = alarm.offered.seq,
        offered_hash = %hex::encode(alarm.offered.hash),
        "audit alarm: {}; both signed checkpoints are kept as evidence; tell governance",
        alarm.problem
    );
    shared.metrics.audit_witness_alarms.inc();
    let notice = AlarmNotice {
        member_id: alarm.member.to_string(),
        held_entries: alarm.held.seq,
        held_hash: hex::encode(alarm.held.hash),
        offered_entries: alarm.offered.seq,
        offered_hash: hex::encode(alarm.offered.hash),
        problem: alarm.problem.clone(),
    };
    if let Err(e) = shared.announcer.alarm(&notice).await {
        tracing::error!(member = %alarm.member, error = %crate::error::chain(&e), "the audit alarm could not be announced on the local stream; it is in the log, the metric and Status");
    }
}

/// What the batch knows of one member: the held checkpoint and the heads of
/// the alarms kept, read from the store once and then kept up to date.
struct Known {
    held: Option<(Head, Vec<u8>)>,
    alarms: Option<Vec<Head>>,
}

fn judge_batch(shared: &Shared, view: &MembershipView, batch: Vec<Offer>, now: u64) -> Judged {
    let mut judged = Judged::default();
    let mut known: HashMap<MemberId, Known> = HashMap::new();
    for offer in batch {
        let Offer {
            bytes,
            permit,
            reply,
        } = offer;
        let acceptance = match judge_one(shared, view, &mut known, bytes, now, &mut judged) {
            Ok(acceptance) => acceptance,
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "a witnessed checkpoint could not be judged (the store could not be read)");
                Acceptance::Ignore
            }
        };
        drop(permit);
        judged.verdicts.push((reply, acceptance));
    }
    judged
}

fn judge_one(
    shared: &Shared,
    view: &MembershipView,
    known: &mut HashMap<MemberId, Known>,
    bytes: Vec<u8>,
    now: u64,
    judged: &mut Judged,
) -> Result<Acceptance> {
    let verified = match format::check_offered(bytes, view, now) {
        Ok(v) => v,
        Err(invalid) => {
            tracing::debug!(error = %invalid, "a gossiped audit checkpoint was refused");
            judged.outcomes.push(invalid.label());
            return Ok(Acceptance::Reject);
        }
    };
    if verified.member == shared.own {
        return Ok(Acceptance::Ignore);
    }
    let member = verified.member.clone();
    if !known.contains_key(&member) {
        let held = load_held(&shared.store, &member)?;
        known.insert(member.clone(), Known { held, alarms: None });
    }
    let entry = known
        .get_mut(&member)
        .ok_or(Error::Internal("a member just looked up is missing"))?;
    match judge(entry.held.as_ref().map(|(h, _)| *h), verified.head) {
        Judgement::First | Judgement::Newer => {
            let countersignature = format::countersign(
                &shared.key,
                &shared.own,
                &member,
                verified.head,
                &verified.bytes,
                now,
            )?;
            let record = HeldRecord {
                checkpoint: ByteBuf::from(verified.bytes.clone()),
                countersignature: ByteBuf::from(countersignature),
            };
            judged.writes.push(WitnessWrite::Held {
                member: member.clone(),
                value: format::encode(&record, "witness record (held)")?,
            });
            entry.held = Some((verified.head, verified.bytes));
            judged.outcomes.push("accepted");
        }
        Judgement::Same => judged.outcomes.push("same"),
        Judgement::Conflict(kind) => {
            if entry.alarms.is_none() {
                entry.alarms = Some(load_alarm_heads(&shared.store, &member)?);
            }
            let (held_head, held_bytes) = entry
                .held
                .clone()
                .ok_or(Error::Internal("a conflict without a held checkpoint"))?;
            let alarms = entry.alarms.get_or_insert_with(Vec::new);
            if alarms.contains(&verified.head) {
                // The same conflicting head again (a restart republishes
                // it): the alarm was raised already.
                judged.outcomes.push("conflict_repeated");
                return Ok(Acceptance::Accept);
            }
            let slot = alarms.len().min(MAX_ALARMS - 1);
            if slot < alarms.len() {
                alarms[slot] = verified.head;
            } else {
                alarms.push(verified.head);
            }
            let record = AlarmRecord {
                held: ByteBuf::from(held_bytes),
                offered: ByteBuf::from(verified.bytes),
                time: now,
            };
            judged.writes.push(WitnessWrite::Alarm {
                member: member.clone(),
                slot: u8::try_from(slot).unwrap_or(u8::MAX),
                value: format::encode(&record, "witness record (alarm)")?,
            });
            judged.alarms.push(Alarm {
                problem: kind.describe(member.as_str(), held_head, verified.head),
                member,
                held: held_head,
                offered: verified.head,
                time: now,
            });
            judged.outcomes.push("conflict");
        }
    }
    // Valid checkpoints are forwarded, conflicting ones too: every witness
    // must be able to see them.
    Ok(Acceptance::Accept)
}

fn load_held(store: &Store, member: &MemberId) -> Result<Option<(Head, Vec<u8>)>> {
    let Some(value) = store.witness_held(member)? else {
        return Ok(None);
    };
    let record: HeldRecord = format::decode(&value, "witness record (held)")?;
    let (body, _) = format::read_stored(&record.checkpoint)?;
    Ok(Some((
        Head {
            seq: body.seq,
            hash: body.hash,
        },
        record.checkpoint.into_vec(),
    )))
}

fn load_alarm_heads(store: &Store, member: &MemberId) -> Result<Vec<Head>, StoreError> {
    let mut heads = Vec::new();
    for (_, value) in store.witness_alarms_of(member)? {
        let record: AlarmRecord = format::decode(&value, "witness record (alarm)")?;
        let (body, _) = format::read_stored(&record.offered)?;
        heads.push(Head {
            seq: body.seq,
            hash: body.hash,
        });
    }
    Ok(heads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::witness::format::tests::{member_id, signed, view};
    use crate::audit::witness::{MEMBER_SHARE, Witness};
    use crate::limits::{Limiter, MemberLimits};
    use crate::membership::Membership;
    use crate::metrics::Metrics;
    use crate::notify::announce::Announcer;
    use handbereik_keys::{Anchor, NodeKey};

    struct Fixture {
        _dir: tempfile::TempDir,
        shared: Shared,
        view: MembershipView,
        a: NodeKey,
        b: NodeKey,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path(), 1 << 20)
            .unwrap()
            .store;
        let metrics = Metrics::new();
        let anchor = Anchor::new([NodeKey::from_seed([99; 32]).public_key()], 1).unwrap();
        let (membership, _owner) = Membership::load("test", anchor, store.clone(), metrics.clone())
            .await
            .unwrap();
        let a = NodeKey::from_seed([1; 32]);
        let b = NodeKey::from_seed([2; 32]);
        let w = Arc::new(NodeKey::from_seed([9; 32]));
        let view = view(&[(1, &a), (2, &b), (9, &w)]);
        let shared = Shared {
            own: member_id(9),
            key: w.clone(),
            membership,
            store: store.clone(),
            metrics,
            announcer: Announcer::new(member_id(9), w, store),
            limiter: Limiter::new(MEMBER_SHARE),
        };
        Fixture {
            _dir: dir,
            shared,
            view,
            a,
            b,
        }
    }

    fn offers(items: Vec<Vec<u8>>) -> (Vec<Offer>, Vec<oneshot::Receiver<Acceptance>>) {
        let limiter = Limiter::new(MemberLimits {
            per_sec: 1000,
            burst: 1000,
            in_flight: 1000,
        });
        items
            .into_iter()
            .map(|bytes| {
                let (reply, rx) = oneshot::channel();
                let permit = limiter.admit(&member_id(1)).unwrap();
                (
                    Offer {
                        bytes,
                        permit,
                        reply,
                    },
                    rx,
                )
            })
            .unzip()
    }

    async fn run_batch(f: &Fixture, items: Vec<Vec<u8>>) -> (Vec<Acceptance>, Judged) {
        let (batch, mut rx) = offers(items);
        let mut judged = judge_batch(&f.shared, &f.view, batch, time::now());
        f.shared
            .store
            .put_witness(std::mem::take(&mut judged.writes))
            .await
            .unwrap();
        for (reply, acceptance) in std::mem::take(&mut judged.verdicts) {
            reply.send(acceptance).unwrap();
        }
        let mut verdicts = Vec::new();
        for r in rx.iter_mut() {
            verdicts.push(r.await.unwrap());
        }
        (verdicts, judged)
    }

    fn held(f: &Fixture) -> Head {
        load_held(&f.shared.store, &member_id(1))
            .unwrap()
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn the_held_checkpoint_moves_only_forward_and_conflicts_are_kept_as_evidence() {
        let f = fixture().await;
        let m = member_id(1);
        let (v, j) = run_batch(&f, vec![signed(&f.a, &m, 5, 1)]).await;
        assert_eq!(v, vec![Acceptance::Accept]);
        assert_eq!(j.outcomes, vec!["accepted"]);
        assert_eq!(
            held(&f),
            Head {
                seq: 5,
                hash: [1; 32]
            }
        );

        let (v, j) = run_batch(
            &f,
            vec![
                signed(&f.a, &m, 5, 1),
                // Forged: member 2's key, naming member 1.
                signed(&f.b, &m, 9, 9),
                signed(&f.a, &m, 5, 2),
                signed(&f.a, &m, 5, 2),
                signed(&f.a, &m, 3, 3),
                signed(&f.a, &m, 7, 4),
            ],
        )
        .await;
        use Acceptance::{Accept, Reject};
        assert_eq!(v, vec![Accept, Reject, Accept, Accept, Accept, Accept]);
        assert_eq!(
            j.outcomes,
            vec![
                "same",
                "wrong_member",
                "conflict",
                "conflict_repeated",
                "conflict",
                "accepted"
            ]
        );
        assert_eq!(j.alarms.len(), 2);
        assert_eq!(
            j.alarms[0].held,
            Head {
                seq: 5,
                hash: [1; 32]
            }
        );
        assert_eq!(
            j.alarms[0].offered,
            Head {
                seq: 5,
                hash: [2; 32]
            }
        );
        assert!(
            j.alarms[0].problem.contains("rewritten"),
            "{:?}",
            j.alarms[0]
        );
        assert!(j.alarms[1].problem.contains("removed"), "{:?}", j.alarms[1]);
        // A higher checkpoint after the alarms is accepted as usual.
        assert_eq!(
            held(&f),
            Head {
                seq: 7,
                hash: [4; 32]
            }
        );
        let alarms = f.shared.store.witness_alarms_of(&m).unwrap();
        assert_eq!(alarms.len(), 2);

        // The same conflicting head in a later batch is no new alarm.
        let (_, j) = run_batch(&f, vec![signed(&f.a, &m, 5, 2)]).await;
        assert_eq!(j.outcomes, vec!["conflict_repeated"]);
        assert!(j.alarms.is_empty());

        // Alarm records are bounded per member: the first ones and the latest.
        let many = (10..16).map(|h| signed(&f.a, &m, 7, h)).collect();
        let (_, j) = run_batch(&f, many).await;
        assert_eq!(j.alarms.len(), 6, "every distinct conflict is an alarm");
        let alarms = f.shared.store.witness_alarms_of(&m).unwrap();
        assert_eq!(alarms.len(), MAX_ALARMS);
        let latest: AlarmRecord = format::decode(&alarms[MAX_ALARMS - 1].1, "x").unwrap();
        assert_eq!(
            format::read_stored(&latest.offered).unwrap().0.hash,
            [15; 32]
        );
        assert_eq!(
            held(&f),
            Head {
                seq: 7,
                hash: [4; 32]
            },
            "the held one stays"
        );
    }

    #[tokio::test]
    async fn a_member_gets_its_own_copy_countersigned_by_the_current_key() {
        let f = fixture().await;
        let m = member_id(1);
        run_batch(&f, vec![signed(&f.a, &m, 5, 1), signed(&f.a, &m, 4, 2)]).await;
        let (offers, _) = mpsc::channel(1);
        let witness = Witness {
            shared: Arc::new(Shared {
                own: f.shared.own.clone(),
                key: f.shared.key.clone(),
                membership: f.shared.membership.clone(),
                store: f.shared.store.clone(),
                metrics: f.shared.metrics.clone(),
                announcer: f.shared.announcer.clone(),
                limiter: Limiter::new(MEMBER_SHARE),
            }),
            offers,
        };
        let copy = witness.held_for(&m).unwrap().unwrap();
        assert_eq!(copy.checkpoint, signed(&f.a, &m, 5, 1));
        assert_eq!(copy.conflicting, vec![signed(&f.a, &m, 4, 2)]);
        let key = format::peek(&copy.countersignature).unwrap().key;
        assert_eq!(&key, f.shared.key.public_key().as_bytes());
        assert!(witness.held_for(&member_id(2)).unwrap().is_none());
        assert_eq!(witness.alarms(10).unwrap().len(), 1);

        // After a key change of this witness, the copy is countersigned again.
        let rotated = Arc::new(NodeKey::from_seed([19; 32]));
        let witness = Witness {
            shared: Arc::new(Shared {
                key: rotated.clone(),
                own: f.shared.own.clone(),
                membership: f.shared.membership.clone(),
                store: f.shared.store.clone(),
                metrics: f.shared.metrics.clone(),
                announcer: f.shared.announcer.clone(),
                limiter: Limiter::new(MEMBER_SHARE),
            }),
            offers: mpsc::channel(1).0,
        };
        let copy = witness.held_for(&m).unwrap().unwrap();
        let key = format::peek(&copy.countersignature).unwrap().key;
        assert_eq!(&key, rotated.public_key().as_bytes());
    }
}
