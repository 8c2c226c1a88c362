//! Reads of the `meta` and `subscriptions` trees: small named values (the
//! member list held, its anchor and version) and subscription records.
//!
//! Values are opaque here; their owners (`membership`, `notify`) encode them.

use super::error::StoreError;
use super::{Result, Store};

const SYNC_EPOCH: &str = "sync_epoch";

/// The database's sync epoch, made (random, non-zero) on first open.
pub(super) fn load_or_make_epoch(meta: &sled::Tree) -> Result<u64> {
    if let Some(value) = meta.get(SYNC_EPOCH).map_err(StoreError::Read)?
        && let Some(epoch) = super::keys::u64_at(&value, 0)
    {
        return Ok(epoch);
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(StoreError::Randomness)?;
    let epoch = u64::from_be_bytes(bytes).max(1);
    meta.insert(SYNC_EPOCH, &epoch.to_be_bytes()[..])
        .map_err(|e| StoreError::Broken(std::sync::Arc::new(e)))?;
    meta.flush()
        .map_err(|e| StoreError::Broken(std::sync::Arc::new(e)))?;
    Ok(epoch)
}

impl Store {
    /// A subscription record.
    pub fn subscription(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .trees
            .subscriptions
            .get(name.as_bytes())
            .map_err(StoreError::Read)?
            .map(|v| v.to_vec()))
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .trees
            .meta
            .get(key.as_bytes())
            .map_err(StoreError::Read)?
            .map(|v| v.to_vec()))
    }
}
