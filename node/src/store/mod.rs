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
