//! The sled database: trees, key layouts, and the one durable write path.
//!
//! Owns every use of sled in the node. Reads go straight to the trees from any
//! task; every write goes through the [`writer`] task, which groups all writes
//! that are waiting into one atomic batch and one flush (group commit) and
//! answers each writer only after that flush. So whatever the node
//! acknowledges (a publish to the back office, a gossip message as accepted,
//! an Ack) is on disk first. Calls nothing else in the node.

mod keys;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;

use handbereik_keys::{MemberId, Purpose};

use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
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
            .map_err(|e| match e {
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.raw_os_error() == Some(11) =>
                {
                    Error::StoreLocked(dir.display().to_string())
                }
                other => Error::Store(format!("cannot open {}: {other}", dir.display())),
            })?;
        let notify = db.open_tree("notify")?;
        let subscriptions = db.open_tree("subscriptions")?;
        let meta = db.open_tree("meta")?;
        let writer = Writer::load(db, notify.clone(), subscriptions.clone(), meta.clone())?;
        let (inbox_tx, inbox_head) = watch::channel(writer.inbox_head());
        let (commands, rx) = mpsc::channel(MAX_BATCH);
        let task = tokio::spawn(writer.run(rx, inbox_tx));
        Ok((
            Store {
                notify,
                subscriptions,
                meta,
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
        let key = name.as_bytes().to_vec();
        self.send(|reply| Command::Put {
            tree: writer::Which::Subscriptions,
            key,
            value,
            reply,
        })
        .await
    }

    /// Durably stores a metadata value (such as the member list held).
    pub async fn put_meta(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let key = key.as_bytes().to_vec();
        self.send(|reply| Command::Put {
            tree: writer::Which::Meta,
            key,
            value,
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
}
