//! Durable, named subscriptions of the back office to the inbox.
//!
//! Owns the subscription record (filters and the acknowledged position) and
//! the delivery loop: from the first inbox position after the acknowledged
//! one, in inbox order, every event that matches the filters, then new ones as
//! they arrive. Delivery is at least once: what was sent but not acknowledged
//! is sent again on the next Subscribe, also after a restart. Only durable
//! inbox entries are delivered, so every position delivered can be
//! acknowledged. Within each (source, purpose) stream the inbox is in
//! sequence order (the store holds an event back until the gap before it is
//! filled); a gap passed after its timeout is reported with the event after
//! it. Calls `store`.

use handbereik_keys::text::excerpt;
use handbereik_keys::{MemberId, canonical};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::event::{self, Notification};
use crate::error::{Error, Result};
use crate::store::Store;

pub use crate::store::Note;

/// How many inbox entries are read at a time.
const PAGE: usize = 256;

/// What a subscription wants, and how far it has acknowledged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Every position up to here is acknowledged.
    pub acked: u64,
    /// Types to deliver (empty: all).
    pub types: Vec<String>,
    /// Purposes to deliver (empty: all).
    pub purposes: Vec<String>,
    /// Source member ids to deliver (empty: all).
    pub sources: Vec<String>,
}

/// Most values in one filter.
pub const MAX_FILTER_VALUES: usize = 64;
/// The longest value in a filter (types are at most 128 characters).
pub const MAX_FILTER_CHARS: usize = 128;

impl Record {
    /// Checks the filters as the back office gave them.
    pub fn check(&self) -> Result<()> {
        for (field, values) in [
            ("types", &self.types),
            ("purposes", &self.purposes),
            ("sources", &self.sources),
        ] {
            if values.len() > MAX_FILTER_VALUES {
                return Err(Error::InvalidRequest(format!(
                    "{field}: at most {MAX_FILTER_VALUES} values (got {})",
                    values.len()
                )));
            }
            if let Some(v) = values
                .iter()
                .find(|v| v.is_empty() || v.len() > MAX_FILTER_CHARS)
            {
                return Err(Error::InvalidRequest(format!(
                    "{field}: each value is 1 to {MAX_FILTER_CHARS} characters; {} is not",
                    excerpt(v)
                )));
            }
        }
        Ok(())
    }

    /// Whether an event passes the filters.
    pub fn matches(&self, notification: &Notification, source: &MemberId) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == &notification.event_type))
            && (self.purposes.is_empty()
                || self
                    .purposes
                    .iter()
                    .any(|p| p == notification.purpose.as_str()))
            && (self.sources.is_empty() || self.sources.iter().any(|s| s == source.as_str()))
    }
}

/// One event delivered to a subscriber.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// Its inbox position, to acknowledge.
    pub position: u64,
    /// Its source.
    pub source: MemberId,
    /// The event.
    pub notification: Notification,
    /// Whether it follows its predecessor, comes past a gap, or comes late.
    pub note: Note,
}

/// The node's subscriptions.
pub struct Subscriptions {
    store: Store,
    // Read-modify-write of one record at a time; held only across the store write.
    lock: Mutex<()>,
}

/// Checks a subscription name: 1 to 64 of a-z, 0-9, '-', '_'.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "subscription name {}: use 1 to 64 characters a-z, 0-9, '-' and '_'",
            excerpt(name)
        )))
    }
}

impl Subscriptions {
    /// Subscriptions kept in `store`.
    pub fn new(store: Store) -> Self {
        Subscriptions {
            store,
            lock: Mutex::new(()),
        }
    }

    fn read(&self, name: &str) -> Result<Option<Record>> {
        self.store
            .subscription(name)?
            .map(|bytes| canonical::from_slice(&bytes, "subscription"))
            .transpose()
            .map_err(Error::from)
    }

    /// Creates the subscription or replaces its filters; returns the record.
    pub async fn open(&self, name: &str, filters: Record) -> Result<Record> {
        check_name(name)?;
        filters.check()?;
        let _guard = self.lock.lock().await;
        let acked = self.read(name)?.map_or(0, |r| r.acked);
        let record = Record { acked, ..filters };
        self.store
            .put_subscription(name, canonical::to_vec(&record, "subscription")?)
            .await?;
        Ok(record)
    }

    /// Acknowledges every position up to `position`; returns the new position.
    pub async fn ack(&self, name: &str, position: u64) -> Result<u64> {
        check_name(name)?;
        let head = *self.store.inbox_head().borrow();
        if position > head {
            return Err(Error::InvalidRequest(format!(
                "position {position} is beyond the inbox (last position {head})"
            )));
        }
        let _guard = self.lock.lock().await;
        let mut record = self.read(name)?.ok_or_else(|| {
            Error::InvalidRequest(format!(
                "no subscription named {}; Subscribe first",
                excerpt(name)
            ))
        })?;
        if position > record.acked {
            record.acked = position;
            self.store
                .put_subscription(name, canonical::to_vec(&record, "subscription")?)
                .await?;
        }
        Ok(record.acked)
    }

    /// Sends matching events after `record.acked` to `out`, in inbox order,
    /// until `out` closes or `stop` fires.
    pub async fn deliver(
        &self,
        record: Record,
        out: mpsc::Sender<Delivered>,
        stop: CancellationToken,
    ) -> Result<()> {
        let mut head = self.store.inbox_head();
        let mut cursor = record.acked;
        loop {
            let page = self.store.inbox_after(cursor, PAGE)?;
            for entry in &page {
                cursor = entry.position;
                let Some(notification) = self
                    .store
                    .event(&entry.stream, entry.seq)?
                    .as_deref()
                    .and_then(event::decode_stored)
                else {
                    continue;
                };
                if record.matches(&notification, &entry.stream.source) {
                    let delivered = Delivered {
                        position: entry.position,
                        source: entry.stream.source.clone(),
                        notification,
                        note: entry.note,
                    };
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        sent = out.send(delivered) => if sent.is_err() { return Ok(()) },
                    }
                }
            }
            if page.len() == PAGE {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = out.closed() => return Ok(()),
                changed = head.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }
}
