//! The sled database: trees, key layouts, and the one durable write path.
//!
//! Owns every use of sled in the node. Reads go straight to the trees from any
//! task; every write goes through the [`writer`] task, which groups all writes
//! that are waiting into one atomic batch and one flush (group commit) and
//! answers each writer only after that flush. So whatever the node
//! acknowledges (a publish to the back office, a gossip message as accepted,
//! an Ack) is on disk first. Calls nothing else in the node.

mod audit;
mod keys;
mod registry;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use handbereik_keys::{MemberId, Purpose};

use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
pub use audit::{BuildEntry, Head as AuditHead};
pub use registry::{Pseudonym, RegistryRow, RegistryWrite, Rewrite};
use writer::{Command, Writer};
pub use writer::{Incoming, Outcome};

/// One source's events for one purpose: sequences are gap-free per stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stream {
    /// The source member.
    pub source: MemberId,
    /// The purpose.
    pub purpose: Purpose,
}

/// How many commands the writer takes into one batch at most.
const MAX_BATCH: usize = 4096;

/// A handle to the node's database. Cheap to clone; the last clone dropped
/// stops the writer after a final flush.
#[derive(Clone)]
pub struct Store {
    notify: sled::Tree,
    subscriptions: sled::Tree,
    meta: sled::Tree,
    registry: sled::Tree,
    audit: sled::Tree,
    audit_fault: Arc<AtomicBool>,
    commands: mpsc::Sender<Command>,
    inbox_head: watch::Receiver<u64>,
}

/// The writer task, to be awaited at shutdown.
pub type WriterTask = tokio::task::JoinHandle<()>;

impl Store {
    /// Opens (or creates) the database in `dir` and starts the writer task.
    /// This node's own events are stored but get no inbox entry.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<(Store, WriterTask)> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Store(format!("cannot create {}: {e}", dir.display())))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|e| {
                // sled reports the lock as an I/O error whose text names it.
                let locked = matches!(&e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
                    || e.to_string().contains("could not acquire lock");
                if locked {
                    Error::StoreLocked(dir.display().to_string())
                } else {
                    Error::Store(format!("cannot open {}: {e}", dir.display()))
                }
            })?;
        let trees = Trees {
            notify: db.open_tree("notify")?,
            subscriptions: db.open_tree("subscriptions")?,
            meta: db.open_tree("meta")?,
            registry: db.open_tree("registry")?,
            audit: db.open_tree("audit")?,
        };
        let audit_fault = Arc::new(AtomicBool::new(false));
        let writer = Writer::load(db, &trees, audit_fault.clone())?;
        let (inbox_tx, inbox_head) = watch::channel(writer.inbox_head());
        let (commands, rx) = mpsc::channel(MAX_BATCH);
        let task = tokio::spawn(writer.run(rx, inbox_tx));
        Ok((
            Store {
                notify: trees.notify,
                subscriptions: trees.subscriptions,
                meta: trees.meta,
                registry: trees.registry,
                audit: trees.audit,
                audit_fault,
                commands,
                inbox_head,
            },
            task,
        ))
    }

    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Stores verified events from other sources durably; one outcome per event.
    pub async fn ingest(&self, events: Vec<Incoming>) -> Result<Vec<Outcome>> {
        self.send(|reply| Command::Ingest { events, reply }).await
    }

    /// Appends this node's next event to `stream`: `build` gets the sequence
    /// number and returns the signed bytes. Answers after the event is durable.
    pub async fn append_own(
        &self,
        stream: Stream,
        build: Box<dyn FnOnce(u64) -> Result<Vec<u8>> + Send>,
    ) -> Result<(u64, Vec<u8>)> {
        self.send(|reply| Command::Append {
            stream,
            build,
            reply,
        })
        .await
    }

    /// Durably stores a subscription record.
    pub async fn put_subscription(&self, name: &str, value: Vec<u8>) -> Result<()> {
        let entries = vec![(name.as_bytes().to_vec(), value)];
        self.send(|reply| Command::Put {
            tree: writer::Which::Subscriptions,
            entries,
            reply,
        })
        .await
    }

    /// Durably stores metadata values, all in one atomic batch (such as the
    /// member list held together with the anchor it was accepted under).
    pub async fn put_meta(&self, entries: Vec<(&str, Vec<u8>)>) -> Result<()> {
        let entries = entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect();
        self.send(|reply| Command::Put {
            tree: writer::Which::Meta,
            entries,
            reply,
        })
        .await
    }

    /// A subscription record.
    pub fn subscription(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.subscriptions.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    /// The signed bytes of one event.
    pub fn event(&self, stream: &Stream, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .notify
            .get(keys::event(stream, seq))?
            .map(|v| v.to_vec()))
    }

    /// Whether event `seq` of `stream` is stored.
    pub fn contains(&self, stream: &Stream, seq: u64) -> bool {
        self.notify
            .contains_key(keys::event(stream, seq))
            .unwrap_or(false)
    }

    /// Stored events of `stream` from `from` to `to`, contiguous, at most
    /// `max_count` of them and about `max_bytes` in total.
    pub fn events_from(
        &self,
        stream: &Stream,
        from: u64,
        to: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let range = self
            .notify
            .range(keys::event(stream, from)..=keys::event(stream, to));
        for (expect, item) in (from..).zip(range) {
            let (key, value) = item?;
            if keys::parse_event_key(&key).map(|(_, seq)| seq) != Some(expect)
                || out.len() >= max_count
            {
                break;
            }
            bytes += value.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(value.to_vec());
        }
        Ok(out)
    }

    /// The contiguous high-water mark of every stream with stored events.
    pub fn marks(&self) -> Result<BTreeMap<Stream, u64>> {
        let mut marks = BTreeMap::new();
        for item in self.notify.scan_prefix([keys::MARK]) {
            let (key, value) = item?;
            if let (Some((stream, _)), Some(mark)) =
                (keys::parse_stream(&key[1..]), keys::u64_at(&value, 0))
            {
                marks.insert(stream, mark);
            }
        }
        Ok(marks)
    }

    /// The contiguous high-water mark of one stream (0: nothing stored).
    pub fn mark(&self, stream: &Stream) -> Result<u64> {
        Ok(self
            .notify
            .get(keys::mark(stream))?
            .and_then(|v| keys::u64_at(&v, 0))
            .unwrap_or(0))
    }

    /// Inbox entries after `after`, in order, at most `max`: (position, stream, sequence).
    pub fn inbox_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Stream, u64)>> {
        let mut out = Vec::new();
        let start = keys::inbox(after.saturating_add(1));
        for item in self.notify.range(start..=keys::inbox(u64::MAX)).take(max) {
            let (key, value) = item?;
            let position =
                keys::u64_at(&key, 1).ok_or_else(|| Error::Store("bad inbox key".into()))?;
            let (stream, seq) = keys::parse_event_ref(&value)
                .ok_or_else(|| Error::Store("bad inbox entry".into()))?;
            out.push((position, stream, seq));
        }
        Ok(out)
    }

    /// Follows the inbox head: the highest position stored.
    pub fn inbox_head(&self) -> watch::Receiver<u64> {
        self.inbox_head.clone()
    }

    /// Changes the source registration durably; answers how many entries the
    /// write touched, or why it was refused.
    pub async fn registry_write(&self, write: RegistryWrite) -> Result<u32> {
        self.send(|reply| Command::Registry { write, reply }).await
    }

    /// One registry entry.
    pub fn registry_get(&self, subject: &Pseudonym, category: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .registry
            .get(registry::key(subject, category))?
            .map(|v| v.to_vec()))
    }

    /// Every entry of one subject: (category, value).
    pub fn registry_subject(&self, subject: &Pseudonym) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.registry.scan_prefix(subject) {
            let (key, value) = item?;
            if let Some((_, category)) = registry::parse_key(&key) {
                out.push((category, value.to_vec()));
            }
        }
        Ok(out)
    }

    /// Entries of all subjects after the raw key `after` (exclusive), at most
    /// `limit`.
    pub fn registry_page(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<RegistryRow>> {
        let range = match after {
            Some(after) => self.registry.range((
                std::ops::Bound::Excluded(after.to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.registry.iter(),
        };
        let mut out = Vec::new();
        for item in range.take(limit) {
            let (key, value) = item?;
            if let Some((subject, category)) = registry::parse_key(&key) {
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

    /// Appends one audit entry after the chain's head, durably: `build` gets
    /// the sequence number and the previous entry's hash. `subject` indexes
    /// the entry for subject reports.
    pub async fn audit_append(&self, subject: Option<Pseudonym>, build: BuildEntry) -> Result<u64> {
        self.send(|reply| Command::Audit {
            subject,
            build,
            reply,
        })
        .await
        .map_err(|e| match e {
            Error::AuditUnavailable(_) => e,
            other => Error::AuditUnavailable(other.to_string()),
        })
    }

    /// The audit chain's head, as durably stored.
    pub fn audit_head(&self) -> Result<AuditHead> {
        audit::load_head(&self.audit)
    }

    /// Audit entries after sequence `after`, in order, at most `limit`.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let start = audit::entry_key(after.saturating_add(1));
        let end = audit::entry_key(u64::MAX);
        let mut out = Vec::new();
        for item in self.audit.range(start..=end).take(limit) {
            let (key, value) = item?;
            let seq =
                keys::u64_at(&key, 1).ok_or_else(|| Error::Store("a damaged audit key".into()))?;
            out.push((seq, value.to_vec()));
        }
        Ok(out)
    }

    /// One audit entry.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.audit.get(audit::entry_key(seq))?.map(|v| v.to_vec()))
    }

    /// The sequence numbers of the audit entries about `subject`.
    pub fn audit_subject(&self, subject: &Pseudonym) -> Result<Vec<u64>> {
        let mut prefix = vec![audit::SUBJECT];
        prefix.extend_from_slice(subject);
        let mut out = Vec::new();
        for item in self.audit.scan_prefix(&prefix) {
            let (key, _) = item?;
            if let Some(seq) = keys::u64_at(&key, 33) {
                out.push(seq);
            }
        }
        Ok(out)
    }

    /// Stores a signed checkpoint of the audit head at `seq`, durably.
    pub async fn put_audit_checkpoint(&self, seq: u64, signed: Vec<u8>) -> Result<()> {
        let entries = vec![(audit::checkpoint_key(seq).to_vec(), signed)];
        self.send(|reply| Command::Put {
            tree: writer::Which::Audit,
            entries,
            reply,
        })
        .await
    }

    /// Every signed checkpoint: (sequence, signed bytes).
    pub fn audit_checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.audit.scan_prefix([audit::CHECKPOINT]) {
            let (key, value) = item?;
            if let Some(seq) = keys::u64_at(&key, 1) {
                out.push((seq, value.to_vec()));
            }
        }
        Ok(out)
    }

    /// For tests of the fail-closed path: while set, every audit append fails
    /// as it would on a full or broken disk. No configuration reaches this.
    #[doc(hidden)]
    pub fn fail_audit_writes(&self, fail: bool) {
        self.audit_fault.store(fail, Ordering::Relaxed);
    }
}

/// The trees of the database.
pub(crate) struct Trees {
    pub(crate) notify: sled::Tree,
    pub(crate) subscriptions: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) registry: sled::Tree,
    pub(crate) audit: sled::Tree,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(purpose: &str) -> Stream {
        Stream {
            source: MemberId::parse("00000001001234567000").unwrap(),
            purpose: Purpose::parse(purpose).unwrap(),
        }
    }

    fn incoming(s: &Stream, seq: u64) -> Incoming {
        Incoming {
            stream: s.clone(),
            seq,
            bytes: format!("event {seq}").into_bytes(),
        }
    }

    #[tokio::test]
    async fn duplicates_gaps_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = stream("jeugd");
        {
            let (store, writer) = Store::open(dir.path(), 1 << 20).unwrap();
            let out = store
                .ingest(vec![incoming(&s, 1), incoming(&s, 1), incoming(&s, 4)])
                .await
                .unwrap();
            assert_eq!(
                out[0],
                Outcome::Stored {
                    position: 1,
                    gap: None
                }
            );
            assert_eq!(out[1], Outcome::Duplicate, "a duplicate within one batch");
            assert_eq!(
                out[2],
                Outcome::Stored {
                    position: 2,
                    gap: Some((2, 3))
                }
            );
            assert_eq!(store.mark(&s).unwrap(), 1);
            assert_eq!(*store.inbox_head().borrow(), 2);
            drop(store);
            writer.await.unwrap();
        }
        // Reopened: the mark, the event above the gap and the inbox position are all remembered.
        let (store, _writer) = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.mark(&s).unwrap(), 1);
        assert_eq!(
            store.ingest(vec![incoming(&s, 4)]).await.unwrap(),
            vec![Outcome::Duplicate]
        );
        let out = store
            .ingest(vec![incoming(&s, 2), incoming(&s, 3)])
            .await
            .unwrap();
        assert_eq!(
            out[1],
            Outcome::Stored {
                position: 4,
                gap: None
            }
        );
        assert_eq!(store.mark(&s).unwrap(), 4, "the gap is filled");
        let page = store.events_from(&s, 1, 10, 100, 1 << 20).unwrap();
        assert_eq!(page.len(), 4);
        assert_eq!(page[3], b"event 4");
        let inbox = store.inbox_after(0, 10).unwrap();
        assert_eq!(
            inbox.iter().map(|(p, _, q)| (*p, *q)).collect::<Vec<_>>(),
            vec![(1, 1), (2, 4), (3, 2), (4, 3)]
        );
    }

    #[tokio::test]
    async fn own_events_are_numbered_per_stream_and_kept_out_of_the_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _writer) = Store::open(dir.path(), 1 << 20).unwrap();
        let a = stream("jeugd");
        let b = stream("zorg");
        for expected in 1..=3 {
            let (seq, _) = store
                .append_own(a.clone(), Box::new(|seq| Ok(seq.to_be_bytes().to_vec())))
                .await
                .unwrap();
            assert_eq!(seq, expected);
        }
        let (seq, _) = store
            .append_own(b.clone(), Box::new(|seq| Ok(vec![seq as u8])))
            .await
            .unwrap();
        assert_eq!(seq, 1, "each purpose has its own sequence");
        assert_eq!(*store.inbox_head().borrow(), 0);
        assert_eq!(store.marks().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, _writer) = Store::open(dir.path(), 1 << 20).unwrap();
        let err = Store::open(dir.path(), 1 << 20)
            .err()
            .expect("second open must fail");
        assert!(
            err.to_string().contains("locked by another process"),
            "{err}"
        );
    }
}
