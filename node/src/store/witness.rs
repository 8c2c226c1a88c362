//! The witness keys of the `audit` tree: what this node holds of other
//! members' audit checkpoints, the alarms it raised about them, and the
//! history of this node's own keys. In the `audit` tree, beside the log and
//! its checkpoints, so that they share its one durable write path:
//!
//! - `w` ‖ member id (20 ASCII digits) → the held record of that member
//!   (the latest checkpoint accepted and this node's countersignature)
//! - `a` ‖ member id ‖ slot (one byte, 0 to 3) → an alarm record about
//!   that member (the held and the conflicting checkpoint)
//! - `k` ‖ index (u64 BE, from 1) → a node public key this node has run
//!   with, in the order first used
//!
//! Values are opaque here; the `audit` module encodes them. Calls nothing
//! of the node but the store's own writer.

use handbereik_keys::MemberId;

use super::error::StoreError;
use super::{Result, Store, writer};

pub(crate) const HELD: u8 = b'w';
pub(crate) const ALARM: u8 = b'a';
pub(crate) const KEY: u8 = b'k';

/// One write of the witness: a held record or an alarm record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessWrite {
    /// Replaces the held record of `member`.
    Held {
        /// The member.
        member: MemberId,
        /// The encoded record.
        value: Vec<u8>,
    },
    /// Writes (or replaces) one alarm slot of `member`.
    Alarm {
        /// The member.
        member: MemberId,
        /// The slot, 0 to 255 (the witness keeps at most a few).
        slot: u8,
        /// The encoded record.
        value: Vec<u8>,
    },
}

fn held_key(member: &MemberId) -> Vec<u8> {
    let mut key = Vec::with_capacity(21);
    key.push(HELD);
    key.extend_from_slice(member.as_str().as_bytes());
    key
}

fn alarm_prefix(member: &MemberId) -> Vec<u8> {
    let mut key = Vec::with_capacity(22);
    key.push(ALARM);
    key.extend_from_slice(member.as_str().as_bytes());
    key
}

fn key_key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = KEY;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn member_at(key: &[u8]) -> Result<MemberId> {
    key.get(1..21)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| MemberId::parse(s).ok())
        .ok_or(StoreError::Damaged {
            what: "witness key (its member id)",
        })
}

impl Store {
    /// The held record of `member`, if this node witnessed it.
    pub fn witness_held(&self, member: &MemberId) -> Result<Option<Vec<u8>>> {
        Ok(self
            .trees
            .audit
            .get(held_key(member))
            .map_err(StoreError::Read)?
            .map(|v| v.to_vec()))
    }

    /// The alarm records about `member`: (slot, record), in slot order.
    pub fn witness_alarms_of(&self, member: &MemberId) -> Result<Vec<(u8, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.trees.audit.scan_prefix(alarm_prefix(member)) {
            let (key, value) = item.map_err(StoreError::Read)?;
            let slot = *key.get(21).ok_or(StoreError::Damaged {
                what: "witness alarm key (its slot)",
            })?;
            out.push((slot, value.to_vec()));
        }
        Ok(out)
    }

    /// Every alarm record, in member order: (member, slot, record).
    pub fn witness_alarms(&self) -> Result<Vec<(MemberId, u8, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.trees.audit.scan_prefix([ALARM]) {
            let (key, value) = item.map_err(StoreError::Read)?;
            let member = member_at(&key)?;
            let slot = *key.get(21).ok_or(StoreError::Damaged {
                what: "witness alarm key (its slot)",
            })?;
            out.push((member, slot, value.to_vec()));
        }
        Ok(out)
    }

    /// Writes held and alarm records durably, in one atomic batch.
    pub async fn put_witness(&self, writes: Vec<WitnessWrite>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let entries = writes
            .into_iter()
            .map(|w| match w {
                WitnessWrite::Held { member, value } => (held_key(&member), value),
                WitnessWrite::Alarm {
                    member,
                    slot,
                    value,
                } => {
                    let mut key = alarm_prefix(&member);
                    key.push(slot);
                    (key, value)
                }
            })
            .collect();
        self.send(|reply| writer::Command::Put {
            tree: writer::Which::Audit,
            entries,
            reply,
        })
        .await
    }

    /// The node keys recorded, in order: (index, value).
    pub fn audit_keys(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.trees.audit.scan_prefix([KEY]) {
            let (key, value) = item.map_err(StoreError::Read)?;
            let index = super::keys::u64_at(&key, 1).ok_or(StoreError::Damaged {
                what: "node key history (its index)",
            })?;
            out.push((index, value.to_vec()));
        }
        Ok(out)
    }

    /// Records one node key at `index`, durably.
    pub async fn put_audit_key(&self, index: u64, value: Vec<u8>) -> Result<()> {
        let entries = vec![(key_key(index).to_vec(), value)];
        self.send(|reply| writer::Command::Put {
            tree: writer::Which::Audit,
            entries,
            reply,
        })
        .await
    }

    /// The newest signed checkpoint of this node's own log, if any:
    /// (sequence, signed bytes).
    pub fn audit_last_checkpoint(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(item) = self
            .trees
            .audit
            .scan_prefix([super::audit::CHECKPOINT])
            .next_back()
        else {
            return Ok(None);
        };
        let (key, value) = item.map_err(StoreError::Read)?;
        let seq = super::keys::u64_at(&key, 1).ok_or(StoreError::Damaged {
            what: "audit checkpoint key",
        })?;
        Ok(Some((seq, value.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u32) -> MemberId {
        MemberId::parse(&format!("{:020}", 1000 + n)).unwrap()
    }

    #[tokio::test]
    async fn held_alarm_and_key_records_round_trip_and_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(dir.path(), 1 << 20).unwrap();
        let store = opened.store;
        assert_eq!(store.audit_last_checkpoint().unwrap(), None);
        store
            .put_witness(vec![
                WitnessWrite::Held {
                    member: member(1),
                    value: b"one".to_vec(),
                },
                WitnessWrite::Held {
                    member: member(2),
                    value: b"two".to_vec(),
                },
                WitnessWrite::Alarm {
                    member: member(1),
                    slot: 1,
                    value: b"a1".to_vec(),
                },
                WitnessWrite::Alarm {
                    member: member(1),
                    slot: 0,
                    value: b"a0".to_vec(),
                },
            ])
            .await
            .unwrap();
        store.put_audit_checkpoint(3, b"c3".to_vec()).await.unwrap();
        store
            .put_audit_checkpoint(12, b"c12".to_vec())
            .await
            .unwrap();
        store.put_audit_key(1, b"k1".to_vec()).await.unwrap();
        assert_eq!(store.witness_held(&member(1)).unwrap().unwrap(), b"one");
        assert_eq!(store.witness_held(&member(3)).unwrap(), None);
        assert!(store.witness_held(&member(2)).unwrap().is_some());
        assert_eq!(
            store.witness_alarms_of(&member(1)).unwrap(),
            vec![(0, b"a0".to_vec()), (1, b"a1".to_vec())]
        );
        assert!(store.witness_alarms_of(&member(2)).unwrap().is_empty());
        assert_eq!(store.witness_alarms().unwrap().len(), 2);
        assert_eq!(store.audit_keys().unwrap(), vec![(1, b"k1".to_vec())]);
        assert_eq!(
            store.audit_last_checkpoint().unwrap(),
            Some((12, b"c12".to_vec()))
        );
        // The log's own checkpoints are untouched by witness records.
        assert_eq!(store.audit_checkpoints().unwrap().len(), 2);
        store.close().await.unwrap();
        assert!(opened.writer.join(std::time::Duration::from_secs(10)).await);
    }
}
