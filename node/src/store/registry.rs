//! The `registry` tree: the source registration, one value per (subject,
//! category), and its write operations for the writer task.
//!
//! Key: subject pseudonym (32 bytes) ‖ category (ASCII). Values are opaque
//! here (the `registry` module encodes them). Conditions such as "must not
//! exist yet" are checked inside the writer task, so no two writers race.

use crate::error::{Error, Result};

/// A subject's network pseudonym, raw.
pub type Pseudonym = [u8; 32];

/// Builds an entry's new value from its old one.
pub type Rewrite = Box<dyn FnOnce(&[u8]) -> Result<Vec<u8>> + Send>;

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
pub(super) fn apply(tree: &sled::Tree, write: RegistryWrite) -> Result<u32> {
    match write {
        RegistryWrite::Insert {
            subject,
            category,
            value,
        } => {
            let key = key(&subject, &category);
            match tree.compare_and_swap(key, None as Option<&[u8]>, Some(value))? {
                Ok(()) => Ok(1),
                Err(_) => Err(Error::AlreadyExists(format!(
                    "the subject already has an entry in category {category:?}; use Update to change it"
                ))),
            }
        }
        RegistryWrite::Replace {
            subject,
            category,
            value,
        } => {
            let key = key(&subject, &category);
            let old = tree.get(&key)?.ok_or_else(|| not_found(&category))?;
            let new = value(&old)?;
            tree.insert(key, new)?;
            Ok(1)
        }
        RegistryWrite::Remove { subject, category } => {
            let key = key(&subject, &category);
            tree.remove(key)?.ok_or_else(|| not_found(&category))?;
            Ok(1)
        }
        RegistryWrite::Erase { subject } => {
            let mut batch = sled::Batch::default();
            let mut count = 0;
            for item in tree.scan_prefix(subject) {
                let (key, _) = item?;
                batch.remove(key);
                count += 1;
            }
            tree.apply_batch(batch)?;
            Ok(count)
        }
        RegistryWrite::Expire { key, expected } => {
            match tree.compare_and_swap(key, Some(expected), None as Option<&[u8]>)? {
                Ok(()) => Ok(1),
                Err(_) => Ok(0),
            }
        }
    }
}

fn not_found(category: &str) -> Error {
    Error::NotFound(format!(
        "the subject has no entry in category {category:?}; use Register to add one"
    ))
}
