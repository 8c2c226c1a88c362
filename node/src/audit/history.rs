//! The history of this node's own keys: every node public key it has run
//! with, in the order first used, so that a checkpoint is checked against
//! the key recorded with it (the signer key inside its envelope) and a key
//! rotation keeps the old checkpoints verifiable.
//!
//! A record is the 32-byte public key followed by the time (seconds, u64
//! big-endian) the node first started with it, 40 bytes, under `k` ‖ index
//! in the `audit` tree. Calls `store` only.

use handbereik_keys::PublicKey;

use crate::error::Result;
use crate::store::{Store, StoreError};

/// The keys this node has run with, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHistory {
    keys: Vec<(PublicKey, u64)>,
}

impl KeyHistory {
    /// A history of exactly these keys (for tools and tests).
    pub fn of(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        KeyHistory {
            keys: keys.into_iter().map(|k| (k, 0)).collect(),
        }
    }

    /// The keys recorded in `store`, plus `current` at the end if it is not
    /// the last one recorded (a node that has not started with it yet, or a
    /// database from before the history was kept).
    pub fn load(store: &Store, current: &PublicKey) -> Result<Self> {
        let mut keys = Vec::new();
        for (_, value) in store.audit_keys()? {
            keys.push(decode(&value)?);
        }
        let mut history = KeyHistory { keys };
        if history.last() != Some(current) {
            history.keys.push((*current, 0));
        }
        Ok(history)
    }

    /// Whether `key` is, or was, this node's.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }

    /// The most recent key.
    pub fn last(&self) -> Option<&PublicKey> {
        self.keys.last().map(|(k, _)| k)
    }

    /// The keys, oldest first, with when each was first used (0: not recorded).
    pub fn keys(&self) -> &[(PublicKey, u64)] {
        &self.keys
    }
}

fn decode(value: &[u8]) -> Result<(PublicKey, u64)> {
    let damaged = || StoreError::Damaged {
        what: "node key history (a record is not 40 bytes of key and time)",
    };
    if value.len() != 40 {
        return Err(damaged().into());
    }
    let key = PublicKey::from_bytes(&value[..32]).map_err(|_| damaged())?;
    let since = value
        .get(32..40)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(damaged)?;
    Ok((key, since))
}

/// Records `current` as the newest key unless it already is; answers
/// whether it was added. Called once at start, before the node signs
/// anything.
pub async fn record_key(store: &Store, current: &PublicKey) -> Result<bool> {
    let stored = store.audit_keys()?;
    if let Some((_, value)) = stored.last()
        && decode(value)?.0 == *current
    {
        return Ok(false);
    }
    let index = stored
        .last()
        .map_or(0, |(i, _)| *i)
        .checked_add(1)
        .ok_or(StoreError::Damaged {
            what: "node key history (its index is at the largest number)",
        })?;
    let mut value = current.as_bytes().to_vec();
    value.extend_from_slice(&handbereik_keys::time::now().to_be_bytes());
    store.put_audit_key(index, value).await?;
    if index > 1 {
        tracing::info!(
            key = %current,
            keys = index,
            "this node runs with a new node key; its earlier keys stay recorded, so checkpoints they signed still verify"
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use handbereik_keys::NodeKey;

    #[tokio::test]
    async fn a_new_key_is_appended_once_and_old_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(dir.path(), 1 << 20).unwrap();
        let store = opened.store;
        let a = NodeKey::from_seed([1; 32]).public_key();
        let b = NodeKey::from_seed([2; 32]).public_key();
        let stranger = NodeKey::from_seed([3; 32]).public_key();
        assert_eq!(KeyHistory::load(&store, &a).unwrap(), KeyHistory::of([a]));
        assert!(record_key(&store, &a).await.unwrap());
        assert!(
            !record_key(&store, &a).await.unwrap(),
            "a restart adds nothing"
        );
        assert!(record_key(&store, &b).await.unwrap());
        assert!(!record_key(&store, &b).await.unwrap());
        let history = KeyHistory::load(&store, &b).unwrap();
        assert_eq!(history.keys().len(), 2);
        assert!(history.contains(&a) && history.contains(&b));
        assert!(!history.contains(&stranger));
        assert_eq!(history.last(), Some(&b));
        assert!(history.keys().iter().all(|(_, since)| *since > 0));
        // Back to the first key: it is the newest again, recorded once more.
        assert!(record_key(&store, &a).await.unwrap());
        assert_eq!(KeyHistory::load(&store, &a).unwrap().keys().len(), 3);
        store.close().await.unwrap();
        drop(opened.writer);
    }
}
