//! The `audit` tree: the hash-chained audit log, its subject index, its head
//! and its signed checkpoints, and the append step of the writer task.
//!
//! - `e` ‖ sequence (u64 BE) → entry bytes (encoded by the `audit` module)
//! - `s` ‖ subject pseudonym (32 bytes) ‖ sequence → empty (subject index)
//! - `h` → sequence (u64 BE) ‖ SHA-256 of that entry: the head
//! - `c` ‖ sequence → a signed checkpoint of the head at that sequence
//!
//! All of an entry's keys are written in one atomic batch with the head, so
//! the index and the head never disagree with the chain.

use super::error::{BuildError, StoreError};
use crate::types::Pseudonym;

pub(crate) const ENTRY: u8 = b'e';
pub(crate) const SUBJECT: u8 = b's';
pub(crate) const HEAD: u8 = b'h';
pub(crate) const CHECKPOINT: u8 = b'c';

/// Builds an entry from its sequence number and the previous entry's hash,
/// returning the entry's bytes and its own hash.
pub type BuildEntry =
    Box<dyn FnOnce(u64, [u8; 32]) -> Result<([u8; 32], Vec<u8>), BuildError> + Send>;

/// The chain's head as the writer holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// The last sequence number written (0: none).
    pub seq: u64,
    /// Its hash (all zeroes before the first entry).
    pub hash: [u8; 32],
}

pub(crate) fn entry_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = ENTRY;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn subject_key(subject: &Pseudonym, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(41);
    key.push(SUBJECT);
    key.extend_from_slice(subject);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn checkpoint_key(seq: u64) -> [u8; 9] {
    let mut key = entry_key(seq);
    key[0] = CHECKPOINT;
    key
}

pub(crate) fn decode_head(value: &[u8]) -> Option<Head> {
    let seq = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let hash = value.get(8..40)?.try_into().ok()?;
    Some(Head { seq, hash })
}

fn encode_head(head: &Head) -> Vec<u8> {
    let mut value = head.seq.to_be_bytes().to_vec();
    value.extend_from_slice(&head.hash);
    value
}

pub(crate) fn load_head(tree: &sled::Tree) -> Result<Head, StoreError> {
    match tree.get([HEAD]).map_err(StoreError::Read)? {
        None => Ok(Head::default()),
        Some(value) => decode_head(&value).ok_or(StoreError::Damaged {
            what: "audit log's head record",
        }),
    }
}

/// Adds one entry to `batch` after `head`, and moves `head` on.
pub(super) fn append(
    head: &mut Head,
    subject: Option<Pseudonym>,
    build: BuildEntry,
    batch: &mut sled::Batch,
) -> Result<u64, StoreError> {
    let seq = head.seq.checked_add(1).ok_or(StoreError::Damaged {
        what: "audit log's head record (its sequence is at the largest number)",
    })?;
    let (hash, bytes) = build(seq, head.hash).map_err(StoreError::Build)?;
    batch.insert(&entry_key(seq)[..], bytes);
    if let Some(subject) = subject {
        batch.insert(subject_key(&subject, seq), &[][..]);
    }
    *head = Head { seq, hash };
    batch.insert(&[HEAD][..], encode_head(head));
    Ok(seq)
}

impl super::Store {
    /// The audit chain's head, as durably stored.
    pub fn audit_head(&self) -> Result<Head, StoreError> {
        load_head(&self.trees.audit)
    }

    /// Audit entries after sequence `after`, in order, at most `limit`.
    pub fn audit_entries(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = entry_key(after.saturating_add(1));
        let end = entry_key(u64::MAX);
        let mut out = Vec::new();
        for item in self.trees.audit.range(start..=end).take(limit) {
            let (key, value) = item.map_err(StoreError::Read)?;
            let seq = super::keys::u64_at(&key, 1).ok_or(StoreError::Damaged {
                what: "audit entry key",
            })?;
            out.push((seq, value.to_vec()));
        }
        Ok(out)
    }

    /// One audit entry.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees
            .audit
            .get(entry_key(seq))
            .map_err(StoreError::Read)?
            .map(|v| v.to_vec()))
    }

    /// The sequence numbers of the audit entries about `subject`.
    pub fn audit_subject(&self, subject: &Pseudonym) -> Result<Vec<u64>, StoreError> {
        let mut prefix = vec![SUBJECT];
        prefix.extend_from_slice(subject);
        let mut out = Vec::new();
        for item in self.trees.audit.scan_prefix(&prefix) {
            let (key, _) = item.map_err(StoreError::Read)?;
            if let Some(seq) = super::keys::u64_at(&key, 33) {
                out.push(seq);
            }
        }
        Ok(out)
    }

    /// Every signed checkpoint: (sequence, signed bytes).
    pub fn audit_checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees.audit.scan_prefix([CHECKPOINT]) {
            let (key, value) = item.map_err(StoreError::Read)?;
            if let Some(seq) = super::keys::u64_at(&key, 1) {
                out.push((seq, value.to_vec()));
            }
        }
        Ok(out)
    }
}
