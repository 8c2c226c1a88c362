//! The `registry` tree: the source registration, one value per (subject,
//! category), and its write operations for the writer task.
//!
//! Key: subject pseudonym (32 bytes) ‖ category (ASCII). Values are opaque
//! here (the `registry` module encodes them). Conditions such as "must not
//! exist yet" are checked inside the writer, so no two writers race; they
//! fail with [`StoreError::KeyExists`] or [`StoreError::KeyMissing`], which
//! the registry module words for its callers.

use super::error::{BuildError, StoreError};
use crate::types::Pseudonym;

/// Builds an entry's new value from its old one.
pub type Rewrite = Box<dyn FnOnce(&[u8]) -> Result<Vec<u8>, BuildError> + Send>;

/// One stored entry, as the page reader gives it.
pub struct RegistryRow {
    /// The raw key (a page token is made of it).
    pub key: Vec<u8>,
    /// Subject.
    pub subject: Pseudonym,
    /// Category.
    pub category: String,
    /// Encoded entry.
    pub value: Vec<u8>,
}

/// One change to the source registration.
pub enum RegistryWrite {
    /// Adds an entry; refused if one exists.
    Insert {
        /// Subject.
        subject: Pseudonym,
        /// Category.
        category: String,
        /// Encoded entry.
        value: Vec<u8>,
    },
    /// Replaces an entry; refused if none exists. `value` gets the old bytes.
    Replace {
        /// Subject.
        subject: Pseudonym,
        /// Category.
        category: String,
        /// Builds the new value from the old one.
        value: Rewrite,
    },
    /// Removes an entry; refused if none exists.
    Remove {
        /// Subject.
        subject: Pseudonym,
        /// Category.
        category: String,
    },
    /// Removes every entry of a subject.
    Erase {
        /// Subject.
        subject: Pseudonym,
    },
    /// Removes an entry only if it is still exactly `expected` (the retention
    /// sweeper, which must not remove an entry updated after it looked).
    Expire {
        /// The full key, as read.
        key: Vec<u8>,
        /// The value, as read.
        expected: Vec<u8>,
    },
}

pub(super) fn key(subject: &Pseudonym, category: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + category.len());
    key.extend_from_slice(subject);
    key.extend_from_slice(category.as_bytes());
    key
}

/// Splits a key into subject and category.
pub(super) fn parse_key(key: &[u8]) -> Option<(Pseudonym, String)> {
    let subject: Pseudonym = key.get(..32)?.try_into().ok()?;
    let category = std::str::from_utf8(key.get(32..)?).ok()?.to_string();
    Some((subject, category))
}

/// Applies one write to `tree` at once (atomic), returning how many entries
/// it touched. The caller flushes.
pub(super) fn apply(tree: &sled::Tree, write: RegistryWrite) -> Result<u32, StoreError> {
    match write {
        RegistryWrite::Insert {
            subject,
            category,
            value,
        } => {
            let key = key(&subject, &category);
            match tree
                .compare_and_swap(key, None as Option<&[u8]>, Some(value))
                .map_err(broken)?
            {
                Ok(()) => Ok(1),
                Err(_) => Err(StoreError::KeyExists),
            }
        }
        RegistryWrite::Replace {
            subject,
            category,
            value,
        } => {
            let key = key(&subject, &category);
            let old = tree
                .get(&key)
                .map_err(StoreError::Read)?
                .ok_or(StoreError::KeyMissing)?;
            let new = value(&old).map_err(StoreError::Build)?;
            tree.insert(key, new).map_err(broken)?;
            Ok(1)
        }
        RegistryWrite::Remove { subject, category } => {
            let key = key(&subject, &category);
            tree.remove(key)
                .map_err(broken)?
                .ok_or(StoreError::KeyMissing)?;
            Ok(1)
        }
        RegistryWrite::Erase { subject } => {
            let mut batch = sled::Batch::default();
            let mut count = 0;
            for item in tree.scan_prefix(subject) {
                let (key, _) = item.map_err(StoreError::Read)?;
                batch.remove(key);
                count += 1;
            }
            tree.apply_batch(batch).map_err(broken)?;
            Ok(count)
        }
        RegistryWrite::Expire { key, expected } => {
            match tree
                .compare_and_swap(key, Some(expected), None as Option<&[u8]>)
                .map_err(broken)?
            {
                Ok(()) => Ok(1),
                Err(_) => Ok(0),
            }
        }
    }
}

/// A failed change to the tree: the store takes no more writes after it.
fn broken(e: sled::Error) -> StoreError {
    StoreError::Broken(std::sync::Arc::new(e))
}

impl super::Store {
    /// One registry entry.
    pub fn registry_get(
        &self,
        subject: &Pseudonym,
        category: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees
            .registry
            .get(key(subject, category))
            .map_err(StoreError::Read)?
            .map(|v| v.to_vec()))
    }

    /// Every entry of one subject: (category, value).
    pub fn registry_subject(
        &self,
        subject: &Pseudonym,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.trees.registry.scan_prefix(subject) {
            let (key, value) = item.map_err(StoreError::Read)?;
            if let Some((_, category)) = parse_key(&key) {
                out.push((category, value.to_vec()));
            }
        }
        Ok(out)
    }

    /// Entries of all subjects after the raw key `after` (exclusive), at most
    /// `limit`.
    pub fn registry_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<RegistryRow>, StoreError> {
        let tree = &self.trees.registry;
        let range = match after {
            Some(after) => tree.range((
                std::ops::Bound::Excluded(after.to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => tree.iter(),
        };
        let mut out = Vec::new();
        for item in range.take(limit) {
            let (key, value) = item.map_err(StoreError::Read)?;
            if let Some((subject, category)) = parse_key(&key) {
                out.push(RegistryRow {
                    key: key.to_vec(),
                    subject,
                    category,
                    value: value.to_vec(),
                });
            }
        }
        Ok(out)
    }
}
