//! The audit log (verantwoording): every inspection decision, allowed or
//! denied, served or asked, as a hash-chained entry that is durable before
//! the answer leaves; signed checkpoints; verification; subject reports;
//! witnessing other members' checkpoints ([`witness`]) and the history of
//! this node's keys ([`history`]).
//!
//! Owns the entry format and the chain; calls `store` (whose writer task
//! appends entries in group commit: one flush for every entry waiting) and
//! `handbereik-keys`. If an append fails, [`Audit::log`] fails, and callers
//! refuse the request: nothing is disclosed unlogged.

mod checkpoint;
mod entry;
mod history;
mod verify;
pub mod witness;

pub use checkpoint::{Checkpoint, checkpoint, checkpoint_every, latest_checkpoint};
pub use entry::{Actor, AuditEntry, Decision, Direction, REPORT_ACTION, Record, hash};
pub use history::{KeyHistory, record_key};
pub use verify::{Report, verify};

use crate::error::{Error, Result};
use crate::store::{Store, StoreError};
use crate::types::Pseudonym;

/// Filters of [`Audit::query`]; empty strings match anything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only entries after this sequence.
    pub after: u64,
    /// At most this many (1 to 1000).
    pub limit: usize,
    /// The other member.
    pub peer: String,
    /// The purpose.
    pub purpose: String,
    /// `served` or `asked`.
    pub direction: String,
}

/// The node's audit log. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    store: Store,
}

impl Audit {
    /// Over `store`.
    pub fn new(store: Store) -> Self {
        Audit { store }
    }

    /// Appends `record` durably and answers its sequence number; fails with
    /// [`Error::AuditUnavailable`] if it cannot be written.
    pub async fn log(&self, record: Record, subject: Option<Pseudonym>) -> Result<u64> {
        let time_ms = now_ms();
        self.store
            .audit_append(
                subject,
                Box::new(move |seq, prev| {
                    let bytes = AuditEntry::new(record, seq, time_ms, prev).encode()?;
                    Ok((hash(&bytes), bytes))
                }),
            )
            .await
            .map_err(Error::AuditUnavailable)
    }

    /// Entries in sequence order that match `filter`, with their hashes.
    pub fn query(&self, filter: &Filter) -> Result<Vec<(AuditEntry, [u8; 32])>> {
        let limit = filter.limit.clamp(1, 1000);
        let mut out = Vec::new();
        let mut after = filter.after;
        while out.len() < limit {
            let page = self.store.audit_entries(after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, bytes) in page {
                let entry = AuditEntry::decode(&bytes)?;
                let keep = (filter.peer.is_empty() || entry.peer == filter.peer)
                    && (filter.purpose.is_empty() || entry.purpose == filter.purpose)
                    && (filter.direction.is_empty()
                        || entry.direction.as_str() == filter.direction);
                if keep && out.len() < limit {
                    out.push((entry, hash(&bytes)));
                }
            }
        }
        Ok(out)
    }

    /// Every entry about one subject, in order, with its hash.
    pub fn about(&self, subject: &Pseudonym) -> Result<Vec<(AuditEntry, [u8; 32])>> {
        let mut out = Vec::new();
        for seq in self.store.audit_subject(subject)? {
            let bytes = self.store.audit_entry(seq)?.ok_or_else(|| {
                Error::Store(StoreError::Damaged {
                    what: "audit subject index (it names an entry that is missing)",
                })
            })?;
            out.push((AuditEntry::decode(&bytes)?, hash(&bytes)));
        }
        Ok(out)
    }

    /// Recomputes the chain and checks the checkpoints, each against the key
    /// recorded with it, which must be `current` or a key this node ran with
    /// before.
    pub fn verify(&self, current: &handbereik_keys::PublicKey) -> Result<Report> {
        verify(&self.store, &self.key_history(current)?)
    }

    /// The keys this node has run with, `current` last.
    pub fn key_history(&self, current: &handbereik_keys::PublicKey) -> Result<KeyHistory> {
        KeyHistory::load(&self.store, current)
    }

    /// The hash of entry `seq`, if the log has it.
    pub fn entry_hash(&self, seq: u64) -> Result<Option<[u8; 32]>> {
        Ok(self.store.audit_entry(seq)?.map(|bytes| hash(&bytes)))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
