//! The sled database: trees, key layouts, and the one durable write path.
//!
//! Owns every use of sled in the node. Reads go straight to the trees from any
//! task; every write goes through the [`writer`] thread, which groups all
//! writes that are waiting into one atomic batch and one blocking flush
//! (group commit) and answers each writer only after that flush. So whatever
//! the node acknowledges (a publish to the back office, a gossip message as
//! accepted, an Ack, an audit entry before an answer) is on disk first.
//! The store is closed explicitly ([`Store::close`]), which flushes and stops
//! the writer; after that every write is refused. Calls nothing else in the
//! node but the shared [`types`](crate::types).
//!
//! Read helpers live beside the tree they read: [`events`] (the notify
//! tree: events, inbox, marks), [`meta`] (metadata and subscriptions),
//! [`registry`], [`audit`] and [`witness`] (other members' checkpoints held,
//! alarms and this node's key history, in the `audit` tree).

mod audit;
mod error;
mod events;
mod keys;
mod meta;
mod registry;
mod streams;
mod witness;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

pub use audit::{BuildEntry, Head as AuditHead};
pub use error::{BuildError, StoreError};
pub use events::{Changes, InboxEntry};
pub use registry::{RegistryRow, RegistryWrite, Rewrite};
pub use streams::Note;
pub use witness::WitnessWrite;
pub use writer::{BuildEvent, CommitClock, Incoming, Outcome, Published};
use writer::{Command, MAX_BATCH, Writer};

use crate::types::{Pseudonym, StreamId};

/// How many own events may wait for gossip before the feed drops some (they
/// are durable; peers then fetch them by sync).
const PUBLISHED_QUEUE: usize = 8192;

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the node's database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    trees: Arc<Trees>,
    /// Set only by the `test-hooks` feature's [`Store::fail_audit_writes`];
    /// the writer reads it, so without the feature it stays false.
    #[cfg(any(test, feature = "test-hooks"))]
    audit_fault: Arc<AtomicBool>,
    commands: mpsc::Sender<Command>,
    inbox_head: watch::Receiver<u64>,
    clock: Arc<CommitClock>,
    sync_epoch: u64,
}

/// The writer thread, to be joined at shutdown after [`Store::close`].
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits up to `deadline` for the writer to end; false if it did not
    /// (or it panicked).
    pub async fn join(self, deadline: Duration) -> bool {
        let handle = self.0;
        let joined = tokio::task::spawn_blocking(move || handle.join().is_ok());
        matches!(tokio::time::timeout(deadline, joined).await, Ok(Ok(true)))
    }
}

/// What [`Store::open`] gives: the handle, the writer thread, and the feed of
/// this node's own events in the order they were numbered, once durable.
pub struct Opened {
    /// The handle.
    pub store: Store,
    /// The writer thread.
    pub writer: WriterThread,
    /// Own events, for gossip.
    pub published: mpsc::Receiver<Published>,
}

impl Store {
    /// Opens (or creates) the database in `dir` and starts the writer thread.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<Opened> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::HighThroughput)
            // The writer flushes after every group commit; a second,
            // periodic flusher per database would only add a thread and
            // contend with it.
            .flush_every_ms(None)
            .open()
            .map_err(|source| {
                // sled reports the lock as an I/O error whose text names it.
                let locked = matches!(&source, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
                    || source.to_string().contains("could not acquire lock");
                if locked {
                    StoreError::Locked {
                        dir: dir.to_path_buf(),
                    }
                } else {
                    StoreError::Open {
                        dir: dir.to_path_buf(),
                        source,
                    }
                }
            })?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|source| StoreError::Open {
                dir: dir.to_path_buf(),
                source,
            })
        };
        let trees = Arc::new(Trees {
            notify: open_tree("notify")?,
            subscriptions: open_tree("subscriptions")?,
            meta: open_tree("meta")?,
            registry: open_tree("registry")?,
            audit: open_tree("audit")?,
        });
        let audit_fault = Arc::new(AtomicBool::new(false));
        let (published_tx, published) = mpsc::channel(PUBLISHED_QUEUE);
        let (change_seq, changes) = events::load_changes(&trees.notify)?;
        let sync_epoch = meta::load_or_make_epoch(&trees.meta)?;
        let writer = Writer {
            db,
            notify: trees.notify.clone(),
            subscriptions: trees.subscriptions.clone(),
            meta: trees.meta.clone(),
            registry: trees.registry.clone(),
            audit: trees.audit.clone(),
            audit_head: audit::load_head(&trees.audit)?,
            audit_fault: audit_fault.clone(),
            streams: events::load_streams(&trees.notify, Instant::now())?,
            next_position: events::next_inbox_position(&trees.notify)?,
            published: Some(published_tx),
            broken: None,
            change_seq,
            changes,
        };
        let (inbox_tx, inbox_head) = watch::channel(writer.inbox_head());
        let (commands, rx) = mpsc::channel(MAX_BATCH);
        let clock = Arc::new(CommitClock::new());
        let thread_clock = clock.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx, inbox_tx, thread_clock))
            .map_err(StoreError::Thread)?;
        Ok(Opened {
            store: Store {
                trees,
                #[cfg(any(test, feature = "test-hooks"))]
                audit_fault,
                commands,
                inbox_head,
                clock,
                sync_epoch,
            },
            writer: WriterThread(thread),
            published,
        })
    }

    async fn send<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Flushes everything written so far and stops the writer: every later
    /// write is refused with [`StoreError::Closed`]. Reads keep working.
    pub async fn close(&self) -> Result<()> {
        match self.send(|reply| Command::Close { reply }).await {
            Err(StoreError::Closed) => Ok(()),
            other => other,
        }
    }

    /// A random number made when the database was created: change numbers
    /// ([`Store::changes_since`]) are only comparable within one epoch, so a
    /// peer that sees another epoch starts its cursor again.
    pub fn sync_epoch(&self) -> u64 {
        self.sync_epoch
    }

    /// The writer's commit clock, for the node's watchdog.
    pub fn commit_clock(&self) -> &Arc<CommitClock> {
        &self.clock
    }

    /// Stores verified events from other sources durably; one outcome per event.
    pub async fn ingest(&self, events: Vec<Incoming>) -> Result<Vec<Outcome>> {
        self.send(|reply| Command::Ingest { events, reply }).await
    }

    /// Appends this node's next event to `stream`: `build` gets the sequence
    /// number and returns the signed bytes. Answers after the event is
    /// durable; the event then goes to the gossip feed, in numbering order.
    pub async fn append_own(&self, stream: StreamId, build: BuildEvent) -> Result<(u64, Vec<u8>)> {
        self.send(|reply| Command::Append {
            stream,
            build,
            reply,
        })
        .await
    }

    /// Appends an announcement to this node's local stream (`stream` is
    /// [`StreamId::local`]): `build` gets its sequence number. It enters this
    /// node's inbox only. Answers its inbox position once durable.
    pub async fn announce(&self, stream: StreamId, build: BuildEvent) -> Result<(u64, Vec<u8>)> {
        self.send(|reply| Command::Announce {
            stream,
            build,
            reply,
        })
        .await
    }

    /// Passes every gap in a stream that has stayed open for `timeout`: the
    /// events held above it enter the inbox with the gap noted. Answers how
    /// many streams moved.
    pub async fn pass_gaps(&self, timeout: Duration) -> Result<usize> {
        self.send(|reply| Command::PassGaps { timeout, reply })
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

    /// Durably stores metadata values, all in one atomic batch.
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

    /// Durably stores metadata values in one atomic batch only if `version`
    /// is higher than the one stored under `version_key` (which it then
    /// becomes); otherwise [`StoreError::NotNewer`] and nothing is written.
    pub async fn put_meta_versioned(
        &self,
        version_key: &'static str,
        version: u64,
        entries: Vec<(&str, Vec<u8>)>,
    ) -> Result<()> {
        let entries = entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect();
        self.send(|reply| Command::PutVersioned {
            version_key,
            version,
            entries,
            reply,
        })
        .await
    }

    /// Changes the source registration durably; answers how many entries the
    /// write touched, or why it was refused.
    pub async fn registry_write(&self, write: RegistryWrite) -> Result<u32> {
        self.send(|reply| Command::Registry { write, reply }).await
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

    /// Follows the inbox head: the highest position durably stored.
    pub fn inbox_head(&self) -> watch::Receiver<u64> {
        self.inbox_head.clone()
    }

    /// For tests of the fail-closed path: while set, every audit append fails
    /// as it would on a full or broken disk. No configuration reaches this;
    /// only builds with the `test-hooks` feature have it.
    #[cfg(any(test, feature = "test-hooks"))]
    #[doc(hidden)]
    pub fn fail_audit_writes(&self, fail: bool) {
        self.audit_fault
            .store(fail, std::sync::atomic::Ordering::Relaxed);
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
mod tests;
