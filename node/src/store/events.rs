//! Reads of the `notify` tree: events, the inbox and the marks, and the
//! rebuilding of the writer's stream bookkeeping at open.
//!
//! The layout is in [`keys`](super::keys). Inbox reads stop at the durable
//! head the writer publishes after each flush, so nothing is delivered (and
//! no position can be acknowledged) before it is on disk.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::error::StoreError;
use super::keys;
use super::streams::{Note, Streams};
use super::{Result, Store};
use crate::types::StreamId;

/// One inbox entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    /// Its position, to acknowledge.
    pub position: u64,
    /// The event's stream.
    pub stream: StreamId,
    /// The event's sequence number.
    pub seq: u64,
    /// How it entered the inbox (in order, past a gap, late).
    pub note: Note,
}

/// Rebuilds the per-stream bookkeeping from the marks and the events stored
/// above them. Reads one range per stream, not every event.
pub(super) fn load_streams(notify: &sled::Tree, now: Instant) -> Result<Streams> {
    let mut delivered: BTreeMap<StreamId, u64> = BTreeMap::new();
    for item in notify.scan_prefix([keys::DELIVERED]) {
        let (key, value) = item.map_err(StoreError::Read)?;
        if let (Some((stream, _)), Some(mark)) = (
            keys::parse_stream(key.get(1..).unwrap_or_default()),
            keys::u64_at(&value, 0),
        ) {
            delivered.insert(stream, mark);
        }
    }
    let mut streams = Streams::default();
    for item in notify.scan_prefix([keys::MARK]) {
        let (key, value) = item.map_err(StoreError::Read)?;
        let (Some((stream, _)), Some(mark)) = (
            keys::parse_stream(key.get(1..).unwrap_or_default()),
            keys::u64_at(&value, 0),
        ) else {
            return Err(StoreError::Damaged {
                what: "high-water mark of a stream",
            });
        };
        let first = keys::event(&stream, mark.saturating_add(1));
        let last = keys::event(&stream, u64::MAX);
        let mut above = Vec::new();
        for item in notify.range(first..=last) {
            let (key, _) = item.map_err(StoreError::Read)?;
            if let Some((_, seq)) = keys::parse_event_key(&key) {
                above.push(seq);
            }
        }
        // A database from before delivery marks put every event in the inbox
        // on arrival: all it holds counts as delivered.
        let delivered = delivered
            .get(&stream)
            .copied()
            .unwrap_or_else(|| above.last().copied().unwrap_or(mark).max(mark));
        streams.restore(stream, mark, above, delivered, now);
    }
    Ok(streams)
}

/// The change log as the writer needs it: the last change number and each
/// stream's latest one.
pub(super) fn load_changes(notify: &sled::Tree) -> Result<(u64, HashMap<StreamId, u64>)> {
    let mut changes = HashMap::new();
    let mut last = 0;
    for item in notify.scan_prefix([keys::CHANGE_OF]) {
        let (key, value) = item.map_err(StoreError::Read)?;
        if let (Some((stream, _)), Some(n)) = (
            keys::parse_stream(key.get(1..).unwrap_or_default()),
            keys::u64_at(&value, 0),
        ) {
            last = last.max(n);
            changes.insert(stream, n);
        }
    }
    Ok((last, changes))
}

/// The streams whose marks moved after change `since`, as a peer asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Each stream with its contiguous mark now.
    pub marks: Vec<(StreamId, u64)>,
    /// The change number to ask from next time.
    pub next: u64,
    /// Whether more changes follow (ask again from `next` at once).
    pub more: bool,
}

/// The position the next inbox entry gets.
pub(super) fn next_inbox_position(notify: &sled::Tree) -> Result<u64> {
    match notify.scan_prefix([keys::INBOX]).next_back() {
        Some(item) => {
            let (key, _) = item.map_err(StoreError::Read)?;
            let last = keys::u64_at(&key, 1).ok_or(StoreError::Damaged {
                what: "inbox position",
            })?;
            Ok(last.saturating_add(1))
        }
        None => Ok(1),
    }
}

impl Store {
    /// The signed bytes of one event.
    pub fn event(&self, stream: &StreamId, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .trees
            .notify
            .get(keys::event(stream, seq))
            .map_err(StoreError::Read)?
            .map(|v| v.to_vec()))
    }

    /// Whether event `seq` of `stream` is stored.
    pub fn contains(&self, stream: &StreamId, seq: u64) -> Result<bool> {
        self.trees
            .notify
            .contains_key(keys::event(stream, seq))
            .map_err(StoreError::Read)
    }

    /// Stored events of `stream` from `from` to `to`, contiguous, at most
    /// `max_count` of them and about `max_bytes` in total.
    pub fn events_from(
        &self,
        stream: &StreamId,
        from: u64,
        to: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let range = self
            .trees
            .notify
            .range(keys::event(stream, from)..=keys::event(stream, to));
        for (expect, item) in (from..).zip(range) {
            let (key, value) = item.map_err(StoreError::Read)?;
            if keys::parse_event_key(&key).map(|(_, seq)| seq) != Some(expect)
                || out.len() >= max_count
            {
                break;
            }
            bytes = bytes.saturating_add(value.len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(value.to_vec());
        }
        Ok(out)
    }

    /// The contiguous high-water mark of every stream with stored events.
    pub fn marks(&self) -> Result<BTreeMap<StreamId, u64>> {
        let mut marks = BTreeMap::new();
        for item in self.trees.notify.scan_prefix([keys::MARK]) {
            let (key, value) = item.map_err(StoreError::Read)?;
            if let (Some((stream, _)), Some(mark)) = (
                keys::parse_stream(key.get(1..).unwrap_or_default()),
                keys::u64_at(&value, 0),
            ) {
                marks.insert(stream, mark);
            }
        }
        Ok(marks)
    }

    /// The contiguous high-water mark of one stream (0: nothing stored).
    pub fn mark(&self, stream: &StreamId) -> Result<u64> {
        Ok(self
            .trees
            .notify
            .get(keys::mark(stream))
            .map_err(StoreError::Read)?
            .and_then(|v| keys::u64_at(&v, 0))
            .unwrap_or(0))
    }

    /// Streams whose marks moved after change `since`, at most `limit` of
    /// them, each with its mark now. The cost follows what changed, not how
    /// many streams there are.
    pub fn changes_since(&self, since: u64, limit: usize) -> Result<Changes> {
        let start = keys::change(since.saturating_add(1));
        let end = keys::change(u64::MAX);
        let mut out = Changes {
            next: since,
            ..Changes::default()
        };
        for item in self.trees.notify.range(start..=end) {
            let (key, value) = item.map_err(StoreError::Read)?;
            if out.marks.len() >= limit {
                out.more = true;
                break;
            }
            let number = keys::u64_at(&key, 1).ok_or(StoreError::Damaged {
                what: "change log entry",
            })?;
            out.next = number;
            if let Some((stream, _)) = keys::parse_stream(&value) {
                let mark = self.mark(&stream)?;
                out.marks.push((stream, mark));
            }
        }
        Ok(out)
    }

    /// Durable inbox entries after `after`, in order, at most `max`.
    pub fn inbox_after(&self, after: u64, max: usize) -> Result<Vec<InboxEntry>> {
        let head = *self.inbox_head.borrow();
        if after >= head {
            return Ok(Vec::new());
        }
        let start = keys::inbox(after.saturating_add(1));
        let mut out = Vec::new();
        for item in self.trees.notify.range(start..=keys::inbox(head)).take(max) {
            let (key, value) = item.map_err(StoreError::Read)?;
            let damaged = StoreError::Damaged {
                what: "inbox entry",
            };
            let position = keys::u64_at(&key, 1).ok_or(StoreError::Damaged {
                what: "inbox position",
            })?;
            let (stream, seq, note) = keys::parse_inbox_value(&value).ok_or(damaged)?;
            out.push(InboxEntry {
                position,
                stream,
                seq,
                note,
            });
        }
        Ok(out)
    }
}
