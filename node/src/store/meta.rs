//! Reads of the `meta` and `subscriptions` trees: small named values (the
//! member list held, its anchor and version) and subscription records.
//!
//! Values are opaque here; their owners (`membership`, `notify`) encode them.

use super::error::StoreError;
use super::{Result, Store};

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
