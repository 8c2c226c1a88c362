//! `audit verify`: recomputes the chain from the stored bytes and checks
//! the head record and the signed checkpoints against it.
//!
//! Reads through `store` only; works on a running node (through the local
//! API) and on a stopped node's data directory alike.

use handbereik_keys::{Domain, PublicKey, SignedEnvelope, canonical};

use super::checkpoint::Checkpoint;
use super::entry::{AuditEntry, hash};
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
    /// The first entry that does not fit, with the reason; `None` if all fit.
    pub problem: Option<(u64, String)>,
}

impl Report {
    /// Whether the whole chain verified.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Recomputes the chain in `store`. `signer` is the node's public key, which
/// must have signed every checkpoint.
pub fn verify(store: &Store, signer: &PublicKey) -> Result<Report> {
    let mut report = Report::default();
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
        let result = SignedEnvelope::decode(&signed, "audit checkpoint", 4096).and_then(|env| {
            env.verify_signed_by(Domain::AuditCheckpoint, signer)?;
            canonical::from_slice::<Checkpoint>(&env.body, "audit checkpoint")
        });
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
