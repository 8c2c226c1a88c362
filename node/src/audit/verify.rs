//! `audit verify`: recomputes the chain from the stored bytes and checks
//! the head record and the signed checkpoints against it. Each checkpoint
//! is checked against the key recorded with it (the signer key in its
//! envelope), which must be one this node has run with ([`KeyHistory`]), so
//! a node key rotation keeps the old checkpoints verifiable.
//!
//! Reads through `store` only; works on a running node (through the local
//! API) and on a stopped node's data directory alike. The witnesses' copies
//! are compared elsewhere ([`witness`](super::witness)), on a running node.

use handbereik_keys::{Domain, PublicKey, SingleSigned, canonical};

use super::checkpoint::Checkpoint;
use super::entry::{AuditEntry, hash};
use super::history::KeyHistory;
use crate::error::Result;
use crate::store::Store;

/// What verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// The recomputed head hash.
    pub head: [u8; 32],
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The node keys whose checkpoints are accepted, oldest first.
    pub keys: Vec<PublicKey>,
    /// The first entry that does not fit, with the reason; `None` if all fit.
    pub problem: Option<(u64, String)>,
}

impl Report {
    /// Whether the whole chain verified.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Recomputes the chain in `store`. Every checkpoint must be signed by a key
/// of `history`: one this node has run with.
pub fn verify(store: &Store, history: &KeyHistory) -> Result<Report> {
    let mut report = Report {
        keys: history.keys().iter().map(|(k, _)| *k).collect(),
        ..Report::default()
    };
    let mut prev = [0u8; 32];
    let mut hashes = std::collections::HashMap::new();
    let checkpoints = store.audit_checkpoints()?;
    let wanted: std::collections::BTreeSet<u64> = checkpoints.iter().map(|(s, _)| *s).collect();
    let mut after = 0u64;
    'outer: loop {
        let page = store.audit_entries(after, 4096)?;
        if page.is_empty() {
            break;
        }
        for (seq, bytes) in page {
            after = seq;
            let fail = |why: String| Some((seq, why));
            if seq != report.entries + 1 {
                report.problem = fail(format!(
                    "entry {} is missing: the chain jumps from {} to {seq}",
                    report.entries + 1,
                    report.entries
                ));
                break 'outer;
            }
            let entry = match AuditEntry::decode(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    report.problem = fail(format!("entry {seq} cannot be read: {e}"));
                    break 'outer;
                }
            };
            if entry.seq != seq {
                report.problem = fail(format!(
                    "entry {seq} says it is entry {}; it was changed or moved",
                    entry.seq
                ));
                break 'outer;
            }
            if entry.prev != prev {
                // The previous entry's bytes no longer give the hash this one
                // recorded: the previous entry was changed (or this one's
                // link). The first entry has no previous one: it is itself bad.
                let bad = (seq - 1).max(1);
                report.problem = Some((
                    bad,
                    format!(
                        "entry {bad} does not match the hash that entry {seq} holds of it; entry {bad} was changed after it was written"
                    ),
                ));
                break 'outer;
            }
            prev = hash(&bytes);
            if wanted.contains(&seq) {
                hashes.insert(seq, prev);
            }
            report.entries = seq;
        }
    }
    report.head = prev;
    if report.problem.is_none() {
        let head = store.audit_head()?;
        if head.seq != report.entries || head.hash != prev {
            let seq = report.entries.max(1);
            report.problem = Some((
                seq,
                format!(
                    "entry {seq} does not match the head record (entry {}, hash {}); the last entry was changed or entries were removed",
                    head.seq,
                    hex::encode(head.hash)
                ),
            ));
        }
    }
    for (seq, signed) in checkpoints {
        if report.problem.is_some() {
            break;
        }
        let result = SingleSigned::decode(&signed, "audit checkpoint", 4096).and_then(|env| {
            let signer = PublicKey::from_bytes(&env.key)?;
            if !history.contains(&signer) {
                return Ok(Err(signer));
            }
            env.verify(Domain::AuditCheckpoint, &signer.verifying_key()?)?;
            canonical::from_slice::<Checkpoint>(&env.body, "audit checkpoint").map(Ok)
        });
        let result = match result {
            Ok(Err(foreign)) => {
                report.problem = Some((
                    seq,
                    format!(
                        "the checkpoint at entry {seq} is signed by key {foreign}, which this node never ran with (its keys: {}); it was not made by this node",
                        history
                            .keys()
                            .iter()
                            .map(|(k, _)| k.to_hex())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                continue;
            }
            Ok(Ok(cp)) => Ok(cp),
            Err(e) => Err(e),
        };
        match result {
            Ok(cp) if cp.seq == seq && hashes.get(&seq) == Some(&cp.hash) => {
                report.checkpoints += 1;
            }
            Ok(cp) if cp.seq == seq && seq > report.entries => {
                report.problem = Some((
                    seq,
                    format!(
                        "a signed checkpoint covers entry {seq}, but the chain ends at {}; entries were removed",
                        report.entries
                    ),
                ));
            }
            Ok(_) => {
                report.problem = Some((
                    seq,
                    format!(
                        "entry {seq} does not match the signed checkpoint of it; the chain up to entry {seq} was rewritten"
                    ),
                ));
            }
            Err(e) => {
                report.problem = Some((
                    seq,
                    format!("the checkpoint at entry {seq} is not valid: {e}"),
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, Audit, Decision, Direction, Record, checkpoint, record_key};
    use handbereik_keys::{MemberId, NodeKey, SignedEnvelope};

    fn record() -> Record {
        Record {
            direction: Direction::Served,
            peer: "00000001001234567000".into(),
            purpose: "jeugd".into(),
            subject: "ab".into(),
            action: "known".into(),
            asked: Vec::new(),
            given: Vec::new(),
            decision: Decision::Allowed,
            policies: Vec::new(),
            request_id: "r".into(),
            actor: Actor::default(),
            emergency: None,
            signed_request: Vec::new(),
        }
    }

    #[tokio::test]
    async fn checkpoints_verify_by_every_key_the_node_ran_with_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap().store;
        let audit = Audit::new(store.clone());
        let member = MemberId::parse("00000001001234567000").unwrap();
        let old = NodeKey::from_seed([1; 32]);
        let new = NodeKey::from_seed([2; 32]);
        record_key(&store, &old.public_key()).await.unwrap();
        audit.log(record(), None).await.unwrap();
        checkpoint(&store, &old, &member).await.unwrap().unwrap();
        // The node is restarted with a new key, and logs on.
        record_key(&store, &new.public_key()).await.unwrap();
        audit.log(record(), None).await.unwrap();
        checkpoint(&store, &new, &member).await.unwrap().unwrap();

        let report = audit.verify(&new.public_key()).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.entries, report.checkpoints), (2, 2));
        assert_eq!(report.keys, vec![old.public_key(), new.public_key()]);

        // Without the history only the current key counts: the old
        // checkpoint is named, with the key it carries.
        let only_new = verify(&store, &KeyHistory::of([new.public_key()])).unwrap();
        let (seq, problem) = only_new.problem.unwrap();
        assert_eq!(seq, 1);
        assert!(problem.contains(&old.public_key().to_hex()), "{problem}");
        assert!(problem.contains("never ran with"), "{problem}");

        // A checkpoint signed by a key that was never this node's, with the
        // right hash, fails and is named.
        let stranger = NodeKey::from_seed([3; 32]);
        let head = store.audit_head().unwrap();
        let body = canonical::to_vec(
            &Checkpoint {
                member: member.to_string(),
                seq: head.seq,
                hash: head.hash,
                time: 1,
            },
            "x",
        )
        .unwrap();
        let forged = SignedEnvelope::signed(Domain::AuditCheckpoint, body, &stranger)
            .encode()
            .unwrap();
        store.put_audit_checkpoint(head.seq, forged).await.unwrap();
        let report = audit.verify(&new.public_key()).unwrap();
        let (seq, problem) = report.problem.unwrap();
        assert_eq!(seq, 2);
        assert!(
            problem.contains(&stranger.public_key().to_hex()),
            "{problem}"
        );
    }
}
